// The Coordinator contract (coordination.h), in process: LocalCoordinator. What crosses nodes,
// PgCoordinator's, is tested in store/postgres/pg_coordinator_test.cc.
#include "engine/coordination.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

namespace redrive::engine {
namespace {

struct Recorder : CoordinationListener {
  std::vector<int64_t> ready;
  std::vector<std::pair<CacheScope, std::string>> invalidated;
  void OnReady(int64_t queue_id) override { ready.push_back(queue_id); }
  void OnInvalidate(CacheScope scope, const std::string& key) override {
    invalidated.emplace_back(scope, key);
  }
};

using Factory = std::function<std::unique_ptr<Coordinator>(Clock&)>;

class CoordinatorContract : public ::testing::TestWithParam<Factory> {
 protected:
  ManualClock clock_{1'000'000};
  std::unique_ptr<Coordinator> coord_ = GetParam()(clock_);
};

TEST_P(CoordinatorContract, ThisNodesListenersHearASignalBeforeItReturns) {
  Recorder a, b;
  coord_->Subscribe(&a);
  coord_->Subscribe(&b);
  coord_->SignalReady(7);
  coord_->Invalidate(CacheScope::kQueue, "t/orders");
  EXPECT_EQ(a.ready, std::vector<int64_t>{7});
  EXPECT_EQ(b.ready, std::vector<int64_t>{7});
  ASSERT_EQ(a.invalidated.size(), 1u);
  EXPECT_EQ(a.invalidated[0].first, CacheScope::kQueue);
  EXPECT_EQ(a.invalidated[0].second, "t/orders");
  coord_->Unsubscribe(&a);
  coord_->SignalReady(8);
  EXPECT_EQ(a.ready, std::vector<int64_t>{7});  // not called after Unsubscribe
  EXPECT_EQ(b.ready, (std::vector<int64_t>{7, 8}));
  coord_->Unsubscribe(&b);
}

TEST_P(CoordinatorContract, AClaimIsHeldByOneHolderUntilItExpires) {
  EXPECT_TRUE(coord_->Claim("sweeper", "node-a", 3'000));
  EXPECT_FALSE(coord_->Claim("sweeper", "node-b", 3'000));
  EXPECT_TRUE(coord_->Claim("other", "node-b", 3'000));  // names are independent
  clock_.Advance(2'000);
  EXPECT_TRUE(coord_->Claim("sweeper", "node-a", 3'000));  // renewed: now until +3s
  clock_.Advance(2'000);
  EXPECT_FALSE(coord_->Claim("sweeper", "node-b", 3'000));  // the renewal still holds
  clock_.Advance(1'001);                                    // node-a died and did not renew
  EXPECT_TRUE(coord_->Claim("sweeper", "node-b", 3'000));
  EXPECT_FALSE(coord_->Claim("sweeper", "node-a", 3'000));  // its renewal fails: it must stop
}

TEST_P(CoordinatorContract, OnlyTheHolderReleasesAClaim) {
  EXPECT_TRUE(coord_->Claim("job/1", "node-a", 60'000));
  coord_->Release("job/1", "node-b");  // not its claim: nothing happens
  EXPECT_FALSE(coord_->Claim("job/1", "node-b", 60'000));
  coord_->Release("job/1", "node-a");
  EXPECT_TRUE(coord_->Claim("job/1", "node-b", 60'000));
}

TEST_P(CoordinatorContract, ConcurrentClaimantsNeverBothHoldIt) {
  constexpr int kThreads = 8;
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (coord_->Claim("runner", "holder-" + std::to_string(i), 60'000)) ++won;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Local, CoordinatorContract, ::testing::Values(Factory([](Clock& clock) {
                           return std::make_unique<LocalCoordinator>(clock, "node-a");
                         })),
                         [](const auto&) { return std::string("InProcess"); });

}  // namespace
}  // namespace redrive::engine
