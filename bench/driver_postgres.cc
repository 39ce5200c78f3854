// The postgres-queue driver: PostgreSQL used as a queue the way teams build one themselves, over
// libpq. One table per queue and one for its dead letters:
//
//   "<queue>"       id bigserial primary key, body, n, sent_us, deliveries, visible_at,
//                   enqueued_at
//   "<queue>_dead"  the same columns plus dead_lettered_at
//
//   publish  one INSERT ... SELECT FROM unnest($bodies, $ns, $times) per batch: one statement,
//            so one transaction, whose COMMIT waits for the WAL flush (synchronous_commit=on)
//   receive  UPDATE ... SET deliveries = deliveries + 1, visible_at = now() + 30 s
//            WHERE id IN (SELECT id ... WHERE visible_at <= now() ORDER BY id LIMIT $1
//                         FOR UPDATE SKIP LOCKED) RETURNING ...
//   ack      DELETE ... WHERE id = ANY($1)
//   nack     one statement: rows on their max_deliveries-th delivery are moved to the dead-letter
//            table (DELETE ... RETURNING feeding an INSERT), the others become visible at once
//
// Every statement is prepared once per connection. An empty receive polls again after 1 ms,
// doubling up to 10 ms, until its wait is over. LISTEN/NOTIFY is not used: a transaction that
// NOTIFYs takes a database-wide lock at commit and holds it through its WAL flush, so it would
// serialize every publisher's commit (no group commit) and measure that instead of the queue.
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "driver.h"

namespace bench {
namespace {

// A visibility timeout long enough that no lease of a healthy run expires.
constexpr const char* kLease = "30 s";

std::string ConnError(PGconn* conn) {
  std::string e = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

// Owns a PGresult.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  ~Result() { PQclear(r_); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  PGresult* get() const { return r_; }
  bool Ok() const {
    ExecStatusType s = PQresultStatus(r_);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
  int64_t Int(int row, int col) const {
    return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
  }
  std::string Text(int row, int col) const { return PQgetvalue(r_, row, col); }

 private:
  PGresult* r_;
};

// Owns a connection; `what` names the call for error messages.
class Connection {
 public:
  bool Open(const std::string& conninfo, std::string* error) {
    conn_ = PQconnectdb(conninfo.c_str());
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      *error = "connect to PostgreSQL: " + ConnError(conn_);
      return false;
    }
    return true;
  }
  ~Connection() { PQfinish(conn_); }
  PGconn* get() const { return conn_; }

  // Runs `sql` (one or more statements, no parameters); false with *error set on failure.
  bool Exec(const std::string& sql, std::string* error) {
    Result r(PQexec(conn_, sql.c_str()));
    if (!r.Ok()) {
      *error = ConnError(conn_) + " (in: " + sql.substr(0, 200) + ")";
      return false;
    }
    return true;
  }

 private:
  PGconn* conn_ = nullptr;
};

std::string Quote(PGconn* conn, const std::string& name) {
  char* q = PQescapeIdentifier(conn, name.c_str(), name.size());
  std::string s = q != nullptr ? q : "\"bench\"";
  PQfreemem(q);
  return s;
}

// What every session needs to know about the queue.
struct Tables {
  std::string queue;  // quoted identifiers
  std::string dead;
  int max_deliveries = 0;
};

class PostgresSession : public Session {
 public:
  PostgresSession(const DriverOptions& o, const Tables& t)
      : conninfo_(o.pg_conninfo), t_(t), filler_(static_cast<size_t>(o.body_size), 'x') {}

  bool Open() {
    if (!conn_.Open(conninfo_, &error_)) return false;
    const std::string& q = t_.queue;
    const std::string& d = t_.dead;
    return Prepare("publish",
                   "INSERT INTO " + q +
                       " (body, n, sent_us) SELECT * FROM unnest($1::text[], $2::bigint[], "
                       "$3::bigint[])",
                   3) &&
           Prepare("receive",
                   "UPDATE " + q +
                       " SET deliveries = deliveries + 1, visible_at = now() + interval '" +
                       kLease + "' WHERE id IN (SELECT id FROM " + q +
                       " WHERE visible_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP "
                       "LOCKED) RETURNING id, body, n, sent_us, deliveries",
                   1) &&
           Prepare("ack", "DELETE FROM " + q + " WHERE id = ANY($1::bigint[])", 1) &&
           Prepare("nack",
                   "WITH dead AS (DELETE FROM " + q +
                       " WHERE id = ANY($1::bigint[]) AND $2::int > 0 AND deliveries >= $2::int"
                       " RETURNING id, body, n, sent_us, deliveries, enqueued_at),"
                       " moved AS (INSERT INTO " +
                       d +
                       " (id, body, n, sent_us, deliveries, enqueued_at)"
                       " SELECT id, body, n, sent_us, deliveries, enqueued_at FROM dead"
                       " RETURNING 1),"
                       " retried AS (UPDATE " +
                       q +
                       " SET visible_at = now() WHERE id = ANY($1::bigint[])"
                       " AND NOT ($2::int > 0 AND deliveries >= $2::int) RETURNING 1)"
                       " SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM retried)",
                   2);
  }

  bool Publish(const std::vector<Outgoing>& batch) override {
    // Array literals in text form: {"xx..","xx.."}, {1,2}, {t,t}. The bodies are filler 'x's,
    // so they need no escaping.
    bodies_ = "{";
    ns_ = "{";
    times_ = "{";
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i) {
        bodies_ += ',';
        ns_ += ',';
        times_ += ',';
      }
      bodies_ += '"';
      bodies_ += filler_;
      bodies_ += '"';
      ns_ += std::to_string(batch[i].n);
      times_ += std::to_string(batch[i].sent_us);
    }
    bodies_ += '}';
    ns_ += '}';
    times_ += '}';
    const char* values[] = {bodies_.c_str(), ns_.c_str(), times_.c_str()};
    Result r(PQexecPrepared(conn_.get(), "publish", 3, values, nullptr, nullptr, 0));
    if (!r.Ok()) return Fail("publish");
    if (std::atoll(PQcmdTuples(r.get())) != static_cast<long long>(batch.size())) {
      error_ = "publish: inserted " + std::string(PQcmdTuples(r.get())) + " rows of " +
               std::to_string(batch.size());
      return false;
    }
    return true;
  }

  bool Receive(int max, int wait_ms, std::vector<Delivery>* out) override {
    out->clear();
    const std::string limit = std::to_string(max);
    const char* values[] = {limit.c_str()};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
      Result r(PQexecPrepared(conn_.get(), "receive", 1, values, nullptr, nullptr, 0));
      if (!r.Ok()) return Fail("receive");
      int rows = PQntuples(r.get());
      for (int i = 0; i < rows; ++i) {
        Delivery d;
        d.tag = static_cast<uint64_t>(r.Int(i, 0));
        // Column 1 is the body: fetched, as a consumer would, and not looked at.
        d.n = r.Int(i, 2);
        d.sent_us = r.Int(i, 3);
        d.delivery_count = r.Int(i, 4);
        out->push_back(std::move(d));
      }
      auto now = std::chrono::steady_clock::now();
      if (rows > 0 || now >= deadline) return true;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
      pause = std::min(pause * 2, std::chrono::milliseconds(10));
    }
  }

  bool Ack(const std::vector<Delivery>& deliveries, int64_t* settled) override {
    Ids(deliveries);
    const char* values[] = {ids_.c_str()};
    Result r(PQexecPrepared(conn_.get(), "ack", 1, values, nullptr, nullptr, 0));
    if (!r.Ok()) return Fail("ack");
    *settled = std::atoll(PQcmdTuples(r.get()));
    return true;
  }

  bool Nack(const std::vector<Delivery>& deliveries, int64_t* settled) override {
    Ids(deliveries);
    const std::string max = std::to_string(t_.max_deliveries);
    const char* values[] = {ids_.c_str(), max.c_str()};
    Result r(PQexecPrepared(conn_.get(), "nack", 2, values, nullptr, nullptr, 0));
    if (!r.Ok()) return Fail("nack");
    *settled = r.Int(0, 0);
    return true;
  }

 private:
  bool Prepare(const char* name, const std::string& sql, int params) {
    Result r(PQprepare(conn_.get(), name, sql.c_str(), params, nullptr));
    if (!r.Ok()) return Fail(std::string("prepare ") + name);
    return true;
  }

  bool Fail(const std::string& what) {
    error_ = what + ": " + ConnError(conn_.get());
    return false;
  }

  void Ids(const std::vector<Delivery>& deliveries) {
    ids_ = "{";
    for (size_t i = 0; i < deliveries.size(); ++i) {
      if (i) ids_ += ',';
      ids_ += std::to_string(deliveries[i].tag);
    }
    ids_ += '}';
  }

  const std::string conninfo_;
  const Tables t_;
  const std::string filler_;
  Connection conn_;
  std::string bodies_, ns_, times_, ids_;
};

class PostgresDriver : public Driver {
 public:
  explicit PostgresDriver(const DriverOptions& o) : o_(o) {}

  bool Prepare(const QueueSpec& spec) override {
    if (!control_.Open(o_.pg_conninfo, &error_)) return false;
    // The comparison is only fair if a COMMIT means "on disk": refuse a server that says
    // otherwise rather than report its figures.
    for (const char* setting : {"fsync", "synchronous_commit", "full_page_writes"}) {
      std::string value;
      if (!Show(setting, &value)) return false;
      if (value != "on") {
        error_ = std::string("PostgreSQL has ") + setting + "=" + value +
                 "; the benchmark needs it on (durable commits, as for the other systems)";
        return false;
      }
    }
    int v = PQserverVersion(control_.get());
    version_ = std::to_string(v / 10000) + "." + std::to_string(v % 10000);

    tables_.queue = Quote(control_.get(), spec.name);
    tables_.dead = Quote(control_.get(), spec.name + "_dead");
    tables_.max_deliveries = spec.max_deliveries;
    std::string sql = "SET client_min_messages = warning;";  // no "does not exist" notices
    if (spec.fresh) sql += "DROP TABLE IF EXISTS " + tables_.queue + ", " + tables_.dead + ";";
    // STORAGE EXTERNAL: large bodies go out of line uncompressed, as the other systems store
    // them (the filler would otherwise compress to nothing above ~2 kB).
    sql += "CREATE TABLE IF NOT EXISTS " + tables_.queue +
           " (id bigserial PRIMARY KEY, body text NOT NULL, n bigint NOT NULL,"
           " sent_us bigint NOT NULL, deliveries int NOT NULL DEFAULT 0,"
           " visible_at timestamptz NOT NULL DEFAULT now(),"
           " enqueued_at timestamptz NOT NULL DEFAULT now());"
           "ALTER TABLE " +
           tables_.queue +
           " ALTER COLUMN body SET STORAGE EXTERNAL;"
           "CREATE TABLE IF NOT EXISTS " +
           tables_.dead +
           " (id bigint PRIMARY KEY, body text NOT NULL, n bigint NOT NULL,"
           " sent_us bigint NOT NULL, deliveries int NOT NULL, enqueued_at timestamptz NOT NULL,"
           " dead_lettered_at timestamptz NOT NULL DEFAULT now());"
           "ALTER TABLE " +
           tables_.dead + " ALTER COLUMN body SET STORAGE EXTERNAL;";
    return control_.Exec(sql, &error_);
  }

  std::unique_ptr<Session> Connect() override {
    auto s = std::make_unique<PostgresSession>(o_, tables_);
    if (!s->Open()) {
      error_ = s->error();
      return nullptr;
    }
    return s;
  }

  bool GetDepth(Depth* depth) override {
    std::string sql =
        "SELECT count(*) FILTER (WHERE visible_at <= now()),"
        " count(*) FILTER (WHERE visible_at > now()),"
        " (SELECT count(*) FROM " +
        tables_.dead + ") FROM " + tables_.queue;
    Result r(PQexec(control_.get(), sql.c_str()));
    if (!r.Ok() || PQntuples(r.get()) != 1) {
      error_ = "depth: " + ConnError(control_.get());
      return false;
    }
    depth->ready = r.Int(0, 0);
    depth->in_flight = r.Int(0, 1);
    depth->dead_lettered = r.Int(0, 2);
    return true;
  }

  std::string Describe() const override {
    std::string s = "PostgreSQL " + version_ +
                    ": table + FOR UPDATE SKIP LOCKED (id order), one INSERT per batch, "
                    "DELETE per ack batch, synchronous_commit=on, fsync=on, "
                    "full_page_writes=on; empty receives poll every 1-10 ms (no LISTEN/NOTIFY)";
    if (tables_.max_deliveries > 0) {
      s += "; dead-letter table after " + std::to_string(tables_.max_deliveries) + " deliveries";
    }
    return s;
  }

 private:
  bool Show(const char* setting, std::string* value) {
    Result r(PQexec(control_.get(), (std::string("SHOW ") + setting).c_str()));
    if (!r.Ok() || PQntuples(r.get()) != 1) {
      error_ = std::string("SHOW ") + setting + ": " + ConnError(control_.get());
      return false;
    }
    *value = r.Text(0, 0);
    return true;
  }

  const DriverOptions o_;
  Connection control_;  // Prepare and GetDepth only (the loadgen's main thread)
  Tables tables_;
  std::string version_;
};

}  // namespace

std::unique_ptr<Driver> MakePostgresDriver(const DriverOptions& options) {
  return std::make_unique<PostgresDriver>(options);
}

}  // namespace bench
