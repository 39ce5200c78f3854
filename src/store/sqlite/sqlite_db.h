// A thin RAII layer over the SQLite C API: a connection with a cache of prepared statements.
// Thread-compatible: one thread uses a Db at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/status.h"

namespace redrive::store::sqlite {

class Db;

// A prepared statement borrowed from a Db's cache; reset and unbound when it goes out of scope.
// Movable (so that Prepare can return it in a Result), not copyable.
class Stmt {
 public:
  Stmt(Db* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), last_rc_(other.last_rc_) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (stmt_ == nullptr) return;  // moved from
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // Text and blobs are bound without a copy (SQLITE_STATIC): they must outlive the run. A
  // temporary std::string would not, so binding one does not compile.
  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& Bind(int i, std::string&& v) = delete;
  Stmt& BindBlob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& BindBlob(int i, std::string&& v) = delete;
  // SQLITE_ROW: a row is ready; SQLITE_DONE: finished; any other value is an error, already
  // turned into the Status returned by Error().
  int Step();
  // Steps until done. Errors: kInternal with SQLite's message, kAlreadyExists for a
  // uniqueness violation.
  Status Run();
  Status Error() const;

  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const auto* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }
  int Changes();

 private:
  Db* db_;
  sqlite3_stmt* stmt_;
  int last_rc_ = SQLITE_OK;
};

class Db {
 public:
  Db() = default;
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Errors: kStoreFailed.
  Status Open(const std::string& path, bool read_only);
  // Runs one or more statements without results.
  Status Exec(const char* sql);
  // `sql` must outlive the Db (use string literals): the cache is keyed by its address.
  // Errors: as ErrorStatus (kInternal for SQL that does not prepare: a syntax error, a missing
  // table; kStoreFailed for an unreadable database), with SQLite's message and the SQL. A
  // statement that failed is not cached: the next call prepares it again.
  Result<Stmt> Prepare(const char* sql);
  // For SQL built at run time from a small set of shapes: cached by its text. Errors: as
  // Prepare.
  Result<Stmt> PrepareText(const std::string& sql);
  sqlite3* raw() { return db_; }
  Status ErrorStatus(int rc) const;

 private:
  Status PrepareError(int rc, std::string_view sql) const;

  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
  std::unordered_map<std::string, sqlite3_stmt*> text_cache_;
};

}  // namespace redrive::store::sqlite
