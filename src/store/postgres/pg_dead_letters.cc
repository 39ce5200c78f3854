// PgStore, dead letters: reads, scans, snapshots, groups, statistics, delete, purge, redrive,
// retention.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

Result<std::optional<DeadLetterRecord>> PgStore::GetDeadLetter(const std::string& tenant,
                                                               const std::string& id) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<DeadLetterRecord>> PgStore::ScanDeadLetters(const DeadLetterScan& scan) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::CountDeadLetters(const DeadLetterScan& scan) { PG_NOT_IMPLEMENTED(); }

Result<DeadLetterSnapshot> PgStore::SnapshotDeadLetters(const std::string& tenant) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<FailureGroupRow>> PgStore::ListFailureGroups(const std::string& tenant,
                                                                const std::string& dlq) {
  PG_NOT_IMPLEMENTED();
}

Result<DeadLetterStats> PgStore::GetDeadLetterStats(const std::string& tenant,
                                                    const std::string& dlq,
                                                    const std::string& ticket) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<bool>> PgStore::DeleteDeadLetters(const std::string& tenant,
                                                     const std::vector<int64_t>& seqs) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::PurgeDeadLetters(const std::string& tenant, const std::string& dlq) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<RedriveOutcome>> PgStore::Redrive(const std::string& tenant,
                                                     const std::vector<RedriveItem>& items,
                                                     TimeMs now) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::DeleteRetainedDeadLetters(TimeMs now, int limit) { PG_NOT_IMPLEMENTED(); }

Result<int64_t> PgStore::MarkExported(const std::string& tenant, const std::vector<int64_t>& seqs,
                                      TimeMs at) {
  PG_NOT_IMPLEMENTED();
}

}  // namespace redrive::store::postgres
