// PgStore, tickets and notification settings.
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {
namespace {

#define TICKET_COLUMNS \
  "id, tenant, state, created_at, updated_at, expires_at, closed_at, count, link_hash, data"

TicketRecord ReadTicket(const Rows& r, int i) {
  TicketRecord t;
  t.id = r.Text(i, 0);
  t.tenant = r.Text(i, 1);
  t.state = r.Text(i, 2);
  t.created_at = r.Int(i, 3);
  t.updated_at = r.Int(i, 4);
  t.expires_at = r.Int(i, 5);
  t.closed_at = r.Int(i, 6);
  t.count = r.Int(i, 7);
  t.link_hash = r.Text(i, 8);
  t.data_json = r.Text(i, 9);
  return t;
}

std::vector<TicketRecord> ReadTickets(const Rows& r) {
  std::vector<TicketRecord> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(ReadTicket(r, i));
  return out;
}

#define SETTINGS_COLUMNS "tenant, config, last_digest_at, updated_at"

NotificationSettingsRecord ReadSettings(const Rows& r, int i) {
  return NotificationSettingsRecord{r.Text(i, 0), r.Text(i, 1), r.Int(i, 2), r.Int(i, 3)};
}

}  // namespace

// Under a per-tenant advisory lock, so that two nodes opening tickets of one tenant at once
// take turns: the second one's UPDATE (READ COMMITTED: a snapshot taken after the lock) sees
// the first one's ticket and its dead letters, and leaves them. Without it, the second would
// wait on the first one's row locks and then re-check each row against a subquery of tickets
// read before the first committed, and take its dead letters too.
Result<int64_t> PgStore::OpenTicket(const TicketRecord& t, const DeadLetterSnapshot& snapshot) {
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterSnapshot(snapshot));
  // The snapshot test is pg_dead_letters.cc's, the same as its scans'; one text, so one
  // prepared statement per connection.
  static const std::string kAssign =
      "UPDATE dead_letters SET ticket = $1 WHERE tenant = $2 AND " +
      InDeadLetterSnapshot("$3", "$4") +
      " AND (ticket = '' OR ticket NOT IN (SELECT id FROM tickets WHERE tenant = $2 AND "
      "state IN ('open', 'retrying')))";
  int64_t count = 0;
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    count = 0;
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("SELECT pg_advisory_xact_lock(hashtext('tickets/' || $1))", Params().Text(t.tenant))
            .status());
    REDRIVE_ASSIGN_OR_RETURN(Rows exists,
                             c.Exec("SELECT 1 FROM tickets WHERE id = $1", Params().Text(t.id)));
    if (!exists.empty()) return Status(ErrorCode::kAlreadyExists, "ticket " + t.id);
    // max_seq = 0: the tenant had no dead letters (seq <= 0 in SQLite), so none to give.
    if (snapshot.max_seq == 0) return Status::Ok();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows assign,
        c.ExecText(
            kAssign,
            Params().Text(t.id).Text(t.tenant).Int(snapshot.max_seq).Text(snapshot.visible)));
    count = assign.affected();
    if (count == 0) return Status::Ok();
    return c
        .Exec("INSERT INTO tickets(" TICKET_COLUMNS
              ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
              Params()
                  .Text(t.id)
                  .Text(t.tenant)
                  .Text(t.state)
                  .Int(t.created_at)
                  .Int(t.updated_at)
                  .Int(t.expires_at)
                  .Int(t.closed_at)
                  .Int(count)
                  .Text(t.link_hash)
                  .Text(t.data_json))
        .status();
  }));
  return count;
}

// One UPDATE, compare-and-set on the state (see UpdateJob).
Result<bool> PgStore::UpdateTicket(const TicketRecord& t, const std::string& expected_state) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("UPDATE tickets SET state = $3, updated_at = $4, expires_at = $5, "
                       "closed_at = $6, link_hash = $7, data = $8 "
                       "WHERE id = $1 AND tenant = $2 AND state = $9",
                       Params()
                           .Text(t.id)
                           .Text(t.tenant)
                           .Text(t.state)
                           .Int(t.updated_at)
                           .Int(t.expires_at)
                           .Int(t.closed_at)
                           .Text(t.link_hash)
                           .Text(t.data_json)
                           .Text(expected_state)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<TicketRecord>> PgStore::GetTicket(const std::string& tenant,
                                                       const std::string& id) {
  std::optional<TicketRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " TICKET_COLUMNS " FROM tickets WHERE tenant = $1 AND id = $2",
                       Params().Text(tenant).Text(id)));
    if (!r.empty()) out = ReadTicket(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::optional<TicketRecord>> PgStore::FindTicketByLink(const std::string& link_hash) {
  std::optional<TicketRecord> out;
  if (link_hash.empty()) return out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    // The literal lets the partial index tickets_link serve it.
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " TICKET_COLUMNS " FROM tickets WHERE link_hash <> '' AND "
                       "link_hash = $1",
                       Params().Text(link_hash)));
    if (!r.empty()) out = ReadTicket(r, 0);
    return Status::Ok();
  }));
  return out;
}

// Newest first; ties by id in byte order, as SQLite.
Result<std::vector<TicketRecord>> PgStore::ListTickets(const std::string& tenant) {
  std::vector<TicketRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("SELECT " TICKET_COLUMNS " FROM tickets WHERE tenant = $1 "
                                    "ORDER BY created_at DESC, id COLLATE \"C\" DESC",
                                    Params().Text(tenant)));
    out = ReadTickets(r);
    return Status::Ok();
  }));
  return out;
}

// Soonest first; ties (which SQLite leaves in insertion order) by creation, then id.
Result<std::vector<TicketRecord>> PgStore::TicketsInState(const std::string& state, TimeMs before,
                                                          int limit) {
  std::vector<TicketRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " TICKET_COLUMNS " FROM tickets WHERE state = $1 AND "
                       "expires_at <= $2 ORDER BY expires_at, created_at, id COLLATE \"C\" "
                       "LIMIT $3",
                       Params().Text(state).Int(before).Int(limit)));
    out = ReadTickets(r);
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> PgStore::DeleteClosedTickets(TimeMs before) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM tickets WHERE state NOT IN ('open', 'retrying') AND "
                       "closed_at > 0 AND closed_at < $1",
                       Params().Int(before)));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

// The tenant's row is read FOR SHARE: a DeleteTenant marks it `deleting` (an UPDATE) before
// it deletes the settings, so either this commits first and its row is deleted with the
// tenant, or it waits, re-reads the row as marked, and writes nothing.
Result<bool> PgStore::SetNotificationSettings(const NotificationSettingsRecord& s) {
  bool done = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    done = false;
    REDRIVE_ASSIGN_OR_RETURN(
        Rows t, c.Exec("SELECT 1 FROM tenants WHERE name = $1 AND NOT deleting FOR SHARE",
                       Params().Text(s.tenant)));
    if (t.empty()) return Status::Ok();
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("INSERT INTO notification_settings(" SETTINGS_COLUMNS
               ") VALUES($1, $2, $3, $4) ON CONFLICT (tenant) DO UPDATE SET "
               "config = excluded.config, updated_at = excluded.updated_at",
               Params().Text(s.tenant).Text(s.config_json).Int(s.last_digest_at).Int(s.updated_at))
            .status());
    done = true;
    return Status::Ok();
  }));
  return done;
}

Result<std::optional<NotificationSettingsRecord>> PgStore::GetNotificationSettings(
    const std::string& tenant) {
  std::optional<NotificationSettingsRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " SETTINGS_COLUMNS " FROM notification_settings WHERE tenant = $1",
                       Params().Text(tenant)));
    if (!r.empty()) out = ReadSettings(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<NotificationSettingsRecord>> PgStore::ListNotificationSettings() {
  std::vector<NotificationSettingsRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " SETTINGS_COLUMNS
                                            " FROM notification_settings ORDER BY tenant COLLATE "
                                            "\"C\""));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadSettings(r, i));
    return Status::Ok();
  }));
  return out;
}

// One UPDATE, compare-and-set on last_digest_at: of several nodes, one runs the digest.
Result<bool> PgStore::MarkDigest(const std::string& tenant, TimeMs previous, TimeMs at) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("UPDATE notification_settings SET last_digest_at = $3 "
                                            "WHERE tenant = $1 AND last_digest_at = $2",
                                            Params().Text(tenant).Int(previous).Int(at)));
    changed = r.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

}  // namespace redrive::store::postgres
