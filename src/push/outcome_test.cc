#include "push/outcome.h"

#include <gtest/gtest.h>

#include "common/text.h"

namespace redrive::push {
namespace {

// 2026-12-07T10:00:00Z, a Monday.
constexpr TimeMs kNow = 1'796'637'600'000;

DeliveryResult Answered(long status, std::string retry_after = "") {
  DeliveryResult r;
  r.status = status;
  r.retry_after = std::move(retry_after);
  return r;
}

DeliveryResult Transport(TransportError error) {
  DeliveryResult r;
  r.error = error;
  r.error_message = "curl says no";
  return r;
}

TEST(OutcomeTest, TheTestClockIsWhatTheCommentsSay) {
  EXPECT_EQ(FormatTime(kNow), "2026-12-07T10:00:00.000Z");
}

TEST(OutcomeTest, EveryStatusFrom100To599IsClassifiedByTheDocumentedRules) {
  const std::set<int>& permanent = DefaultPermanentCodes();
  for (int status = 100; status <= 599; ++status) {
    Outcome o = Classify(Answered(status), kNow);
    Verdict want;
    if (status >= 200 && status <= 299) {
      want = Verdict::kSuccess;
    } else if ((status >= 300 && status <= 399) || permanent.count(status) > 0) {
      want = Verdict::kPermanent;
    } else {
      want = Verdict::kRetry;
    }
    EXPECT_EQ(o.verdict, want) << status;
    EXPECT_EQ(o.disable_endpoint, status == 410) << status;
    EXPECT_EQ(o.cause, want == Verdict::kSuccess ? "" : "http " + std::to_string(status));
  }
}

TEST(OutcomeTest, TheDefaultPermanentSetIsTheDocumentedOne) {
  EXPECT_EQ(DefaultPermanentCodes(), (std::set<int>{400, 401, 403, 404, 405, 410, 413, 422}));
}

TEST(OutcomeTest, NamedCasesSortAsAReceiverWouldExpect) {
  EXPECT_EQ(Classify(Answered(200), kNow).verdict, Verdict::kSuccess);
  EXPECT_EQ(Classify(Answered(204), kNow).verdict, Verdict::kSuccess);
  EXPECT_EQ(Classify(Answered(301), kNow).verdict, Verdict::kPermanent);
  EXPECT_EQ(Classify(Answered(302), kNow).verdict, Verdict::kPermanent);
  EXPECT_EQ(Classify(Answered(404), kNow).verdict, Verdict::kPermanent);
  EXPECT_EQ(Classify(Answered(408), kNow).verdict, Verdict::kRetry);
  EXPECT_EQ(Classify(Answered(409), kNow).verdict, Verdict::kRetry);
  EXPECT_EQ(Classify(Answered(429), kNow).verdict, Verdict::kRetry);
  EXPECT_EQ(Classify(Answered(500), kNow).verdict, Verdict::kRetry);
  EXPECT_EQ(Classify(Answered(503), kNow).verdict, Verdict::kRetry);
  Outcome gone = Classify(Answered(410), kNow);
  EXPECT_EQ(gone.verdict, Verdict::kPermanent);
  EXPECT_TRUE(gone.disable_endpoint);
}

TEST(OutcomeTest, StatusesOutsideTheHttpRangeAreRetried) {
  for (long status : {0L, 1L, 99L, 600L, 999L, 100000L, -1L}) {
    EXPECT_EQ(Classify(Answered(status), kNow).verdict, Verdict::kRetry) << status;
  }
}

TEST(OutcomeTest, AConfiguredPermanentSetReplacesTheDefault) {
  std::set<int> codes = {400, 429};
  EXPECT_EQ(Classify(Answered(429), kNow, codes).verdict, Verdict::kPermanent);
  EXPECT_EQ(Classify(Answered(404), kNow, codes).verdict, Verdict::kRetry);
  // 410 outside the set: retried, and the endpoint stays enabled.
  Outcome gone = Classify(Answered(410), kNow, codes);
  EXPECT_EQ(gone.verdict, Verdict::kRetry);
  EXPECT_FALSE(gone.disable_endpoint);
  // Neither a 2xx in the set nor an empty set changes successes and redirects.
  EXPECT_EQ(Classify(Answered(200), kNow, {200}).verdict, Verdict::kSuccess);
  EXPECT_EQ(Classify(Answered(302), kNow, {}).verdict, Verdict::kPermanent);
  EXPECT_EQ(Classify(Answered(400), kNow, {}).verdict, Verdict::kRetry);
}

TEST(OutcomeTest, TransportErrorsAreRetriedButAnInvalidUrlIsPermanent) {
  struct Case {
    TransportError error;
    Verdict verdict;
    const char* cause;
  };
  for (const Case& c : {Case{TransportError::kTimeout, Verdict::kRetry, "timeout"},
                        Case{TransportError::kConnection, Verdict::kRetry, "connection"},
                        Case{TransportError::kTls, Verdict::kRetry, "tls"},
                        Case{TransportError::kShutdown, Verdict::kRetry, "shutdown"},
                        Case{TransportError::kOther, Verdict::kRetry, "transport"},
                        Case{TransportError::kInvalidUrl, Verdict::kPermanent, "invalid-url"}}) {
    DeliveryResult r = Transport(c.error);
    r.retry_after = "10";  // a header of a response we did not get cannot count
    Outcome o = Classify(r, kNow);
    EXPECT_EQ(o.verdict, c.verdict) << c.cause;
    EXPECT_EQ(o.cause, c.cause);
    EXPECT_FALSE(o.disable_endpoint);
    EXPECT_FALSE(o.retry_after.has_value()) << c.cause;
  }
}

TEST(OutcomeTest, RetryAfterComesWithRetriesOnly) {
  EXPECT_EQ(Classify(Answered(503, "120"), kNow).retry_after, 120'000);
  EXPECT_EQ(Classify(Answered(429, "0"), kNow).retry_after, 0);
  EXPECT_EQ(Classify(Answered(503), kNow).retry_after, std::nullopt);
  EXPECT_EQ(Classify(Answered(503, "soon"), kNow).retry_after, std::nullopt);
  EXPECT_EQ(Classify(Answered(200, "120"), kNow).retry_after, std::nullopt);
  EXPECT_EQ(Classify(Answered(410, "120"), kNow).retry_after, std::nullopt);
  EXPECT_EQ(Classify(Answered(301, "120"), kNow).retry_after, std::nullopt);
}

TEST(OutcomeTest, RetryAfterDeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("0", kNow), 0);
  EXPECT_EQ(ParseRetryAfter("1", kNow), 1000);
  EXPECT_EQ(ParseRetryAfter("3600", kNow), 3'600'000);
  EXPECT_EQ(ParseRetryAfter("007", kNow), 7000);
  EXPECT_EQ(ParseRetryAfter("  30\t", kNow), 30'000);
  // Absurdly long waits are clamped, never overflow.
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999999", kNow), kMaxDuration);
  EXPECT_EQ(ParseRetryAfter(std::to_string(kMaxDuration / 1000 + 1), kNow), kMaxDuration);
  for (const char* bad : {"", "   ", "-1", "+5", "1.5", "1e3", "10 s", "0x10", "١٢"}) {
    EXPECT_EQ(ParseRetryAfter(bad, kNow), std::nullopt) << bad;
  }
}

TEST(OutcomeTest, RetryAfterHttpDatesInAllThreeFormsAreRelativeToNow) {
  // Ninety seconds after kNow, in each form.
  EXPECT_EQ(ParseRetryAfter("Mon, 07 Dec 2026 10:01:30 GMT", kNow), 90'000);
  EXPECT_EQ(ParseRetryAfter("Monday, 07-Dec-26 10:01:30 GMT", kNow), 90'000);
  EXPECT_EQ(ParseRetryAfter("Mon Dec  7 10:01:30 2026", kNow), 90'000);
  EXPECT_EQ(ParseRetryAfter(" Mon, 07 Dec 2026 10:01:30 GMT ", kNow), 90'000);
  // The day name is not checked against the date (receivers get it wrong; the date is what
  // counts).
  EXPECT_EQ(ParseRetryAfter("Fri, 07 Dec 2026 10:01:30 GMT", kNow), 90'000);
  // Across a month and a year.
  EXPECT_EQ(ParseRetryAfter("Fri, 01 Jan 2027 10:00:00 GMT", kNow), 25LL * 86'400'000);
  // Past dates mean "now".
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", kNow), 0);
  EXPECT_EQ(ParseRetryAfter("Mon, 07 Dec 2026 09:59:59 GMT", kNow), 0);
}

TEST(OutcomeTest, RetryAfterRfc850TwoDigitYearsAreTheNearestPastCentury) {
  // From 2026, "76" is 2076 (50 years ahead, not more) and "77" is 1977 (51 years ahead would
  // be too far, so the past year).
  EXPECT_EQ(ParseRetryAfter("Monday, 07-Dec-76 10:00:00 GMT", kNow),
            50LL * 365 * 86'400'000 + 13LL * 86'400'000);
  EXPECT_EQ(ParseRetryAfter("Wednesday, 07-Dec-77 10:00:00 GMT", kNow), 0);
}

TEST(OutcomeTest, MalformedHttpDatesAreIgnored) {
  for (const char* bad : {
           "Mon, 07 Dec 2026 10:01:30",         // no zone
           "Mon, 07 Dec 2026 10:01:30 UTC",     // not GMT
           "Mon, 7 Dec 2026 10:01:30 GMT",      // one-digit day
           "Mon, 07 dec 2026 10:01:30 GMT",     // month case
           "Mon, 07 Foo 2026 10:01:30 GMT",     // no such month
           "Mon, 32 Dec 2026 10:01:30 GMT",     // no such day
           "Mon, 07 Dec 2026 24:00:00 GMT",     // no such hour
           "Mon, 07 Dec 2026 10:60:00 GMT",     // no such minute
           "Mon, 07 Dec 2026 10:01:30 GMT x",   // trailing text
           "Mon,07 Dec 2026 10:01:30 GMT",      // missing space
           "Mon, 07-Dec-26 10:01:30 GMT",       // RFC 850 needs the long day name
           "Monday, 07 Dec 2026 10:01:30 GMT",  // IMF-fixdate needs the short one
           "Mon Dec 7 10:01:30 2026",           // asctime pads the day to two places
           "2026-12-07T10:01:30Z",              // RFC 3339 is not an HTTP-date
       }) {
    EXPECT_EQ(ParseRetryAfter(bad, kNow), std::nullopt) << bad;
  }
}

TEST(OutcomeTest, NamesAreStable) {
  EXPECT_EQ(ToString(Verdict::kSuccess), "success");
  EXPECT_EQ(ToString(Verdict::kRetry), "retry");
  EXPECT_EQ(ToString(Verdict::kPermanent), "permanent");
  EXPECT_EQ(ToString(TransportError::kNone), "none");
  EXPECT_EQ(ToString(TransportError::kTimeout), "timeout");
}

}  // namespace
}  // namespace redrive::push
