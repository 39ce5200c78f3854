#include "common/token_bucket.h"

#include <gtest/gtest.h>

namespace redrive {
namespace {

TEST(TokenBucketTest, AFullBucketAdmitsItsBurstThenRefillsAtItsRate) {
  TokenBucket b(/*rate=*/2, /*burst=*/3, /*initial=*/3, /*now=*/1000);
  DurationMs wait = 0;
  EXPECT_TRUE(b.TryTake(1000, 1, &wait));
  EXPECT_TRUE(b.TryTake(1000, 1, &wait));
  EXPECT_TRUE(b.TryTake(1000, 1, &wait));
  EXPECT_FALSE(b.TryTake(1000, 1, &wait));
  EXPECT_EQ(wait, 500);  // 2 per second: one every 500 ms
  EXPECT_FALSE(b.TryTake(1499, 1, &wait));
  EXPECT_EQ(wait, 1);
  EXPECT_TRUE(b.TryTake(1500, 1, &wait));
}

TEST(TokenBucketTest, NeverHoldsMoreThanItsBurst) {
  TokenBucket b(10, 2, 0, 0);
  EXPECT_EQ(b.Available(60'000), 2);
  EXPECT_TRUE(b.TryTake(60'000, 2));
  EXPECT_FALSE(b.TryTake(60'000, 1));
}

TEST(TokenBucketTest, WorkTakenOnCreditIsEarnedBackBeforeMore) {
  TokenBucket b(100, 100, 0, 0);
  EXPECT_EQ(b.Available(100), 10);
  b.Take(25);  // did more than it held
  EXPECT_EQ(b.Available(100), 0);
  EXPECT_EQ(b.Available(250), 0);  // -15 + 15
  EXPECT_EQ(b.Available(300), 5);
}

TEST(TokenBucketTest, TimeGoingBackwardsEarnsNothing) {
  TokenBucket b(1000, 5, 0, 1000);
  EXPECT_EQ(b.Available(500), 0);
  EXPECT_EQ(b.Available(1002), 2);
}

}  // namespace
}  // namespace redrive
