// Diagnosis of a failure group: which of the causes an operator tells apart by reading delivery
// logs (the Janrain ProfileSync list) the group's dead letters point at, read from the per-minute
// counts of its origin's delivery outcomes (DeliveryOutcomes), with the evidence.
//
//   outage        every delivery from the origin failed during a window that holds the group's
//                 dead letters, and deliveries succeeded again after it (target downtime, a
//                 network interruption)
//   broken-since  the same, but nothing has succeeded since the window began, and something
//                 had before it (a changed target API or endpoint, changed credentials)
//   tls           the group's cause is a TLS or certificate error (an expired or untrusted
//                 certificate); decided by the cause, before any of the others
//   scattered     a small share of the deliveries failed, spread among successes (a mapping
//                 or data error in some messages, not a problem of the target)
//
// The rules, in order (minutes are whole minutes of the engine's clock; a minute is *failing*
// when it counted failures and no success, *succeeding* when it counted a success, with or
// without failures; minutes that counted nothing are skipped):
//   0. Only groups of failed deliveries are diagnosed: reasons max-deliveries, rejected and
//      permanent-failure. Others (expired, overflow, no-route, too-large, script) get none.
//   1. tls: the cause is a TLS or certificate error (IsTlsCause), whatever the counts say. The
//      evidence is the run of minutes around the latest minute with TLS failures up to the
//      group's last dead letter, each with TLS failures or without any success: `since` is its
//      first minute, `failed` its TLS failures, `succeeded` its successes, `recoveredAt` the
//      next minute (which counted a success and no TLS failure), if any. With no TLS failure
//      counted, `since` is the minute of the group's first dead letter and the counts are 0.
//   2. The window: the group's minutes (its first to its last dead letter) must hold no
//      succeeding minute except their first and last. The window extends from them over the
//      failing minutes on either side, and takes in the succeeding minute on either edge when
//      that minute also counted failures (the outage began or ended within it). It must hold
//      at least kMinFailingMinutes failing minutes; otherwise go to 4.
//   3. A succeeding minute after the window's failing minutes (the window's last minute, or the
//      next one): outage, recovered from that minute. None: broken-since, since the window's
//      first minute, if some earlier minute (or that first one) counted a success; when no
//      success is counted at all before it, there is no diagnosis (nothing to date a change
//      to: the origin may never have worked within the counts kept).
//   4. scattered: from the first minute with failures within kScatterLookback before the
//      group's first dead letter, to the minute of its last one, failures are less than
//      kScatteredMaxShare of the deliveries, and some succeeded.
//   5. Otherwise none: the counts do not tell (say so rather than guess).
// Only the counts from kDiagnosisLookback before the group's first dead letter are evidence,
// however many the caller passes, so a group's diagnosis does not depend on which others of its
// origin were read with it.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace redrive::engine {

inline constexpr DurationMs kOutcomeMinute = 60'000;
// Failing minutes a window needs before it is called an outage or a breakage: one failing
// minute can be one message retried while nothing else was sent.
inline constexpr int kMinFailingMinutes = 2;
// Below this share of failures among the deliveries, failures spread among successes are
// scattered; at or above it the counts do not tell.
inline constexpr double kScatteredMaxShare = 0.2;
// How far before a group's first dead letter its failures are looked for (scattered): the
// default retry policy spends about 8.5 minutes on a message.
inline constexpr DurationMs kScatterLookback = 3'600'000;
// The counts a diagnosis reads begin this long before the group's first dead letter (or where
// the counts kept begin, if later): enough for the retries of the longest preset schedule
// (akamai: about 25 hours) before it. A window that began earlier is dated from there.
inline constexpr DurationMs kDiagnosisLookback = 48 * 3'600'000LL;

enum class DiagnosisKind { kOutage, kBrokenSince, kTls, kScattered };
// "outage", "broken-since", "tls", "scattered".
std::string_view ToString(DiagnosisKind kind);

// One origin's outcomes in one minute (`minute` is the minute's start).
struct MinuteOutcomes {
  TimeMs minute = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t failed_tls = 0;  // of `failed`
};

// What the diagnosis needs of a failure group.
struct GroupFacts {
  std::string origin;
  std::string reason;
  std::string cause;  // the normalized cause (CauseOfSignature)
  TimeMs first_seen = 0;
  TimeMs last_seen = 0;
};

struct Diagnosis {
  DiagnosisKind kind = DiagnosisKind::kOutage;
  // outage, scattered: the window [from, to) in whole minutes.
  TimeMs from = 0;
  TimeMs to = 0;
  // broken-since, tls: the start of the first minute that failed.
  TimeMs since = 0;
  // broken-since: the start of the last minute with a success at or before `since`.
  TimeMs last_success_at = 0;
  // outage, tls: the start of the first minute deliveries succeeded again; 0 = not yet (tls).
  TimeMs recovered_at = 0;
  // outage, scattered: in the window; broken-since: since `since`; tls: in the run of TLS
  // failures (`failed` counts the TLS ones).
  int64_t failed = 0;
  int64_t succeeded = 0;
  double share = 0;              // failed / (failed + succeeded); 0 when both are 0
  int64_t succeeded_before = 0;  // broken-since: successes counted before `since`
  int64_t succeeded_after = 0;   // outage, tls: successes from `recovered_at` on
  int64_t failing_minutes = 0;   // outage, scattered: minutes of the window with failures
  std::string summary;           // one sentence for people (API, digest, ticket)
};

// Whether a cause is a TLS or certificate error: it names TLS, SSL, a certificate or X.509
// (as words, case-insensitively: "tls: SSL certificate problem: ...", "x509: certificate has
// expired", "CERT_HAS_EXPIRED"), not merely https.
bool IsTlsCause(std::string_view cause);

// The group's diagnosis by the rules above, or nullopt when they do not tell.
// REQUIRES: `minutes` are the origin's, in increasing minute order, one per minute, each
// minute-aligned (what DeliveryOutcomes::Series returns).
std::optional<Diagnosis> DiagnoseFailureGroup(const GroupFacts& group,
                                              const std::vector<MinuteOutcomes>& minutes);

// The JSON form shared by the API, the digest and the ticket (docs/api.md, "Failure groups"):
// {"kind", "summary", "failed", "succeeded", "share"} and per kind: outage "window" {"from",
// "to"}, "recoveredAt", "succeededAfter", "failingMinutes"; broken-since "since",
// "lastSuccessAt", "succeededBefore"; tls "since", "recoveredAt" (null when not yet),
// "succeededAfter"; scattered "window", "failingMinutes". Times as FormatTime; "share" rounded
// to four decimal places.
nlohmann::json DiagnosisToJson(const Diagnosis& diagnosis);

}  // namespace redrive::engine
