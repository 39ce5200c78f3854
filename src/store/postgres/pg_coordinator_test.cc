// PgCoordinator on the test cluster: what crosses nodes (wake-ups, invalidations, claims, live
// nodes) between two coordinators sharing one database, as two nodes would. The in-process
// half of the contract is engine/coordination_test.cc's, run on PgCoordinator there too.
#include "store/postgres/pg_coordinator.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "store/postgres/pg_store.h"
#include "store/postgres/pg_test_database.h"

namespace redrive::store::postgres {
namespace {

using engine::CacheScope;
using namespace std::chrono_literals;

struct Recorder : engine::CoordinationListener {
  std::mutex mu;
  std::vector<int64_t> ready;
  std::vector<std::pair<CacheScope, std::string>> invalidated;
  void OnReady(int64_t queue_id) override {
    std::lock_guard l(mu);
    ready.push_back(queue_id);
  }
  void OnInvalidate(CacheScope scope, const std::string& key) override {
    std::lock_guard l(mu);
    invalidated.emplace_back(scope, key);
  }
  size_t ReadyCount(int64_t q) {
    std::lock_guard l(mu);
    return static_cast<size_t>(std::count(ready.begin(), ready.end(), q));
  }
  bool Heard(CacheScope scope, const std::string& key) {
    std::lock_guard l(mu);
    return std::find(invalidated.begin(), invalidated.end(), std::make_pair(scope, key)) !=
           invalidated.end();
  }
};

template <typename F>
bool Eventually(F f, std::chrono::milliseconds within = 3s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

class PgCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = "coordinator-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    uri_ = TestDatabase(key_);
    auto store = PgStore::Open(uri_, 2);  // the schema (the claims table)
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    a_ = std::make_unique<PgCoordinator>(uri_, "node-a");
    b_ = std::make_unique<PgCoordinator>(uri_, "node-b");
    ASSERT_TRUE(Eventually([&] { return a_->listening() && b_->listening(); }));
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    DropTestDatabase(key_);
  }

  std::string key_, uri_;
  std::unique_ptr<PgCoordinator> a_, b_;
};

TEST_F(PgCoordinatorTest, ASignalOnOneNodeWakesTheOtherOnceCoalesced) {
  Recorder ra, rb;
  a_->Subscribe(&ra);
  b_->Subscribe(&rb);
  for (int i = 0; i < 50; ++i) a_->SignalReady(7);
  EXPECT_EQ(ra.ReadyCount(7), 50u);  // this node: every signal, before SignalReady returns
  ASSERT_TRUE(Eventually([&] { return rb.ReadyCount(7) >= 1; }, 1s));
  std::this_thread::sleep_for(200ms);
  EXPECT_LT(rb.ReadyCount(7), 50u);  // the other node: coalesced
  EXPECT_EQ(ra.ReadyCount(7), 50u);  // a node does not hear its own NOTIFY again
  a_->Unsubscribe(&ra);
  b_->Unsubscribe(&rb);
}

TEST_F(PgCoordinatorTest, AnInvalidationReachesTheOtherNodeWithinASecond) {
  Recorder rb;
  b_->Subscribe(&rb);
  auto start = std::chrono::steady_clock::now();
  a_->Invalidate(CacheScope::kToken, "tok_123");
  a_->Invalidate(CacheScope::kQueue, "acme/orders");
  ASSERT_TRUE(Eventually([&] { return rb.Heard(CacheScope::kToken, "tok_123"); }, 1s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(Eventually([&] { return rb.Heard(CacheScope::kQueue, "acme/orders"); }, 1s));
  b_->Unsubscribe(&rb);
}

TEST_F(PgCoordinatorTest, AClaimIsHeldByOneNodeUntilReleasedOrExpired) {
  EXPECT_TRUE(a_->Claim("sweeper", "node-a", 10'000));
  EXPECT_FALSE(b_->Claim("sweeper", "node-b", 10'000));
  EXPECT_TRUE(a_->Claim("sweeper", "node-a", 10'000));  // renewed
  b_->Release("sweeper", "node-b");                     // not its claim: nothing happens
  EXPECT_FALSE(b_->Claim("sweeper", "node-b", 10'000));
  a_->Release("sweeper", "node-a");
  EXPECT_TRUE(b_->Claim("sweeper", "node-b", 300));
  EXPECT_FALSE(a_->Claim("sweeper", "node-a", 300));
  std::this_thread::sleep_for(400ms);  // node-b died and did not renew
  EXPECT_TRUE(a_->Claim("sweeper", "node-a", 10'000));
  EXPECT_FALSE(b_->Claim("sweeper", "node-b", 10'000));  // its renewal fails: it must stop
}

TEST_F(PgCoordinatorTest, ConcurrentClaimantsNeverBothHoldIt) {
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto& c = i % 2 ? *a_ : *b_;
      if (c.Claim("job/1", "holder-" + std::to_string(i), 10'000)) ++winners;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
}

TEST_F(PgCoordinatorTest, BothNodesCountEachOther) {
  EXPECT_TRUE(Eventually([&] { return a_->LiveNodes() == 2 && b_->LiveNodes() == 2; }, 4s));
  b_.reset();  // a node that stops gives up its presence
  EXPECT_TRUE(Eventually([&] { return a_->LiveNodes() == 1; }, 4s));
}

TEST_F(PgCoordinatorTest, ALostListeningConnectionIsOpenedAgainAndCachesDropped) {
  Recorder rb;
  b_->Subscribe(&rb);
  // Every LISTENing backend of the database is terminated, as a database restart would.
  PGconn* admin = PQconnectdb(uri_.c_str());
  ASSERT_EQ(PQstatus(admin), CONNECTION_OK);
  PGresult* res = PQexec(admin,
                         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = current_database() AND query LIKE 'LISTEN%'");
  EXPECT_EQ(PQresultStatus(res), PGRES_TUPLES_OK);
  EXPECT_GE(PQntuples(res), 2);
  PQclear(res);
  PQfinish(admin);
  ASSERT_TRUE(Eventually([&] { return rb.Heard(CacheScope::kAll, ""); }, 5s));
  ASSERT_TRUE(Eventually([&] { return a_->listening() && b_->listening(); }, 5s));
  a_->SignalReady(42);
  EXPECT_TRUE(Eventually([&] { return rb.ReadyCount(42) >= 1; }, 2s));
  b_->Unsubscribe(&rb);
}

}  // namespace
}  // namespace redrive::store::postgres
