#include "tests/harness.h"

#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "store/postgres/pg_test_database.h"

namespace redrive::testing {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Collects "Name: value" header lines (names lower-cased); the status line has no colon.
size_t CollectHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    static_cast<HttpResult*>(out)->headers.emplace_back(std::move(name), std::move(value));
  }
  return size * n;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

json HttpResult::Json() const { return json::parse(body, nullptr, false); }

std::string HttpResult::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

std::string HttpResult::ErrorCode() const {
  json j = Json();
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    return j["error"].value("code", "");
  }
  return "";
}

HttpClient::HttpClient(std::string base_url, std::string token)
    : base_(std::move(base_url)), token_(std::move(token)), curl_(curl_easy_init()) {}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResult HttpClient::Send(const std::string& method, const std::string& path,
                            const std::string& body, const std::string& content_type,
                            const std::vector<std::string>& headers) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  HttpResult r;
  std::string url = base_ + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60'000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (!ca_file_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
  if (method != "GET" && method != "DELETE") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  } else if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  }
  curl_slist* list = nullptr;
  if (!content_type.empty())
    list = curl_slist_append(list, ("Content-Type: " + content_type).c_str());
  if (!token_.empty()) list = curl_slist_append(list, ("Authorization: Bearer " + token_).c_str());
  list = curl_slist_append(list, "Expect:");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    r.status = 0;
    r.body = curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &last_new_connections_);
  return r;
}

HttpResult HttpClient::Get(const std::string& path) { return Send("GET", path, "", ""); }
HttpResult HttpClient::Delete(const std::string& path) { return Send("DELETE", path, "", ""); }
HttpResult HttpClient::Post(const std::string& path, const json& body) {
  return Send("POST", path, body.dump());
}
HttpResult HttpClient::Patch(const std::string& path, const json& body) {
  return Send("PATCH", path, body.dump());
}

std::string RedriveBinary() {
  const char* b = std::getenv("REDRIVE_BINARY");
  if (!b || !*b) throw std::runtime_error("REDRIVE_BINARY is not set");
  return b;
}

bool OnPostgres() {
  const char* b = std::getenv("REDRIVE_TEST_BACKEND");
  return b != nullptr && std::string(b) == "postgres";
}

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "redrive-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

ServerProcess::ServerProcess(std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), extra_args_(std::move(extra_args)) {
  if (data_dir_.empty()) {
    data_dir_ = MakeTempDir();
    own_dir_ = true;
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(10'000);
  if (own_dir_ && OnPostgres()) redrive::store::postgres::DropTestDatabase(data_dir_);
  if (own_dir_) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

bool ServerProcess::Start(std::string* error) {
  // The log goes there from the first line: without the folder the child's stdout would be
  // closed, and the first socket it opens (a database connection) would become fd 1.
  std::filesystem::create_directories(data_dir_);
  std::string port_file = data_dir_ + "/port";
  std::filesystem::remove(port_file);
  std::string log_file = data_dir_ + "/server.log";
  std::string listen = host_.find(':') != std::string::npos ? "[" + host_ + "]:0" : host_ + ":0";
  std::vector<std::string> args = {RedriveBinary(), "serve", "--data-dir",  data_dir_,
                                   "--listen",      listen,  "--port-file", port_file};
  bool has_store = false;
  for (const auto& a : extra_args_) {
    args.push_back(a);
    has_store = has_store || a == "--store";
  }
  if (OnPostgres() && !has_store) {
    args.push_back("--store");
    args.push_back(redrive::store::postgres::TestDatabase(data_dir_));
  }
  pid_ = fork();
  if (pid_ == 0) {
    FILE* f = freopen(log_file.c_str(), "a", stdout);
    (void)f;
    dup2(fileno(stdout), fileno(stderr));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      start_exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      if (error) *error = "server exited at start: " + log();
      return false;
    }
    std::string p = ReadFile(port_file);
    if (!p.empty() && p.back() == '\n') {
      port_ = std::stoi(p);
      HttpClient c(url());
      c.set_ca_file(tls_ca_file_);
      if (c.Get("/healthz").status == 200) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (error) *error = "server did not become healthy: " + log();
  Kill();
  return false;
}

int ServerProcess::Stop(int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return -1;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string ServerProcess::operator_token() const {
  std::string t = ReadFile(data_dir_ + "/operator.token");
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

std::string ServerProcess::log() const { return ReadFile(data_dir_ + "/server.log"); }

void CreateTenant(HttpClient& op, const std::string& tenant) {
  auto r = op.Post("/v1/tenants", {{"name", tenant}});
  if (r.status != 201) throw std::runtime_error("create tenant: " + r.body);
}

void CreateQueue(HttpClient& op, const std::string& tenant, const std::string& queue,
                 const json& attributes) {
  auto r =
      op.Post("/v1/tenants/" + tenant + "/queues", {{"name", queue}, {"attributes", attributes}});
  if (r.status != 201) throw std::runtime_error("create queue: " + r.body);
}

std::string CreateToken(HttpClient& op, const std::string& tenant, const std::string& label,
                        const std::vector<std::string>& scopes) {
  json body = {{"label", label}};
  if (!scopes.empty()) body["scopes"] = scopes;
  auto r = op.Post("/v1/tenants/" + tenant + "/tokens", body);
  if (r.status != 201) throw std::runtime_error("create token: " + r.body);
  return r.Json()["token"];
}

}  // namespace redrive::testing
