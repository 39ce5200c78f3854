#include "server/fuzz_fixture.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/errors.h"

namespace redrive::server {
namespace {

using nlohmann::json;

[[noreturn]] void Die(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "fuzz check failed: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}

std::string Describe(const http::Request& req, const http::Response& resp) {
  std::string out =
      "request: " + req.method + " " + req.target + "\n  body: " + req.body.substr(0, 2000) +
      "\nresponse: " + std::to_string(resp.status) + "\n  body: " + resp.body.substr(0, 2000);
  return out;
}

// Engine options for sessions: no long poll may block the fuzzer (a positive wait is refused).
engine::EngineOptions SessionOptions() {
  engine::EngineOptions o;
  o.max_wait = 0;
  return o;
}

// Removes what may change on a refused request without being state a client sees as changed
// (when a token was last used).
void StripVolatile(json* j) {
  if (j->is_object()) {
    for (auto it = j->begin(); it != j->end();) {
      if (it.key().find("lastUsed") != std::string::npos) {
        it = j->erase(it);
      } else {
        StripVolatile(&it.value());
        ++it;
      }
    }
  } else if (j->is_array()) {
    for (auto& e : *j) StripVolatile(&e);
  }
}

}  // namespace

FuzzServer& FuzzServer::Get() {
  static FuzzServer* server = new FuzzServer();  // never destroyed: used until exit
  return *server;
}

FuzzServer::FuzzServer() {
  spdlog::set_level(spdlog::level::off);
  std::string base = std::filesystem::is_directory("/dev/shm") && access("/dev/shm", W_OK) == 0
                         ? "/dev/shm"
                         : std::filesystem::temp_directory_path().string();
  // A run that crashed left its folder: remove those whose process is gone.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("redrive-fuzz-", 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + 13));
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove_all(e.path(), ec);
  }
  dir_ = base + "/redrive-fuzz-" + std::to_string(getpid());
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  static std::string cleanup_dir;
  cleanup_dir = dir_;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(cleanup_dir, ec);
  });
  template_path_ = dir_ + "/template.db";
  work_path_ = dir_ + "/work.db";
  Prepare();
}

std::unique_ptr<FuzzServer::Session> FuzzServer::NewSession() {
  session_.reset();  // closes the store before its files go
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::error_code ec;
    std::filesystem::remove(work_path_ + suffix, ec);
  }
  std::filesystem::copy_file(template_path_, work_path_);
  if (std::filesystem::exists(template_path_ + "-wal")) {
    std::filesystem::copy_file(template_path_ + "-wal", work_path_ + "-wal");
  }
  auto s = std::make_unique<Session>();
  auto opened = store::OpenStore(work_path_);
  if (!opened.ok()) Die("cannot open the fuzz store", opened.status().ToString());
  s->store = std::move(opened).value();
  s->engine = std::make_unique<engine::Engine>(*s->store, s->clock, s->random, SessionOptions());
  s->api = std::make_unique<api::RestApi>(*s->engine);
  return s;
}

http::Request FuzzServer::MakeRequest(std::string method, std::string target,
                                      std::string body) const {
  http::Request req;
  req.method = std::move(method);
  req.target = std::move(target);
  size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) (void)http::ParseQuery(req.target.substr(q + 1), &req.query);
  req.headers = {{"authorization", "Bearer " + operator_token_},
                 {"content-type", "application/json"}};
  req.body = std::move(body);
  req.remote = "127.0.0.1";
  return req;
}

void FuzzServer::Prepare() {
  {
    auto opened = store::OpenStore(template_path_);
    if (!opened.ok()) Die("cannot create the fuzz store", opened.status().ToString());
    auto store = std::move(opened).value();
    ManualClock clock;
    SeededRandom random(1);
    engine::Engine engine(*store, clock, random, SessionOptions());
    api::RestApi api(engine);
    auto op = engine.tenancy().CreateOperatorToken("fuzz");
    if (!op.ok()) Die("cannot create the operator token", op.status().ToString());
    operator_token_ = op->secret;

    auto call = [&](const char* method, const std::string& target, const json& body) {
      http::Request req = MakeRequest(method, target, body.is_null() ? "" : body.dump());
      http::Response resp = api.Handle(req);
      if (resp.status >= 300) Die("preparing the fuzz state", Describe(req, resp));
      return resp.body.empty() ? json() : json::parse(resp.body);
    };
    call("POST", "/v1/tenants", {{"name", "t"}});
    call("POST", "/v1/tenants/t/queues",
         {{"name", "q"}, {"attributes", {{"retryPolicy", {{"maxDeliveries", 2}}}}}});
    call("POST", "/v1/tenants/t/queues", {{"name", "r"}});
    json token =
        call("POST", "/v1/tenants/t/tokens", {{"label", "worker"}, {"scopes", {"consume"}}});
    call("POST", "/v1/tenants/t/queues/q/messages",
         {{"messages",
           {{{"body", "{\"order\": 42, \"items\": [1, 2]}"},
             {"attributes", {{"type", "order.created"}}},
             {"idempotencyKey", "k1"}},
            {{"body", "aGVsbG8="}, {"base64", true}},
            {{"body", "third"}, {"delay", "1h"}}}}});
    json got = call("POST", "/v1/tenants/t/queues/q/receive", {{"maxMessages", 2}});
    std::string dead_receipt = got["messages"][0]["receipt"];
    std::string dead_id = got["messages"][0]["id"];
    std::string leased_receipt = got["messages"][1]["receipt"];
    call("POST", "/v1/tenants/t/queues/q/nack",
         {{"nacks",
           {{{"receipt", dead_receipt},
             {"reason", "payment-declined"},
             {"error", "card 4242: insufficient funds"},
             {"deadLetter", true}}}}});
    // A topic with a pulled subscription (one message leased: $SRCPT) and a push one whose
    // endpoint is never reached (it takes no message, and the fuzz engine is not started).
    call("POST", "/v1/tenants/t/topics", {{"name", "tp"}});
    call("POST", "/v1/tenants/t/topics/tp/subscriptions",
         {{"name", "sb"}, {"attributes", {{"filter", {{"type", {"order.created", "x"}}}}}}});
    call("POST", "/v1/tenants/t/topics/tp/subscriptions",
         {{"name", "hook"},
          {"attributes",
           {{"filter", {{"never", {{"exists", true}}}}},
            {"push", {{"url", "http://127.0.0.1:9/fuzz"}}}}}});
    json fanned =
        call("POST", "/v1/tenants/t/topics/tp/messages",
             {{"messages", {{{"body", "fanned"}, {"attributes", {{"type", "order.created"}}}}}}});
    json sub_got =
        call("POST", "/v1/tenants/t/topics/tp/subscriptions/sb/receive", {{"maxMessages", 1}});
    std::string sub_receipt = sub_got["messages"][0]["receipt"];
    json groups = call("GET", "/v1/tenants/t/failure-groups", nullptr);
    std::string group = groups["groups"][0]["id"];
    json job = call("POST", "/v1/tenants/t/redrive-jobs",
                    {{"filter", "/reason eq \"no-such-reason\""}, {"destination", "r"}});
    for (int i = 0; i < 10; ++i) (void)engine.dead_letters().RunJobsOnce();

    placeholders_ = {{"$OP", operator_token_},
                     {"$DL", dead_id},
                     {"$GRP", group},
                     {"$JOB", job["id"].get<std::string>()},
                     {"$TOK", token["id"].get<std::string>()},
                     {"$SRCPT", sub_receipt},
                     {"$TMSG", fanned["messages"][0]["id"].get<std::string>()},
                     {"$RCPT", leased_receipt}};
  }
  // The store is closed: its WAL is checkpointed into the file, which sessions copy.
  session_ = NewSession();
  initial_digest_ = Digest(*session_->api);
}

std::string FuzzServer::Substitute(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    bool replaced = false;
    if (text[i] == '$') {
      for (const auto& [key, value] : placeholders_) {
        if (text.substr(i, key.size()) == key) {
          out += value;
          i += key.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out.push_back(text[i++]);
  }
  return out;
}

std::string FuzzServer::Digest(api::RestApi& api) {
  std::string out;
  for (const char* target :
       {"/v1/tenants", "/v1/tenants/t/queues", "/v1/tenants/t/tokens", "/v1/tenants/t/dead-letters",
        "/v1/tenants/t/failure-groups", "/v1/tenants/t/dead-letter-stats",
        "/v1/tenants/t/redrive-jobs", "/v1/tenants/t/audit", "/v1/tenants/t/topics"}) {
    http::Request req = MakeRequest("GET", target, "");
    http::Response resp = api.Handle(req);
    if (resp.status != 200) Die("reading the fuzz state back", Describe(req, resp));
    json j = json::parse(resp.body);
    StripVolatile(&j);
    out += std::string(target) + " " + j.dump() + "\n";
  }
  return out;
}

std::string FuzzServer::FileStamp() const {
  std::string out;
  for (const char* suffix : {"", "-wal"}) {
    struct stat st {};
    if (stat((work_path_ + suffix).c_str(), &st) != 0) continue;
    out += std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + " ";
  }
  return out;
}

FuzzServer::Session& FuzzServer::Begin() {
  if (!session_ || session_uses_ >= kMaxReuse) {
    session_ = NewSession();
    session_uses_ = 0;
  }
  ++session_uses_;
  session_stamp_ = FileStamp();
  return *session_;
}

void FuzzServer::End(bool all_refused, const std::string& why) {
  if (FileStamp() == session_stamp_) return;  // nothing was written: still as prepared
  if (!all_refused) {
    session_.reset();  // it changed: the next input starts from a fresh copy
    return;
  }
  std::string now = Digest(*session_->api);
  if (now != initial_digest_) {
    Die("a refused request changed the state",
        why + "\nbefore:\n" + initial_digest_ + "after:\n" + now);
  }
}

void FuzzServer::CheckResponse(const http::Request& req, const http::Response& resp) {
  if (resp.status >= 500) Die("a server error", Describe(req, resp));
  if (resp.status < 200) Die("an impossible status", Describe(req, resp));
  if (resp.status == 204) {
    if (!resp.body.empty()) Die("a 204 with a body", Describe(req, resp));
    return;
  }
  if (resp.content_type != "application/json") return;  // /metrics
  json j = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) Die("a response body that is not JSON", Describe(req, resp));
  if (resp.status < 300) return;
  auto error = j.find("error");
  if (!j.is_object() || j.size() != 1 || error == j.end() || !error->is_object() ||
      !error->contains("code") || !(*error)["code"].is_string() || !error->contains("message") ||
      !(*error)["message"].is_string()) {
    Die("an error body that is not {\"error\": {\"code\", \"message\"}}", Describe(req, resp));
  }
  const std::string& code = (*error)["code"].get_ref<const std::string&>();
  size_t n = 0;
  const ErrorInfo* all = AllErrors(&n);
  for (size_t i = 0; i < n; ++i) {
    if (all[i].wire_code == code) {
      if (all[i].http_status != resp.status) {
        Die("an error code with another status than its catalogue row", Describe(req, resp));
      }
      return;
    }
  }
  Die("an error code that is not in the catalogue", Describe(req, resp));
}

}  // namespace redrive::server
