// The diagnosis rules (diagnosis.h) as pure functions over scripted per-minute counts.
#include "engine/diagnosis.h"

#include <gtest/gtest.h>

#include "common/text.h"
#include "engine/model.h"

namespace redrive::engine {
namespace {

constexpr TimeMs kT0 = 1'700'000'040'000;  // a minute's start
constexpr DurationMs kMin = kOutcomeMinute;

TimeMs At(int minute, int second = 0) { return kT0 + minute * kMin + second * 1000; }

// A scripted history: per minute (from kT0), succeeded, failed and TLS failures.
class History {
 public:
  History& Ok(int from, int to, int64_t n) { return Add(from, to, n, 0, 0); }
  History& Fail(int from, int to, int64_t n, int64_t tls = 0) { return Add(from, to, 0, n, tls); }
  History& Add(int from, int to, int64_t succeeded, int64_t failed, int64_t tls = 0) {
    for (int m = from; m <= to; ++m) {
      auto it = rows_.begin();
      while (it != rows_.end() && it->minute < At(m)) ++it;
      if (it == rows_.end() || it->minute != At(m)) it = rows_.insert(it, MinuteOutcomes{At(m)});
      it->succeeded += succeeded;
      it->failed += failed;
      it->failed_tls += tls;
    }
    return *this;
  }
  const std::vector<MinuteOutcomes>& rows() const { return rows_; }

 private:
  std::vector<MinuteOutcomes> rows_;
};

GroupFacts Group(TimeMs first_seen, TimeMs last_seen, std::string cause = "HTTP 503",
                 std::string reason = kReasonMaxDeliveries) {
  return GroupFacts{"orders", std::move(reason), std::move(cause), first_seen, last_seen};
}

TEST(DiagnosisTest, AWindowOfFailuresBetweenSuccessesIsAnOutage) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 19, 5).Ok(20, 29, 10);
  auto d = DiagnoseFailureGroup(Group(At(12, 30), At(18, 10)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(d->from, At(10));
  EXPECT_EQ(d->to, At(20));
  EXPECT_EQ(d->recovered_at, At(20));
  EXPECT_EQ(d->failed, 50);
  EXPECT_EQ(d->succeeded, 0);
  EXPECT_DOUBLE_EQ(d->share, 1.0);
  EXPECT_EQ(d->failing_minutes, 10);
  EXPECT_EQ(d->succeeded_after, 100);
  EXPECT_NE(d->summary.find("failed from " + FormatTime(At(10)) + " to " + FormatTime(At(20))),
            std::string::npos)
      << d->summary;
}

TEST(DiagnosisTest, AnOutageMayBeginAndEndWithinAMinute) {
  // The first minute saw successes before the target went down, the last one successes after
  // it came back; the group's last dead letter fell in that last minute.
  History h;
  h.Ok(0, 9, 10).Add(10, 10, 5, 3).Fail(11, 18, 4).Add(19, 19, 4, 2).Ok(20, 25, 10);
  auto d = DiagnoseFailureGroup(Group(At(12), At(19, 5)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(d->from, At(10));
  EXPECT_EQ(d->to, At(20));
  EXPECT_EQ(d->recovered_at, At(19));
  EXPECT_EQ(d->failed, 3 + 8 * 4 + 2);
  EXPECT_EQ(d->succeeded, 5 + 4);
  EXPECT_EQ(d->succeeded_after, 4 + 60);
}

TEST(DiagnosisTest, MinutesWithNoDeliveryDoNotEndAnOutage) {
  // An open circuit sends nothing for a while; the window runs across the quiet minutes.
  History h;
  h.Ok(0, 4, 10).Fail(5, 6, 3).Fail(15, 16, 1).Ok(30, 31, 10);
  auto d = DiagnoseFailureGroup(Group(At(6), At(6)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(d->from, At(5));
  EXPECT_EQ(d->to, At(17));
  EXPECT_EQ(d->recovered_at, At(30));
  EXPECT_EQ(d->failed, 8);
}

TEST(DiagnosisTest, NothingSucceededSinceAPointInTimeIsBrokenSince) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 29, 5);
  auto d = DiagnoseFailureGroup(Group(At(15), At(29, 59)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kBrokenSince);
  EXPECT_EQ(d->since, At(10));
  EXPECT_EQ(d->last_success_at, At(9));
  EXPECT_EQ(d->failed, 100);
  EXPECT_EQ(d->succeeded, 0);
  EXPECT_EQ(d->succeeded_before, 100);
  EXPECT_NE(d->summary.find("has succeeded since " + FormatTime(At(10))), std::string::npos)
      << d->summary;
}

TEST(DiagnosisTest, ABreakageWithinAMinuteDatesFromThatMinute) {
  // Permanent failures dead-letter at once: the first dead letter falls in the minute the
  // target changed, after that minute's last successes.
  History h;
  h.Ok(0, 9, 10).Add(10, 10, 3, 2).Fail(11, 15, 5);
  auto d = DiagnoseFailureGroup(Group(At(10, 20), At(15, 30), "HTTP 404", kReasonPermanentFailure),
                                h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kBrokenSince);
  EXPECT_EQ(d->since, At(10));
  EXPECT_EQ(d->last_success_at, At(10));
  EXPECT_EQ(d->failed, 2 + 25);
  EXPECT_EQ(d->succeeded, 3);
  EXPECT_EQ(d->succeeded_before, 100);
}

TEST(DiagnosisTest, AnOriginThatNeverSucceededIsNotDiagnosed) {
  // No success within the counts kept: nothing dates a change, so no broken-since.
  History h;
  h.Fail(0, 20, 5);
  EXPECT_FALSE(DiagnoseFailureGroup(Group(At(10), At(20)), h.rows()).has_value());
}

TEST(DiagnosisTest, CountsBeforeTheHorizonAreNotEvidence) {
  // The only success is more than kDiagnosisLookback before the group's first dead letter.
  const int horizon = static_cast<int>(kDiagnosisLookback / kMin);
  History h;
  h.Ok(0, 0, 10).Fail(horizon + 120, horizon + 130, 2);
  GroupFacts g = Group(At(horizon + 125), At(horizon + 130));
  EXPECT_FALSE(DiagnoseFailureGroup(g, h.rows()).has_value());
  h.Ok(200, 200, 5);  // within it
  auto d = DiagnoseFailureGroup(g, h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kBrokenSince);
  EXPECT_EQ(d->last_success_at, At(200));
  EXPECT_EQ(d->succeeded_before, 5);
}

TEST(DiagnosisTest, ASmallShareOfFailuresAmongSuccessesIsScattered) {
  History h;
  h.Ok(0, 59, 20).Fail(5, 5, 1).Fail(17, 17, 1).Fail(33, 33, 1).Fail(48, 48, 1);
  auto d = DiagnoseFailureGroup(Group(At(33, 10), At(48, 40)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kScattered);
  EXPECT_EQ(d->from, At(5));  // the first failure within kScatterLookback
  EXPECT_EQ(d->to, At(49));   // the end of the last dead letter's minute
  EXPECT_EQ(d->failed, 4);
  EXPECT_EQ(d->succeeded, 44 * 20);
  EXPECT_NEAR(d->share, 4.0 / 884.0, 1e-12);
  EXPECT_EQ(d->failing_minutes, 4);
}

TEST(DiagnosisTest, ScatteredLooksBackAnHourForTheGroupsFailures) {
  History h;
  h.Ok(0, 99, 10).Fail(2, 2, 1).Fail(80, 80, 1).Fail(95, 95, 1);
  auto d = DiagnoseFailureGroup(Group(At(95), At(95)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kScattered);
  EXPECT_EQ(d->from, At(80));  // minute 2 is more than an hour before minute 95
  EXPECT_EQ(d->failed, 2);
}

TEST(DiagnosisTest, AShareAtTheThresholdIsNotScattered) {
  // 1 failure in 5 deliveries, every minute: 20% is not a small share.
  History h;
  h.Add(0, 30, 4, 1);
  EXPECT_FALSE(DiagnoseFailureGroup(Group(At(20), At(25)), h.rows()).has_value());
  History below;
  below.Add(0, 30, 5, 1);
  auto d = DiagnoseFailureGroup(Group(At(20), At(25)), below.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kScattered);
}

TEST(DiagnosisTest, OneFailingMinuteIsNeitherAnOutageNorScattered) {
  // One message retried within a minute while nothing else was sent: the counts cannot tell
  // a short outage from a bad message.
  History h;
  h.Ok(0, 9, 10).Fail(10, 10, 3).Ok(11, 20, 10);
  EXPECT_FALSE(DiagnoseFailureGroup(Group(At(10, 30), At(10, 30)), h.rows()).has_value());
}

TEST(DiagnosisTest, AGroupAcrossARecoveryIsNotOneOutage) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 14, 5).Ok(15, 15, 10).Fail(16, 20, 5).Ok(21, 25, 10);
  EXPECT_FALSE(DiagnoseFailureGroup(Group(At(12), At(18)), h.rows()).has_value());
}

TEST(DiagnosisTest, TheMinuteBeforeTheDeadLetterStandsInWhenItsOwnHasNoCounts) {
  // A lease that ended at 11:59:59.9 is counted then; the sweeper dead-letters it at 12:00.
  History h;
  h.Ok(0, 9, 10).Fail(10, 19, 5).Ok(21, 25, 10);
  auto d = DiagnoseFailureGroup(Group(At(20, 1), At(20, 1)), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kOutage);
  EXPECT_EQ(d->from, At(10));
  EXPECT_EQ(d->recovered_at, At(21));
}

TEST(DiagnosisTest, ATlsCauseIsTlsWhateverTheCountsShow) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 19, 5, 5).Ok(20, 29, 10);
  auto d = DiagnoseFailureGroup(
      Group(At(12), At(19), "tls: SSL certificate problem: unable to get local issuer certificate"),
      h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kTls);
  EXPECT_EQ(d->since, At(10));
  EXPECT_EQ(d->failed, 50);
  EXPECT_EQ(d->succeeded, 0);
  EXPECT_EQ(d->recovered_at, At(20));
  EXPECT_EQ(d->succeeded_after, 100);
}

TEST(DiagnosisTest, TlsStillFailingHasNoRecovery) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 19, 5, 5);
  auto d = DiagnoseFailureGroup(Group(At(12), At(19), "x509: certificate has expired"), h.rows());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kTls);
  EXPECT_EQ(d->since, At(10));
  EXPECT_EQ(d->recovered_at, 0);
  EXPECT_NE(d->summary.find("check the endpoint's certificate"), std::string::npos);
}

TEST(DiagnosisTest, ATlsCauseWithoutCountsIsStillTls) {
  auto d = DiagnoseFailureGroup(Group(At(12, 30), At(13), "tls: certificate verify failed"), {});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->kind, DiagnosisKind::kTls);
  EXPECT_EQ(d->since, At(12));
  EXPECT_EQ(d->failed, 0);
}

TEST(DiagnosisTest, NoCountsOrOnlySuccessesGiveNoDiagnosis) {
  EXPECT_FALSE(DiagnoseFailureGroup(Group(At(10), At(12)), {}).has_value());
  History h;
  h.Ok(0, 30, 10);
  EXPECT_FALSE(DiagnoseFailureGroup(Group(At(10), At(12)), h.rows()).has_value());
}

TEST(DiagnosisTest, OnlyGroupsOfFailedDeliveriesAreDiagnosed) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 19, 5).Ok(20, 29, 10);
  for (const char* reason :
       {kReasonExpired, kReasonOverflow, kReasonNoRoute, "too-large", kReasonScript}) {
    EXPECT_FALSE(DiagnoseFailureGroup(Group(At(12), At(18), "x", reason), h.rows()).has_value())
        << reason;
  }
  for (const char* reason : {kReasonMaxDeliveries, kReasonRejected, kReasonPermanentFailure}) {
    EXPECT_TRUE(DiagnoseFailureGroup(Group(At(12), At(18), "x", reason), h.rows()).has_value())
        << reason;
  }
}

TEST(DiagnosisTest, TlsCausesNameTlsOrACertificate) {
  for (const char* cause :
       {"tls: SSL certificate problem: unable to get local issuer certificate",
        "x509: certificate signed by unknown authority", "CERT_HAS_EXPIRED",
        "TLSv1.3 (IN), TLS alert, unknown CA", "OpenSSL SSL_connect: SSL_ERROR_SYSCALL",
        "X.509 chain too long", "peer's Certificate has expired"}) {
    EXPECT_TRUE(IsTlsCause(cause)) << cause;
  }
  for (const char* cause : {"HTTP 503", "POST https://hooks.example.com/orders failed: HTTP 500",
                            "connection: Failed to connect to 127.0.0.1 port 9",
                            "field '<str>' of customer '<str>' is invalid", "concert sold out",
                            "certification pending", ""}) {
    EXPECT_FALSE(IsTlsCause(cause)) << cause;
  }
}

TEST(DiagnosisTest, TheJsonFormCarriesTheEvidenceOfEachKind) {
  History h;
  h.Ok(0, 9, 10).Fail(10, 19, 5).Ok(20, 29, 10);
  auto outage = DiagnosisToJson(*DiagnoseFailureGroup(Group(At(12), At(18)), h.rows()));
  EXPECT_EQ(outage["kind"], "outage");
  EXPECT_EQ(outage["window"]["from"], FormatTime(At(10)));
  EXPECT_EQ(outage["window"]["to"], FormatTime(At(20)));
  EXPECT_EQ(outage["recoveredAt"], FormatTime(At(20)));
  EXPECT_EQ(outage["failed"], 50);
  EXPECT_EQ(outage["succeeded"], 0);
  EXPECT_EQ(outage["share"], 1.0);
  EXPECT_EQ(outage["succeededAfter"], 100);
  EXPECT_EQ(outage["failingMinutes"], 10);
  EXPECT_TRUE(outage["summary"].is_string());

  History broken;
  broken.Ok(0, 9, 10).Fail(10, 19, 5);
  auto b = DiagnosisToJson(*DiagnoseFailureGroup(Group(At(12), At(18)), broken.rows()));
  EXPECT_EQ(b["kind"], "broken-since");
  EXPECT_EQ(b["since"], FormatTime(At(10)));
  EXPECT_EQ(b["lastSuccessAt"], FormatTime(At(9)));
  EXPECT_EQ(b["succeededBefore"], 100);
  EXPECT_FALSE(b.contains("window"));

  auto tls = DiagnosisToJson(*DiagnoseFailureGroup(Group(At(12), At(18), "tls: x"), broken.rows()));
  EXPECT_EQ(tls["kind"], "tls");
  EXPECT_TRUE(tls["recoveredAt"].is_null());

  History scattered;
  scattered.Ok(0, 30, 30).Fail(10, 10, 1).Fail(20, 20, 1);
  auto s = DiagnosisToJson(*DiagnoseFailureGroup(Group(At(20), At(20)), scattered.rows()));
  EXPECT_EQ(s["kind"], "scattered");
  EXPECT_EQ(s["share"], 0.006);  // 2 of 332, to four places
  EXPECT_EQ(s["failingMinutes"], 2);
  EXPECT_EQ(s["window"]["from"], FormatTime(At(10)));
  EXPECT_EQ(s["window"]["to"], FormatTime(At(21)));
}

}  // namespace
}  // namespace redrive::engine
