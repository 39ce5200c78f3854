// Tenant isolation and the read-only dead-letter queues, against the real binary.
//
// The isolation walk takes the route table from RestApi itself (built in-process against a
// throwaway engine), so a route added to the API is walked without touching this file. Each
// tenant-scoped route is called with another tenant's token, with every insufficient scope,
// and with no, a garbage and a revoked token, its `{params}` filled with real ids of the
// victim tenant; every answer must be the documented error carrying none of the victim's data,
// and the victim's state must be the same afterwards. A control call per route, made by the
// owner of a fresh copy of the same resources, proves that the request the walk sends would
// otherwise succeed, so a refusal really is the authorization check at work.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "api/api.h"
#include "common/clock.h"
#include "engine/engine.h"
#include "store/store.h"
#include "tests/harness.h"

namespace redrive::testing {
namespace {

// The route table as the server builds it. The engine is never started: only the table is read.
std::vector<api::RouteInfo> RouteTable() {
  std::string dir = MakeTempDir();
  std::vector<api::RouteInfo> routes;
  {
    auto store = store::OpenStore(dir + "/routes.db");
    if (!store.ok()) throw std::runtime_error(store.status().ToString());
    SystemClock clock;
    SystemRandom random;
    engine::Engine engine(*store.value(), clock, random);
    api::RestApi api(engine);
    routes = api.Routes();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return routes;
}

std::vector<std::string> Segments(const std::string& pattern) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < pattern.size()) {
    size_t j = pattern.find('/', i);
    if (j == std::string::npos) j = pattern.size();
    if (j > i) out.push_back(pattern.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool IsParam(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

bool HasParam(const api::RouteInfo& r, const std::string& name) {
  return r.pattern.find("{" + name + "}") != std::string::npos;
}

std::string Label(std::string s) {
  for (auto& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return s;
}

// A body for a failure message: the start of it is enough to see what went wrong.
std::string Short(const std::string& body) {
  if (body.size() <= 600) return body;
  return body.substr(0, 600) + "... (" + std::to_string(body.size()) + " bytes)";
}

// One tenant with one of every kind of resource a route can name.
struct Fixture {
  std::string tenant;
  std::string full_token;         // every tenant scope
  std::string victim_token_id;    // the {token} of the tenant's routes
  std::string operator_token_id;  // the {token} of /v1/operator-tokens/{token}, when made
  std::string queue = "orders";
  std::string retry_queue = "retry";
  std::string dlq = "graveyard";
  std::string receipt;  // a message of `queue` leased for an hour
  std::string topic = "events";
  std::string subscription = "feed";       // pulled
  std::string push_subscription = "hook";  // pushed; its filter takes nothing, so it stays still
  std::string subscription_receipt;        // a message of `subscription` leased for an hour
  std::string topic_message_id;            // that message's id (the {id} of the topic's events)
  std::vector<std::string> dead_letter_ids;
  std::string group;
  std::string job;        // waits in its canary phase for a day: running, and stays so
  std::string export_id;  // a completed export of the dead letters
  std::string ticket;     // an answered ticket (its one dead letter discarded)
  // Strings only the owner may ever see in an answer.
  std::vector<std::string> secrets;
};

json MustJson(const HttpResult& r, long status, const std::string& what) {
  if (r.status != status) {
    throw std::runtime_error(what + ": HTTP " + std::to_string(r.status) + " " + r.body);
  }
  return r.Json();
}

Fixture BuildFixture(const std::string& url, HttpClient& op, const std::string& tenant,
                     bool with_job, bool with_operator_token) {
  Fixture f;
  f.tenant = tenant;
  if (with_operator_token) {
    json t = MustJson(op.Post("/v1/operator-tokens", {{"label", tenant + "-secret-label-op"}}), 201,
                      "operator token");
    f.operator_token_id = t["id"];
    f.secrets.push_back(t["token"]);
  }
  std::string base = "/v1/tenants/" + tenant;
  CreateTenant(op, tenant);
  f.full_token = CreateToken(op, tenant, tenant + "-secret-label-full");
  HttpClient own(url, f.full_token);
  json victim = MustJson(own.Post(base + "/tokens", {{"label", tenant + "-secret-label-victim"}}),
                         201, "victim token");
  f.victim_token_id = victim["id"];
  for (const auto& s : {tenant + "-secret-label-full", tenant + "-secret-label-victim",
                        f.victim_token_id, victim["token"].get<std::string>(), f.full_token}) {
    f.secrets.push_back(s);
  }
  json to_dlq = {{"deadLetterQueue", f.dlq}};
  CreateQueue(op, tenant, f.queue, to_dlq);
  CreateQueue(op, tenant, f.retry_queue, to_dlq);
  CreateQueue(op, tenant, tenant + "-secret-hidden-queue", to_dlq);
  f.secrets.push_back(tenant + "-secret-hidden-queue");

  // A ticket, answered at once: its one dead letter is discarded again.
  MustJson(own.Send("PUT", base + "/notifications", json{{"channels", {{{"type", "log"}}}}}.dump(),
                    "application/json"),
           200, "notifications");
  const std::string hidden = base + "/queues/" + tenant + "-secret-hidden-queue";
  MustJson(own.Post(hidden + "/messages", {{"messages", {{{"body", "ticketed"}}}}}), 201,
           "publish");
  json ticketed =
      MustJson(own.Post(hidden + "/receive", {{"maxMessages", 1}}), 200, "receive")["messages"];
  if (ticketed.size() != 1) throw std::runtime_error("fixture: received " + ticketed.dump());
  MustJson(own.Post(hidden + "/nack",
                    {{"nacks", {{{"receipt", ticketed[0]["receipt"]}, {"deadLetter", true}}}}}),
           200, "nack");
  f.ticket = MustJson(own.Post(base + "/digest", json::object()), 201, "digest")["ticket"]["id"];
  f.secrets.push_back(f.ticket);
  MustJson(own.Post(base + "/tickets/" + f.ticket + "/answer", {{"action", "discard"}}), 200,
           "ticket answer");

  json batch = json::array();
  for (int i = 0; i < 5; ++i) {
    std::string body = tenant + "-secret-body-" + std::to_string(i);
    batch.push_back({{"body", body}, {"attributes", {{"kind", tenant + "-secret-attr"}}}});
    f.secrets.push_back(body);
  }
  f.secrets.push_back(tenant + "-secret-attr");
  json pub = MustJson(own.Post(base + "/queues/" + f.queue + "/messages", {{"messages", batch}}),
                      201, "publish");
  for (const auto& m : pub["messages"]) f.secrets.push_back(m["id"]);
  json got = MustJson(own.Post(base + "/queues/" + f.queue + "/receive",
                               {{"maxMessages", 4}, {"visibilityTimeout", "1h"}}),
                      200, "receive")["messages"];
  if (got.size() != 4) throw std::runtime_error("fixture: received " + got.dump());
  f.receipt = got[0]["receipt"];
  json nacks = json::array();
  for (size_t i = 1; i < got.size(); ++i) {
    nacks.push_back({{"receipt", got[i]["receipt"]},
                     {"deadLetter", true},
                     {"reason", "bad-payload"},
                     {"error", tenant + "-secret-cause"}});
  }
  f.secrets.push_back(tenant + "-secret-cause");
  json nacked =
      MustJson(own.Post(base + "/queues/" + f.queue + "/nack", {{"nacks", nacks}}), 200, "nack");
  if (nacked["succeeded"] != 3) throw std::runtime_error("fixture: nack " + nacked.dump());
  json groups = MustJson(own.Get(base + "/failure-groups"), 200, "groups")["groups"];
  if (groups.size() != 1) throw std::runtime_error("fixture: groups " + groups.dump());
  f.group = groups[0]["id"];
  f.secrets.push_back(f.group);

  if (with_job) {
    json job =
        MustJson(own.Post(base + "/redrive-jobs", {{"deadLetterQueue", f.dlq},
                                                   {"group", f.group},
                                                   {"destination", f.retry_queue},
                                                   {"canary", {{"count", 1}, {"wait", "1d"}}}}),
                 201, "job");
    f.job = job["id"];
    f.secrets.push_back(f.job);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      json j = MustJson(own.Get(base + "/redrive-jobs/" + f.job), 200, "job get");
      if (j["phase"] == "canary-wait") break;
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("fixture: the job never reached its canary wait: " + j.dump());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  MustJson(own.Post(base + "/topics", {{"name", f.topic}}), 201, "topic");
  MustJson(own.Post(base + "/topics/" + f.topic + "/subscriptions",
                    {{"name", f.subscription}, {"attributes", to_dlq}}),
           201, "subscription");
  json hook = {{"deadLetterQueue", f.dlq},
               {"filter", {{"never-set", {{"exists", true}}}}},
               {"push", {{"url", "http://127.0.0.1:9/walk"}}}};
  json made = MustJson(own.Post(base + "/topics/" + f.topic + "/subscriptions",
                                {{"name", f.push_subscription}, {"attributes", hook}}),
                       201, "push subscription");
  f.secrets.push_back(made["secret"]);
  json topic_pub = MustJson(
      own.Post(base + "/topics/" + f.topic + "/messages",
               {{"messages", {{{"body", tenant + "-secret-topic-body"}}, {{"body", "2"}}}}}),
      201, "topic publish");
  f.secrets.push_back(tenant + "-secret-topic-body");
  json leased = MustJson(
      own.Post(base + "/topics/" + f.topic + "/subscriptions/" + f.subscription + "/receive",
               {{"maxMessages", 1}, {"visibilityTimeout", "1h"}}),
      200, "subscription receive")["messages"];
  if (leased.size() != 1) throw std::runtime_error("fixture: subscription " + leased.dump());
  f.subscription_receipt = leased[0]["receipt"];
  f.topic_message_id = topic_pub["messages"][0]["id"];

  json exported = MustJson(own.Post(base + "/exports", json::object()), 202, "export");
  f.export_id = exported["id"];
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);;) {
    json e = MustJson(own.Get(base + "/exports/" + f.export_id), 200, "export get");
    if (e["state"] == "completed") break;
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("fixture: export " + e.dump());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  json dls = MustJson(own.Get(base + "/dead-letters?queue=" + f.dlq), 200, "dead letters");
  for (const auto& d : dls["result"]) f.dead_letter_ids.push_back(d["id"]);
  if (f.dead_letter_ids.empty()) throw std::runtime_error("fixture: no dead letters");
  for (const auto& id : f.dead_letter_ids) f.secrets.push_back(id);
  return f;
}

// The path of `route` with every {param} filled from `f`, or "" (and `missing` set) when the
// route names a parameter this test does not know how to fill.
std::string FillPattern(const api::RouteInfo& route, const Fixture& f, std::string tenant,
                        std::string* missing) {
  std::string path;
  std::string previous;
  for (const auto& seg : Segments(route.pattern)) {
    std::string value = seg;
    if (IsParam(seg)) {
      std::string name = seg.substr(1, seg.size() - 2);
      if (name == "tenant") {
        value = tenant;
      } else if (name == "queue") {
        value = previous == "dead-letter-queues" ? f.dlq : f.queue;
      } else if (name == "id" && previous == "events") {
        value = f.topic_message_id;
      } else if (name == "id") {
        value = f.dead_letter_ids.front();
      } else if (name == "group") {
        value = f.group;
      } else if (name == "topic") {
        value = f.topic;
      } else if (name == "subscription") {
        value = route.pattern.find("/endpoint") != std::string::npos ? f.push_subscription
                                                                     : f.subscription;
      } else if (name == "export") {
        value = f.export_id;
      } else if (name == "ticket") {
        value = f.ticket;
      } else if (name == "job") {
        value = f.job;
      } else if (name == "token" && previous == "tokens") {
        value = f.victim_token_id;
      } else if (name == "token" && previous == "operator-tokens" && !f.operator_token_id.empty()) {
        value = f.operator_token_id;
      } else {
        *missing = name;
        return "";
      }
    }
    path += "/" + value;
    previous = seg;
  }
  return path;
}

// A request each route accepts from the owner. Routes without a recipe get `{}` (or no body),
// so a new route is walked all the same; its control call then says whether it needs one.
struct Recipe {
  json body;                               // null: send no body
  std::vector<std::string> control_codes;  // errors that also prove the handler found the resource
};

Recipe RecipeFor(const api::RouteInfo& route, const Fixture& f) {
  const std::string& n = route.name;
  json ids = f.dead_letter_ids;
  Recipe r;
  if (n == "tenant_create") r.body = {{"name", "made-by-walk-" + f.tenant}};
  if (n == "operator_token_create") r.body = {{"label", "made-by-walk"}};
  // A tenant with queues is deleted only with force=true; the refusal proves the route found it.
  if (n == "tenant_delete") r.control_codes = {"tenant-not-empty"};
  if (n == "token_create") r.body = {{"label", "made-by-walk"}, {"scopes", {"publish"}}};
  if (n == "queue_create") r.body = {{"name", "made-by-walk"}};
  if (n == "queue_update") r.body = {{"attributes", {{"visibilityTimeout", "2m"}}}};
  if (n == "publish") r.body = {{"messages", {{{"body", "injected-by-walk"}}}}};
  if (n == "receive") r.body = {{"maxMessages", 10}};
  if (n == "ack") r.body = {{"receipts", {f.receipt}}};
  if (n == "nack") {
    r.body = {{"nacks", {{{"receipt", f.receipt}, {"deadLetter", true}, {"reason", "walk"}}}}};
  }
  if (n == "extend") r.body = {{"receipts", {f.receipt}}, {"visibilityTimeout", "1s"}};
  if (n == "topic_create" || n == "subscription_create") r.body = {{"name", "made-by-walk"}};
  if (n == "topic_update") r.body = {{"attributes", {{"noRoute", "dead-letter"}}}};
  if (n == "subscription_update") r.body = {{"attributes", {{"visibilityTimeout", "2m"}}}};
  if (n == "topic_publish") r.body = {{"messages", {{{"body", "injected-by-walk"}}}}};
  if (n == "subscription_receive") r.body = {{"maxMessages", 10}};
  if (n == "subscription_ack") r.body = {{"receipts", {f.subscription_receipt}}};
  if (n == "subscription_nack") {
    r.body = {{"nacks",
               {{{"receipt", f.subscription_receipt}, {"deadLetter", true}, {"reason", "walk"}}}}};
  }
  if (n == "subscription_extend") {
    r.body = {{"receipts", {f.subscription_receipt}}, {"visibilityTimeout", "1s"}};
  }
  // The subscription's copy is leased: the refusal proves the route found the message.
  if (n == "subscription_redeliver") {
    r.body = {{"messageId", f.topic_message_id}};
    r.control_codes = {"delivery-pending"};
  }
  if (n == "dead_letter_reroute_one") r.body = {{"destination", f.retry_queue}};
  if (n == "dead_letter_delete_bulk" || n == "dead_letter_restore_bulk") r.body = {{"ids", ids}};
  if (n == "dead_letter_reroute_bulk") r.body = {{"ids", ids}, {"destination", f.retry_queue}};
  if (n == "dead_letter_purge") r.body = {{"confirm", f.dlq}};
  if (n == "job_start") {
    r.body = {{"deadLetterQueue", f.dlq}, {"group", f.group}, {"destination", f.retry_queue}};
  }
  // Only a halted job resumes; the fixture's is running. The conflict still proves the route
  // found the job.
  if (n == "job_resume") r.control_codes = {"job-state-conflict"};
  // The fixture's export is completed; one the walk started may still be processing.
  if (n == "export_cancel") r.control_codes = {"job-state-conflict"};
  if (n == "export_start") r.control_codes = {"export-active"};
  if (n == "notifications_set") r.body = {{"channels", {{{"type", "log"}}}}};
  // The fixture's ticket is answered: the refusal proves the route found it.
  if (n == "ticket_answer") {
    r.body = {{"action", "retry"}};
    r.control_codes = {"ticket-closed"};
  }
  if (r.body.is_null() && route.method != "GET" && route.method != "DELETE") {
    r.body = json::object();
  }
  return r;
}

HttpResult Call(HttpClient& c, const std::string& method, const std::string& path,
                const json& body) {
  return c.Send(method, path, body.is_null() ? "" : body.dump(),
                body.is_null() ? "" : "application/json");
}

// Everything of a tenant a request could change, read by the operator.
bool HasRoute(const std::vector<api::RouteInfo>& routes, const std::string& method,
              const std::string& pattern) {
  for (const auto& r : routes) {
    if (r.method == method && r.pattern == pattern) return true;
  }
  return false;
}

bool NeedsOperatorToken(const api::RouteInfo& r) {
  return r.pattern.find("/operator-tokens/{") != std::string::npos;
}

// Whether the fixture tenant's own token may call `route`: it accepts a tenant scope. The
// others (server-wide routes) take the operator's.
bool TakesTenantToken(const api::RouteInfo& route) {
  for (const auto& s : route.scopes) {
    const auto& all = engine::TenantScopes();
    if (std::find(all.begin(), all.end(), s) != all.end()) return true;
  }
  return false;
}

void StripLastUse(json* list) {
  if (list->is_object() && (*list)["tokens"].is_array()) {
    for (auto& t : (*list)["tokens"]) t.erase("lastUsedAt");
  }
}

json Snapshot(HttpClient& op, const std::string& tenant,
              const std::vector<api::RouteInfo>& routes) {
  std::string base = "/v1/tenants/" + tenant;
  json s;
  auto get = [&](const char* key, const std::string& path) {
    auto r = op.Get(path);
    EXPECT_EQ(r.status, 200) << path << " -> " << r.body;
    s[key] = r.Json();
  };
  get("tenants", "/v1/tenants");
  get("queues", base + "/queues");
  get("topics", base + "/topics");
  get("topicEvents", base + "/topics/events/events");
  get("deadLetters", base + "/dead-letters?_pageSize=1000&_totalPagedResultsPolicy=EXACT");
  get("groups", base + "/failure-groups");
  get("stats", base + "/dead-letter-stats");
  get("jobs", base + "/redrive-jobs");
  // Which exports exist (their progress moves by itself).
  get("exports", base + "/exports");
  json export_ids = json::array();
  for (const auto& e : s["exports"]["exports"]) export_ids.push_back(e["id"]);
  s["exports"] = export_ids;
  get("tickets", base + "/tickets?_pageSize=1000");
  get("notifications", base + "/notifications");
  get("tokens", base + "/tokens");
  get("audit", base + "/audit?_pageSize=1000");
  // Server-wide state a tenant token must not reach either.
  if (HasRoute(routes, "GET", "/v1/operator-tokens")) get("operatorTokens", "/v1/operator-tokens");
  if (HasRoute(routes, "GET", "/v1/audit")) get("serverAudit", "/v1/audit?_pageSize=1000");
  // When a token was last used is bookkeeping of the refused requests themselves (they did
  // present the token), flushed on a timer: not a change to the tenant.
  StripLastUse(&s["tokens"]);
  if (s.contains("operatorTokens")) StripLastUse(&s["operatorTokens"]);
  return s;
}

// Fails, naming `what` and showing the change as a JSON patch, unless `tenant` still looks like
// `*before`; then takes the new state as the baseline, so the next call is judged on its own.
void ExpectUnchanged(HttpClient& op, const std::string& tenant,
                     const std::vector<api::RouteInfo>& routes, json* before,
                     const std::string& what) {
  json now = Snapshot(op, tenant, routes);
  if (now == *before) return;
  ADD_FAILURE() << what << ": " << Short(json::diff(*before, now).dump());
  *before = std::move(now);
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>();
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
  }
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_;
};

std::string ErrorMessage(const HttpResult& r) {
  json j = r.Json();
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "";
  return j["error"].value("message", "");
}

// An error answer that says nothing of the victim: exactly {"error": {"code", "message"}}, and
// none of the victim's secrets unless the request itself carried it.
void ExpectBareError(const HttpResult& r, long status, const std::string& code,
                     const std::string& request, const Fixture& victim,
                     const std::string& context) {
  EXPECT_EQ(r.status, status) << context << " -> " << Short(r.body);
  EXPECT_EQ(r.ErrorCode(), code) << context << " -> " << Short(r.body);
  json j = r.Json();
  ASSERT_TRUE(j.is_object() && j.size() == 1 && j.contains("error"))
      << context << " -> " << Short(r.body);
  EXPECT_EQ(j["error"].size(), 2u) << context << " -> " << Short(r.body);
  for (const auto& s : victim.secrets) {
    if (request.find(s) != std::string::npos) continue;
    EXPECT_EQ(r.body.find(s), std::string::npos)
        << context << " leaks '" << s << "': " << Short(r.body);
  }
}

TEST_F(IsolationTest, EveryRouteHidesATenantFromOtherTenantsAndInsufficientScopes) {
  const std::vector<api::RouteInfo> routes = RouteTable();
  ASSERT_GT(routes.size(), 30u);
  const auto& tenant_scopes = engine::TenantScopes();

  // Control: the owner of a fresh copy of the resources sends the walk's request and is served.
  int controls = 0;
  for (const auto& route : routes) {
    if (route.scopes.empty()) continue;
    std::string ctl = "ctl" + std::to_string(controls++);
    Fixture c =
        BuildFixture(server_->url(), *op_, ctl, HasParam(route, "job"), NeedsOperatorToken(route));
    std::string missing;
    std::string path = FillPattern(route, c, c.tenant, &missing);
    ASSERT_TRUE(missing.empty()) << route.method << " " << route.pattern << ": the walk cannot "
                                 << "fill {" << missing << "}; teach FillPattern about it";
    Recipe recipe = RecipeFor(route, c);
    HttpClient owner(server_->url(),
                     TakesTenantToken(route) ? c.full_token : server_->operator_token());
    auto r = Call(owner, route.method, path, recipe.body);
    bool proven = (r.status >= 200 && r.status < 300) ||
                  std::find(recipe.control_codes.begin(), recipe.control_codes.end(),
                            r.ErrorCode()) != recipe.control_codes.end();
    EXPECT_TRUE(proven) << "control " << route.method << " " << path << " " << recipe.body.dump()
                        << " -> " << r.status << " " << Short(r.body)
                        << "\n(add a recipe for route '" << route.name << "' in RecipeFor)";
  }

  bool operator_tokens = std::any_of(routes.begin(), routes.end(), NeedsOperatorToken);
  Fixture a = BuildFixture(server_->url(), *op_, "alpha", true, operator_tokens);
  CreateTenant(*op_, "beta");
  std::string beta_token = CreateToken(*op_, "beta", "beta-full");
  HttpClient beta(server_->url(), beta_token);
  CreateQueue(*op_, "beta", a.queue, {{"deadLetterQueue", a.dlq}});

  // alpha's tokens that each lack what a route needs: one per single scope, and one per route
  // with every tenant scope except those the route accepts.
  std::map<std::string, std::string> only_scope;
  for (const auto& s : tenant_scopes) {
    only_scope[s] = CreateToken(*op_, "alpha", "alpha-secret-label-only-" + Label(s), {s});
    a.secrets.push_back("alpha-secret-label-only-" + Label(s));
  }
  std::map<std::vector<std::string>, std::string> all_but;
  std::string revoked = CreateToken(*op_, "alpha", "alpha-secret-label-revoked");
  a.secrets.push_back("alpha-secret-label-revoked");
  const json alpha_tokens = op_->Get("/v1/tenants/alpha/tokens").Json()["tokens"];
  for (const auto& t : alpha_tokens) {
    if (t["label"] == "alpha-secret-label-revoked") {
      ASSERT_EQ(op_->Delete("/v1/tenants/alpha/tokens/" + t["id"].get<std::string>()).status, 204);
    }
    a.secrets.push_back(t["id"]);
  }
  for (const auto& route : routes) {
    std::vector<std::string> rest;
    for (const auto& s : tenant_scopes) {
      if (std::find(route.scopes.begin(), route.scopes.end(), s) == route.scopes.end()) {
        rest.push_back(s);
      }
    }
    if (!rest.empty() && !route.scopes.empty() && !all_but.count(rest)) {
      std::string label = "alpha-secret-label-all-but-" + std::to_string(all_but.size());
      all_but[rest] = CreateToken(*op_, "alpha", label, rest);
      a.secrets.push_back(label);
    }
  }
  for (const auto& [s, tok] : only_scope) a.secrets.push_back(tok);
  for (const auto& [s, tok] : all_but) a.secrets.push_back(tok);

  json before = Snapshot(*op_, "alpha", routes);
  int walked = 0, skipped = 0;
  for (const auto& route : routes) {
    if (route.scopes.empty()) {
      ++skipped;  // the probes: no token, no tenant, nothing to hide
      continue;
    }
    ++walked;
    std::string missing;
    std::string path = FillPattern(route, a, a.tenant, &missing);
    ASSERT_TRUE(missing.empty()) << route.pattern << ": cannot fill {" << missing << "}";
    Recipe recipe = RecipeFor(route, a);
    std::string request = route.method + " " + path + " " + recipe.body.dump();
    bool tenant_route = HasParam(route, "tenant");
    SCOPED_TRACE(request);

    // (a) Another tenant's token with every scope: the tenant does not exist for it. The answer
    // is the one a tenant that really does not exist gets, name aside.
    auto foreign = Call(beta, route.method, path, recipe.body);
    if (tenant_route) {
      ExpectBareError(foreign, 404, "tenant-not-found", request, a, "foreign token");
      std::string ghost_path = FillPattern(route, a, "ghost", &missing);
      auto ghost = Call(beta, route.method, ghost_path, recipe.body);
      EXPECT_EQ(ghost.status, foreign.status);
      std::string msg = ErrorMessage(foreign);
      std::string ghost_msg = ErrorMessage(ghost);
      for (size_t p; (p = msg.find("alpha")) != std::string::npos;) msg.replace(p, 5, "ghost");
      EXPECT_EQ(msg, ghost_msg) << "a foreign tenant must read exactly like a missing one";
    } else {
      ExpectBareError(foreign, 403, "forbidden", request, a, "tenant token on a server route");
    }

    // (b) alpha's own tokens lacking the scope: forbidden, and still nothing shown.
    for (const auto& s : tenant_scopes) {
      if (std::find(route.scopes.begin(), route.scopes.end(), s) != route.scopes.end()) continue;
      HttpClient c(server_->url(), only_scope[s]);
      ExpectBareError(Call(c, route.method, path, recipe.body), 403, "forbidden", request, a,
                      "token with only '" + s + "'");
    }
    std::vector<std::string> rest;
    for (const auto& s : tenant_scopes) {
      if (std::find(route.scopes.begin(), route.scopes.end(), s) == route.scopes.end()) {
        rest.push_back(s);
      }
    }
    if (!rest.empty()) {
      HttpClient c(server_->url(), all_but[rest]);
      ExpectBareError(Call(c, route.method, path, recipe.body), 403, "forbidden", request, a,
                      "token with every scope but the route's");
    }

    // (c) No token, a garbage one, a revoked one.
    for (const auto& [what, token] :
         std::vector<std::pair<std::string, std::string>>{{"no token", ""},
                                                          {"garbage token", "rdt_0123456789abcdef"},
                                                          {"revoked token", revoked}}) {
      HttpClient c(server_->url(), token);
      ExpectBareError(Call(c, route.method, path, recipe.body), 401, "unauthenticated", request, a,
                      what);
    }
    ExpectUnchanged(*op_, "alpha", routes, &before, "a refused request changed alpha");
  }
  std::cout << "walked " << walked << " routes (" << skipped << " need no token)\n";
  EXPECT_GT(walked, 30);
  // The probes, and a ticket's answer link, whose secret is its authority (tickets_test.cc).
  std::set<std::string> tokenless;
  for (const auto& route : routes) {
    if (route.scopes.empty()) tokenless.insert(route.method + " " + route.pattern);
  }
  EXPECT_EQ(tokenless,
            (std::set<std::string>{"GET /healthz", "GET /readyz", "GET /v1/ticket-links/{secret}",
                                   "POST /v1/ticket-links/{secret}"}));
  EXPECT_EQ(skipped, static_cast<int>(tokenless.size()));

  // (d) beta in its own tenant, naming alpha's ids (and alpha's queue names, which beta also
  // has): alpha's resources are not found there, and nothing of alpha's moves.
  std::string sent;  // beta may find what it sent itself (in its audit log, say)
  for (const auto& route : routes) {
    if (route.scopes.empty() || !HasParam(route, "tenant")) continue;
    if (op_->Get("/v1/tenants/beta/queues/" + a.queue).status == 404) {
      CreateQueue(*op_, "beta", a.queue, {{"deadLetterQueue", a.dlq}});
    }
    std::string missing;
    std::string path = FillPattern(route, a, "beta", &missing);
    Recipe recipe = RecipeFor(route, a);
    std::string request = route.method + " " + path + " " + recipe.body.dump();
    sent += request + "\n";
    SCOPED_TRACE("beta's tenant, alpha's ids: " + request);
    auto r = Call(beta, route.method, path, recipe.body);
    EXPECT_LT(r.status, 500) << Short(r.body);
    if (HasParam(route, "id") || HasParam(route, "job") || HasParam(route, "token")) {
      EXPECT_EQ(r.status, 404) << Short(r.body);
    }
    json j = r.Json();
    if (j.is_object() && j.contains("done")) {
      EXPECT_EQ(j["done"], 0) << Short(r.body);
    }
    if (j.is_object() && j.contains("results")) {
      EXPECT_EQ(j["succeeded"], 0) << Short(r.body);
    }
    for (const auto& s : a.secrets) {
      if (sent.find(s) != std::string::npos) continue;
      EXPECT_EQ(r.body.find(s), std::string::npos) << "leaks '" << s << "': " << Short(r.body);
    }
    ExpectUnchanged(*op_, "alpha", routes, &before, "beta changed alpha");
  }

  // alpha's lease was never touched: its receipt still holds the message.
  HttpClient alpha(server_->url(), a.full_token);
  auto ext = alpha.Post("/v1/tenants/alpha/queues/orders/extend",
                        {{"receipts", {a.receipt}}, {"visibilityTimeout", "1h"}});
  ASSERT_EQ(ext.status, 200) << ext.body;
  EXPECT_EQ(ext.Json()["succeeded"], 1) << ext.body;
}

TEST_F(IsolationTest, DeadLetterQueuesRefuseQueueRoutesButServeTheDeadLetterApi) {
  Fixture f = BuildFixture(server_->url(), *op_, "acme", false, false);
  HttpClient own(server_->url(), f.full_token);
  std::string dlq = "/v1/tenants/acme/queues/" + f.dlq;
  const std::vector<api::RouteInfo> routes = RouteTable();
  json before = Snapshot(*op_, "acme", routes);
  json receipt = {f.receipt};
  struct Case {
    std::string method, tail;
    json body;
  };
  std::vector<Case> cases = {
      {"POST", "/messages", {{"messages", {{{"body", "x"}}}}}},
      {"POST", "/receive", {{"maxMessages", 10}}},
      {"POST", "/receive", {{"maxMessages", 10}, {"wait", "1s"}}},
      {"POST", "/ack", {{"receipts", receipt}}},
      {"POST", "/ack", {{"receipts", {"1.aaaaaaaaaaaaaaaaaaaaaaaa"}}}},
      {"POST", "/nack", {{"nacks", {{{"receipt", f.receipt}}}}}},
      {"POST", "/nack", {{"nacks", {{{"receipt", f.receipt}, {"deadLetter", true}}}}}},
      {"POST", "/extend", {{"receipts", receipt}, {"visibilityTimeout", "1m"}}},
      {"PATCH", "", {{"attributes", {{"visibilityTimeout", "1m"}}}}},
      {"DELETE", "", nullptr},
  };
  for (const auto& c : cases) {
    auto r = Call(own, c.method, dlq + c.tail, c.body);
    EXPECT_EQ(r.status, 409) << c.method << " " << c.tail << " " << c.body << " -> " << r.body;
    EXPECT_EQ(r.ErrorCode(), "dead-letter-queue-read-only") << c.tail << " -> " << r.body;
  }
  // Nor can a dead-letter queue be the destination of a move.
  auto r = own.Post("/v1/tenants/acme/dead-letters/" + f.dead_letter_ids[0] + "/reroute",
                    {{"destination", f.dlq}});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.ErrorCode(), "dead-letter-queue-read-only");
  r = own.Post("/v1/tenants/acme/redrive-jobs",
               {{"deadLetterQueue", f.dlq}, {"destination", f.dlq}});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.ErrorCode(), "dead-letter-queue-read-only");
  ExpectUnchanged(*op_, "acme", routes, &before, "a refused call changed something");

  // The message leased from the standard queue is still held by its receipt.
  r = own.Post("/v1/tenants/acme/queues/orders/extend",
               {{"receipts", receipt}, {"visibilityTimeout", "1h"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["succeeded"], 1) << r.body;

  // The dead-letter API reads and acts on the same dead-letter queue.
  auto q = own.Get("/v1/tenants/acme/queues/" + f.dlq);
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.Json()["kind"], "dead-letter");
  EXPECT_EQ(q.Json()["depth"]["ready"], 3);
  auto list = own.Get("/v1/tenants/acme/dead-letters?queue=" + f.dlq);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.Json()["result"].size(), 3u);
  auto one = own.Get("/v1/tenants/acme/dead-letters/" + f.dead_letter_ids[0]);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Json()["deadLetterQueue"], f.dlq);
  EXPECT_EQ(one.Json()["cause"], "acme-secret-cause");
  auto restored = own.Post("/v1/tenants/acme/dead-letters/" + f.dead_letter_ids[0] + "/restore",
                           json::object());
  ASSERT_EQ(restored.status, 200) << restored.body;
  EXPECT_EQ(restored.Json()["done"], 1);
  auto back = own.Post("/v1/tenants/acme/queues/orders/receive", {{"maxMessages", 10}});
  ASSERT_EQ(back.status, 200) << back.body;
  bool found = false;
  const json messages = back.Json()["messages"];
  for (const auto& m : messages) found = found || m["id"] == f.dead_letter_ids[0];
  EXPECT_TRUE(found) << "the restored dead letter is back in its queue: " << back.body;
  EXPECT_EQ(own.Get("/v1/tenants/acme/queues/" + f.dlq).Json()["depth"]["ready"], 2);
}

}  // namespace
}  // namespace redrive::testing
