// PgStore, delivery outcomes, the audit log, redrive jobs and export jobs.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

Status PgStore::AddDeliveryOutcomes(const std::vector<DeliveryOutcomeRow>& rows) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<DeliveryOutcomeRow>> PgStore::ListDeliveryOutcomes(const std::string& tenant,
                                                                      const std::string& origin,
                                                                      TimeMs since, TimeMs until) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::DeleteDeliveryOutcomes(TimeMs before, int limit) { PG_NOT_IMPLEMENTED(); }

Status PgStore::AppendAudit(const AuditRecord& record) { PG_NOT_IMPLEMENTED(); }

Result<std::vector<AuditRecord>> PgStore::ListAudit(const std::string& tenant, int64_t after_seq,
                                                    int limit) {
  PG_NOT_IMPLEMENTED();
}

Status PgStore::CreateJob(const JobRecord& job) { PG_NOT_IMPLEMENTED(); }

Result<bool> PgStore::UpdateJob(const JobRecord& job, JobState expected_state) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<JobRecord>> PgStore::GetJob(const std::string& tenant, const std::string& id) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<JobRecord>> PgStore::ListJobs(const std::string& tenant) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::DeleteFinishedJobs(TimeMs before) { PG_NOT_IMPLEMENTED(); }

Status PgStore::CreateExport(const JobRecord& export_job) { PG_NOT_IMPLEMENTED(); }

Result<bool> PgStore::UpdateExport(const JobRecord& export_job, JobState expected_state) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<JobRecord>> PgStore::GetExport(const std::string& tenant,
                                                    const std::string& id) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<JobRecord>> PgStore::ListExports(const std::string& tenant) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<JobRecord>> PgStore::DeleteFinishedExports(TimeMs before) {
  PG_NOT_IMPLEMENTED();
}

}  // namespace redrive::store::postgres
