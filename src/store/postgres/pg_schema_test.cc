// The PostgreSQL schema's versioning: nodes starting together on an empty database all come
// up (one applies the schema under the advisory lock, the others wait and find it done), and a
// node refuses a database whose schema is newer than it knows, saying so.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "store/postgres/pg_store.h"
#include "store/postgres/pg_test_database.h"

namespace redrive::store::postgres {
namespace {

class PgSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = "schema-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    uri_ = TestDatabase(key_);
  }
  void TearDown() override { DropTestDatabase(key_); }
  std::string key_, uri_;
};

TEST_F(PgSchemaTest, NodesStartingTogetherOnAnEmptyDatabaseAllComeUp) {
  std::atomic<int> opened{0};
  std::vector<std::thread> nodes;
  for (int i = 0; i < 4; ++i) {
    nodes.emplace_back([&] {
      auto store = PgStore::Open(uri_, 1);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      TenantRecord t;
      t.name = "t" + std::to_string(opened++);
      EXPECT_TRUE((*store)->CreateTenant(t).ok());
    });
  }
  for (auto& t : nodes) t.join();
  EXPECT_EQ(opened.load(), 4);
  auto store = PgStore::Open(uri_, 1);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->ListTenants().value().size(), 4u);
}

TEST_F(PgSchemaTest, ANewerSchemaIsRefusedWithAClearMessage) {
  { ASSERT_TRUE(PgStore::Open(uri_, 1).ok()); }
  PGconn* conn = PQconnectdb(uri_.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
  PQclear(PQexec(conn, "UPDATE redrive_schema SET version = 99"));
  PQfinish(conn);
  auto store = PgStore::Open(uri_, 1);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kStoreFailed);
  EXPECT_NE(store.status().message().find("database schema version 99 is newer than this "
                                          "redrive understands (" +
                                          std::to_string(kPgSchemaVersion) + ")"),
            std::string::npos)
      << store.status().message();
}

TEST_F(PgSchemaTest, AnUnreachableDatabaseIsStoreFailed) {
  auto store = PgStore::Open("postgresql://postgres@127.0.0.1:1/none", 1);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kStoreFailed);
  EXPECT_NE(store.status().message().find("cannot connect to PostgreSQL"), std::string::npos)
      << store.status().message();
}

}  // namespace
}  // namespace redrive::store::postgres
