// SqliteStore, topic events: the record of each message published to a topic and of where
// each subscription's copy is (message_store.h, "topic events"; the tables: kSchema).
#include <unordered_map>

#include "store/codec.h"
#include "store/sqlite/sqlite_store.h"

namespace redrive::store::sqlite {
namespace {

#define EVENT_COLUMNS "seq, tenant, topic_id, id, published_at, retain_until, idem_key, attributes"

TopicEventRecord ReadEvent(Stmt& s) {
  TopicEventRecord e;
  e.seq = s.Int(0);
  e.tenant = s.Text(1);
  e.topic_id = s.Int(2);
  e.id = s.Text(3);
  e.published_at = s.Int(4);
  e.retain_until = s.Int(5);
  e.idempotency_key = s.Text(6);
  e.attributes = DecodeAttributes(s.Text(7));
  return e;
}

// The deliveries of `rows`' events, each appended to its row.
Status ReadDeliveries(Db& db, const std::string& tenant, std::vector<TopicEventRow>& rows) {
  if (rows.empty()) return Status::Ok();
  std::unordered_map<int64_t, size_t> row_of;
  std::string list = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) list += ',';
    list += std::to_string(rows[i].event.seq);
    row_of.emplace(rows[i].event.seq, i);
  }
  list += ']';
  // The copy is live when its message is still there (its id too: a seq may be given again
  // once the highest message is gone), a dead letter when one has its id.
  REDRIVE_ASSIGN_OR_RETURN(
      auto s, db.Prepare("SELECT d.event_seq, d.subscription, d.delivered_at, d.redeliveries, "
                         "m.seq IS NOT NULL, m.state, m.queue_id, m.delivery_count, m.visible_at, "
                         "dl.seq IS NOT NULL, dl.reason, dl.dead_lettered_at "
                         "FROM topic_deliveries d "
                         "LEFT JOIN messages m ON m.seq = d.msg_seq AND m.id = d.copy_id "
                         "LEFT JOIN dead_letters dl ON dl.tenant = ?1 AND dl.id = d.copy_id "
                         "WHERE d.event_seq IN (SELECT value FROM json_each(?2)) "
                         "ORDER BY d.event_seq, d.subscription"));
  s.Bind(1, tenant).Bind(2, list);
  while (s.Step() == SQLITE_ROW) {
    TopicDeliveryFacts f;
    f.subscription = s.Text(1);
    f.delivered_at = s.Int(2);
    f.redeliveries = static_cast<int32_t>(s.Int(3));
    f.live = s.Int(4) != 0;
    if (f.live) {
      f.leased = s.Int(5) == 1;
      f.queue_id = s.Int(6);
      f.delivery_count = static_cast<int32_t>(s.Int(7));
      f.visible_at = s.Int(8);
    }
    f.dead_lettered = s.Int(9) != 0;
    if (f.dead_lettered) {
      f.dead_letter_reason = s.Text(10);
      f.dead_lettered_at = s.Int(11);
    }
    auto at = row_of.find(s.Int(0));
    if (at != row_of.end()) rows[at->second].deliveries.push_back(std::move(f));
  }
  return s.Error();
}

}  // namespace

Status SqliteStore::RecordTopicEvents(Db& db, const std::vector<TopicEventWrite>& events,
                                      const std::vector<PublishResult>& results) {
  for (const TopicEventWrite& w : events) {
    std::vector<const PublishOutcome*> fresh;
    for (const auto& c : w.copies) {
      if (c.request >= results.size() || c.slot >= results[c.request].outcomes.size()) {
        return Status(ErrorCode::kInternal, "topic event: a copy outside its requests");
      }
      const PublishOutcome& o = results[c.request].outcomes[c.slot];
      fresh.push_back(o.duplicate ? nullptr : &o);
    }
    bool any = w.copies.empty();
    for (const auto* o : fresh) any = any || o != nullptr;
    if (!any) continue;  // a repeat of a message already recorded
    const TopicEventRecord& e = w.event;
    std::string attributes = EncodeAttributes(e.attributes);
    REDRIVE_ASSIGN_OR_RETURN(
        auto ins,
        db.Prepare("INSERT INTO topic_events(tenant, topic_id, id, published_at, retain_until, "
                   "idem_key, attributes, body) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    ins.Bind(1, e.tenant)
        .Bind(2, e.topic_id)
        .Bind(3, e.id)
        .Bind(4, e.published_at)
        .Bind(5, e.retain_until)
        .Bind(6, e.idempotency_key)
        .Bind(7, attributes)
        .BindBlob(8, e.body);
    REDRIVE_RETURN_IF_ERROR(ins.Run());
    int64_t event_seq = sqlite3_last_insert_rowid(db.raw());
    for (size_t i = 0; i < w.copies.size(); ++i) {
      if (fresh[i] == nullptr) continue;
      REDRIVE_ASSIGN_OR_RETURN(
          auto d, db.Prepare("INSERT INTO topic_deliveries(event_seq, subscription, copy_id, "
                             "msg_seq) VALUES(?1, ?2, ?3, ?4)"));
      d.Bind(1, event_seq)
          .Bind(2, w.copies[i].subscription)
          .Bind(3, fresh[i]->id)
          .Bind(4, fresh[i]->seq);
      REDRIVE_RETURN_IF_ERROR(d.Run());
    }
  }
  return Status::Ok();
}

Result<std::vector<TopicEventRow>> SqliteStore::ListTopicEvents(const TopicEventQuery& q) {
  std::vector<TopicEventRow> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " EVENT_COLUMNS ", length(CAST(body AS BLOB)) "
                           "FROM topic_events WHERE tenant = ?1 AND topic_id = ?2 "
                           "AND (?3 = 0 OR seq < ?3) AND published_at >= ?4 "
                           "AND (?5 = 0 OR published_at < ?5) ORDER BY seq DESC LIMIT ?6"));
    s.Bind(1, q.tenant)
        .Bind(2, q.topic_id)
        .Bind(3, q.before_seq)
        .Bind(4, q.since)
        .Bind(5, q.until)
        .Bind(6, int64_t{q.limit});
    while (s.Step() == SQLITE_ROW) {
      TopicEventRow row;
      row.event = ReadEvent(s);
      row.event.body_size = s.Int(8);
      out.push_back(std::move(row));
    }
    REDRIVE_RETURN_IF_ERROR(s.Error());
    return ReadDeliveries(db, q.tenant, out);
  }));
  return out;
}

Result<std::optional<TopicEventRow>> SqliteStore::GetTopicEvent(const std::string& tenant,
                                                                int64_t topic_id,
                                                                const std::string& id) {
  std::optional<TopicEventRow> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    out.reset();
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT " EVENT_COLUMNS ", body "
                                                "FROM topic_events WHERE tenant = ?1 AND id = ?2 "
                                                "AND topic_id = ?3"));
    s.Bind(1, tenant).Bind(2, id).Bind(3, topic_id);
    if (s.Step() != SQLITE_ROW) return s.Error();
    std::vector<TopicEventRow> rows(1);
    rows[0].event = ReadEvent(s);
    rows[0].event.body = s.Text(8);
    rows[0].event.body_size = static_cast<int64_t>(rows[0].event.body.size());
    REDRIVE_RETURN_IF_ERROR(ReadDeliveries(db, tenant, rows));
    out = std::move(rows[0]);
    return Status::Ok();
  }));
  return out;
}

Result<RedeliverResult> SqliteStore::Redeliver(const RedeliverRequest& req) {
  RedeliverResult out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out = RedeliverResult();
    {
      REDRIVE_ASSIGN_OR_RETURN(auto e, db.Prepare("SELECT 1 FROM topic_events WHERE seq = ?1"));
      e.Bind(1, req.event_seq);
      if (e.Step() != SQLITE_ROW) return e.Error();  // kGone
    }
    {
      REDRIVE_ASSIGN_OR_RETURN(
          auto d, db.Prepare("SELECT EXISTS (SELECT 1 FROM messages m WHERE m.seq = d.msg_seq AND "
                             "m.id = d.copy_id), EXISTS (SELECT 1 FROM dead_letters dl WHERE "
                             "dl.tenant = ?3 AND dl.id = d.copy_id) FROM topic_deliveries d "
                             "WHERE d.event_seq = ?1 AND d.subscription = ?2"));
      d.Bind(1, req.event_seq).Bind(2, req.subscription).Bind(3, req.publish.tenant);
      if (d.Step() == SQLITE_ROW) {
        if (d.Int(0) != 0) {
          out.outcome = RedeliverResult::Outcome::kLive;
          return Status::Ok();
        }
        if (d.Int(1) != 0) {
          out.outcome = RedeliverResult::Outcome::kDeadLettered;
          return Status::Ok();
        }
      }
      REDRIVE_RETURN_IF_ERROR(d.Error());
    }
    out.outcome = RedeliverResult::Outcome::kPublished;
    REDRIVE_RETURN_IF_ERROR(PublishIn(db, req.publish, out.publish));
    if (out.publish.refusal != PublishRefusal::kNone || out.publish.outcomes.size() != 1) {
      return Status::Ok();  // refused: nothing written
    }
    const PublishOutcome& o = out.publish.outcomes[0];
    REDRIVE_ASSIGN_OR_RETURN(
        auto u, db.Prepare("INSERT INTO topic_deliveries(event_seq, subscription, copy_id, "
                           "msg_seq, redeliveries) VALUES(?1, ?2, ?3, ?4, 1) "
                           "ON CONFLICT(event_seq, subscription) DO UPDATE SET "
                           "copy_id = excluded.copy_id, msg_seq = excluded.msg_seq, "
                           "delivered_at = 0, redeliveries = redeliveries + 1"));
    u.Bind(1, req.event_seq).Bind(2, req.subscription).Bind(3, o.id).Bind(4, o.seq);
    return u.Run();
  }));
  return out;
}

Result<int64_t> SqliteStore::DeleteExpiredTopicEvents(TimeMs now, int limit) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("DELETE FROM topic_events WHERE seq IN (SELECT seq FROM topic_events "
                           "WHERE retain_until > 0 AND retain_until <= ?1 LIMIT ?2)"));
    s.Bind(1, now).Bind(2, int64_t{limit});
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

}  // namespace redrive::store::sqlite
