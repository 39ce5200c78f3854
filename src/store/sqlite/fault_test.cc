// Fault injection under the real SQLite store: a failing fsync must make the store refuse
// writes (sticky, until restart) rather than answer a write it cannot promise.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "store/sqlite/fault_vfs.h"
#include "store/store.h"

namespace redrive::store {
namespace {

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sqlite::InstallFaultVfs();
    sqlite::ArmSyncFailure(false);
    dir_ = ::testing::TempDir() + "/fault-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = OpenStore(dir_ + "/db").value();
    ASSERT_TRUE(store_->CreateTenant({"acme", 1}).ok());
    queue_id_ = store_->CreateQueue({0, "acme", "q", QueueKind::kStandard, "{}", 1, 1}).value();
  }
  void TearDown() override {
    sqlite::ArmSyncFailure(false);
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Result<PublishResult> Publish(const std::string& id) {
    PublishRequest r;
    r.queue_id = queue_id_;
    r.now = 1;
    MessageRecord m;
    m.id = id;
    m.body = "x";
    r.messages.push_back(m);
    return store_->Publish(r);
  }
  std::string dir_;
  std::unique_ptr<Store> store_;
  int64_t queue_id_ = 0;
};

TEST_F(FaultTest, CommitsReallySync) {
  long before = sqlite::SyncCount();
  ASSERT_TRUE(Publish("m1").ok());
  EXPECT_GT(sqlite::SyncCount(), before) << "a publish must fsync before it answers";
}

TEST_F(FaultTest, FailedFsyncMakesTheStoreRefuseWritesUntilRestart) {
  ASSERT_TRUE(Publish("m1").ok());
  sqlite::ArmSyncFailure(true);
  auto failed = Publish("m2");
  EXPECT_EQ(failed.status().code(), ErrorCode::kStoreFailed) << failed.status().ToString();
  sqlite::ArmSyncFailure(false);
  // Sticky: the disk "recovered", but the store no longer trusts it.
  EXPECT_EQ(Publish("m3").status().code(), ErrorCode::kStoreFailed);
  EXPECT_EQ(store_->CreateTenant({"beta", 1}).code(), ErrorCode::kStoreFailed);
  // Reads still answer.
  EXPECT_TRUE(store_->GetTenant("acme").ok());
  // A restart starts clean; the acknowledged message is there, the refused ones never were.
  store_.reset();
  store_ = OpenStore(dir_ + "/db").value();
  ASSERT_TRUE(Publish("m4").ok());
  LeaseRequest lr;
  lr.queue_id = queue_id_;
  lr.now = 10;
  lr.lease_until = 100;
  lr.max_messages = 4;
  lr.lease_token = "a";
  auto leased = store_->Lease(lr).value();
  std::vector<std::string> ids;
  for (const auto& m : leased) ids.push_back(m.id);
  EXPECT_EQ(ids.front(), "m1");
  EXPECT_EQ(ids.back(), "m4");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "m3"), 0);
}

}  // namespace
}  // namespace redrive::store
