// onExhausted script over a real SQLite store with a manual clock: each handler's effect on the
// message, a script that fails (errors, limits, the sandbox) dead-letters with reason script and
// leaves the queue working, and what the operator sees (log lines, counters).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/engine.h"
#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

class ScriptActionTest : public EngineFixture {
 protected:
  // A queue whose exhausted messages go to `script`, after `max_deliveries` deliveries 1s apart.
  // The attributes go through the JSON form, as the API and the config file give them.
  Status MakeScriptQueue(const std::string& name, const std::string& script, int max_deliveries = 2,
                         json more = json::object()) {
    json attributes = {{"retryPolicy",
                        {{"maxDeliveries", max_deliveries},
                         {"backoff", {{"initial", "1s"}, {"max", "1s"}, {"jitter", 0}}},
                         {"onExhausted", "script"},
                         {"script", script}}}};
    attributes.merge_patch(more);
    QueueConfig c;
    REDRIVE_RETURN_IF_ERROR(ApplyQueueConfigJson(attributes, &c));
    return engine_->queues().CreateQueue("acme", name, c).status();
  }
  void MakeQueue(const std::string& name) {
    ASSERT_TRUE(engine_->queues().CreateQueue("acme", name, QueueConfig{}).ok());
  }
  std::string Publish(const std::string& queue, const std::string& body,
                      store::Attributes attributes = {}) {
    std::vector<NewMessage> m(1);
    m[0].body = body;
    m[0].attributes = std::move(attributes);
    auto r = engine_->messages().Publish("acme", queue, std::move(m));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value()[0].id : "";
  }
  std::vector<Delivery> Receive(const std::string& queue) {
    ReceiveOptions o;
    o.max_messages = 10;
    o.consumer = "worker-1";
    auto r = engine_->messages().Receive("acme", queue, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : std::vector<Delivery>{};
  }
  // Receives the one message of `queue` and nacks it with `error`, then lets 1s pass (the
  // backoff). Fails the test when there is no message.
  void FailDelivery(const std::string& queue, const std::string& error = "HTTP 503") {
    auto got = Receive(queue);
    ASSERT_EQ(got.size(), 1u) << "no message to fail in " << queue;
    NackRequest n;
    n.receipt = got[0].receipt;
    n.reason = "handler-failed";
    n.error = error;
    auto r = engine_->messages().Nack("acme", queue, {n});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r.value()[0].ok()) << r.value()[0].ToString();
    clock_.Advance(1'000);
  }
  void Exhaust(const std::string& queue, int deliveries = 2) {
    for (int i = 0; i < deliveries; ++i) FailDelivery(queue);
  }
  int64_t InQueue(const std::string& queue) {
    auto d = engine_->queues().GetQueue("acme", queue).value().depth;
    return d.ready + d.delayed + d.leased;
  }
  int64_t Decisions(std::string_view decision) {
    for (size_t i = 0; i < kScriptDecisions.size(); ++i) {
      if (kScriptDecisions[i] == decision) return engine_->counters().script_decisions[i];
    }
    ADD_FAILURE() << "no decision " << decision;
    return -1;
  }
  bool IsDeadLetter(const std::string& id) {
    return engine_->dead_letters().GetDeadLetter("acme", id).ok();
  }
};

// Captures what the engine logs while it lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines_);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string str() const { return lines_.str(); }

 private:
  std::ostringstream lines_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(ScriptActionTest, DeadLetterHandlerDeadLettersAsWithoutAScript) {
  ASSERT_TRUE(MakeScriptQueue("orders", "deadLetter()").ok());
  std::string id = Publish("orders", "x");
  Exhaust("orders");
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->cause, "HTTP 503");
  EXPECT_EQ(dl->delivery_count, 2);
  EXPECT_EQ(dl->journal.attempts.size(), 2u);
  EXPECT_EQ(InQueue("orders"), 0);
  EXPECT_EQ(Decisions("dead-letter"), 1);
}

TEST_F(ScriptActionTest, DropHandlerDeletesTheMessage) {
  ASSERT_TRUE(MakeScriptQueue("orders", "drop()").ok());
  std::string id = Publish("orders", "x");
  Exhaust("orders");
  EXPECT_FALSE(IsDeadLetter(id));
  EXPECT_EQ(InQueue("orders"), 0);
  EXPECT_EQ(engine_->counters().dropped, 1);
  EXPECT_EQ(Decisions("drop"), 1);
}

// The third example of docs/scripts.md, against real queues.
TEST_F(ScriptActionTest, RerouteByAttributeMovesTheMessageOrDeadLettersSayingWhy) {
  const std::string script = R"(local region = failure.attributes.region
if region == nil or region == "" then
  deadLetter()
else
  reroute(region .. "-retry")
end)";
  MakeQueue("eu-retry");
  ASSERT_TRUE(MakeScriptQueue("orders", script).ok());

  std::string eu = Publish("orders", "to eu", {{"region", "eu"}});
  Exhaust("orders");
  auto moved = Receive("eu-retry");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].message.id, eu);
  EXPECT_EQ(moved[0].message.body, "to eu");
  EXPECT_EQ(moved[0].message.delivery_count, 1) << "a fresh message there";
  EXPECT_EQ(moved[0].message.journal.attempts.size(), 2u);
  EXPECT_EQ(moved[0].message.lineage.original_queue, "orders");
  EXPECT_EQ(moved[0].message.lineage.last_redriven_by, "reroute:orders");
  EXPECT_FALSE(IsDeadLetter(eu));
  EXPECT_EQ(engine_->counters().rerouted, 1);

  std::string none = Publish("orders", "no region");
  Exhaust("orders");
  auto dl = engine_->dead_letters().GetDeadLetter("acme", none);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "max-deliveries");

  // A queue that does not exist refuses, as a configured rerouteTo that went missing does.
  std::string us = Publish("orders", "to us", {{"region", "us"}});
  Exhaust("orders");
  dl = engine_->dead_letters().GetDeadLetter("acme", us);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->cause, "HTTP 503 (reroute to us-retry refused: queue 'us-retry' not found)");

  // No valid queue name: an error in reroute, so the script failed.
  std::string bad = Publish("orders", "to eu west", {{"region", "eu west"}});
  Exhaust("orders");
  dl = engine_->dead_letters().GetDeadLetter("acme", bad);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "script");
  EXPECT_EQ(dl->cause,
            "script:5: reroute: queue name may contain only letters, digits, '.', '_' and '-'");

  EXPECT_EQ(Decisions("reroute"), 2);
  EXPECT_EQ(Decisions("dead-letter"), 1);
  EXPECT_EQ(Decisions("failed"), 1);
  EXPECT_EQ(engine_->counters().rerouted, 1);
  EXPECT_EQ(InQueue("orders"), 0);
}

TEST_F(ScriptActionTest, RerouteToItsOwnQueueOrADeadLetterQueueIsRefused) {
  ASSERT_TRUE(MakeScriptQueue("orders", "reroute(failure.attributes.to)").ok());
  std::string self = Publish("orders", "x", {{"to", "orders"}});
  Exhaust("orders");
  auto dl = engine_->dead_letters().GetDeadLetter("acme", self);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->cause,
            "HTTP 503 (reroute to orders refused: it is the queue the message failed in)");
  std::string dlq = Publish("orders", "y", {{"to", "dead-letters"}});
  Exhaust("orders");
  dl = engine_->dead_letters().GetDeadLetter("acme", dlq);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->cause, "HTTP 503 (reroute to dead-letters refused: it is a dead-letter queue)");
}

// retryIn: one more delivery after the delay; when it fails too, the script runs again.
TEST_F(ScriptActionTest, RetryInDeliversOnceMoreThenTheScriptDecidesAgain) {
  const std::string script = R"(if failure.deliveryCount < 3 then
  retryIn("5m")
else
  deadLetter()
end)";
  ASSERT_TRUE(MakeScriptQueue("orders", script).ok());
  std::string id = Publish("orders", "x");
  FailDelivery("orders");  // 1 of 2: the backoff (1s, then 1s already passed)
  FailDelivery("orders");  // 2 of 2: exhausted; the script says 5m
  EXPECT_FALSE(IsDeadLetter(id));
  EXPECT_EQ(InQueue("orders"), 1);
  clock_.Advance(5 * 60'000 - 1'000 - 1);  // FailDelivery let 1s pass already
  EXPECT_TRUE(Receive("orders").empty());
  clock_.Advance(1);
  auto again = Receive("orders");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message.delivery_count, 3);
  NackRequest n;
  n.receipt = again[0].receipt;
  n.error = "HTTP 500";
  ASSERT_TRUE(engine_->messages().Nack("acme", "orders", {n}).value()[0].ok());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "max-deliveries");
  EXPECT_EQ(dl->cause, "HTTP 500");
  EXPECT_EQ(dl->delivery_count, 3);
  EXPECT_EQ(dl->journal.attempts.size(), 3u);
  EXPECT_EQ(Decisions("retry"), 1);
  EXPECT_EQ(Decisions("dead-letter"), 1);
}

// A message past its TTL is not delivered again: the script's retryIn cannot bring it back.
TEST_F(ScriptActionTest, RetryInOfAnExpiredMessageDeadLettersItSayingWhy) {
  ASSERT_TRUE(MakeScriptQueue("orders", "retryIn('1m')", 2, {{"messageTtl", "10s"}}).ok());
  std::string id = Publish("orders", "x");
  clock_.Advance(10'000);
  ASSERT_TRUE(engine_->background().SweepOnce().ok());
  auto dl = engine_->dead_letters().GetDeadLetter("acme", id);
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->reason, "expired");
  EXPECT_EQ(dl->cause,
            "message TTL of 10s passed before it was consumed (retryIn refused: the message has "
            "expired)");
  EXPECT_EQ(engine_->background().SweepOnce().value(), 0) << "nothing is left to sweep";
}

// An expired message can be rerouted: it becomes a fresh message of the other queue.
TEST_F(ScriptActionTest, RerouteOfAnExpiredMessageMovesIt) {
  MakeQueue("later");
  ASSERT_TRUE(MakeScriptQueue("orders", "reroute('later')", 2, {{"messageTtl", "10s"}}).ok());
  std::string id = Publish("orders", "x");
  clock_.Advance(10'000);
  ASSERT_EQ(engine_->background().SweepOnce().value(), 1);
  EXPECT_EQ(InQueue("orders"), 0);
  auto got = Receive("later");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.id, id);
  EXPECT_EQ(got[0].message.journal.attempts.back().outcome, "expired");
  EXPECT_EQ(engine_->background().SweepOnce().value(), 0);
}

// The script sees the message, its journal with this failure in it, and the cause.
TEST_F(ScriptActionTest, TheScriptSeesTheFailedMessage) {
  const std::string script = R"(
assert(failure.origin == "orders", failure.origin)
assert(failure.topic == "" and failure.subscription == "")
assert(failure.body == "caf\u{e9}")
assert(failure.bodyIsText == true)
assert(failure.attributes.type == "order.created")
assert(failure.deliveryCount == 2, failure.deliveryCount)
assert(#failure.attempts == 2, #failure.attempts)
assert(failure.attempts[2].error == "HTTP 503")
assert(failure.attempts[2].consumer == "worker-1")
assert(failureCause == "HTTP 503", failureCause)
if failure.attributes.binary == nil then drop() return end
deadLetter()
)";
  ASSERT_TRUE(MakeScriptQueue("orders", script).ok());
  std::string id = Publish("orders", "caf\xc3\xa9", {{"type", "order.created"}});
  Exhaust("orders");
  EXPECT_FALSE(IsDeadLetter(id));
  EXPECT_EQ(Decisions("drop"), 1) << "failed runs: " << Decisions("failed");

  ASSERT_TRUE(engine_->queues().DeleteQueue("acme", "orders").ok());
  ASSERT_TRUE(MakeScriptQueue("orders", "assert(failure.bodyIsText == false) deadLetter()").ok());
  std::string binary = Publish("orders", std::string("\xff\x00\x01", 3));
  Exhaust("orders");
  auto dl = engine_->dead_letters().GetDeadLetter("acme", binary);
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->reason, "max-deliveries") << dl->cause;
}

// Every way a run can fail dead-letters the message with reason script and a cause naming the
// problem; the queue goes on: the next message, which the script handles, is dropped.
TEST_F(ScriptActionTest, AFailedRunDeadLettersWithReasonScriptAndTheQueueCarriesOn) {
  struct Case {
    std::string bad;    // run for the poisoned message
    std::string cause;  // what its cause must contain
  };
  const std::vector<Case> cases = {
      {"error('no customer for this order')", "script:2: no customer for this order"},
      {"local x = failure.attributes.customer.name", "attempt to index a nil value"},
      {"while true do end", "script ran too long: more than 1000000 instructions"},
      {"local t = {} while true do t[#t + 1] = string.rep('x', 1000) .. #t end",
       "script used too much memory: more than 8 MiB"},
      {"local s = string.rep('x', 1e9)", "script used too much memory"},
      {"io.write('x')", "attempt to index a nil value (global 'io')"},
      {"os.execute('touch /tmp/redrive-pwned')", "attempt to index a nil value (global 'os')"},
      {"require('os')", "attempt to call a nil value (global 'require')"},
      {"debug.sethook()", "attempt to index a nil value (global 'debug')"},
      {"package.loadlib('libc.so.6', 'system')", "attempt to index a nil value (global 'package')"},
      {"local f, err = load('\\27Lua\\84\\0junk') error(err)", "attempt to load a binary chunk"},
      {"local b = string.dump(function() end)", "attempt to call a nil value (field 'dump')"},
      {"drop() drop()", "drop() called after drop() decided"},
      {"return", "script called no handler"},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.bad);
    std::string queue = "q" + std::to_string(n++);
    const std::string script =
        "if failure.attributes.poison == 'yes' then\n" + c.bad + "\nend\ndrop()";
    ASSERT_TRUE(MakeScriptQueue(queue, script).ok());
    std::string poisoned = Publish(queue, "x", {{"poison", "yes"}});
    Exhaust(queue);
    auto dl = engine_->dead_letters().GetDeadLetter("acme", poisoned);
    ASSERT_TRUE(dl.ok()) << dl.status().ToString();
    EXPECT_EQ(dl->reason, "script");
    EXPECT_NE(dl->cause.find(c.cause), std::string::npos) << dl->cause;
    EXPECT_EQ(dl->journal.attempts.back().error, "HTTP 503") << "the failure stays in the journal";

    int64_t dropped = engine_->counters().dropped;
    std::string fine = Publish(queue, "y");
    Exhaust(queue);
    EXPECT_FALSE(IsDeadLetter(fine));
    EXPECT_EQ(engine_->counters().dropped, dropped + 1);
    EXPECT_EQ(InQueue(queue), 0);
  }
  EXPECT_EQ(Decisions("failed"), static_cast<int64_t>(cases.size()));
  EXPECT_EQ(Decisions("drop"), static_cast<int64_t>(cases.size()));
  const auto& reasons = DeadLetterReasons();
  size_t script_reason = std::find(reasons.begin(), reasons.end(), "script") - reasons.begin();
  ASSERT_LT(script_reason, reasons.size());
  EXPECT_EQ(engine_->counters().dead_lettered[script_reason], static_cast<int64_t>(cases.size()));
}

TEST_F(ScriptActionTest, TheLogSaysWhatTheScriptLoggedAndDecided) {
  const std::string script = R"(log("looking at", failure.id, failure.deliveryCount)
if failure.attributes.keep == "yes" then retryIn("30s") else drop() end)";
  {
    LogCapture log;
    ASSERT_TRUE(MakeScriptQueue("loud", script, 2, {{"logRetries", true}}).ok());
    std::string kept = Publish("loud", "x", {{"keep", "yes"}});
    std::string gone = Publish("loud", "y");
    for (int i = 0; i < 2; ++i) {
      auto got = Receive("loud");
      ASSERT_EQ(got.size(), 2u);
      for (const auto& d : got) {
        NackRequest n;
        n.receipt = d.receipt;
        n.error = "HTTP 503";
        ASSERT_TRUE(engine_->messages().Nack("acme", "loud", {n}).value()[0].ok());
      }
      clock_.Advance(1'000);
    }
    std::string text = log.str();
    EXPECT_NE(text.find("info acme/loud: message " + kept + " script: looking at " + kept + " 2\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("warning acme/loud: message " + kept +
                        " delivery retries = 1/1, retries exhausted, script decided "
                        "retryIn(30s), retrying in 30s (HTTP 503)\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("warning acme/loud: message " + gone +
                        " delivery retries = 1/1, retries exhausted, script decided drop(), " +
                        gone + " dropped (HTTP 503)\n"),
              std::string::npos)
        << text;
  }
  {
    LogCapture log;
    ASSERT_TRUE(MakeScriptQueue("quiet", "error('boom')").ok());
    std::string id = Publish("quiet", "x");
    Exhaust("quiet");
    std::string text = log.str();
    EXPECT_NE(text.find("dead-lettered message " + id +
                        " from acme/quiet to dead-letters after 2 deliveries: script "
                        "(script:1: boom); script failed\n"),
              std::string::npos)
        << text;
  }
}

TEST_F(ScriptActionTest, AScriptIsCheckedWhenItIsSet) {
  // A syntax error names its line, and nothing is created.
  Status st = MakeScriptQueue("orders", "if failure.id then\n  drop(\nend");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'retryPolicy.script': script does not compile: script:3:"),
            std::string::npos)
      << st.ToString();
  EXPECT_EQ(engine_->queues().GetQueue("acme", "orders").status().code(),
            ErrorCode::kQueueNotFound);
  // Bytecode is refused.
  st = MakeScriptQueue("orders", std::string("\x1bLuaT\x00", 6) + "junk");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("precompiled"), std::string::npos) << st.ToString();
  // onExhausted script needs a script, and a script needs onExhausted script.
  QueueConfig c;
  c.retry.on_exhausted = ExhaustedAction::kScript;
  st = engine_->queues().CreateQueue("acme", "orders", c).status();
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'retryPolicy.script' is required"), std::string::npos);
  ASSERT_TRUE(ApplyQueueConfigJson(json{{"retryPolicy", {{"script", "drop()"}}}}, &c).ok());
  c.retry.on_exhausted = ExhaustedAction::kDeadLetter;
  EXPECT_EQ(engine_->queues().CreateQueue("acme", "orders", c).status().code(),
            ErrorCode::kInvalidArgument);

  // A change to a bad script changes nothing: the queue keeps deciding with its old one.
  ASSERT_TRUE(MakeScriptQueue("orders", "drop()").ok());
  QueueConfig current = engine_->queues().GetQueue("acme", "orders").value().config;
  st = ApplyQueueConfigJson(json{{"retryPolicy", {{"script", "drop("}}}}, &current);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  std::string id = Publish("orders", "x");
  Exhaust("orders");
  EXPECT_FALSE(IsDeadLetter(id));
  EXPECT_EQ(Decisions("drop"), 1);

  // A good change takes effect for the next message.
  current = engine_->queues().GetQueue("acme", "orders").value().config;
  ASSERT_TRUE(
      ApplyQueueConfigJson(json{{"retryPolicy", {{"script", "deadLetter()"}}}}, &current).ok());
  ASSERT_TRUE(engine_->queues().UpdateQueue("acme", "orders", current).ok());
  id = Publish("orders", "y");
  Exhaust("orders");
  EXPECT_TRUE(IsDeadLetter(id));
  auto shown = QueueConfigToJson(engine_->queues().GetQueue("acme", "orders").value().config);
  EXPECT_EQ(shown["retryPolicy"]["onExhausted"], "script");
  EXPECT_EQ(shown["retryPolicy"]["script"], "deadLetter()");
}

}  // namespace
}  // namespace redrive::engine
