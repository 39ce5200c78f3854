// Topic events over a real SQLite store with a manual clock: the state of each subscription's
// copy as it moves (pending, delivering, delivered, dead-lettered, dropped), the filters and
// pages of the listing, redelivery on request, and the events' retention.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

class TopicEventsTest : public EngineFixture {
 protected:
  TopicEventsTest() : EngineFixture(11) {}

  const Principal& Op() { return Tenancy::System(); }
  void MakeTopic(const std::string& name, TopicConfig config = {}) {
    auto t = engine_->topics().CreateTopic(Op(), "acme", name, config);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
  }
  void Subscribe(const std::string& name, const std::string& attrs = "{}") {
    QueueConfig c;
    c.retry.max_deliveries = 1;
    ASSERT_TRUE(ApplyQueueConfigJson(nlohmann::json::parse(attrs), &c).ok());
    auto s = engine_->topics().CreateSubscription(Op(), "acme", "orders", name, c);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  std::string Publish(store::Attributes attrs = {}, const std::string& key = "") {
    std::vector<NewMessage> m(1);
    m[0].body = "{\"order\": 1}";
    m[0].attributes = std::move(attrs);
    m[0].idempotency_key = key;
    auto r = engine_->messages().PublishTopic("acme", "orders", std::move(m));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? (*r)[0].id : "";
  }
  std::vector<Delivery> Receive(const std::string& sub, int max = 10) {
    ReceiveOptions o;
    o.max_messages = max;
    auto r = engine_->messages().Receive("acme", "orders:" + sub, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : std::vector<Delivery>{};
  }
  void Ack(const std::string& sub, const std::vector<Delivery>& ds) {
    std::vector<std::string> receipts;
    for (const auto& d : ds) receipts.push_back(d.receipt);
    auto r = engine_->messages().Ack("acme", "orders:" + sub, receipts);
    ASSERT_TRUE(r.ok());
    for (const auto& s : *r) ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void Fail(const std::string& sub) {
    auto got = Receive(sub, 1);
    ASSERT_EQ(got.size(), 1u);
    NackRequest n;
    n.receipt = got[0].receipt;
    n.error = "HTTP 503";
    auto r = engine_->messages().Nack("acme", "orders:" + sub, {n});
    ASSERT_TRUE(r.ok() && r.value()[0].ok());
  }
  // subscription -> state name, of event `id`.
  std::map<std::string, std::string> States(const std::string& id) {
    auto e = engine_->messages().GetEvent("acme", "orders", id);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    std::map<std::string, std::string> out;
    if (!e.ok()) return out;
    for (const auto& d : e->deliveries) out[d.subscription] = DeliveryStateName(d.state);
    return out;
  }
  Result<TopicDelivery> Redeliver(const std::string& sub, const std::string& id) {
    return engine_->messages().Redeliver(Op(), "acme", "orders", sub, id);
  }
};

TEST_F(TopicEventsTest, EachSubscriptionsCopyHasTheStateItIsIn) {
  MakeTopic("orders");
  Subscribe("billing");
  Subscribe("crm");
  Subscribe("audit");
  Subscribe("hook");
  Subscribe("sampler", R"({"retryPolicy": {"maxDeliveries": 1, "onExhausted": "drop"}})");
  Subscribe("eu", R"({"filter": {"region": "eu"}})");
  std::string id = Publish({{"region", "us"}});
  EXPECT_EQ(States(id), (std::map<std::string, std::string>{{"audit", "pending"},
                                                            {"billing", "pending"},
                                                            {"crm", "pending"},
                                                            {"hook", "pending"},
                                                            {"sampler", "pending"}}));
  Ack("billing", Receive("billing"));
  Fail("crm");                             // maxDeliveries 1: dead-lettered
  Fail("sampler");                         // dropped
  ASSERT_EQ(Receive("audit").size(), 1u);  // leased, not acked
  auto e = engine_->messages().GetEvent("acme", "orders", id);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->body, "{\"order\": 1}");
  EXPECT_EQ(e->attributes.at("region"), "us");
  std::map<std::string, TopicDelivery> by;
  for (const auto& d : e->deliveries) by[d.subscription] = d;
  ASSERT_EQ(by.size(), 5u);  // eu's filter did not take it: no copy
  EXPECT_EQ(by["billing"].state, DeliveryState::kDelivered);
  EXPECT_GT(by["billing"].delivered_at, 0);
  EXPECT_EQ(by["crm"].state, DeliveryState::kDeadLettered);
  EXPECT_EQ(by["crm"].dead_letter_id, id + ":crm");
  EXPECT_EQ(by["crm"].dead_letter_reason, "max-deliveries");
  EXPECT_EQ(by["sampler"].state, DeliveryState::kDropped);
  EXPECT_EQ(by["audit"].state, DeliveryState::kDelivering);
  EXPECT_EQ(by["audit"].delivery_count, 1);
  EXPECT_EQ(by["audit"].queue, "orders:audit");
  EXPECT_EQ(by["hook"].state, DeliveryState::kPending);

  // Restoring the dead letter makes it the copy again: pending, then delivered.
  DeadLetterTarget target;
  target.ids = {id + ":crm"};
  auto restored = engine_->dead_letters().RestoreDeadLetters(Op(), "acme", target);
  ASSERT_TRUE(restored.ok() && restored->done == 1);
  EXPECT_EQ(States(id)["crm"], "pending");
  Ack("crm", Receive("crm"));
  EXPECT_EQ(States(id)["crm"], "delivered");
}

TEST_F(TopicEventsTest, TheListingFiltersByStateSubscriptionAndTimeAndPagesNewestFirst) {
  MakeTopic("orders");
  Subscribe("billing");
  Subscribe("crm");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Publish());
    clock_.Advance(1000);
  }
  // billing delivers all five; crm fails the oldest (the first it leases) and keeps the rest.
  Ack("billing", Receive("billing"));
  Fail("crm");

  EventQuery all;
  all.limit = 2;
  std::vector<std::string> seen;
  for (;;) {
    auto page = engine_->messages().ListEvents("acme", "orders", all);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& e : page->events) seen.push_back(e.id);
    if (page->next_cursor.empty()) break;
    all.cursor = page->next_cursor;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{ids[4], ids[3], ids[2], ids[1], ids[0]}));

  EventQuery failed;
  failed.state = DeliveryState::kDeadLettered;
  auto page = engine_->messages().ListEvents("acme", "orders", failed);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].id, ids[0]);
  EXPECT_EQ(page->events[0].deliveries.size(), 2u);  // with the subscription that delivered it

  EventQuery crm_pending;
  crm_pending.subscription = "crm";
  crm_pending.state = DeliveryState::kPending;
  page = engine_->messages().ListEvents("acme", "orders", crm_pending);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 4u);
  ASSERT_EQ(page->events[0].deliveries.size(), 1u);
  EXPECT_EQ(page->events[0].deliveries[0].subscription, "crm");

  EventQuery window;  // the 2nd and 3rd messages: published at t0+1s and t0+2s
  auto first = engine_->messages().GetEvent("acme", "orders", ids[0]);
  ASSERT_TRUE(first.ok());
  window.since = first->published_at + 1000;
  window.until = first->published_at + 3000;
  page = engine_->messages().ListEvents("acme", "orders", window);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 2u);
  EXPECT_EQ(page->events[0].id, ids[2]);
  EXPECT_EQ(page->events[1].id, ids[1]);

  // Bad queries are refused, naming what is wrong.
  EventQuery bad;
  bad.limit = 0;
  EXPECT_EQ(engine_->messages().ListEvents("acme", "orders", bad).status().code(),
            ErrorCode::kInvalidArgument);
  bad = EventQuery{};
  bad.cursor = "x1";
  EXPECT_EQ(engine_->messages().ListEvents("acme", "orders", bad).status().code(),
            ErrorCode::kInvalidQuery);
  bad = EventQuery{};
  bad.since = 2000;
  bad.until = 1000;
  EXPECT_EQ(engine_->messages().ListEvents("acme", "orders", bad).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine_->messages().ListEvents("acme", "nope", EventQuery{}).status().code(),
            ErrorCode::kTopicNotFound);
}

TEST_F(TopicEventsTest, RedeliverSendsOneMessageAgainToOneSubscription) {
  MakeTopic("orders");
  Subscribe("billing");
  Subscribe("crm");
  Subscribe("eu", R"({"filter": {"region": "eu"}})");
  std::string id = Publish({{"region", "us"}});
  auto first = Receive("billing");
  ASSERT_EQ(first.size(), 1u);
  Ack("billing", first);
  ASSERT_EQ(Receive("crm").size(), 1u);  // delivering

  // Delivered: a fresh copy, with the same id, a new delivery count and the redelivery counted.
  auto d = Redeliver("billing", id);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->state, DeliveryState::kPending);
  EXPECT_EQ(d->redeliveries, 1);
  auto again = Receive("billing");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message.id, id + ":billing");
  EXPECT_EQ(again[0].message.body, "{\"order\": 1}");
  EXPECT_EQ(again[0].message.delivery_count, 1);
  EXPECT_EQ(again[0].message.published_at, first[0].message.published_at);
  EXPECT_EQ(again[0].message.lineage.redrive_count, 1);
  EXPECT_EQ(again[0].message.lineage.last_redriven_by, "request:" + Op().token_id);
  EXPECT_EQ(Receive("crm").size(), 0u);  // the others get nothing
  EXPECT_EQ(States(id)["billing"], "delivering");
  // Still in the queue: refused, nothing written.
  EXPECT_EQ(Redeliver("billing", id).status().code(), ErrorCode::kDeliveryPending);
  Ack("billing", again);
  EXPECT_EQ(States(id)["billing"], "delivered");

  // A subscription whose filter did not take it gets it when asked.
  ASSERT_TRUE(Redeliver("eu", id).ok());
  EXPECT_EQ(Receive("eu").size(), 1u);

  // Dead-lettered: restore is the way, and the answer says so.
  clock_.Advance(600'000);  // crm's lease ends: with maxDeliveries 1, a dead letter
  ASSERT_TRUE(engine_->messages().SweepOnce().ok());
  auto dl = Redeliver("crm", id);
  EXPECT_EQ(dl.status().code(), ErrorCode::kDeliveryDeadLettered);
  EXPECT_NE(dl.status().message().find(id + ":crm"), std::string::npos);

  EXPECT_EQ(Redeliver("billing", "01NOSUCHMESSAGE").status().code(), ErrorCode::kEventNotFound);
  EXPECT_EQ(Redeliver("nope", id).status().code(), ErrorCode::kSubscriptionNotFound);
  auto audit = engine_->dead_letters().QueryAudit("acme", AuditQuery{});
  ASSERT_TRUE(audit.ok());
  int redeliveries = 0;
  for (const auto& item : audit->items) redeliveries += item["action"] == "topic.redeliver";
  EXPECT_EQ(redeliveries, 2);
}

TEST_F(TopicEventsTest, EventsAreKeptForTheTopicsRetentionAndRepeatsAreRecordedOnce) {
  TopicConfig c;
  c.event_retention = 3'600'000;
  MakeTopic("orders", c);
  Subscribe("billing", R"({"dedupWindow": "1h"})");
  std::string id = Publish({}, "k1");
  EXPECT_EQ(Publish({}, "k1"), id);  // a duplicate: no second event
  auto page = engine_->messages().ListEvents("acme", "orders", EventQuery{});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->events.size(), 1u);
  clock_.Advance(3'600'001);
  ASSERT_TRUE(engine_->messages().SweepOnce().ok());
  EXPECT_EQ(engine_->messages().GetEvent("acme", "orders", id).status().code(),
            ErrorCode::kEventNotFound);
  EXPECT_EQ(Redeliver("billing", id).status().code(), ErrorCode::kEventNotFound);

  // eventRetention 0: no events at all.
  TopicConfig none;
  none.event_retention = 0;
  ASSERT_TRUE(engine_->topics().UpdateTopic(Op(), "acme", "orders", none).ok());
  Publish();
  page = engine_->messages().ListEvents("acme", "orders", EventQuery{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->events.empty());
}

TEST_F(TopicEventsTest, ATopicMadeAgainUnderTheSameNameStartsWithNoEvents) {
  MakeTopic("orders");
  Subscribe("billing");
  std::string id = Publish();
  ASSERT_TRUE(engine_->topics().DeleteTopic(Op(), "acme", "orders").ok());
  MakeTopic("orders");
  EXPECT_EQ(engine_->messages().GetEvent("acme", "orders", id).status().code(),
            ErrorCode::kEventNotFound);
  auto page = engine_->messages().ListEvents("acme", "orders", EventQuery{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->events.empty());
}

}  // namespace
}  // namespace redrive::engine
