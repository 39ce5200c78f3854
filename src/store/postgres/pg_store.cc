// PgStore, what both ports share: open, schema, and the records every file reads (tenants,
// queues).
#include "store/postgres/pg_store.h"

#include "store/postgres/pg_internal.h"

namespace redrive::store::postgres {

QueueRecord ReadQueue(const Rows& r, int i) {
  QueueRecord q;
  q.id = r.Int(i, 0);
  q.tenant = r.Text(i, 1);
  q.name = r.Text(i, 2);
  q.kind = static_cast<QueueKind>(r.Int(i, 3));
  q.config_json = r.Text(i, 4);
  q.created_at = r.Int(i, 5);
  q.updated_at = r.Int(i, 6);
  return q;
}

TenantRecord ReadTenant(const Rows& r, int i) {
  return TenantRecord{r.Text(i, 0), r.Int(i, 1), r.Text(i, 2), r.Bool(i, 3)};
}

Result<std::unique_ptr<PgStore>> PgStore::Open(const std::string& conninfo, int pool_size) {
  std::unique_ptr<PgStore> store(new PgStore(conninfo, pool_size));
  REDRIVE_RETURN_IF_ERROR(store->Init());
  return store;
}

PgStore::~PgStore() = default;

Status PgStore::Init() {
  return pool_.Run([](PgConn& conn) { return MigrateSchema(conn); });
}

// ---------------------------------------------------------------- tenants

Status PgStore::CreateTenant(const TenantRecord& t) {
  return pool_.Run([&](PgConn& c) {
    return c
        .Exec("INSERT INTO tenants(name, created_at, quotas) VALUES($1, $2, $3)",
              Params().Text(t.name).Int(t.created_at).Text(t.quotas_json))
        .status();
  });
}

Result<std::optional<TenantRecord>> PgStore::GetTenant(const std::string& name) {
  std::optional<TenantRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("SELECT " PG_TENANT_COLUMNS " FROM tenants WHERE name = $1", Params().Text(name)));
    if (!r.empty()) out = ReadTenant(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<TenantRecord>> PgStore::ListTenants() {
  std::vector<TenantRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_TENANT_COLUMNS " FROM tenants ORDER BY name COLLATE \"C\""));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadTenant(r, i));
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------- queues

Result<int64_t> PgStore::CreateQueue(const QueueRecord& q) { return CreateQueueWithinQuota(q, 0); }

Result<int64_t> PgStore::CreateQueueWithinQuota(const QueueRecord& q, int64_t max_standard_queues) {
  int64_t id = 0;
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    if (q.kind == QueueKind::kStandard && max_standard_queues > 0) {
      // The tenant's row, locked: two nodes creating queues at once count one after the other.
      REDRIVE_RETURN_IF_ERROR(
          c.Exec("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE", Params().Text(q.tenant))
              .status());
      REDRIVE_ASSIGN_OR_RETURN(Rows n,
                               c.Exec("SELECT count(*) FROM queues WHERE tenant = $1 AND kind = 0",
                                      Params().Text(q.tenant)));
      if (n.Int(0, 0) >= max_standard_queues) {
        return Status(ErrorCode::kQuotaExceeded, "tenant " + q.tenant +
                                                     " is at its maxQueues quota of " +
                                                     std::to_string(max_standard_queues) + ": " +
                                                     std::to_string(n.Int(0, 0)) + " queues exist");
      }
    }
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("INSERT INTO queues(tenant, name, kind, config, created_at, updated_at) "
                       "VALUES($1, $2, $3, $4, $5, $6) RETURNING id",
                       Params()
                           .Text(q.tenant)
                           .Text(q.name)
                           .Int(static_cast<int64_t>(q.kind))
                           .Text(q.config_json)
                           .Int(q.created_at)
                           .Int(q.updated_at)));
    id = r.Int(0, 0);
    return Status::Ok();
  }));
  return id;
}

Result<bool> PgStore::UpdateQueue(const QueueRecord& q) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("UPDATE queues SET config = $2, updated_at = $3 WHERE id = $1",
                                    Params().Int(q.id).Text(q.config_json).Int(q.updated_at)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<QueueRecord>> PgStore::GetQueue(const std::string& tenant,
                                                     const std::string& name) {
  std::optional<QueueRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_QUEUE_COLUMNS " FROM queues WHERE tenant = $1 AND name = $2",
                       Params().Text(tenant).Text(name)));
    if (!r.empty()) out = ReadQueue(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::optional<QueueRecord>> PgStore::GetQueueById(int64_t id) {
  std::optional<QueueRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_QUEUE_COLUMNS " FROM queues WHERE id = $1", Params().Int(id)));
    if (!r.empty()) out = ReadQueue(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<QueueRecord>> PgStore::ListQueues(const std::string& tenant) {
  std::vector<QueueRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " PG_QUEUE_COLUMNS
                                            " FROM queues WHERE tenant = $1 ORDER BY name COLLATE "
                                            "\"C\"",
                                            Params().Text(tenant)));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadQueue(r, i));
    return Status::Ok();
  }));
  return out;
}

}  // namespace redrive::store::postgres
