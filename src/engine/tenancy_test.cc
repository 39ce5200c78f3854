// Tenancy in the engine, over a real SQLite store with a manual clock: token expiry and
// rotation overlaps to the millisecond, the last operator token, quotas refusing whole batches,
// usage counters through every path and a restart, the request-rate bucket, tenant deletion,
// and the audit of every administrative change.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/engine.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

class TenancyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/tenancy-" + std::to_string(getpid()) + "-" +
           std::to_string(counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
    admin_ = Principal{"tok_admin", "acme", {kScopeAdmin}};
    operator_ = Principal{"tok_operator", "", {kScopeOperator}};
    ASSERT_TRUE(engine_->tenancy().CreateTenant(operator_, "acme").ok());
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    store_ = store::OpenStore(dir_ + "/db").value();
    engine_ = std::make_unique<Engine>(*store_, clock_, random_, options_);
  }
  // A restart: a new engine (empty caches) over the reopened store.
  void Restart() {
    engine_.reset();
    store_.reset();
    Open();
  }
  QueueConfig Config(int max_deliveries = 1) {
    QueueConfig c;
    c.retry.max_deliveries = max_deliveries;
    c.retry.backoff = Backoff{1000, 2.0, 60'000, 0.0};
    return c;
  }
  Status Publish(const std::string& queue, std::vector<std::string> bodies) {
    std::vector<NewMessage> batch;
    for (auto& b : bodies) {
      NewMessage m;
      m.body = std::move(b);
      batch.push_back(std::move(m));
    }
    return engine_->messages().Publish("acme", queue, std::move(batch)).status();
  }
  store::TenantUsage Usage() { return engine_->tenancy().GetTenant("acme").value().usage; }
  std::vector<std::string> Actions(const std::string& tenant) {
    auto page = tenant.empty() ? engine_->tenancy().QueryServerAudit(AuditQuery{})
                               : engine_->dead_letters().QueryAudit(tenant, AuditQuery{});
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::vector<std::string> out;
    if (page.ok()) {
      for (const auto& e : page->items) out.push_back(e["action"]);
    }
    return out;
  }
  std::vector<json> Entries(const std::string& tenant) {
    auto page = tenant.empty() ? engine_->tenancy().QueryServerAudit(AuditQuery{})
                               : engine_->dead_letters().QueryAudit(tenant, AuditQuery{});
    return page.ok() ? page->items : std::vector<json>{};
  }

  static inline int counter_ = 0;
  std::string dir_;
  ManualClock clock_;
  SeededRandom random_{7};
  EngineOptions options_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Engine> engine_;
  Principal admin_, operator_;
};

TEST_F(TenancyTest, RotationKeepsTheOldTokenExactlyUntilTheOverlapEnds) {
  auto old = engine_->tenancy().CreateToken(admin_, "acme", "worker", {kScopePublish}).value();
  ASSERT_TRUE(engine_->tenancy().Authenticate(old.secret).ok());
  auto fresh = engine_->tenancy().RotateToken(admin_, "acme", old.info.id, 3'600'000).value();
  EXPECT_NE(fresh.secret, old.secret);
  EXPECT_EQ(fresh.info.label, "worker");
  EXPECT_EQ(fresh.info.scopes, std::vector<std::string>{kScopePublish});
  EXPECT_EQ(fresh.replaces, old.info.id);
  EXPECT_EQ(fresh.replaces_until, clock_.Now() + 3'600'000);

  clock_.Advance(3'600'000 - 1);
  ASSERT_TRUE(engine_->tenancy().Authenticate(old.secret).ok()) << "inside the overlap";
  clock_.Advance(1);
  // Cached a millisecond ago, and still refused: the expiry is exact.
  EXPECT_EQ(engine_->tenancy().Authenticate(old.secret).status().code(),
            ErrorCode::kUnauthenticated);
  auto who = engine_->tenancy().Authenticate(fresh.secret);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->tenant, "acme");
  EXPECT_EQ(who->scopes, std::vector<std::string>{kScopePublish});

  auto list = engine_->tenancy().ListTokens("acme").value();
  ASSERT_EQ(list.size(), 2u);
  if (list[0].id != old.info.id) std::swap(list[0], list[1]);  // created in the same ms
  EXPECT_EQ(list[0].id, old.info.id);
  EXPECT_EQ(list[0].state, "expired");
  EXPECT_EQ(list[0].replaced_by, fresh.info.id);
  EXPECT_EQ(list[1].id, fresh.info.id);
  EXPECT_EQ(list[1].state, "active");
  // An expired token cannot be rotated (or resurrected).
  EXPECT_EQ(engine_->tenancy().RotateToken(admin_, "acme", old.info.id, 0).status().code(),
            ErrorCode::kTokenNotFound);
}

TEST_F(TenancyTest, ZeroOverlapStopsTheOldTokenAtOnce) {
  auto old = engine_->tenancy().CreateToken(admin_, "acme", "worker", {}).value();
  ASSERT_TRUE(engine_->tenancy().Authenticate(old.secret).ok());
  auto fresh = engine_->tenancy().RotateToken(admin_, "acme", old.info.id, 0).value();
  EXPECT_EQ(engine_->tenancy().Authenticate(old.secret).status().code(),
            ErrorCode::kUnauthenticated);
  EXPECT_TRUE(engine_->tenancy().Authenticate(fresh.secret).ok());
}

TEST_F(TenancyTest, BadRotationsAndLifetimesChangeNothing) {
  auto t = engine_->tenancy().CreateToken(admin_, "acme", "worker", {}).value();
  EXPECT_EQ(engine_->tenancy().RotateToken(admin_, "acme", t.info.id, -1).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine_->tenancy()
                .RotateToken(admin_, "acme", t.info.id, kMaxRotationOverlap + 1)
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine_->tenancy().RotateToken(admin_, "acme", "tok_nope", 0).status().code(),
            ErrorCode::kTokenNotFound);
  EXPECT_EQ(engine_->tenancy().CreateToken(admin_, "acme", "x", {}, 999).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine_->tenancy()
                .CreateToken(admin_, "acme", "x", {}, kMaxTokenLifetime + 1)
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  auto list = engine_->tenancy().ListTokens("acme").value();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].expires_at, 0);
  EXPECT_TRUE(list[0].replaced_by.empty());
}

TEST_F(TenancyTest, ATokenWithALifetimeIsRefusedFromItsExpiry) {
  auto t = engine_->tenancy().CreateToken(admin_, "acme", "ci", {}, 10'000).value();
  EXPECT_EQ(t.info.expires_at, clock_.Now() + 10'000);
  clock_.Advance(9'999);
  EXPECT_TRUE(engine_->tenancy().Authenticate(t.secret).ok());
  clock_.Advance(1);
  EXPECT_EQ(engine_->tenancy().Authenticate(t.secret).status().code(), ErrorCode::kUnauthenticated);
}

TEST_F(TenancyTest, RevocationIsImmediateEvenForACachedToken) {
  auto t = engine_->tenancy().CreateToken(admin_, "acme", "ci", {}).value();
  ASSERT_TRUE(engine_->tenancy().Authenticate(t.secret).ok());
  ASSERT_TRUE(engine_->tenancy().RevokeToken(admin_, "acme", t.info.id).ok());
  EXPECT_EQ(engine_->tenancy().Authenticate(t.secret).status().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(engine_->tenancy().RevokeToken(admin_, "acme", t.info.id).code(),
            ErrorCode::kTokenNotFound);
  EXPECT_EQ(engine_->tenancy().ListTokens("acme").value()[0].state, "revoked");
}

TEST_F(TenancyTest, LastUseIsRecordedAndSurvivesARestart) {
  auto t = engine_->tenancy().CreateToken(admin_, "acme", "ci", {}).value();
  EXPECT_EQ(engine_->tenancy().ListTokens("acme").value()[0].last_used_at, 0);
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->tenancy().Authenticate(t.secret).ok());
  TimeMs used = clock_.Now();
  EXPECT_EQ(engine_->tenancy().ListTokens("acme").value()[0].last_used_at, used)
      << "pending, not lost";
  engine_->Start();
  engine_->Stop();  // flushes what is pending
  Restart();
  EXPECT_EQ(engine_->tenancy().ListTokens("acme").value()[0].last_used_at, used);
}

TEST_F(TenancyTest, TheLastActiveOperatorTokenStays) {
  auto first = engine_->tenancy().CreateOperatorToken(operator_, "first").value();
  EXPECT_EQ(first.info.scopes, std::vector<std::string>{kScopeOperator});
  EXPECT_EQ(engine_->tenancy().RevokeOperatorToken(operator_, first.info.id).code(),
            ErrorCode::kLastOperatorToken);
  EXPECT_TRUE(engine_->tenancy().Authenticate(first.secret).ok());
  // A rotation keeps one active at every moment; then the old one may go.
  auto second = engine_->tenancy().RotateOperatorToken(operator_, first.info.id, 60'000).value();
  EXPECT_TRUE(engine_->tenancy().Authenticate(second.secret).ok());
  ASSERT_TRUE(engine_->tenancy().RevokeOperatorToken(operator_, first.info.id).ok());
  EXPECT_EQ(engine_->tenancy().Authenticate(first.secret).status().code(),
            ErrorCode::kUnauthenticated);
  EXPECT_EQ(engine_->tenancy().RevokeOperatorToken(operator_, second.info.id).code(),
            ErrorCode::kLastOperatorToken);
  EXPECT_EQ(engine_->tenancy().RevokeOperatorToken(operator_, "tok_nope").code(),
            ErrorCode::kTokenNotFound);
  // A tenant token is not among the operator tokens.
  auto tenant = engine_->tenancy().CreateToken(admin_, "acme", "ci", {}).value();
  EXPECT_EQ(engine_->tenancy().RevokeOperatorToken(operator_, tenant.info.id).code(),
            ErrorCode::kTokenNotFound);
  EXPECT_EQ(engine_->tenancy().RotateOperatorToken(operator_, tenant.info.id, 0).status().code(),
            ErrorCode::kTokenNotFound);
}

TEST_F(TenancyTest, MessageQuotaRefusesTheWholeBatchAndCountsDeadLetters) {
  options_.default_quotas.max_messages = 5;
  Restart();
  ASSERT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "orders", Config(1)).ok());
  ASSERT_TRUE(Publish("orders", {"a", "b", "c"}).ok());
  Status over = Publish("orders", {"d", "e", "f"});
  EXPECT_EQ(over.code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(over.message().find("maxMessages"), std::string::npos) << over.message();
  EXPECT_EQ(engine_->queues().GetQueue("acme", "orders").value().depth.ready, 3)
      << "none of the batch";
  ASSERT_TRUE(Publish("orders", {"d", "e"}).ok());
  EXPECT_EQ(Usage().messages, 5);

  // Ack frees one; a dead letter still counts; purging the dead letters frees them.
  ReceiveOptions ro;
  ro.max_messages = 2;
  auto got = engine_->messages().Receive("acme", "orders", ro).value();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(engine_->messages().Ack("acme", "orders", {got[0].receipt}).value()[0].ok());
  EXPECT_EQ(Usage().messages, 4);
  NackRequest n;
  n.receipt = got[1].receipt;
  n.dead_letter = true;
  ASSERT_TRUE(engine_->messages().Nack("acme", "orders", {n}).value()[0].ok());
  EXPECT_EQ(Usage().messages, 4);
  EXPECT_EQ(Publish("orders", {"x", "y"}).code(), ErrorCode::kQuotaExceeded);
  ASSERT_TRUE(engine_->dead_letters()
                  .PurgeDeadLetterQueue(admin_, "acme", "dead-letters", "dead-letters")
                  .ok());
  EXPECT_EQ(Usage().messages, 3);
  ASSERT_TRUE(Publish("orders", {"x", "y"}).ok());

  Restart();
  EXPECT_EQ(Usage().messages, 5);
  EXPECT_EQ(Publish("orders", {"z"}).code(), ErrorCode::kQuotaExceeded);
}

TEST_F(TenancyTest, ByteQuotaCountsBodyBytes) {
  ASSERT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "orders", Config()).ok());
  QuotaOverrides o;
  o.max_bytes = 10;
  ASSERT_TRUE(engine_->tenancy().SetTenantQuotas(operator_, "acme", o).ok());
  ASSERT_TRUE(Publish("orders", {"12345", "123"}).ok());
  EXPECT_EQ(Publish("orders", {"123"}).code(), ErrorCode::kQuotaExceeded);
  ASSERT_TRUE(Publish("orders", {"12"}).ok());
  EXPECT_EQ(Usage().bytes, 10);
}

// Moved from the store's conformance suite with the words of the refusal, which the engine
// now writes from the figures the store compared.
TEST_F(TenancyTest, QuotaRefusalsNameTheQuotaAndTheFigures) {
  ASSERT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "orders", Config()).ok());
  QuotaOverrides o;
  o.max_messages = 2;
  o.max_bytes = 7;
  ASSERT_TRUE(engine_->tenancy().SetTenantQuotas(operator_, "acme", o).ok());
  ASSERT_TRUE(Publish("orders", {"aaaa"}).ok());
  Status messages = Publish("orders", {"bb", "cc"});
  EXPECT_EQ(messages.code(), ErrorCode::kQuotaExceeded);
  EXPECT_EQ(messages.message(),
            "tenant acme is at its maxMessages quota of 2: 1 messages stored, this publish adds 2");
  Status bytes = Publish("orders", {"bbbb"});
  EXPECT_EQ(bytes.code(), ErrorCode::kQuotaExceeded);
  EXPECT_EQ(bytes.message(),
            "tenant acme is at its maxBytes quota of 7: 4 body bytes stored, this publish adds 4");
}

TEST_F(TenancyTest, QueueQuotaLeavesNothingBehind) {
  QuotaOverrides o;
  o.max_queues = 1;
  ASSERT_TRUE(engine_->tenancy().SetTenantQuotas(operator_, "acme", o).ok());
  ASSERT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "one", Config()).ok());
  QueueConfig c = Config();
  c.dead_letter_queue = "other-dlq";
  EXPECT_EQ(engine_->queues().CreateQueue(admin_, "acme", "two", c).status().code(),
            ErrorCode::kQuotaExceeded);
  auto queues = engine_->queues().ListQueues("acme").value();
  ASSERT_EQ(queues.size(), 2u) << "one and its dead-letter queue; no other-dlq";
  EXPECT_EQ(Usage().queues, 1);
  // Deleting a queue makes room.
  ASSERT_TRUE(engine_->queues().DeleteQueue(admin_, "acme", "one").ok());
  EXPECT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "two", c).ok());
}

TEST_F(TenancyTest, OverridesReplaceDefaultsAndBadValuesChangeNothing) {
  options_.default_quotas.max_queues = 10;
  options_.default_quotas.request_rate = 100;
  Restart();
  QuotaOverrides o;
  o.max_queues = 2;
  auto t = engine_->tenancy().SetTenantQuotas(operator_, "acme", o).value();
  EXPECT_EQ(t.quotas.max_queues, 2);
  EXPECT_EQ(t.quotas.request_rate, 100) << "the default stays where not overridden";
  QuotaOverrides bad = o;
  bad.max_messages = -1;
  EXPECT_EQ(engine_->tenancy().SetTenantQuotas(operator_, "acme", bad).status().code(),
            ErrorCode::kInvalidArgument);
  bad.max_messages.reset();
  bad.request_rate = int64_t{2'000'000'000};
  EXPECT_EQ(engine_->tenancy().SetTenantQuotas(operator_, "acme", bad).status().code(),
            ErrorCode::kInvalidArgument);
  auto now = engine_->tenancy().GetTenant("acme").value();
  EXPECT_EQ(now.quotas.max_queues, 2);
  EXPECT_FALSE(now.overrides.max_messages.has_value());
  EXPECT_EQ(engine_->tenancy().QuotasOf("acme").value().request_rate, 100);
  EXPECT_EQ(engine_->tenancy().SetTenantQuotas(operator_, "nope", o).status().code(),
            ErrorCode::kTenantNotFound);
  // The JSON decoder refuses unknown quotas, wrong types and negatives.
  QuotaOverrides parsed;
  EXPECT_EQ(ApplyQuotaOverridesJson(json{{"maxQueue", 1}}, &parsed).code(),
            ErrorCode::kUnknownField);
  EXPECT_EQ(ApplyQuotaOverridesJson(json{{"maxQueues", "1"}}, &parsed).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ApplyQuotaOverridesJson(json{{"maxQueues", 1.5}}, &parsed).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ApplyQuotaOverridesJson(json{{"maxQueues", -3}}, &parsed).code(),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(ApplyQuotaOverridesJson(json{{"maxQueues", 4}, {"maxBytes", nullptr}}, &parsed).ok());
  EXPECT_EQ(parsed.max_queues, 4);
}

TEST_F(TenancyTest, RequestRateIsATokenBucketPerTenantAndOperatorsAreExempt) {
  QuotaOverrides o;
  o.request_rate = 2;
  o.request_burst = 3;
  ASSERT_TRUE(engine_->tenancy().SetTenantQuotas(operator_, "acme", o).ok());
  Principal app{"tok_app", "acme", {kScopePublish}};
  DurationMs retry = 0;
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(engine_->tenancy().AdmitRequest(app, "acme", &retry).ok()) << i;
  Status refused = engine_->tenancy().AdmitRequest(app, "acme", &retry);
  EXPECT_EQ(refused.code(), ErrorCode::kRateLimited);
  EXPECT_EQ(retry, 500) << "one request every 500ms at 2/s";
  EXPECT_TRUE(engine_->tenancy().AdmitRequest(operator_, "acme", &retry).ok());
  clock_.Advance(499);
  EXPECT_EQ(engine_->tenancy().AdmitRequest(app, "acme", &retry).code(), ErrorCode::kRateLimited);
  EXPECT_EQ(retry, 1);
  clock_.Advance(1);
  EXPECT_TRUE(engine_->tenancy().AdmitRequest(app, "acme", &retry).ok());
  // Another tenant has its own bucket (and no limit).
  ASSERT_TRUE(engine_->tenancy().CreateTenant(operator_, "beta").ok());
  Principal beta{"tok_b", "beta", {kScopePublish}};
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(engine_->tenancy().AdmitRequest(beta, "beta", &retry).ok());
}

TEST_F(TenancyTest, DeletingATenantNeedsForceWhileItHasQueues) {
  auto t = engine_->tenancy().CreateToken(admin_, "acme", "ci", {}).value();
  ASSERT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "orders", Config()).ok());
  ASSERT_TRUE(Publish("orders", {"a", "b"}).ok());
  EXPECT_EQ(engine_->tenancy().DeleteTenant(operator_, "acme", false).code(),
            ErrorCode::kTenantNotEmpty);
  EXPECT_TRUE(engine_->tenancy().Authenticate(t.secret).ok()) << "a refusal changes nothing";
  EXPECT_EQ(engine_->queues().GetQueue("acme", "orders").value().depth.ready, 2);

  ASSERT_TRUE(engine_->tenancy().DeleteTenant(operator_, "acme", true).ok());
  EXPECT_EQ(engine_->tenancy().Authenticate(t.secret).status().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(engine_->tenancy().GetTenant("acme").status().code(), ErrorCode::kTenantNotFound);
  EXPECT_EQ(engine_->queues().GetQueue("acme", "orders").status().code(),
            ErrorCode::kTenantNotFound);
  EXPECT_EQ(engine_->tenancy().DeleteTenant(operator_, "acme", true).code(),
            ErrorCode::kTenantNotFound);
  // The name is free, and the new tenant starts with nothing of the old one.
  ASSERT_TRUE(engine_->tenancy().CreateTenant(operator_, "acme").ok());
  EXPECT_EQ(Usage().messages, 0);
  EXPECT_TRUE(engine_->tenancy().ListTokens("acme").value().empty());
  EXPECT_TRUE(Actions("acme").empty());
  auto server = Entries("");
  ASSERT_GE(server.size(), 3u);
  json deleted = server[server.size() - 2];
  EXPECT_EQ(deleted["action"], "tenant.delete");
  EXPECT_EQ(deleted["actor"], "tok_operator");
  EXPECT_EQ(deleted["detail"]["removed"]["messages"], 2);
  EXPECT_EQ(deleted["detail"]["force"], true);
}

TEST_F(TenancyTest, EveryAdministrativeChangeIsAuditedWithoutSecrets) {
  auto t = engine_->tenancy().CreateToken(admin_, "acme", "ci", {kScopePublish}).value();
  auto r = engine_->tenancy().RotateToken(admin_, "acme", t.info.id, 60'000).value();
  ASSERT_TRUE(engine_->tenancy().RevokeToken(admin_, "acme", r.info.id).ok());
  ASSERT_TRUE(engine_->queues().CreateQueue(admin_, "acme", "orders", Config(3)).ok());
  ASSERT_TRUE(engine_->queues().UpdateQueue(admin_, "acme", "orders", Config(5)).ok());
  ASSERT_TRUE(engine_->queues().DeleteQueue(admin_, "acme", "orders").ok());
  QuotaOverrides o;
  o.max_messages = 100;
  ASSERT_TRUE(engine_->tenancy().SetTenantQuotas(operator_, "acme", o).ok());
  auto op = engine_->tenancy().CreateOperatorToken(operator_, "backup").value();
  auto op2 = engine_->tenancy().RotateOperatorToken(operator_, op.info.id, 0).value();
  ASSERT_TRUE(engine_->tenancy().RevokeOperatorToken(operator_, op2.info.id).code() ==
              ErrorCode::kLastOperatorToken);
  auto op3 = engine_->tenancy().CreateOperatorToken(operator_, "third").value();
  ASSERT_TRUE(engine_->tenancy().RevokeOperatorToken(operator_, op2.info.id).ok());

  EXPECT_EQ(Actions("acme"), (std::vector<std::string>{
                                 "token.create", "token.rotate", "token.revoke", "queue.create",
                                 "queue.update", "queue.delete", "tenant.quotas"}));
  EXPECT_EQ(Actions(""),
            (std::vector<std::string>{"tenant.create", "tenant.quotas", "operator-token.create",
                                      "operator-token.rotate", "operator-token.create",
                                      "operator-token.revoke"}));
  auto tenant_log = Entries("acme");
  EXPECT_EQ(tenant_log[0]["actor"], "tok_admin");
  EXPECT_EQ(tenant_log[0]["detail"]["token"], t.info.id);
  EXPECT_EQ(tenant_log[0]["detail"]["scopes"], json::array({kScopePublish}));
  EXPECT_EQ(tenant_log[1]["detail"]["replacement"], r.info.id);
  EXPECT_EQ(tenant_log[1]["detail"]["overlap"], "1m");
  EXPECT_EQ(tenant_log[4]["detail"]["changed"]["/retryPolicy/maxDeliveries"],
            (json{{"from", 3}, {"to", 5}}));
  EXPECT_EQ(tenant_log[6]["actor"], "tok_operator");
  EXPECT_EQ(tenant_log[6]["detail"]["changed"]["/maxMessages"], (json{{"from", 0}, {"to", 100}}));
  for (const auto& log : {Entries("acme"), Entries("")}) {
    for (const auto& e : log) {
      std::string text = e.dump();
      EXPECT_EQ(text.find("rdt_"), std::string::npos) << text;
      for (const auto* secret : {&t.secret, &r.secret, &op.secret, &op2.secret, &op3.secret}) {
        EXPECT_EQ(text.find(secret->substr(4)), std::string::npos) << text;
      }
    }
  }
}

}  // namespace
}  // namespace redrive::engine
