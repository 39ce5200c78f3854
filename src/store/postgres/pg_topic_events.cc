// PgStore, topic events: listing, redelivery, expiry.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

Result<std::vector<TopicEventRow>> PgStore::ListTopicEvents(const TopicEventQuery& query) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<TopicEventRow>> PgStore::GetTopicEvent(const std::string& tenant,
                                                            int64_t topic_id,
                                                            const std::string& id) {
  PG_NOT_IMPLEMENTED();
}

Result<RedeliverResult> PgStore::Redeliver(const RedeliverRequest& request) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::DeleteExpiredTopicEvents(TimeMs now, int limit) { PG_NOT_IMPLEMENTED(); }

}  // namespace redrive::store::postgres
