// Engine behaviour over a real SQLite store with a manual clock: retries, backoff, the
// exhausted actions, leases, expiry, overflow, validation and auth.
#include "engine/engine.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

class EngineTest : public EngineFixture {
 protected:
  QueueConfig Config(int max_deliveries, ExhaustedAction action = ExhaustedAction::kDeadLetter) {
    QueueConfig c;
    c.retry.max_deliveries = max_deliveries;
    c.retry.backoff = Backoff{1000, 2.0, 60'000, 0.0};
    c.retry.on_exhausted = action;
    return c;
  }
  void MakeQueue(const std::string& name, const QueueConfig& c) {
    auto q = engine_->queues().CreateQueue("acme", name, c);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
  }
  std::string Publish(const std::string& queue, const std::string& body) {
    std::vector<NewMessage> m(1);
    m[0].body = body;
    auto r = engine_->messages().Publish("acme", queue, std::move(m));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value()[0].id : "";
  }
  std::vector<Delivery> Receive(const std::string& queue, int max = 10) {
    ReceiveOptions o;
    o.max_messages = max;
    o.consumer = "worker-1";
    auto r = engine_->messages().Receive("acme", queue, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : std::vector<Delivery>{};
  }
  Status NackOne(const std::string& queue, const std::string& receipt, const std::string& error,
                 bool dead_letter = false, std::optional<DurationMs> delay = std::nullopt) {
    NackRequest n;
    n.receipt = receipt;
    n.reason = "handler-failed";
    n.error = error;
    n.dead_letter = dead_letter;
    n.delay = delay;
    auto r = engine_->messages().Nack("acme", queue, {n});
    if (!r.ok()) return r.status();
    return r.value()[0];
  }
  store::QueueDepth Depth(const std::string& queue) {
    return engine_->queues().GetQueue("acme", queue).value().depth;
  }
};

TEST_F(EngineTest, DeadLettersAfterMaxDeliveriesWithTheFullStory) {
  MakeQueue("orders", Config(3));
  std::string id = Publish("orders", R"({"order":42})");
  TimeMs published = clock_.Now();
  for (int i = 1; i <= 3; ++i) {
    auto got = Receive("orders");
    ASSERT_EQ(got.size(), 1u) << "delivery " << i;
    EXPECT_EQ(got[0].message.delivery_count, i);
    ASSERT_TRUE(NackOne("orders", got[0].receipt, "HTTP 503 attempt " + std::to_string(i)).ok());
    clock_.Advance(60'000);
  }
  EXPECT_TRUE(Receive("orders").empty());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->cause, "HTTP 503 attempt 3");
  EXPECT_EQ(dl->origin, "orders");
  EXPECT_EQ(dl->dlq, "dead-letters");
  EXPECT_EQ(dl->body, R"({"order":42})");
  EXPECT_EQ(dl->published_at, published);
  EXPECT_EQ(dl->delivery_count, 3);
  ASSERT_EQ(dl->journal.attempts.size(), 3u);
  EXPECT_EQ(dl->journal.attempts[0].consumer, "worker-1");
  EXPECT_EQ(dl->journal.attempts[0].error, "HTTP 503 attempt 1");
  EXPECT_EQ(dl->journal.attempts[0].reason, "handler-failed");
  EXPECT_EQ(engine_->counters().dead_lettered[0], 1);
  EXPECT_EQ(Depth("orders").dead_lettered, 1);
  EXPECT_EQ(Depth("dead-letters").ready, 1);
}

TEST_F(EngineTest, BackoffHidesTheMessageUntilItsTime) {
  MakeQueue("orders", Config(10));
  Publish("orders", "x");
  ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "e").ok());
  clock_.Advance(999);
  EXPECT_TRUE(Receive("orders").empty());
  EXPECT_EQ(Depth("orders").delayed, 1);
  clock_.Advance(1);
  auto second = Receive("orders");
  ASSERT_EQ(second.size(), 1u);
  ASSERT_TRUE(NackOne("orders", second[0].receipt, "e").ok());
  clock_.Advance(1999);
  EXPECT_TRUE(Receive("orders").empty());
  clock_.Advance(1);
  EXPECT_EQ(Receive("orders").size(), 1u);
}

// The Akamai document's six attempts: at once, then 3s, 30s, 5m, 1h and 24h; then dead-lettered.
TEST_F(EngineTest, TheAkamaiScheduleRetriesAtItsDelaysThenDeadLetters) {
  QueueConfig config;
  ASSERT_TRUE(
      ApplyQueueConfigJson(nlohmann::json{{"retryPolicy", {{"schedule", "akamai"}}}}, &config)
          .ok());
  MakeQueue("hooks", config);
  std::string id = Publish("hooks", "event");
  const DurationMs kDelays[] = {3'000, 30'000, 300'000, 3'600'000, 86'400'000};
  for (int attempt = 1; attempt <= 6; ++attempt) {
    auto got = Receive("hooks");
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0].message.delivery_count, attempt);
    ASSERT_TRUE(NackOne("hooks", got[0].receipt, "HTTP 503").ok());
    if (attempt == 6) break;
    DurationMs wait = kDelays[attempt - 1];
    clock_.Advance(wait - 1);
    EXPECT_TRUE(Receive("hooks").empty()) << "early before attempt " << attempt + 1;
    clock_.Advance(1);
  }
  EXPECT_TRUE(Receive("hooks").empty());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->delivery_count, 6);
}

TEST_F(EngineTest, AnExplicitScheduleIsFollowedToTheMillisecond) {
  QueueConfig config;
  ASSERT_TRUE(ApplyQueueConfigJson(
                  nlohmann::json{{"retryPolicy", {{"schedule", {"10s", 250, "1m"}}}}}, &config)
                  .ok());
  EXPECT_EQ(config.retry.max_deliveries, 4);
  MakeQueue("pull", config);
  Publish("pull", "x");
  for (DurationMs wait : {10'000, 250, 60'000}) {
    ASSERT_TRUE(NackOne("pull", Receive("pull")[0].receipt, "e").ok());
    clock_.Advance(wait - 1);
    EXPECT_TRUE(Receive("pull").empty()) << wait;
    clock_.Advance(1);
  }
  ASSERT_TRUE(NackOne("pull", Receive("pull")[0].receipt, "e").ok());
  EXPECT_EQ(Depth("pull").dead_lettered, 1);
}

// logRetries: the operator's words for each retry and for the end, in the ForgeRock style.
TEST_F(EngineTest, LogRetriesSaysEachRetryAndWhereTheMessageWent) {
  std::ostringstream lines;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
  sink->set_pattern("%v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  QueueConfig config = Config(3);
  config.log_retries = true;
  config.retry.schedule = {1'000, 1'000};
  MakeQueue("orders", config);
  QueueConfig quiet = Config(2);
  MakeQueue("quiet", quiet);
  std::string id = Publish("orders", "x");
  Publish("quiet", "y");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "HTTP 503").ok());
    clock_.Advance(1'000);
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(NackOne("quiet", Receive("quiet")[0].receipt, "HTTP 503").ok());
    clock_.Advance(60'000);
  }
  spdlog::set_default_logger(previous);
  std::string log = lines.str();
  EXPECT_NE(log.find("acme/orders: message " + id + " delivery retries = 1/2, retrying in 1s\n"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("delivery retries = 2/2, retrying in 1s\n"), std::string::npos) << log;
  EXPECT_NE(log.find("delivery retries = 2/2, retries exhausted, " + id +
                     " saved to dead letter queue dead-letters (HTTP 503)\n"),
            std::string::npos)
      << log;
  // A queue without logRetries says only where the message went, once.
  EXPECT_EQ(log.find("acme/quiet: message"), std::string::npos) << log;
  EXPECT_NE(log.find("dead-lettered message"), std::string::npos) << log;
}

// onExhausted reroute: a message whose retries are exhausted moves to another queue, a fresh
// message there with its story; when that queue cannot take it, it is dead-lettered saying why.
TEST_F(EngineTest, RerouteMovesAnExhaustedMessageToItsQueueOrDeadLettersSayingWhy) {
  QueueConfig slow = Config(5);
  slow.max_length = 1;
  MakeQueue("orders-slow", slow);
  QueueConfig config = Config(2, ExhaustedAction::kReroute);
  config.retry.reroute_to = "orders-slow";
  MakeQueue("orders", config);
  std::string first = Publish("orders", "one");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "HTTP 503").ok());
    clock_.Advance(60'000);
  }
  EXPECT_EQ(Depth("orders").ready + Depth("orders").delayed, 0);
  auto moved = Receive("orders-slow");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].message.id, first);
  EXPECT_EQ(moved[0].message.delivery_count, 1);
  EXPECT_EQ(moved[0].message.journal.attempts.size(), 2u);
  EXPECT_EQ(moved[0].message.lineage.original_queue, "orders");
  EXPECT_EQ(moved[0].message.lineage.last_redriven_by, "reroute:orders");
  EXPECT_EQ(engine_->counters().rerouted, 1);
  EXPECT_FALSE(engine_->dead_letters().GetDeadLetter("acme", first).ok());

  // orders-slow now holds one message, its maxLength: the next one is dead-lettered instead.
  std::string second = Publish("orders", "two");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "HTTP 503").ok());
    clock_.Advance(60'000);
  }
  auto dl = engine_->dead_letters().GetDeadLetter("acme", second);
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->cause, "HTTP 503 (reroute to orders-slow refused: it is at its maxLength)");
  EXPECT_EQ(engine_->counters().rerouted, 1);
}

TEST_F(EngineTest, RerouteNeedsAnotherStandardQueueOfTheTenant) {
  QueueConfig config = Config(2, ExhaustedAction::kReroute);
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "orders", config).status().code(),
            ErrorCode::kInvalidArgument);  // no rerouteTo
  config.retry.reroute_to = "nowhere";
  auto r = engine_->queues().CreateQueue("acme", "orders", config);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'nowhere'"), std::string::npos) << r.status().ToString();
  config.retry.reroute_to = "orders";
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "orders", config).status().code(),
            ErrorCode::kInvalidArgument);
  MakeQueue("plain", Config(2));  // and with it the dead-letter queue "dead-letters"
  config.retry.reroute_to = "dead-letters";
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "orders", config).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_FALSE(engine_->queues().GetQueue("acme", "orders").ok());
  QueueConfig stray = Config(2);
  stray.retry.reroute_to = "plain";  // rerouteTo without reroute
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "orders", stray).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(EngineTest, NackDelayOverridesTheBackoff) {
  MakeQueue("orders", Config(10));
  Publish("orders", "x");
  ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "e", false, 0).ok());
  EXPECT_EQ(Receive("orders").size(), 1u);
}

TEST_F(EngineTest, RejectSkipsTheRemainingRetries) {
  MakeQueue("orders", Config(10));
  std::string id = Publish("orders", "bad payload");
  ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "schema mismatch", true).ok());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "rejected");
  EXPECT_EQ(dl->cause, "schema mismatch");
  EXPECT_EQ(dl->journal.attempts.back().outcome, "rejected");
}

TEST_F(EngineTest, MaxDeliveriesZeroNeverRetries) {
  MakeQueue("orders", Config(0));
  std::string id = Publish("orders", "x");
  ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "e").ok());
  EXPECT_TRUE(engine_->dead_letters().GetDeadLetter("acme", id).ok());
}

TEST_F(EngineTest, MaxDeliveriesMinusOneRetriesForever) {
  auto c = Config(-1);
  c.retry.backoff = Backoff{0, 1.0, 0, 0.0};
  MakeQueue("orders", c);
  Publish("orders", "x");
  for (int i = 1; i <= 40; ++i) {
    auto got = Receive("orders");
    ASSERT_EQ(got.size(), 1u) << i;
    EXPECT_EQ(got[0].message.delivery_count, i);
    ASSERT_TRUE(NackOne("orders", got[0].receipt, "e").ok());
  }
  auto dl = engine_->dead_letters().QueryDeadLetters("acme", {});
  EXPECT_TRUE(dl->items.empty());
}

TEST_F(EngineTest, DropActionDropsAndCountsWithoutDeadLettering) {
  MakeQueue("orders", Config(1, ExhaustedAction::kDrop));
  std::string id = Publish("orders", "x");
  ASSERT_TRUE(NackOne("orders", Receive("orders")[0].receipt, "e").ok());
  EXPECT_EQ(engine_->dead_letters().GetDeadLetter("acme", id).status().code(),
            ErrorCode::kDeadLetterNotFound);
  EXPECT_EQ(engine_->counters().dropped, 1);
  auto d = Depth("orders");
  EXPECT_EQ(d.ready + d.delayed + d.leased, 0);
}

TEST_F(EngineTest, LeaseTimeoutCountsAsAFailedDelivery) {
  auto c = Config(2);
  c.visibility_timeout = 5000;
  MakeQueue("orders", c);
  std::string id = Publish("orders", "x");
  ASSERT_EQ(Receive("orders").size(), 1u);
  clock_.Advance(4999);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(Depth("orders").leased, 1);
  clock_.Advance(1);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(Depth("orders").delayed, 1);  // backoff of 1s after the first failure
  clock_.Advance(1000);
  auto again = Receive("orders");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message.delivery_count, 2);
  EXPECT_EQ(again[0].message.journal.attempts[0].outcome, "lease-timeout");
  clock_.Advance(5000);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->journal.attempts.size(), 2u);
  EXPECT_EQ(engine_->counters().lease_timeouts, 2);  // both ends were timeouts
}

TEST_F(EngineTest, AckedMessagesAreNeverRedelivered) {
  auto c = Config(5);
  c.visibility_timeout = 1000;
  MakeQueue("orders", c);
  Publish("orders", "x");
  auto got = Receive("orders");
  auto acked = engine_->messages().Ack("acme", "orders", {got[0].receipt});
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE(acked.value()[0].ok());
  clock_.Advance(60'000);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_TRUE(Receive("orders").empty());
  auto twice = engine_->messages().Ack("acme", "orders", {got[0].receipt, "garbage"});
  EXPECT_EQ(twice.value()[0].code(), ErrorCode::kLeaseLost);
  EXPECT_EQ(twice.value()[1].code(), ErrorCode::kInvalidReceipt);
}

TEST_F(EngineTest, StaleReceiptCannotNackAfterRedelivery) {
  auto c = Config(5);
  c.visibility_timeout = 1000;
  MakeQueue("orders", c);
  Publish("orders", "x");
  auto first = Receive("orders");
  clock_.Advance(1000);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  clock_.Advance(1000);
  auto second = Receive("orders");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(NackOne("orders", first[0].receipt, "late").code(), ErrorCode::kLeaseLost);
  EXPECT_TRUE(engine_->messages().Ack("acme", "orders", {second[0].receipt}).value()[0].ok());
}

TEST_F(EngineTest, ExtendKeepsTheLease) {
  auto c = Config(5);
  c.visibility_timeout = 1000;
  MakeQueue("orders", c);
  Publish("orders", "x");
  auto got = Receive("orders");
  clock_.Advance(900);
  auto ext = engine_->messages().ExtendLeases("acme", "orders", {got[0].receipt}, 10'000);
  ASSERT_TRUE(ext.ok());
  EXPECT_TRUE(ext.value()[0].ok());
  clock_.Advance(5000);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  EXPECT_EQ(Depth("orders").leased, 1);
  EXPECT_TRUE(engine_->messages().Ack("acme", "orders", {got[0].receipt}).value()[0].ok());
}

TEST_F(EngineTest, ExpiredMessagesDeadLetterWithReasonExpired) {
  auto c = Config(5);
  c.message_ttl = 10'000;
  MakeQueue("orders", c);
  std::string id = Publish("orders", "x");
  clock_.Advance(10'000);
  EXPECT_TRUE(Receive("orders").empty());
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "expired");
  EXPECT_EQ(dl->delivery_count, 0);
}

// onExhausted reroute of an expired message moved nothing (the store wanted a lease), so the
// sweeper found the message expired again on every pass and never let it go.
TEST_F(EngineTest, RerouteTakesAnExpiredMessageToo) {
  MakeQueue("later", Config(5));
  auto c = Config(5, ExhaustedAction::kReroute);
  c.retry.reroute_to = "later";
  c.message_ttl = 10'000;
  MakeQueue("orders", c);
  std::string id = Publish("orders", "x");
  clock_.Advance(10'000);
  ASSERT_EQ(engine_->background().SweepOnce().value(), 1);
  auto got = Receive("later");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.id, id);
  EXPECT_EQ(got[0].message.journal.attempts.back().outcome, "expired");
  EXPECT_EQ(engine_->counters().rerouted, 1);
  EXPECT_EQ(engine_->background().SweepOnce().value(), 0);
}

TEST_F(EngineTest, OverflowRejectsOrDeadLettersTheOldest) {
  auto reject = Config(5);
  reject.max_length = 2;
  MakeQueue("small", reject);
  Publish("small", "a");
  Publish("small", "b");
  std::vector<NewMessage> one(1);
  one[0].body = "c";
  EXPECT_EQ(engine_->messages().Publish("acme", "small", one).status().code(),
            ErrorCode::kQueueFull);

  auto evict = reject;
  evict.overflow = OverflowPolicy::kDeadLetterOldest;
  MakeQueue("ring", evict);
  std::string oldest = Publish("ring", "a");
  Publish("ring", "b");
  Publish("ring", "c");
  EXPECT_EQ(Depth("ring").ready, 2);
  auto dl = engine_->dead_letters().GetDeadLetter("acme", oldest);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "overflow");
}

TEST_F(EngineTest, PublishIsAllOrNothingOnBadInput) {
  auto c = Config(5);
  c.max_message_size = 10;
  MakeQueue("orders", c);
  std::vector<NewMessage> batch(3);
  batch[0].body = "ok";
  batch[1].body = std::string(11, 'x');
  batch[2].body = "ok";
  auto r = engine_->messages().Publish("acme", "orders", batch);
  EXPECT_EQ(r.status().code(), ErrorCode::kMessageTooLarge);
  EXPECT_NE(r.status().message().find("message 1"), std::string::npos);
  EXPECT_EQ(Depth("orders").ready, 0);

  std::vector<NewMessage> attrs(1);
  attrs[0].body = "x";
  for (int i = 0; i < 33; ++i) attrs[0].attributes["a" + std::to_string(i)] = "v";
  EXPECT_EQ(engine_->messages().Publish("acme", "orders", attrs).status().code(),
            ErrorCode::kTooManyAttributes);
  EXPECT_EQ(engine_->messages().Publish("acme", "orders", {}).status().code(),
            ErrorCode::kEmptyBatch);
  std::vector<NewMessage> big(1001);
  EXPECT_EQ(engine_->messages().Publish("acme", "orders", big).status().code(),
            ErrorCode::kBatchTooLarge);
  EXPECT_EQ(engine_->messages().Publish("acme", "nope", {NewMessage{}}).status().code(),
            ErrorCode::kQueueNotFound);
}

TEST_F(EngineTest, DeadLetterQueueIsReadOnly) {
  MakeQueue("orders", Config(5));
  EXPECT_EQ(engine_->messages().Publish("acme", "dead-letters", {NewMessage{}}).status().code(),
            ErrorCode::kDeadLetterQueueReadOnly);
  EXPECT_EQ(engine_->messages().Receive("acme", "dead-letters", {}).status().code(),
            ErrorCode::kDeadLetterQueueReadOnly);
  EXPECT_EQ(engine_->queues().DeleteQueue("acme", "dead-letters").code(),
            ErrorCode::kDeadLetterQueueReadOnly);
  auto own = Config(5);
  own.dead_letter_queue = "orders";
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "other", own).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(EngineTest, IdempotencyKeyStoresOnce) {
  MakeQueue("orders", Config(5));
  std::vector<NewMessage> m(1);
  m[0].body = "x";
  m[0].idempotency_key = "order-42";
  auto a = engine_->messages().Publish("acme", "orders", m).value();
  auto b = engine_->messages().Publish("acme", "orders", m).value();
  EXPECT_FALSE(a[0].duplicate);
  EXPECT_TRUE(b[0].duplicate);
  EXPECT_EQ(a[0].id, b[0].id);
  EXPECT_EQ(Depth("orders").ready, 1);
}

// Moved from the store's conformance suite: a key repeated within a batch is the engine's to
// settle, before the store sees the batch (the store gets each key once).
TEST_F(EngineTest, AKeyRepeatedInABatchIsADuplicateOfItsFirst) {
  MakeQueue("orders", Config(5));
  std::vector<NewMessage> m(4);
  for (auto& x : m) x.body = "x";
  m[0].idempotency_key = "key";
  m[1].idempotency_key = "key";
  m[3].idempotency_key = "other";
  auto r = engine_->messages().Publish("acme", "orders", m).value();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_FALSE(r[0].duplicate);
  EXPECT_TRUE(r[1].duplicate);
  EXPECT_EQ(r[1].id, r[0].id);
  EXPECT_FALSE(r[2].duplicate);
  EXPECT_FALSE(r[3].duplicate);
  EXPECT_EQ(Depth("orders").ready, 3);
  EXPECT_EQ(engine_->counters().duplicates.load(), 1);
  // A repeat of a key already stored names the stored message, as its first occurrence does.
  std::vector<NewMessage> again(2);
  again[0].idempotency_key = again[1].idempotency_key = "key";
  auto d = engine_->messages().Publish("acme", "orders", again).value();
  EXPECT_TRUE(d[0].duplicate);
  EXPECT_TRUE(d[1].duplicate);
  EXPECT_EQ(d[0].id, r[0].id);
  EXPECT_EQ(d[1].id, r[0].id);
  EXPECT_EQ(Depth("orders").ready, 3);
}

TEST_F(EngineTest, LongPollWakesOnPublish) {
  MakeQueue("orders", Config(5));
  auto waiter = std::async(std::launch::async, [&] {
    ReceiveOptions o;
    o.wait = 20'000;
    auto start = std::chrono::steady_clock::now();
    auto r = engine_->messages().Receive("acme", "orders", o);
    auto waited = std::chrono::steady_clock::now() - start;
    return std::make_pair(r.ok() ? r->size() : 0u, waited);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Publish("orders", "wake up");
  auto [got, waited] = waiter.get();
  EXPECT_EQ(got, 1u);
  EXPECT_LT(waited, std::chrono::seconds(5));
}

// Parks `n` receives of one message each; returns their results as they end.
struct Parked {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> got;  // messages per ended receive
  int errors = 0;
  size_t Ended() {
    std::lock_guard<std::mutex> l(mu);
    return got.size();
  }
  // Waits until `n` receives ended (or 10 s of real time passed).
  bool WaitEnded(size_t n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(10), [&] { return got.size() >= n; });
  }
  size_t WithMessages() {
    std::lock_guard<std::mutex> l(mu);
    return static_cast<size_t>(std::count_if(got.begin(), got.end(), [](size_t n) { return n; }));
  }
};

// `parked` is shared with the callbacks: receives still parked end when the engine does.
void ParkReceives(Engine& engine, int n, DurationMs wait, const std::shared_ptr<Parked>& parked) {
  for (int i = 0; i < n; ++i) {
    ReceiveOptions o;
    o.wait = wait;
    o.consumer = "worker-" + std::to_string(i % 2);
    engine.messages().ReceiveAsync("acme", "orders", o, [parked](Result<std::vector<Delivery>> r) {
      std::lock_guard<std::mutex> l(parked->mu);
      if (!r.ok()) ++parked->errors;
      parked->got.push_back(r.ok() ? r->size() : 0);
      parked->cv.notify_all();
    });
  }
}

TEST_F(EngineTest, AParkedReceiveHoldsNoThreadAndOnePublishWakesOneWaiter) {
  MakeQueue("orders", Config(5));
  auto parked_ptr = std::make_shared<Parked>();
  Parked& parked = *parked_ptr;
  ParkReceives(*engine_, 40, 20'000, parked_ptr);
  // Every receive returned at once, parked: this thread issued all forty.
  EXPECT_EQ(engine_->messages().parked_receives(), 40);
  EXPECT_EQ(parked.Ended(), 0u);

  Publish("orders", "one");
  ASSERT_TRUE(parked.WaitEnded(1));
  EXPECT_EQ(parked.WithMessages(), 1u);
  Publish("orders", "two");
  Publish("orders", "three");
  Publish("orders", "four");
  ASSERT_TRUE(parked.WaitEnded(4));
  // Nothing else woke: each message went to exactly one waiter, the rest still wait.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(parked.Ended(), 4u);
  EXPECT_EQ(parked.WithMessages(), 4u);
  EXPECT_EQ(engine_->messages().parked_receives(), 36);
  EXPECT_EQ(Depth("orders").leased, 4);
  EXPECT_EQ(parked.errors, 0);
}

TEST_F(EngineTest, AParkedReceiveEndsEmptyWhenItsWaitPasses) {
  MakeQueue("orders", Config(5));
  auto parked_ptr = std::make_shared<Parked>();
  Parked& parked = *parked_ptr;
  ParkReceives(*engine_, 3, 2'000, parked_ptr);
  ParkReceives(*engine_, 2, 20'000, parked_ptr);
  clock_.Advance(2'000);
  ASSERT_TRUE(parked.WaitEnded(3));
  EXPECT_EQ(parked.WithMessages(), 0u);
  EXPECT_EQ(engine_->messages().parked_receives(), 2);
  // The later two still get a message published now.
  Publish("orders", "late");
  ASSERT_TRUE(parked.WaitEnded(4));
  EXPECT_EQ(parked.WithMessages(), 1u);
}

TEST_F(EngineTest, AReadyMessageByTimeAloneWakesAWaiter) {
  auto c = Config(5);
  c.delivery_delay = 1'000;
  MakeQueue("orders", c);
  Publish("orders", "delayed");
  auto parked_ptr = std::make_shared<Parked>();
  Parked& parked = *parked_ptr;
  ParkReceives(*engine_, 1, 20'000, parked_ptr);
  EXPECT_EQ(engine_->messages().parked_receives(), 1);
  clock_.Advance(1'000);  // no publish: the waker's recheck finds it
  ASSERT_TRUE(parked.WaitEnded(1));
  EXPECT_EQ(parked.WithMessages(), 1u);
}

// Regression: a publish landing between a receive's empty lease and its parking made the receive
// lease again with a waiter it had already given away (a crash under load).
TEST_F(EngineTest, ReceivesRacingPublishesGetEveryMessageOnce) {
  MakeQueue("orders", Config(5));
  constexpr int kMessages = 2000;
  std::atomic<int> received{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 8; ++c) {
    consumers.emplace_back([&] {
      while (!done) {
        ReceiveOptions o;
        o.max_messages = 7;
        o.wait = 20'000;
        auto r = engine_->messages().Receive("acme", "orders", o);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        std::vector<std::string> receipts;
        for (auto& d : r.value()) receipts.push_back(d.receipt);
        if (receipts.empty()) continue;
        ASSERT_TRUE(engine_->messages().Ack("acme", "orders", receipts).ok());
        if ((received += static_cast<int>(receipts.size())) >= kMessages) done = true;
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < kMessages / 4; ++i) Publish("orders", "m");
    });
  }
  for (auto& t : producers) t.join();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  done = true;
  engine_->Stop();  // ends the receives still parked
  for (auto& t : consumers) t.join();
  EXPECT_EQ(received, kMessages);
  EXPECT_EQ(Depth("orders").ready + Depth("orders").leased, 0);
}

TEST_F(EngineTest, NackRulesAreTheEnginesAndRefuseTheWholeBatch) {
  MakeQueue("orders", Config(5));
  Publish("orders", "a");
  Publish("orders", "b");
  auto got = Receive("orders");
  ASSERT_EQ(got.size(), 2u);
  NackRequest ok;
  ok.receipt = got[0].receipt;
  NackRequest both;
  both.receipt = got[1].receipt;
  both.delay = 1000;
  both.dead_letter = true;
  auto r = engine_->messages().Nack("acme", "orders", {ok, both});
  ASSERT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nacks[1].delay' and 'deadLetter' exclude each other"),
            std::string::npos)
      << r.status().message();
  NackRequest long_name;
  long_name.receipt = got[1].receipt;
  long_name.consumer = std::string(kMaxConsumerName + 1, 'c');
  EXPECT_EQ(engine_->messages().Nack("acme", "orders", {long_name}).status().code(),
            ErrorCode::kInvalidArgument);
  // Nothing was applied: both are still leased.
  EXPECT_EQ(Depth("orders").leased, 2);
  // Without a consumer name the journal names the caller.
  ok.caller = "tok_caller";
  ASSERT_TRUE(engine_->messages().Nack("acme", "orders", {ok}).value()[0].ok());
  clock_.Advance(60'000);
  auto again = Receive("orders");
  ASSERT_FALSE(again.empty());
  bool found = false;
  for (const auto& d : again) {
    for (const auto& a : d.message.journal.attempts) found = found || a.consumer == "tok_caller";
  }
  EXPECT_TRUE(found);
}

TEST_F(EngineTest, StopEndsEveryParkedReceive) {
  MakeQueue("orders", Config(5));
  auto parked_ptr = std::make_shared<Parked>();
  Parked& parked = *parked_ptr;
  ParkReceives(*engine_, 10, 20'000, parked_ptr);
  engine_->Stop();
  ASSERT_TRUE(parked.WaitEnded(10));
  EXPECT_EQ(parked.WithMessages(), 0u);
  EXPECT_EQ(engine_->messages().parked_receives(), 0);
}

TEST_F(EngineTest, ReceiveRulesAreTheEngines) {
  MakeQueue("orders", Config(5));
  ReceiveOptions o;
  o.max_messages = 0;
  EXPECT_EQ(engine_->messages().Receive("acme", "orders", o).status().code(),
            ErrorCode::kInvalidArgument);
  o.max_messages = 1'000'001;
  EXPECT_EQ(engine_->messages().Receive("acme", "orders", o).status().code(),
            ErrorCode::kInvalidArgument);
  o.max_messages = 1;
  o.consumer = std::string(kMaxConsumerName + 1, 'c');
  EXPECT_EQ(engine_->messages().Receive("acme", "orders", o).status().code(),
            ErrorCode::kInvalidArgument);
  // Without a consumer name, the journal names the caller.
  o.consumer.clear();
  o.caller = "tok_caller";
  Publish("orders", "x");
  auto got = engine_->messages().Receive("acme", "orders", o).value();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.consumer, "tok_caller");
}

TEST_F(EngineTest, EveryMessageIsAccountedFor) {
  auto c = Config(2, ExhaustedAction::kDeadLetter);
  c.retry.backoff = Backoff{0, 1.0, 0, 0.0};
  MakeQueue("a", c);
  auto d = c;
  d.retry.on_exhausted = ExhaustedAction::kDrop;
  MakeQueue("b", d);
  for (int i = 0; i < 60; ++i) Publish(i % 2 ? "a" : "b", "m" + std::to_string(i));
  int round = 0;
  for (const char* q : {"a", "b"}) {
    for (;;) {
      auto got = Receive(q, 7);
      if (got.empty()) break;
      for (auto& g : got) {
        if (++round % 3 == 0) {
          ASSERT_TRUE(engine_->messages().Ack("acme", q, {g.receipt}).value()[0].ok());
        } else {
          ASSERT_TRUE(NackOne(q, g.receipt, "e").ok());
        }
      }
    }
  }
  const auto& k = engine_->counters();
  int64_t dead = 0;
  for (auto& x : k.dead_lettered) dead += x;
  EXPECT_EQ(k.published, 60);
  EXPECT_EQ(k.acked + dead + k.dropped, 60);
  EXPECT_GT(dead, 0);
  EXPECT_GT(k.dropped, 0);
  DeadLetterQuery all;
  all.page_size = 1000;
  auto listed = engine_->dead_letters().QueryDeadLetters("acme", all).value();
  EXPECT_EQ(static_cast<int64_t>(listed.items.size()), dead);
  EXPECT_EQ(listed.total, dead);
}

TEST(EngineRetentionTest, ZeroDeadLetterRetentionKeepsDeadLettersForever) {
  std::string dir = ::testing::TempDir() + "/engine-retention-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ManualClock clock;
  SeededRandom random(1);
  auto store = store::OpenStore(dir + "/db").value();
  EngineOptions options;
  options.dead_letter_retention = 0;
  {
    Engine engine(*store, clock, random, options);
    ASSERT_TRUE(engine.tenancy().CreateTenant("acme").ok());
    QueueConfig c;
    c.retry.max_deliveries = 0;
    ASSERT_TRUE(engine.queues().CreateQueue("acme", "q", c).ok());
    std::vector<NewMessage> m(1);
    m[0].body = "x";
    std::string id = engine.messages().Publish("acme", "q", m).value()[0].id;
    ReceiveOptions o;
    auto got = engine.messages().Receive("acme", "q", o).value();
    NackRequest n;
    n.receipt = got[0].receipt;
    ASSERT_TRUE(engine.messages().Nack("acme", "q", {n}).value()[0].ok());
    clock.Advance(365LL * 86'400'000);
    ASSERT_TRUE(engine.background().SweepOnce().ok());
    auto dl = engine.dead_letters().GetDeadLetter("acme", id);
    ASSERT_TRUE(dl.ok());
    EXPECT_EQ(dl->retain_until, 0);
  }
  store.reset();
  std::filesystem::remove_all(dir);
}

TEST_F(EngineTest, DeadLetterPagesWithAnOpaqueCursor) {
  MakeQueue("orders", Config(0));
  for (int i = 0; i < 5; ++i) Publish("orders", "m");
  for (auto& g : Receive("orders")) ASSERT_TRUE(NackOne("orders", g.receipt, "e").ok());
  DeadLetterQuery q;
  q.page_size = 2;
  auto p1 = engine_->dead_letters().QueryDeadLetters("acme", q).value();
  ASSERT_EQ(p1.items.size(), 2u);
  ASSERT_FALSE(p1.next_cookie.empty());
  EXPECT_EQ(p1.total, 5);
  Publish("orders", "late");
  for (auto& g : Receive("orders")) ASSERT_TRUE(NackOne("orders", g.receipt, "e").ok());
  q.cookie = p1.next_cookie;
  q.page_size = 10;
  auto p2 = engine_->dead_letters().QueryDeadLetters("acme", q).value();
  EXPECT_EQ(p2.items.size(), 3u) << "dead letters that arrive later are not in the snapshot";
  EXPECT_TRUE(p2.next_cookie.empty());
  q.cookie = "bogus!";
  EXPECT_EQ(engine_->dead_letters().QueryDeadLetters("acme", q).status().code(),
            ErrorCode::kInvalidQuery);
  q.cookie = "";
  q.page_size = 0;
  EXPECT_EQ(engine_->dead_letters().QueryDeadLetters("acme", q).status().code(),
            ErrorCode::kInvalidQuery);
}

TEST_F(EngineTest, TokensAuthenticateAuthorizeAndRevoke) {
  ASSERT_TRUE(engine_->tenancy().CreateTenant("beta").ok());
  auto t = engine_->tenancy().CreateToken("acme", "ci", {"publish"});
  ASSERT_TRUE(t.ok());
  auto p = engine_->tenancy().Authenticate(t->secret);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->tenant, "acme");
  EXPECT_TRUE(engine_->tenancy().Authorize(*p, "acme", kScopePublish).ok());
  EXPECT_EQ(engine_->tenancy().Authorize(*p, "acme", kScopeConsume).code(), ErrorCode::kForbidden);
  EXPECT_EQ(engine_->tenancy().Authorize(*p, "beta", kScopePublish).code(),
            ErrorCode::kTenantNotFound);
  EXPECT_EQ(engine_->tenancy().Authorize(*p, "ghost", kScopePublish).code(),
            ErrorCode::kTenantNotFound);
  EXPECT_EQ(engine_->tenancy().Authenticate("rdt_wrong").status().code(),
            ErrorCode::kUnauthenticated);
  ASSERT_TRUE(engine_->tenancy().RevokeToken("acme", t->info.id).ok());
  EXPECT_EQ(engine_->tenancy().Authenticate(t->secret).status().code(),
            ErrorCode::kUnauthenticated);
  EXPECT_EQ(engine_->tenancy().RevokeToken("acme", t->info.id).code(), ErrorCode::kTokenNotFound);
  EXPECT_EQ(engine_->tenancy().CreateToken("acme", "x", {"root"}).status().code(),
            ErrorCode::kInvalidArgument);
  auto op = engine_->tenancy().CreateOperatorToken("ops");
  auto opp = engine_->tenancy().Authenticate(op->secret);
  EXPECT_TRUE(engine_->tenancy().Authorize(*opp, "beta", kScopeConsume).ok());
  EXPECT_EQ(engine_->tenancy().Authorize(*opp, "ghost", kScopeConsume).code(),
            ErrorCode::kTenantNotFound);
}

TEST_F(EngineTest, QueueConfigRejectsUnknownFieldsAndBadRanges) {
  QueueConfig c;
  nlohmann::json bad1 = {{"visibilityTimout", "30s"}};
  EXPECT_EQ(ApplyQueueConfigJson(bad1, &c).code(), ErrorCode::kUnknownField);
  nlohmann::json bad2 = {{"retryPolicy", {{"maxDeliveries", -2}}}};
  EXPECT_EQ(ApplyQueueConfigJson(bad2, &c).code(), ErrorCode::kInvalidArgument);
  nlohmann::json bad3 = {{"visibilityTimeout", "soon"}};
  EXPECT_EQ(ApplyQueueConfigJson(bad3, &c).code(), ErrorCode::kInvalidDuration);
  nlohmann::json bad4 = {{"retryPolicy", {{"backoff", {{"jitter", 2}}}}}};
  EXPECT_EQ(ApplyQueueConfigJson(bad4, &c).code(), ErrorCode::kInvalidArgument);
  QueueConfig small;
  small.visibility_timeout = 10;
  EXPECT_EQ(ValidateQueueConfig(small).code(), ErrorCode::kInvalidArgument);
  // The JSON form round-trips.
  QueueConfig full = Config(7, ExhaustedAction::kDrop);
  full.max_length = 9;
  full.overflow = OverflowPolicy::kDeadLetterOldest;
  QueueConfig back;
  ASSERT_TRUE(ApplyQueueConfigJson(QueueConfigToJson(full), &back).ok());
  EXPECT_EQ(QueueConfigToJson(back), QueueConfigToJson(full));
}

}  // namespace
}  // namespace redrive::engine
