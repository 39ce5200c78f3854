#include "store/postgres/pg_test_database.h"

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>

namespace redrive::store::postgres {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "pg_test_database: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string DatabaseName(const std::string& key) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "t_%016zx", std::hash<std::string>{}(key));
  return buf;
}

void Admin(const std::string& sql) {
  PGconn* conn = PQconnectdb(TestClusterUri().c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string err = PQerrorMessage(conn);
    PQfinish(conn);
    Die("the test cluster does not answer (" + err + ")");
  }
  PGresult* res = PQexec(conn, sql.c_str());
  const ExecStatusType st = PQresultStatus(res);
  std::string err = PQresultErrorMessage(res);
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const bool exists = state != nullptr && std::string(state) == "42P04";  // duplicate_database
  PQclear(res);
  PQfinish(conn);
  if (st != PGRES_COMMAND_OK && !exists) Die(sql + ": " + err);
}

}  // namespace

std::string TestClusterUri() {
  const char* dir = std::getenv("REDRIVE_TEST_POSTGRES");
  if (dir == nullptr || *dir == '\0') {
    Die("REDRIVE_TEST_POSTGRES is not set: run this test through ctest (which starts the test "
        "cluster), or start one with `scripts/test-postgres.sh start DIR` and set "
        "REDRIVE_TEST_POSTGRES=DIR");
  }
  std::ifstream in(std::string(dir) + "/port");
  int port = 0;
  if (!(in >> port)) {
    Die(std::string("no test cluster in ") + dir + " (no port file): start it with " +
        "`scripts/test-postgres.sh start " + dir + "`");
  }
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port) + "/postgres";
}

std::string TestDatabase(const std::string& key) {
  const std::string name = DatabaseName(key);
  Admin("CREATE DATABASE " + name);
  std::string uri = TestClusterUri();
  return uri.substr(0, uri.rfind('/') + 1) + name;
}

void DropTestDatabase(const std::string& key) {
  Admin("DROP DATABASE IF EXISTS " + DatabaseName(key) + " WITH (FORCE)");
}

}  // namespace redrive::store::postgres
