// The SQLite store across versions and interruptions: a database written by the previous
// version opens, keeps its data, and gains what the new version keeps (v2 -> v3: token expiry
// and rotation, tenant quotas and deletion, usage counters filled from what is stored); work
// cut short between transactions (a tenant deletion, a queue deletion) is finished or
// harmless.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "store/store.h"

namespace redrive::store {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;

// The v2 shape of the tables v3 changes or counts (from schema version 2, as shipped).
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE tenants(name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE tokens(id TEXT PRIMARY KEY, tenant TEXT NOT NULL, label TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL, created_at INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE queues(id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL,
  kind INTEGER NOT NULL, config TEXT NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, UNIQUE(tenant, name));
CREATE TABLE messages(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, queue_id INTEGER NOT NULL,
  state INTEGER NOT NULL, visible_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  retain_until INTEGER NOT NULL, delivery_count INTEGER NOT NULL, lease_token TEXT NOT NULL,
  consumer TEXT NOT NULL, first_delivered_at INTEGER NOT NULL,
  last_delivered_at INTEGER NOT NULL, published_at INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL, idem_key TEXT NOT NULL, attributes TEXT NOT NULL,
  journal TEXT NOT NULL, body BLOB NOT NULL, lineage TEXT NOT NULL DEFAULT '');
CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL,
  dlq TEXT NOT NULL, origin TEXT NOT NULL, reason TEXT NOT NULL, cause TEXT NOT NULL,
  body BLOB NOT NULL, attributes TEXT NOT NULL, idem_key TEXT NOT NULL,
  published_at INTEGER NOT NULL, dead_lettered_at INTEGER NOT NULL,
  retain_until INTEGER NOT NULL, delivery_count INTEGER NOT NULL,
  first_delivered_at INTEGER NOT NULL, last_delivered_at INTEGER NOT NULL,
  journal TEXT NOT NULL, group_id TEXT NOT NULL DEFAULT '',
  signature TEXT NOT NULL DEFAULT '', redrive_error TEXT NOT NULL DEFAULT '',
  lineage TEXT NOT NULL DEFAULT '');
INSERT INTO tenants VALUES('acme', 1700000000000), ('beta', 1700000000000);
INSERT INTO tokens VALUES('tok_1', 'acme', 'ci', 'hash1', 'publish', 1700000000000, 0);
INSERT INTO queues VALUES(1, 'acme', 'orders', 0, '{}', 1700000000000, 1700000000000),
                         (2, 'acme', 'dead-letters', 1, '{}', 1700000000000, 1700000000000);
INSERT INTO messages(id, queue_id, state, visible_at, expires_at, retain_until, delivery_count,
  lease_token, consumer, first_delivered_at, last_delivered_at, published_at, enqueued_at,
  idem_key, attributes, journal, body)
  VALUES('m1', 1, 0, 0, 0, 0, 0, '', '', 0, 0, 0, 0, '', '{}', '{}', X'010203'),
        ('m2', 1, 0, 0, 0, 0, 0, '', '', 0, 0, 0, 0, '', '{}', '{}', X'0102030405');
INSERT INTO dead_letters(tenant, id, dlq, origin, reason, cause, body, attributes, idem_key,
  published_at, dead_lettered_at, retain_until, delivery_count, first_delivered_at,
  last_delivered_at, journal)
  VALUES('acme', 'd1', 'dead-letters', 'orders', 'rejected', 'x', X'01020304', '{}', '', 0, 0,
         0, 1, 0, 0, '{}');
PRAGMA user_version = 2;
)sql";

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/migration-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/store.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Exec(const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }
  int64_t Version() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
  }

  std::string dir_, path_;
};

TEST_F(MigrationTest, VersionTwoOpensWithItsDataAndCountedUsage) {
  Exec(kSchemaV2);
  {
    auto opened = OpenStore("sqlite:" + path_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    auto store = std::move(opened).value();
    // Usage is counted from what was stored: 2 messages (3 + 5 bytes) and 1 dead letter (4).
    auto usage = store->GetTenantUsage("acme").value();
    EXPECT_EQ(usage.queues, 1);
    EXPECT_EQ(usage.messages, 3);
    EXPECT_EQ(usage.bytes, 12);
    EXPECT_EQ(store->GetTenantUsage("beta").value().messages, 0);
    // A dead letter from before v6 was stored as it was: not redacted.
    auto d1 = store->GetDeadLetter("acme", "d1").value();
    ASSERT_TRUE(d1.has_value());
    EXPECT_FALSE(d1->redacted);
    // Tokens keep working, with no expiry; tenants have no overrides and are not deleting.
    auto token = store->FindTokenByHash("hash1").value();
    ASSERT_TRUE(token.has_value());
    EXPECT_EQ(token->expires_at, 0);
    EXPECT_EQ(token->revoked_at, 0);
    auto tenant = store->GetTenant("acme").value();
    ASSERT_TRUE(tenant.has_value());
    EXPECT_EQ(tenant->quotas_json, "");
    EXPECT_FALSE(tenant->deleting);
    // From now on the counters follow writes.
    PublishRequest req;
    req.queue_id = 1;
    req.tenant = "acme";
    req.now = kNow;
    MessageRecord m;
    m.id = "m3";
    m.body = "123456";
    req.messages.push_back(m);
    ASSERT_TRUE(store->Publish(req).ok());
    usage = store->GetTenantUsage("acme").value();
    EXPECT_EQ(usage.messages, 4);
    EXPECT_EQ(usage.bytes, 18);
  }
  EXPECT_EQ(Version(), 6);
  // Opening again does not count twice.
  auto again = OpenStore("sqlite:" + path_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value()->GetTenantUsage("acme").value().messages, 4);
}

TEST_F(MigrationTest, ANewerSchemaIsRefused) {
  Exec("CREATE TABLE t(x); PRAGMA user_version = 7;");
  auto opened = OpenStore("sqlite:" + path_);
  EXPECT_EQ(opened.status().code(), ErrorCode::kStoreFailed);
}

}  // namespace
}  // namespace redrive::store

namespace redrive::store {
namespace {

// A tenant deletion cut short (here: its first step, by hand) is finished by the next call,
// even without force, and a queue created meanwhile never inherits a deleted queue's messages.
TEST_F(MigrationTest, ATenantDeletionCutShortIsFinishedByTheNextCall) {
  {
    auto store = OpenStore("sqlite:" + path_).value();
    ASSERT_TRUE(store->CreateTenant({"acme", kNow}).ok());
    auto q = store->CreateQueue({0, "acme", "orders", QueueKind::kStandard, "{}", kNow, kNow});
    ASSERT_TRUE(q.ok());
    PublishRequest req;
    req.queue_id = q.value();
    req.tenant = "acme";
    req.now = kNow;
    MessageRecord m;
    m.id = "m1";
    m.body = "x";
    req.messages.push_back(m);
    ASSERT_TRUE(store->Publish(req).ok());
  }
  Exec("UPDATE tenants SET deleting = 1 WHERE name = 'acme'");
  auto store = OpenStore("sqlite:" + path_).value();
  auto t = store->GetTenant("acme").value();
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->deleting);
  EXPECT_EQ(store->DeleteTenant("acme", /*only_if_empty=*/true).value(),
            DeleteTenantOutcome::kDeleted);
  EXPECT_FALSE(store->GetTenant("acme").value().has_value());
  EXPECT_TRUE(store->ListQueues("acme").value().empty());
  EXPECT_EQ(store->GetTenantUsage("acme").value().messages, 0);
}

TEST_F(MigrationTest, ANewQueueNeverTakesTheIdOfMessagesStillBeingDeleted) {
  auto store = OpenStore("sqlite:" + path_).value();
  ASSERT_TRUE(store->CreateTenant({"acme", kNow}).ok());
  int64_t id = store->CreateQueue({0, "acme", "a", QueueKind::kStandard, "{}", kNow, kNow}).value();
  PublishRequest req;
  req.queue_id = id;
  req.tenant = "acme";
  req.now = kNow;
  MessageRecord m;
  m.id = "m1";
  m.body = "x";
  req.messages.push_back(m);
  ASSERT_TRUE(store->Publish(req).ok());
  store.reset();
  // The queue row is gone and its message not yet, as between DeleteQueue's transactions.
  Exec("DELETE FROM queues WHERE name = 'a'");
  store = OpenStore("sqlite:" + path_).value();
  int64_t next =
      store->CreateQueue({0, "acme", "b", QueueKind::kStandard, "{}", kNow, kNow}).value();
  EXPECT_GT(next, id);
  EXPECT_EQ(store->GetDepth(next, kNow).value().ready, 0);
  EXPECT_EQ(store->GetTenantUsage("acme").value().messages, 0);
}

}  // namespace
}  // namespace redrive::store
