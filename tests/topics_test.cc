// Topics, subscriptions and push endpoints over HTTP against the real `redrive serve` binary,
// with a webhook receiver (push::testing::TestEndpoint) on 127.0.0.1.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
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
