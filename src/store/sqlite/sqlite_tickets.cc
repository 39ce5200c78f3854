// SqliteStore, the ControlStore port: tickets and notification settings.
#include "store/sqlite/sqlite_store.h"

namespace redrive::store::sqlite {
namespace {

#define TICKET_COLUMNS \
  "id, tenant, state, created_at, updated_at, expires_at, closed_at, count, link_hash, data"

TicketRecord ReadTicket(Stmt& s) {
  TicketRecord t;
  t.id = s.Text(0);
  t.tenant = s.Text(1);
  t.state = s.Text(2);
  t.created_at = s.Int(3);
  t.updated_at = s.Int(4);
  t.expires_at = s.Int(5);
  t.closed_at = s.Int(6);
  t.count = s.Int(7);
  t.link_hash = s.Text(8);
  t.data_json = s.Text(9);
  return t;
}

#define SETTINGS_COLUMNS "tenant, config, last_digest_at, updated_at"

NotificationSettingsRecord ReadSettings(Stmt& s) {
  return NotificationSettingsRecord{s.Text(0), s.Text(1), s.Int(2), s.Int(3)};
}

}  // namespace

Result<int64_t> SqliteStore::OpenTicket(const TicketRecord& t, const DeadLetterSnapshot& snapshot) {
  REDRIVE_RETURN_IF_ERROR(
      snapshot.visible.empty()
          ? Status::Ok()
          : Status(ErrorCode::kInvalidArgument, "a dead-letter snapshot of another store"));
  int64_t count = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    count = 0;
    REDRIVE_ASSIGN_OR_RETURN(auto exists, db.Prepare("SELECT 1 FROM tickets WHERE id = ?1"));
    exists.Bind(1, t.id);
    if (exists.Step() == SQLITE_ROW) return Status(ErrorCode::kAlreadyExists, "ticket " + t.id);
    REDRIVE_RETURN_IF_ERROR(exists.Error());
    REDRIVE_ASSIGN_OR_RETURN(
        auto assign,
        db.Prepare("UPDATE dead_letters SET ticket = ?1 WHERE tenant = ?2 AND seq <= ?3 AND "
                   "(ticket = '' OR ticket NOT IN (SELECT id FROM tickets WHERE tenant = ?2 AND "
                   "state IN ('open', 'retrying')))"));
    assign.Bind(1, t.id).Bind(2, t.tenant).Bind(3, snapshot.max_seq);
    REDRIVE_RETURN_IF_ERROR(assign.Run());
    count = assign.Changes();
    if (count == 0) return Status::Ok();
    REDRIVE_ASSIGN_OR_RETURN(auto ins,
                             db.Prepare("INSERT INTO tickets(" TICKET_COLUMNS
                                        ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
    ins.Bind(1, t.id).Bind(2, t.tenant).Bind(3, t.state).Bind(4, t.created_at);
    ins.Bind(5, t.updated_at).Bind(6, t.expires_at).Bind(7, t.closed_at).Bind(8, count);
    ins.Bind(9, t.link_hash).Bind(10, t.data_json);
    return ins.Run();
  }));
  return count;
}

Result<bool> SqliteStore::UpdateTicket(const TicketRecord& t, const std::string& expected_state) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("UPDATE tickets SET state = ?3, updated_at = ?4, expires_at = ?5, "
                           "closed_at = ?6, link_hash = ?7, data = ?8 "
                           "WHERE id = ?1 AND tenant = ?2 AND state = ?9"));
    s.Bind(1, t.id).Bind(2, t.tenant).Bind(3, t.state).Bind(4, t.updated_at);
    s.Bind(5, t.expires_at).Bind(6, t.closed_at).Bind(7, t.link_hash).Bind(8, t.data_json);
    s.Bind(9, expected_state);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    changed = s.Changes() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::optional<TicketRecord>> SqliteStore::GetTicket(const std::string& tenant,
                                                           const std::string& id) {
  std::optional<TicketRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " TICKET_COLUMNS " FROM tickets WHERE tenant = ?1 AND id = ?2"));
    s.Bind(1, tenant).Bind(2, id);
    if (s.Step() == SQLITE_ROW) out = ReadTicket(s);
    return s.Error();
  }));
  return out;
}

Result<std::optional<TicketRecord>> SqliteStore::FindTicketByLink(const std::string& link_hash) {
  std::optional<TicketRecord> out;
  if (link_hash.empty()) return out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " TICKET_COLUMNS " FROM tickets WHERE link_hash <> '' AND "
                           "link_hash = ?1"));
    s.Bind(1, link_hash);
    if (s.Step() == SQLITE_ROW) out = ReadTicket(s);
    return s.Error();
  }));
  return out;
}

Result<std::vector<TicketRecord>> SqliteStore::ListTickets(const std::string& tenant) {
  std::vector<TicketRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("SELECT " TICKET_COLUMNS " FROM tickets WHERE tenant = ?1 "
                                        "ORDER BY created_at DESC, id DESC"));
    s.Bind(1, tenant);
    while (s.Step() == SQLITE_ROW) out.push_back(ReadTicket(s));
    return s.Error();
  }));
  return out;
}

Result<std::vector<TicketRecord>> SqliteStore::TicketsInState(const std::string& state,
                                                              TimeMs before, int limit) {
  std::vector<TicketRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " TICKET_COLUMNS " FROM tickets WHERE state = ?3 AND "
                           "expires_at <= ?1 ORDER BY expires_at LIMIT ?2"));
    s.Bind(1, before).Bind(2, int64_t{limit}).Bind(3, state);
    while (s.Step() == SQLITE_ROW) out.push_back(ReadTicket(s));
    return s.Error();
  }));
  return out;
}

Result<int64_t> SqliteStore::DeleteClosedTickets(TimeMs before) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("DELETE FROM tickets WHERE state NOT IN ('open', 'retrying') AND "
                           "closed_at > 0 AND closed_at < ?1"));
    s.Bind(1, before);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

Result<bool> SqliteStore::SetNotificationSettings(const NotificationSettingsRecord& r) {
  bool done = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    done = false;
    REDRIVE_ASSIGN_OR_RETURN(auto t,
                             db.Prepare("SELECT 1 FROM tenants WHERE name = ?1 AND deleting = 0"));
    t.Bind(1, r.tenant);
    if (t.Step() != SQLITE_ROW) return t.Error();
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("INSERT INTO notification_settings(" SETTINGS_COLUMNS
                           ") VALUES(?1, ?2, ?3, ?4) ON CONFLICT(tenant) DO UPDATE SET "
                           "config = excluded.config, updated_at = excluded.updated_at"));
    s.Bind(1, r.tenant).Bind(2, r.config_json).Bind(3, r.last_digest_at).Bind(4, r.updated_at);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    done = true;
    return Status::Ok();
  }));
  return done;
}

Result<std::optional<NotificationSettingsRecord>> SqliteStore::GetNotificationSettings(
    const std::string& tenant) {
  std::optional<NotificationSettingsRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT " SETTINGS_COLUMNS
                                                " FROM notification_settings WHERE tenant = ?1"));
    s.Bind(1, tenant);
    if (s.Step() == SQLITE_ROW) out = ReadSettings(s);
    return s.Error();
  }));
  return out;
}

Result<std::vector<NotificationSettingsRecord>> SqliteStore::ListNotificationSettings() {
  std::vector<NotificationSettingsRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " SETTINGS_COLUMNS " FROM notification_settings ORDER BY 1"));
    while (s.Step() == SQLITE_ROW) out.push_back(ReadSettings(s));
    return s.Error();
  }));
  return out;
}

Result<bool> SqliteStore::MarkDigest(const std::string& tenant, TimeMs previous, TimeMs at) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s,
                             db.Prepare("UPDATE notification_settings SET last_digest_at = ?3 "
                                        "WHERE tenant = ?1 AND last_digest_at = ?2"));
    s.Bind(1, tenant).Bind(2, previous).Bind(3, at);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    changed = s.Changes() == 1;
    return Status::Ok();
  }));
  return changed;
}

}  // namespace redrive::store::sqlite
