// What PgStore's files share: row readers and column lists. Internal to the backend.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"

namespace redrive::store::postgres {

#define PG_QUEUE_COLUMNS "id, tenant, name, kind, config, created_at, updated_at"
QueueRecord ReadQueue(const Rows& rows, int row);

#define PG_TENANT_COLUMNS "name, created_at, quotas, deleting"

// The usage of tenant $1, as two columns (messages, bytes): its queues' messages and its dead
// letters, from the sharded counters (pg_schema.cc).
#define PG_TENANT_USAGE_SUMS                                                                 \
  "COALESCE((SELECT sum(u.msg_count) FROM queue_usage u JOIN queues q ON q.id = u.queue_id " \
  "WHERE q.tenant = $1), 0)::bigint + COALESCE((SELECT sum(dl_count) FROM tenant_usage "     \
  "WHERE tenant = $1), 0)::bigint, COALESCE((SELECT sum(u.msg_bytes) FROM queue_usage u "    \
  "JOIN queues q ON q.id = u.queue_id WHERE q.tenant = $1), 0)::bigint + "                   \
  "COALESCE((SELECT sum(dl_bytes) FROM tenant_usage WHERE tenant = $1), 0)::bigint"
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

// ---- messages (pg_messages.cc)

// Moves messages of `queue_id` to the dead letters with `death`, in one statement (a DELETE
// feeding an INSERT), inside the caller's transaction. A receipt with an empty lease token
// matches the message whatever its state; otherwise it must still be leased with that token.
// `journal` null keeps each message's stored journal. With death.redact, what it leaves of the
// body, attributes and journal is stored instead (read with the rows locked first), and the
// dead letters are marked redacted. Appends the (seq, id) of the messages moved, in seq order,
// to *moved (those not there, or not held, are left out). The caller locks the tenant's row
// first (SELECT ... FOR UPDATE) when it may also lock queue rows: the lock order of the backend
// is the tenant row, then queue rows by ascending id (the usage triggers update both).
Status MoveToDeadLetters(PgConn& c, int64_t queue_id, const std::vector<Receipt>& receipts,
                         const Journal* journal, const DeathInfo& death,
                         std::vector<std::pair<int64_t, std::string>>* moved);
// One message: sets *moved.
Status MoveToDeadLetter(PgConn& c, int64_t queue_id, const Receipt& receipt, const Journal* journal,
                        const DeathInfo& death, bool* moved);

// Publish's steps (message_store.h) for several requests inside the caller's transaction:
// claims the idempotency keys, takes the locks in the backend's order, then checks and stores
// each request in turn. On a refusal sets *refused and leaves only the refusing request's
// result filled (the others empty): the caller must then roll back, as the claims and any
// earlier request were written.
Status PublishRequests(PgConn& c, const std::vector<const PublishRequest*>& requests,
                       std::vector<PublishResult>& results, bool* refused);

// ---- topic events (pg_topic_events.cc)

// Records `events` after their requests' `results` (PublishMany), in the caller's transaction:
// an event whose copies were all duplicates is left out.
Status RecordTopicEvents(PgConn& c, const std::vector<TopicEventWrite>& events,
                         const std::vector<PublishResult>& results);

}  // namespace redrive::store::postgres
