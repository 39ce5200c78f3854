// Push delivery end to end inside the engine: a real SQLite store, real HTTP over 127.0.0.1 to a
// TestEndpoint that answers what each test says, and a manual clock for the retry schedule,
// the circuit's probe interval and the sustained-failure window.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/text.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "engine/push_dispatcher.h"
#include "push/test_endpoint.h"

namespace redrive::engine {
namespace {

using push::testing::TestEndpoint;

// Waits (real time, up to 10 s) for `done`.
bool WaitFor(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The Standard Webhooks signature computed by Python's hmac (an implementation that shares no
// code with redrive's), for one secret.
std::string PythonSign(const std::string& id, const std::string& ts, const std::string& body,
                       const std::string& secret) {
  std::string command =
      "python3 -c 'import sys, hmac, hashlib, base64\n"
      "i, t, b = (bytes.fromhex(a) for a in sys.argv[1:4])\n"
      "key = base64.b64decode(sys.argv[4][len(\"whsec_\"):])\n"
      "print(\"v1,\" + base64.b64encode(hmac.new(key, i + b\".\" + t + b\".\" + b, "
      "hashlib.sha256).digest()).decode(), end=\"\")'";
  command += " " + HexEncode(id) + " " + HexEncode(ts) + " " + HexEncode(body) + " " + secret;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  std::string out;
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

class PushTest : public EngineFixture {
 protected:
  PushTest() : EngineFixture(11) {}
  void SetUp() override {
    EngineFixture::SetUp();
    if (HasFatalFailure()) return;
    std::string error;
    ASSERT_TRUE(endpoint_.Start(&error)) << error;
    ASSERT_TRUE(engine_->topics().CreateTopic(Op(), "acme", "orders", TopicConfig{}).ok());
    engine_->Start();
  }
  void TearDown() override {
    engine_->Stop();
    endpoint_.Stop();
    EngineFixture::TearDown();
  }

  const Principal& Op() { return Tenancy::System(); }
  QueueInfo Subscribe(const std::string& name, const std::string& push_json,
                      const std::string& retry_json = R"({"maxDeliveries": 3,
                          "backoff": {"initial": "1s", "max": "1m", "jitter": 0}})") {
    QueueConfig c;
    auto push = nlohmann::json::parse(push_json);
    if (!push.contains("url")) push["url"] = endpoint_.url("/hooks/" + name);
    nlohmann::json attrs = {{"push", push}, {"retryPolicy", nlohmann::json::parse(retry_json)}};
    Status applied = ApplyQueueConfigJson(attrs, &c);
    EXPECT_TRUE(applied.ok()) << applied.ToString();
    auto s = engine_->topics().CreateSubscription(Op(), "acme", "orders", name, c);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s.value() : QueueInfo{};
  }
  std::vector<std::string> Publish(int n, const std::string& body = R"({"order":1})") {
    std::vector<NewMessage> m(n);
    for (auto& x : m) {
      x.body = body;
      x.attributes = {{"type", "order.created"}};
    }
    auto r = engine_->messages().PublishTopic("acme", "orders", std::move(m));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> ids;
    if (r.ok()) {
      for (const auto& o : r.value()) ids.push_back(o.id);
    }
    return ids;
  }
  store::QueueDepth Depth(const std::string& sub) {
    return engine_->queues().GetQueue("acme", "orders:" + sub).value().depth;
  }
  EndpointStatus Health(const std::string& sub) {
    for (const auto& e : engine_->push().Endpoints()) {
      if (e.subscription == sub) return e;
    }
    return EndpointStatus{};
  }

  TestEndpoint endpoint_;
};

TEST_F(PushTest, DeliversSignedRequestsAndAcksOnSuccess) {
  QueueInfo sub = Subscribe("billing", R"({"headers": {"x-api-key": "k1"}})");
  std::string secret = sub.config.push->secrets[0].secret;
  auto ids = Publish(3);
  ASSERT_TRUE(WaitFor([&] { return endpoint_.requests() >= 3; }));
  ASSERT_TRUE(WaitFor([&] { return Depth("billing").leased + Depth("billing").ready == 0; }));
  auto got = endpoint_.received();
  ASSERT_EQ(got.size(), 3u);
  std::set<std::string> seen;
  for (const auto& r : got) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/hooks/billing");
    EXPECT_EQ(r.body, R"({"order":1})");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(r.headers.at("x-api-key"), "k1");
    EXPECT_EQ(r.headers.at("redrive-topic"), "orders");
    EXPECT_EQ(r.headers.at("redrive-subscription"), "billing");
    const std::string& id = r.headers.at("webhook-id");
    seen.insert(id);
    EXPECT_EQ(r.headers.at("webhook-signature"),
              PythonSign(id, r.headers.at("webhook-timestamp"), r.body, secret));
  }
  EXPECT_EQ(seen,
            (std::set<std::string>{ids[0] + ":billing", ids[1] + ":billing", ids[2] + ":billing"}));
  EXPECT_EQ(engine_->push().counters().succeeded, 3);
  EXPECT_EQ(Health("billing").delivered, 3);
}

TEST_F(PushTest, PermanentCodesDeadLetterAtOnceWithTheAnswerInTheJournal) {
  Subscribe("crm", "{}");
  endpoint_.Answer(422, "", R"({"error":"unknown customer"})");
  auto ids = Publish(1);
  ASSERT_TRUE(
      WaitFor([&] { return engine_->dead_letters().GetDeadLetter("acme", ids[0] + ":crm").ok(); }));
  auto dl = engine_->dead_letters().GetDeadLetter("acme", ids[0] + ":crm").value();
  EXPECT_EQ(dl.reason, "permanent-failure");
  EXPECT_EQ(dl.cause, "HTTP 422");
  EXPECT_EQ(dl.delivery_count, 1);
  ASSERT_EQ(dl.journal.attempts.size(), 1u);
  EXPECT_EQ(dl.journal.attempts[0].status, 422);
  EXPECT_EQ(dl.journal.attempts[0].response, R"({"error":"unknown customer"})");
  EXPECT_EQ(dl.journal.attempts[0].consumer, "push");
  EXPECT_EQ(engine_->push().counters().permanent, 1);
  EXPECT_EQ(endpoint_.requests(), 1);
}

TEST_F(PushTest, RetriesByScheduleHonouringRetryAfterThenDeadLetters) {
  Subscribe("audit", "{}", R"({"schedule": ["2s", "5s"]})");
  endpoint_.Answer(503, "4");  // Retry-After: 4s, more than the first delay of the schedule
  auto ids = Publish(1);
  ASSERT_TRUE(WaitFor([&] { return endpoint_.requests() == 1 && Depth("audit").delayed == 1; }));
  clock_.Advance(3000);  // not yet: Retry-After asked for 4s
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(endpoint_.requests(), 1);
  clock_.Advance(1100);
  ASSERT_TRUE(WaitFor([&] { return endpoint_.requests() == 2 && Depth("audit").delayed == 1; }));
  endpoint_.Answer(500);
  clock_.Advance(5100);
  ASSERT_TRUE(WaitFor(
      [&] { return engine_->dead_letters().GetDeadLetter("acme", ids[0] + ":audit").ok(); }));
  auto dl = engine_->dead_letters().GetDeadLetter("acme", ids[0] + ":audit").value();
  EXPECT_EQ(dl.reason, "max-deliveries");
  EXPECT_EQ(dl.cause, "HTTP 500");
  ASSERT_EQ(dl.journal.attempts.size(), 3u);
  EXPECT_EQ(dl.journal.attempts[0].status, 503);
  EXPECT_EQ(dl.journal.attempts[2].status, 500);
  EXPECT_EQ(endpoint_.requests(), 3);
}

TEST_F(PushTest, CircuitOpensAfterFailuresThenOneProbeClosesItAndAutoRedriveBringsTheRestBack) {
  Subscribe("erp",
            R"({"circuitFailures": 3, "probeInterval": "30s", "maxInFlight": 1,
                "autoRedriveOnRecovery": {"rate": 1000}})",
            R"({"maxDeliveries": 1})");
  endpoint_.Answer(503);
  Publish(10);
  // Three failures (each dead-lettered: one delivery allowed), then the circuit opens and the
  // other seven wait in the queue, untouched.
  ASSERT_TRUE(WaitFor([&] { return Health("erp").circuit == CircuitState::kOpen; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(endpoint_.requests(), 3);
  EXPECT_EQ(Depth("erp").ready, 7);
  EXPECT_EQ(Depth("erp").dead_lettered, 3);
  // Still open: the next probe is 30s away on the clock.
  clock_.Advance(29'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(endpoint_.requests(), 3);
  // The endpoint is back; one probe goes out, succeeds, and the circuit closes.
  endpoint_.Answer(200);
  clock_.Advance(1'500);
  ASSERT_TRUE(WaitFor([&] { return Depth("erp").ready == 0 && Depth("erp").leased == 0; }));
  EXPECT_EQ(Health("erp").circuit, CircuitState::kClosed);
  EXPECT_GE(engine_->push().counters().probes, 1);
  // The three dead letters go back through a redrive job, and are delivered.
  ASSERT_TRUE(WaitFor([&] {
    clock_.Advance(100);
    return Depth("erp").dead_lettered == 0 && Depth("erp").ready == 0 && Depth("erp").leased == 0;
  }));
  EXPECT_EQ(engine_->push().counters().auto_redrives, 1);
  EXPECT_EQ(Health("erp").delivered, 10);
}

TEST_F(PushTest, GoneDisablesTheEndpointAndKeepsItsMessagesUntilEnabled) {
  Subscribe("old", R"({"maxInFlight": 1})");
  endpoint_.Answer(410);
  auto ids = Publish(3);
  ASSERT_TRUE(WaitFor([&] {
    auto s = engine_->topics().GetSubscription("acme", "orders", "old");
    return s.ok() && s->config.push->disabled;
  }));
  auto s = engine_->topics().GetSubscription("acme", "orders", "old").value();
  EXPECT_EQ(s.config.push->disabled_reason, "the endpoint answered 410 Gone");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(endpoint_.requests(), 1);
  EXPECT_EQ(Depth("old").ready, 2);  // kept, not dropped
  auto first = engine_->dead_letters().GetDeadLetter("acme", ids[0] + ":old");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->reason, "permanent-failure");
  // An operator fixes the receiver and enables the endpoint: the rest is delivered.
  endpoint_.Answer(200);
  ASSERT_TRUE(engine_->topics().SetEndpointDisabled(Op(), "acme", "orders", "old", false, "").ok());
  ASSERT_TRUE(WaitFor([&] { return Depth("old").ready == 0 && Depth("old").leased == 0; }));
  EXPECT_EQ(endpoint_.requests(), 3);
}

TEST_F(PushTest, SustainedFailureDisablesTheEndpoint) {
  Subscribe("flaky", R"({"circuitFailures": 1000, "disableAfter": "10m"})",
            R"({"maxDeliveries": -1, "backoff": {"initial": "1s", "max": "1s", "jitter": 0}})");
  endpoint_.Answer(500);
  Publish(1);
  ASSERT_TRUE(WaitFor([&] { return endpoint_.requests() >= 1 && Depth("flaky").delayed == 1; }));
  for (int i = 0; i < 12; ++i) {
    int before = endpoint_.requests();
    clock_.Advance(60'000);
    ASSERT_TRUE(WaitFor([&] {
      auto s = engine_->topics().GetSubscription("acme", "orders", "flaky");
      // The next attempt was made and its failure settled (the message waits for its retry).
      return (endpoint_.requests() > before && Depth("flaky").delayed == 1) ||
             (s.ok() && s->config.push->disabled);
    })) << "round "
        << i << ": requests " << endpoint_.requests() << ", ready " << Depth("flaky").ready
        << ", delayed " << Depth("flaky").delayed << ", leased " << Depth("flaky").leased
        << ", in flight " << Health("flaky").in_flight;
  }
  auto s = engine_->topics().GetSubscription("acme", "orders", "flaky").value();
  ASSERT_TRUE(s.config.push->disabled);
  EXPECT_NE(s.config.push->disabled_reason.find("failing since"), std::string::npos);
  EXPECT_EQ(Depth("flaky").ready + Depth("flaky").delayed + Depth("flaky").leased, 1);
}

TEST_F(PushTest, AHangingEndpointHoldsOnlyItsOwnSlots) {
  TestEndpoint black_hole;
  ASSERT_TRUE(black_hole.Start());
  black_hole.Hang();
  QueueConfig c;
  nlohmann::json attrs = {{"push", {{"url", black_hole.url()}, {"maxInFlight", 4}}}};
  ASSERT_TRUE(ApplyQueueConfigJson(attrs, &c).ok());
  ASSERT_TRUE(engine_->topics().CreateSubscription(Op(), "acme", "orders", "hole", c).ok());
  Subscribe("fine", R"({"maxInFlight": 4})");
  Publish(40);
  // Every message reaches the healthy endpoint while the other holds its four slots.
  ASSERT_TRUE(WaitFor([&] { return Depth("fine").ready + Depth("fine").leased == 0; }));
  EXPECT_EQ(endpoint_.requests(), 40);
  ASSERT_TRUE(WaitFor([&] { return Health("hole").in_flight == 4; }));
  EXPECT_EQ(black_hole.requests(), 4);
  black_hole.Stop();
}

TEST_F(PushTest, TestSendReachesTheEndpointWhateverItsState) {
  QueueInfo sub = Subscribe("probe", "{}");
  endpoint_.Answer(204);
  auto q = engine_->queues().Lookup("acme", "orders:probe").value();
  auto r = engine_->push().TestSend(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 204);
  auto got = endpoint_.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].body.find("redrive.test"), std::string::npos);
  EXPECT_EQ(got[0].headers.at("webhook-signature"),
            PythonSign(got[0].headers.at("webhook-id"), got[0].headers.at("webhook-timestamp"),
                       got[0].body, sub.config.push->secrets[0].secret));
}

TEST_F(PushTest, AnUntrustedCertificateMakesAGroupDiagnosedAsTls) {
  // Its own CA, which nothing trusts: every delivery fails in the TLS handshake.
  TestEndpoint secure(push::testing::MakeTestCertificates());
  std::string error;
  ASSERT_TRUE(secure.Start(&error)) << error;
  Subscribe("billing", "{}");
  Subscribe("ledger", nlohmann::json{{"url", secure.url("/hooks/ledger")}}.dump(),
            R"({"maxDeliveries": 1})");
  TimeMs minute = clock_.Now() / kOutcomeMinute * kOutcomeMinute;
  Publish(3);
  ASSERT_TRUE(WaitFor([&] { return Depth("ledger").dead_lettered == 3; }));
  ASSERT_TRUE(WaitFor([&] { return Depth("billing").leased + Depth("billing").ready == 0; }));

  auto groups = engine_->dead_letters().ListFailureGroups("acme", "").value();
  ASSERT_EQ(groups.size(), 1u);
  const FailureGroup& g = groups[0];
  EXPECT_EQ(g.row.origin, "orders:ledger");
  EXPECT_NE(g.row.signature.find("| tls: "), std::string::npos) << g.row.signature;
  ASSERT_TRUE(g.diagnosis.has_value());
  EXPECT_EQ(g.diagnosis->kind, DiagnosisKind::kTls);
  EXPECT_EQ(g.diagnosis->since, minute);
  EXPECT_EQ(g.diagnosis->failed, 3);     // the subscription's own counts: TLS failures...
  EXPECT_EQ(g.diagnosis->succeeded, 0);  // ... and no success, whatever billing did
  EXPECT_EQ(g.diagnosis->recovered_at, 0);
  // The counts were those of the push dispatcher's acks and nacks.
  auto billing = engine_->outcomes().Series("acme", "orders:billing", 0).value();
  ASSERT_EQ(billing.size(), 1u);
  EXPECT_EQ(billing[0].succeeded, 3);
  EXPECT_EQ(billing[0].failed, 0);
  auto ledger = engine_->outcomes().Series("acme", "orders:ledger", 0).value();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].failed_tls, 3);
}

}  // namespace
}  // namespace redrive::engine
