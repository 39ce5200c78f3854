// Failure groups diagnosed from the counts of delivery outcomes, on scripted histories of acks,
// nacks and ended leases driven through Messages on the manual clock (the push path, with a
// real TLS endpoint, is in push_test.cc).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/text.h"
#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

constexpr TimeMs kT0 = 1'700'000'040'000;  // a minute's start
constexpr DurationMs kMin = kOutcomeMinute;

TimeMs At(int minute) { return kT0 + minute * kMin; }

class FailureDiagnosisTest : public EngineFixture {
 protected:
  void SetUp() override {
    EngineFixture::SetUp();
    if (HasFatalFailure()) return;
    clock_.Set(kT0);
    QueueConfig c;
    c.retry.max_deliveries = 1;  // each failed delivery is a dead letter
    ASSERT_TRUE(engine_->queues().CreateQueue("acme", "orders", c).ok());
  }

  std::vector<Delivery> PublishAndReceive(int n) {
    std::vector<NewMessage> msgs(n);
    for (auto& m : msgs) m.body = R"({"order": 1})";
    EXPECT_TRUE(engine_->messages().Publish("acme", "orders", std::move(msgs)).ok());
    ReceiveOptions ro;
    ro.max_messages = n;
    auto got = engine_->messages().Receive("acme", "orders", ro);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got.value().size(), static_cast<size_t>(n));
    return got.value();
  }
  // n deliveries that the consumer acks.
  void Succeed(int n) {
    std::vector<std::string> receipts;
    for (const auto& d : PublishAndReceive(n)) receipts.push_back(d.receipt);
    auto r = engine_->messages().Ack("acme", "orders", receipts);
    ASSERT_TRUE(r.ok());
    for (const auto& s : r.value()) EXPECT_TRUE(s.ok()) << s.ToString();
  }
  // n deliveries that the consumer nacks with `cause` (each dead-lettered).
  void Fail(int n, const std::string& cause) {
    std::vector<NackRequest> nacks;
    for (const auto& d : PublishAndReceive(n)) {
      NackRequest x;
      x.receipt = d.receipt;
      x.reason = "consumer-error";
      x.error = cause;
      nacks.push_back(x);
    }
    auto r = engine_->messages().Nack("acme", "orders", nacks);
    ASSERT_TRUE(r.ok());
    for (const auto& s : r.value()) EXPECT_TRUE(s.ok()) << s.ToString();
  }
  void NextMinute() { clock_.Advance(kMin); }

  std::vector<FailureGroup> Groups() {
    auto g = engine_->dead_letters().ListFailureGroups("acme", "");
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? g.value() : std::vector<FailureGroup>{};
  }
  FailureGroup OnlyGroup() {
    auto groups = Groups();
    EXPECT_EQ(groups.size(), 1u);
    return groups.empty() ? FailureGroup{} : groups[0];
  }
};

TEST_F(FailureDiagnosisTest, AnOutageShowsItsWindowAndTheRecovery) {
  for (int m = 0; m < 10; ++m, NextMinute()) Succeed(4);
  for (int m = 10; m < 20; ++m, NextMinute()) {
    // The order number varies, the group does not.
    Fail(1,
         "POST https://hooks.example.com/orders/" + std::to_string(4000 + m) + " failed: HTTP 503");
    if (m == 15) {
      ASSERT_TRUE(engine_->outcomes().Flush(true).ok());  // a minute split in two
    }
    Fail(1,
         "POST https://hooks.example.com/orders/" + std::to_string(5000 + m) + " failed: HTTP 503");
  }
  for (int m = 20; m < 25; ++m, NextMinute()) Succeed(4);

  FailureGroup g = OnlyGroup();
  EXPECT_EQ(g.row.count, 20);
  ASSERT_TRUE(g.diagnosis.has_value());
  EXPECT_EQ(g.diagnosis->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(g.diagnosis->from, At(10));
  EXPECT_EQ(g.diagnosis->to, At(20));
  EXPECT_EQ(g.diagnosis->failed, 20);
  EXPECT_EQ(g.diagnosis->succeeded, 0);
  EXPECT_EQ(g.diagnosis->recovered_at, At(20));
  EXPECT_EQ(g.diagnosis->succeeded_after, 20);

  // The digest's and the ticket's entry point says the same; and the counts outlive the
  // process (the engine writes what it holds when it stops).
  auto one = engine_->dead_letters().Diagnose("acme", g.row);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(one.value().has_value());
  EXPECT_EQ(one.value()->summary, g.diagnosis->summary);
  engine_.reset();
  engine_ = std::make_unique<Engine>(*store_, clock_, random_);
  FailureGroup again = OnlyGroup();
  ASSERT_TRUE(again.diagnosis.has_value());
  EXPECT_EQ(again.diagnosis->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(again.diagnosis->failed, 20);
  EXPECT_EQ(again.diagnosis->succeeded_after, 20);
}

TEST_F(FailureDiagnosisTest, NothingSucceedingSinceAChangeIsBrokenSince) {
  for (int m = 0; m < 5; ++m, NextMinute()) Succeed(5);
  for (int m = 5; m < 10; ++m, NextMinute()) Fail(3, "HTTP 401 Unauthorized: invalid api key");
  FailureGroup g = OnlyGroup();
  ASSERT_TRUE(g.diagnosis.has_value());
  EXPECT_EQ(g.diagnosis->kind, DiagnosisKind::kBrokenSince);
  EXPECT_EQ(g.diagnosis->since, At(5));
  EXPECT_EQ(g.diagnosis->last_success_at, At(4));
  EXPECT_EQ(g.diagnosis->failed, 15);
  EXPECT_EQ(g.diagnosis->succeeded_before, 25);

  // Once deliveries succeed again, the same group reads as an outage that ended.
  Succeed(2);
  g = OnlyGroup();
  ASSERT_TRUE(g.diagnosis.has_value());
  EXPECT_EQ(g.diagnosis->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(g.diagnosis->from, At(5));
  EXPECT_EQ(g.diagnosis->to, At(10));
  EXPECT_EQ(g.diagnosis->recovered_at, At(10));
}

TEST_F(FailureDiagnosisTest, ATlsCauseIsDiagnosedAsTls) {
  for (int m = 0; m < 3; ++m, NextMinute()) Succeed(5);
  for (int m = 3; m < 6; ++m, NextMinute()) {
    Fail(2, "x509: certificate has expired or is not yet valid");
  }
  for (int m = 6; m < 8; ++m, NextMinute()) Succeed(5);
  FailureGroup g = OnlyGroup();
  ASSERT_TRUE(g.diagnosis.has_value());
  EXPECT_EQ(g.diagnosis->kind, DiagnosisKind::kTls);
  EXPECT_EQ(g.diagnosis->since, At(3));
  EXPECT_EQ(g.diagnosis->failed, 6);
  EXPECT_EQ(g.diagnosis->recovered_at, At(6));
  EXPECT_EQ(g.diagnosis->succeeded_after, 10);
}

TEST_F(FailureDiagnosisTest, AFewBadMessagesAmongGoodOnesAreScattered) {
  for (int m = 0; m < 30; ++m, NextMinute()) {
    Succeed(9);
    if (m % 8 == 3) Fail(1, "field 'email' of customer 'c-" + std::to_string(m) + "' is invalid");
  }
  FailureGroup g = OnlyGroup();
  EXPECT_EQ(g.row.count, 4);  // minutes 3, 11, 19, 27
  ASSERT_TRUE(g.diagnosis.has_value());
  EXPECT_EQ(g.diagnosis->kind, DiagnosisKind::kScattered);
  EXPECT_EQ(g.diagnosis->from, At(3));
  EXPECT_EQ(g.diagnosis->to, At(28));
  EXPECT_EQ(g.diagnosis->failed, 4);
  EXPECT_EQ(g.diagnosis->succeeded, 25 * 9);
  EXPECT_NEAR(g.diagnosis->share, 4.0 / 229.0, 1e-9);
  EXPECT_EQ(g.diagnosis->failing_minutes, 4);
}

TEST_F(FailureDiagnosisTest, EndedLeasesCountAsFailuresAndExpiredOrReleasedMessagesDoNot) {
  QueueConfig c;
  c.retry.max_deliveries = 1;
  c.message_ttl = 120'000;
  ASSERT_TRUE(engine_->queues().CreateQueue("acme", "slow", c).ok());
  std::vector<NewMessage> msgs(4);
  for (auto& m : msgs) m.body = "x";
  ASSERT_TRUE(engine_->messages().Publish("acme", "slow", std::move(msgs)).ok());
  ReceiveOptions ro;
  ro.max_messages = 3;
  ro.visibility_timeout = 10'000;
  auto got = engine_->messages().Receive("acme", "slow", ro).value();
  ASSERT_EQ(got.size(), 3u);
  // One lease handed back unused: no outcome. Two end without an answer: two failures.
  ASSERT_TRUE(engine_->messages().Release("acme", "slow", {got[2].receipt}).ok());
  clock_.Advance(11'000);
  ASSERT_EQ(engine_->messages().SweepOnce().value(), 2);
  // The other two are never delivered and expire: not a delivery, so no outcome.
  clock_.Advance(120'000);
  ASSERT_EQ(engine_->messages().SweepOnce().value(), 2);

  auto series = engine_->outcomes().Series("acme", "slow", 0).value();
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].minute, At(0));
  EXPECT_EQ(series[0].failed, 2);
  EXPECT_EQ(series[0].succeeded, 0);
  // The expired ones form a group of their own, which no count can diagnose.
  bool saw_expired = false;
  for (const auto& g : Groups()) {
    if (g.row.reason != kReasonExpired) continue;
    saw_expired = true;
    EXPECT_FALSE(g.diagnosis.has_value());
  }
  EXPECT_TRUE(saw_expired);
}

TEST_F(FailureDiagnosisTest, CountsAreKeptForTheDeadLetterRetentionThenSwept) {
  Succeed(3);
  Fail(1, "HTTP 500");
  ASSERT_TRUE(engine_->outcomes().Flush(true).ok());
  EXPECT_EQ(engine_->outcomes().retention(), engine_->options().dead_letter_retention);
  clock_.Advance(engine_->outcomes().retention() - kMin);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(store_->ListDeliveryOutcomes("acme", "orders", 0, At(1)).value().size(), 1u);
  clock_.Advance(2 * kMin);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_TRUE(store_->ListDeliveryOutcomes("acme", "orders", 0, At(1)).value().empty());
  EXPECT_TRUE(engine_->outcomes().Series("acme", "orders", 0).value().empty());
}

TEST_F(FailureDiagnosisTest, UnflushedCountsAreReadWithTheStoredOnes) {
  Succeed(2);
  ASSERT_TRUE(engine_->outcomes().Flush(true).ok());
  Succeed(3);
  Fail(1, "HTTP 500");
  NextMinute();
  Fail(2, "HTTP 500");
  auto series = engine_->outcomes().Series("acme", "orders", 0).value();
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(series[0].minute, At(0));
  EXPECT_EQ(series[0].succeeded, 5);
  EXPECT_EQ(series[0].failed, 1);
  EXPECT_EQ(series[1].minute, At(1));
  EXPECT_EQ(series[1].failed, 2);
  // A flush only moves them: the sums stay.
  ASSERT_TRUE(engine_->outcomes().Flush(true).ok());
  EXPECT_EQ(engine_->outcomes().Series("acme", "orders", 0).value().size(), 2u);
  EXPECT_EQ(engine_->outcomes().Series("acme", "orders", 0).value()[0].succeeded, 5);
  // Other origins and tenants are apart.
  EXPECT_TRUE(engine_->outcomes().Series("acme", "billing", 0).value().empty());
  EXPECT_TRUE(engine_->outcomes().Series("beta", "orders", 0).value().empty());
}

}  // namespace
}  // namespace redrive::engine
