// PgStore, the MessageStore port: publish, lease, ack, settle, the sweeper's inputs, depths.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

Result<PublishResult> PgStore::Publish(const PublishRequest& request) { PG_NOT_IMPLEMENTED(); }

Result<std::vector<PublishResult>> PgStore::PublishMany(
    const std::vector<PublishRequest>& requests, const std::vector<TopicEventWrite>& events) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<MessageRecord>> PgStore::Lease(const LeaseRequest& request) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<MessageRecord>> PgStore::GetMessage(int64_t queue_id, int64_t seq) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<bool>> PgStore::Ack(int64_t queue_id, const std::vector<Receipt>& receipts) {
  PG_NOT_IMPLEMENTED();
}

Result<bool> PgStore::ExtendLease(int64_t queue_id, const Receipt& receipt, TimeMs now,
                                  TimeMs until) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<bool>> PgStore::SettleFailures(int64_t queue_id,
                                                  const std::vector<FailureAction>& actions) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<MessageRecord>> PgStore::ExpiredLeases(TimeMs now, int limit) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<MessageRecord>> PgStore::ExpiredMessages(TimeMs now, int limit) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<MessageRecord>> PgStore::DeleteRetained(TimeMs now, int limit) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::DeleteExpiredIdempotencyKeys(TimeMs now, int limit) {
  PG_NOT_IMPLEMENTED();
}

Result<QueueDepth> PgStore::GetDepth(int64_t queue_id, TimeMs now) { PG_NOT_IMPLEMENTED(); }

Result<std::vector<QueueDepthRow>> PgStore::AllDepths(TimeMs now) { PG_NOT_IMPLEMENTED(); }

}  // namespace redrive::store::postgres
