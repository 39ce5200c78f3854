#include "engine/cron.h"

#include <array>
#include <chrono>
#include <vector>

namespace redrive::engine {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::array<std::string_view, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                      "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kWeekdays = {"sun", "mon", "tue", "wed",
                                                       "thu", "fri", "sat"};

struct FieldSpec {
  const char* name;
  int lo, hi;
  const std::string_view* names;  // names[i] is lo + i; nullptr = numbers only
  size_t name_count;
};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    out.push_back(
        s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

bool ParseValue(std::string_view v, const FieldSpec& f, int* out) {
  if (v.empty()) return false;
  if (f.names && v.size() == 3 && !(v[0] >= '0' && v[0] <= '9')) {
    std::string lower(v);
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    for (size_t i = 0; i < f.name_count; ++i) {
      if (f.names[i] == lower) {
        *out = f.lo + static_cast<int>(i);
        return true;
      }
    }
    return false;
  }
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9' || n > 1000) return false;
    n = n * 10 + (c - '0');
  }
  *out = n;
  return true;
}

// Sets bits[v - offset] for every value the field names; `hi_alias` (7 for Sunday) folds to lo.
template <size_t N>
Status ParseField(std::string_view text, const FieldSpec& f, int hi_alias, std::bitset<N>* bits,
                  bool* any) {
  auto bad = [&](std::string_view why) {
    return Status(ErrorCode::kInvalidArgument, std::string("cron field '") + f.name + "' ('" +
                                                   std::string(text) + "'): " + std::string(why));
  };
  *any = text == "*";
  for (std::string_view part : Split(text, ',')) {
    int step = 1;
    if (size_t slash = part.find('/'); slash != std::string_view::npos) {
      if (!ParseValue(part.substr(slash + 1), FieldSpec{f.name, 0, 0, nullptr, 0}, &step) ||
          step < 1) {
        return bad("a step must be a positive number");
      }
      part = part.substr(0, slash);
    }
    int lo = f.lo, hi = f.hi;
    if (part != "*") {
      size_t dash = part.find('-');
      if (!ParseValue(part.substr(0, dash), f, &lo)) return bad("not a value");
      hi = lo;
      if (dash != std::string_view::npos && !ParseValue(part.substr(dash + 1), f, &hi)) {
        return bad("not a range");
      }
      int max = hi_alias > 0 ? hi_alias : f.hi;
      if (lo < f.lo || hi > max || lo > max) {
        return bad("values go from " + std::to_string(f.lo) + " to " + std::to_string(max));
      }
      if (hi < lo) return bad("a range must go upwards");
      if (dash == std::string_view::npos && step > 1) hi = max;  // "a/n": from a to the end
    }
    for (int v = lo; v <= hi; v += step) {
      int folded = hi_alias > 0 && v == hi_alias ? f.lo : v;
      bits->set(static_cast<size_t>(folded));
    }
  }
  return Status::Ok();
}

// Days since the epoch of a civil date, and back (Howard Hinnant's algorithms, via <chrono>).
struct Civil {
  int year;
  unsigned month, day;
};

Civil CivilOf(int64_t days) {
  std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{days}}};
  return {static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day())};
}

}  // namespace

Result<CronSchedule> CronSchedule::Parse(std::string_view text) {
  std::vector<std::string_view> fields;
  for (std::string_view f : Split(Trim(text), ' ')) {
    if (!f.empty()) fields.push_back(f);
  }
  if (fields.size() != 5) {
    return Status(ErrorCode::kInvalidArgument,
                  "a cron schedule has five fields (minute hour day-of-month month day-of-week), "
                  "e.g. \"0 9 * * 1\"; got '" +
                      std::string(text) + "'");
  }
  CronSchedule c;
  c.text_ = std::string(Trim(text));
  bool any = false;
  REDRIVE_RETURN_IF_ERROR(
      ParseField(fields[0], {"minute", 0, 59, nullptr, 0}, 0, &c.minutes_, &any));
  REDRIVE_RETURN_IF_ERROR(ParseField(fields[1], {"hour", 0, 23, nullptr, 0}, 0, &c.hours_, &any));
  REDRIVE_RETURN_IF_ERROR(
      ParseField(fields[2], {"day-of-month", 1, 31, nullptr, 0}, 0, &c.days_, &c.any_day_));
  REDRIVE_RETURN_IF_ERROR(
      ParseField(fields[3], {"month", 1, 12, kMonths.data(), kMonths.size()}, 0, &c.months_, &any));
  REDRIVE_RETURN_IF_ERROR(ParseField(fields[4], {"day-of-week", 0, 6, kWeekdays.data(), 7}, 7,
                                     &c.weekdays_, &c.any_weekday_));
  return c;
}

TimeMs CronSchedule::Next(TimeMs after) const {
  constexpr int64_t kMinute = 60'000, kDay = 86'400'000;
  int64_t minute = after < 0 ? 0 : after / kMinute + 1;  // the first whole minute after it
  int64_t day = minute * kMinute / kDay;
  int minute_of_day = static_cast<int>(minute - day * (kDay / kMinute));
  for (int64_t end = day + 5 * 366; day < end; ++day, minute_of_day = 0) {
    Civil c = CivilOf(day);
    if (!months_.test(c.month)) continue;
    int weekday = static_cast<int>((day + 4) % 7);  // 1970-01-01 was a Thursday (4)
    bool dom = days_.test(c.day), dow = weekdays_.test(static_cast<size_t>(weekday));
    bool day_ok = any_day_ && any_weekday_ ? true
                  : any_day_               ? dow
                  : any_weekday_           ? dom
                                           : dom || dow;
    if (!day_ok) continue;
    for (int m = minute_of_day; m < 24 * 60; ++m) {
      if (hours_.test(static_cast<size_t>(m / 60)) && minutes_.test(static_cast<size_t>(m % 60))) {
        return (day * (kDay / kMinute) + m) * kMinute;
      }
    }
  }
  return 0;
}

}  // namespace redrive::engine
