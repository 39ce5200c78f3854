// Cron schedules: the five fields of crontab(5) (minute, hour, day of month, month, day of
// week), in UTC. Each field takes `*`, numbers, ranges `a-b`, lists `a,b`, and steps `*/n` or
// `a-b/n`; months and days of the week also take their English three-letter names (JAN, MON),
// and day 7 is Sunday as 0 is. As in cron, when both the day of month and the day of week are
// restricted, a day matching either matches. Used for the tenants' digest (tickets.cc).
// Thread-safety: values.
#pragma once

#include <bitset>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace redrive::engine {

class CronSchedule {
 public:
  // Errors: kInvalidArgument, naming the field and what is wrong with it.
  static Result<CronSchedule> Parse(std::string_view text);

  // The first minute strictly after `after` that the schedule matches, in ms since the epoch;
  // 0 when there is none within 5 years (e.g. "0 0 31 2 *").
  TimeMs Next(TimeMs after) const;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool any_day_ = true;      // day-of-month field was "*"
  bool any_weekday_ = true;  // day-of-week field was "*"
};

}  // namespace redrive::engine
