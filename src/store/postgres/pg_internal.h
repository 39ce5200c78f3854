// What PgStore's files share: row readers and column lists. Internal to the backend.
#pragma once

#include <string>

#include "common/status.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"

namespace redrive::store::postgres {

#define PG_QUEUE_COLUMNS "id, tenant, name, kind, config, created_at, updated_at"
QueueRecord ReadQueue(const Rows& rows, int row);

#define PG_TENANT_COLUMNS "name, created_at, quotas, deleting"
TenantRecord ReadTenant(const Rows& rows, int row);

#define PG_DEAD_LETTER_COLUMNS                                                              \
  "seq, tenant, id, dlq, origin, reason, cause, body, attributes, idem_key, published_at, " \
  "dead_lettered_at, retain_until, delivery_count, first_delivered_at, last_delivered_at, " \
  "journal, group_id, signature, redrive_error, lineage, exported_at, ticket, redacted"
DeadLetterRecord ReadDeadLetter(const Rows& rows, int row);

// Snapshots of the dead letters (SnapshotDeadLetters): kInvalidArgument for one this backend
// did not make (its `visible` is not a pg_snapshot's text, or is missing though max_seq > 0).
Status CheckDeadLetterSnapshot(const DeadLetterSnapshot& snapshot);
// The test that a dead letter is in a snapshot (max_seq > 0), for a WHERE clause; `seq` and `vis`
// are the placeholders of max_seq and visible ("$3"): committed before it was taken.
std::string InDeadLetterSnapshot(const std::string& seq, const std::string& vis);

// For methods not written yet: kInternal naming the method.
#define PG_NOT_IMPLEMENTED() \
  return Status(ErrorCode::kInternal, std::string("postgres: not implemented: ") + __func__)

}  // namespace redrive::store::postgres
