// Databases on the test cluster, for tests that run on PostgreSQL. ctest starts one private
// cluster for the whole run (the `postgres` fixture: scripts/test-postgres.sh) and gives every
// test that needs it its directory in REDRIVE_TEST_POSTGRES; each test makes its own database
// there, so tests running side by side never share one.
#pragma once

#include <string>

namespace redrive::store::postgres {

// The libpq URI of the test cluster's database named after `key` (any text: a test's temp
// directory, say), created when missing. Aborts the test process with a message saying what
// to do when REDRIVE_TEST_POSTGRES is unset or the cluster does not answer: a test that needs
// PostgreSQL never passes without it.
std::string TestDatabase(const std::string& key);
// Drops that database (terminating its connections), if it exists.
void DropTestDatabase(const std::string& key);
// The cluster's own URI (database `postgres`), for tests that administer it.
std::string TestClusterUri();

}  // namespace redrive::store::postgres
