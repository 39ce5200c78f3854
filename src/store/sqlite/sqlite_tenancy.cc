// SqliteStore, tenancy: quota overrides and usage, queue creation within a quota, token
// rotation and last use, the last operator token, tenant deletion. The usage counters
// themselves are kept by triggers (see kSchema in sqlite_store.cc).
#include <algorithm>
#include <functional>

#include "store/codec.h"
#include "store/sqlite/sqlite_store.h"

namespace redrive::store::sqlite {
namespace {

// Rows deleted per transaction when a tenant goes, as for queue deletion and purges.
constexpr int64_t kDeleteChunk = 10'000;

Status QuotaExceeded(const std::string& tenant, const char* quota, int64_t limit,
                     const std::string& detail) {
  return Status(ErrorCode::kQuotaExceeded, "tenant " + tenant + " is at its " + quota +
                                               " quota of " + std::to_string(limit) + ": " +
                                               detail);
}

// Runs `sql` (one DELETE binding the tenant as ?1, bounded by a LIMIT) until it deletes nothing.
Status DeleteInChunks(const std::function<Status(std::function<Status(Db&)>)>& write,
                      const char* sql, const std::string& tenant) {
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(write([&](Db& db) {
      REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare(sql));
      s.Bind(1, tenant).Bind(2, kDeleteChunk);
      REDRIVE_RETURN_IF_ERROR(s.Run());
      n = s.Changes();
      return Status::Ok();
    }));
    if (n == 0) return Status::Ok();
  }
}

}  // namespace

Status SqliteStore::ReadUsage(Db& db, const std::string& tenant, TenantUsage* u) {
  REDRIVE_ASSIGN_OR_RETURN(
      auto s, db.Prepare("SELECT COALESCE(SUM(kind = 0), 0), COALESCE(SUM(msg_count), 0), "
                         "COALESCE(SUM(msg_bytes), 0), "
                         "COALESCE((SELECT dl_count FROM tenants WHERE name = ?1), 0), "
                         "COALESCE((SELECT dl_bytes FROM tenants WHERE name = ?1), 0) "
                         "FROM queues WHERE tenant = ?1"));
  s.Bind(1, tenant);
  if (s.Step() == SQLITE_ROW) {
    u->queues = s.Int(0);
    u->messages = s.Int(1) + s.Int(3);
    u->bytes = s.Int(2) + s.Int(4);
  }
  return s.Error();
}

Status SqliteStore::AddQueueUsage(Db& db, int64_t queue_id, int64_t messages, int64_t bytes) {
  if (messages == 0) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("UPDATE queues SET msg_count = msg_count + ?2, "
                                              "msg_bytes = msg_bytes + ?3 WHERE id = ?1"));
  s.Bind(1, queue_id).Bind(2, messages).Bind(3, bytes);
  return s.Run();
}

Result<bool> SqliteStore::SetTenantQuotas(const std::string& tenant,
                                          const std::string& quotas_json) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("UPDATE tenants SET quotas = ?2 WHERE name = ?1 AND deleting = 0"));
    s.Bind(1, tenant).Bind(2, quotas_json);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    changed = s.Changes() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<TenantUsage> SqliteStore::GetTenantUsage(const std::string& tenant) {
  TenantUsage u;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) { return ReadUsage(db, tenant, &u); }));
  return u;
}

Result<int64_t> SqliteStore::CreateQueueWithinQuota(const QueueRecord& q,
                                                    int64_t max_standard_queues) {
  int64_t id = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    if (q.kind == QueueKind::kStandard && max_standard_queues > 0) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto c, db.Prepare("SELECT COUNT(*) FROM queues WHERE tenant = ?1 AND kind = 0"));
      c.Bind(1, q.tenant);
      int64_t n = c.Step() == SQLITE_ROW ? c.Int(0) : 0;
      REDRIVE_RETURN_IF_ERROR(c.Error());
      if (n >= max_standard_queues) {
        return QuotaExceeded(q.tenant, "maxQueues", max_standard_queues,
                             std::to_string(n) + " queues exist");
      }
    }
    // Past every id still referenced by a message: a deleted queue's messages go in bounded
    // transactions after its row, and must never land in (or count against) a new queue.
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "INSERT INTO queues(id, tenant, name, kind, config, created_at, updated_at) "
            "VALUES(MAX(COALESCE((SELECT MAX(id) FROM queues), 0), "
            "COALESCE((SELECT MAX(queue_id) FROM messages), 0)) + 1, ?1, ?2, ?3, ?4, ?5, ?6)"));
    s.Bind(1, q.tenant)
        .Bind(2, q.name)
        .Bind(3, static_cast<int64_t>(q.kind))
        .Bind(4, q.config_json)
        .Bind(5, q.created_at)
        .Bind(6, q.updated_at);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    id = sqlite3_last_insert_rowid(db.raw());
    return Status::Ok();
  }));
  return id;
}

Result<bool> SqliteStore::RotateToken(const std::string& tenant, const std::string& id,
                                      const TokenRecord& t, TimeMs old_expires_at, TimeMs now) {
  bool rotated = false;
  std::string scopes = JoinScopes(t.scopes);
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    rotated = false;
    REDRIVE_ASSIGN_OR_RETURN(
        auto find,
        db.Prepare(
            "SELECT expires_at FROM tokens WHERE tenant = ?1 AND id = ?2 AND revoked_at = 0 AND "
            "(expires_at = 0 OR expires_at > ?3)"));
    find.Bind(1, tenant).Bind(2, id).Bind(3, now);
    if (find.Step() != SQLITE_ROW) return find.Error();
    TimeMs current = find.Int(0);
    TimeMs expires = current == 0 ? old_expires_at : std::min(current, old_expires_at);
    REDRIVE_ASSIGN_OR_RETURN(
        auto old, db.Prepare("UPDATE tokens SET expires_at = ?2, replaced_by = ?3 WHERE id = ?1"));
    old.Bind(1, id).Bind(2, expires).Bind(3, t.id);
    REDRIVE_RETURN_IF_ERROR(old.Run());
    REDRIVE_ASSIGN_OR_RETURN(
        auto ins,
        db.Prepare(
            "INSERT INTO tokens(id, tenant, label, secret_hash, scopes, created_at, revoked_at, "
            "expires_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    ins.Bind(1, t.id)
        .Bind(2, t.tenant)
        .Bind(3, t.label)
        .Bind(4, t.secret_hash)
        .Bind(5, scopes)
        .Bind(6, t.created_at)
        .Bind(7, t.revoked_at)
        .Bind(8, t.expires_at);
    REDRIVE_RETURN_IF_ERROR(ins.Run());
    rotated = true;
    return Status::Ok();
  }));
  return rotated;
}

Result<RevokeOutcome> SqliteStore::RevokeOperatorToken(const std::string& id, TimeMs at) {
  RevokeOutcome outcome = RevokeOutcome::kNotActive;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    outcome = RevokeOutcome::kNotActive;
    REDRIVE_ASSIGN_OR_RETURN(
        auto find,
        db.Prepare(
            "SELECT expires_at FROM tokens WHERE tenant = '' AND id = ?1 AND revoked_at = 0"));
    find.Bind(1, id);
    if (find.Step() != SQLITE_ROW) return find.Error();
    TimeMs expires = find.Int(0);
    if (expires == 0 || expires > at) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto others,
          db.Prepare(
              "SELECT COUNT(*) FROM tokens WHERE tenant = '' AND id <> ?1 AND revoked_at = 0 AND "
              "(expires_at = 0 OR expires_at > ?2)"));
      others.Bind(1, id).Bind(2, at);
      int64_t n = others.Step() == SQLITE_ROW ? others.Int(0) : 0;
      REDRIVE_RETURN_IF_ERROR(others.Error());
      if (n == 0) {
        outcome = RevokeOutcome::kLastActive;
        return Status::Ok();
      }
    }
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("UPDATE tokens SET revoked_at = ?2 WHERE tenant = '' AND id = ?1"));
    s.Bind(1, id).Bind(2, at);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    outcome = RevokeOutcome::kRevoked;
    return Status::Ok();
  }));
  return outcome;
}

Status SqliteStore::TouchTokens(const std::vector<std::pair<std::string, TimeMs>>& last_used) {
  if (last_used.empty()) return Status::Ok();
  return Write([&](Db& db) {
    for (const auto& [id, at] : last_used) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto s,
          db.Prepare("UPDATE tokens SET last_used_at = MAX(last_used_at, ?2) WHERE id = ?1"));
      s.Bind(1, id).Bind(2, at);
      REDRIVE_RETURN_IF_ERROR(s.Run());
    }
    return Status::Ok();
  });
}

Result<DeleteTenantOutcome> SqliteStore::DeleteTenant(const std::string& tenant,
                                                      bool only_if_empty) {
  DeleteTenantOutcome outcome = DeleteTenantOutcome::kNotFound;
  // First: the tenant is marked and its tokens go, so nothing new arrives while the rest goes.
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    outcome = DeleteTenantOutcome::kNotFound;
    REDRIVE_ASSIGN_OR_RETURN(auto t, db.Prepare("SELECT deleting FROM tenants WHERE name = ?1"));
    t.Bind(1, tenant);
    if (t.Step() != SQLITE_ROW) return t.Error();
    bool resuming = t.Int(0) != 0;
    if (only_if_empty && !resuming) {
      REDRIVE_ASSIGN_OR_RETURN(auto c, db.Prepare("SELECT COUNT(*) FROM queues WHERE tenant = ?1"));
      c.Bind(1, tenant);
      int64_t n = c.Step() == SQLITE_ROW ? c.Int(0) : 0;
      REDRIVE_RETURN_IF_ERROR(c.Error());
      if (n > 0) {
        outcome = DeleteTenantOutcome::kNotEmpty;
        return Status::Ok();
      }
    }
    REDRIVE_ASSIGN_OR_RETURN(auto mark,
                             db.Prepare("UPDATE tenants SET deleting = 1 WHERE name = ?1"));
    mark.Bind(1, tenant);
    REDRIVE_RETURN_IF_ERROR(mark.Run());
    REDRIVE_ASSIGN_OR_RETURN(auto tokens, db.Prepare("DELETE FROM tokens WHERE tenant = ?1"));
    tokens.Bind(1, tenant);
    REDRIVE_RETURN_IF_ERROR(tokens.Run());
    outcome = DeleteTenantOutcome::kDeleted;
    return Status::Ok();
  }));
  if (outcome != DeleteTenantOutcome::kDeleted) return outcome;

  auto write = [this](std::function<Status(Db&)> fn) { return Write(std::move(fn)); };
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      write,
      "DELETE FROM messages WHERE seq IN (SELECT m.seq FROM queues q JOIN messages m ON "
      "m.queue_id = q.id WHERE q.tenant = ?1 LIMIT ?2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      write,
      "DELETE FROM idempotency WHERE (queue_id, key) IN (SELECT i.queue_id, i.key FROM queues q "
      "JOIN idempotency i ON i.queue_id = q.id WHERE q.tenant = ?1 LIMIT ?2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      write,
      "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters WHERE tenant = ?1 "
      "LIMIT ?2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      write, "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE tenant = ?1 LIMIT ?2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      write,
      "DELETE FROM topic_events WHERE seq IN (SELECT seq FROM topic_events WHERE tenant = ?1 "
      "LIMIT ?2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      write,
      "DELETE FROM delivery_outcomes WHERE (tenant, origin, minute) IN (SELECT tenant, origin, "
      "minute FROM delivery_outcomes WHERE tenant = ?1 LIMIT ?2)",
      tenant));

  // Last: whatever arrived meanwhile (requests already past authentication), then the rows
  // that name the tenant.
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    static const char* const kFinal[] = {
        "DELETE FROM messages WHERE queue_id IN (SELECT id FROM queues WHERE tenant = ?1)",
        "DELETE FROM idempotency WHERE queue_id IN (SELECT id FROM queues WHERE tenant = ?1)",
        "DELETE FROM dead_letters WHERE tenant = ?1",
        "DELETE FROM audit WHERE tenant = ?1",
        "DELETE FROM topic_events WHERE tenant = ?1",
        "DELETE FROM delivery_outcomes WHERE tenant = ?1",
        "DELETE FROM tenant_secrets WHERE tenant = ?1",
        "DELETE FROM jobs WHERE tenant = ?1",
        "DELETE FROM exports WHERE tenant = ?1",
        "DELETE FROM tickets WHERE tenant = ?1",
        "DELETE FROM notification_settings WHERE tenant = ?1",
        "DELETE FROM tokens WHERE tenant = ?1",
        "DELETE FROM queues WHERE tenant = ?1",
        "DELETE FROM tenants WHERE name = ?1",
    };
    for (const char* sql : kFinal) {
      REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare(sql));
      s.Bind(1, tenant);
      REDRIVE_RETURN_IF_ERROR(s.Run());
    }
    return Status::Ok();
  }));
  return DeleteTenantOutcome::kDeleted;
}

Result<std::string> SqliteStore::TenantSecret(const std::string& tenant, const std::string& name,
                                              const std::string& candidate) {
  std::string secret;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto ins, db.Prepare("INSERT INTO tenant_secrets(tenant, name, secret) VALUES(?1, ?2, ?3) "
                             "ON CONFLICT(tenant, name) DO NOTHING"));
    ins.Bind(1, tenant).Bind(2, name).Bind(3, candidate);
    REDRIVE_RETURN_IF_ERROR(ins.Run());
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT secret FROM tenant_secrets WHERE tenant = ?1 AND name = ?2"));
    s.Bind(1, tenant).Bind(2, name);
    if (s.Step() == SQLITE_ROW) secret = s.Text(0);
    return s.Error();
  }));
  return secret;
}

}  // namespace redrive::store::sqlite
