#include "engine/diagnosis.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <span>

#include "common/text.h"
#include "engine/model.h"

namespace redrive::engine {
namespace {

using Rows = std::span<const MinuteOutcomes>;

TimeMs MinuteOf(TimeMs t) {
  TimeMs m = t / kOutcomeMinute * kOutcomeMinute;
  return m > t ? m - kOutcomeMinute : m;  // floor, also before the epoch
}

double Share(int64_t failed, int64_t succeeded) {
  int64_t all = failed + succeeded;
  return all > 0 ? static_cast<double>(failed) / static_cast<double>(all) : 0.0;
}

std::string Percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", share * 100.0);
  return buf;
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

bool Succeeding(const MinuteOutcomes& m) { return m.succeeded > 0; }
bool Failing(const MinuteOutcomes& m) { return m.succeeded == 0 && m.failed > 0; }

// Index of the first row at or after `minute` (rows.size() when none).
size_t FirstAtOrAfter(Rows rows, TimeMs minute) {
  return static_cast<size_t>(
      std::lower_bound(rows.begin(), rows.end(), minute,
                       [](const MinuteOutcomes& r, TimeMs m) { return r.minute < m; }) -
      rows.begin());
}

bool IsDeliveryFailure(std::string_view reason) {
  return reason == kReasonMaxDeliveries || reason == kReasonRejected ||
         reason == kReasonPermanentFailure;
}

std::optional<Diagnosis> Tls(const GroupFacts& g, Rows rows) {
  Diagnosis d;
  d.kind = DiagnosisKind::kTls;
  TimeMs g1 = MinuteOf(g.last_seen);
  // The latest minute with TLS failures up to the group's last dead letter, and the run of
  // minutes around it that either failed over TLS or saw no success at all.
  size_t end = FirstAtOrAfter(rows, g1 + kOutcomeMinute);
  size_t t = end;
  while (t > 0 && rows[t - 1].failed_tls == 0) --t;
  auto in_run = [&](const MinuteOutcomes& m) { return m.failed_tls > 0 || m.succeeded == 0; };
  size_t a = 0, b = 0;
  if (t == 0) {
    // No TLS failure counted (the counts may have been lost or expired): the cause alone.
    d.since = MinuteOf(g.first_seen);
    a = FirstAtOrAfter(rows, d.since);
    b = a;
    while (b < rows.size() && rows[b].minute <= g1) ++b;
    b = b > a ? b - 1 : a;
  } else {
    a = b = t - 1;
    while (a > 0 && in_run(rows[a - 1])) --a;
    while (b + 1 < rows.size() && in_run(rows[b + 1])) ++b;
    d.since = rows[a].minute;
  }
  for (size_t i = a; i < rows.size() && i <= b; ++i) {
    d.failed += rows[i].failed_tls;
    d.succeeded += rows[i].succeeded;
  }
  if (t != 0 && b + 1 < rows.size()) {
    d.recovered_at = rows[b + 1].minute;
    for (size_t i = b + 1; i < rows.size(); ++i) d.succeeded_after += rows[i].succeeded;
  }
  d.share = Share(d.failed, d.succeeded);
  d.summary = "deliveries from " + g.origin + " fail with a TLS or certificate error";
  if (d.failed > 0) {
    d.summary += " since " + FormatTime(d.since) + " (" +
                 Plural(d.failed, "TLS failure", "TLS failures") + ", " +
                 Plural(d.succeeded, "success", "successes") + ")";
  }
  if (d.recovered_at > 0) {
    d.summary += "; deliveries succeeded again from " + FormatTime(d.recovered_at);
  } else {
    d.summary +=
        "; check the endpoint's certificate (expiry, chain, host name) and the CAs "
        "redrive trusts";
  }
  return d;
}

// Rules 2 and 3: the window of failing minutes that holds the group, and what followed it.
std::optional<Diagnosis> Window(const GroupFacts& g, Rows rows) {
  const size_t n = rows.size();
  TimeMs g0 = MinuteOf(g.first_seen), g1 = MinuteOf(g.last_seen);
  size_t lo = FirstAtOrAfter(rows, g0);
  size_t hi = FirstAtOrAfter(rows, g1 + kOutcomeMinute);  // the group's minutes: [lo, hi)
  if (lo == hi) {
    // No count in the group's own minutes: take the minute just before, if it failed (the
    // failure that exhausted the retries was counted, the dead-lettering came a moment later).
    if (lo == 0 || !Failing(rows[lo - 1])) return std::nullopt;
    lo -= 1;
  }
  for (size_t i = lo + 1; i + 1 < hi; ++i) {
    if (Succeeding(rows[i])) return std::nullopt;  // deliveries succeeded among the group's
  }
  size_t a = lo, b = hi - 1;
  bool onset_edge = Succeeding(rows[a]);     // failures began within the first minute
  bool recovery_edge = Succeeding(rows[b]);  // ... or stopped within the last one
  if (a == b && onset_edge) {
    // One succeeding minute: it is an edge of a window only next to failing minutes.
    bool failing_before = a > 0 && Failing(rows[a - 1]);
    bool failing_after = b + 1 < n && Failing(rows[b + 1]);
    if (failing_before) {
      onset_edge = false;
    } else if (failing_after) {
      recovery_edge = false;
    } else {
      return std::nullopt;
    }
  }
  if (!onset_edge) {
    while (a > 0 && Failing(rows[a - 1])) --a;
    if (a > 0 && Succeeding(rows[a - 1]) && rows[a - 1].failed > 0) --a;  // a mixed onset
  }
  if (!recovery_edge) {
    while (b + 1 < n && Failing(rows[b + 1])) ++b;
    if (b + 1 < n && Succeeding(rows[b + 1]) && rows[b + 1].failed > 0) ++b;  // mixed recovery
  }
  Diagnosis d;
  int64_t failing = 0;
  for (size_t i = a; i <= b; ++i) {
    failing += Failing(rows[i]) ? 1 : 0;
    d.failed += rows[i].failed;
    d.succeeded += rows[i].succeeded;
    d.failing_minutes += rows[i].failed > 0 ? 1 : 0;
  }
  if (failing < kMinFailingMinutes) return std::nullopt;
  d.share = Share(d.failed, d.succeeded);
  // Where deliveries succeeded again: the window's last minute when it succeeded too, else the
  // next minute with counts (which succeeded, or the window would have taken it in).
  size_t recovery = Succeeding(rows[b]) && b > a ? b : b + 1;
  if (recovery < n) {
    d.kind = DiagnosisKind::kOutage;
    d.from = rows[a].minute;
    d.to = rows[b].minute + kOutcomeMinute;
    d.recovered_at = rows[recovery].minute;
    for (size_t i = recovery; i < n; ++i) d.succeeded_after += rows[i].succeeded;
    d.summary = "every delivery from " + g.origin + " failed from " + FormatTime(d.from) + " to " +
                FormatTime(d.to) + " (" + Plural(d.failed, "failure", "failures") +
                "), and deliveries succeeded again from " + FormatTime(d.recovered_at) + " (" +
                Plural(d.succeeded_after, "success", "successes") +
                " since): the target or the network to it was down";
    return d;
  }
  // Nothing succeeded since the window began.
  size_t last_success = a + 1;
  if (Succeeding(rows[a])) {
    last_success = a;
  } else {
    for (size_t i = a; i-- > 0;) {
      if (Succeeding(rows[i])) {
        last_success = i;
        break;
      }
    }
  }
  if (last_success > a) return std::nullopt;  // never succeeded within the counts kept
  d.kind = DiagnosisKind::kBrokenSince;
  d.since = rows[a].minute;
  d.last_success_at = rows[last_success].minute;
  for (size_t i = 0; i < a; ++i) d.succeeded_before += rows[i].succeeded;
  d.summary = "no delivery from " + g.origin + " has succeeded since " + FormatTime(d.since) +
              " (" + Plural(d.failed, "failure", "failures") + " since; the last success was in " +
              "the minute from " + FormatTime(d.last_success_at) +
              "): the target changed (its API, address or credentials) or is down for good";
  return d;
}

std::optional<Diagnosis> Scattered(const GroupFacts& g, Rows rows) {
  TimeMs g0 = MinuteOf(g.first_seen), g1 = MinuteOf(g.last_seen);
  size_t a = FirstAtOrAfter(rows, g0 - kScatterLookback);
  size_t end = FirstAtOrAfter(rows, g1 + kOutcomeMinute);
  while (a < end && rows[a].failed == 0) ++a;
  if (a >= end) return std::nullopt;
  Diagnosis d;
  d.kind = DiagnosisKind::kScattered;
  for (size_t i = a; i < end; ++i) {
    d.failed += rows[i].failed;
    d.succeeded += rows[i].succeeded;
    d.failing_minutes += rows[i].failed > 0 ? 1 : 0;
  }
  d.share = Share(d.failed, d.succeeded);
  if (d.succeeded == 0 || d.share >= kScatteredMaxShare) return std::nullopt;
  d.from = rows[a].minute;
  d.to = rows[end - 1].minute + kOutcomeMinute;
  d.summary = Percent(d.share) + " of the deliveries from " + g.origin + " failed from " +
              FormatTime(d.from) + " to " + FormatTime(d.to) + " (" + std::to_string(d.failed) +
              " of " + std::to_string(d.failed + d.succeeded) + ", in " +
              Plural(d.failing_minutes, "minute", "minutes") +
              ") while the others succeeded: something in these messages (their data, or how "
              "it is mapped), not the target";
  return d;
}

bool IsWordByte(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::string_view ToString(DiagnosisKind kind) {
  switch (kind) {
    case DiagnosisKind::kOutage:
      return "outage";
    case DiagnosisKind::kBrokenSince:
      return "broken-since";
    case DiagnosisKind::kTls:
      return "tls";
    case DiagnosisKind::kScattered:
      return "scattered";
  }
  return "outage";
}

bool IsTlsCause(std::string_view cause) {
  std::string lower(cause);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Words (runs of letters and digits, so "CERT_HAS_EXPIRED" holds the word "cert") that name
  // TLS or a certificate; "https" does not: an HTTP error from an https URL is no TLS failure.
  static const char* const kWords[] = {"tls",  "tlsv1",       "ssl",          "openssl",
                                       "cert", "certificate", "certificates", "x509"};
  size_t i = 0;
  while (i < lower.size()) {
    if (!IsWordByte(lower[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < lower.size() && IsWordByte(lower[j])) ++j;
    std::string_view word(lower.data() + i, j - i);
    for (const char* w : kWords) {
      if (word == w) return true;
    }
    i = j;
  }
  return lower.find("x.509") != std::string::npos;
}

std::optional<Diagnosis> DiagnoseFailureGroup(const GroupFacts& group,
                                              const std::vector<MinuteOutcomes>& minutes) {
  if (!IsDeliveryFailure(group.reason)) return std::nullopt;
  // Only the horizon counts, however much the caller read: a group's diagnosis is the same
  // whether it is listed with others of its origin (read from the earliest's horizon) or alone.
  Rows rows(minutes);
  rows = rows.subspan(FirstAtOrAfter(rows, MinuteOf(group.first_seen) - kDiagnosisLookback));
  if (IsTlsCause(group.cause)) return Tls(group, rows);
  if (auto d = Window(group, rows)) return d;
  return Scattered(group, rows);
}

nlohmann::json DiagnosisToJson(const Diagnosis& d) {
  nlohmann::json j = {{"kind", ToString(d.kind)},
                      {"summary", d.summary},
                      {"failed", d.failed},
                      {"succeeded", d.succeeded},
                      {"share", std::round(d.share * 10'000.0) / 10'000.0}};
  auto window = [&] {
    return nlohmann::json{{"from", FormatTime(d.from)}, {"to", FormatTime(d.to)}};
  };
  switch (d.kind) {
    case DiagnosisKind::kOutage:
      j["window"] = window();
      j["failingMinutes"] = d.failing_minutes;
      j["recoveredAt"] = FormatTime(d.recovered_at);
      j["succeededAfter"] = d.succeeded_after;
      break;
    case DiagnosisKind::kBrokenSince:
      j["since"] = FormatTime(d.since);
      j["lastSuccessAt"] = FormatTime(d.last_success_at);
      j["succeededBefore"] = d.succeeded_before;
      break;
    case DiagnosisKind::kTls:
      j["since"] = FormatTime(d.since);
      j["recoveredAt"] =
          d.recovered_at > 0 ? nlohmann::json(FormatTime(d.recovered_at)) : nlohmann::json();
      j["succeededAfter"] = d.succeeded_after;
      break;
    case DiagnosisKind::kScattered:
      j["window"] = window();
      j["failingMinutes"] = d.failing_minutes;
      break;
  }
  return j;
}

}  // namespace redrive::engine
