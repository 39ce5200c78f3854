// Snapshots of the dead letters on PostgreSQL (control_store.h, SnapshotDeadLetters): what the
// conformance suite cannot show through the ports, whose every call is one transaction. Here a
// transaction is held open on a connection of the test's own, so that a dead letter draws a
// lower seq than one committed after it, and commits after a snapshot was taken.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/postgres/pg_conn.h"
#include "store/postgres/pg_store.h"
#include "store/postgres/pg_test_database.h"

namespace redrive::store::postgres {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;

class PgSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = ::testing::TempDir() + "/pg-snapshot-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    uri_ = TestDatabase(key_);
    auto store = PgStore::Open(uri_, 4);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    ASSERT_TRUE(store_->CreateTenant({"acme", kNow, "", false}).ok());
    auto conn = PgConn::Connect(uri_);
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    conn_ = std::move(conn).value();
  }
  void TearDown() override {
    conn_.reset();
    store_.reset();
    DropTestDatabase(key_);
  }

  // A dead letter written as SettleFailures writes one, on `conn` (inside its transaction, if
  // one is open), with the seq given (0: drawn now); returns its seq.
  static int64_t InsertDeadLetter(PgConn& conn, const std::string& id, int64_t seq = 0) {
    static const std::string kAttributes = EncodeAttributes({{"k", "v"}});
    static const std::string kJournal = EncodeJournal({});
    auto r = conn.Exec(
        "INSERT INTO dead_letters(seq, tenant, id, dlq, origin, reason, cause, body, "
        "attributes, idem_key, published_at, dead_lettered_at, retain_until, delivery_count, "
        "first_delivered_at, last_delivered_at, journal) VALUES(COALESCE(NULLIF($6, 0), "
        "nextval('dead_letters_seq_seq')), 'acme', $1, 'dead-letters', 'orders', 'rejected', "
        "'x', $2, $3, '', $4, $4, 0, 1, $4, $4, $5) RETURNING seq",
        Params().Text(id).Bytes("body").Text(kAttributes).Int(kNow).Text(kJournal).Int(seq));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->Int(0, 0) : 0;
  }

  std::vector<std::string> IdsIn(const DeadLetterSnapshot& snapshot) {
    DeadLetterScan scan;
    scan.tenant = "acme";
    scan.snapshot = snapshot;
    std::vector<std::string> ids;
    auto rows = store_->ScanDeadLetters(scan);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows.ok()) {
      for (const auto& d : rows.value()) ids.push_back(d.id);
    }
    return ids;
  }

  std::string key_;
  std::string uri_;
  std::unique_ptr<PgStore> store_;
  std::unique_ptr<PgConn> conn_;
};

// The case seq order cannot decide: "late" draws its seq first but commits after the snapshot,
// which "early" (a higher seq, committed before) is in. (Its seq is drawn ahead of its insert,
// as an insert draws it before the usage trigger waits for the tenant's row: holding that row
// here would block "early".)
TEST_F(PgSnapshotTest, ADeadLetterCommittedAfterTheSnapshotIsNotInItEvenWithALowerSeq) {
  ASSERT_TRUE(conn_->Script("BEGIN").ok());
  auto drawn = conn_->Exec("SELECT nextval('dead_letters_seq_seq')");
  ASSERT_TRUE(drawn.ok()) << drawn.status().ToString();
  auto other = PgConn::Connect(uri_);
  ASSERT_TRUE(other.ok());
  const int64_t early = InsertDeadLetter(*other.value(), "early");  // autocommit
  const int64_t late = InsertDeadLetter(*conn_, "late", drawn->Int(0, 0));
  ASSERT_LT(late, early);

  auto snapshot = store_->SnapshotDeadLetters("acme").value();
  EXPECT_EQ(snapshot.max_seq, early);
  EXPECT_FALSE(snapshot.visible.empty());
  ASSERT_TRUE(conn_->Script("COMMIT").ok());

  EXPECT_EQ(IdsIn(snapshot), std::vector<std::string>{"early"});
  DeadLetterScan scan;
  scan.tenant = "acme";
  scan.snapshot = snapshot;
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 1);
  // Without a snapshot, and in a later one, both are there.
  scan.snapshot = DeadLetterSnapshot{};
  EXPECT_EQ(store_->CountDeadLetters(scan).value(), 2);
  auto after = store_->SnapshotDeadLetters("acme").value();
  EXPECT_EQ(after.max_seq, early);
  EXPECT_EQ(IdsIn(after), (std::vector<std::string>{"late", "early"}));
}

// A transaction still open when the snapshot is taken and rolled back: its dead letter never
// existed, and the snapshot holds the others as before.
TEST_F(PgSnapshotTest, ASnapshotIgnoresWhatWasInFlightWhenItWasTaken) {
  InsertDeadLetter(*conn_, "a");
  ASSERT_TRUE(conn_->Script("BEGIN").ok());
  InsertDeadLetter(*conn_, "in-flight");
  auto snapshot = store_->SnapshotDeadLetters("acme").value();
  ASSERT_TRUE(conn_->Script("ROLLBACK").ok());
  InsertDeadLetter(*conn_, "b");
  EXPECT_EQ(IdsIn(snapshot), std::vector<std::string>{"a"});
}

TEST_F(PgSnapshotTest, OnlyThisBackendsSnapshotsAreAccepted) {
  InsertDeadLetter(*conn_, "a");
  auto snapshot = store_->SnapshotDeadLetters("acme").value();
  auto code = [&](int64_t max_seq, const std::string& visible) {
    DeadLetterScan scan;
    scan.tenant = "acme";
    scan.snapshot = DeadLetterSnapshot{max_seq, visible};
    return store_->CountDeadLetters(scan).status().code();
  };
  EXPECT_EQ(code(snapshot.max_seq, snapshot.visible), ErrorCode::kOk);
  EXPECT_EQ(code(0, ""), ErrorCode::kOk) << "no snapshot: no bound";
  EXPECT_EQ(code(snapshot.max_seq, ""), ErrorCode::kInvalidArgument) << "SQLite's shape";
  for (const char* bad : {"x", "5", "5:6", "0:6:", "6:5:", "5:9:4", "5:9:9", "5:9:7,6", "5:9:6,",
                          "-5:9:", "5:9:6;7", "5:99999999999999999999999:"}) {
    EXPECT_EQ(code(snapshot.max_seq, bad), ErrorCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"5:9:", "5:9:5", "5:9:6,7,8", "5:5:"}) {
    EXPECT_EQ(code(snapshot.max_seq, good), ErrorCode::kOk) << good;
  }
}

}  // namespace
}  // namespace redrive::store::postgres
