#include "store/postgres/pg_conn.h"

#include <cstdlib>
#include <cstring>

namespace redrive::store::postgres {

// ---------------------------------------------------------------- Params

Params& Params::Add(std::string value, int format, bool null) {
  values_.push_back(std::move(value));
  formats_.push_back(format);
  nulls_.push_back(null);
  return *this;
}

const char* const* Params::values() const {
  ptrs_.resize(values_.size());
  for (size_t i = 0; i < values_.size(); ++i) ptrs_[i] = nulls_[i] ? nullptr : values_[i].data();
  return ptrs_.data();
}

const int* Params::lengths() const {
  lengths_.resize(values_.size());
  for (size_t i = 0; i < values_.size(); ++i) lengths_[i] = static_cast<int>(values_[i].size());
  return lengths_.data();
}

Params& Params::Int(int64_t v) { return Add(std::to_string(v), 0); }
Params& Params::Text(std::string_view v) { return Add(std::string(v), 0); }
Params& Params::Bool(bool v) { return Add(v ? "t" : "f", 0); }
Params& Params::Bytes(std::string_view v) { return Add(std::string(v), 1); }
Params& Params::Null() { return Add(std::string(), 0, /*null=*/true); }

Params& Params::IntArray(const std::vector<int64_t>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(v[i]);
  }
  out += '}';
  return Add(std::move(out), 0);
}

namespace {
void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}
}  // namespace

Params& Params::TextArray(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    AppendQuoted(out, v[i]);
  }
  out += '}';
  return Add(std::move(out), 0);
}

Params& Params::BytesArray(const std::vector<std::string_view>& v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += "\"\\\\x";  // "\\x: the backslash escaped inside the array literal
    for (unsigned char c : v[i]) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    out += '"';
  }
  out += '}';
  return Add(std::move(out), 0);
}

// ---------------------------------------------------------------- Rows

int64_t Rows::affected() const {
  const char* n = res_ ? PQcmdTuples(res_.get()) : "";
  return *n ? std::strtoll(n, nullptr, 10) : 0;
}

int64_t Rows::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  return std::strtoll(PQgetvalue(res_.get(), row, col), nullptr, 10);
}

bool Rows::Bool(int row, int col) const {
  if (IsNull(row, col)) return false;
  return PQgetvalue(res_.get(), row, col)[0] == 't';
}

std::string_view Rows::View(int row, int col) const {
  return std::string_view(PQgetvalue(res_.get(), row, col),
                          static_cast<size_t>(PQgetlength(res_.get(), row, col)));
}

std::string Rows::Text(int row, int col) const { return std::string(View(row, col)); }

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}
}  // namespace

std::string Rows::Bytes(int row, int col) const {
  std::string_view hex = View(row, col);
  if (hex.size() < 2 || hex[0] != '\\' || hex[1] != 'x') return std::string(hex);
  hex.remove_prefix(2);
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(HexValue(hex[2 * i]) << 4 | HexValue(hex[2 * i + 1]));
  }
  return out;
}

// ---------------------------------------------------------------- errors

Status PgError(PGconn* conn, PGresult* res, std::string_view what) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = res ? PQresultErrorMessage(res) : "";
  if (message.empty() && conn) message = PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  std::string text = "postgres: " + message;
  if (!what.empty()) text += " (" + std::string(what.substr(0, 200)) + ")";
  const std::string sqlstate = state ? state : "";
  if (sqlstate == "23505") return Status(ErrorCode::kAlreadyExists, text);
  if (sqlstate == "40001" || sqlstate == "40P01") {
    return Status(ErrorCode::kInternal, "retryable " + sqlstate + ": " + text);
  }
  const bool down = (conn && PQstatus(conn) != CONNECTION_OK) || sqlstate.empty() ||
                    sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 ||
                    sqlstate.rfind("53", 0) == 0 || sqlstate == "25006";  // read-only standby
  if (down) return Status(ErrorCode::kStoreFailed, text);
  return Status(ErrorCode::kInternal, text);
}

bool IsRetryable(const Status& status) {
  return status.code() == ErrorCode::kInternal && status.message().rfind("retryable ", 0) == 0;
}

// ---------------------------------------------------------------- PgConn

Result<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string message = conn ? PQerrorMessage(conn) : "out of memory";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    if (conn) PQfinish(conn);
    return Status(ErrorCode::kStoreFailed, "cannot connect to PostgreSQL: " + message);
  }
  std::unique_ptr<PgConn> out(new PgConn(conn));
  // Quiet NOTICEs (CREATE ... IF NOT EXISTS says "already exists, skipping" on stderr).
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return out;
}

PgConn::~PgConn() {
  if (conn_) PQfinish(conn_);
}

bool PgConn::healthy() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }

Result<Rows> PgConn::Run(const std::string& name, const std::string& sql, bool cached,
                         const Params& params) {
  if (!cached) {
    PGresult* prep = PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr);
    ExecStatusType st = prep ? PQresultStatus(prep) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK) {
      Status err = PgError(conn_, prep, sql);
      if (prep) PQclear(prep);
      if (err.code() == ErrorCode::kStoreFailed) broken_ = true;
      return err;
    }
    PQclear(prep);
  }
  PGresult* res = PQexecPrepared(conn_, name.c_str(), params.size(), params.values(),
                                 params.lengths(), params.formats(), 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    Status err = PgError(conn_, res, sql);
    if (res) PQclear(res);
    if (err.code() == ErrorCode::kStoreFailed) broken_ = true;
    return err;
  }
  return Rows(res);
}

Result<Rows> PgConn::Exec(const char* sql, const Params& params) {
  auto it = by_address_.find(sql);
  if (it != by_address_.end()) return Run(it->second, sql, true, params);
  std::string name = "s" + std::to_string(next_name_++);
  auto out = Run(name, sql, false, params);
  // Cached only once prepared: a statement that failed to prepare is prepared again next time.
  if (out.ok() || out.status().code() != ErrorCode::kInternal) by_address_.emplace(sql, name);
  return out;
}

Result<Rows> PgConn::ExecText(const std::string& sql, const Params& params) {
  auto it = by_text_.find(sql);
  if (it != by_text_.end()) return Run(it->second, sql, true, params);
  std::string name = "s" + std::to_string(next_name_++);
  auto out = Run(name, sql, false, params);
  if (out.ok() || out.status().code() != ErrorCode::kInternal) by_text_.emplace(sql, name);
  return out;
}

Status PgConn::Script(const char* sql) {
  PGresult* res = PQexec(conn_, sql);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    Status err = PgError(conn_, res, sql);
    if (res) PQclear(res);
    if (err.code() == ErrorCode::kStoreFailed) broken_ = true;
    return err;
  }
  PQclear(res);
  return Status::Ok();
}

// ---------------------------------------------------------------- PgPool

PgPool::PgPool(std::string conninfo, int size) : conninfo_(std::move(conninfo)), size_(size) {}

PgPool::~PgPool() = default;

Result<std::unique_ptr<PgConn>> PgPool::Acquire() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
    ++open_;
  }
  auto conn = PgConn::Connect(conninfo_);
  if (!conn.ok()) {
    std::lock_guard lock(mu_);
    --open_;
    cv_.notify_one();
  }
  return conn;
}

void PgPool::Release(std::unique_ptr<PgConn> conn) {
  std::lock_guard lock(mu_);
  if (conn->healthy()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;  // dropped: the next Acquire connects again
  }
  cv_.notify_one();
}

Status PgPool::Run(const std::function<Status(PgConn&)>& fn) {
  REDRIVE_ASSIGN_OR_RETURN(auto conn, Acquire());
  Status st = fn(*conn);
  Release(std::move(conn));
  return st;
}

Status PgPool::RunRetrying(const std::function<Status(PgConn&)>& fn) {
  Status st;
  for (int attempt = 0; attempt < 8; ++attempt) {
    st = Run(fn);
    if (!IsRetryable(st)) break;
  }
  return st;
}

Status PgPool::Tx(const std::function<Status(PgConn&)>& fn) {
  REDRIVE_ASSIGN_OR_RETURN(auto conn, Acquire());
  Status st;
  for (int attempt = 0; attempt < 8; ++attempt) {
    st = conn->Script("BEGIN");
    if (st.ok()) st = fn(*conn);
    if (st.ok()) st = conn->Script("COMMIT");
    if (st.ok()) break;
    if (conn->healthy()) (void)conn->Script("ROLLBACK");
    if (!IsRetryable(st) || !conn->healthy()) break;
  }
  Release(std::move(conn));
  return st;
}

}  // namespace redrive::store::postgres
