#include "store/sqlite/sqlite_db.h"

namespace redrive::store::sqlite {

int Stmt::Step() {
  last_rc_ = sqlite3_step(stmt_);
  return last_rc_;
}

Status Stmt::Error() const {
  if (last_rc_ == SQLITE_ROW || last_rc_ == SQLITE_DONE || last_rc_ == SQLITE_OK) {
    return Status::Ok();
  }
  return db_->ErrorStatus(last_rc_);
}

Status Stmt::Run() {
  int rc;
  while ((rc = Step()) == SQLITE_ROW) {
  }
  return Error();
}

int Stmt::Changes() { return sqlite3_changes(db_->raw()); }

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  for (auto& [sql, stmt] : text_cache_) sqlite3_finalize(stmt);
  if (db_) sqlite3_close_v2(db_);
}

Status Db::Open(const std::string& path, bool read_only) {
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return Status(ErrorCode::kStoreFailed, "cannot open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 10'000);
  sqlite3_extended_result_codes(db_, 1);
  return Status::Ok();
}

Status Db::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status(ErrorCode::kInternal, "sqlite: " + msg);
  }
  return Status::Ok();
}

// A statement that does not prepare was a programming error in the store, and aborted the
// process; it is an error of the call that needs it, which the caller reports (a write job's
// savepoint rolls back), and the server goes on.
Status Db::PrepareError(int rc, std::string_view sql) const {
  Status st = ErrorStatus(rc);
  return Status(st.code(), st.message() + " (preparing: " + std::string(sql) + ")");
}

Result<Stmt> Db::Prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Stmt(this, it->second);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return PrepareError(rc, sql);
  }
  cache_.emplace(sql, stmt);
  return Stmt(this, stmt);
}

Result<Stmt> Db::PrepareText(const std::string& sql) {
  auto it = text_cache_.find(sql);
  if (it != text_cache_.end()) return Stmt(this, it->second);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return PrepareError(rc, sql);
  }
  text_cache_.emplace(sql, stmt);
  return Stmt(this, stmt);
}

Status Db::ErrorStatus(int rc) const {
  std::string msg = std::string("sqlite: ") + sqlite3_errmsg(db_);
  int primary = rc & 0xff;
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Status(ErrorCode::kAlreadyExists, msg);
  }
  if (primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_CORRUPT ||
      primary == SQLITE_CANTOPEN || primary == SQLITE_NOTADB || primary == SQLITE_READONLY) {
    return Status(ErrorCode::kStoreFailed, msg);
  }
  return Status(ErrorCode::kInternal, msg);
}

}  // namespace redrive::store::sqlite
