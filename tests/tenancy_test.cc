// Tenancy over HTTP against the real binary: token rotation with an overlap, expiry and
// revocation, operator tokens, per-tenant quotas answering 429 with Retry-After and storing
// nothing, usage counters across a restart, tenant deletion, and the audit of every
// administrative change. Times are real: overlaps are 0s or a couple of seconds, polled to a
// deadline.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

using Clock = std::chrono::steady_clock;

class TenancyTest : public ::testing::Test {
 protected:
  void SetUp() override { Boot(); }
  void TearDown() override {
    server_.reset();
    if (!kept_dir_.empty()) std::filesystem::remove_all(kept_dir_);
  }
  // `data_dir` empty: a fresh directory the server removes itself.
  void Boot(std::vector<std::string> args = {}, std::string data_dir = "") {
    server_ = std::make_unique<ServerProcess>(data_dir, std::move(args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
  }
  void BootWithTenant(std::vector<std::string> args = {}) {
    Boot(std::move(args));
    CreateTenant(*op_, "acme");
    admin_ = std::make_unique<HttpClient>(server_->url(), CreateToken(*op_, "acme", "admin"));
  }
  // A client with a fresh token of acme with these scopes.
  std::unique_ptr<HttpClient> As(const std::vector<std::string>& scopes) {
    return std::make_unique<HttpClient>(server_->url(), CreateToken(*op_, "acme", "app", scopes));
  }
  HttpResult Publish(HttpClient& c, const std::string& queue, std::vector<std::string> bodies) {
    json messages = json::array();
    for (auto& b : bodies) messages.push_back({{"body", b}});
    return c.Post("/v1/tenants/acme/queues/" + queue + "/messages", {{"messages", messages}});
  }
  json Tenant() {
    auto r = op_->Get("/v1/tenants/acme");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json();
  }
  std::vector<std::string> Actions(HttpClient& c, const std::string& path) {
    auto r = c.Get(path);
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> out;
    json entries = r.Json()["result"];
    for (const auto& e : entries) out.push_back(e["action"]);
    return out;
  }
  // Polls `check` until it holds or `deadline` passes.
  static bool Eventually(const std::function<bool()>& check, std::chrono::milliseconds deadline) {
    auto end = Clock::now() + deadline;
    while (Clock::now() < end) {
      if (check()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return check();
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_, admin_;
  std::string kept_dir_;
};

struct CliRun {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the `redrive` client with `args`; stdout and stderr captured.
CliRun RunCli(std::vector<std::string> args) {
  std::string dir = MakeTempDir();
  args.insert(args.begin(), RedriveBinary());
  pid_t pid = fork();
  if (pid == 0) {
    FILE* o = freopen((dir + "/out").c_str(), "w", stdout);
    FILE* e = freopen((dir + "/err").c_str(), "w", stderr);
    (void)o;
    (void)e;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(dir + "/out");
  r.err = Slurp(dir + "/err");
  std::filesystem::remove_all(dir);
  return r;
}

// The fields a token listing may have: never the secret, never its hash.
const std::set<std::string> kTokenFields = {"id",         "tenant",    "label",     "scopes",
                                            "state",      "createdAt", "expiresAt", "revokedAt",
                                            "lastUsedAt", "replacedBy"};

void ExpectNoSecrets(const json& tokens, const std::vector<std::string>& secrets) {
  for (const auto& t : tokens) {
    std::set<std::string> keys;
    for (auto it = t.begin(); it != t.end(); ++it) keys.insert(it.key());
    EXPECT_EQ(keys, kTokenFields) << t.dump();
  }
  for (const auto& s : secrets) {
    EXPECT_EQ(tokens.dump().find(s.substr(4)), std::string::npos) << "a secret in a listing";
  }
}

TEST_F(TenancyTest, RotationHandsOutANewSecretAndTheOldOneStopsAfterTheOverlap) {
  BootWithTenant();
  CreateQueue(*op_, "acme", "orders");
  auto created =
      admin_->Post("/v1/tenants/acme/tokens", {{"label", "producer"}, {"scopes", {"publish"}}});
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id = created.Json()["id"], secret = created.Json()["token"];
  HttpClient old_client(server_->url(), secret);
  ASSERT_EQ(Publish(old_client, "orders", {"a"}).status, 201);

  // A 2s overlap: both work at once, the old one stops within a few seconds, the new one stays.
  auto rotated = admin_->Post("/v1/tenants/acme/tokens/" + id + "/rotate", {{"overlap", "2s"}});
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  json r = rotated.Json();
  std::string new_id = r["id"], new_secret = r["token"];
  EXPECT_NE(new_secret, secret);
  EXPECT_EQ(r["label"], "producer");
  EXPECT_EQ(r["scopes"], json::array({"publish"}));
  EXPECT_EQ(r["replaces"]["id"], id);
  EXPECT_TRUE(r["replaces"]["expiresAt"].is_string());
  HttpClient new_client(server_->url(), new_secret);
  auto started = Clock::now();
  EXPECT_EQ(Publish(old_client, "orders", {"b"}).status, 201) << "inside the overlap";
  EXPECT_EQ(Publish(new_client, "orders", {"c"}).status, 201);
  ASSERT_TRUE(Eventually([&] { return Publish(old_client, "orders", {"x"}).status == 401; },
                         std::chrono::seconds(10)));
  EXPECT_GE(Clock::now() - started, std::chrono::milliseconds(1500)) << "not before the overlap";
  auto refused = Publish(old_client, "orders", {"x"});
  EXPECT_EQ(refused.ErrorCode(), "unauthenticated");
  EXPECT_EQ(refused.Header("www-authenticate"), "Bearer");
  EXPECT_EQ(Publish(new_client, "orders", {"d"}).status, 201);
  // The new token kept the scopes: no more than the old one had.
  EXPECT_EQ(new_client.Get("/v1/tenants/acme/tokens").status, 403);

  // Overlap 0s: the replaced token stops at once.
  auto now_rotated =
      admin_->Post("/v1/tenants/acme/tokens/" + new_id + "/rotate", {{"overlap", "0s"}});
  ASSERT_EQ(now_rotated.status, 201) << now_rotated.body;
  EXPECT_EQ(Publish(new_client, "orders", {"e"}).status, 401);
  HttpClient newest(server_->url(), now_rotated.Json()["token"]);
  EXPECT_EQ(Publish(newest, "orders", {"f"}).status, 201);

  auto list = admin_->Get("/v1/tenants/acme/tokens");
  ASSERT_EQ(list.status, 200);
  json tokens = list.Json()["tokens"];
  ExpectNoSecrets(tokens, {secret, new_secret, now_rotated.Json()["token"]});
  std::map<std::string, json> by_id;
  for (const auto& t : tokens) by_id[t["id"]] = t;
  EXPECT_EQ(by_id[id]["state"], "expired");
  EXPECT_EQ(by_id[id]["replacedBy"], new_id);
  EXPECT_EQ(by_id[new_id]["state"], "expired");
  EXPECT_EQ(by_id[now_rotated.Json()["id"]]["state"], "active");
  EXPECT_TRUE(by_id[now_rotated.Json()["id"]]["expiresAt"].is_null());
  // An expired token is not rotated again.
  auto again = admin_->Post("/v1/tenants/acme/tokens/" + id + "/rotate", {{"overlap", "0s"}});
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.ErrorCode(), "token-not-found");
}

TEST_F(TenancyTest, ExpiredAndRevokedTokensAreRefusedAlike) {
  BootWithTenant();
  auto created = admin_->Post("/v1/tenants/acme/tokens", {{"label", "ci"}, {"expiresIn", "1s"}});
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_TRUE(created.Json()["expiresAt"].is_string());
  HttpClient short_lived(server_->url(), created.Json()["token"]);
  ASSERT_TRUE(Eventually([&] { return short_lived.Get("/v1/tenants/acme/queues").status == 401; },
                         std::chrono::seconds(10)));

  auto other = admin_->Post("/v1/tenants/acme/tokens", {{"label", "ci"}});
  HttpClient revoked(server_->url(), other.Json()["token"]);
  ASSERT_EQ(revoked.Get("/v1/tenants/acme/queues").status, 200);
  ASSERT_EQ(admin_->Delete("/v1/tenants/acme/tokens/" + std::string(other.Json()["id"])).status,
            204);
  auto a = short_lived.Get("/v1/tenants/acme/queues");
  auto b = revoked.Get("/v1/tenants/acme/queues");
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(b.status, 401);
  EXPECT_EQ(a.ErrorCode(), b.ErrorCode());
  EXPECT_EQ(a.Json()["error"]["message"], b.Json()["error"]["message"]);
  // Last use is listed for the tokens that were used.
  json tokens = admin_->Get("/v1/tenants/acme/tokens").Json()["tokens"];
  for (const auto& t : tokens) {
    if (t["id"] == other.Json()["id"]) EXPECT_TRUE(t["lastUsedAt"].is_string()) << t.dump();
  }
}

TEST_F(TenancyTest, BadTokenRequestsAreRefusedAndChangeNothing) {
  BootWithTenant();
  auto t = admin_->Post("/v1/tenants/acme/tokens", {{"label", "ci"}});
  std::string id = t.Json()["id"];
  // The tokens as listed, less the last use of the admin token that asks.
  auto tokens = [&] {
    json list = admin_->Get("/v1/tenants/acme/tokens").Json()["tokens"];
    for (auto& tok : list) tok.erase("lastUsedAt");
    return list;
  };
  json before = tokens();
  struct Case {
    json body;
    std::string code;
  };
  for (const Case& c : std::vector<Case>{{{{"overlap", "soon"}}, "invalid-duration"},
                                         {{{"overlap", "1.5h"}}, "invalid-duration"},
                                         {{{"overlap", -5}}, "invalid-argument"},
                                         {{{"overlap", "31d"}}, "invalid-argument"},
                                         {{{"expiresIn", "0s"}}, "invalid-argument"},
                                         {{{"overlap", "1h"}, {"label", "x"}}, "unknown-field"}}) {
    auto r = admin_->Post("/v1/tenants/acme/tokens/" + id + "/rotate", c.body);
    EXPECT_EQ(r.status, 400) << c.body.dump() << " " << r.body;
    EXPECT_EQ(r.ErrorCode(), c.code) << c.body.dump();
  }
  auto bad_life = admin_->Post("/v1/tenants/acme/tokens", {{"label", "x"}, {"expiresIn", "0s"}});
  EXPECT_EQ(bad_life.status, 400);
  EXPECT_EQ(bad_life.ErrorCode(), "invalid-argument");
  auto unknown = admin_->Post("/v1/tenants/acme/tokens/tok_nope/rotate", json::object());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.ErrorCode(), "token-not-found");
  EXPECT_EQ(tokens(), before) << "nothing changed";
  // No body at all means the default overlap (24h): the old token keeps working.
  HttpClient old_client(server_->url(), t.Json()["token"]);
  auto plain = admin_->Send("POST", "/v1/tenants/acme/tokens/" + id + "/rotate", "", "");
  ASSERT_EQ(plain.status, 201) << plain.body;
  EXPECT_EQ(old_client.Get("/v1/tenants/acme/queues").status, 200);
}

TEST_F(TenancyTest, OperatorTokensAreManagedAndTheLastOneStays) {
  BootWithTenant();
  auto list = op_->Get("/v1/operator-tokens");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(list.Json()["tokens"].size(), 1u);
  std::string first = list.Json()["tokens"][0]["id"];
  ExpectNoSecrets(list.Json()["tokens"], {server_->operator_token()});

  auto last = op_->Delete("/v1/operator-tokens/" + first);
  EXPECT_EQ(last.status, 409);
  EXPECT_EQ(last.ErrorCode(), "last-operator-token");
  EXPECT_EQ(op_->Get("/v1/operator-tokens").status, 200) << "still works";

  auto made = op_->Post("/v1/operator-tokens", {{"label", "backup"}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Json()["scopes"], json::array({"operator"}));
  EXPECT_TRUE(made.Json()["tenant"].is_null());
  HttpClient backup(server_->url(), made.Json()["token"]);
  EXPECT_EQ(backup.Get("/v1/tenants").status, 200);
  ASSERT_EQ(backup.Delete("/v1/operator-tokens/" + first).status, 204);
  EXPECT_EQ(op_->Get("/v1/tenants").status, 401);

  auto rotated = backup.Post("/v1/operator-tokens/" + std::string(made.Json()["id"]) + "/rotate",
                             {{"overlap", "0s"}});
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  EXPECT_EQ(backup.Get("/v1/tenants").status, 401);
  HttpClient current(server_->url(), rotated.Json()["token"]);
  EXPECT_EQ(current.Get("/v1/tenants").status, 200);
  ExpectNoSecrets(current.Get("/v1/operator-tokens").Json()["tokens"],
                  {made.Json()["token"], rotated.Json()["token"]});

  // Tenant tokens, even admin ones, have no business here.
  EXPECT_EQ(admin_->Get("/v1/operator-tokens").status, 403);
  EXPECT_EQ(admin_->Post("/v1/operator-tokens", {{"label", "x"}}).status, 403);
  EXPECT_EQ(admin_->Get("/v1/audit").status, 403);
  auto bad = current.Post("/v1/operator-tokens", {{"label", "x"}, {"scopes", {"admin"}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorCode(), "unknown-field");
}

TEST_F(TenancyTest, FirstStartWritesTheOperatorTokenForItsOwnerOnly) {
  Boot();
  struct stat st {};
  ASSERT_EQ(stat((server_->data_dir() + "/operator.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_NE(server_->log().find("operator.token"), std::string::npos) << server_->log();
}

TEST_F(TenancyTest, MessageAndByteQuotasAnswer429AndStoreNothing) {
  BootWithTenant();
  CreateQueue(*op_, "acme", "orders");
  auto app = As({"publish", "consume"});
  auto patch = op_->Patch("/v1/tenants/acme", {{"quotas", {{"maxMessages", 3}}}});
  ASSERT_EQ(patch.status, 200) << patch.body;
  EXPECT_EQ(patch.Json()["quotas"]["maxMessages"], 3);
  EXPECT_EQ(patch.Json()["quotaOverrides"], (json{{"maxMessages", 3}}));

  ASSERT_EQ(Publish(*app, "orders", {"a", "b"}).status, 201);
  auto over = Publish(*app, "orders", {"c", "d"});
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_EQ(over.ErrorCode(), "quota-exceeded");
  EXPECT_NE(over.Json()["error"]["message"].get<std::string>().find("maxMessages"),
            std::string::npos);
  EXPECT_EQ(over.Header("retry-after"), "5");
  EXPECT_EQ(app->Get("/v1/tenants/acme/queues/orders").Json()["depth"]["ready"], 2)
      << "none of the refused batch";
  ASSERT_EQ(Publish(*app, "orders", {"c"}).status, 201);

  // Bytes: body bytes, of messages and dead letters alike.
  ASSERT_EQ(
      op_->Patch("/v1/tenants/acme", {{"quotas", {{"maxMessages", nullptr}, {"maxBytes", 5}}}})
          .status,
      200);
  auto too_big = Publish(*app, "orders", {"xyz"});
  EXPECT_EQ(too_big.status, 429);
  EXPECT_NE(too_big.Json()["error"]["message"].get<std::string>().find("maxBytes"),
            std::string::npos);
  ASSERT_EQ(Publish(*app, "orders", {"xy"}).status, 201);
  json usage = Tenant()["usage"];
  EXPECT_EQ(usage["messages"], 4);
  EXPECT_EQ(usage["bytes"], 5);
}

TEST_F(TenancyTest, QueueQuotaComesFromTheServerDefaultsAndCreatesNothingOver) {
  BootWithTenant({"--quota", "max_queues=1"});
  json t = Tenant();
  EXPECT_EQ(t["quotas"]["maxQueues"], 1);
  EXPECT_EQ(t["quotaOverrides"], json::object());
  CreateQueue(*op_, "acme", "one");
  auto two = admin_->Post("/v1/tenants/acme/queues",
                          {{"name", "two"}, {"attributes", {{"deadLetterQueue", "two-dlq"}}}});
  EXPECT_EQ(two.status, 429) << two.body;
  EXPECT_EQ(two.ErrorCode(), "quota-exceeded");
  EXPECT_EQ(two.Header("retry-after"), "5");
  EXPECT_EQ(admin_->Get("/v1/tenants/acme/queues/two-dlq").status, 404) << "no half-made queue";
  // An override lifts it for this tenant only.
  ASSERT_EQ(op_->Patch("/v1/tenants/acme", {{"quotas", {{"maxQueues", 0}}}}).status, 200);
  EXPECT_EQ(admin_->Post("/v1/tenants/acme/queues", {{"name", "two"}}).status, 201);
}

TEST_F(TenancyTest, RequestRateAnswers429WithRetryAfterAndSparesOperators) {
  BootWithTenant();
  ASSERT_EQ(op_->Patch("/v1/tenants/acme", {{"quotas", {{"requestRate", 1}, {"requestBurst", 2}}}})
                .status,
            200);
  auto app = As({"publish"});
  int admitted = 0;
  HttpResult limited;
  for (int i = 0; i < 10; ++i) {
    auto r = app->Get("/v1/tenants/acme/queues");
    if (r.status == 429) {
      limited = r;
      break;
    }
    ASSERT_EQ(r.status, 200) << r.body;
    ++admitted;
  }
  ASSERT_EQ(limited.status, 429) << "ten requests at once passed a rate of 1/s, burst 2";
  EXPECT_LE(admitted, 3);
  EXPECT_GE(admitted, 2);
  EXPECT_EQ(limited.ErrorCode(), "rate-limited");
  EXPECT_EQ(limited.Header("retry-after"), "1");
  // Operators are not limited, on the same tenant's routes.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(op_->Get("/v1/tenants/acme/queues").status, 200);
  // After Retry-After (1s), the tenant is admitted again: asking meanwhile spends no tokens.
  EXPECT_TRUE(Eventually([&] { return app->Get("/v1/tenants/acme/queues").status == 200; },
                         std::chrono::milliseconds(3000)))
      << "not admitted again within Retry-After and a margin";
}

TEST_F(TenancyTest, BadQuotaRequestsAre400AndChangeNothing) {
  BootWithTenant();
  ASSERT_EQ(op_->Patch("/v1/tenants/acme", {{"quotas", {{"maxQueues", 7}}}}).status, 200);
  std::string before = Tenant().dump();
  struct Case {
    json body;
    std::string code;
  };
  for (const Case& c :
       std::vector<Case>{{{{"quotas", {{"maxQueue", 1}}}}, "unknown-field"},
                         {{{"quotas", {{"maxQueues", -1}}}}, "invalid-argument"},
                         {{{"quotas", {{"maxQueues", "10"}}}}, "invalid-argument"},
                         {{{"quotas", {{"maxBytes", 1.5}}}}, "invalid-argument"},
                         {{{"quotas", {{"requestRate", 5'000'000'000}}}}, "invalid-argument"},
                         {{{"quotas", 5}}, "invalid-argument"},
                         {{{"quotas", {{"maxQueues", 1}}}, {"name", "x"}}, "unknown-field"}}) {
    auto r = op_->Patch("/v1/tenants/acme", c.body);
    EXPECT_EQ(r.status, 400) << c.body.dump() << " " << r.body;
    EXPECT_EQ(r.ErrorCode(), c.code) << c.body.dump();
  }
  EXPECT_EQ(Tenant().dump(), before);
  // Only operators set quotas; a tenant's admin reads them.
  EXPECT_EQ(admin_->Patch("/v1/tenants/acme", {{"quotas", {{"maxQueues", 100}}}}).status, 403);
  auto mine = admin_->Get("/v1/tenants/acme");
  ASSERT_EQ(mine.status, 200);
  EXPECT_EQ(mine.Json()["quotas"]["maxQueues"], 7);
  auto bad_create = op_->Post("/v1/tenants", {{"name", "beta"}, {"quotas", {{"maxQueues", -2}}}});
  EXPECT_EQ(bad_create.status, 400);
  EXPECT_EQ(op_->Get("/v1/tenants/beta").status, 404);
  auto with_quotas = op_->Post("/v1/tenants", {{"name", "beta"}, {"quotas", {{"maxQueues", 2}}}});
  ASSERT_EQ(with_quotas.status, 201) << with_quotas.body;
  EXPECT_EQ(op_->Get("/v1/tenants/beta").Json()["quotas"]["maxQueues"], 2);
}

TEST_F(TenancyTest, UsageCountersFollowPublishAckDeadLetterPurgeAndARestart) {
  kept_dir_ = MakeTempDir();
  Boot({}, kept_dir_);
  CreateTenant(*op_, "acme");
  CreateQueue(*op_, "acme", "orders", {{"retryPolicy", {{"maxDeliveries", 1}}}});
  auto app = As({"publish", "consume", "dlq:write"});
  auto usage = [&] { return Tenant()["usage"]; };
  ASSERT_EQ(Publish(*app, "orders", {"aaaa", "bb", "c"}).status, 201);
  EXPECT_EQ(usage()["messages"], 3);
  EXPECT_EQ(usage()["bytes"], 7);
  EXPECT_EQ(usage()["queues"], 1);
  auto got = app->Post("/v1/tenants/acme/queues/orders/receive", {{"maxMessages", 2}});
  json m = got.Json()["messages"];
  ASSERT_EQ(m.size(), 2u);
  ASSERT_EQ(app->Post("/v1/tenants/acme/queues/orders/ack", {{"receipts", {m[0]["receipt"]}}})
                .Json()["succeeded"],
            1);
  EXPECT_EQ(usage()["messages"], 2);
  EXPECT_EQ(usage()["bytes"], 3);
  ASSERT_EQ(app->Post("/v1/tenants/acme/queues/orders/nack",
                      {{"nacks", {{{"receipt", m[1]["receipt"]}, {"error", "boom"}}}}})
                .Json()["succeeded"],
            1);
  EXPECT_EQ(usage()["messages"], 2) << "a dead letter still counts";

  ASSERT_EQ(server_->Stop(), 0);
  Boot({}, kept_dir_);
  EXPECT_EQ(usage()["messages"], 2);
  EXPECT_EQ(usage()["bytes"], 3);
  auto purge = op_->Post("/v1/tenants/acme/dead-letter-queues/dead-letters/purge",
                         {{"confirm", "dead-letters"}});
  ASSERT_EQ(purge.status, 200) << purge.body;
  EXPECT_EQ(usage()["messages"], 1);
  EXPECT_EQ(usage()["bytes"], 1);
  ASSERT_EQ(op_->Delete("/v1/tenants/acme/queues/orders").status, 204);
  EXPECT_EQ(usage()["messages"], 0);
  EXPECT_EQ(usage()["queues"], 0);
}

TEST_F(TenancyTest, DeletingATenantNeedsForceWhileItHasQueues) {
  BootWithTenant();
  CreateQueue(*op_, "acme", "orders");
  ASSERT_EQ(Publish(*admin_, "orders", {"a"}).status, 201);
  auto refused = op_->Delete("/v1/tenants/acme");
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.ErrorCode(), "tenant-not-empty");
  EXPECT_EQ(admin_->Get("/v1/tenants/acme/queues/orders").Json()["depth"]["ready"], 1);
  EXPECT_EQ(op_->Delete("/v1/tenants/acme?force=maybe").ErrorCode(), "invalid-query");
  EXPECT_EQ(admin_->Delete("/v1/tenants/acme?force=true").status, 403) << "operators only";

  ASSERT_EQ(op_->Delete("/v1/tenants/acme?force=true").status, 204);
  EXPECT_EQ(admin_->Get("/v1/tenants/acme/queues").status, 401) << "its tokens went with it";
  EXPECT_EQ(op_->Get("/v1/tenants/acme").status, 404);
  EXPECT_EQ(op_->Delete("/v1/tenants/acme").status, 404);
  // An empty tenant goes without force; the name can be used again, from scratch.
  CreateTenant(*op_, "acme");
  EXPECT_EQ(Tenant()["usage"]["messages"], 0);
  EXPECT_EQ(op_->Get("/v1/tenants/acme/queues").Json()["queues"].size(), 0u);
  ASSERT_EQ(op_->Delete("/v1/tenants/acme").status, 204);

  auto audit =
      op_->Get("/v1/audit?_queryFilter=" + std::string("%2Faction%20eq%20%22tenant.delete%22"));
  ASSERT_EQ(audit.status, 200) << audit.body;
  json entries = audit.Json()["result"];
  ASSERT_EQ(entries.size(), 2u) << audit.body;
  EXPECT_EQ(entries[0]["detail"]["tenant"], "acme");
  EXPECT_EQ(entries[0]["detail"]["force"], true);
  EXPECT_EQ(entries[0]["detail"]["removed"]["messages"], 1);
  EXPECT_EQ(entries[1]["detail"]["force"], false);
}

TEST_F(TenancyTest, EveryAdministrativeChangeIsAudited) {
  BootWithTenant();
  auto t = admin_->Post("/v1/tenants/acme/tokens", {{"label", "ci"}, {"scopes", {"publish"}}});
  std::string id = t.Json()["id"];
  auto r = admin_->Post("/v1/tenants/acme/tokens/" + id + "/rotate", {{"overlap", "0s"}});
  ASSERT_EQ(admin_->Delete("/v1/tenants/acme/tokens/" + std::string(r.Json()["id"])).status, 204);
  ASSERT_EQ(admin_->Post("/v1/tenants/acme/queues", {{"name", "orders"}}).status, 201);
  ASSERT_EQ(admin_
                ->Patch("/v1/tenants/acme/queues/orders",
                        {{"attributes", {{"visibilityTimeout", "45s"}}}})
                .status,
            200);
  ASSERT_EQ(admin_->Delete("/v1/tenants/acme/queues/orders").status, 204);
  ASSERT_EQ(op_->Patch("/v1/tenants/acme", {{"quotas", {{"maxQueues", 4}}}}).status, 200);
  auto made = op_->Post("/v1/operator-tokens", {{"label", "backup"}});
  ASSERT_EQ(op_->Delete("/v1/operator-tokens/" + std::string(made.Json()["id"])).status, 204);

  // The tenant's log: what happened inside it (the admin token itself was made by the operator).
  EXPECT_EQ(
      Actions(*admin_, "/v1/tenants/acme/audit"),
      (std::vector<std::string>{"token.create", "token.create", "token.rotate", "token.revoke",
                                "queue.create", "queue.update", "queue.delete", "tenant.quotas"}));
  auto log = admin_->Get("/v1/tenants/acme/audit").Json()["result"];
  std::string admin_id;
  json tokens = admin_->Get("/v1/tenants/acme/tokens").Json()["tokens"];
  for (const auto& tok : tokens) {
    if (tok["label"] == "admin") admin_id = tok["id"];
  }
  EXPECT_EQ(log[1]["actor"], admin_id);
  EXPECT_EQ(log[1]["detail"]["token"], id);
  EXPECT_EQ(log[5]["detail"]["changed"]["/visibilityTimeout"]["to"], "45s");
  EXPECT_TRUE(log[0]["at"].is_string());
  // The server's log: tenants, quotas and operator tokens, for operators only.
  EXPECT_EQ(Actions(*op_, "/v1/audit"),
            (std::vector<std::string>{"operator-token.create", "tenant.create", "tenant.quotas",
                                      "operator-token.create", "operator-token.revoke"}));
  std::string all = op_->Get("/v1/audit").body + admin_->Get("/v1/tenants/acme/audit").body;
  for (const std::string secret :
       {t.Json()["token"].get<std::string>(), r.Json()["token"].get<std::string>(),
        made.Json()["token"].get<std::string>(), server_->operator_token()}) {
    EXPECT_EQ(all.find(secret.substr(4)), std::string::npos) << "a secret in the audit log";
  }
  EXPECT_EQ(op_->Get("/v1/audit?_pageSize=0").ErrorCode(), "invalid-query");
  EXPECT_EQ(op_->Get("/v1/audit?page=2").ErrorCode(), "unknown-field");
}

}  // namespace
}  // namespace redrive::testing

namespace redrive::testing {
namespace {

TEST_F(TenancyTest, TheCliRotatesTokensAndManagesQuotasAndTenants) {
  BootWithTenant();
  CreateQueue(*op_, "acme", "orders");
  std::vector<std::string> as_operator = {
      "--url", server_->url(), "--token", server_->operator_token(), "--tenant", "acme"};
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.end(), as_operator.begin(), as_operator.end());
    return RunCli(args);
  };
  auto created = cli({"token", "create", "--label", "worker", "--scope", "publish"});
  ASSERT_EQ(created.code, 0) << created.err;
  std::string id = created.out.substr(created.out.find("tok_"), 30);

  auto rotated = cli({"token", "rotate", id, "--overlap", "0s"});
  ASSERT_EQ(rotated.code, 0) << rotated.err;
  EXPECT_NE(rotated.out.find("replaces:   " + id + ", accepted until "), std::string::npos)
      << rotated.out;
  EXPECT_NE(rotated.out.find("token:      rdt_"), std::string::npos) << rotated.out;
  auto listed = cli({"token", "ls"});
  ASSERT_EQ(listed.code, 0) << listed.err;
  EXPECT_NE(listed.out.find(id), std::string::npos);
  EXPECT_NE(listed.out.find("expired"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("rdt_"), std::string::npos) << "no secret in a listing";
  auto bad_overlap = cli({"token", "rotate", id, "--overlap", "soon"});
  EXPECT_EQ(bad_overlap.code, 2) << bad_overlap.err;

  auto set = cli({"tenant", "set-quota", "acme", "--max-messages", "10", "--request-rate", "50"});
  ASSERT_EQ(set.code, 0) << set.err;
  EXPECT_NE(set.out.find("max messages:  10 (tenant), using 0"), std::string::npos) << set.out;
  EXPECT_NE(set.out.find("max queues:    unlimited (default), using 1"), std::string::npos)
      << set.out;
  auto unset = cli({"tenant", "set-quota", "acme", "--unset", "requestRate"});
  ASSERT_EQ(unset.code, 0) << unset.err;
  EXPECT_EQ(Tenant()["quotaOverrides"], (json{{"maxMessages", 10}}));
  EXPECT_EQ(cli({"tenant", "set-quota", "acme"}).code, 2);
  EXPECT_EQ(cli({"tenant", "set-quota", "acme", "--max-bytes", "-1"}).code, 2);
  EXPECT_EQ(Tenant()["quotaOverrides"], (json{{"maxMessages", 10}})) << "nothing changed";

  auto ops = cli({"operator-token", "ls"});
  ASSERT_EQ(ops.code, 0) << ops.err;
  EXPECT_NE(ops.out.find("operator"), std::string::npos);
  auto server_log = cli({"audit", "ls", "--server"});
  ASSERT_EQ(server_log.code, 0) << server_log.err;
  EXPECT_NE(server_log.out.find("tenant.quotas"), std::string::npos) << server_log.out;

  auto refused = cli({"tenant", "rm", "acme"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("tenant-not-empty"), std::string::npos) << refused.err;
  auto removed = cli({"tenant", "rm", "acme", "--force"});
  ASSERT_EQ(removed.code, 0) << removed.err;
  EXPECT_EQ(removed.out, "deleted tenant acme\n");
  EXPECT_EQ(op_->Get("/v1/tenants/acme").status, 404);
}

}  // namespace
}  // namespace redrive::testing
