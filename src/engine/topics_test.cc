// Topics and subscriptions over a real SQLite store with a manual clock: fan-out, filters,
// no-route, isolation of a failing subscription, and dead letters that go back to their
// subscription only.
#include "engine/topics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

class TopicsTest : public EngineFixture {
 protected:
  TopicsTest() : EngineFixture(7) {}

  const Principal& Op() { return Tenancy::System(); }
  void MakeTopic(const std::string& name, TopicConfig config = {}) {
    auto t = engine_->topics().CreateTopic(Op(), "acme", name, config);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
  }
  void Subscribe(const std::string& topic, const std::string& name, const std::string& attrs) {
    QueueConfig c;
    c.retry.max_deliveries = 2;
    c.retry.backoff = Backoff{1000, 2.0, 60'000, 0.0};
    ASSERT_TRUE(ApplyQueueConfigJson(nlohmann::json::parse(attrs), &c).ok());
    auto s = engine_->topics().CreateSubscription(Op(), "acme", topic, name, c);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  Result<std::vector<store::PublishOutcome>> Publish(const std::string& topic,
                                                     std::vector<store::Attributes> attrs) {
    std::vector<NewMessage> m(attrs.size());
    for (size_t i = 0; i < attrs.size(); ++i) {
      m[i].body = "body-" + std::to_string(i);
      m[i].attributes = attrs[i];
    }
    return engine_->messages().PublishTopic("acme", topic, std::move(m));
  }
  std::vector<Delivery> Receive(const std::string& queue) {
    ReceiveOptions o;
    o.max_messages = 10;
    auto r = engine_->messages().Receive("acme", queue, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : std::vector<Delivery>{};
  }
  void Nack(const std::string& queue, const Delivery& d) {
    NackRequest n;
    n.receipt = d.receipt;
    n.error = "HTTP 503";
    auto r = engine_->messages().Nack("acme", queue, {n});
    ASSERT_TRUE(r.ok() && r.value()[0].ok());
  }
  void Ack(const std::string& queue, const std::vector<Delivery>& ds) {
    std::vector<std::string> receipts;
    for (const auto& d : ds) receipts.push_back(d.receipt);
    auto r = engine_->messages().Ack("acme", queue, receipts);
    ASSERT_TRUE(r.ok());
  }
  int64_t Ready(const std::string& queue) {
    auto q = engine_->queues().GetQueue("acme", queue);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? q->depth.ready : -1;
  }
};

TEST_F(TopicsTest, FansOutToEverySubscriptionWhoseFilterMatches) {
  MakeTopic("orders");
  Subscribe("orders", "all", "{}");
  Subscribe("orders", "eu", R"({"filter": {"region": {"prefix": "eu-"}}})");
  Subscribe("orders", "paid", R"({"filter": {"type": ["order.paid", "order.refunded"],
                                             "test": {"exists": false}}})");
  auto out = Publish("orders", {{{"region", "eu-west"}, {"type", "order.created"}},
                                {{"region", "us-east"}, {"type", "order.paid"}},
                                {{"region", "eu-north"}, {"type", "order.refunded"}},
                                {{"type", "order.paid"}, {"test", "1"}}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 4u);
  EXPECT_EQ(Ready("orders:all"), 4);
  EXPECT_EQ(Ready("orders:eu"), 2);
  EXPECT_EQ(Ready("orders:paid"), 2);
  // Each copy is named after the message and its subscription.
  auto eu = Receive("orders:eu");
  ASSERT_EQ(eu.size(), 2u);
  EXPECT_EQ(eu[0].message.id, (*out)[0].id + ":eu");
  EXPECT_EQ(eu[1].message.id, (*out)[2].id + ":eu");
  EXPECT_EQ(eu[0].message.attributes.at("region"), "eu-west");
  EXPECT_EQ(engine_->counters().topic_published, 4);
  EXPECT_EQ(engine_->counters().topic_unrouted, 0);
}

TEST_F(TopicsTest, OneFailingSubscriptionDeadLettersItsCopyAndRestoreGoesBackToItOnly) {
  MakeTopic("orders");
  Subscribe("orders", "billing", "{}");
  Subscribe("orders", "audit", "{}");
  Subscribe("orders", "crm", "{}");
  auto out = Publish("orders", {{{"type", "order.created"}}});
  ASSERT_TRUE(out.ok());
  std::string id = (*out)[0].id;
  Ack("orders:billing", Receive("orders:billing"));
  Ack("orders:audit", Receive("orders:audit"));
  for (int i = 0; i < 2; ++i) {  // crm fails twice: maxDeliveries 2
    auto got = Receive("orders:crm");
    ASSERT_EQ(got.size(), 1u);
    Nack("orders:crm", got[0]);
    clock_.Advance(60'000);
  }
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id + ":crm");
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->origin, "orders:crm");
  EXPECT_EQ(dl->reason, "max-deliveries");
  auto doc = engine_->dead_letters().QueryDeadLetters("acme", DeadLetterQuery{});
  ASSERT_TRUE(doc.ok());
  ASSERT_EQ(doc->items.size(), 1u);
  EXPECT_EQ(doc->items[0]["topic"], "orders");
  EXPECT_EQ(doc->items[0]["subscription"], "crm");

  DeadLetterTarget target;
  target.ids = {id + ":crm"};
  auto restored = engine_->dead_letters().RestoreDeadLetters(Op(), "acme", target);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(restored->done, 1);
  EXPECT_EQ(Ready("orders:crm"), 1);
  EXPECT_EQ(Ready("orders:billing"), 0);  // the others, which had it, do not get it again
  EXPECT_EQ(Ready("orders:audit"), 0);
}

TEST_F(TopicsTest, AnExhaustedScriptSeesTheTopicAndTheSubscription) {
  MakeTopic("orders");
  Subscribe("orders", "crm", R"({"retryPolicy": {"maxDeliveries": 1, "onExhausted": "script",
      "script": "if failure.topic == 'orders' and failure.subscription == 'crm' then reroute('orders-crm-parked') else deadLetter() end"}})");
  ASSERT_TRUE(engine_->queues().CreateQueue("acme", "orders-crm-parked", QueueConfig{}).ok());
  auto out = Publish("orders", {{}});
  ASSERT_TRUE(out.ok());
  auto got = Receive("orders:crm");
  ASSERT_EQ(got.size(), 1u);
  Nack("orders:crm", got[0]);
  EXPECT_EQ(Ready("orders-crm-parked"), 1);
}

TEST_F(TopicsTest, AMessageNoSubscriptionTakesIsCountedOrDeadLetteredAsNoRoute) {
  MakeTopic("counted");
  Subscribe("counted", "eu", R"({"filter": {"region": "eu"}})");
  ASSERT_TRUE(Publish("counted", {{{"region", "us"}}}).ok());
  EXPECT_EQ(engine_->counters().topic_unrouted, 1);
  EXPECT_EQ(Ready("counted:eu"), 0);

  TopicConfig dl;
  dl.no_route = NoRouteAction::kDeadLetter;
  MakeTopic("strict", dl);
  Subscribe("strict", "eu", R"({"filter": {"region": "eu"}})");
  auto out = Publish("strict", {{{"region", "us"}}, {{"region", "eu"}}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto d = engine_->dead_letters().GetDeadLetter("acme", (*out)[0].id);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->reason, "no-route");
  EXPECT_EQ(d->origin, "strict");
  EXPECT_EQ(Ready("strict:eu"), 1);
  // A no-route dead letter cannot be restored to the topic: it says where to send it.
  DeadLetterTarget target;
  target.ids = {(*out)[0].id};
  auto restored = engine_->dead_letters().RestoreDeadLetters(Op(), "acme", target);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->done, 0);
  ASSERT_EQ(restored->skipped_items.size(), 1u);
  EXPECT_NE(restored->skipped_items[0].detail.find("is a topic"), std::string::npos);
  auto rerouted = engine_->dead_letters().RerouteDeadLetters(Op(), "acme", target, "strict:eu");
  ASSERT_TRUE(rerouted.ok()) << rerouted.status().ToString();
  EXPECT_EQ(rerouted->done, 1);
  EXPECT_EQ(Ready("strict:eu"), 2);
}

TEST_F(TopicsTest, AFullSubscriptionRefusesThePublishForAll) {
  MakeTopic("orders");
  Subscribe("orders", "roomy", "{}");
  Subscribe("orders", "tiny", R"({"maxLength": 1})");
  ASSERT_TRUE(Publish("orders", {{}}).ok());
  auto second = Publish("orders", {{}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kQueueFull);
  EXPECT_NE(second.status().message().find("subscription tiny"), std::string::npos);
  EXPECT_EQ(Ready("orders:roomy"), 1);  // nothing of the refused publish is stored
  EXPECT_EQ(Ready("orders:tiny"), 1);
}

TEST_F(TopicsTest, RepeatedIdempotencyKeyIsADuplicateOfTheFirstPublish) {
  MakeTopic("orders");
  Subscribe("orders", "a", "{}");
  Subscribe("orders", "b", "{}");
  std::vector<NewMessage> m(1);
  m[0].body = "x";
  m[0].idempotency_key = "k1";
  auto first = engine_->messages().PublishTopic("acme", "orders", m);
  auto again = engine_->messages().PublishTopic("acme", "orders", m);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_FALSE((*first)[0].duplicate);
  EXPECT_TRUE((*again)[0].duplicate);
  EXPECT_EQ((*again)[0].id, (*first)[0].id);
  EXPECT_EQ(Ready("orders:a"), 1);
  EXPECT_EQ(Ready("orders:b"), 1);
}

TEST_F(TopicsTest, NamesAndRefusals) {
  MakeTopic("orders");
  // A topic is not a queue: no receive, no queue routes; a subscription is.
  ReceiveOptions o;
  EXPECT_EQ(engine_->messages().Receive("acme", "orders", o).status().code(),
            ErrorCode::kNotAQueue);
  EXPECT_EQ(engine_->queues().GetQueue("acme", "orders").status().code(), ErrorCode::kNotAQueue);
  EXPECT_EQ(engine_->queues().DeleteQueue("acme", "orders").code(), ErrorCode::kNotAQueue);
  EXPECT_EQ(engine_->topics().CreateTopic(Op(), "acme", "orders", {}).status().code(),
            ErrorCode::kAlreadyExists);
  ASSERT_TRUE(engine_->queues().CreateQueue("acme", "plain", QueueConfig{}).ok());
  EXPECT_EQ(engine_->topics().CreateTopic(Op(), "acme", "plain", {}).status().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(engine_->messages().PublishTopic("acme", "plain", {NewMessage{}}).status().code(),
            ErrorCode::kTopicNotFound);
  EXPECT_EQ(engine_->topics().GetSubscription("acme", "orders", "nope").status().code(),
            ErrorCode::kSubscriptionNotFound);
  EXPECT_EQ(engine_->topics().GetTopic("acme", "nope").status().code(), ErrorCode::kTopicNotFound);
  // Users cannot make a "topic:subscription" queue, nor give a plain queue a filter.
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "orders:x", QueueConfig{}).status().code(),
            ErrorCode::kInvalidName);
  QueueConfig filtered;
  ASSERT_TRUE(
      ApplyQueueConfigJson(nlohmann::json::parse(R"({"filter": {"a": "b"}})"), &filtered).ok());
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "other", filtered).status().code(),
            ErrorCode::kInvalidArgument);
  // Bad filters and endpoints name the field.
  QueueConfig c;
  Status bad = ApplyQueueConfigJson(nlohmann::json::parse(R"({"filter": {"a": {"near": 1}}})"), &c);
  EXPECT_EQ(bad.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("filter.a"), std::string::npos);
  QueueConfig p;
  ASSERT_TRUE(
      ApplyQueueConfigJson(nlohmann::json::parse(R"({"push": {"url": "ftp://x"}})"), &p).ok());
  auto refused = engine_->topics().CreateSubscription(Op(), "acme", "orders", "hook", p);
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("push.url"), std::string::npos);
  EXPECT_EQ(engine_->topics().ListSubscriptions("acme", "orders")->size(), 0u);
}

TEST_F(TopicsTest, PushSubscriptionGetsASecretAndRotationKeepsTheOldOneForTheOverlap) {
  MakeTopic("orders");
  QueueConfig c;
  ASSERT_TRUE(ApplyQueueConfigJson(
                  nlohmann::json::parse(R"({"push": {"url": "http://127.0.0.1:9/h"}})"), &c)
                  .ok());
  auto s = engine_->topics().CreateSubscription(Op(), "acme", "orders", "hook", c);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s->config.push);
  ASSERT_EQ(s->config.push->secrets.size(), 1u);
  std::string first = s->config.push->secrets[0].secret;
  EXPECT_EQ(first.rfind("whsec_", 0), 0u);
  // The API's form shows hints only.
  std::string shown = QueueConfigToJson(s->config).dump();
  EXPECT_EQ(shown.find(first), std::string::npos);

  auto rotated = engine_->topics().RotateSecret(Op(), "acme", "orders", "hook", 3'600'000);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  const PushConfig& push = *rotated->config.push;
  ASSERT_EQ(push.secrets.size(), 2u);
  EXPECT_NE(push.secrets[0].secret, first);
  EXPECT_EQ(push.SigningSecrets(clock_.Now()).size(), 2u);
  clock_.Advance(3'600'001);
  EXPECT_EQ(push.SigningSecrets(clock_.Now()), std::vector<std::string>{push.secrets[0].secret});
  // Audited without the secret.
  auto disabled =
      engine_->topics().SetEndpointDisabled(Op(), "acme", "orders", "hook", true, "maintenance");
  ASSERT_TRUE(disabled.ok());
  EXPECT_TRUE(disabled->config.push->disabled);
  EXPECT_EQ(disabled->config.push->disabled_reason, "maintenance");
  // Still disabled after a reload from the store.
  engine_.reset();
  engine_ = std::make_unique<Engine>(*store_, clock_, random_);
  auto again = engine_->topics().GetSubscription("acme", "orders", "hook");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->config.push->disabled);
  EXPECT_EQ(again->config.push->secrets.size(), 2u);
}

TEST_F(TopicsTest, DeletingATopicDeletesItsSubscriptionsButKeepsTheirDeadLetters) {
  MakeTopic("orders");
  Subscribe("orders", "a", R"({"retryPolicy": {"maxDeliveries": 1}})");
  auto out = Publish("orders", {{}});
  ASSERT_TRUE(out.ok());
  auto got = Receive("orders:a");
  ASSERT_EQ(got.size(), 1u);
  Nack("orders:a", got[0]);
  ASSERT_TRUE(engine_->dead_letters().GetDeadLetter("acme", (*out)[0].id + ":a").ok());
  ASSERT_TRUE(engine_->topics().DeleteTopic(Op(), "acme", "orders").ok());
  EXPECT_EQ(engine_->queues().GetQueue("acme", "orders:a").status().code(),
            ErrorCode::kQueueNotFound);
  EXPECT_EQ(engine_->topics().GetTopic("acme", "orders").status().code(),
            ErrorCode::kTopicNotFound);
  EXPECT_TRUE(engine_->dead_letters().GetDeadLetter("acme", (*out)[0].id + ":a").ok());
}

}  // namespace
}  // namespace redrive::engine
