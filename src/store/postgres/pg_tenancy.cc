// PgStore, tenancy: quotas, usage, tenant deletion, secrets, tokens, queue deletion. The usage
// counters themselves are kept by triggers (kSchemaV1 in pg_schema.cc).
#include <algorithm>

#include "store/codec.h"
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {
namespace {

// Rows deleted per transaction when a tenant goes, as for queue deletion and purges.
constexpr int64_t kDeleteChunk = 10'000;

#define TOKEN_COLUMNS                                                                          \
  "id, tenant, label, secret_hash, scopes, created_at, revoked_at, expires_at, last_used_at, " \
  "replaced_by"

TokenRecord ReadToken(const Rows& r, int i) {
  TokenRecord t;
  t.id = r.Text(i, 0);
  t.tenant = r.Text(i, 1);
  t.label = r.Text(i, 2);
  t.secret_hash = r.Text(i, 3);
  t.scopes = SplitScopes(r.Text(i, 4));
  t.created_at = r.Int(i, 5);
  t.revoked_at = r.Int(i, 6);
  t.expires_at = r.Int(i, 7);
  t.last_used_at = r.Int(i, 8);
  t.replaced_by = r.Text(i, 9);
  return t;
}

Params TokenParams(const TokenRecord& t) {
  return Params()
      .Text(t.id)
      .Text(t.tenant)
      .Text(t.label)
      .Text(t.secret_hash)
      .Text(JoinScopes(t.scopes))
      .Int(t.created_at)
      .Int(t.revoked_at)
      .Int(t.expires_at);
}

constexpr const char* kInsertToken =
    "INSERT INTO tokens(id, tenant, label, secret_hash, scopes, created_at, revoked_at, "
    "expires_at) VALUES($1, $2, $3, $4, $5, $6, $7, $8)";

// Runs `sql` (one DELETE binding the tenant as $1, bounded by a LIMIT $2) in transactions of
// its own until it deletes nothing.
Status DeleteInChunks(PgPool& pool, const char* sql, const std::string& tenant) {
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(pool.Tx([&](PgConn& c) {
      REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec(sql, Params().Text(tenant).Int(kDeleteChunk)));
      n = r.affected();
      return Status::Ok();
    }));
    if (n == 0) return Status::Ok();
  }
}

}  // namespace

Result<bool> PgStore::SetTenantQuotas(const std::string& tenant, const std::string& quotas_json) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("UPDATE tenants SET quotas = $2 WHERE name = $1 AND NOT deleting",
                       Params().Text(tenant).Text(quotas_json)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

// One statement, so the queues' and the tenant's counters are read in one snapshot.
Result<TenantUsage> PgStore::GetTenantUsage(const std::string& tenant) {
  TenantUsage u;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("SELECT (SELECT count(*) FROM queues WHERE tenant = $1 AND "
                                    "kind = 0), " PG_TENANT_USAGE_SUMS,
                                    Params().Text(tenant)));
    if (!r.empty()) u = TenantUsage{r.Int(0, 0), r.Int(0, 1), r.Int(0, 2)};
    return Status::Ok();
  }));
  return u;
}

Result<DeleteTenantOutcome> PgStore::DeleteTenant(const std::string& tenant, bool only_if_empty) {
  DeleteTenantOutcome outcome = DeleteTenantOutcome::kNotFound;
  // First: the tenant is marked and its tokens go, so nothing new arrives while the rest goes.
  // Its row locked: the emptiness check holds against a queue created within quota meanwhile
  // (CreateQueueWithinQuota locks the same row).
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    outcome = DeleteTenantOutcome::kNotFound;
    REDRIVE_ASSIGN_OR_RETURN(
        Rows t,
        c.Exec("SELECT deleting FROM tenants WHERE name = $1 FOR UPDATE", Params().Text(tenant)));
    if (t.empty()) return Status::Ok();
    const bool resuming = t.Bool(0, 0);
    if (only_if_empty && !resuming) {
      REDRIVE_ASSIGN_OR_RETURN(
          Rows n,
          c.Exec("SELECT EXISTS(SELECT 1 FROM queues WHERE tenant = $1)", Params().Text(tenant)));
      if (n.Bool(0, 0)) {
        outcome = DeleteTenantOutcome::kNotEmpty;
        return Status::Ok();
      }
    }
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("UPDATE tenants SET deleting = true WHERE name = $1", Params().Text(tenant))
            .status());
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("DELETE FROM tokens WHERE tenant = $1", Params().Text(tenant)).status());
    outcome = DeleteTenantOutcome::kDeleted;
    return Status::Ok();
  }));
  if (outcome != DeleteTenantOutcome::kDeleted) return outcome;

  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      pool_,
      "DELETE FROM messages WHERE seq IN (SELECT m.seq FROM queues q JOIN messages m ON "
      "m.queue_id = q.id WHERE q.tenant = $1 LIMIT $2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      pool_,
      "DELETE FROM idempotency WHERE (queue_id, key) IN (SELECT i.queue_id, i.key FROM queues q "
      "JOIN idempotency i ON i.queue_id = q.id WHERE q.tenant = $1 LIMIT $2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      pool_,
      "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters WHERE tenant = $1 "
      "LIMIT $2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      pool_, "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE tenant = $1 LIMIT $2)",
      tenant));
  // topic_deliveries go with their events (ON DELETE CASCADE).
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      pool_,
      "DELETE FROM topic_events WHERE seq IN (SELECT seq FROM topic_events WHERE tenant = $1 "
      "LIMIT $2)",
      tenant));
  REDRIVE_RETURN_IF_ERROR(DeleteInChunks(
      pool_,
      "DELETE FROM delivery_outcomes WHERE (tenant, origin, minute) IN (SELECT tenant, origin, "
      "minute FROM delivery_outcomes WHERE tenant = $1 LIMIT $2)",
      tenant));

  // Last: whatever arrived meanwhile (requests already past authentication), then the rows
  // that name the tenant. The tenant's row is locked first, the backend's lock order (the
  // tenant, then its queues: the usage triggers update both), so a publish cannot deadlock
  // with this.
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    static const char* const kFinal[] = {
        "SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE",
        "DELETE FROM messages WHERE queue_id IN (SELECT id FROM queues WHERE tenant = $1)",
        "DELETE FROM idempotency WHERE queue_id IN (SELECT id FROM queues WHERE tenant = $1)",
        "DELETE FROM dead_letters WHERE tenant = $1",
        "DELETE FROM audit WHERE tenant = $1",
        "DELETE FROM topic_events WHERE tenant = $1",
        "DELETE FROM delivery_outcomes WHERE tenant = $1",
        "DELETE FROM tenant_secrets WHERE tenant = $1",
        "DELETE FROM jobs WHERE tenant = $1",
        "DELETE FROM exports WHERE tenant = $1",
        "DELETE FROM tickets WHERE tenant = $1",
        "DELETE FROM notification_settings WHERE tenant = $1",
        "DELETE FROM tokens WHERE tenant = $1",
        "DELETE FROM queue_usage WHERE queue_id IN (SELECT id FROM queues WHERE tenant = $1)",
        "DELETE FROM tenant_usage WHERE tenant = $1",
        "DELETE FROM queues WHERE tenant = $1",
        "DELETE FROM tenants WHERE name = $1",
    };
    for (const char* sql : kFinal) {
      REDRIVE_RETURN_IF_ERROR(c.Exec(sql, Params().Text(tenant)).status());
    }
    return Status::Ok();
  }));
  return DeleteTenantOutcome::kDeleted;
}

// Two statements in autocommit: the INSERT either stores `candidate` or, on a conflict, waits
// for the other node's row to commit; the SELECT (a fresh snapshot) then reads the winner.
Result<std::string> PgStore::TenantSecret(const std::string& tenant, const std::string& name,
                                          const std::string& candidate) {
  std::string secret;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) -> Status {
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("INSERT INTO tenant_secrets(tenant, name, secret) VALUES($1, $2, $3) "
               "ON CONFLICT (tenant, name) DO NOTHING",
               Params().Text(tenant).Text(name).Text(candidate))
            .status());
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT secret FROM tenant_secrets WHERE tenant = $1 AND name = $2",
                       Params().Text(tenant).Text(name)));
    if (!r.empty()) secret = r.Text(0, 0);
    return Status::Ok();
  }));
  return secret;
}

// ---------------------------------------------------------------- tokens

Status PgStore::CreateToken(const TokenRecord& t) {
  return pool_.Run([&](PgConn& c) { return c.Exec(kInsertToken, TokenParams(t)).status(); });
}

Result<std::optional<TokenRecord>> PgStore::FindTokenByHash(const std::string& secret_hash) {
  std::optional<TokenRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("SELECT " TOKEN_COLUMNS " FROM tokens WHERE secret_hash = $1",
                                    Params().Text(secret_hash)));
    if (!r.empty()) out = ReadToken(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<TokenRecord>> PgStore::ListTokens(const std::string& tenant) {
  std::vector<TokenRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " TOKEN_COLUMNS
                       " FROM tokens WHERE tenant = $1 ORDER BY created_at, id COLLATE \"C\"",
                       Params().Text(tenant)));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadToken(r, i));
    return Status::Ok();
  }));
  return out;
}

Result<bool> PgStore::RevokeToken(const std::string& tenant, const std::string& id, TimeMs at) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("UPDATE tokens SET revoked_at = $3 WHERE tenant = $1 AND id = $2 AND "
                       "revoked_at = 0",
                       Params().Text(tenant).Text(id).Int(at)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<bool> PgStore::RotateToken(const std::string& tenant, const std::string& id,
                                  const TokenRecord& replacement, TimeMs old_expires_at,
                                  TimeMs now) {
  bool rotated = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    rotated = false;
    // Locked: a concurrent revocation or rotation of the same token comes before or after.
    REDRIVE_ASSIGN_OR_RETURN(
        Rows find, c.Exec("SELECT expires_at FROM tokens WHERE tenant = $1 AND id = $2 AND "
                          "revoked_at = 0 AND (expires_at = 0 OR expires_at > $3) FOR UPDATE",
                          Params().Text(tenant).Text(id).Int(now)));
    if (find.empty()) return Status::Ok();
    const TimeMs current = find.Int(0, 0);
    const TimeMs expires = current == 0 ? old_expires_at : std::min(current, old_expires_at);
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("UPDATE tokens SET expires_at = $2, replaced_by = $3 WHERE id = $1",
               Params().Text(id).Int(expires).Text(replacement.id))
            .status());
    REDRIVE_RETURN_IF_ERROR(c.Exec(kInsertToken, TokenParams(replacement)).status());
    rotated = true;
    return Status::Ok();
  }));
  return rotated;
}

// The active operator tokens are locked (FOR UPDATE) before they are counted: two nodes
// revoking the last two at once take turns, and the second, which re-reads the rows the first
// changed, finds its token the last one.
Result<RevokeOutcome> PgStore::RevokeOperatorToken(const std::string& id, TimeMs at) {
  RevokeOutcome outcome = RevokeOutcome::kNotActive;
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    outcome = RevokeOutcome::kNotActive;
    REDRIVE_ASSIGN_OR_RETURN(Rows active,
                             c.Exec("SELECT id, expires_at FROM tokens WHERE tenant = '' AND "
                                    "revoked_at = 0 ORDER BY id COLLATE \"C\" FOR UPDATE"));
    bool found = false, self_active = false;
    int64_t others = 0;
    for (int i = 0; i < active.size(); ++i) {
      const TimeMs expires = active.Int(i, 1);
      const bool live = expires == 0 || expires > at;
      if (active.Text(i, 0) == id) {
        found = true;
        self_active = live;
      } else if (live) {
        ++others;
      }
    }
    if (!found) return Status::Ok();
    if (self_active && others == 0) {
      outcome = RevokeOutcome::kLastActive;
      return Status::Ok();
    }
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("UPDATE tokens SET revoked_at = $2 WHERE tenant = '' AND id = $1",
               Params().Text(id).Int(at))
            .status());
    outcome = RevokeOutcome::kRevoked;
    return Status::Ok();
  }));
  return outcome;
}

// One statement for the batch; an id given twice counts with its latest time (an UPDATE ...
// FROM touches a row once, with whichever match comes first).
Status PgStore::TouchTokens(const std::vector<std::pair<std::string, TimeMs>>& last_used) {
  if (last_used.empty()) return Status::Ok();
  std::vector<std::string> ids;
  std::vector<int64_t> times;
  ids.reserve(last_used.size());
  times.reserve(last_used.size());
  for (const auto& [id, at] : last_used) {
    ids.push_back(id);
    times.push_back(at);
  }
  return pool_.Tx([&](PgConn& c) {
    return c
        .Exec(
            "UPDATE tokens t SET last_used_at = GREATEST(t.last_used_at, u.at) "
            "FROM (SELECT id, max(at) AS at FROM unnest($1::text[], $2::bigint[]) AS x(id, at) "
            "GROUP BY id) u WHERE t.id = u.id",
            Params().TextArray(ids).IntArray(times))
        .status();
  });
}

// ---------------------------------------------------------------- queues

Result<bool> PgStore::DeleteQueue(int64_t queue_id) {
  bool deleted = false;
  std::string tenant;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("DELETE FROM queues WHERE id = $1 RETURNING tenant",
                                            Params().Int(queue_id)));
    deleted = !r.empty();
    if (deleted) tenant = r.Text(0, 0);
    return Status::Ok();
  }));
  if (!deleted) return false;
  // A topic's events, in bounded transactions too (none for other queues); their deliveries go
  // with them (ON DELETE CASCADE).
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) {
      REDRIVE_ASSIGN_OR_RETURN(
          Rows r, c.Exec("DELETE FROM topic_events WHERE seq IN (SELECT seq FROM topic_events "
                         "WHERE tenant = $1 AND topic_id = $2 LIMIT 1000)",
                         Params().Text(tenant).Int(queue_id)));
      n = r.affected();
      return Status::Ok();
    }));
    if (n == 0) break;
  }
  // The queue is gone at once; its messages go in bounded transactions, so that deleting a
  // queue of millions neither holds locks on all of them nor one giant transaction.
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
      REDRIVE_ASSIGN_OR_RETURN(
          Rows r, c.Exec("DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE "
                         "queue_id = $1 LIMIT 10000)",
                         Params().Int(queue_id)));
      n = r.affected();
      if (n > 0) return Status::Ok();
      REDRIVE_RETURN_IF_ERROR(
          c.Exec("DELETE FROM queue_usage WHERE queue_id = $1", Params().Int(queue_id)).status());
      return c.Exec("DELETE FROM idempotency WHERE queue_id = $1", Params().Int(queue_id)).status();
    }));
    if (n == 0) break;
  }
  return true;
}

}  // namespace redrive::store::postgres
