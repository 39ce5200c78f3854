// Notifications over a real SQLite store on a manual clock: settings and their validation, the
// digest on its schedule, tickets (summary, answers by API and link, expiry with both policies),
// and alerts (thresholds, events, deduplication, the hourly limit). What a channel was sent is
// read from the webhook channel's subscription, whose endpoint the test never starts.
#include "engine/notifications.h"

#include <gtest/gtest.h>

#include "common/text.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"

namespace redrive::engine {
namespace {

using nlohmann::json;

// 2023-11-20 was a Monday; the fixture's clock starts on Tuesday 2023-11-14.
constexpr char kMonday9[] = "2023-11-20T09:00:00Z";

class NotificationsTest : public EngineFixture {
 protected:
  NotificationsTest() : EngineFixture(11) {}
  Notifications& n() { return engine_->notifications(); }
  const Principal& Op() { return Tenancy::System(); }

  NotificationSettings Settings(json j) {
    if (!j.contains("channels")) {
      j["channels"] =
          json::array({{{"type", "webhook"}, {"name", "ops"}, {"url", "http://127.0.0.1:9/"}}});
    }
    auto s = NotificationSettingsFromJson(j);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    auto saved = n().SetSettings(Op(), "acme", *s);
    EXPECT_TRUE(saved.ok()) << saved.status().ToString();
    return *s;
  }

  // `count` dead letters from `queue` (made if missing), each failed once with `error`.
  void DeadLetter(const std::string& queue, int count, const std::string& error = "HTTP 500") {
    QueueConfig c;
    c.retry.max_deliveries = 1;
    (void)engine_->queues().CreateQueue("acme", queue, c);
    std::vector<NewMessage> m(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i)
      m[static_cast<size_t>(i)].body = queue + "-" + std::to_string(i);
    ASSERT_TRUE(engine_->messages().Publish("acme", queue, std::move(m)).ok());
    ReceiveOptions o;
    o.max_messages = count;
    auto got = engine_->messages().Receive("acme", queue, o);
    ASSERT_TRUE(got.ok());
    std::vector<NackRequest> nacks;
    for (const auto& d : *got) {
      NackRequest r;
      r.receipt = d.receipt;
      r.error = error;
      nacks.push_back(r);
    }
    ASSERT_TRUE(engine_->messages().Nack("acme", queue, nacks).ok());
  }

  int64_t DeadLetters() {
    return engine_->dead_letters().GetDeadLetterStats("acme", "").value().total;
  }
  int64_t Depth(const std::string& queue) {
    return engine_->queues().GetQueue("acme", queue).value().depth.ready;
  }

  // What the webhook channel "ops" was sent since the last call, oldest first.
  std::vector<json> Sent() {
    ReceiveOptions o;
    o.max_messages = 100;
    auto got = engine_->messages().Receive("acme", std::string(kNotificationTopic) + ":ops", o);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    std::vector<json> out;
    std::vector<std::string> receipts;
    for (const auto& d : *got) {
      out.push_back(json::parse(d.message.body));
      receipts.push_back(d.receipt);
    }
    if (!receipts.empty()) {
      EXPECT_TRUE(
          engine_->messages().Ack("acme", std::string(kNotificationTopic) + ":ops", receipts).ok());
    }
    return out;
  }

  void RunJobs() {
    for (int i = 0; i < 100; ++i) {
      auto moved = engine_->dead_letters().RunJobsOnce();
      ASSERT_TRUE(moved.ok());
      if (*moved == 0) return;
    }
  }
  void Tick(DurationMs d) {
    clock_.Advance(d);
    ASSERT_TRUE(n().RunOnce().ok());
  }
};

TEST_F(NotificationsTest, BadSettingsAreRefusedNamingTheFieldAndChangeNothing) {
  Settings({{"digest", {{"schedule", "0 8 * * 2"}}}});
  struct Case {
    json j;
    ErrorCode code;
    const char* names;
  };
  std::vector<Case> cases = {
      {{{"digest", {{"schedule", "0 9 * *"}}}}, ErrorCode::kInvalidArgument, "digest.schedule"},
      {{{"digest", {{"schedule", "0 25 * * 1"}}}}, ErrorCode::kInvalidArgument, "hour"},
      {{{"digest", {{"when", "monday"}}}}, ErrorCode::kUnknownField, "digest.when"},
      {{{"channels", {{{"type", "pager"}}}}}, ErrorCode::kInvalidArgument, "channels[0].type"},
      {{{"channels", {{{"type", "email"}, {"to", {"not-an-address"}}}}}},
       ErrorCode::kInvalidArgument,
       "channels[0].to"},
      {{{"channels", {{{"type", "webhook"}, {"url", "ftp://x"}}}}},
       ErrorCode::kInvalidArgument,
       "channels[0].url"},
      {{{"tickets", {{"responseWindow", "1s"}}}},
       ErrorCode::kInvalidArgument,
       "tickets.responseWindow"},
      {{{"tickets", {{"onExpiry", "archive"}}}}, ErrorCode::kInvalidArgument, "tickets.onExpiry"},
      {{{"alerts", {{"deadLetterAge", "soon"}}}},
       ErrorCode::kInvalidDuration,
       "alerts.deadLetterAge"},
      {{{"colour", "red"}}, ErrorCode::kUnknownField, "colour"},
  };
  for (const auto& c : cases) {
    auto s = NotificationSettingsFromJson(c.j);
    ASSERT_FALSE(s.ok()) << c.j.dump();
    EXPECT_EQ(s.status().code(), c.code) << c.j.dump() << ": " << s.status().ToString();
    EXPECT_NE(s.status().message().find(c.names), std::string::npos) << s.status().message();
  }
  auto kept = n().GetSettings("acme");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->digest_schedule.text(), "0 8 * * 2");
  EXPECT_EQ(n().GetSettings("nobody").status().code(), ErrorCode::kTenantNotFound);
}

TEST_F(NotificationsTest, DefaultsAreMondaysAtNineFiveDaysAndRemove) {
  NotificationSettings s = n().GetSettings("acme").value();
  EXPECT_EQ(s.digest_schedule.text(), "0 9 * * 1");
  EXPECT_EQ(s.response_window, 5 * 86'400'000LL);
  EXPECT_FALSE(s.keep_on_expiry);
  EXPECT_TRUE(s.log);
  EXPECT_FALSE(n().HasSettings("acme").value());
}

TEST_F(NotificationsTest, TheDigestOpensATicketOnItsScheduleOverWhatNoOpenTicketLists) {
  Settings({});
  DeadLetter("orders", 5);
  DeadLetter("billing", 2, "tls: SSL certificate problem: certificate has expired");
  Tick(60'000);
  EXPECT_TRUE(n().QueryTickets("acme", {}).value().items.empty()) << "not Monday 09:00 yet";

  clock_.Set(ParseTime(kMonday9).value());
  ASSERT_TRUE(n().RunOnce().ok());
  auto tickets = n().QueryTickets("acme", {}).value();
  ASSERT_EQ(tickets.items.size(), 1u);
  const TicketInfo& t = tickets.items[0];
  EXPECT_EQ(t.record.state, "open");
  EXPECT_EQ(t.record.count, 7);
  EXPECT_EQ(t.record.expires_at, ParseTime(kMonday9).value() + 5 * 86'400'000LL);
  const json& s = t.data["summary"];
  EXPECT_EQ(s["total"], 7);
  EXPECT_EQ(s["byOrigin"][0], (json{{"origin", "orders"}, {"count", 5}}));
  EXPECT_EQ(s["byOrigin"][1], (json{{"origin", "billing"}, {"count", 2}}));
  EXPECT_EQ(s["byGroup"].size(), 2u);
  EXPECT_EQ(s["samples"].size(), 3u);
  EXPECT_TRUE(s["oldest"].is_string());

  std::vector<json> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["type"], "redrive.ticket");
  EXPECT_EQ(sent[0]["ticket"]["id"], t.record.id);
  EXPECT_EQ(sent[0]["answer"]["by"], FormatTime(t.record.expires_at));
  std::string text = sent[0]["text"];
  EXPECT_NE(text.find("7 dead letter(s)"), std::string::npos) << text;
  EXPECT_NE(text.find("/v1/ticket-links/rdl_"), std::string::npos) << text;
  EXPECT_NE(text.find("retry|discard"), std::string::npos) << text;

  // The same minute again, and later that week: nothing new, nothing sent.
  ASSERT_TRUE(n().RunOnce().ok());
  Tick(86'400'000);
  EXPECT_EQ(n().QueryTickets("acme", {}).value().items.size(), 1u);
  EXPECT_TRUE(Sent().empty());

  // New dead letters, next Monday: a second ticket with only those.
  DeadLetter("orders", 3);
  clock_.Set(ParseTime(kMonday9).value() + 7 * 86'400'000LL);
  ASSERT_TRUE(n().RunOnce().ok());
  tickets = n().QueryTickets("acme", {}).value();
  ASSERT_EQ(tickets.items.size(), 2u);
  EXPECT_EQ(tickets.items[0].record.count, 3);  // newest first
}

TEST_F(NotificationsTest, RetryMovesExactlyTheTicketsDeadLettersBackAndOnlyOnce) {
  Settings({});
  DeadLetter("orders", 4);
  auto opened = n().RunDigest(Op(), "acme").value();
  ASSERT_TRUE(opened.has_value());
  DeadLetter("orders", 2);  // after the ticket: not its own
  auto answered = n().Answer(Op(), "acme", opened->record.id, "retry");
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->record.state, "retrying");
  EXPECT_TRUE(answered->data["answer"]["job"].is_string());
  // While its job runs, a digest leaves the ticket's dead letters to it.
  auto other = n().RunDigest(Op(), "acme").value();
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->record.count, 2);
  RunJobs();
  EXPECT_EQ(Depth("orders"), 4);
  EXPECT_EQ(DeadLetters(), 2);
  Tick(10'000);
  auto closed = n().GetTicket("acme", opened->record.id).value();
  EXPECT_EQ(closed.record.state, "answered");
  EXPECT_EQ(closed.data["answer"]["moved"], 4);

  auto again = n().Answer(Op(), "acme", opened->record.id, "discard");
  EXPECT_EQ(again.status().code(), ErrorCode::kTicketClosed);
  EXPECT_EQ(DeadLetters(), 2);
  EXPECT_EQ(n().Answer(Op(), "acme", opened->record.id, "later").status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(n().Answer(Op(), "acme", "tkt_nope", "retry").status().code(),
            ErrorCode::kTicketNotFound);

  // The audit says each step.
  auto audit = engine_->dead_letters().QueryAudit("acme", {});
  ASSERT_TRUE(audit.ok());
  std::set<std::string> actions;
  for (const auto& e : audit->items) actions.insert(e.value("action", ""));
  for (const char* a : {"ticket.open", "ticket.notify", "ticket.answer", "ticket.close"}) {
    EXPECT_TRUE(actions.count(a)) << a;
  }
}

TEST_F(NotificationsTest, DiscardByLinkDeletesThemAndTheLinkWorksOnce) {
  Settings({});
  DeadLetter("orders", 3);
  auto opened = n().RunDigest(Op(), "acme").value();
  ASSERT_TRUE(opened.has_value());
  const std::string secret = opened->link_secret;
  ASSERT_EQ(secret.rfind("rdl_", 0), 0u);
  EXPECT_EQ(n().TicketOfLink(secret)->record.id, opened->record.id);
  EXPECT_EQ(n().TicketOfLink("rdl_forged").status().code(), ErrorCode::kTicketNotFound);
  EXPECT_EQ(n().AnswerByLink(secret, "drop").status().code(), ErrorCode::kInvalidArgument);

  auto answered = n().AnswerByLink(secret, "discard");
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->data["answer"]["deleted"], 3);
  EXPECT_EQ(answered->data["answer"]["via"], "link");
  EXPECT_EQ(DeadLetters(), 0);
  EXPECT_EQ(n().AnswerByLink(secret, "retry").status().code(), ErrorCode::kTicketClosed);
}

TEST_F(NotificationsTest, AnUnansweredTicketExpiresAndRemovesOrKeepsByPolicy) {
  Settings({{"tickets", {{"responseWindow", "2d"}}}});
  DeadLetter("orders", 3);
  auto first = n().RunDigest(Op(), "acme").value();
  ASSERT_TRUE(first.has_value());
  (void)Sent();
  Tick(2 * 86'400'000LL - 60'000);
  EXPECT_EQ(n().GetTicket("acme", first->record.id)->record.state, "open");
  Tick(120'000);
  auto expired = n().GetTicket("acme", first->record.id).value();
  EXPECT_EQ(expired.record.state, "expired");
  EXPECT_EQ(expired.data["expiry"]["removed"], 3);
  EXPECT_EQ(DeadLetters(), 0);
  std::vector<json> sent = Sent();
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.back()["type"], "redrive.ticket.expired");
  EXPECT_EQ(n().AnswerByLink(first->link_secret, "retry").status().code(),
            ErrorCode::kTicketClosed);

  // Keep: the dead letters stay, and the next digest lists them again.
  Settings({{"tickets", {{"responseWindow", "1d"}, {"onExpiry", "keep"}}}});
  DeadLetter("orders", 2);
  auto second = n().RunDigest(Op(), "acme").value();
  ASSERT_TRUE(second.has_value());
  Tick(86'400'000LL + 60'000);
  EXPECT_EQ(n().GetTicket("acme", second->record.id)->record.state, "expired");
  EXPECT_EQ(DeadLetters(), 2);
  auto third = n().RunDigest(Op(), "acme").value();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->record.count, 2);
  EXPECT_FALSE(n().RunDigest(Op(), "acme").value().has_value()) << "all listed by an open one";
}

TEST_F(NotificationsTest, TicketsAreQueriedWithAFilterAndPaged) {
  Settings({});
  for (int i = 0; i < 5; ++i) {
    DeadLetter("orders", 1);
    clock_.Advance(1000);
    ASSERT_TRUE(n().RunDigest(Op(), "acme").value().has_value());
  }
  auto first = n().QueryTickets("acme", {"", "", 2}).value();
  ASSERT_EQ(first.items.size(), 2u);
  EXPECT_EQ(first.total, 5);
  ASSERT_FALSE(first.next_cookie.empty());
  auto second = n().QueryTickets("acme", {"", first.next_cookie, 2}).value();
  ASSERT_EQ(second.items.size(), 2u);
  EXPECT_LT(second.items[0].record.created_at, first.items[1].record.created_at);
  ASSERT_TRUE(n().Answer(Op(), "acme", first.items[0].record.id, "discard").ok());
  auto open = n().QueryTickets("acme", {"state eq \"open\"", "", 50}).value();
  EXPECT_EQ(open.items.size(), 4u);
  EXPECT_EQ(n().QueryTickets("acme", {"state eq", "", 50}).status().code(),
            ErrorCode::kInvalidQuery);
  EXPECT_EQ(n().QueryTickets("acme", {"", "garbage", 50}).status().code(),
            ErrorCode::kInvalidQuery);
}

TEST_F(NotificationsTest, DepthAlertsAreDeduplicatedAndRepeatedAfterTheirInterval) {
  Settings({{"digest", {{"enabled", false}}},
            {"alerts", {{"deadLetterDepth", 2}, {"repeatAfter", "1h"}}}});
  DeadLetter("orders", 2);
  Tick(61'000);
  EXPECT_TRUE(Sent().empty()) << "2 is not deeper than 2";
  DeadLetter("orders", 1);
  Tick(61'000);
  std::vector<json> sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["type"], "redrive.alert");
  EXPECT_EQ(sent[0]["alert"]["kind"], "dlq-depth");
  EXPECT_EQ(sent[0]["alert"]["detail"]["depth"], 3);
  for (int i = 0; i < 5; ++i) Tick(61'000);
  EXPECT_TRUE(Sent().empty()) << "the same alert within repeatAfter";
  Tick(3'600'000);
  EXPECT_EQ(Sent().size(), 1u) << "still true an hour later";
}

TEST_F(NotificationsTest, EventAlertsComeFromTheAuditAndAreLimitedPerHour) {
  Settings({{"alerts", {{"maxPerHour", 2}}}});
  for (int i = 0; i < 4; ++i) {
    engine_->dead_letters();  // the audit entry a halted job writes
    store::AuditRecord r{0,
                         "acme",
                         clock_.Now(),
                         "system",
                         "job.halted",
                         json{{"job", "job_" + std::to_string(i)}, {"reason", "canary"}}.dump()};
    n().OnAudit(r);
  }
  Tick(1);
  std::vector<json> sent = Sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0]["alert"]["kind"], "job-halted");
  EXPECT_NE(sent[0]["text"].get<std::string>().find("job_0"), std::string::npos);
  Tick(3'600'000);
  store::AuditRecord r{
      0,        "acme",          clock_.Now(),
      "system", "export.failed", json{{"export", "exp_1"}, {"error", "disk full"}}.dump()};
  n().OnAudit(r);
  Tick(1);
  sent = Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["alert"]["kind"], "export-failed");
  EXPECT_EQ(sent[0]["suppressed"], 2) << "the two over the limit are reported";
}

}  // namespace
}  // namespace redrive::engine
