// The SQLite layer: Db and Stmt (a statement that does not prepare is an error of the call that
// needs it, not the end of the process: it used to abort), and the words stored for enums.
#include "store/sqlite/sqlite_db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace redrive::store::sqlite {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;

class SqliteDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/sqlite-db-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(db_.Open(dir_ + "/db", /*read_only=*/false).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  Db db_;
};

TEST_F(SqliteDbTest, SqlThatDoesNotPrepareIsAnErrorWithTheMessageAndTheSql) {
  auto bad = db_.Prepare("SELEC 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInternal);
  EXPECT_NE(bad.status().message().find("syntax error"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("SELEC 1"), std::string::npos);
  auto missing = db_.PrepareText(std::string("SELECT x FROM nowhere"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no such table"), std::string::npos);
  // The connection goes on.
  auto good = db_.Prepare("SELECT 41 + 1");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  Stmt s = std::move(good).value();
  ASSERT_EQ(s.Step(), SQLITE_ROW);
  EXPECT_EQ(s.Int(0), 42);
}

TEST_F(SqliteDbTest, AFailedStatementIsNotCachedAndPreparesOnceItCan) {
  static constexpr char kSql[] = "SELECT COUNT(*) FROM later";
  EXPECT_FALSE(db_.Prepare(kSql).ok());
  ASSERT_TRUE(db_.Exec("CREATE TABLE later(x); INSERT INTO later VALUES(1), (2);").ok());
  auto again = db_.Prepare(kSql);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_EQ(again->Step(), SQLITE_ROW);
  EXPECT_EQ(again->Int(0), 2);
}

TEST_F(SqliteDbTest, AMovedStatementIsResetOnceAndReusable) {
  {
    auto first = db_.Prepare("SELECT 7");
    ASSERT_TRUE(first.ok());
    Stmt moved = std::move(first).value();
    ASSERT_EQ(moved.Step(), SQLITE_ROW);
  }  // reset here, once; the moved-from statement does nothing
  auto second = db_.Prepare("SELECT 7");
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->Step(), SQLITE_ROW) << "the cached statement was reset";
  EXPECT_EQ(second->Int(0), 7);
}

// Regression: a store whose statement no longer prepares (here: a table dropped behind its
// back) aborted the whole server. Now that call fails, the write's savepoint rolls back, and
// every other call goes on.
TEST_F(SqliteDbTest, AStoreCallWhoseStatementCannotPrepareFailsAloneAndTheStoreGoesOn) {
  auto opened = OpenStore("sqlite:" + dir_ + "/store.db");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto store = std::move(opened).value();
  ASSERT_TRUE(store->CreateTenant({"acme", kNow}).ok());
  int64_t queue =
      store->CreateQueue({0, "acme", "orders", QueueKind::kStandard, "{}", kNow, kNow}).value();
  Db other;
  ASSERT_TRUE(other.Open(dir_ + "/store.db", /*read_only=*/false).ok());
  ASSERT_TRUE(other.Exec("DROP TABLE audit").ok());

  auto read = store->ListAudit("acme", 0, 10);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), ErrorCode::kInternal);
  EXPECT_NE(read.status().message().find("audit"), std::string::npos) << read.status().message();
  Status write = store->AppendAudit({0, "acme", kNow, "tok", "x", "{}"});
  EXPECT_EQ(write.code(), ErrorCode::kInternal) << write.ToString();

  PublishRequest req;
  req.queue_id = queue;
  req.tenant = "acme";
  req.now = kNow;
  MessageRecord m;
  m.id = "m1";
  m.body = "x";
  req.messages.push_back(m);
  auto published = store->Publish(req);
  ASSERT_TRUE(published.ok()) << "not sticky: " << published.status().ToString();
  EXPECT_EQ(store->GetDepth(queue, kNow).value().ready, 1);
}

// The enums of job_state.h are stored as the words the column always held, so files written
// before them read the same; a word that names no state is an error, not a guess.
TEST_F(SqliteDbTest, TheJobStateColumnKeepsItsWords) {
  auto store = OpenStore("sqlite:" + dir_ + "/store.db").value();
  ASSERT_TRUE(store->CreateTenant({"acme", kNow}).ok());
  JobRecord job{"job_1", "acme", "dead-letters", JobState::kCancelling, "{}", "{}", kNow, kNow, 0};
  ASSERT_TRUE(store->CreateJob(job).ok());
  Db raw;
  ASSERT_TRUE(raw.Open(dir_ + "/store.db", /*read_only=*/false).ok());
  {
    auto s = raw.Prepare("SELECT state FROM jobs WHERE id = 'job_1'");
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(s->Step(), SQLITE_ROW);
    EXPECT_EQ(s->Text(0), "cancelling");
  }
  ASSERT_TRUE(raw.Exec("INSERT INTO jobs VALUES('job_2', 'acme', 'other', 'halted', '{}', '{}', "
                       "1, 1, 0), ('job_3', 'acme', 'third', 'paused', '{}', '{}', 1, 1, 0)")
                  .ok());
  EXPECT_EQ(store->GetJob("acme", "job_2").value()->state, JobState::kHalted);
  auto bad = store->GetJob("acme", "job_3");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInternal);
  EXPECT_NE(bad.status().message().find("'paused'"), std::string::npos);
}

TEST(JobStateTest, EachStateAndPhaseHasOneWordBothWays) {
  const std::vector<std::pair<JobState, std::string>> states = {
      {JobState::kRunning, "running"},       {JobState::kCompleted, "completed"},
      {JobState::kCancelling, "cancelling"}, {JobState::kCancelled, "cancelled"},
      {JobState::kHalted, "halted"},         {JobState::kFailed, "failed"}};
  for (const auto& [state, word] : states) {
    EXPECT_EQ(ToString(state), word);
    JobState back = JobState::kFailed;
    ASSERT_TRUE(FromString(word, &back)) << word;
    EXPECT_EQ(back, state);
  }
  const std::vector<std::pair<JobPhase, std::string>> phases = {
      {JobPhase::kCanary, "canary"},
      {JobPhase::kCanaryWait, "canary-wait"},
      {JobPhase::kBulk, "bulk"},
      {JobPhase::kDone, "done"}};
  for (const auto& [phase, word] : phases) {
    EXPECT_EQ(ToString(phase), word);
    JobPhase back = JobPhase::kDone;
    ASSERT_TRUE(FromString(word, &back)) << word;
    EXPECT_EQ(back, phase);
  }
  JobState unchanged = JobState::kHalted;
  EXPECT_FALSE(FromString("Running", &unchanged));
  EXPECT_EQ(unchanged, JobState::kHalted);
  EXPECT_TRUE(IsActive(JobState::kRunning));
  EXPECT_TRUE(IsActive(JobState::kCancelling));
  EXPECT_TRUE(IsActive(JobState::kHalted));
  EXPECT_FALSE(IsActive(JobState::kCompleted));
  EXPECT_FALSE(IsActive(JobState::kCancelled));
  EXPECT_FALSE(IsActive(JobState::kFailed));
}

}  // namespace
}  // namespace redrive::store::sqlite
