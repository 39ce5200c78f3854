// A thin layer over libpq: parameters, results, one connection with a cache of prepared
// statements, and a pool of connections that runs transactions.
//
// Everything is sent with the extended protocol (PQexecPrepared), parameters in text format
// except bytes (binary: no escaping of bodies); results come back in text format, bytea as hex,
// which Rows::Bytes decodes.
//
// Errors, the same everywhere: kAlreadyExists for a uniqueness violation (SQLSTATE 23505);
// kStoreFailed when the connection is lost or the server refuses work (class 08, 57P0x, 53xxx:
// the database is down, restarting or failing over; the pool drops the connection and opens a
// new one on next use); kInternal for anything else (a bug in the SQL), with the server's message.
//
// Thread-safety: PgConn, Rows and Params are thread-compatible; PgPool is thread-safe.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace redrive::store::postgres {

// Positional parameters $1, $2, ... in the order they are added.
class Params {
 public:
  Params& Int(int64_t v);
  Params& Text(std::string_view v);
  Params& Bool(bool v);
  // bytea, sent in binary format.
  Params& Bytes(std::string_view v);
  // Arrays, for `= ANY($n::bigint[])` and `unnest(...)`: a text-format array literal.
  Params& IntArray(const std::vector<int64_t>& v);
  Params& TextArray(const std::vector<std::string>& v);
  // A bytea[] of the given byte strings (each written as \x hex inside the literal).
  Params& BytesArray(const std::vector<std::string_view>& v);
  Params& Null();

  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into this object's strings, made at the call: a Params may be copied or moved
  // (returned by value) after its values were added, and the pointers must be its own.
  const char* const* values() const;
  const int* lengths() const;
  const int* formats() const { return formats_.data(); }

 private:
  Params& Add(std::string value, int format, bool null = false);

  std::vector<std::string> values_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
  mutable std::vector<const char*> ptrs_;
  mutable std::vector<int> lengths_;
};

// The rows of one statement (owning the PGresult).
class Rows {
 public:
  Rows() = default;
  explicit Rows(PGresult* res) : res_(res, &PQclear) {}

  int size() const { return res_ ? PQntuples(res_.get()) : 0; }
  bool empty() const { return size() == 0; }
  // Rows an INSERT, UPDATE or DELETE touched.
  int64_t affected() const;
  bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  // NULL reads as 0, "" and false.
  int64_t Int(int row, int col) const;
  bool Bool(int row, int col) const;
  std::string Text(int row, int col) const;
  std::string_view View(int row, int col) const;
  // A bytea column (hex text format) as its bytes.
  std::string Bytes(int row, int col) const;

 private:
  std::shared_ptr<PGresult> res_;
};

// Classifies a failed result or connection into the Status described above.
Status PgError(PGconn* conn, PGresult* res, std::string_view what);
// True for the errors a transaction is retried on: serialization failure, deadlock.
bool IsRetryable(const Status& status);

class PgConn {
 public:
  // Errors: kStoreFailed when the server cannot be reached or refuses the connection.
  static Result<std::unique_ptr<PgConn>> Connect(const std::string& conninfo);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // `sql` must outlive the connection (use string literals): prepared once per connection and
  // cached by its address.
  Result<Rows> Exec(const char* sql, const Params& params = Params());
  // For SQL built at run time from a small set of shapes: cached by its text.
  Result<Rows> ExecText(const std::string& sql, const Params& params = Params());
  // Several statements, no parameters, no results (simple protocol): schema, BEGIN, COMMIT.
  Status Script(const char* sql);
  // False once the connection is lost: the pool throws it away.
  bool healthy() const;
  PGconn* raw() { return conn_; }

 private:
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  Result<Rows> Run(const std::string& name, const std::string& sql, bool cached,
                   const Params& params);

  PGconn* conn_;
  bool broken_ = false;
  std::unordered_map<const char*, std::string> by_address_;  // sql -> statement name
  std::unordered_map<std::string, std::string> by_text_;
  int next_name_ = 0;
};

// A fixed-size pool. Run() lends a connection; Tx() runs a function in a transaction on one,
// retrying it on serialization failures and deadlocks.
class PgPool {
 public:
  PgPool(std::string conninfo, int size);
  ~PgPool();

  // Runs `fn` on a connection in autocommit mode.
  Status Run(const std::function<Status(PgConn&)>& fn);
  // Run, again when PostgreSQL picked it as a deadlock's victim: for a single statement that
  // takes several row locks in an order it does not choose (a batch of messages or dead
  // letters, the usage triggers' rows). A victim changed nothing, so it simply runs again.
  Status RunRetrying(const std::function<Status(PgConn&)>& fn);
  // Runs `fn` between BEGIN and COMMIT; rolls back if it fails. Retried (whole) on a
  // serialization failure or deadlock, a few times. `fn` may run more than once: it must only
  // write through the connection (and reset what it collects at its start).
  Status Tx(const std::function<Status(PgConn&)>& fn);
  const std::string& conninfo() const { return conninfo_; }

 private:
  Result<std::unique_ptr<PgConn>> Acquire();
  void Release(std::unique_ptr<PgConn> conn);

  const std::string conninfo_;
  const int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> idle_;  // GUARDED_BY(mu_)
  int open_ = 0;                               // GUARDED_BY(mu_): idle + lent
};

}  // namespace redrive::store::postgres
