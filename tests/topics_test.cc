// Topics, subscriptions and push endpoints over HTTP against the real `redrive serve` binary,
// with a webhook receiver (push::testing::TestEndpoint) on 127.0.0.1.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "push/test_endpoint.h"
#include "tests/harness.h"

namespace redrive::testing {
namespace {

bool WaitFor(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

class TopicsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>();
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    CreateTenant(*op_, "acme");
    app_ = std::make_unique<HttpClient>(server_->url(), CreateToken(*op_, "acme", "app"));
    ASSERT_TRUE(endpoint_.Start(&error)) << error;
  }
  void TearDown() override { endpoint_.Stop(); }
  std::string T(const std::string& tail = "") { return "/v1/tenants/acme/topics" + tail; }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_, app_;
  push::testing::TestEndpoint endpoint_;
};

TEST_F(TopicsHttpTest, ThreeSubscriptionsOneFailsAndItsDeadLetterGoesBackToItAlone) {
  ASSERT_EQ(app_->Post(T(), {{"name", "orders"}}).status, 201);
  for (const char* name : {"billing", "audit", "crm"}) {
    auto s =
        app_->Post(T("/orders/subscriptions"),
                   {{"name", name}, {"attributes", {{"retryPolicy", {{"maxDeliveries", 1}}}}}});
    ASSERT_EQ(s.status, 201) << s.body;
    EXPECT_EQ(s.Json()["kind"], "subscription");
    EXPECT_EQ(s.Json()["name"], std::string("orders:") + name);
  }
  auto topic = app_->Get(T("/orders")).Json();
  EXPECT_EQ(topic["subscriptions"].size(), 3u);

  auto pub =
      app_->Post(T("/orders/messages"),
                 {{"messages", {{{"body", "{\"order\":7}"}, {"attributes", {{"k", "v"}}}}}}});
  ASSERT_EQ(pub.status, 201) << pub.body;
  std::string id = pub.Json()["messages"][0]["id"];
  for (const char* name : {"billing", "audit", "crm"}) {
    auto got = app_->Post(T(std::string("/orders/subscriptions/") + name + "/receive"),
                          {{"maxMessages", 10}});
    ASSERT_EQ(got.status, 200) << got.body;
    ASSERT_EQ(got.Json()["messages"].size(), 1u) << name;
    json m = got.Json()["messages"][0];
    EXPECT_EQ(m["id"], id + ":" + name);
    std::string receipt = m["receipt"];
    std::string path = T(std::string("/orders/subscriptions/") + name);
    if (std::string(name) == "crm") {
      auto n = app_->Post(path + "/nack",
                          {{"nacks", {{{"receipt", receipt}, {"error", "CRM said no"}}}}});
      ASSERT_EQ(n.status, 200) << n.body;
    } else {
      ASSERT_EQ(app_->Post(path + "/ack", {{"receipts", {receipt}}}).status, 200);
    }
  }
  auto dl = app_->Get("/v1/tenants/acme/dead-letters/" + id + ":crm");
  ASSERT_EQ(dl.status, 200) << dl.body;
  EXPECT_EQ(dl.Json()["topic"], "orders");
  EXPECT_EQ(dl.Json()["subscription"], "crm");
  EXPECT_EQ(dl.Json()["origin"], "orders:crm");
  auto by_sub = app_->Get("/v1/tenants/acme/dead-letters?_queryFilter=" +
                          std::string("subscription%20eq%20%22crm%22"));
  ASSERT_EQ(by_sub.status, 200) << by_sub.body;
  EXPECT_EQ(by_sub.Json()["result"].size(), 1u) << by_sub.body;

  auto restored =
      app_->Post("/v1/tenants/acme/dead-letters/" + id + ":crm/restore", json::object());
  ASSERT_EQ(restored.status, 200) << restored.body;
  for (const char* name : {"billing", "audit", "crm"}) {
    auto q = app_->Get(T(std::string("/orders/subscriptions/") + name)).Json();
    EXPECT_EQ(q["depth"]["ready"], std::string(name) == "crm" ? 1 : 0) << name;
  }
}

TEST_F(TopicsHttpTest, EventsShowEachSubscriptionsStateAndOneMessageCanBeRedelivered) {
  ASSERT_EQ(app_->Post(T(), {{"name", "orders"}}).status, 201);
  for (const char* name : {"billing", "crm"}) {
    ASSERT_EQ(
        app_->Post(T("/orders/subscriptions"),
                   {{"name", name}, {"attributes", {{"retryPolicy", {{"maxDeliveries", 1}}}}}})
            .status,
        201);
  }
  auto pub = app_->Post(
      T("/orders/messages"),
      {{"messages",
        {{{"body", "{\"order\":7}"}, {"attributes", {{"k", "v"}}}}, {{"body", "second"}}}}});
  ASSERT_EQ(pub.status, 201) << pub.body;
  std::string id = pub.Json()["messages"][0]["id"];
  std::string second = pub.Json()["messages"][1]["id"];
  // billing acks the first message; crm rejects it (a dead letter); both leave the second be.
  for (const char* name : {"billing", "crm"}) {
    std::string path = T(std::string("/orders/subscriptions/") + name);
    auto got = app_->Post(path + "/receive", {{"maxMessages", 1}});
    ASSERT_EQ(got.Json()["messages"].size(), 1u) << got.body;
    std::string receipt = got.Json()["messages"][0]["receipt"];
    if (std::string(name) == "crm") {
      ASSERT_EQ(
          app_->Post(path + "/nack", {{"nacks", {{{"receipt", receipt}, {"error", "no"}}}}}).status,
          200);
    } else {
      ASSERT_EQ(app_->Post(path + "/ack", {{"receipts", {receipt}}}).status, 200);
    }
  }
  auto all = app_->Get(T("/orders/events"));
  ASSERT_EQ(all.status, 200) << all.body;
  ASSERT_EQ(all.Json()["events"].size(), 2u);
  EXPECT_EQ(all.Json()["events"][0]["id"], second);  // newest first
  EXPECT_TRUE(all.Json()["nextCursor"].is_null());

  auto failed = app_->Get(T("/orders/events?state=dead-lettered"));
  ASSERT_EQ(failed.status, 200) << failed.body;
  json events = failed.Json()["events"];
  ASSERT_EQ(events.size(), 1u) << failed.body;
  EXPECT_EQ(events[0]["id"], id);
  EXPECT_EQ(events[0]["attributes"]["k"], "v");
  EXPECT_EQ(events[0]["bodySize"], 11);
  std::map<std::string, json> by;
  for (const auto& d : events[0]["deliveries"]) by[d["subscription"]] = d;
  EXPECT_EQ(by["billing"]["state"], "delivered");
  EXPECT_TRUE(by["billing"]["deliveredAt"].is_string());
  EXPECT_EQ(by["crm"]["state"], "dead-lettered");
  EXPECT_EQ(by["crm"]["deadLetterId"], id + ":crm");
  EXPECT_EQ(by["crm"]["reason"], "max-deliveries");

  auto one = app_->Get(T("/orders/events/" + id));
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Json()["body"], "{\"order\":7}");
  EXPECT_EQ(one.Json()["base64"], false);

  // Redeliver to billing: a fresh copy with the same id, pending, then received again.
  auto again = app_->Post(T("/orders/subscriptions/billing/redeliver"), {{"messageId", id}});
  ASSERT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(again.Json()["state"], "pending");
  EXPECT_EQ(again.Json()["redeliveries"], 1);
  auto got = app_->Post(T("/orders/subscriptions/billing/receive"), {{"maxMessages", 10}});
  ASSERT_EQ(got.status, 200);
  std::vector<std::string> ids;
  json received = got.Json();
  for (const auto& m : received["messages"]) ids.push_back(m["id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), id + ":billing"), ids.end()) << got.body;
  auto pending = app_->Get(T("/orders/events?subscription=billing&state=delivering"));
  EXPECT_EQ(pending.Json()["events"].size(), 2u) << pending.body;

  // Refusals: each with its code, and nothing changes.
  EXPECT_EQ(
      app_->Post(T("/orders/subscriptions/billing/redeliver"), {{"messageId", id}}).ErrorCode(),
      "delivery-pending");
  auto dl = app_->Post(T("/orders/subscriptions/crm/redeliver"), {{"messageId", id}});
  EXPECT_EQ(dl.status, 409);
  EXPECT_EQ(dl.ErrorCode(), "delivery-dead-lettered");
  EXPECT_NE(dl.body.find(id + ":crm"), std::string::npos);
  EXPECT_EQ(
      app_->Post(T("/orders/subscriptions/crm/redeliver"), {{"messageId", "01NOPE"}}).ErrorCode(),
      "event-not-found");
  EXPECT_EQ(app_->Post(T("/orders/subscriptions/crm/redeliver"), json::object()).ErrorCode(),
            "missing-field");
  EXPECT_EQ(app_->Post(T("/orders/subscriptions/crm/redeliver"), {{"messageId", id}, {"x", 1}})
                .ErrorCode(),
            "unknown-field");
  EXPECT_EQ(app_->Get(T("/orders/events?state=lost")).ErrorCode(), "invalid-query");
  EXPECT_EQ(app_->Get(T("/orders/events?since=yesterday")).ErrorCode(), "invalid-query");
  EXPECT_EQ(app_->Get(T("/orders/events?limit=0")).ErrorCode(), "invalid-argument");
  EXPECT_EQ(app_->Get(T("/orders/events?cursor=abc")).ErrorCode(), "invalid-query");
  EXPECT_EQ(app_->Get(T("/orders/events/01NOPE")).ErrorCode(), "event-not-found");
  EXPECT_EQ(app_->Get(T("/nope/events")).ErrorCode(), "topic-not-found");
  EXPECT_EQ(app_->Get("/v1/tenants/acme/dead-letters/" + id + ":crm").status, 200);
  // A consumer token may read events, not redeliver.
  HttpClient consumer(server_->url(), CreateToken(*op_, "acme", "reader", {"consume"}));
  EXPECT_EQ(consumer.Get(T("/orders/events")).status, 200);
  EXPECT_EQ(
      consumer.Post(T("/orders/subscriptions/crm/redeliver"), {{"messageId", second}}).ErrorCode(),
      "forbidden");
}

TEST_F(TopicsHttpTest, BadRequestsAreRefusedWithStableCodesAndChangeNothing) {
  ASSERT_EQ(app_->Post(T(), {{"name", "orders"}}).status, 201);
  EXPECT_EQ(app_->Post(T(), {{"name", "orders"}}).ErrorCode(), "already-exists");
  EXPECT_EQ(app_->Get(T("/nope")).ErrorCode(), "topic-not-found");
  EXPECT_EQ(app_->Get(T("/orders/subscriptions/nope")).ErrorCode(), "subscription-not-found");
  EXPECT_EQ(app_->Post(T("/nope/messages"), {{"messages", {{{"body", "x"}}}}}).ErrorCode(),
            "topic-not-found");
  auto as_queue = app_->Post("/v1/tenants/acme/queues/orders/receive", json::object());
  EXPECT_EQ(as_queue.status, 409);
  EXPECT_EQ(as_queue.ErrorCode(), "not-a-queue");
  auto bad_filter =
      app_->Post(T("/orders/subscriptions"),
                 {{"name", "x"}, {"attributes", {{"filter", {{"region", {{"near", "eu"}}}}}}}});
  EXPECT_EQ(bad_filter.status, 400);
  EXPECT_EQ(bad_filter.ErrorCode(), "invalid-argument");
  EXPECT_NE(bad_filter.body.find("filter.region"), std::string::npos);
  auto bad_url = app_->Post(T("/orders/subscriptions"),
                            {{"name", "x"}, {"attributes", {{"push", {{"url", "ftp://h"}}}}}});
  EXPECT_EQ(bad_url.ErrorCode(), "invalid-argument");
  auto bad_secret = app_->Post(
      T("/orders/subscriptions"),
      {{"name", "x"},
       {"attributes", {{"push", {{"url", endpoint_.url()}, {"secret", "whsec_short"}}}}}});
  EXPECT_EQ(bad_secret.ErrorCode(), "invalid-argument");
  auto plain_filter = app_->Post("/v1/tenants/acme/queues",
                                 {{"name", "plain"}, {"attributes", {{"filter", {{"a", "b"}}}}}});
  EXPECT_EQ(plain_filter.ErrorCode(), "invalid-argument");
  EXPECT_EQ(app_->Get(T("/orders")).Json()["subscriptions"].size(), 0u);
  EXPECT_EQ(app_->Get("/v1/tenants/acme/queues/plain").ErrorCode(), "queue-not-found");
}

TEST_F(TopicsHttpTest, PushSubscriptionDeliversAndTheEndpointCanBeOperated) {
  ASSERT_EQ(app_->Post(T(), {{"name", "orders"}}).status, 201);
  auto sub = app_->Post(T("/orders/subscriptions"),
                        {{"name", "hook"}, {"attributes", {{"push", {{"url", endpoint_.url()}}}}}});
  ASSERT_EQ(sub.status, 201) << sub.body;
  std::string secret = sub.Json()["secret"];
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u);
  // Shown once: GET has hints only.
  auto shown = app_->Get(T("/orders/subscriptions/hook"));
  EXPECT_EQ(shown.body.find(secret), std::string::npos);
  ASSERT_EQ(app_->Post(T("/orders/messages"), {{"messages", {{{"body", "hello"}}}}}).status, 201);
  ASSERT_TRUE(WaitFor([&] { return endpoint_.requests() == 1; }));
  EXPECT_EQ(endpoint_.received()[0].body, "hello");
  ASSERT_TRUE(WaitFor([&] {
    return app_->Get(T("/orders/subscriptions/hook/endpoint")).Json().value("delivered", 0) == 1;
  }));
  auto health = app_->Get(T("/orders/subscriptions/hook/endpoint")).Json();
  EXPECT_EQ(health["circuit"], "closed");

  // Disabled: messages wait; enabled: they go.
  auto off = app_->Post(T("/orders/subscriptions/hook/endpoint/disable"), {{"reason", "deploy"}});
  ASSERT_EQ(off.status, 200) << off.body;
  EXPECT_EQ(off.Json()["attributes"]["push"]["disabled"], true);
  ASSERT_EQ(app_->Post(T("/orders/messages"), {{"messages", {{{"body", "later"}}}}}).status, 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(endpoint_.requests(), 1);
  ASSERT_EQ(app_->Post(T("/orders/subscriptions/hook/endpoint/enable"), json::object()).status,
            200);
  ASSERT_TRUE(WaitFor([&] { return endpoint_.requests() == 2; }));

  auto rotated =
      app_->Post(T("/orders/subscriptions/hook/endpoint/rotate-secret"), {{"overlap", "1h"}});
  ASSERT_EQ(rotated.status, 200) << rotated.body;
  EXPECT_NE(rotated.Json()["secret"], secret);
  EXPECT_EQ(rotated.Json()["attributes"]["push"]["secretHints"].size(), 2u);
  endpoint_.Answer(418);
  auto test = app_->Post(T("/orders/subscriptions/hook/endpoint/test"), json::object());
  ASSERT_EQ(test.status, 200) << test.body;
  EXPECT_EQ(test.Json()["status"], 418);
  EXPECT_EQ(test.Json()["ok"], false);
  // During the overlap, two signatures, space-separated.
  std::string sig = endpoint_.received().back().headers.at("webhook-signature");
  EXPECT_NE(sig.find(' '), std::string::npos) << sig;

  auto metrics = op_->Get("/metrics").body;
  EXPECT_NE(metrics.find("redrive_push_deliveries_total{outcome=\"success\"} 2"),
            std::string::npos);
  EXPECT_NE(metrics.find("redrive_push_endpoint_circuit{tenant=\"acme\",topic=\"orders\","
                         "subscription=\"hook\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics.find("redrive_topic_messages_published_total 2"), std::string::npos);
}

}  // namespace
}  // namespace redrive::testing

namespace redrive::testing {
namespace {

// Topics and subscriptions declared in the config file exist after a start; a restart keeps a
// push subscription's secret and its endpoint's state, which are the server's, not the file's.
TEST(TopicsConfigTest, DeclaredTopicsAndSubscriptionsSurviveARestartWithTheirSecrets) {
  std::string dir = MakeTempDir();
  std::string config = dir + "/redrive.toml";
  std::ofstream(config) << R"([[tenants]]
name = "acme"
  [[tenants.topics]]
  name = "orders"
  noRoute = "dead-letter"
    [[tenants.topics.subscriptions]]
    name = "eu"
    filter = { region = { prefix = "eu-" } }
    retryPolicy = { schedule = "akamai" }
    [[tenants.topics.subscriptions]]
    name = "hook"
    push = { url = "http://127.0.0.1:9/hook", maxInFlight = 4 }
)";
  std::string hint, disabled_reason;
  for (int round = 0; round < 2; ++round) {
    ServerProcess server(dir + "/data", {"--config", config});
    std::string error;
    ASSERT_TRUE(server.Start(&error)) << error;
    HttpClient op(server.url(), server.operator_token());
    auto topic = op.Get("/v1/tenants/acme/topics/orders");
    ASSERT_EQ(topic.status, 200) << topic.body;
    EXPECT_EQ(topic.Json()["attributes"]["noRoute"], "dead-letter");
    ASSERT_EQ(topic.Json()["subscriptions"].size(), 2u);
    auto eu = op.Get("/v1/tenants/acme/topics/orders/subscriptions/eu").Json();
    EXPECT_EQ(eu["attributes"]["filter"]["region"]["prefix"], "eu-");
    EXPECT_EQ(eu["attributes"]["retryPolicy"]["schedule"], "akamai");
    auto hook = op.Get("/v1/tenants/acme/topics/orders/subscriptions/hook").Json();
    std::string now_hint = hook["attributes"]["push"]["secretHints"][0]["hint"];
    if (round == 0) {
      hint = now_hint;
      auto off = op.Post("/v1/tenants/acme/topics/orders/subscriptions/hook/endpoint/disable",
                         {{"reason", "kept across restarts"}});
      ASSERT_EQ(off.status, 200) << off.body;
    } else {
      EXPECT_EQ(now_hint, hint);
      EXPECT_EQ(hook["attributes"]["push"]["disabled"], true);
      EXPECT_EQ(hook["attributes"]["push"]["disabledReason"], "kept across restarts");
    }
    EXPECT_EQ(server.Stop(), 0);
  }
  // A bad declaration stops the server, naming the topic and subscription.
  std::ofstream(config) << R"([[tenants]]
name = "acme"
  [[tenants.topics]]
  name = "orders"
    [[tenants.topics.subscriptions]]
    name = "bad"
    filter = { region = { near = "eu" } }
)";
  ServerProcess bad(dir + "/data", {"--config", config});
  std::string error;
  EXPECT_FALSE(bad.Start(&error));
  EXPECT_NE(error.find("topic orders subscription bad"), std::string::npos) << error;
}

}  // namespace
}  // namespace redrive::testing
