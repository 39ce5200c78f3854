// PgStore, dead letters: reads, scans, snapshots, groups, statistics, delete, purge, redrive,
// retention.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "store/codec.h"
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {

DeadLetterRecord ReadDeadLetter(const Rows& r, int i) {
  DeadLetterRecord d;
  d.seq = r.Int(i, 0);
  d.tenant = r.Text(i, 1);
  d.id = r.Text(i, 2);
  d.dlq = r.Text(i, 3);
  d.origin = r.Text(i, 4);
  d.reason = r.Text(i, 5);
  d.cause = r.Text(i, 6);
  d.body = r.Bytes(i, 7);
  d.attributes = DecodeAttributes(r.Text(i, 8));
  d.idempotency_key = r.Text(i, 9);
  d.published_at = r.Int(i, 10);
  d.dead_lettered_at = r.Int(i, 11);
  d.retain_until = r.Int(i, 12);
  d.delivery_count = static_cast<int32_t>(r.Int(i, 13));
  d.first_delivered_at = r.Int(i, 14);
  d.last_delivered_at = r.Int(i, 15);
  d.journal = DecodeJournal(r.Text(i, 16));
  d.group_id = r.Text(i, 17);
  d.signature = r.Text(i, 18);
  d.redrive_error = r.Text(i, 19);
  d.lineage = DecodeLineage(r.Text(i, 20));
  d.exported_at = r.Int(i, 21);
  d.ticket = r.Text(i, 22);
  d.redacted = r.Bool(i, 23);
  return d;
}

namespace {

// A decimal xid8 as pg_snapshot's text has it: digits only, no overflow.
bool ParseXid(std::string_view& s, uint64_t* v) {
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, *v);
  if (ec != std::errc() || p == s.data()) return false;  // unsigned: no sign accepted
  s.remove_prefix(static_cast<size_t>(p - s.data()));
  return true;
}

// Whether `s` is the text of a pg_snapshot ("xmin:xmax:xip,xip,..."), checked as strictly as
// PostgreSQL's own input function (xmin valid, xmin <= xmax, the xips ascending in
// [xmin, xmax)), so that the cast in a scan never fails on what passes here.
bool IsPgSnapshot(std::string_view s) {
  uint64_t xmin = 0, xmax = 0;
  if (!ParseXid(s, &xmin) || s.empty() || s[0] != ':') return false;
  s.remove_prefix(1);
  if (!ParseXid(s, &xmax) || s.empty() || s[0] != ':') return false;
  s.remove_prefix(1);
  if (xmin == 0 || xmax < xmin) return false;
  uint64_t last = 0;
  while (!s.empty()) {
    uint64_t xip = 0;
    if (!ParseXid(s, &xip) || xip < xmin || xip >= xmax || xip < last) return false;
    last = xip;
    if (s.empty()) break;
    if (s[0] != ',' || s.size() == 1) return false;
    s.remove_prefix(1);
  }
  return true;
}

}  // namespace

Status CheckDeadLetterSnapshot(const DeadLetterSnapshot& snapshot) {
  // An empty `visible` is a snapshot only with max_seq = 0 (none, no bound): with a bound it is
  // another backend's (SQLite's), whose seq alone says nothing of commit order here.
  const bool ours =
      snapshot.visible.empty() ? snapshot.max_seq == 0 : IsPgSnapshot(snapshot.visible);
  if (ours) return Status::Ok();
  return Status(ErrorCode::kInvalidArgument, "a dead-letter snapshot of another store");
}

// Committed before the snapshot: its transaction (xid) is visible in the snapshot's
// pg_snapshot, whatever its seq; and no seq above max_seq (the dead letters that were there).
std::string InDeadLetterSnapshot(const std::string& seq, const std::string& vis) {
  return "seq <= " + seq + " AND pg_visible_in_snapshot(xid::text::xid8, " + vis + "::pg_snapshot)";
}

Result<std::optional<DeadLetterRecord>> PgStore::GetDeadLetter(const std::string& tenant,
                                                               const std::string& id) {
  std::optional<DeadLetterRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " PG_DEAD_LETTER_COLUMNS
                                            " FROM dead_letters WHERE tenant = $1 AND id = $2",
                                            Params().Text(tenant).Text(id)));
    if (!r.empty()) out = ReadDeadLetter(r, 0);
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------- workbench

namespace {

// WHERE clause and parameters for a DeadLetterScan; the SQL text varies only by which filters
// are present, so the statement cache (ExecText) stays small.
struct ScanSql {
  std::string where;
  Params params;
  int n = 0;  // placeholders used
  std::string Next() { return "$" + std::to_string(++n); }
};

ScanSql BuildScan(const DeadLetterScan& s) {
  ScanSql q;
  auto text = [&](const char* col, const std::string& v) {
    q.where += std::string(" AND ") + col + " = " + q.Next();
    q.params.Text(v);
  };
  auto num = [&](const char* cond, int64_t v) {
    q.where += std::string(" AND ") + cond + q.Next();
    q.params.Int(v);
  };
  text("tenant", s.tenant);
  if (!s.dlq.empty()) text("dlq", s.dlq);
  if (!s.origin.empty()) text("origin", s.origin);
  if (!s.reason.empty()) text("reason", s.reason);
  if (!s.group_id.empty()) text("group_id", s.group_id);
  if (s.since > 0) num("dead_lettered_at >= ", s.since);
  if (s.until > 0) num("dead_lettered_at < ", s.until);
  if (s.snapshot.max_seq > 0) {
    const std::string seq = q.Next();
    const std::string vis = q.Next();
    q.where += " AND " + InDeadLetterSnapshot(seq, vis);
    q.params.Int(s.snapshot.max_seq).Text(s.snapshot.visible);
  }
  if (s.unexported) q.where += " AND exported_at = 0";
  if (!s.ticket.empty()) {
    // The literal lets the partial index dead_letters_by_ticket serve the scan.
    q.where += " AND ticket <> '' AND ticket = " + q.Next();
    q.params.Text(s.ticket);
  }
  if (s.redacted_only) q.where += " AND redacted";
  if (!s.redriven_by.empty()) {
    // Lineage is a JSON text; its serialized key and value, as a plain substring (no LIKE
    // wildcards), is exact for these ids, which hold no quote.
    q.where += " AND strpos(lineage, " + q.Next() + ") > 0";
    q.params.Text("\"lastRedrivenBy\":\"" + s.redriven_by + "\"");
  }
  q.where = q.where.substr(5);  // drop the first " AND "
  return q;
}

}  // namespace

Result<std::vector<DeadLetterRecord>> PgStore::ScanDeadLetters(const DeadLetterScan& scan) {
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterSnapshot(scan.snapshot));
  std::vector<DeadLetterRecord> out;
  ScanSql q = BuildScan(scan);
  std::string sql = "SELECT " PG_DEAD_LETTER_COLUMNS " FROM dead_letters WHERE " + q.where +
                    " AND seq > " + q.Next();
  sql += " ORDER BY seq LIMIT " + q.Next();
  q.params.Int(scan.after_seq).Int(int64_t{scan.limit});
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.ExecText(sql, q.params));
    out.clear();
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadDeadLetter(r, i));
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> PgStore::CountDeadLetters(const DeadLetterScan& scan) {
  REDRIVE_RETURN_IF_ERROR(CheckDeadLetterSnapshot(scan.snapshot));
  int64_t n = 0;
  ScanSql q = BuildScan(scan);
  const std::string sql = "SELECT count(*) FROM dead_letters WHERE " + q.where;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.ExecText(sql, q.params));
    n = r.Int(0, 0);
    return Status::Ok();
  }));
  return n;
}

// Both parts in one statement, so from one MVCC snapshot: pg_current_snapshot() is the
// statement's own, so MAX(seq) is the highest seq of exactly the dead letters it sees. Seq
// order is not commit order here (a transaction that drew a lower seq may commit later), which
// is why a scan also tests each row's inserting transaction against `visible`.
Result<DeadLetterSnapshot> PgStore::SnapshotDeadLetters(const std::string& tenant) {
  DeadLetterSnapshot snapshot;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("SELECT COALESCE(MAX(seq), 0), pg_current_snapshot()::text "
                                    "FROM dead_letters WHERE tenant = $1",
                                    Params().Text(tenant)));
    snapshot.max_seq = r.Int(0, 0);
    snapshot.visible = r.Text(0, 1);
    return Status::Ok();
  }));
  return snapshot;
}

Result<std::vector<FailureGroupRow>> PgStore::ListFailureGroups(const std::string& tenant,
                                                                const std::string& dlq) {
  std::vector<FailureGroupRow> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    // The groups and their first five ids (by seq) in one statement: a row per sample. Text
    // orders and maxima are by bytes (COLLATE "C"), as in SQLite.
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("WITH g AS (SELECT group_id, MAX(signature COLLATE \"C\") AS signature, "
               "MAX(origin COLLATE \"C\") AS origin, MAX(reason COLLATE \"C\") AS reason, "
               "count(*) AS n, MIN(dead_lettered_at) AS first_seen, "
               "MAX(dead_lettered_at) AS last_seen FROM dead_letters "
               "WHERE tenant = $1 AND ($2 = '' OR dlq = $2) GROUP BY group_id "
               "ORDER BY count(*) DESC, group_id COLLATE \"C\" LIMIT 1000) "
               "SELECT g.group_id, g.signature, g.origin, g.reason, g.n, g.first_seen, "
               "g.last_seen, s.id FROM g CROSS JOIN LATERAL (SELECT id, seq FROM dead_letters d "
               "WHERE d.tenant = $1 AND d.group_id = g.group_id AND ($2 = '' OR d.dlq = $2) "
               "ORDER BY seq LIMIT 5) s ORDER BY g.n DESC, g.group_id COLLATE \"C\", s.seq",
               Params().Text(tenant).Text(dlq)));
    out.clear();
    for (int i = 0; i < r.size(); ++i) {
      if (out.empty() || out.back().group_id != r.View(i, 0)) {
        FailureGroupRow g;
        g.group_id = r.Text(i, 0);
        g.signature = r.Text(i, 1);
        g.origin = r.Text(i, 2);
        g.reason = r.Text(i, 3);
        g.count = r.Int(i, 4);
        g.first_seen = r.Int(i, 5);
        g.last_seen = r.Int(i, 6);
        out.push_back(std::move(g));
      }
      out.back().sample_ids.push_back(r.Text(i, 7));
    }
    return Status::Ok();
  }));
  return out;
}

Result<DeadLetterStats> PgStore::GetDeadLetterStats(const std::string& tenant,
                                                    const std::string& dlq,
                                                    const std::string& ticket) {
  DeadLetterStats stats;
  // Every count in one statement (one scan, one MVCC snapshot): a grouping set per list, and
  // the empty one for the total and the oldest and newest. `part` says which list a row is of.
  static constexpr const char* kSelect =
      "SELECT CASE WHEN GROUPING(origin) = 0 THEN 0 WHEN GROUPING(reason) = 0 THEN 1 "
      "WHEN GROUPING(group_id) = 0 THEN 2 WHEN GROUPING(hour) = 0 THEN 3 ELSE 4 END AS part, "
      "COALESCE(origin, reason, group_id, (hour * 3600000)::text, ''), count(*), "
      "MIN(dead_lettered_at), MAX(dead_lettered_at), hour FROM (SELECT origin, reason, "
      "group_id, dead_lettered_at, dead_lettered_at / 3600000 AS hour FROM dead_letters "
      "WHERE tenant = $1 AND ($2 = '' OR dlq = $2)";
  static constexpr const char* kGroup =
      ") d GROUP BY GROUPING SETS ((origin), (reason), (group_id), (hour), ())";
  // The literal lets the partial index dead_letters_by_ticket serve a ticket's statistics.
  static const std::string kAll = std::string(kSelect) + kGroup;
  static const std::string kTicket =
      std::string(kSelect) + " AND ticket <> '' AND ticket = $3" + kGroup;
  Params params;
  params.Text(tenant).Text(dlq);
  if (!ticket.empty()) params.Text(ticket);
  struct Hour {
    int64_t hour;
    CountRow row;
  };
  std::vector<Hour> hours;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.ExecText(ticket.empty() ? kAll : kTicket, params));
    stats = DeadLetterStats{};
    hours.clear();
    for (int i = 0; i < r.size(); ++i) {
      CountRow row{r.Text(i, 1), r.Int(i, 2)};
      switch (r.Int(i, 0)) {
        case 0:
          stats.by_origin.push_back(std::move(row));
          break;
        case 1:
          stats.by_reason.push_back(std::move(row));
          break;
        case 2:
          stats.by_group.push_back(std::move(row));
          break;
        case 3:
          hours.push_back({r.Int(i, 5), std::move(row)});
          break;
        default:
          stats.total = r.Int(i, 2);
          stats.oldest = r.Int(i, 3);  // NULL (none) reads 0
          stats.newest = r.Int(i, 4);
      }
    }
    return Status::Ok();
  }));
  // Largest first, ties by key in byte order (std::string compares as unsigned bytes, as
  // COLLATE "C" and SQLite do); hours in time order.
  auto largest_first = [](std::vector<CountRow>& rows) {
    std::sort(rows.begin(), rows.end(), [](const CountRow& a, const CountRow& b) {
      return a.count != b.count ? a.count > b.count : a.key < b.key;
    });
  };
  largest_first(stats.by_origin);
  largest_first(stats.by_reason);
  largest_first(stats.by_group);
  if (stats.by_group.size() > 1000) stats.by_group.resize(1000);
  std::sort(hours.begin(), hours.end(),
            [](const Hour& a, const Hour& b) { return a.hour < b.hour; });
  for (auto& h : hours) stats.by_hour.push_back(std::move(h.row));
  return stats;
}

Result<std::vector<bool>> PgStore::DeleteDeadLetters(const std::string& tenant,
                                                     const std::vector<int64_t>& seqs) {
  std::vector<bool> out(seqs.size(), false);
  if (seqs.empty()) return out;
  std::unordered_set<int64_t> deleted;
  REDRIVE_RETURN_IF_ERROR(pool_.RunRetrying([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM dead_letters WHERE tenant = $1 AND seq = ANY($2::bigint[]) "
                       "RETURNING seq",
                       Params().Text(tenant).IntArray(seqs)));
    deleted.clear();
    for (int i = 0; i < r.size(); ++i) deleted.insert(r.Int(i, 0));
    return Status::Ok();
  }));
  // A seq named twice was deleted by its first mention; the second finds it gone.
  for (size_t i = 0; i < seqs.size(); ++i) out[i] = deleted.erase(seqs[i]) == 1;
  return out;
}

Result<int64_t> PgStore::PurgeDeadLetters(const std::string& tenant, const std::string& dlq) {
  // In bounded transactions: a purge of millions must hold neither giant locks nor a giant
  // transaction.
  int64_t total = 0;
  for (;;) {
    int64_t n = 0;
    REDRIVE_RETURN_IF_ERROR(pool_.RunRetrying([&](PgConn& c) {
      REDRIVE_ASSIGN_OR_RETURN(
          Rows r, c.Exec("DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters "
                         "WHERE tenant = $1 AND dlq = $2 LIMIT 10000)",
                         Params().Text(tenant).Text(dlq)));
      n = r.affected();
      return Status::Ok();
    }));
    total += n;
    if (n == 0) return total;
  }
}

Result<std::vector<RedriveOutcome>> PgStore::Redrive(const std::string& tenant,
                                                     const std::vector<RedriveItem>& items,
                                                     TimeMs now) {
  std::vector<RedriveOutcome> out;
  if (items.empty()) return out;
  std::vector<int64_t> seqs, dests;
  for (const auto& it : items) {
    seqs.push_back(it.dead_letter_seq);
    if (it.max_length > 0) dests.push_back(it.dest_queue_id);
  }
  std::sort(dests.begin(), dests.end());
  dests.erase(std::unique(dests.begin(), dests.end()), dests.end());
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    out.assign(items.size(), RedriveOutcome::kGone);
    // The dead letters, locked: a concurrent redrive or delete of one of them (another node)
    // waits, then finds it gone, so none is ever moved twice.
    REDRIVE_ASSIGN_OR_RETURN(Rows dl,
                             c.Exec("SELECT seq, body_size FROM dead_letters WHERE tenant = $1 AND "
                                    "seq = ANY($2::bigint[]) ORDER BY seq FOR UPDATE",
                                    Params().Text(tenant).IntArray(seqs)));
    std::unordered_map<int64_t, int64_t> body_size;  // seq -> bytes, of those still there
    for (int i = 0; i < dl.size(); ++i) body_size[dl.Int(i, 0)] = dl.Int(i, 1);
    if (body_size.empty()) return Status::Ok();  // all kGone
    // Then the backend's lock order (pg_messages.cc): the tenant's row (the usage triggers
    // update it when the dead letters go), then the destinations' rows by ascending id.
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE", Params().Text(tenant)).status());
    // Destinations with a max length: their rows locked, so that no other node fills them
    // meanwhile; msg_count is kept by the triggers. Moves of this call count as they are
    // decided.
    std::unordered_map<int64_t, int64_t> depth;  // destination -> messages
    if (!dests.empty()) {
      REDRIVE_RETURN_IF_ERROR(c.Exec("SELECT id FROM queues WHERE id = ANY($1::bigint[]) "
                                     "ORDER BY id FOR UPDATE",
                                     Params().IntArray(dests))
                                  .status());
      // A statement after the locks, so its snapshot holds what they waited for: the shards
      // of each destination's count (pg_schema.cc).
      REDRIVE_ASSIGN_OR_RETURN(Rows q,
                               c.Exec("SELECT queue_id, sum(msg_count)::bigint FROM queue_usage "
                                      "WHERE queue_id = ANY($1::bigint[]) GROUP BY queue_id",
                                      Params().IntArray(dests)));
      for (int64_t d : dests) depth[d] = 0;  // a queue gone meanwhile counts as empty
      for (int i = 0; i < q.size(); ++i) depth[q.Int(i, 0)] = q.Int(i, 1);
    }
    // Decided in item order, as SQLite applies them one by one.
    std::map<int64_t, std::string> refusals;  // seq -> redrive_error (the last one stands)
    std::vector<int64_t> moved_seqs, moved_dest, moved_visible, moved_expires, moved_retain;
    std::vector<std::string> moved_lineage;
    for (size_t i = 0; i < items.size(); ++i) {
      const RedriveItem& it = items[i];
      auto found = body_size.find(it.dead_letter_seq);
      if (found == body_size.end()) continue;  // kGone (or moved by an earlier item)
      std::string refusal;
      if (it.max_message_size > 0 && found->second > it.max_message_size) {
        out[i] = RedriveOutcome::kTooLarge;
        refusal = "too-large: " + std::to_string(found->second) +
                  " bytes exceed the maxMessageSize " + std::to_string(it.max_message_size) +
                  " of " + it.dest_name;
      } else if (it.max_length > 0 && depth[it.dest_queue_id] >= it.max_length) {
        out[i] = RedriveOutcome::kFull;
        refusal = "overflow: " + it.dest_name + " is at its max length of " +
                  std::to_string(it.max_length);
      }
      if (!refusal.empty()) {
        refusals[it.dead_letter_seq] = std::move(refusal);
        continue;
      }
      out[i] = RedriveOutcome::kMoved;
      refusals.erase(it.dead_letter_seq);  // moved after all: nothing to record on it
      body_size.erase(found);
      auto d = depth.find(it.dest_queue_id);
      if (d != depth.end()) ++d->second;
      moved_seqs.push_back(it.dead_letter_seq);
      moved_dest.push_back(it.dest_queue_id);
      moved_visible.push_back(it.visible_at);
      moved_expires.push_back(it.expires_at);
      moved_retain.push_back(it.retain_until);
      moved_lineage.push_back(EncodeLineage(it.lineage));
    }
    if (!refusals.empty()) {
      std::vector<int64_t> rs;
      std::vector<std::string> errors;
      for (auto& [seq, error] : refusals) {
        rs.push_back(seq);
        errors.push_back(error);
      }
      REDRIVE_RETURN_IF_ERROR(c.Exec("UPDATE dead_letters d SET redrive_error = u.error FROM "
                                     "unnest($2::bigint[], $3::text[]) AS u(seq, error) "
                                     "WHERE d.tenant = $1 AND d.seq = u.seq",
                                     Params().Text(tenant).IntArray(rs).TextArray(errors))
                                  .status());
    }
    if (moved_seqs.empty()) return Status::Ok();
    // The messages, in item order (so their seqs follow it), fresh (delivery count 0, not
    // leased) and keeping id, body, attributes, key, first publish time and journal. A topic's
    // copy: the redriven message is its copy now (message_store.h), in the same statement.
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("WITH ins AS (INSERT INTO messages(id, queue_id, state, visible_at, expires_at, "
               "retain_until, delivery_count, lease_token, consumer, first_delivered_at, "
               "last_delivered_at, published_at, enqueued_at, idem_key, attributes, journal, "
               "body, lineage) SELECT d.id, u.queue_id, 0, u.visible_at, u.expires_at, "
               "u.retain_until, 0, '', '', 0, 0, d.published_at, $2, d.idem_key, d.attributes, "
               "d.journal, d.body, u.lineage FROM unnest($3::bigint[], $4::bigint[], "
               "$5::bigint[], $6::bigint[], $7::bigint[], $8::text[]) WITH ORDINALITY AS "
               "u(seq, queue_id, visible_at, expires_at, retain_until, lineage, ord) "
               "JOIN dead_letters d ON d.tenant = $1 AND d.seq = u.seq ORDER BY u.ord "
               "RETURNING seq, id) "
               "UPDATE topic_deliveries t SET msg_seq = ins.seq, delivered_at = 0 FROM ins "
               "WHERE strpos(ins.id, ':') > 0 AND t.copy_id = ins.id",
               Params()
                   .Text(tenant)
                   .Int(now)
                   .IntArray(moved_seqs)
                   .IntArray(moved_dest)
                   .IntArray(moved_visible)
                   .IntArray(moved_expires)
                   .IntArray(moved_retain)
                   .TextArray(moved_lineage))
            .status());
    return c
        .Exec("DELETE FROM dead_letters WHERE tenant = $1 AND seq = ANY($2::bigint[])",
              Params().Text(tenant).IntArray(moved_seqs))
        .status();
  }));
  return out;
}

Result<int64_t> PgStore::DeleteRetainedDeadLetters(TimeMs now, int limit) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(pool_.RunRetrying([&](PgConn& c) {
    // SKIP LOCKED: the sweepers of several nodes take different rows rather than queue up.
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters "
                       "WHERE retain_until > 0 AND retain_until <= $1 ORDER BY retain_until "
                       "LIMIT $2 FOR UPDATE SKIP LOCKED)",
                       Params().Int(now).Int(int64_t{limit})));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

Result<int64_t> PgStore::MarkExported(const std::string& tenant, const std::vector<int64_t>& seqs,
                                      TimeMs at) {
  int64_t n = 0;
  if (seqs.empty()) return n;
  REDRIVE_RETURN_IF_ERROR(pool_.RunRetrying([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("UPDATE dead_letters SET exported_at = $3 WHERE tenant = $1 AND "
                       "seq = ANY($2::bigint[])",
                       Params().Text(tenant).IntArray(seqs).Int(at)));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

}  // namespace redrive::store::postgres
