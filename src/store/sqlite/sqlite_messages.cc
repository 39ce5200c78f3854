// SqliteStore, the MessageStore port: publish, lease, ack, settle, the sweeper's inputs, depths.
#include <unordered_map>

#include "store/codec.h"
#include "store/sqlite/sqlite_store.h"

namespace redrive::store::sqlite {
namespace {

#define MESSAGE_COLUMNS                                                                       \
  "seq, id, queue_id, state, visible_at, expires_at, retain_until, delivery_count, "          \
  "lease_token, consumer, first_delivered_at, last_delivered_at, published_at, enqueued_at, " \
  "idem_key, attributes, journal, body, lineage"

MessageRecord ReadMessage(Stmt& s) {
  MessageRecord m;
  m.seq = s.Int(0);
  m.id = s.Text(1);
  m.queue_id = s.Int(2);
  m.leased = s.Int(3) == 1;
  m.visible_at = s.Int(4);
  m.expires_at = s.Int(5);
  m.retain_until = s.Int(6);
  m.delivery_count = static_cast<int32_t>(s.Int(7));
  m.lease_token = s.Text(8);
  m.consumer = s.Text(9);
  m.first_delivered_at = s.Int(10);
  m.last_delivered_at = s.Int(11);
  m.published_at = s.Int(12);
  m.enqueued_at = s.Int(13);
  m.idempotency_key = s.Text(14);
  m.attributes = DecodeAttributes(s.Text(15));
  m.journal = DecodeJournal(s.Text(16));
  m.body = s.Text(17);
  m.lineage = DecodeLineage(s.Text(18));
  return m;
}

// With death.redact: the message's body, attributes and journal as the engine's rule leaves
// them (the journal given, else the stored one). False when the message is not there (or not
// held by the receipt's lease).
Result<bool> RedactForDeadLetter(Db& db, int64_t queue_id, const Receipt& receipt,
                                 const Journal* journal, const DeathInfo& death, std::string* body,
                                 std::string* attributes, std::string* journal_text) {
  REDRIVE_ASSIGN_OR_RETURN(
      auto s, db.Prepare("SELECT body, attributes, journal FROM messages WHERE seq = ?1 AND "
                         "queue_id = ?2 AND (?3 = '' OR (state = 1 AND lease_token = ?3))"));
  s.Bind(1, receipt.seq).Bind(2, queue_id).Bind(3, receipt.lease_token);
  if (s.Step() != SQLITE_ROW) {
    REDRIVE_RETURN_IF_ERROR(s.Error());
    return false;
  }
  *body = s.Text(0);
  Attributes attrs = DecodeAttributes(s.Text(1));
  Journal j = journal ? *journal : DecodeJournal(s.Text(2));
  death.redact(*body, attrs, j);
  *attributes = EncodeAttributes(attrs);
  *journal_text = EncodeJournal(j);
  return true;
}

// Moves one message to dead_letters, with the next seq of dead_letter_seq (never one given
// before: see kSchema in sqlite_store.cc). `journal` null keeps the stored journal. An empty
// lease token matches any state. With death.redact, what it leaves of the body, attributes and
// journal is stored instead, and the dead letter marked redacted. Sets *moved.
Status MoveToDeadLetter(Db& db, int64_t queue_id, const Receipt& receipt, const Journal* journal,
                        const DeathInfo& death, bool* moved) {
  std::string journal_text = journal ? EncodeJournal(*journal) : std::string();
  std::string body, attributes;
  if (death.redact) {
    REDRIVE_ASSIGN_OR_RETURN(bool there, RedactForDeadLetter(db, queue_id, receipt, journal, death,
                                                             &body, &attributes, &journal_text));
    if (!there) {
      *moved = false;
      return Status::Ok();
    }
  }
  const bool redacted = static_cast<bool>(death.redact);
  REDRIVE_ASSIGN_OR_RETURN(
      auto ins,
      db.Prepare(
          "INSERT INTO dead_letters(seq, tenant, id, dlq, origin, reason, cause, body, "
          "attributes, idem_key, published_at, dead_lettered_at, retain_until, delivery_count, "
          "first_delivered_at, last_delivered_at, journal, group_id, signature, lineage, "
          "redacted) "
          "SELECT (SELECT next FROM dead_letter_seq), q.tenant, m.id, ?1, q.name, ?2, ?3, "
          "CASE WHEN ?13 THEN ?14 ELSE m.body END, CASE WHEN ?13 THEN ?15 ELSE m.attributes END, "
          "m.idem_key, "
          "m.published_at, ?4, ?5, m.delivery_count, m.first_delivered_at, m.last_delivered_at, "
          "CASE WHEN ?6 THEN ?7 ELSE m.journal END, ?11, ?12, m.lineage, ?13 "
          "FROM messages m JOIN queues q ON q.id = m.queue_id "
          "WHERE m.seq = ?8 AND m.queue_id = ?9 AND (?10 = '' OR (m.state = 1 AND m.lease_token = "
          "?10))"));
  ins.Bind(1, death.dlq)
      .Bind(2, death.reason)
      .Bind(3, death.cause)
      .Bind(4, death.at)
      .Bind(5, death.retain_until)
      .Bind(6, int64_t{journal != nullptr || redacted})
      .Bind(7, journal_text)
      .Bind(8, receipt.seq)
      .Bind(9, queue_id)
      .Bind(10, receipt.lease_token)
      .Bind(11, death.group_id)
      .Bind(12, death.signature)
      .Bind(13, int64_t{redacted})
      .BindBlob(14, body)
      .Bind(15, attributes);
  REDRIVE_RETURN_IF_ERROR(ins.Run());
  *moved = ins.Changes() == 1;
  if (!*moved) return Status::Ok();
  REDRIVE_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM messages WHERE seq = ?1"));
  del.Bind(1, receipt.seq);
  return del.Run();
}

}  // namespace

// ---------------------------------------------------------------- messages

// Follows the contract of MessageStore::Publish step by step (message_store.h), inside the
// caller's transaction. A refusal is set in `result` before anything is written.
Status SqliteStore::PublishIn(Db& db, const PublishRequest& req, PublishResult& result) {
  std::vector<std::string> attrs;
  attrs.reserve(req.messages.size());
  for (const auto& m : req.messages) attrs.push_back(EncodeAttributes(m.attributes));
  result = PublishResult();
  // Every refusal is decided before this request writes anything, so it writes nothing.
  auto refuse = [&](PublishRefusal why, int64_t stored, int64_t adding) {
    result.refusal = why;
    result.stored = stored;
    result.adding = adding;
    return Status::Ok();
  };
  // 1. Duplicates of remembered keys.
  std::vector<bool> duplicate(req.messages.size(), false);
  std::vector<std::string> original(req.messages.size());
  int64_t fresh = 0, fresh_bytes = 0;
  for (size_t i = 0; i < req.messages.size(); ++i) {
    const auto& m = req.messages[i];
    if (!m.idempotency_key.empty() && req.dedup_window > 0) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto s,
          db.Prepare("SELECT message_id FROM idempotency WHERE queue_id = ?1 AND key = ?2 AND "
                     "expires_at > ?3"));
      s.Bind(1, req.queue_id).Bind(2, m.idempotency_key).Bind(3, req.now);
      if (s.Step() == SQLITE_ROW) {
        duplicate[i] = true;
        original[i] = s.Text(0);
      }
      REDRIVE_RETURN_IF_ERROR(s.Error());
    }
    if (!duplicate[i]) {
      ++fresh;
      fresh_bytes += static_cast<int64_t>(m.body.size());
    }
  }
  // 2. Nothing fresh: nothing to check or write.
  if (fresh > 0) {
    // 3. Tenant quotas.
    if (req.tenant_max_messages > 0 || req.tenant_max_bytes > 0) {
      TenantUsage u;
      REDRIVE_RETURN_IF_ERROR(ReadUsage(db, req.tenant, &u));
      if (req.tenant_max_messages > 0 && u.messages + fresh > req.tenant_max_messages) {
        return refuse(PublishRefusal::kTenantMaxMessages, u.messages, fresh);
      }
      if (req.tenant_max_bytes > 0 && u.bytes + fresh_bytes > req.tenant_max_bytes) {
        return refuse(PublishRefusal::kTenantMaxBytes, u.bytes, fresh_bytes);
      }
    }
    // 4. Length.
    if (req.max_length > 0) {
      REDRIVE_ASSIGN_OR_RETURN(auto c,
                               db.Prepare("SELECT COUNT(*) FROM messages WHERE queue_id = ?1"));
      c.Bind(1, req.queue_id);
      int64_t depth = c.Step() == SQLITE_ROW ? c.Int(0) : 0;
      REDRIVE_RETURN_IF_ERROR(c.Error());
      int64_t excess = depth + fresh - req.max_length;
      if (excess > 0 && req.overflow == OverflowAction::kDeadLetterOldest &&
          fresh <= req.max_length) {
        REDRIVE_ASSIGN_OR_RETURN(
            auto oldest,
            db.Prepare(
                "SELECT seq, id FROM messages WHERE queue_id = ?1 AND state = 0 ORDER BY seq "
                "LIMIT ?2"));
        oldest.Bind(1, req.queue_id).Bind(2, excess);
        std::vector<std::pair<int64_t, std::string>> victims;
        while (oldest.Step() == SQLITE_ROW) victims.push_back({oldest.Int(0), oldest.Text(1)});
        REDRIVE_RETURN_IF_ERROR(oldest.Error());
        if (static_cast<int64_t>(victims.size()) == excess) {
          for (const auto& [seq, id] : victims) {
            bool moved = false;
            REDRIVE_RETURN_IF_ERROR(MoveToDeadLetter(db, req.queue_id, Receipt{seq, ""}, nullptr,
                                                     req.overflow_death, &moved));
            // Selected in this transaction, unleased: the move cannot miss.
            if (!moved) return Status(ErrorCode::kInternal, "overflow: a victim vanished");
            result.evicted_ids.push_back(id);
          }
          excess = 0;
        }
      }
      if (excess > 0) return refuse(PublishRefusal::kQueueFull, depth, fresh);
    }
  }

  // 5. The fresh messages, their keys and their usage.
  std::vector<int64_t> arrived;  // seqs, with arrival_death
  for (size_t i = 0; i < req.messages.size(); ++i) {
    const auto& m = req.messages[i];
    if (duplicate[i]) {
      result.outcomes.push_back(PublishOutcome{original[i], true});
      continue;
    }
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "INSERT INTO messages(id, queue_id, state, visible_at, expires_at, retain_until, "
            "delivery_count, lease_token, consumer, first_delivered_at, last_delivered_at, "
            "published_at, enqueued_at, idem_key, attributes, journal, body, lineage) "
            "VALUES(?1, ?2, 0, ?3, ?4, ?5, ?6, '', '', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
            "?15)"));
    std::string lineage = EncodeLineage(m.lineage);
    std::string journal = EncodeJournal(m.journal);
    s.Bind(1, m.id)
        .Bind(2, req.queue_id)
        .Bind(3, m.visible_at)
        .Bind(4, m.expires_at)
        .Bind(5, m.retain_until)
        .Bind(6, int64_t{m.delivery_count})
        .Bind(7, m.first_delivered_at)
        .Bind(8, m.last_delivered_at)
        .Bind(9, m.published_at)
        .Bind(10, m.enqueued_at)
        .Bind(11, m.idempotency_key)
        .Bind(12, attrs[i])
        .Bind(13, journal)
        .BindBlob(14, m.body)
        .Bind(15, lineage);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    int64_t seq = sqlite3_last_insert_rowid(db.raw());
    if (req.arrival_death) arrived.push_back(seq);
    if (!m.idempotency_key.empty() && req.dedup_window > 0) {
      REDRIVE_ASSIGN_OR_RETURN(
          auto k,
          db.Prepare("INSERT OR REPLACE INTO idempotency(queue_id, key, message_id, expires_at) "
                     "VALUES(?1, ?2, ?3, ?4)"));
      k.Bind(1, req.queue_id)
          .Bind(2, m.idempotency_key)
          .Bind(3, m.id)
          .Bind(4, req.now + req.dedup_window);
      REDRIVE_RETURN_IF_ERROR(k.Run());
    }
    result.outcomes.push_back(PublishOutcome{m.id, false, seq});
  }
  REDRIVE_RETURN_IF_ERROR(AddQueueUsage(db, req.queue_id, fresh, fresh_bytes));
  // 6. Dead on arrival: the fresh messages move to the dead letters at once.
  for (int64_t seq : arrived) {
    bool moved = false;
    REDRIVE_RETURN_IF_ERROR(
        MoveToDeadLetter(db, req.queue_id, Receipt{seq, ""}, nullptr, *req.arrival_death, &moved));
    if (!moved) return Status(ErrorCode::kInternal, "arrival death: a message vanished");
  }
  return Status::Ok();
}

Result<PublishResult> SqliteStore::Publish(const PublishRequest& req) {
  PublishResult result;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) { return PublishIn(db, req, result); }));
  return result;
}

Result<std::vector<PublishResult>> SqliteStore::PublishMany(
    const std::vector<PublishRequest>& requests, const std::vector<TopicEventWrite>& events) {
  std::vector<PublishResult> results;
  bool refused = false;
  Status st = Write([&](Db& db) {
    results.assign(requests.size(), PublishResult());
    refused = false;
    for (size_t i = 0; i < requests.size(); ++i) {
      REDRIVE_RETURN_IF_ERROR(PublishIn(db, requests[i], results[i]));
      if (results[i].refusal != PublishRefusal::kNone) {
        // Undo the requests before it: this job's savepoint rolls back on an error.
        refused = true;
        PublishResult why = std::move(results[i]);
        results.assign(requests.size(), PublishResult());
        results[i] = std::move(why);
        return Status(ErrorCode::kQueueFull, "publish refused");
      }
    }
    return RecordTopicEvents(db, events, results);
  });
  if (refused) return results;
  REDRIVE_RETURN_IF_ERROR(st);
  return results;
}

Result<std::vector<MessageRecord>> SqliteStore::Lease(const LeaseRequest& req) {
  std::vector<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.clear();
    std::vector<int64_t> seqs;
    {
      REDRIVE_ASSIGN_OR_RETURN(
          auto s,
          db.Prepare(
              "SELECT seq FROM messages WHERE queue_id = ?1 AND state = 0 AND visible_at <= ?2 "
              "AND (expires_at = 0 OR expires_at > ?2) ORDER BY visible_at, seq LIMIT ?3"));
      s.Bind(1, req.queue_id).Bind(2, req.now).Bind(3, int64_t{req.max_messages});
      while (s.Step() == SQLITE_ROW) seqs.push_back(s.Int(0));
      REDRIVE_RETURN_IF_ERROR(s.Error());
    }
    if (seqs.empty()) return Status::Ok();
    // One statement for the whole batch: inside the job's savepoint, each statement keeps a
    // statement journal, and one UPDATE per message cost a multiple of this (the lease was
    // most of the writer's work).
    std::string list = "[";
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (i) list += ',';
      list += std::to_string(seqs[i]);
    }
    list += ']';
    REDRIVE_ASSIGN_OR_RETURN(
        auto u,
        db.Prepare(
            "UPDATE messages SET state = 1, visible_at = ?2, lease_token = ?3, consumer = ?4, "
            "delivery_count = delivery_count + 1, last_delivered_at = ?5, "
            "first_delivered_at = CASE WHEN first_delivered_at = 0 THEN ?5 ELSE "
            "first_delivered_at END WHERE seq IN (SELECT value FROM json_each(?1)) "
            "RETURNING " MESSAGE_COLUMNS));
    u.Bind(1, list)
        .Bind(2, req.lease_until)
        .Bind(3, req.lease_token)
        .Bind(4, req.consumer)
        .Bind(5, req.now);
    std::unordered_map<int64_t, size_t> position;  // seq -> index in FIFO order
    for (size_t i = 0; i < seqs.size(); ++i) position.emplace(seqs[i], i);
    std::vector<std::optional<MessageRecord>> ordered(seqs.size());
    while (u.Step() == SQLITE_ROW) {
      MessageRecord m = ReadMessage(u);
      auto at = position.find(m.seq);
      if (at != position.end()) ordered[at->second] = std::move(m);
    }
    REDRIVE_RETURN_IF_ERROR(u.Error());
    out.reserve(seqs.size());
    for (auto& m : ordered) {
      if (m) out.push_back(std::move(*m));
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::optional<MessageRecord>> SqliteStore::GetMessage(int64_t queue_id, int64_t seq) {
  std::optional<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT " MESSAGE_COLUMNS
                                                " FROM messages WHERE seq = ?1 AND queue_id = ?2"));
    s.Bind(1, seq).Bind(2, queue_id);
    if (s.Step() == SQLITE_ROW) out = ReadMessage(s);
    return s.Error();
  }));
  return out;
}

Result<std::vector<bool>> SqliteStore::Ack(int64_t queue_id, const std::vector<Receipt>& receipts) {
  std::vector<bool> out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.assign(receipts.size(), false);
    // One statement per lease token, not per receipt (the receipts of one receive share their
    // token): each statement inside the job's savepoint keeps a statement journal.
    std::unordered_map<std::string_view, std::vector<size_t>> by_token;
    for (size_t i = 0; i < receipts.size(); ++i) by_token[receipts[i].lease_token].push_back(i);
    for (const auto& [token, indexes] : by_token) {
      std::string list = "[";
      for (size_t i : indexes) {
        if (list.size() > 1) list += ',';
        list += std::to_string(receipts[i].seq);
      }
      list += ']';
      REDRIVE_ASSIGN_OR_RETURN(
          auto s,
          db.Prepare("DELETE FROM messages WHERE seq IN (SELECT value FROM json_each(?1)) AND "
                     "queue_id = ?2 AND state = 1 AND lease_token = ?3 "
                     "RETURNING seq, id, last_delivered_at"));
      s.Bind(1, list).Bind(2, queue_id).Bind(3, token);
      std::unordered_map<int64_t, bool> deleted;
      std::vector<std::pair<std::string, std::pair<int64_t, TimeMs>>> copies;  // topic copies
      while (s.Step() == SQLITE_ROW) {
        deleted.emplace(s.Int(0), true);
        // Only a topic's copies have a ':' in their id (docs/design/store-ports.md).
        std::string id = s.Text(1);
        if (id.find(':') != std::string::npos) copies.push_back({id, {s.Int(0), s.Int(2)}});
      }
      REDRIVE_RETURN_IF_ERROR(s.Error());
      for (const auto& [id, seq_at] : copies) {
        REDRIVE_ASSIGN_OR_RETURN(auto d, db.Prepare("UPDATE topic_deliveries SET delivered_at = ?3 "
                                                    "WHERE copy_id = ?1 AND msg_seq = ?2"));
        d.Bind(1, id).Bind(2, seq_at.first).Bind(3, seq_at.second);
        REDRIVE_RETURN_IF_ERROR(d.Run());
      }
      // A receipt given twice in one request is acked once: the first one succeeds.
      for (size_t i : indexes) {
        auto d = deleted.find(receipts[i].seq);
        if (d != deleted.end() && d->second) {
          out[i] = true;
          d->second = false;
        }
      }
    }
    return Status::Ok();
  }));
  return out;
}

Result<bool> SqliteStore::ExtendLease(int64_t queue_id, const Receipt& r, TimeMs now,
                                      TimeMs until) {
  bool changed = false;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "UPDATE messages SET visible_at = ?5 WHERE seq = ?1 AND queue_id = ?2 AND state = 1 "
            "AND lease_token = ?3 AND visible_at > ?4"));
    s.Bind(1, r.seq).Bind(2, queue_id).Bind(3, r.lease_token).Bind(4, now).Bind(5, until);
    REDRIVE_RETURN_IF_ERROR(s.Run());
    changed = s.Changes() == 1;
    return Status::Ok();
  }));
  return changed;
}

Result<std::vector<bool>> SqliteStore::SettleFailures(int64_t queue_id,
                                                      const std::vector<FailureAction>& actions) {
  std::vector<bool> out;
  std::vector<std::string> journals;
  journals.reserve(actions.size());
  for (const auto& a : actions) {
    journals.push_back(a.kind == FailureAction::Kind::kRequeue ||
                               a.kind == FailureAction::Kind::kReroute
                           ? EncodeJournal(a.journal)
                           : std::string());
  }
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.assign(actions.size(), false);
    for (size_t i = 0; i < actions.size(); ++i) {
      const FailureAction& a = actions[i];
      const Receipt& r = a.receipt;
      switch (a.kind) {
        case FailureAction::Kind::kRequeue: {
          REDRIVE_ASSIGN_OR_RETURN(
              auto s,
              db.Prepare(
                  "UPDATE messages SET state = 0, visible_at = ?4, lease_token = '', journal = ?5, "
                  "first_delivered_at = CASE WHEN ?6 AND delivery_count <= 1 THEN 0 "
                  "ELSE first_delivered_at END, "
                  "delivery_count = MAX(delivery_count - ?6, 0) "
                  "WHERE seq = ?1 AND queue_id = ?2 AND state = 1 AND lease_token = ?3"));
          s.Bind(1, r.seq)
              .Bind(2, queue_id)
              .Bind(3, r.lease_token)
              .Bind(4, a.visible_at)
              .Bind(5, journals[i])
              .Bind(6, int64_t{a.undo_delivery});
          REDRIVE_RETURN_IF_ERROR(s.Run());
          out[i] = s.Changes() == 1;
          break;
        }
        case FailureAction::Kind::kDeadLetter: {
          bool moved = false;
          REDRIVE_RETURN_IF_ERROR(MoveToDeadLetter(db, queue_id, r, &a.journal, a.death, &moved));
          out[i] = moved;
          break;
        }
        case FailureAction::Kind::kReroute: {
          // Bound without a copy: it must outlive the statement's run.
          const std::string lineage = EncodeLineage(a.reroute.lineage);
          // The message keeps its row and its place in seq order: it becomes a ready (or
          // delayed) message of the destination, delivered as if new.
          REDRIVE_ASSIGN_OR_RETURN(
              auto s, db.Prepare("UPDATE messages SET queue_id = ?4, state = 0, visible_at = ?5, "
                                 "expires_at = ?6, retain_until = ?7, enqueued_at = ?8, "
                                 "delivery_count = 0, first_delivered_at = 0, "
                                 "last_delivered_at = 0, lease_token = '', consumer = '', "
                                 "journal = ?9, lineage = ?10 "
                                 "WHERE seq = ?1 AND queue_id = ?2 AND (?3 = '' OR "
                                 "(state = 1 AND lease_token = ?3))"));
          s.Bind(1, r.seq)
              .Bind(2, queue_id)
              .Bind(3, r.lease_token)
              .Bind(4, a.reroute.queue_id)
              .Bind(5, a.reroute.visible_at)
              .Bind(6, a.reroute.expires_at)
              .Bind(7, a.reroute.retain_until)
              .Bind(8, a.reroute.enqueued_at)
              .Bind(9, journals[i])
              .Bind(10, lineage);
          REDRIVE_RETURN_IF_ERROR(s.Run());
          out[i] = s.Changes() == 1;
          if (!out[i]) break;
          // The usage counters follow the message from its queue's row to the destination's.
          REDRIVE_ASSIGN_OR_RETURN(
              auto u, db.Prepare("UPDATE queues SET "
                                 "msg_count = msg_count + CASE WHEN id = ?2 THEN 1 ELSE -1 END, "
                                 "msg_bytes = msg_bytes + CASE WHEN id = ?2 THEN 1 ELSE -1 END * "
                                 "(SELECT body_size FROM messages WHERE seq = ?1) "
                                 "WHERE id IN (?2, ?3)"));
          u.Bind(1, r.seq).Bind(2, a.reroute.queue_id).Bind(3, queue_id);
          REDRIVE_RETURN_IF_ERROR(u.Run());
          break;
        }
        case FailureAction::Kind::kDrop: {
          REDRIVE_ASSIGN_OR_RETURN(auto s, db.Prepare("DELETE FROM messages WHERE seq = ?1 AND "
                                                      "queue_id = ?2 AND (?3 = '' OR (state = 1 "
                                                      "AND lease_token = ?3))"));
          s.Bind(1, r.seq).Bind(2, queue_id).Bind(3, r.lease_token);
          REDRIVE_RETURN_IF_ERROR(s.Run());
          out[i] = s.Changes() == 1;
          break;
        }
      }
    }
    return Status::Ok();
  }));
  return out;
}

// ---------------------------------------------------------------- sweeper inputs

Result<std::vector<MessageRecord>> SqliteStore::ExpiredLeases(TimeMs now, int limit) {
  std::vector<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare("SELECT " MESSAGE_COLUMNS " FROM messages WHERE state = 1 AND visible_at <= ?1 "
                   "ORDER BY visible_at LIMIT ?2"));
    s.Bind(1, now).Bind(2, int64_t{limit});
    while (s.Step() == SQLITE_ROW) out.push_back(ReadMessage(s));
    return s.Error();
  }));
  return out;
}

Result<std::vector<MessageRecord>> SqliteStore::ExpiredMessages(TimeMs now, int limit) {
  std::vector<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT " MESSAGE_COLUMNS
                           " FROM messages WHERE expires_at > 0 AND expires_at <= ?1 AND state = 0 "
                           "ORDER BY expires_at LIMIT ?2"));
    s.Bind(1, now).Bind(2, int64_t{limit});
    while (s.Step() == SQLITE_ROW) out.push_back(ReadMessage(s));
    return s.Error();
  }));
  return out;
}

Result<std::vector<MessageRecord>> SqliteStore::DeleteRetained(TimeMs now, int limit) {
  std::vector<MessageRecord> out;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    out.clear();
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare(
            "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE retain_until > 0 "
            "AND "
            "retain_until <= ?1 ORDER BY retain_until LIMIT ?2) RETURNING seq, id, queue_id"));
    s.Bind(1, now).Bind(2, int64_t{limit});
    while (s.Step() == SQLITE_ROW) {
      MessageRecord m;
      m.seq = s.Int(0);
      m.id = s.Text(1);
      m.queue_id = s.Int(2);
      out.push_back(std::move(m));
    }
    return s.Error();
  }));
  return out;
}

Result<int64_t> SqliteStore::DeleteExpiredIdempotencyKeys(TimeMs now, int limit) {
  int64_t n = 0;
  REDRIVE_RETURN_IF_ERROR(Write([&](Db& db) {
    REDRIVE_ASSIGN_OR_RETURN(
        auto s,
        db.Prepare("DELETE FROM idempotency WHERE (queue_id, key) IN (SELECT queue_id, key FROM "
                   "idempotency WHERE expires_at <= ?1 LIMIT ?2)"));
    s.Bind(1, now).Bind(2, int64_t{limit});
    REDRIVE_RETURN_IF_ERROR(s.Run());
    n = s.Changes();
    return Status::Ok();
  }));
  return n;
}

// ---------------------------------------------------------------- depths

namespace {

Status CountDepth(Db& db, int64_t queue_id, TimeMs now, QueueDepth* d) {
  REDRIVE_ASSIGN_OR_RETURN(
      auto s,
      db.Prepare("SELECT COALESCE(SUM(state = 0 AND visible_at <= ?2), 0), "
                 "COALESCE(SUM(state = 0 AND visible_at > ?2), 0), COALESCE(SUM(state = 1), 0) "
                 "FROM messages WHERE queue_id = ?1"));
  s.Bind(1, queue_id).Bind(2, now);
  if (s.Step() == SQLITE_ROW) {
    d->ready = s.Int(0);
    d->delayed = s.Int(1);
    d->leased = s.Int(2);
  }
  REDRIVE_RETURN_IF_ERROR(s.Error());
  // For a standard queue: dead letters that came from it. For a dead-letter queue: what it
  // holds, which is also its ready depth.
  REDRIVE_ASSIGN_OR_RETURN(
      auto dl,
      db.Prepare(
          "SELECT q.kind, (SELECT COUNT(*) FROM dead_letters d WHERE d.tenant = q.tenant AND "
          "  CASE q.kind WHEN 1 THEN d.dlq ELSE d.origin END = q.name) "
          "FROM queues q WHERE q.id = ?1"));
  dl.Bind(1, queue_id);
  if (dl.Step() == SQLITE_ROW) {
    d->dead_lettered = dl.Int(1);
    if (dl.Int(0) == static_cast<int64_t>(QueueKind::kDeadLetter)) d->ready = dl.Int(1);
  }
  return dl.Error();
}

}  // namespace

Result<QueueDepth> SqliteStore::GetDepth(int64_t queue_id, TimeMs now) {
  QueueDepth d;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) { return CountDepth(db, queue_id, now, &d); }));
  return d;
}

Result<std::vector<QueueDepthRow>> SqliteStore::AllDepths(TimeMs now) {
  std::vector<QueueDepthRow> out;
  REDRIVE_RETURN_IF_ERROR(Read([&](Db& db) {
    std::vector<std::pair<int64_t, QueueDepthRow>> queues;
    REDRIVE_ASSIGN_OR_RETURN(
        auto s, db.Prepare("SELECT id, tenant, name FROM queues ORDER BY tenant, name"));
    while (s.Step() == SQLITE_ROW) {
      queues.push_back({s.Int(0), QueueDepthRow{s.Text(1), s.Text(2), {}}});
    }
    REDRIVE_RETURN_IF_ERROR(s.Error());
    for (auto& [id, row] : queues) {
      REDRIVE_RETURN_IF_ERROR(CountDepth(db, id, now, &row.depth));
      out.push_back(std::move(row));
    }
    return Status::Ok();
  }));
  return out;
}

}  // namespace redrive::store::sqlite
