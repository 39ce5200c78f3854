#include "engine/retry_policy.h"

#include <gtest/gtest.h>

namespace redrive::engine {
namespace {

TEST(RetryPolicyTest, ExhaustionFollowsMaxDeliveries) {
  RetryPolicy p;
  p.max_deliveries = 3;
  EXPECT_FALSE(IsExhausted(p, 1));
  EXPECT_FALSE(IsExhausted(p, 2));
  EXPECT_TRUE(IsExhausted(p, 3));
  EXPECT_TRUE(IsExhausted(p, 4));
  p.max_deliveries = 0;  // never retry
  EXPECT_TRUE(IsExhausted(p, 1));
  p.max_deliveries = -1;  // forever
  EXPECT_FALSE(IsExhausted(p, 1'000'000));
}

TEST(RetryPolicyTest, BackoffGrowsGeometricallyUpToTheCap) {
  SeededRandom random(1);
  Backoff b{1000, 2.0, 10'000, 0.0};
  EXPECT_EQ(BackoffDelay(b, 1, random), 1000);
  EXPECT_EQ(BackoffDelay(b, 2, random), 2000);
  EXPECT_EQ(BackoffDelay(b, 3, random), 4000);
  EXPECT_EQ(BackoffDelay(b, 4, random), 8000);
  EXPECT_EQ(BackoffDelay(b, 5, random), 10'000);
  EXPECT_EQ(BackoffDelay(b, 5000, random), 10'000);  // no overflow
}

TEST(RetryPolicyTest, JitterStaysWithinItsShareAndTheCap) {
  SeededRandom random(2);
  Backoff b{1000, 1.0, 1050, 0.2};
  DurationMs lo = 1'000'000, hi = 0;
  for (int i = 0; i < 2000; ++i) {
    DurationMs d = BackoffDelay(b, 1, random);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_GE(lo, 800);
  EXPECT_LT(lo, 850);   // jitter really spreads downwards
  EXPECT_EQ(hi, 1050);  // and is capped at max
}

TEST(RetryPolicyTest, JournalKeepsTheFirstAndTheLastAttempts) {
  store::Journal j;
  for (int i = 0; i < 50; ++i) {
    AppendAttempt(&j, store::Attempt{i, "c", "nack", "", "e" + std::to_string(i)});
  }
  ASSERT_EQ(j.attempts.size(), kJournalHead + kJournalTail);
  EXPECT_EQ(j.omitted, 50 - static_cast<int64_t>(kJournalHead + kJournalTail));
  EXPECT_EQ(j.attempts.front().error, "e0");
  EXPECT_EQ(j.attempts[kJournalHead - 1].error, "e4");
  EXPECT_EQ(j.attempts[kJournalHead].error, "e35");
  EXPECT_EQ(j.attempts.back().error, "e49");
}

TEST(RetryPolicyTest, AScheduleGivesItsDelaysInOrderAndRepeatsItsLast) {
  RetryPolicy p;
  p.schedule = {3'000, 30'000, 300'000};
  SeededRandom random(1);
  EXPECT_EQ(RetryDelay(p, 1, random), 3'000);
  EXPECT_EQ(RetryDelay(p, 2, random), 30'000);
  EXPECT_EQ(RetryDelay(p, 3, random), 300'000);
  EXPECT_EQ(RetryDelay(p, 4, random), 300'000);
  p.schedule.clear();
  p.backoff.jitter = 0;
  EXPECT_EQ(RetryDelay(p, 3, random), BackoffDelay(p.backoff, 3, random));
}

}  // namespace
}  // namespace redrive::engine
