// PgStore, tickets and notification settings.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

Result<int64_t> PgStore::OpenTicket(const TicketRecord& ticket,
                                    const DeadLetterSnapshot& snapshot) {
  PG_NOT_IMPLEMENTED();
}

Result<bool> PgStore::UpdateTicket(const TicketRecord& ticket, const std::string& expected_state) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<TicketRecord>> PgStore::GetTicket(const std::string& tenant,
                                                       const std::string& id) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<TicketRecord>> PgStore::FindTicketByLink(const std::string& link_hash) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<TicketRecord>> PgStore::ListTickets(const std::string& tenant) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<TicketRecord>> PgStore::TicketsInState(const std::string& state, TimeMs before,
                                                          int limit) {
  PG_NOT_IMPLEMENTED();
}

Result<int64_t> PgStore::DeleteClosedTickets(TimeMs before) { PG_NOT_IMPLEMENTED(); }

Result<bool> PgStore::SetNotificationSettings(const NotificationSettingsRecord& settings) {
  PG_NOT_IMPLEMENTED();
}

Result<std::optional<NotificationSettingsRecord>> PgStore::GetNotificationSettings(
    const std::string& tenant) {
  PG_NOT_IMPLEMENTED();
}

Result<std::vector<NotificationSettingsRecord>> PgStore::ListNotificationSettings() {
  PG_NOT_IMPLEMENTED();
}

Result<bool> PgStore::MarkDigest(const std::string& tenant, TimeMs previous, TimeMs at) {
  PG_NOT_IMPLEMENTED();
}

}  // namespace redrive::store::postgres
