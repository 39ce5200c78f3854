// SqliteStore, the ControlStore port: tenants, tokens, queues, dead letters, audit, jobs.
#include <unordered_map>

#include "store/codec.h"
#include "store/sqlite/sqlite_store.h"

namespace redrive::store::sqlite {
namespace {

#define DEAD_LETTER_COLUMNS                                                                 \
  "seq, tenant, id, dlq, origin, reason, cause, body, attributes, idem_key, published_at, " \
  "dead_lettered_at, retain_until, delivery_count, first_delivered_at, last_delivered_at, " \
  "journal, group_id, signature, redrive_error, lineage, exported_at, ticket, redacted"

DeadLetterRecord ReadDeadLetter(Stmt& s) {
  DeadLetterRecord d;
  d.seq = s.Int(0);
  d.tenant = s.Text(1);
  d.id = s.Text(2);
  d.dlq = s.Text(3);
  d.origin = s.Text(4);
  d.reason = s.Text(5);
  d.cause = s.Text(6);
  d.body = s.Text(7);
  d.attributes = DecodeAttributes(s.Text(8));
  d.idempotency_key = s.Text(9);
  d.published_at = s.Int(10);
  d.dead_lettered_at = s.Int(11);
  d.retain_until = s.Int(12);
  d.delivery_count = static_cast<int32_t>(s.Int(13));
  d.first_delivered_at = s.Int(14);
  d.last_delivered_at = s.Int(15);
  d.journal = DecodeJournal(s.Text(16));
  d.group_id = s.Text(17);
  d.signature = s.Text(18);
  d.redrive_error = s.Text(19);
  d.lineage = DecodeLineage(s.Text(20));
  d.exported_at = s.Int(21);
  d.ticket = s.Text(22);
  d.redacted = s.Int(23) != 0;
  return d;
}

#define QUEUE_COLUMNS "id, tenant, name, kind, config, created_at, updated_at"

QueueRecord ReadQueue(Stmt& s) {
  QueueRecord q;
  q.id = s.Int(0);
  q.tenant = s.Text(1);
  q.name = s.Text(2);
  q.kind = static_cast<QueueKind>(s.Int(3));
  q.config_json = s.Text(4);
  q.created_at = s.Int(5);
  q.updated_at = s.Int(6);
  return q;
}

#define TOKEN_COLUMNS                                                                          \
  "id, tenant, label, secret_hash, scopes, created_at, revoked_at, expires_at, last_used_at, " \
  "replaced_by"

TokenRecord ReadToken(Stmt& s) {
  TokenRecord t;
  t.id = s.Text(0);
  t.tenant = s.Text(1);
  t.label = s.Text(2);
  t.secret_hash = s.Text(3);
  t.scopes = SplitScopes(s.Text(4));
  t.created_at = s.Int(5);
  t.revoked_at = s.Int(6);
  t.expires_at = s.Int(7);
  t.last_used_at = s.Int(8);
  t.replaced_by = s.Text(9);
  return t;
}

#define TENANT_COLUMNS "name, created_at, quotas, deleting"

TenantRecord ReadTenant(Stmt& s) {
  return TenantRecord{s.Text(0), s.Int(1), s.Text(2), s.Int(3) != 0};
}

}  // namespace

// ---------------------------------------------------------------- tenants and tokens

Status SqliteStore::CreateTenant(const TenantRecord& tenant) {
  return Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("INSERT INTO tenants(name, created_at, quotas) VALUES(?1, ?2, ?3)"));
    s.Bind(1, tenant.name).Bind(2, tenant.created_at).Bind(3, tenant.quotas_json);
    return s.Run();
  });
}

Result<std::optional<TenantRecord>> SqliteStore::GetTenant(const std::string& name) {
  std::optional<TenantRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("SELECT " TENANT_COLUMNS " FROM tenants WHERE name = ?1"));
    s.Bind(1, name);
    if (s.Step() == SQLITE_ROW) out = ReadTenant(s);
    return s.Error();
  }));
  return out;
}

Result<std::vector<TenantRecord>> SqliteStore::ListTenants() {
  std::vector<TenantRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("SELECT " TENANT_COLUMNS " FROM tenants ORDER BY name"));
    while (s.Step() == SQLITE_ROW) out.push_back(ReadTenant(s));
    return s.Error();
  }));
  return out;
}

Status SqliteStore::CreateToken(const TokenRecord& t) {
  std::string scopes = JoinScopes(t.scopes);
  return Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "INSERT INTO tokens(id, tenant, label, secret_hash, scopes, created_at, revoked_at, "
            "expires_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    s.Bind(1, t.id)
        .Bind(2, t.tenant)
        .Bind(3, t.label)
        .Bind(4, t.secret_hash)
        .Bind(5, scopes)
        .Bind(6, t.created_at)
        .Bind(7, t.revoked_at)
        .Bind(8, t.expires_at);
    return s.Run();
  });
}

Result<std::optional<TokenRecord>> SqliteStore::FindTokenByHash(const std::string& hash) {
  std::optional<TokenRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " TOKEN_COLUMNS " FROM tokens WHERE secret_hash = ?1"));
    s.Bind(1, hash);
    if (s.Step() == SQLITE_ROW) out = ReadToken(s);
    return s.Error();
  }));
  return out;
}

Result<std::vector<TokenRecord>> SqliteStore::ListTokens(const std::string& tenant) {
  std::vector<TokenRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("SELECT " TOKEN_COLUMNS
                                        " FROM tokens WHERE tenant = ?1 ORDER BY created_at, id"));
    s.Bind(1, tenant);
    while (s.Step() == SQLITE_ROW) out.push_back(ReadToken(s));
    return s.Error();
  }));
  return out;
}

Result<bool> SqliteStore::RevokeToken(const std::string& tenant, const std::string& id, TimeMs at) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "UPDATE tokens SET revoked_at = ?3 WHERE tenant = ?1 AND id = ?2 AND revoked_at = 0"));
    s.Bind(1, tenant).Bind(2, id).Bind(3, at);
    Status st = s.Run();
    changed = s.Changes() == 1;
    return st;
  }));
  return changed;
}

// ---------------------------------------------------------------- queues

Result<int64_t> SqliteStore::CreateQueue(const QueueRecord& q) {
  // No quota; the id is chosen as there (sqlite_tenancy.cc), past every queue_id in messages.
  return CreateQueueWithinQuota(q, 0);
}

Result<bool> SqliteStore::UpdateQueue(const QueueRecord& q) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("UPDATE queues SET config = ?2, updated_at = ?3 WHERE id = ?1"));
    s.Bind(1, q.id).Bind(2, q.config_json).Bind(3, q.updated_at);
    Status st = s.Run();
    changed = s.Changes() == 1;
    return st;
  }));
  return changed;
}

Result<std::optional<QueueRecord>> SqliteStore::GetQueue(const std::string& tenant,
                                                         const std::string& name) {
  std::optional<QueueRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " QUEUE_COLUMNS " FROM queues WHERE tenant = ?1 AND name = ?2"));
    s.Bind(1, tenant).Bind(2, name);
    if (s.Step() == SQLITE_ROW) out = ReadQueue(s);
    return s.Error();
  }));
  return out;
}

Result<std::optional<QueueRecord>> SqliteStore::GetQueueById(int64_t id) {
  std::optional<QueueRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("SELECT " QUEUE_COLUMNS " FROM queues WHERE id = ?1"));
    s.Bind(1, id);
    if (s.Step() == SQLITE_ROW) out = ReadQueue(s);
    return s.Error();
  }));
  return out;
}

Result<std::vector<QueueRecord>> SqliteStore::ListQueues(const std::string& tenant) {
  std::vector<QueueRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " QUEUE_COLUMNS " FROM queues WHERE tenant = ?1 ORDER BY name"));
    s.Bind(1, tenant);
    while (s.Step() == SQLITE_ROW) out.push_back(ReadQueue(s));
    return s.Error();
  }));
  return out;
}

Result<bool> SqliteStore::DeleteQueue(int64_t queue_id) {
  bool deleted = false;
  std::string tenant;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto q,
                             db.Prepare("DELETE FROM queues WHERE id = ?1 RETURNING tenant"));
    q.Bind(1, queue_id);
    deleted = q.Step() == SQLITE_ROW;
    if (deleted) tenant = q.Text(0);
    return q.Error();
  }));
  if (!deleted) return false;
  // A topic's events, in bounded transactions too (none for other queues).
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto e, db.Prepare("DELETE FROM topic_events WHERE seq IN (SELECT seq FROM "
                             "topic_events WHERE tenant = ?1 AND topic_id = ?2 LIMIT 1000)"));
      e.Bind(1, tenant).Bind(2, queue_id);
      REDRIVE_RETURN_IF_ERROR(e.Run());
      n = e.Changes();
      return Status::Ok();
    }));
    if (n == 0) break;
  }
  // The queue is gone at once; its messages go in bounded transactions, so that deleting a
  // queue of millions neither stalls other writers nor holds a giant transaction in memory.
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto m,
          db.Prepare(
              "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE queue_id = ?1 "
              "LIMIT 10000)"));
      m.Bind(1, queue_id);
      REDRIVE_RETURN_IF_ERROR(m.Run());
      n = m.Changes();
      if (n > 0) return Status::Ok();
      REDRIVE_ASSIGN_OR_RETURN(auto i, db.Prepare("DELETE FROM idempotency WHERE queue_id = ?1"));
      i.Bind(1, queue_id);
      return i.Run();
    }));
    if (n == 0) break;
  }
  return true;
}

// ---------------------------------------------------------------- dead letters

Result<std::optional<DeadLetterRecord>> SqliteStore::GetDeadLetter(const std::string& tenant,
                                                                   const std::string& id) {
  std::optional<DeadLetterRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("SELECT " DEAD_LETTER_COLUMNS
                                        " FROM dead_letters WHERE tenant = ?1 AND id = ?2"));
    s.Bind(1, tenant).Bind(2, id);
    if (s.Step() == SQLITE_ROW) out = ReadDeadLetter(s);
    return s.Error();
  }));
  return out;
}

// ---------------------------------------------------------------- workbench

namespace {

// WHERE clause and binder for a DeadLetterScan; the SQL text varies only by which filters are
// present, so the statement cache stays small.
struct ScanSql {
  std::string where;
  std::vector<std::pair<int, std::string>> text_binds;
  std::vector<std::pair<int, int64_t>> int_binds;
};

ScanSql BuildScan(const DeadLetterScan& s) {
  ScanSql q;
  int n = 0;
  auto text = [&](const char* col, const std::string& v) {
    q.where += std::string(" AND ") + col + " = ?" + std::to_string(++n);
    q.text_binds.push_back({n, v});
  };
  auto num = [&](const char* cond, int64_t v) {
    q.where += std::string(" AND ") + cond + std::to_string(++n);
    q.int_binds.push_back({n, v});
  };
  text("tenant", s.tenant);
  if (!s.dlq.empty()) text("dlq", s.dlq);
  if (!s.origin.empty()) text("origin", s.origin);
  if (!s.reason.empty()) text("reason", s.reason);
  if (!s.group_id.empty()) text("group_id", s.group_id);
  if (s.since > 0) num("dead_lettered_at >= ?", s.since);
  if (s.until > 0) num("dead_lettered_at < ?", s.until);
  if (s.snapshot.max_seq > 0) num("seq <= ?", s.snapshot.max_seq);
  if (s.unexported) q.where += " AND exported_at = 0";
  if (!s.ticket.empty()) {
    // The literal lets the partial index dead_letters_by_ticket serve the scan.
    q.where += " AND ticket <> '' AND ticket = ?" + std::to_string(++n);
    q.text_binds.push_back({n, s.ticket});
  }
  if (s.redacted_only) q.where += " AND redacted = 1";
  if (!s.redriven_by.empty()) {
    // Lineage is a JSON column; a LIKE on its serialized key is exact for these ids, which
    // hold no quote or wildcard.
    q.where += " AND lineage LIKE ?" + std::to_string(++n);
    q.text_binds.push_back({n, "%\"lastRedrivenBy\":\"" + s.redriven_by + "\"%"});
  }
  q.where = q.where.substr(5);  // drop the first " AND "
  return q;
}

// A snapshot this store made has no `visible` part (see SnapshotDeadLetters).
Status CheckSnapshot(const DeadLetterSnapshot& snapshot) {
  if (snapshot.visible.empty()) return Status::Ok();
  return Status(ErrorCode::kInvalidArgument, "a dead-letter snapshot of another store");
}

void BindScan(Stmt& st, const ScanSql& q) {
  for (const auto& [i, v] : q.text_binds) st.Bind(i, v);
  for (const auto& [i, v] : q.int_binds) st.Bind(i, v);
}

Result<std::vector<CountRow>> CountBy(Db& db, const std::string& sql, const std::string& tenant,
                                      const std::string& dlq, const std::string& ticket) {
  std::vector<CountRow> out;
  REDRIVE_ASSIGN_OR_RETURN(auto s, db.PrepareText(sql));
  s.Bind(1, tenant).Bind(2, dlq);
  if (!ticket.empty()) s.Bind(3, ticket);
  while (s.Step() == SQLITE_ROW) out.push_back(CountRow{s.Text(0), s.Int(1)});
  REDRIVE_RETURN_IF_ERROR(s.Error());
  return out;
}

}  // namespace

Result<std::vector<DeadLetterRecord>> SqliteStore::ScanDeadLetters(const DeadLetterScan& scan) {
  REDRIVE_RETURN_IF_ERROR(CheckSnapshot(scan.snapshot));
  std::vector<DeadLetterRecord> out;
  ScanSql q = BuildScan(scan);
  std::string sql = "SELECT " DEAD_LETTER_COLUMNS " FROM dead_letters WHERE " + q.where +
                    " AND seq > ?50 ORDER BY seq LIMIT ?51";
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.PrepareText(sql));
    BindScan(s, q);
    s.Bind(50, scan.after_seq).Bind(51, int64_t{scan.limit});
    while (s.Step() == SQLITE_ROW) out.push_back(ReadDeadLetter(s));
    return s.Error();
  }));
  return out;
}

Result<int64_t> SqliteStore::CountDeadLetters(const DeadLetterScan& scan) {
  REDRIVE_RETURN_IF_ERROR(CheckSnapshot(scan.snapshot));
  int64_t n = 0;
  ScanSql q = BuildScan(scan);
  std::string sql = "SELECT COUNT(*) FROM dead_letters WHERE " + q.where;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.PrepareText(sql));
    BindScan(s, q);
    if (s.Step() == SQLITE_ROW) n = s.Int(0);
    return s.Error();
  }));
  return n;
}

// Exact with max_seq alone: one writer commits transactions one after another, so a dead
// letter not committed when this read begins is given its seq later, and dead_letter_seq
// never gives a seq twice: any such dead letter has a seq above every one visible here.
Result<DeadLetterSnapshot> SqliteStore::SnapshotDeadLetters(const std::string& tenant) {
  DeadLetterSnapshot snapshot;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT COALESCE(MAX(seq), 0) FROM dead_letters WHERE tenant = ?1"));
    s.Bind(1, tenant);
    if (s.Step() == SQLITE_ROW) snapshot.max_seq = s.Int(0);
    return s.Error();
  }));
  return snapshot;
}

Result<std::vector<FailureGroupRow>> SqliteStore::ListFailureGroups(const std::string& tenant,
                                                                    const std::string& dlq) {
  std::vector<FailureGroupRow> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT group_id, MAX(signature), MAX(origin), MAX(reason), COUNT(*), "
                           "MIN(dead_lettered_at), MAX(dead_lettered_at) FROM dead_letters "
                           "WHERE tenant = ?1 AND (?2 = '' OR dlq = ?2) GROUP BY group_id "
                           "ORDER BY COUNT(*) DESC, group_id LIMIT 1000"));
    s.Bind(1, tenant).Bind(2, dlq);
    while (s.Step() == SQLITE_ROW) {
      FailureGroupRow g;
      g.group_id = s.Text(0);
      g.signature = s.Text(1);
      g.origin = s.Text(2);
      g.reason = s.Text(3);
      g.count = s.Int(4);
      g.first_seen = s.Int(5);
      g.last_seen = s.Int(6);
      out.push_back(std::move(g));
    }
    REDRIVE_RETURN_IF_ERROR(s.Error());
    for (auto& g : out) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto ids,
          db.Prepare("SELECT id FROM dead_letters WHERE tenant = ?1 AND group_id = ?2 AND "
                     "(?3 = '' OR dlq = ?3) ORDER BY seq LIMIT 5"));
      ids.Bind(1, tenant).Bind(2, g.group_id).Bind(3, dlq);
      while (ids.Step() == SQLITE_ROW) g.sample_ids.push_back(ids.Text(0));
      REDRIVE_RETURN_IF_ERROR(ids.Error());
    }
    return Status::Ok();
  }));
  return out;
}

Result<DeadLetterStats> SqliteStore::GetDeadLetterStats(const std::string& tenant,
                                                        const std::string& dlq,
                                                        const std::string& ticket) {
  DeadLetterStats stats;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    const std::string where =
        " FROM dead_letters WHERE tenant = ?1 AND (?2 = '' OR dlq = ?2) " +
        std::string(ticket.empty() ? "" : "AND ticket <> '' AND ticket = ?3 ");
    auto count_by = [&](const std::string& sql) { return CountBy(db, sql, tenant, dlq, ticket); };
    REDRIVE_ASSIGN_OR_RETURN(stats.by_origin, count_by("SELECT origin, COUNT(*)" + where +
                                                       "GROUP BY origin ORDER BY 2 DESC"));
    REDRIVE_ASSIGN_OR_RETURN(stats.by_reason, count_by("SELECT reason, COUNT(*)" + where +
                                                       "GROUP BY reason ORDER BY 2 DESC"));
    REDRIVE_ASSIGN_OR_RETURN(stats.by_group,
                             count_by("SELECT group_id, COUNT(*)" + where +
                                      "GROUP BY group_id ORDER BY 2 DESC LIMIT 1000"));
    REDRIVE_ASSIGN_OR_RETURN(
        stats.by_hour,
        count_by("SELECT CAST((dead_lettered_at / 3600000) * 3600000 AS TEXT), COUNT(*)" + where +
                 "GROUP BY dead_lettered_at / 3600000 ORDER BY 1"));
    for (const auto& r : stats.by_reason) stats.total += r.count;
    if (stats.by_hour.empty()) return Status::Ok();
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.PrepareText("SELECT MIN(dead_lettered_at), MAX(dead_lettered_at)" + where));
    s.Bind(1, tenant).Bind(2, dlq);
    if (!ticket.empty()) s.Bind(3, ticket);
    if (s.Step() == SQLITE_ROW) {
      stats.oldest = s.Int(0);
      stats.newest = s.Int(1);
    }
    return s.Error();
  }));
  return stats;
}

Result<std::vector<bool>> SqliteStore::DeleteDeadLetters(const std::string& tenant,
                                                         const std::vector<int64_t>& seqs) {
  std::vector<bool> out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.assign(seqs.size(), false);
    for (size_t i = 0; i < seqs.size(); ++i) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto s, db.Prepare("DELETE FROM dead_letters WHERE seq = ?1 AND tenant = ?2"));
      s.Bind(1, seqs[i]).Bind(2, tenant);
      REDRIVE_RETURN_IF_ERROR(s.Run());
      out[i] = s.Changes() == 1;
    }
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> SqliteStore::PurgeDeadLetters(const std::string& tenant, const std::string& dlq) {
  // In bounded transactions: a purge of millions must not stall other writers.
  int64_t total = 0;
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
      REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("DELETE FROM dead_letters WHERE seq IN (SELECT "
                                                  "seq FROM dead_letters WHERE tenant = ?1 "
                                                  "AND dlq = ?2 LIMIT 10000)"));
      s.Bind(1, tenant).Bind(2, dlq);
      REDRIVE_RETURN_IF_ERROR(s.Run());
      n = s.Changes();
      return Status::Ok();
    }));
    total += n;
    if (n == 0) return total;
  }
}

Result<std::vector<RedriveOutcome>> SqliteStore::Redrive(const std::string& tenant,
                                                         const std::vector<RedriveItem>& items,
                                                         TimeMs now) {
  std::vector<RedriveOutcome> out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.assign(items.size(), RedriveOutcome::kGone);
    std::unordered_map<int64_t, int64_t> depth;  // destination -> messages, counted once
    for (size_t i = 0; i < items.size(); ++i) {
      const RedriveItem& it = items[i];
      REDRIVE_ASSIGN_OR_RETURN(
          auto size,
          db.Prepare("SELECT body_size, id FROM dead_letters WHERE seq = ?1 AND tenant = ?2"));
      size.Bind(1, it.dead_letter_seq).Bind(2, tenant);
      if (size.Step() != SQLITE_ROW) {
        REDRIVE_RETURN_IF_ERROR(size.Error());
        continue;  // kGone
      }
      int64_t body_size = size.Int(0);
      std::string id = size.Text(1);
      std::string refusal;
      if (it.max_message_size > 0 && body_size > it.max_message_size) {
        out[i] = RedriveOutcome::kTooLarge;
        refusal = "too-large: " + std::to_string(body_size) + " bytes exceed the maxMessageSize " +
                  std::to_string(it.max_message_size) + " of " + it.dest_name;
      } else if (it.max_length > 0) {
        auto d = depth.find(it.dest_queue_id);
        if (d == depth.end()) {
          REDRIVE_ASSIGN_OR_RETURN(auto c,
                                   db.Prepare("SELECT COUNT(*) FROM messages WHERE queue_id = ?1"));
          c.Bind(1, it.dest_queue_id);
          int64_t n = c.Step() == SQLITE_ROW ? c.Int(0) : 0;
          REDRIVE_RETURN_IF_ERROR(c.Error());
          d = depth.emplace(it.dest_queue_id, n).first;
        }
        if (d->second >= it.max_length) {
          out[i] = RedriveOutcome::kFull;
          refusal = "overflow: " + it.dest_name + " is at its max length of " +
                    std::to_string(it.max_length);
        }
      }
      if (!refusal.empty()) {
        REDRIVE_ASSIGN_OR_RETURN(
            auto r,
            db.Prepare(
                "UPDATE dead_letters SET redrive_error = ?3 WHERE seq = ?1 AND tenant = ?2"));
        r.Bind(1, it.dead_letter_seq).Bind(2, tenant).Bind(3, refusal);
        REDRIVE_RETURN_IF_ERROR(r.Run());
        continue;
      }
      std::string lineage = EncodeLineage(it.lineage);
      REDRIVE_ASSIGN_OR_RETURN(
          auto ins,
          db.Prepare(
              "INSERT INTO messages(id, queue_id, state, visible_at, expires_at, retain_until, "
              "delivery_count, lease_token, consumer, first_delivered_at, last_delivered_at, "
              "published_at, enqueued_at, idem_key, attributes, journal, body, lineage) "
              "SELECT id, ?3, 0, ?4, ?5, ?6, 0, '', '', 0, 0, published_at, ?7, idem_key, "
              "attributes, journal, body, ?8 FROM dead_letters WHERE seq = ?1 AND tenant = ?2"));
      ins.Bind(1, it.dead_letter_seq)
          .Bind(2, tenant)
          .Bind(3, it.dest_queue_id)
          .Bind(4, it.visible_at)
          .Bind(5, it.expires_at)
          .Bind(6, it.retain_until)
          .Bind(7, now)
          .Bind(8, lineage);
      REDRIVE_RETURN_IF_ERROR(ins.Run());
      if (id.find(':') != std::string::npos) {
        // A topic's copy: the redriven message is its copy now (message_store.h).
        REDRIVE_ASSIGN_OR_RETURN(auto copy, db.Prepare("UPDATE topic_deliveries SET msg_seq = ?2, "
                                                       "delivered_at = 0 WHERE copy_id = ?1"));
        copy.Bind(1, id).Bind(2, sqlite3_last_insert_rowid(db.raw()));
        REDRIVE_RETURN_IF_ERROR(copy.Run());
      }
      REDRIVE_RETURN_IF_ERROR(AddQueueUsage(db, it.dest_queue_id, 1, body_size));
      REDRIVE_ASSIGN_OR_RETURN(
          auto del, db.Prepare("DELETE FROM dead_letters WHERE seq = ?1 AND tenant = ?2"));
      del.Bind(1, it.dead_letter_seq).Bind(2, tenant);
      REDRIVE_RETURN_IF_ERROR(del.Run());
      out[i] = RedriveOutcome::kMoved;
      auto d = depth.find(it.dest_queue_id);
      if (d != depth.end()) ++d->second;
    }
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> SqliteStore::DeleteRetainedDeadLetters(TimeMs now, int limit) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare("DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters WHERE "
                   "retain_until > 0 AND retain_until <= ?1 ORDER BY retain_until LIMIT ?2)"));
    s.Bind(1, now).Bind(2, int64_t{limit});
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

Status SqliteStore::AddDeliveryOutcomes(const std::vector<DeliveryOutcomeRow>& rows) {
  if (rows.empty()) return Status::Ok();
  return Write([&](Db& db) {
    for (const auto& r : rows) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto s, db.Prepare("INSERT INTO delivery_outcomes(tenant, origin, minute, succeeded, "
                             "failed, failed_tls) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                             "ON CONFLICT(tenant, origin, minute) DO UPDATE SET "
                             "succeeded = succeeded + excluded.succeeded, "
                             "failed = failed + excluded.failed, "
                             "failed_tls = failed_tls + excluded.failed_tls"));
      s.Bind(1, r.tenant)
          .Bind(2, r.origin)
          .Bind(3, r.minute)
          .Bind(4, r.succeeded)
          .Bind(5, r.failed)
          .Bind(6, r.failed_tls);
      REDRIVE_RETURN_IF_ERROR(s.Run());
    }
    return Status::Ok();
  });
}

Result<std::vector<DeliveryOutcomeRow>> SqliteStore::ListDeliveryOutcomes(const std::string& tenant,
                                                                          const std::string& origin,
                                                                          TimeMs since,
                                                                          TimeMs until) {
  std::vector<DeliveryOutcomeRow> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT minute, succeeded, failed, failed_tls FROM delivery_outcomes "
                           "WHERE tenant = ?1 AND origin = ?2 AND minute >= ?3 AND minute < ?4 "
                           "ORDER BY minute"));
    s.Bind(1, tenant).Bind(2, origin).Bind(3, since).Bind(4, until);
    while (s.Step() == SQLITE_ROW) {
      DeliveryOutcomeRow r;
      r.tenant = tenant;
      r.origin = origin;
      r.minute = s.Int(0);
      r.succeeded = s.Int(1);
      r.failed = s.Int(2);
      r.failed_tls = s.Int(3);
      out.push_back(std::move(r));
    }
    return s.Error();
  }));
  return out;
}

Result<int64_t> SqliteStore::DeleteDeliveryOutcomes(TimeMs before, int limit) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("DELETE FROM delivery_outcomes WHERE (tenant, origin, minute) IN "
                           "(SELECT tenant, origin, minute FROM delivery_outcomes WHERE "
                           "minute < ?1 ORDER BY minute LIMIT ?2)"));
    s.Bind(1, before).Bind(2, int64_t{limit});
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

Status SqliteStore::AppendAudit(const AuditRecord& r) {
  return Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "INSERT INTO audit(tenant, at, actor, action, detail) VALUES(?1, ?2, ?3, ?4, ?5)"));
    s.Bind(1, r.tenant).Bind(2, r.at).Bind(3, r.actor).Bind(4, r.action).Bind(5, r.detail_json);
    return s.Run();
  });
}

Result<std::vector<AuditRecord>> SqliteStore::ListAudit(const std::string& tenant,
                                                        int64_t after_seq, int limit) {
  std::vector<AuditRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT seq, tenant, at, actor, action, detail "
                                                "FROM audit WHERE tenant = ?1 AND seq > ?2 "
                                                "ORDER BY seq LIMIT ?3"));
    s.Bind(1, tenant).Bind(2, after_seq).Bind(3, int64_t{limit});
    while (s.Step() == SQLITE_ROW) {
      out.push_back(AuditRecord{s.Int(0), s.Text(1), s.Int(2), s.Text(3), s.Text(4), s.Text(5)});
    }
    return s.Error();
  }));
  return out;
}

#define JOB_COLUMNS "id, tenant, scope, state, spec, progress, created_at, updated_at, finished_at"

namespace {
// The state column holds the words of job_state.h. Errors: kInternal for any other.
Status ReadJob(Stmt& s, JobRecord* j) {
  *j = JobRecord{s.Text(0), s.Text(1), s.Text(2), JobState::kRunning, s.Text(4), s.Text(5),
                 s.Int(6),  s.Int(7),  s.Int(8)};
  std::string state = s.Text(3);
  if (!FromString(state, &j->state)) {
    return Status(ErrorCode::kInternal, "job " + j->id + " has an unknown state '" + state + "'");
  }
  return Status::Ok();
}
}  // namespace

Status SqliteStore::CreateJob(const JobRecord& j) {
  return Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("INSERT INTO jobs(" JOB_COLUMNS
                                                ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    s.Bind(1, j.id).Bind(2, j.tenant).Bind(3, j.scope).Bind(4, ToString(j.state));
    s.Bind(5, j.spec_json);
    s.Bind(6, j.progress_json).Bind(7, j.created_at).Bind(8, j.updated_at).Bind(9, j.finished_at);
    return s.Run();
  });
}

Result<bool> SqliteStore::UpdateJob(const JobRecord& j, JobState expected_state) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare("UPDATE jobs SET state = ?3, progress = ?4, updated_at = ?5, finished_at = ?6 "
                   "WHERE id = ?1 AND tenant = ?2 AND state = ?7"));
    s.Bind(1, j.id).Bind(2, j.tenant).Bind(3, ToString(j.state)).Bind(4, j.progress_json);
    s.Bind(5, j.updated_at).Bind(6, j.finished_at).Bind(7, ToString(expected_state));
    REDRIVE_RETURN_IF_ERROR(s.Run());
    changed = s.Changes() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<JobRecord>> SqliteStore::GetJob(const std::string& tenant,
                                                     const std::string& id) {
  std::optional<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " JOB_COLUMNS " FROM jobs WHERE tenant = ?1 AND id = ?2"));
    s.Bind(1, tenant).Bind(2, id);
    if (s.Step() == SQLITE_ROW) {
      out.emplace();
      REDRIVE_RETURN_IF_ERROR(ReadJob(s, &*out));
    }
    return s.Error();
  }));
  return out;
}

Result<std::vector<JobRecord>> SqliteStore::ListJobs(const std::string& tenant) {
  std::vector<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare("SELECT " JOB_COLUMNS
                   " FROM jobs WHERE (?1 = '' OR tenant = ?1) ORDER BY created_at DESC, id DESC "
                   "LIMIT 1000"));
    s.Bind(1, tenant);
    while (s.Step() == SQLITE_ROW) {
      REDRIVE_RETURN_IF_ERROR(ReadJob(s, &out.emplace_back()));
    }
    return s.Error();
  }));
  return out;
}

Result<int64_t> SqliteStore::DeleteFinishedJobs(TimeMs before) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("DELETE FROM jobs WHERE finished_at > 0 AND finished_at < ?1"));
    s.Bind(1, before);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

// ---------------------------------------------------------------- exports

Status SqliteStore::CreateExport(const JobRecord& j) {
  return Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("INSERT INTO exports(" JOB_COLUMNS
                                                ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    s.Bind(1, j.id).Bind(2, j.tenant).Bind(3, j.scope).Bind(4, ToString(j.state));
    s.Bind(5, j.spec_json);
    s.Bind(6, j.progress_json).Bind(7, j.created_at).Bind(8, j.updated_at).Bind(9, j.finished_at);
    return s.Run();
  });
}

Result<bool> SqliteStore::UpdateExport(const JobRecord& j, JobState expected_state) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("UPDATE exports SET state = ?3, progress = ?4, updated_at = ?5, "
                           "finished_at = ?6 WHERE id = ?1 AND tenant = ?2 AND state = ?7"));
    s.Bind(1, j.id).Bind(2, j.tenant).Bind(3, ToString(j.state)).Bind(4, j.progress_json);
    s.Bind(5, j.updated_at).Bind(6, j.finished_at).Bind(7, ToString(expected_state));
    REDRIVE_RETURN_IF_ERROR(s.Run());
    changed = s.Changes() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<JobRecord>> SqliteStore::GetExport(const std::string& tenant,
                                                        const std::string& id) {
  std::optional<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " JOB_COLUMNS " FROM exports WHERE tenant = ?1 AND id = ?2"));
    s.Bind(1, tenant).Bind(2, id);
    if (s.Step() == SQLITE_ROW) {
      out.emplace();
      REDRIVE_RETURN_IF_ERROR(ReadJob(s, &*out));
    }
    return s.Error();
  }));
  return out;
}

Result<std::vector<JobRecord>> SqliteStore::ListExports(const std::string& tenant) {
  std::vector<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " JOB_COLUMNS " FROM exports WHERE (?1 = '' OR tenant = ?1) "
                           "ORDER BY created_at DESC, id DESC LIMIT 1000"));
    s.Bind(1, tenant);
    while (s.Step() == SQLITE_ROW) {
      REDRIVE_RETURN_IF_ERROR(ReadJob(s, &out.emplace_back()));
    }
    return s.Error();
  }));
  return out;
}

Result<std::vector<JobRecord>> SqliteStore::DeleteFinishedExports(TimeMs before) {
  std::vector<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("DELETE FROM exports WHERE finished_at > 0 AND created_at < ?1 "
                           "RETURNING " JOB_COLUMNS));
    s.Bind(1, before);
    while (s.Step() == SQLITE_ROW) {
      REDRIVE_RETURN_IF_ERROR(ReadJob(s, &out.emplace_back()));
    }
    return s.Error();
  }));
  return out;
}

Result<int64_t> SqliteStore::MarkExported(const std::string& tenant,
                                          const std::vector<int64_t>& seqs, TimeMs at) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    n = 0;
    std::string list = "[";
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (i) list += ',';
      list += std::to_string(seqs[i]);
    }
    list += ']';
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("UPDATE dead_letters SET exported_at = ?3 WHERE tenant = ?1 AND seq "
                           "IN (SELECT value FROM json_each(?2))"));
    s.Bind(1, tenant).Bind(2, list).Bind(3, at);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

}  // namespace redrive::store::sqlite
