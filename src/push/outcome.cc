#include "push/outcome.h"

#include <time.h>

#include <algorithm>
#include <array>

#include "common/text.h"

namespace redrive::push {
namespace {

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// A cursor over a date text; each Take* consumes exactly what it names or fails.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool done() const { return at_ == s_.size(); }
  bool Take(std::string_view literal) {
    if (s_.substr(at_, literal.size()) != literal) return false;
    at_ += literal.size();
    return true;
  }
  // Exactly `n` digits; with `space_padded`, the first may be a space ("Nov  6").
  bool TakeNumber(size_t n, int* out, bool space_padded = false) {
    if (at_ + n > s_.size()) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s_[at_ + i];
      if (i == 0 && space_padded && c == ' ' && n > 1) continue;
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    at_ += n;
    *out = v;
    return true;
  }
  template <size_t N>
  bool TakeName(const std::array<std::string_view, N>& names, int* index) {
    for (size_t i = 0; i < N; ++i) {
      if (Take(names[i])) {
        *index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }
  bool TakeTime(int* h, int* m, int* s) {
    return TakeNumber(2, h) && Take(":") && TakeNumber(2, m) && Take(":") && TakeNumber(2, s);
  }

 private:
  std::string_view s_;
  size_t at_ = 0;
};

struct DateParts {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

bool ParseImfFixdate(std::string_view s, DateParts* d) {
  Scanner in(s);
  int ignored;
  return in.TakeName(kDays, &ignored) && in.Take(", ") && in.TakeNumber(2, &d->day) &&
         in.Take(" ") && in.TakeName(kMonths, &d->month) && in.Take(" ") &&
         in.TakeNumber(4, &d->year) && in.Take(" ") &&
         in.TakeTime(&d->hour, &d->minute, &d->second) && in.Take(" GMT") && in.done();
}

bool ParseRfc850(std::string_view s, int now_year, DateParts* d) {
  Scanner in(s);
  int ignored, yy;
  if (!(in.TakeName(kLongDays, &ignored) && in.Take(", ") && in.TakeNumber(2, &d->day) &&
        in.Take("-") && in.TakeName(kMonths, &d->month) && in.Take("-") && in.TakeNumber(2, &yy) &&
        in.Take(" ") && in.TakeTime(&d->hour, &d->minute, &d->second) && in.Take(" GMT") &&
        in.done())) {
    return false;
  }
  // RFC 9110: a two-digit year more than 50 years ahead is the latest past year ending so.
  d->year = now_year - now_year % 100 + yy;
  if (d->year > now_year + 50) d->year -= 100;
  return true;
}

bool ParseAsctime(std::string_view s, DateParts* d) {
  Scanner in(s);
  int ignored;
  return in.TakeName(kDays, &ignored) && in.Take(" ") && in.TakeName(kMonths, &d->month) &&
         in.Take(" ") && in.TakeNumber(2, &d->day, /*space_padded=*/true) && in.Take(" ") &&
         in.TakeTime(&d->hour, &d->minute, &d->second) && in.Take(" ") &&
         in.TakeNumber(4, &d->year) && in.done();
}

std::optional<TimeMs> ParseHttpDate(std::string_view s, TimeMs now) {
  time_t now_seconds = static_cast<time_t>(now / 1000);
  struct tm now_tm {};
  gmtime_r(&now_seconds, &now_tm);
  DateParts d;
  // Names are matched case-sensitively, as the grammar spells them.
  if (!ParseImfFixdate(s, &d) && !ParseRfc850(s, now_tm.tm_year + 1900, &d) &&
      !ParseAsctime(s, &d)) {
    return std::nullopt;
  }
  if (d.day < 1 || d.day > 31 || d.hour > 23 || d.minute > 59 || d.second > 60) {
    return std::nullopt;
  }
  struct tm tm_utc {};
  tm_utc.tm_year = d.year - 1900;
  tm_utc.tm_mon = d.month;  // TakeName gave the 0-based index
  tm_utc.tm_mday = d.day;
  tm_utc.tm_hour = d.hour;
  tm_utc.tm_min = d.minute;
  tm_utc.tm_sec = d.second;
  return static_cast<TimeMs>(timegm(&tm_utc)) * 1000;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view ToString(TransportError error) {
  switch (error) {
    case TransportError::kNone:
      return "none";
    case TransportError::kTimeout:
      return "timeout";
    case TransportError::kConnection:
      return "connection";
    case TransportError::kTls:
      return "tls";
    case TransportError::kInvalidUrl:
      return "invalid-url";
    case TransportError::kShutdown:
      return "shutdown";
    case TransportError::kOther:
      return "transport";
  }
  return "transport";
}

std::string_view ToString(Verdict verdict) {
  switch (verdict) {
    case Verdict::kSuccess:
      return "success";
    case Verdict::kRetry:
      return "retry";
    case Verdict::kPermanent:
      return "permanent";
  }
  return "retry";
}

const std::set<int>& DefaultPermanentCodes() {
  static const std::set<int> kCodes = {400, 401, 403, 404, 405, 410, 413, 422};
  return kCodes;
}

std::optional<DurationMs> ParseRetryAfter(std::string_view value, TimeMs now) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    constexpr DurationMs kMaxSeconds = kMaxDuration / 1000;
    DurationMs seconds = 0;
    for (char c : value) {
      seconds = seconds * 10 + (c - '0');
      if (seconds > kMaxSeconds) return kMaxDuration;  // also keeps the sum from overflowing
    }
    return seconds * 1000;
  }
  std::optional<TimeMs> at = ParseHttpDate(value, now);
  if (!at) return std::nullopt;
  return std::clamp<DurationMs>(*at - now, 0, kMaxDuration);
}

Outcome Classify(const DeliveryResult& result, TimeMs now, const std::set<int>& permanent_codes) {
  Outcome out;
  if (result.error != TransportError::kNone) {
    out.verdict =
        result.error == TransportError::kInvalidUrl ? Verdict::kPermanent : Verdict::kRetry;
    out.cause = std::string(ToString(result.error));
    return out;
  }
  long status = result.status;
  if (status >= 200 && status <= 299) {
    out.verdict = Verdict::kSuccess;
    return out;
  }
  out.cause = "http " + std::to_string(status);
  if ((status >= 300 && status <= 399) || permanent_codes.count(static_cast<int>(status)) > 0) {
    out.verdict = Verdict::kPermanent;
    out.disable_endpoint = status == 410;
    return out;
  }
  out.verdict = Verdict::kRetry;
  out.retry_after = ParseRetryAfter(result.retry_after, now);
  return out;
}

}  // namespace redrive::push
