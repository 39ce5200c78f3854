// PgStore, the MessageStore port: publish, lease, ack, settle, the sweeper's inputs, depths.
//
// Lock order, everywhere a transaction takes more than one of them: idempotency key rows
// (sorted), then the tenant's row (a publish under a tenant quota), then queue rows by
// ascending id (a length check, a reroute), then the usage counters' shard rows, which the
// triggers (pg_schema.cc) update as messages and dead letters come and go. Only a backend
// whose pid falls in the same shard takes the same counter row, so writers of one queue do
// not wait for each other; a rare deadlock between two of them is retried (Tx, RunRetrying).
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "store/codec.h"
#include "store/postgres/pg_internal.h"
#include "store/postgres/pg_store.h"

namespace redrive::store::postgres {
namespace {

#define PG_MESSAGE_COLUMNS                                                                    \
  "seq, id, queue_id, state, visible_at, expires_at, retain_until, delivery_count, "          \
  "lease_token, consumer, first_delivered_at, last_delivered_at, published_at, enqueued_at, " \
  "idem_key, attributes, journal, body, lineage"

MessageRecord ReadMessage(const Rows& r, int i) {
  MessageRecord m;
  m.seq = r.Int(i, 0);
  m.id = r.Text(i, 1);
  m.queue_id = r.Int(i, 2);
  m.leased = r.Int(i, 3) == 1;
  m.visible_at = r.Int(i, 4);
  m.expires_at = r.Int(i, 5);
  m.retain_until = r.Int(i, 6);
  m.delivery_count = static_cast<int32_t>(r.Int(i, 7));
  m.lease_token = r.Text(i, 8);
  m.consumer = r.Text(i, 9);
  m.first_delivered_at = r.Int(i, 10);
  m.last_delivered_at = r.Int(i, 11);
  m.published_at = r.Int(i, 12);
  m.enqueued_at = r.Int(i, 13);
  m.idempotency_key = r.Text(i, 14);
  m.attributes = DecodeAttributes(r.Text(i, 15));
  m.journal = DecodeJournal(r.Text(i, 16));
  m.body = r.Bytes(i, 17);
  m.lineage = DecodeLineage(r.Text(i, 18));
  return m;
}

// A refused publish returns this from its transaction, so that the transaction rolls back
// (its key claims, and the requests before it in a PublishMany); the caller answers with the
// refusal it recorded.
Status Refused() { return Status(ErrorCode::kQueueFull, "postgres: publish refused"); }

// Step 1 of Publish, for one request: which messages are duplicates, of what, and the fresh
// messages' count and bytes.
struct Claim {
  std::vector<bool> duplicate;
  std::vector<std::string> original;  // a duplicate's remembered message id
  int64_t fresh = 0;
  int64_t fresh_bytes = 0;
};

// Step 1 for every request at once: the fresh messages' keys are claimed before anything is
// checked, with INSERT ... ON CONFLICT DO UPDATE WHERE expired, whose RETURNING names the keys
// this transaction won. At READ COMMITTED that is what makes two nodes publishing one key at
// once store one message: the second's insert waits on the first's uncommitted row, then finds
// it (committed, unexpired: a duplicate) or not (rolled back: its own). A lookup of the keys
// before inserting them would let both see "not remembered". A refusal later rolls the claims
// back with everything else. The keys are inserted sorted, so publishers lock them in one
// order.
Status ClaimKeys(PgConn& c, const std::vector<const PublishRequest*>& reqs,
                 std::vector<Claim>& claims) {
  claims.assign(reqs.size(), Claim());
  struct Key {
    int64_t queue_id;
    const std::string* key;
    size_t req, slot;
  };
  std::vector<Key> pending;
  for (size_t r = 0; r < reqs.size(); ++r) {
    const PublishRequest& req = *reqs[r];
    claims[r].duplicate.assign(req.messages.size(), false);
    claims[r].original.assign(req.messages.size(), std::string());
    if (req.dedup_window <= 0) continue;
    for (size_t i = 0; i < req.messages.size(); ++i) {
      if (!req.messages[i].idempotency_key.empty()) {
        pending.push_back(Key{req.queue_id, &req.messages[i].idempotency_key, r, i});
      }
    }
  }
  std::sort(pending.begin(), pending.end(), [](const Key& a, const Key& b) {
    return a.queue_id != b.queue_id ? a.queue_id < b.queue_id : *a.key < *b.key;
  });
  // A key lost to another publisher is looked up; if the sweeper forgot it in between (its
  // clock ahead of this request's), it is claimed again.
  for (int attempt = 0; !pending.empty(); ++attempt) {
    if (attempt == 3) return Status(ErrorCode::kInternal, "postgres: idempotency keys churn");
    // Grouped by `now` (the expiry test's bound), in practice one group.
    std::map<TimeMs, std::vector<size_t>> by_now;
    for (size_t k = 0; k < pending.size(); ++k) by_now[reqs[pending[k].req]->now].push_back(k);
    std::set<std::pair<int64_t, std::string>> won;
    for (const auto& [now, keys] : by_now) {
      std::vector<int64_t> queue_ids, expires;
      std::vector<std::string> names, ids;
      for (size_t k : keys) {
        const Key& key = pending[k];
        const PublishRequest& req = *reqs[key.req];
        queue_ids.push_back(key.queue_id);
        names.push_back(*key.key);
        ids.push_back(req.messages[key.slot].id);
        expires.push_back(req.now + req.dedup_window);
      }
      REDRIVE_ASSIGN_OR_RETURN(
          Rows r,
          c.Exec("INSERT INTO idempotency(queue_id, key, message_id, expires_at) "
                 "SELECT u.q, u.k, u.id, u.e FROM unnest($1::bigint[], $2::text[], $3::text[], "
                 "$4::bigint[]) WITH ORDINALITY AS u(q, k, id, e, ord) ORDER BY u.ord "
                 "ON CONFLICT (queue_id, key) DO UPDATE SET message_id = excluded.message_id, "
                 "expires_at = excluded.expires_at WHERE idempotency.expires_at <= $5 "
                 "RETURNING queue_id, key",
                 Params().IntArray(queue_ids).TextArray(names).TextArray(ids).IntArray(expires).Int(
                     now)));
      for (int i = 0; i < r.size(); ++i) won.emplace(r.Int(i, 0), r.Text(i, 1));
    }
    std::vector<Key> lost;
    for (const Key& k : pending) {
      if (!won.count({k.queue_id, *k.key})) lost.push_back(k);
    }
    pending.clear();
    if (lost.empty()) break;
    std::vector<int64_t> queue_ids;
    std::vector<std::string> names;
    for (const Key& k : lost) {
      queue_ids.push_back(k.queue_id);
      names.push_back(*k.key);
    }
    REDRIVE_ASSIGN_OR_RETURN(Rows r,
                             c.Exec("SELECT i.queue_id, i.key, i.message_id FROM idempotency i "
                                    "JOIN unnest($1::bigint[], $2::text[]) AS u(q, k) "
                                    "ON i.queue_id = u.q AND i.key = u.k",
                                    Params().IntArray(queue_ids).TextArray(names)));
    std::map<std::pair<int64_t, std::string>, std::string> remembered;
    for (int i = 0; i < r.size(); ++i) remembered[{r.Int(i, 0), r.Text(i, 1)}] = r.Text(i, 2);
    for (const Key& k : lost) {
      auto at = remembered.find({k.queue_id, *k.key});
      if (at == remembered.end()) {
        pending.push_back(k);
        continue;
      }
      claims[k.req].duplicate[k.slot] = true;
      claims[k.req].original[k.slot] = at->second;
    }
  }
  for (size_t r = 0; r < reqs.size(); ++r) {
    for (size_t i = 0; i < reqs[r]->messages.size(); ++i) {
      if (claims[r].duplicate[i]) continue;
      ++claims[r].fresh;
      claims[r].fresh_bytes += static_cast<int64_t>(reqs[r]->messages[i].body.size());
    }
  }
  return Status::Ok();
}

// The locks a publish needs before its checks, in the backend's order: the tenant's row when a
// quota is checked (so that concurrent publishes of the tenant, on any node, count one
// another); with several queues, their rows by ascending id. A single queue's row is locked by step
// 4 itself.
Status LockForPublish(PgConn& c, const std::vector<const PublishRequest*>& reqs,
                      const std::vector<Claim>& claims) {
  std::set<std::string> tenants;
  std::vector<int64_t> queues;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (claims[i].fresh == 0) continue;  // step 2: nothing is checked
    const PublishRequest& r = *reqs[i];
    if (r.tenant_max_messages > 0 || r.tenant_max_bytes > 0) {
      tenants.insert(r.tenant);
    }
    queues.push_back(r.queue_id);
  }
  for (const std::string& t : tenants) {
    REDRIVE_RETURN_IF_ERROR(
        c.Exec("SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE", Params().Text(t)).status());
  }
  if (queues.size() > 1) {
    REDRIVE_RETURN_IF_ERROR(c.Exec("SELECT 1 FROM queues WHERE id = ANY($1::bigint[]) "
                                   "ORDER BY id FOR UPDATE",
                                   Params().IntArray(queues))
                                .status());
  }
  return Status::Ok();
}

// Steps 2 to 6 of Publish for one request, after ClaimKeys and LockForPublish. A refusal is
// set in `result` before this request writes anything.
Status PublishIn(PgConn& c, const PublishRequest& req, const Claim& claim, PublishResult& result) {
  result = PublishResult();
  auto refuse = [&](PublishRefusal why, int64_t stored, int64_t adding) {
    result.refusal = why;
    result.stored = stored;
    result.adding = adding;
    return Status::Ok();
  };
  const int64_t fresh = claim.fresh, fresh_bytes = claim.fresh_bytes;
  // 2. Nothing fresh: nothing to check or write.
  if (fresh > 0) {
    // 3. Tenant quotas: its row is locked (LockForPublish), so the usage read here stays true
    // until commit. A statement after the lock, so that its snapshot holds every commit the
    // lock waited for.
    if (req.tenant_max_messages > 0 || req.tenant_max_bytes > 0) {
      REDRIVE_ASSIGN_OR_RETURN(Rows u,
                               c.Exec("SELECT " PG_TENANT_USAGE_SUMS, Params().Text(req.tenant)));
      const int64_t messages = u.Int(0, 0), bytes = u.Int(0, 1);
      if (req.tenant_max_messages > 0 && messages + fresh > req.tenant_max_messages) {
        return refuse(PublishRefusal::kTenantMaxMessages, messages, fresh);
      }
      if (req.tenant_max_bytes > 0 && bytes + fresh_bytes > req.tenant_max_bytes) {
        return refuse(PublishRefusal::kTenantMaxBytes, bytes, fresh_bytes);
      }
    }
    // 4. Length: the queue's row locked, its counter read as of the lock (FOR UPDATE returns
    // the row's latest version), so concurrent publishes to the queue count one another.
    if (req.max_length > 0) {
      REDRIVE_RETURN_IF_ERROR(
          c.Exec("SELECT 1 FROM queues WHERE id = $1 FOR UPDATE", Params().Int(req.queue_id))
              .status());
      // A statement after the lock (its snapshot holds every commit the lock waited for): the
      // queue's shards summed. A concurrent ack's decrement not yet committed only makes it
      // larger, never smaller.
      REDRIVE_ASSIGN_OR_RETURN(Rows q,
                               c.Exec("SELECT COALESCE(sum(msg_count), 0)::bigint FROM queue_usage "
                                      "WHERE queue_id = $1",
                                      Params().Int(req.queue_id)));
      const int64_t depth = q.empty() ? 0 : q.Int(0, 0);
      int64_t excess = depth + fresh - req.max_length;
      if (excess > 0 && req.overflow == OverflowAction::kDeadLetterOldest &&
          fresh <= req.max_length) {
        // Locked (waiting for a lease in flight, then skipping a row it leased: LockRows sits
        // below the LIMIT), so the move below cannot miss.
        REDRIVE_ASSIGN_OR_RETURN(
            Rows oldest,
            c.Exec("SELECT seq FROM messages WHERE queue_id = $1 AND state = 0 ORDER BY seq "
                   "LIMIT $2 FOR UPDATE",
                   Params().Int(req.queue_id).Int(excess)));
        if (oldest.size() == excess) {
          std::vector<Receipt> victims;
          for (int i = 0; i < oldest.size(); ++i) victims.push_back(Receipt{oldest.Int(i, 0), ""});
          std::vector<std::pair<int64_t, std::string>> moved;
          REDRIVE_RETURN_IF_ERROR(
              MoveToDeadLetters(c, req.queue_id, victims, nullptr, req.overflow_death, &moved));
          if (static_cast<int64_t>(moved.size()) != excess) {
            return Status(ErrorCode::kInternal, "postgres: overflow: a victim vanished");
          }
          for (auto& [seq, id] : moved) result.evicted_ids.push_back(std::move(id));
          excess = 0;
        }
      }
      if (excess > 0) return refuse(PublishRefusal::kQueueFull, depth, fresh);
    }
  }

  // 5. The fresh messages, in one statement, in request order (seqs drawn in that order). The
  // keys were remembered by ClaimKeys; the usage counters grow by the trigger.
  std::vector<int64_t> seqs;
  if (fresh > 0) {
    std::vector<std::string> ids, keys, attributes, journals, lineages;
    std::vector<std::string_view> bodies;
    std::vector<int64_t> visible, expires, retain, count, first, last, published, enqueued;
    for (size_t i = 0; i < req.messages.size(); ++i) {
      if (claim.duplicate[i]) continue;
      const MessageRecord& m = req.messages[i];
      ids.push_back(m.id);
      visible.push_back(m.visible_at);
      expires.push_back(m.expires_at);
      retain.push_back(m.retain_until);
      count.push_back(m.delivery_count);
      first.push_back(m.first_delivered_at);
      last.push_back(m.last_delivered_at);
      published.push_back(m.published_at);
      enqueued.push_back(m.enqueued_at);
      keys.push_back(m.idempotency_key);
      attributes.push_back(EncodeAttributes(m.attributes));
      journals.push_back(EncodeJournal(m.journal));
      bodies.push_back(m.body);
      lineages.push_back(EncodeLineage(m.lineage));
    }
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("INSERT INTO messages(id, queue_id, state, visible_at, expires_at, retain_until, "
               "delivery_count, lease_token, consumer, first_delivered_at, last_delivered_at, "
               "published_at, enqueued_at, idem_key, attributes, journal, body, lineage) "
               "SELECT u.id, $1, 0, u.visible_at, u.expires_at, u.retain_until, u.delivery_count, "
               "'', '', u.first_delivered_at, u.last_delivered_at, u.published_at, "
               "u.enqueued_at, u.idem_key, u.attributes, u.journal, u.body, u.lineage "
               "FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::integer[], "
               "$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], "
               "$13::text[], $14::bytea[], $15::text[]) WITH ORDINALITY AS u(id, visible_at, "
               "expires_at, retain_until, delivery_count, first_delivered_at, "
               "last_delivered_at, published_at, enqueued_at, idem_key, attributes, journal, "
               "body, lineage, ord) ORDER BY u.ord RETURNING seq",
               Params()
                   .Int(req.queue_id)
                   .TextArray(ids)
                   .IntArray(visible)
                   .IntArray(expires)
                   .IntArray(retain)
                   .IntArray(count)
                   .IntArray(first)
                   .IntArray(last)
                   .IntArray(published)
                   .IntArray(enqueued)
                   .TextArray(keys)
                   .TextArray(attributes)
                   .TextArray(journals)
                   .BytesArray(bodies)
                   .TextArray(lineages)));
    for (int i = 0; i < r.size(); ++i) seqs.push_back(r.Int(i, 0));
    if (static_cast<int64_t>(seqs.size()) != fresh) {
      return Status(ErrorCode::kInternal, "postgres: publish: a message was not stored");
    }
    // The k-th lowest seq is the k-th fresh message: RETURNING's order is not promised.
    std::sort(seqs.begin(), seqs.end());
  }
  size_t next = 0;
  for (size_t i = 0; i < req.messages.size(); ++i) {
    if (claim.duplicate[i]) {
      result.outcomes.push_back(PublishOutcome{claim.original[i], true});
    } else {
      result.outcomes.push_back(PublishOutcome{req.messages[i].id, false, seqs[next++]});
    }
  }
  // 6. Dead on arrival: the fresh messages move to the dead letters at once.
  if (req.arrival_death && !seqs.empty()) {
    std::vector<Receipt> arrived;
    for (int64_t seq : seqs) arrived.push_back(Receipt{seq, ""});
    std::vector<std::pair<int64_t, std::string>> moved;
    REDRIVE_RETURN_IF_ERROR(
        MoveToDeadLetters(c, req.queue_id, arrived, nullptr, *req.arrival_death, &moved));
    if (moved.size() != arrived.size()) {
      return Status(ErrorCode::kInternal, "postgres: arrival death: a message vanished");
    }
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------- dead-lettering

Status MoveToDeadLetters(PgConn& c, int64_t queue_id, const std::vector<Receipt>& receipts,
                         const Journal* journal, const DeathInfo& death,
                         std::vector<std::pair<int64_t, std::string>>* moved) {
  if (receipts.empty()) return Status::Ok();
  std::vector<int64_t> seqs;
  std::vector<std::string> tokens, attributes, journals;
  std::vector<std::string> body_store;
  std::vector<std::string_view> bodies;
  for (const Receipt& r : receipts) {
    seqs.push_back(r.seq);
    tokens.push_back(r.lease_token);
  }
  const bool redacted = static_cast<bool>(death.redact);
  if (redacted) {
    // The engine's rule runs here, on the rows as they are, locked so that the move below
    // takes exactly what was redacted.
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT m.seq, m.body, m.attributes, m.journal FROM messages m "
                       "JOIN unnest($1::bigint[], $2::text[]) AS r(seq, token) ON m.seq = r.seq "
                       "WHERE m.queue_id = $3 AND (r.token = '' OR (m.state = 1 AND "
                       "m.lease_token = r.token)) ORDER BY m.seq FOR UPDATE OF m",
                       Params().IntArray(seqs).TextArray(tokens).Int(queue_id)));
    seqs.clear();
    tokens.clear();
    for (int i = 0; i < r.size(); ++i) {
      if (!seqs.empty() && seqs.back() == r.Int(i, 0)) continue;  // a receipt given twice
      std::string body = r.Bytes(i, 1);
      Attributes attrs = DecodeAttributes(r.Text(i, 2));
      Journal j = journal ? *journal : DecodeJournal(r.Text(i, 3));
      death.redact(body, attrs, j);
      seqs.push_back(r.Int(i, 0));
      tokens.push_back("");  // checked above, and locked since
      body_store.push_back(std::move(body));
      attributes.push_back(EncodeAttributes(attrs));
      journals.push_back(EncodeJournal(j));
    }
    if (seqs.empty()) return Status::Ok();
    for (const std::string& b : body_store) bodies.push_back(b);
  }
  // One statement: the DELETE's rows feed the INSERT (a data-modifying CTE runs whether or not
  // the outer query reads it), so a message is moved whole or not at all. The join with queues
  // gives the origin's name and tenant; the dead letters' seqs are drawn in message order.
  REDRIVE_ASSIGN_OR_RETURN(
      Rows r,
      c.Exec("WITH r AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], "
             "$5::text[]) AS r(seq, token, body, attributes, journal)), "
             "moved AS (DELETE FROM messages m USING r, queues q WHERE m.seq = ANY($1::bigint[]) "
             "AND m.seq = r.seq AND "
             "m.queue_id = $6 AND q.id = m.queue_id AND (r.token = '' OR (m.state = 1 AND "
             "m.lease_token = r.token)) RETURNING m.seq, m.id, m.body, m.attributes, m.idem_key, "
             "m.published_at, m.delivery_count, m.first_delivered_at, m.last_delivered_at, "
             "m.journal, m.lineage, q.tenant, q.name, r.body AS r_body, "
             "r.attributes AS r_attributes, r.journal AS r_journal), "
             "ins AS (INSERT INTO dead_letters(tenant, id, dlq, origin, reason, cause, body, "
             "attributes, idem_key, published_at, dead_lettered_at, retain_until, delivery_count, "
             "first_delivered_at, last_delivered_at, journal, group_id, signature, lineage, "
             "redacted) SELECT tenant, id, $7::text, name, $8::text, $9::text, "
             "CASE WHEN $14::boolean THEN r_body ELSE body END, "
             "CASE WHEN $14::boolean THEN r_attributes ELSE attributes END, idem_key, "
             "published_at, $10::bigint, $11::bigint, delivery_count, first_delivered_at, "
             "last_delivered_at, CASE WHEN $14::boolean THEN r_journal WHEN $15::boolean THEN "
             "$16::text ELSE journal END, $12::text, $13::text, lineage, $14::boolean "
             "FROM moved ORDER BY seq) "
             "SELECT seq, id FROM moved ORDER BY seq",
             Params()
                 .IntArray(seqs)
                 .TextArray(tokens)
                 .BytesArray(bodies)
                 .TextArray(attributes)
                 .TextArray(journals)
                 .Int(queue_id)
                 .Text(death.dlq)
                 .Text(death.reason)
                 .Text(death.cause)
                 .Int(death.at)
                 .Int(death.retain_until)
                 .Text(death.group_id)
                 .Text(death.signature)
                 .Bool(redacted)
                 .Bool(journal != nullptr)
                 .Text(journal && !redacted ? EncodeJournal(*journal) : std::string())));
  for (int i = 0; i < r.size(); ++i) moved->emplace_back(r.Int(i, 0), r.Text(i, 1));
  return Status::Ok();
}

Status MoveToDeadLetter(PgConn& c, int64_t queue_id, const Receipt& receipt, const Journal* journal,
                        const DeathInfo& death, bool* moved) {
  std::vector<std::pair<int64_t, std::string>> out;
  REDRIVE_RETURN_IF_ERROR(MoveToDeadLetters(c, queue_id, {receipt}, journal, death, &out));
  *moved = !out.empty();
  return Status::Ok();
}

// ---------------------------------------------------------------- messages

Status PublishRequests(PgConn& c, const std::vector<const PublishRequest*>& reqs,
                       std::vector<PublishResult>& results, bool* refused) {
  *refused = false;
  results.assign(reqs.size(), PublishResult());
  std::vector<Claim> claims;
  REDRIVE_RETURN_IF_ERROR(ClaimKeys(c, reqs, claims));
  REDRIVE_RETURN_IF_ERROR(LockForPublish(c, reqs, claims));
  for (size_t i = 0; i < reqs.size(); ++i) {
    REDRIVE_RETURN_IF_ERROR(PublishIn(c, *reqs[i], claims[i], results[i]));
    if (results[i].refusal != PublishRefusal::kNone) {
      *refused = true;
      PublishResult why = std::move(results[i]);
      results.assign(reqs.size(), PublishResult());
      results[i] = std::move(why);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Result<PublishResult> PgStore::Publish(const PublishRequest& req) {
  std::vector<PublishResult> results;
  bool refused = false;
  auto publish = [&](PgConn& c) {
    REDRIVE_RETURN_IF_ERROR(PublishRequests(c, {&req}, results, &refused));
    return refused ? Refused() : Status::Ok();
  };
  // The common publish (no key, limit or death) is the INSERT alone: one statement, atomic in
  // autocommit, which spares the round trips of BEGIN and COMMIT.
  bool keys = false;
  for (const auto& m : req.messages) keys = keys || !m.idempotency_key.empty();
  const bool one_statement = !(keys && req.dedup_window > 0) && req.tenant_max_messages == 0 &&
                             req.tenant_max_bytes == 0 && req.max_length == 0 && !req.arrival_death;
  Status st = one_statement ? pool_.RunRetrying(publish) : pool_.Tx(publish);
  if (!refused) REDRIVE_RETURN_IF_ERROR(st);
  return std::move(results[0]);
}

Result<std::vector<PublishResult>> PgStore::PublishMany(
    const std::vector<PublishRequest>& requests, const std::vector<TopicEventWrite>& events) {
  std::vector<const PublishRequest*> reqs;
  for (const auto& r : requests) reqs.push_back(&r);
  std::vector<PublishResult> results;
  bool refused = false;
  Status st = pool_.Tx([&](PgConn& c) {
    REDRIVE_RETURN_IF_ERROR(PublishRequests(c, reqs, results, &refused));
    if (refused) return Refused();
    return RecordTopicEvents(c, events, results);
  });
  if (!refused) REDRIVE_RETURN_IF_ERROR(st);
  return results;
}

Result<std::vector<MessageRecord>> PgStore::Lease(const LeaseRequest& req) {
  std::vector<MessageRecord> out;
  // `seq = ANY(…)` beside each join on seq below (and in Ack and MoveToDeadLetters): the
  // primary-key lookups of the batch's seqs. Without it the planner, which expects a handful
  // of rows from the CTE or unnest, hashed them and scanned every message of the queue to
  // probe them: 54 ms an ack with a backlog of 40,000 (pg_stat_statements), most of the
  // database's CPU in the end-to-end benchmark.
  // One statement, so autocommit: the ready messages in the order they became visible, then
  // in publish order (as SQLite, docs/api.md "Leases and receipts"), skipping those another
  // consumer is leasing at this moment (SKIP LOCKED: concurrent receives on one queue take
  // different messages instead of queueing behind each other). messages_ready is ordered so.
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("WITH picked(pseq, pvisible) AS (SELECT seq, visible_at FROM messages WHERE "
               "queue_id = $1 AND state = 0 AND visible_at <= $5 AND (expires_at = 0 OR "
               "expires_at > $5) ORDER BY visible_at, seq LIMIT $6 FOR UPDATE SKIP LOCKED), "
               "leased AS (UPDATE messages SET state = 1, visible_at = $2, lease_token = $3, "
               "consumer = $4, delivery_count = delivery_count + 1, last_delivered_at = $5, "
               "first_delivered_at = CASE WHEN first_delivered_at = 0 THEN $5 ELSE "
               "first_delivered_at END FROM picked WHERE "
               "seq = ANY(ARRAY(SELECT pseq FROM picked)) AND seq = picked.pseq "
               "RETURNING " PG_MESSAGE_COLUMNS ", picked.pvisible) "
               "SELECT " PG_MESSAGE_COLUMNS " FROM leased ORDER BY pvisible, seq",
               Params()
                   .Int(req.queue_id)
                   .Int(req.lease_until)
                   .Text(req.lease_token)
                   .Text(req.consumer)
                   .Int(req.now)
                   .Int(req.max_messages)));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadMessage(r, i));
    return Status::Ok();
  }));
  return out;
}

Result<std::optional<MessageRecord>> PgStore::GetMessage(int64_t queue_id, int64_t seq) {
  std::optional<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " PG_MESSAGE_COLUMNS
                                            " FROM messages WHERE seq = $1 AND queue_id = $2",
                                            Params().Int(seq).Int(queue_id)));
    if (!r.empty()) out = ReadMessage(r, 0);
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<bool>> PgStore::Ack(int64_t queue_id, const std::vector<Receipt>& receipts) {
  std::vector<bool> out;
  std::vector<int64_t> seqs;
  std::vector<std::string> tokens;
  for (const Receipt& r : receipts) {
    seqs.push_back(r.seq);
    tokens.push_back(r.lease_token);
  }
  // One statement for the batch, so autocommit: the messages held by their receipts are
  // deleted, and a topic's copies (only they have a ':' in their id: docs/design/
  // store-ports.md) marked delivered at the time of the delivery that succeeded.
  REDRIVE_RETURN_IF_ERROR(pool_.RunRetrying([&](PgConn& c) {
    out.assign(receipts.size(), false);
    if (receipts.empty()) return Status::Ok();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("WITH r AS (SELECT * FROM unnest($2::bigint[], $3::text[]) AS r(seq, token)), "
               "gone AS (DELETE FROM messages m USING r WHERE m.seq = ANY($2::bigint[]) AND "
               "m.seq = r.seq AND m.queue_id = $1 AND m.state = 1 AND m.lease_token = r.token "
               "RETURNING m.seq, m.id, m.lease_token, m.last_delivered_at), "
               "copies AS (UPDATE topic_deliveries d SET delivered_at = g.last_delivered_at "
               "FROM gone g WHERE strpos(g.id, ':') > 0 AND d.copy_id = g.id AND "
               "d.msg_seq = g.seq) "
               "SELECT seq, lease_token FROM gone",
               Params().Int(queue_id).IntArray(seqs).TextArray(tokens)));
    // A receipt given twice in one request is acked once: the first one succeeds.
    std::map<std::pair<int64_t, std::string>, bool> deleted;
    for (int i = 0; i < r.size(); ++i)
      deleted.emplace(std::make_pair(r.Int(i, 0), r.Text(i, 1)), true);
    for (size_t i = 0; i < receipts.size(); ++i) {
      auto d = deleted.find({receipts[i].seq, receipts[i].lease_token});
      if (d != deleted.end() && d->second) {
        out[i] = true;
        d->second = false;
      }
    }
    return Status::Ok();
  }));
  return out;
}

Result<bool> PgStore::ExtendLease(int64_t queue_id, const Receipt& r, TimeMs now, TimeMs until) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows u, c.Exec("UPDATE messages SET visible_at = $5 WHERE seq = $1 AND queue_id = $2 AND "
                       "state = 1 AND lease_token = $3 AND visible_at > $4",
                       Params().Int(r.seq).Int(queue_id).Text(r.lease_token).Int(now).Int(until)));
    changed = u.affected() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::vector<bool>> PgStore::SettleFailures(int64_t queue_id,
                                                  const std::vector<FailureAction>& actions) {
  std::vector<bool> out;
  std::vector<std::string> journals;
  journals.reserve(actions.size());
  bool dead_letters = false;
  std::vector<int64_t> queues;  // with a reroute: the queues whose rows its counts move
  for (const auto& a : actions) {
    journals.push_back(a.kind == FailureAction::Kind::kRequeue ||
                               a.kind == FailureAction::Kind::kReroute
                           ? EncodeJournal(a.journal)
                           : std::string());
    if (a.kind == FailureAction::Kind::kDeadLetter) dead_letters = true;
    if (a.kind == FailureAction::Kind::kReroute) {
      if (queues.empty()) queues.push_back(queue_id);
      queues.push_back(a.reroute.queue_id);
    }
  }
  // One action at a time (a few statements for the whole batch would need the same message's
  // actions, which a batch may repeat, applied in order): the failure path, not the hot one.
  REDRIVE_RETURN_IF_ERROR(pool_.Tx([&](PgConn& c) -> Status {
    out.assign(actions.size(), false);
    // The backend's lock order (top of this file): tenant, then queues by ascending id.
    if (!queues.empty()) {
      REDRIVE_RETURN_IF_ERROR(c.Exec("SELECT 1 FROM queues WHERE id = ANY($1::bigint[]) "
                                     "ORDER BY id FOR UPDATE",
                                     Params().IntArray(queues))
                                  .status());
    }
    for (size_t i = 0; i < actions.size(); ++i) {
      const FailureAction& a = actions[i];
      const Receipt& r = a.receipt;
      switch (a.kind) {
        case FailureAction::Kind::kRequeue: {
          REDRIVE_ASSIGN_OR_RETURN(
              Rows u,
              c.Exec("UPDATE messages SET state = 0, visible_at = $4, lease_token = '', "
                     "journal = $5, first_delivered_at = CASE WHEN $6::boolean AND "
                     "delivery_count <= 1 THEN 0 ELSE first_delivered_at END, "
                     "delivery_count = GREATEST(delivery_count - CASE WHEN $6::boolean THEN 1 "
                     "ELSE 0 END, 0) "
                     "WHERE seq = $1 AND queue_id = $2 AND state = 1 AND lease_token = $3",
                     Params()
                         .Int(r.seq)
                         .Int(queue_id)
                         .Text(r.lease_token)
                         .Int(a.visible_at)
                         .Text(journals[i])
                         .Bool(a.undo_delivery)));
          out[i] = u.affected() == 1;
          break;
        }
        case FailureAction::Kind::kDeadLetter: {
          bool moved = false;
          REDRIVE_RETURN_IF_ERROR(MoveToDeadLetter(c, queue_id, r, &a.journal, a.death, &moved));
          out[i] = moved;
          break;
        }
        case FailureAction::Kind::kReroute: {
          // The message keeps its row and its place in seq order: it becomes a ready (or
          // delayed) message of the destination, delivered as if new. An UPDATE of queue_id
          // fires no usage trigger: the counts move from one queue's row to the other's here,
          // in the same statement.
          REDRIVE_ASSIGN_OR_RETURN(
              Rows u,
              c.Exec("WITH m AS (UPDATE messages SET queue_id = $4, state = 0, visible_at = $5, "
                     "expires_at = $6, retain_until = $7, enqueued_at = $8, delivery_count = 0, "
                     "first_delivered_at = 0, last_delivered_at = 0, lease_token = '', "
                     "consumer = '', journal = $9, lineage = $10 WHERE seq = $1 AND "
                     "queue_id = $2 AND ($3 = '' OR (state = 1 AND lease_token = $3)) "
                     "RETURNING body_size), "
                     "counts AS (INSERT INTO queue_usage AS u(queue_id, shard, msg_count, "
                     "msg_bytes) SELECT q.id, pg_backend_pid() % 16, "
                     "CASE WHEN q.id = $4 THEN 1 ELSE -1 END, CASE WHEN q.id = $4 THEN "
                     "m.body_size ELSE -m.body_size END FROM m, (VALUES ($2::bigint), "
                     "($4::bigint)) AS q(id) WHERE $2 <> $4 ORDER BY q.id "
                     "ON CONFLICT (queue_id, shard) DO UPDATE SET "
                     "msg_count = u.msg_count + EXCLUDED.msg_count, "
                     "msg_bytes = u.msg_bytes + EXCLUDED.msg_bytes) "
                     "SELECT count(*) FROM m",
                     Params()
                         .Int(r.seq)
                         .Int(queue_id)
                         .Text(r.lease_token)
                         .Int(a.reroute.queue_id)
                         .Int(a.reroute.visible_at)
                         .Int(a.reroute.expires_at)
                         .Int(a.reroute.retain_until)
                         .Int(a.reroute.enqueued_at)
                         .Text(journals[i])
                         .Text(EncodeLineage(a.reroute.lineage))));
          out[i] = u.Int(0, 0) == 1;
          break;
        }
        case FailureAction::Kind::kDrop: {
          REDRIVE_ASSIGN_OR_RETURN(
              Rows u, c.Exec("DELETE FROM messages WHERE seq = $1 AND queue_id = $2 AND "
                             "($3 = '' OR (state = 1 AND lease_token = $3))",
                             Params().Int(r.seq).Int(queue_id).Text(r.lease_token)));
          out[i] = u.affected() == 1;
          break;
        }
      }
    }
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------- sweeper inputs

Result<std::vector<MessageRecord>> PgStore::ExpiredLeases(TimeMs now, int limit) {
  std::vector<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_MESSAGE_COLUMNS " FROM messages WHERE state = 1 AND "
                       "visible_at <= $1 ORDER BY visible_at, seq LIMIT $2",
                       Params().Int(now).Int(limit)));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadMessage(r, i));
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<MessageRecord>> PgStore::ExpiredMessages(TimeMs now, int limit) {
  std::vector<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("SELECT " PG_MESSAGE_COLUMNS " FROM messages WHERE expires_at > 0 AND "
                       "expires_at <= $1 AND state = 0 ORDER BY expires_at, seq LIMIT $2",
                       Params().Int(now).Int(limit)));
    for (int i = 0; i < r.size(); ++i) out.push_back(ReadMessage(r, i));
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<MessageRecord>> PgStore::DeleteRetained(TimeMs now, int limit) {
  std::vector<MessageRecord> out;
  // SKIP LOCKED: a message being acked or settled at this moment is left for the next pass
  // rather than waited for.
  REDRIVE_RETURN_IF_ERROR(pool_.RunRetrying([&](PgConn& c) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE "
                       "retain_until > 0 AND retain_until <= $1 ORDER BY retain_until LIMIT $2 "
                       "FOR UPDATE SKIP LOCKED) RETURNING seq, id, queue_id",
                       Params().Int(now).Int(limit)));
    for (int i = 0; i < r.size(); ++i) {
      MessageRecord m;
      m.seq = r.Int(i, 0);
      m.id = r.Text(i, 1);
      m.queue_id = r.Int(i, 2);
      out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(),
              [](const MessageRecord& a, const MessageRecord& b) { return a.seq < b.seq; });
    return Status::Ok();
  }));
  return out;
}

Result<int64_t> PgStore::DeleteExpiredIdempotencyKeys(TimeMs now, int limit) {
  int64_t n = 0;
  // SKIP LOCKED: a key a publisher is taking over at this moment is its.
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r, c.Exec("DELETE FROM idempotency WHERE (queue_id, key) IN (SELECT queue_id, key "
                       "FROM idempotency WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                       Params().Int(now).Int(limit)));
    n = r.affected();
    return Status::Ok();
  }));
  return n;
}

// ---------------------------------------------------------------- depths

// For a standard queue, dead_lettered is the dead letters that came from it; for a dead-letter
// queue, what it holds, which is also its ready depth. Each count by its own index: ready and
// delayed from messages_ready alone (an index-only scan: it includes visible_at), leased from
// messages_leased_queue, dead letters by origin or dlq (hence the CASE around two subqueries
// rather than inside one), instead of a scan of every message of the queue.
Result<QueueDepth> PgStore::GetDepth(int64_t queue_id, TimeMs now) {
  QueueDepth d;
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("SELECT r.ready, r.delayed, "
               "(SELECT count(*) FROM messages WHERE queue_id = $1 AND state = 1), "
               "(SELECT kind FROM queues WHERE id = $1), "
               "(SELECT CASE WHEN q.kind = 1 THEN (SELECT count(*) FROM dead_letters d WHERE "
               "d.tenant = q.tenant AND d.dlq = q.name) ELSE (SELECT count(*) FROM dead_letters "
               "d WHERE d.tenant = q.tenant AND d.origin = q.name) END FROM queues q "
               "WHERE q.id = $1) "
               "FROM (SELECT count(*) FILTER (WHERE visible_at <= $2) AS ready, "
               "count(*) FILTER (WHERE visible_at > $2) AS delayed FROM messages "
               "WHERE queue_id = $1 AND state = 0) r",
               Params().Int(queue_id).Int(now)));
    d.ready = r.Int(0, 0);
    d.delayed = r.Int(0, 1);
    d.leased = r.Int(0, 2);
    if (!r.IsNull(0, 3)) {
      d.dead_lettered = r.Int(0, 4);
      if (r.Int(0, 3) == static_cast<int64_t>(QueueKind::kDeadLetter)) d.ready = d.dead_lettered;
    }
    return Status::Ok();
  }));
  return d;
}

Result<std::vector<QueueDepthRow>> PgStore::AllDepths(TimeMs now) {
  std::vector<QueueDepthRow> out;
  // One statement (one snapshot) for every queue: the messages and dead letters each grouped
  // once, rather than a count per queue.
  REDRIVE_RETURN_IF_ERROR(pool_.Run([&](PgConn& c) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        Rows r,
        c.Exec("SELECT q.tenant, q.name, q.kind, COALESCE(m.ready, 0), COALESCE(m.delayed, 0), "
               "COALESCE(m.leased, 0), COALESCE(o.n, 0), COALESCE(l.n, 0) FROM queues q "
               "LEFT JOIN (SELECT queue_id, count(*) FILTER (WHERE state = 0 AND "
               "visible_at <= $1) AS ready, count(*) FILTER (WHERE state = 0 AND "
               "visible_at > $1) AS delayed, count(*) FILTER (WHERE state = 1) AS leased "
               "FROM messages GROUP BY queue_id) m ON m.queue_id = q.id "
               "LEFT JOIN (SELECT tenant, origin, count(*) AS n FROM dead_letters "
               "GROUP BY tenant, origin) o ON o.tenant = q.tenant AND o.origin = q.name "
               "LEFT JOIN (SELECT tenant, dlq, count(*) AS n FROM dead_letters "
               "GROUP BY tenant, dlq) l ON l.tenant = q.tenant AND l.dlq = q.name "
               "ORDER BY q.tenant COLLATE \"C\", q.name COLLATE \"C\"",
               Params().Int(now)));
    for (int i = 0; i < r.size(); ++i) {
      QueueDepthRow row{r.Text(i, 0), r.Text(i, 1), {}};
      row.depth.ready = r.Int(i, 3);
      row.depth.delayed = r.Int(i, 4);
      row.depth.leased = r.Int(i, 5);
      row.depth.dead_lettered = r.Int(i, 6);
      if (r.Int(i, 2) == static_cast<int64_t>(QueueKind::kDeadLetter)) {
        row.depth.dead_lettered = r.Int(i, 7);
        row.depth.ready = row.depth.dead_lettered;
      }
      out.push_back(std::move(row));
    }
    return Status::Ok();
  }));
  return out;
}

}  // namespace redrive::store::postgres
