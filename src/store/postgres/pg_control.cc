// PgStore, delivery outcomes, the audit log, redrive jobs and export jobs.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

// ---------------------------------------------------------------- delivery outcomes

// One statement for the batch. Rows repeating a key are summed first (ON CONFLICT cannot
// touch a row twice in one statement), and the keys go in key order, so that two nodes adding
// overlapping batches lock the rows in the same order.
Status PgStore::AddDeliveryOutcomes(const std::vector<DeliveryOutcomeRow>& rows) {
  if (rows.empty()) return Status::Ok();
  std::vector<std::string> tenants, origins;
  std::vector<int64_t> minutes, succeeded, failed, failed_tls;
  for (const auto& r : rows) {
    tenants.push_back(r.tenant);
    origins.push_back(r.origin);
    minutes.push_back(r.minute);
    succeeded.push_back(r.succeeded);
    failed.push_back(r.failed);
    failed_tls.push_back(r.failed_tls);
  }
  Params p;
  p.TextArray(tenants)
      .TextArray(origins)
      .IntArray(minutes)
      .IntArray(succeeded)
      .IntArray(failed)
      .IntArray(failed_tls);
  return pool_.Tx([&](PgConn& c) {
    return c
        .Exec(
            "INSERT INTO delivery_outcomes(tenant, origin, minute, succeeded, failed, "
            "failed_tls) "
            "SELECT tenant, origin, minute, sum(s)::bigint, sum(f)::bigint, sum(t)::bigint "
            "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], "
            "$6::bigint[]) AS x(tenant, origin, minute, s, f, t) "
            "GROUP BY tenant, origin, minute "
            "ORDER BY tenant COLLATE \"C\", origin COLLATE \"C\", minute "
            "ON CONFLICT (tenant, origin, minute) DO UPDATE SET "
            "succeeded = delivery_outcomes.succeeded + excluded.succeeded, "
            "failed = delivery_outcomes.failed + excluded.failed, "
            "failed_tls = delivery_outcomes.failed_tls + excluded.failed_tls",
            p)
        .status();
  });
}

Result<std::vector<DeliveryOutcomeRow>> PgStore::ListDeliveryOutcomes(const std::string& tenant,
                                                                      const std::string& origin,
                                                                      TimeMs since, TimeMs until) {
  std::vector<DeliveryOutcomeRow> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT minute, succeeded, failed, failed_tls FROM delivery_outcomes "
                       "WHERE tenant = $1 AND origin = $2 AND minute >= $3 AND minute < $4 "
                       "ORDER BY minute",
                       Params().Text(tenant).Text(origin).Int(since).Int(until)));
    for (int i = 0; i < r.size(); ++i) {
      out.push_back(
          DeliveryOutcomeRow{tenant, origin, r.Int(i, 0), r.Int(i, 1), r.Int(i, 2), r.Int(i, 3)});
    }
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> PgStore::DeleteDeliveryOutcomes(TimeMs before, int limit) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM delivery_outcomes WHERE (tenant, origin, minute) IN "
                       "(SELECT tenant, origin, minute FROM delivery_outcomes WHERE "
                       "minute < $1 ORDER BY minute LIMIT $2)",
                       Params().Int(before).Int(limit)));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

// ---------------------------------------------------------------- audit

Status PgStore::AppendAudit(const AuditRecord& r) {
  return pool_.Run([&](PgConn& c) {
    return c
        .Exec("INSERT INTO audit(tenant, at, actor, action, detail) VALUES($1, $2, $3, $4, $5)",
              Params().Text(r.tenant).Int(r.at).Text(r.actor).Text(r.action).Text(r.detail_json))
        .status();
  });
}

// In seq order. A seq is drawn at insert, so an entry whose transaction commits late may
// appear behind a cursor already past it; the audit log is read by people, page by page, and
// entries are written one per statement, so this is rare and harmless (nothing is lost).
Result<std::vector<AuditRecord>> PgStore::ListAudit(const std::string& tenant, int64_t after_seq,
                                                    int limit) {
  std::vector<AuditRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT seq, tenant, at, actor, action, detail "
                                            "FROM audit WHERE tenant = $1 AND seq > $2 "
                                            "ORDER BY seq LIMIT $3",
                                            Params().Text(tenant).Int(after_seq).Int(limit)));
    for (int i = 0; i < r.size(); ++i) {
      out.push_back(AuditRecord{r.Int(i, 0), r.Text(i, 1), r.Int(i, 2), r.Text(i, 3), r.Text(i, 4),
                                r.Text(i, 5)});
    }
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------- redrive jobs and exports

// Jobs and exports share their shape and their statements, but for the table; the literals
// are spelled out per table, since PgConn::Exec caches a statement by its literal's address.
namespace {

#define JOB_COLUMNS "id, tenant, scope, state, spec, progress, created_at, updated_at, finished_at"

// The state column holds the words of job_state.h. Errors: kInternal for any other.
Status ReadJob(const Rows& r, int i, JobRecord* j) {
  *j = JobRecord{r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), JobState::kRunning, r.Text(i, 4),
                 r.Text(i, 5), r.Int(i, 6),  r.Int(i, 7),  r.Int(i, 8)};
  std::string state = r.Text(i, 3);
  if (!FromString(state, &j->state)) {
    return Status(ErrorCode::kInternal, "job " + j->id + " has an unknown state '" + state + "'");
  }
  return Status::Ok();
}

Status ReadJobs(const Rows& r, std::vector<JobRecord>* out) {
  out->clear();
  for (int i = 0; i < r.size(); ++i) REDRIVE_RETURN_IF_ERROR(ReadJob(r, i, &out->emplace_back()));
  return Status::Ok();
}

Params InsertParams(const JobRecord& j) {
  return Params()
      .Text(j.id)
      .Text(j.tenant)
      .Text(j.scope)
      .Text(ToString(j.state))
      .Text(j.spec_json)
      .Text(j.progress_json)
      .Int(j.created_at)
      .Int(j.updated_at)
      .Int(j.finished_at);
}

Params UpdateParams(const JobRecord& j, JobState expected_state) {
  return Params()
      .Text(j.id)
      .Text(j.tenant)
      .Text(ToString(j.state))
      .Text(j.progress_json)
      .Int(j.updated_at)
      .Int(j.finished_at)
      .Text(ToString(expected_state));
}

}  // namespace

// kAlreadyExists (SQLSTATE 23505) for the id or, through the partial unique index
// jobs_active_scope, an active job of the same (tenant, scope).
Status PgStore::CreateJob(const JobRecord& j) {
  return pool_.Run([&](PgConn& c) {
    return c
        .Exec("INSERT INTO jobs(" JOB_COLUMNS ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
              InsertParams(j))
        .status();
  });
}

// One UPDATE, compare-and-set on the state: at READ COMMITTED a concurrent writer's change is
// re-checked against `state = $7` before this one applies, so exactly one of two wins.
Result<bool> PgStore::UpdateJob(const JobRecord& j, JobState expected_state) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("UPDATE jobs SET state = $3, progress = $4, updated_at = $5, "
                                    "finished_at = $6 WHERE id = $1 AND tenant = $2 AND state = $7",
                                    UpdateParams(j, expected_state)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<JobRecord>> PgStore::GetJob(const std::string& tenant, const std::string& id) {
  std::optional<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) -> Status {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " JOB_COLUMNS " FROM jobs WHERE tenant = $1 AND id = $2",
                       Params().Text(tenant).Text(id)));
    if (r.empty()) return Status::Ok();
    out.emplace();
    return ReadJob(r, 0, &*out);
  }));
  return out;
}

// Newest first; ties by id in byte order, as SQLite.
Result<std::vector<JobRecord>> PgStore::ListJobs(const std::string& tenant) {
  std::vector<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) -> Status {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " JOB_COLUMNS " FROM jobs WHERE ($1 = '' OR tenant = $1) "
                       "ORDER BY created_at DESC, id COLLATE \"C\" DESC LIMIT 1000",
                       Params().Text(tenant)));
    return ReadJobs(r, &out);
  }));
  return out;
}

Result<int64_t> PgStore::DeleteFinishedJobs(TimeMs before) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("DELETE FROM jobs WHERE finished_at > 0 AND finished_at < $1",
                                    Params().Int(before)));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

// kAlreadyExists for the id or, through the partial unique index exports_active, a second
// running export of the tenant.
Status PgStore::CreateExport(const JobRecord& j) {
  return pool_.Run([&](PgConn& c) {
    return c
        .Exec("INSERT INTO exports(" JOB_COLUMNS ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
              InsertParams(j))
        .status();
  });
}

Result<bool> PgStore::UpdateExport(const JobRecord& j, JobState expected_state) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("UPDATE exports SET state = $3, progress = $4, updated_at = $5, "
                       "finished_at = $6 WHERE id = $1 AND tenant = $2 AND state = $7",
                       UpdateParams(j, expected_state)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<JobRecord>> PgStore::GetExport(const std::string& tenant,
                                                    const std::string& id) {
  std::optional<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) -> Status {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " JOB_COLUMNS " FROM exports WHERE tenant = $1 AND id = $2",
                       Params().Text(tenant).Text(id)));
    if (r.empty()) return Status::Ok();
    out.emplace();
    return ReadJob(r, 0, &*out);
  }));
  return out;
}

Result<std::vector<JobRecord>> PgStore::ListExports(const std::string& tenant) {
  std::vector<JobRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) -> Status {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " JOB_COLUMNS " FROM exports WHERE ($1 = '' OR tenant = $1) "
                       "ORDER BY created_at DESC, id COLLATE \"C\" DESC LIMIT 1000",
                       Params().Text(tenant)));
    return ReadJobs(r, &out);
  }));
  return out;
}

Result<std::vector<JobRecord>> PgStore::DeleteFinishedExports(TimeMs before) {
  std::vector<JobRecord> out;
  // In a transaction: a row that cannot be read rolls the whole delete back, as in SQLite.
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("DELETE FROM exports WHERE finished_at > 0 AND created_at < $1 "
                                    "RETURNING " JOB_COLUMNS,
                                    Params().Int(before)));
    return ReadJobs(r, &out);
  }));
  return out;
}

}  // namespace redrive::store::postgres
