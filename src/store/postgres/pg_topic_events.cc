// PgStore, topic events: the record of each message published to a topic and of where each
// subscription's copy is (message_store.h, "topic events"; the tables: pg_schema.cc).
#include <algorithm>
#include <unordered_map>

#include "store/codec.h"
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {
namespace {

#define PG_EVENT_COLUMNS \
  "seq, tenant, topic_id, id, published_at, retain_until, idem_key, attributes"

TopicEventRecord ReadEvent(const Rows& r, int i) {
  TopicEventRecord e;
  e.seq = r.Int(i, 0);
  e.tenant = r.Text(i, 1);
  e.topic_id = r.Int(i, 2);
  e.id = r.Text(i, 3);
  e.published_at = r.Int(i, 4);
  e.retain_until = r.Int(i, 5);
  e.idempotency_key = r.Text(i, 6);
  e.attributes = DecodeAttributes(r.Text(i, 7));
  return e;
}

// The deliveries of `rows`' events, each appended to its row, by subscription name (byte
// order, as SQLite).
Status ReadDeliveries(PgConn& c, const std::string& tenant, std::vector<TopicEventRow>& rows) {
  if (rows.empty()) return Status::Ok();
  std::unordered_map<int64_t, size_t> row_of;
  std::vector<int64_t> seqs;
  for (size_t i = 0; i < rows.size(); ++i) {
    seqs.push_back(rows[i].event.seq);
    row_of.emplace(rows[i].event.seq, i);
  }
  // The copy is live when its message is still there (its id too: the seq names the message
  // it was, which a redrive or reroute may since have replaced), a dead letter when one has
  // its id.
  REDRIVE_ASSIGN_OR_RETURN(
      Rows r, c.Exec("SELECT d.event_seq, d.subscription, d.delivered_at, d.redeliveries, "
                     "m.seq IS NOT NULL, m.state, m.queue_id, m.delivery_count, m.visible_at, "
                     "dl.seq IS NOT NULL, dl.reason, dl.dead_lettered_at "
                     "FROM topic_deliveries d "
                     "LEFT JOIN messages m ON m.seq = d.msg_seq AND m.id = d.copy_id "
                     "LEFT JOIN dead_letters dl ON dl.tenant = $1 AND dl.id = d.copy_id "
                     "WHERE d.event_seq = ANY($2::bigint[]) "
                     "ORDER BY d.event_seq, d.subscription COLLATE \"C\"",
                     Params().Text(tenant).IntArray(seqs)));
  for (int i = 0; i < r.size(); ++i) {
    TopicDeliveryFacts f;
    f.subscription = r.Text(i, 1);
    f.delivered_at = r.Int(i, 2);
    f.redeliveries = static_cast<int32_t>(r.Int(i, 3));
    f.live = r.Bool(i, 4);
    if (f.live) {
      f.leased = r.Int(i, 5) == 1;
      f.queue_id = r.Int(i, 6);
      f.delivery_count = static_cast<int32_t>(r.Int(i, 7));
      f.visible_at = r.Int(i, 8);
    }
    f.dead_lettered = r.Bool(i, 9);
    if (f.dead_lettered) {
      f.dead_letter_reason = r.Text(i, 10);
      f.dead_lettered_at = r.Int(i, 11);
    }
    auto at = row_of.find(r.Int(i, 0));
    if (at != row_of.end()) rows[at->second].deliveries.push_back(std::move(f));
  }
  return Status::Ok();
}

}  // namespace

Status RecordTopicEvents(PgConn& c, const std::vector<TopicEventWrite>& events,
                         const std::vector<PublishResult>& results) {
  // The events to record and their fresh copies, then two statements for all of them: the
  // events (their seqs drawn in order), then the deliveries.
  std::vector<const TopicEventWrite*> recorded;
  std::vector<std::vector<const PublishOutcome*>> fresh;
  for (const TopicEventWrite& w : events) {
    std::vector<const PublishOutcome*> copies;
    for (const auto& cp : w.copies) {
      if (cp.request >= results.size() || cp.slot >= results[cp.request].outcomes.size()) {
        return Status(ErrorCode::kInternal, "topic event: a copy outside its requests");
      }
      const PublishOutcome& o = results[cp.request].outcomes[cp.slot];
      copies.push_back(o.duplicate ? nullptr : &o);
    }
    bool any = w.copies.empty();
    for (const auto* o : copies) any = any || o != nullptr;
    if (!any) continue;  // a repeat of a message already recorded
    recorded.push_back(&w);
    fresh.push_back(std::move(copies));
  }
  if (recorded.empty()) return Status::Ok();
  std::vector<std::string> tenants, ids, keys, attributes;
  std::vector<int64_t> topics, published, retain;
  std::vector<std::string_view> bodies;
  for (const TopicEventWrite* w : recorded) {
    const TopicEventRecord& e = w->event;
    tenants.push_back(e.tenant);
    topics.push_back(e.topic_id);
    ids.push_back(e.id);
    published.push_back(e.published_at);
    retain.push_back(e.retain_until);
    keys.push_back(e.idempotency_key);
    attributes.push_back(EncodeAttributes(e.attributes));
    bodies.push_back(e.body);
  }
  REDRIVE_ASSIGN_OR_RETURN(
      Rows r,
      c.Exec("INSERT INTO topic_events(tenant, topic_id, id, published_at, retain_until, "
             "idem_key, attributes, body) SELECT u.tenant, u.topic_id, u.id, u.published_at, "
             "u.retain_until, u.idem_key, u.attributes, u.body FROM unnest($1::text[], "
             "$2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], "
             "$8::bytea[]) WITH ORDINALITY AS u(tenant, topic_id, id, published_at, "
             "retain_until, idem_key, attributes, body, ord) ORDER BY u.ord RETURNING seq",
             Params()
                 .TextArray(tenants)
                 .IntArray(topics)
                 .TextArray(ids)
                 .IntArray(published)
                 .IntArray(retain)
                 .TextArray(keys)
                 .TextArray(attributes)
                 .BytesArray(bodies)));
  std::vector<int64_t> event_seqs;
  for (int i = 0; i < r.size(); ++i) event_seqs.push_back(r.Int(i, 0));
  if (event_seqs.size() != recorded.size()) {
    return Status(ErrorCode::kInternal, "postgres: topic event: not stored");
  }
  std::sort(event_seqs.begin(), event_seqs.end());  // the k-th lowest is the k-th event
  std::vector<int64_t> d_events, d_msgs;
  std::vector<std::string> d_subs, d_copies;
  for (size_t k = 0; k < recorded.size(); ++k) {
    for (size_t i = 0; i < recorded[k]->copies.size(); ++i) {
      const PublishOutcome* o = fresh[k][i];
      if (o == nullptr) continue;
      d_events.push_back(event_seqs[k]);
      d_subs.push_back(recorded[k]->copies[i].subscription);
      d_copies.push_back(o->id);
      d_msgs.push_back(o->seq);
    }
  }
  if (d_events.empty()) return Status::Ok();
  return c
      .Exec(
          "INSERT INTO topic_deliveries(event_seq, subscription, copy_id, msg_seq) "
          "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])",
          Params().IntArray(d_events).TextArray(d_subs).TextArray(d_copies).IntArray(d_msgs))
      .status();
}

Result<std::vector<TopicEventRow>> PgStore::ListTopicEvents(const TopicEventQuery& q) {
  std::vector<TopicEventRow> out;
  // The cursor as an upper bound of the index range (tenant, topic_id, seq), walked backwards.
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_EVENT_COLUMNS ", octet_length(body) FROM topic_events "
                       "WHERE tenant = $1 AND topic_id = $2 AND seq < CASE WHEN $3::bigint = 0 "
                       "THEN 9223372036854775807 ELSE $3::bigint END AND published_at >= $4 "
                       "AND ($5::bigint = 0 OR published_at < $5::bigint) "
                       "ORDER BY seq DESC LIMIT $6",
                       Params()
                           .Text(q.tenant)
                           .Int(q.topic_id)
                           .Int(q.before_seq)
                           .Int(q.since)
                           .Int(q.until)
                           .Int(q.limit)));
    for (int i = 0; i < r.size(); ++i) {
      TopicEventRow row;
      row.event = ReadEvent(r, i);
      row.event.body_size = r.Int(i, 8);
      out.push_back(std::move(row));
    }
    return ReadDeliveries(c, q.tenant, out);
  }));
  return out;
}

Result<std::optional<TopicEventRow>> PgStore::GetTopicEvent(const std::string& tenant,
                                                            int64_t topic_id,
                                                            const std::string& id) {
  std::optional<TopicEventRow> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    out.reset();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_EVENT_COLUMNS ", body FROM topic_events WHERE tenant = $1 "
                       "AND id = $2 AND topic_id = $3 ORDER BY seq LIMIT 1",
                       Params().Text(tenant).Text(id).Int(topic_id)));
    if (r.empty()) return Status::Ok();
    std::vector<TopicEventRow> rows(1);
    rows[0].event = ReadEvent(r, 0);
    rows[0].event.body = r.Bytes(0, 8);
    rows[0].event.body_size = static_cast<int64_t>(rows[0].event.body.size());
    REDRIVE_RETURN_IF_ERROR(ReadDeliveries(c, tenant, rows));
    out = std::move(rows[0]);
    return Status::Ok();
  }));
  return out;
}

Result<RedeliverResult> PgStore::Redeliver(const RedeliverRequest& req) {
  RedeliverResult out;
  bool refused = false;
  Status st = pool_.Tx([&](PgConn& c) -> Status {
    out = RedeliverResult();
    refused = false;
    // The event's row, locked: two redeliveries of it (from two nodes) go one after the
    // other, so the second sees the first's copy live; and the sweeper cannot delete the
    // event (and its deliveries) under this one.
    {
      REDRIVE_ASSIGN_OR_RETURN(Rows e,
                               c.Exec("SELECT 1 FROM topic_events WHERE seq = $1 FOR NO KEY UPDATE",
                                      Params().Int(req.event_seq)));
      if (e.empty()) return Status::Ok();  // kGone
    }
    {
      REDRIVE_ASSIGN_OR_RETURN(
          Rows d,
          c.Exec("SELECT EXISTS (SELECT 1 FROM messages m WHERE m.seq = d.msg_seq AND "
                 "m.id = d.copy_id), EXISTS (SELECT 1 FROM dead_letters dl WHERE "
                 "dl.tenant = $3 AND dl.id = d.copy_id) FROM topic_deliveries d "
                 "WHERE d.event_seq = $1 AND d.subscription = $2",
                 Params().Int(req.event_seq).Text(req.subscription).Text(req.publish.tenant)));
      if (!d.empty()) {
        if (d.Bool(0, 0)) {
          out.outcome = RedeliverResult::Outcome::kLive;
          return Status::Ok();
        }
        if (d.Bool(0, 1)) {
          out.outcome = RedeliverResult::Outcome::kDeadLettered;
          return Status::Ok();
        }
      }
    }
    out.outcome = RedeliverResult::Outcome::kPublished;
    std::vector<PublishResult> results;
    REDRIVE_RETURN_IF_ERROR(PublishRequests(c, {&req.publish}, results, &refused));
    out.publish = std::move(results[0]);
    // Refused: rolled back (the key claims), nothing written.
    if (refused) return Status(ErrorCode::kQueueFull, "postgres: redelivery refused");
    if (out.publish.outcomes.size() != 1) return Status::Ok();
    const PublishOutcome& o = out.publish.outcomes[0];
    return c
        .Exec(
            "INSERT INTO topic_deliveries(event_seq, subscription, copy_id, msg_seq, "
            "redeliveries) VALUES($1, $2, $3, $4, 1) "
            "ON CONFLICT (event_seq, subscription) DO UPDATE SET "
            "copy_id = excluded.copy_id, msg_seq = excluded.msg_seq, delivered_at = 0, "
            "redeliveries = topic_deliveries.redeliveries + 1",
            Params().Int(req.event_seq).Text(req.subscription).Text(o.id).Int(o.seq))
        .status();
  });
  if (!refused) REDRIVE_RETURN_IF_ERROR(st);
  return out;
}

Result<int64_t> PgStore::DeleteExpiredTopicEvents(TimeMs now, int limit) {
  int64_t n = 0;
  // Their deliveries go with them (ON DELETE CASCADE). SKIP LOCKED: an event being
  // redelivered at this moment is left for the next pass.
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM topic_events WHERE seq IN (SELECT seq FROM topic_events "
                       "WHERE retain_until > 0 AND retain_until <= $1 ORDER BY retain_until "
                       "LIMIT $2 FOR UPDATE SKIP LOCKED)",
                       Params().Int(now).Int(limit)));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

}  // namespace redrive::store::postgres
