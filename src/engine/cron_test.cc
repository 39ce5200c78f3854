#include "engine/cron.h"

#include <gtest/gtest.h>

#include "common/text.h"

namespace redrive::engine {
namespace {

TimeMs At(const char* text) { return ParseTime(text).value(); }
std::string NextAfter(const char* cron, const char* after) {
  auto c = CronSchedule::Parse(cron);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  TimeMs next = c->Next(At(after));
  return next ? FormatTime(next) : "never";
}

TEST(CronTest, MondaysAtNineIsTheNextMondayAtNineUtc) {
  // 2026-12-07 is a Monday.
  EXPECT_EQ(NextAfter("0 9 * * 1", "2026-12-07T08:59:00Z"), "2026-12-07T09:00:00.000Z");
  EXPECT_EQ(NextAfter("0 9 * * 1", "2026-12-07T09:00:00Z"), "2026-12-14T09:00:00.000Z");
  EXPECT_EQ(NextAfter("0 9 * * MON", "2026-12-08T00:00:00Z"), "2026-12-14T09:00:00.000Z");
  EXPECT_EQ(NextAfter("0 9 * * 1", "2026-12-31T12:00:00Z"), "2027-01-04T09:00:00.000Z");
}

TEST(CronTest, StepsRangesListsAndNames) {
  EXPECT_EQ(NextAfter("*/15 * * * *", "2026-12-07T10:07:30Z"), "2026-12-07T10:15:00.000Z");
  EXPECT_EQ(NextAfter("5-10/5 * * * *", "2026-12-07T10:06:00Z"), "2026-12-07T10:10:00.000Z");
  EXPECT_EQ(NextAfter("0 0,12 * * *", "2026-12-07T00:00:00Z"), "2026-12-07T12:00:00.000Z");
  EXPECT_EQ(NextAfter("0 0 1 jan *", "2026-12-07T00:00:00Z"), "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(NextAfter("0 0 * * 7", "2026-12-07T00:00:00Z"), "2026-12-13T00:00:00.000Z");  // Sun
  EXPECT_EQ(NextAfter("30 2 29 2 *", "2026-12-07T00:00:00Z"), "2028-02-29T02:30:00.000Z");
  EXPECT_EQ(NextAfter("0 0 31 2 *", "2026-12-07T00:00:00Z"), "never");
}

TEST(CronTest, DayOfMonthOrDayOfWeekWhenBothAreSet) {
  // The 10th, or any Friday: Friday 2026-12-11 comes after Thursday the 10th.
  EXPECT_EQ(NextAfter("0 0 10 * 5", "2026-12-09T00:00:00Z"), "2026-12-10T00:00:00.000Z");
  EXPECT_EQ(NextAfter("0 0 10 * 5", "2026-12-10T00:00:00Z"), "2026-12-11T00:00:00.000Z");
}

TEST(CronTest, BadSchedulesNameTheField) {
  for (const char* bad :
       {"", "0 9 * *", "0 9 * * 1 2", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
        "* * * * 8", "*/0 * * * *", "5-1 * * * *", "x * * * *", "* * * * funday"}) {
    auto c = CronSchedule::Parse(bad);
    EXPECT_FALSE(c.ok()) << bad;
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(CronSchedule::Parse("61 * * * *").status().message().find("minute"), std::string::npos);
}

}  // namespace
}  // namespace redrive::engine
