// MessageStore: the hot message port. Everything a publish, receive, ack, nack or extend
// touches, and the sweeper's scans and deletes of messages: the store's fast path, and the part
// that a faster (append-only, log-structured) engine could later implement alone. The control
// port (control_store.h) holds the rest: tenants, tokens, queues, dead letters, jobs, audit.
//
// Contract, for every implementation (the conformance suite, message_store_test.cc, checks it):
// - Every method is atomic: it applies completely or not at all. A method that writes returns
//   only after its effects are durable (fsync'd); implementations may group concurrent writes
//   into one transaction and one fsync.
// - Methods taking a lease token are compare-and-set on it: they return false (not an error)
//   when the message is no longer held by that token.
// - A message's `seq` is assigned by the store, unique, and increasing in publish order within
//   a queue (FIFO order). A receipt is (seq, lease token).
// - A message is in exactly one place: a queue (this port) or the dead letters (the control
//   port). Dead-lettering (SettleFailures, overflow on Publish) is a move, in one transaction;
//   so is Redrive on the control port, the other way. Queues (their ids) belong to the control
//   port. Both ports are one database today; docs/design/store-ports.md says what a backend
//   that splits them must keep.
// - Errors: kStoreFailed once a commit or fsync has failed (sticky until restart); kInternal.
//   "Not held", "not found" and the refusals of a publish are results (false, std::nullopt,
//   PublishRefusal), never errors, so the engine chooses the error code and its words.
// - Rules are the engine's. The store applies the parameters it is given (limits, the
//   overflow action, the death record) and nothing of the engine's configuration formats;
//   where a check must run in the writing transaction (Publish), the method's comment is its
//   exact specification, and the conformance suite tests each point of it.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "store/records.h"

namespace redrive::store {

struct MessageRecord {
  int64_t seq = 0;  // assigned by the store; FIFO order within a queue
  std::string id;
  int64_t queue_id = 0;
  std::string body;  // opaque bytes
  Attributes attributes;
  std::string idempotency_key;
  TimeMs published_at = 0;  // first publish; kept across redrives
  TimeMs enqueued_at = 0;   // entered this queue
  TimeMs visible_at = 0;    // ready from (delay, backoff) or lease end while leased
  TimeMs expires_at = 0;    // message TTL; 0 = never
  TimeMs retain_until = 0;  // queue retention; 0 = forever
  int32_t delivery_count = 0;
  TimeMs first_delivered_at = 0;
  TimeMs last_delivered_at = 0;
  bool leased = false;
  std::string lease_token;
  std::string consumer;  // consumer of the last delivery
  Journal journal;
  Lineage lineage;
};

// Names a leased message: its store sequence number and the lease token it was handed out with.
struct Receipt {
  int64_t seq = 0;
  std::string lease_token;
};

struct QueueDepth {
  int64_t ready = 0;
  int64_t delayed = 0;
  int64_t leased = 0;
  int64_t dead_lettered = 0;  // dead letters whose origin is this queue
};

// Row counts of the store, for metrics and accounting checks.
struct QueueDepthRow {
  std::string tenant;
  std::string queue;
  QueueDepth depth;
};

// What Publish does when a batch would take the queue past its max length. The engine
// chooses it (from the queue's overflow policy); the store applies it as Publish says.
enum class OverflowAction {
  kRefuse,            // refuse the batch: PublishRefusal::kQueueFull
  kDeadLetterOldest,  // dead-letter the oldest unleased messages to make room
};

struct PublishRequest {
  int64_t queue_id = 0;
  // Fully formed by the engine: id, times, body... REQUIRES: with dedup_window > 0, no two
  // share a non-empty idempotency key (the engine settles repeats within a batch).
  std::vector<MessageRecord> messages;
  TimeMs now = 0;
  DurationMs dedup_window = 0;  // idempotency keys are remembered this long; 0 = not at all
  // The queue's limit; 0 = unlimited. On overflow, `overflow` applies; evicted messages are
  // dead-lettered with `overflow_death`.
  int64_t max_length = 0;
  OverflowAction overflow = OverflowAction::kRefuse;
  DeathInfo overflow_death;
  // The tenant's quotas, checked against its TenantUsage in the same transaction; 0 = none.
  std::string tenant;
  int64_t tenant_max_messages = 0;
  int64_t tenant_max_bytes = 0;
  // Set: the fresh messages are stored dead, moved to the dead letters with this death record
  // in the same transaction (a topic's message that no subscription takes: reason no-route).
  std::optional<DeathInfo> arrival_death;
};

struct PublishOutcome {
  std::string id;          // stored id, or the original's id for a duplicate
  bool duplicate = false;  // an idempotency key seen inside the dedup window
  int64_t seq = 0;         // the stored message's seq; 0 for a duplicate
};

// Why a publish stored nothing (see MessageStore::Publish).
enum class PublishRefusal {
  kNone,               // stored
  kTenantMaxMessages,  // the tenant's messages would pass tenant_max_messages
  kTenantMaxBytes,     // the tenant's body bytes would pass tenant_max_bytes
  kQueueFull,          // the queue would pass max_length and the overflow action made no room
};

struct PublishResult {
  PublishRefusal refusal = PublishRefusal::kNone;
  // For a refusal, the two figures it compared with the limit: what is stored (the tenant's
  // messages or body bytes, or the queue's messages) and what the batch adds (its fresh
  // messages, or their body bytes). 0 when stored.
  int64_t stored = 0;
  int64_t adding = 0;
  std::vector<PublishOutcome> outcomes;  // one per request message, in order; empty if refused
  std::vector<std::string> evicted_ids;  // dead-lettered with overflow_death, in seq order
};

struct LeaseRequest {
  int64_t queue_id = 0;
  TimeMs now = 0;
  TimeMs lease_until = 0;
  std::string consumer;
  int max_messages = 1;
  // The lease token of every message of this lease. A receipt is (seq, token), so receipts
  // stay distinct; a redelivery gets a new token, which is what makes old receipts stale.
  std::string lease_token;
};

// What happens to one failed delivery. A receipt with an empty lease_token means "whatever its
// state" (TTL expiry); otherwise the lease must still match.
// kReroute: the message moves to another standard queue of the tenant as a fresh delivery
// (delivery count 0, not leased), keeping id, body, attributes, idempotency key, first publish
// time and journal.
struct RerouteInfo {
  int64_t queue_id = 0;
  TimeMs enqueued_at = 0;  // now
  TimeMs visible_at = 0;   // the destination's delivery delay from now
  TimeMs expires_at = 0;   // the destination's message TTL from now; 0 = never
  TimeMs retain_until = 0;
  Lineage lineage;         // the message's, with this reroute recorded
  std::string queue_name;  // not stored: the destination's name, for the engine's log line
};

struct FailureAction {
  enum class Kind { kRequeue, kDeadLetter, kDrop, kReroute };
  Kind kind = Kind::kRequeue;
  Receipt receipt;
  TimeMs visible_at = 0;  // kRequeue: ready again at
  // kRequeue: the lease is handed back unused (a consumer leased ahead and did not deliver):
  // the delivery count goes back by one (not below 0), and a first delivery's time is cleared.
  bool undo_delivery = false;
  Journal journal;      // kRequeue, kDeadLetter, kReroute: with this failure appended
  DeathInfo death;      // kDeadLetter
  RerouteInfo reroute;  // kReroute
  // Not stored: who decided, in words, for the engine's log line, when not the queue's policy
  // itself ("script decided drop()"); empty otherwise.
  std::string decision;
};

// --- topic events: each message published to a topic, kept for the topic's eventRetention,
// with the copy each subscription got (docs/design/store-ports.md, "Topic events").
struct TopicEventRecord {
  int64_t seq = 0;  // assigned by the store; publish order
  std::string tenant;
  int64_t topic_id = 0;  // the topic's queue id: a topic made again under the name starts empty
  std::string id;        // the topic message's id; a copy's id is "<id>:<subscription>"
  TimeMs published_at = 0;
  TimeMs retain_until = 0;  // the sweeper deletes the event after this
  Attributes attributes;
  std::string idempotency_key;
  std::string body;  // empty in ListTopicEvents (body_size says how long it is)
  int64_t body_size = 0;
};

// What the store knows of one subscription's copy of a topic message. The state it is in is
// the engine's reading of these facts (Topics::ListEvents).
struct TopicDeliveryFacts {
  std::string subscription;
  bool live = false;  // in a queue: ready, delayed or leased
  bool leased = false;
  int64_t queue_id = 0;  // live: the queue it is in (a reroute may have moved it)
  int32_t delivery_count = 0;
  TimeMs visible_at = 0;  // live: ready at, or the lease's end
  bool dead_lettered = false;
  std::string dead_letter_reason;
  TimeMs dead_lettered_at = 0;
  TimeMs delivered_at = 0;  // acked: when the delivery that succeeded began; 0 = not acked
  int32_t redeliveries = 0;
};

struct TopicEventRow {
  TopicEventRecord event;
  std::vector<TopicDeliveryFacts> deliveries;  // by subscription name
};

// A topic message to record with a PublishMany: the event, and where its copies are in the
// requests (requests[request].messages[slot], for `subscription`).
struct TopicEventWrite {
  struct Copy {
    size_t request = 0;
    size_t slot = 0;
    std::string subscription;
  };
  TopicEventRecord event;
  std::vector<Copy> copies;
};

struct TopicEventQuery {
  std::string tenant;
  int64_t topic_id = 0;
  TimeMs since = 0;        // published at or after; 0 = no bound
  TimeMs until = 0;        // published before; 0 = no bound
  int64_t before_seq = 0;  // newest first, from below this seq; 0 = from the newest
  int limit = 100;
};

// Redeliver: one topic message again to one subscription, as a fresh copy.
struct RedeliverRequest {
  int64_t event_seq = 0;
  std::string subscription;
  PublishRequest publish;  // one message, the copy (id "<id>:<subscription>")
};

struct RedeliverResult {
  enum class Outcome {
    kPublished,     // stored; `publish` says so (or why not: a refusal)
    kLive,          // the copy is still in a queue: nothing written
    kDeadLettered,  // the copy is a dead letter (restore it instead): nothing written
    kGone,          // the event is no longer recorded: nothing written
  };
  Outcome outcome = Outcome::kGone;
  PublishResult publish;
};

class MessageStore {
 public:
  virtual ~MessageStore() = default;

  // --- publish, lease, settle
  // Stores a batch, all or nothing, in one transaction. The checks that must see the queue and
  // the tenant as they are at commit happen here, exactly as follows and in this order:
  //  1. Duplicates. With dedup_window > 0, a message whose non-empty idempotency key is
  //     remembered for the queue with an expiry after `now` is a duplicate: it is not stored,
  //     and its outcome is the remembered message id with duplicate = true. The other
  //     messages are fresh; F is their number, B the sum of their body sizes in bytes.
  //  2. F = 0: nothing else is checked or written.
  //  3. Tenant quotas, against TenantUsage of `tenant` in this transaction (its messages and
  //     dead letters): refused (kTenantMaxMessages) when tenant_max_messages > 0 and
  //     usage.messages + F > tenant_max_messages; else refused (kTenantMaxBytes) when
  //     tenant_max_bytes > 0 and usage.bytes + B > tenant_max_bytes.
  //  4. Length, when max_length > 0: D is the queue's messages (ready, delayed and leased) and
  //     excess = D + F - max_length. When excess > 0: with kRefuse, refused (kQueueFull); with
  //     kDeadLetterOldest and F <= max_length, the `excess` unleased (ready or delayed)
  //     messages with the lowest seq are moved to the dead letters with overflow_death (journal
  //     and lineage kept) and their ids returned in seq order; if fewer than `excess` are
  //     unleased, or F > max_length, refused (kQueueFull) with nothing moved.
  //  5. The fresh messages are stored in request order (increasing seq); with dedup_window > 0
  //     each key is remembered with the expiry now + dedup_window (replacing an expired one);
  //     the tenant's usage grows by F and B.
  // A refusal is a result, not an error: `refusal` says which, `stored` and `adding` give the
  // compared figures (usage.messages and F, usage.bytes and B, or D and F), and nothing at all
  // is written. Otherwise `outcomes` has one entry per request message, in order.
  //  6. With arrival_death, the fresh messages are then moved to the dead letters with it (their
  //     usage moves with them, as for any dead-lettering).
  virtual Result<PublishResult> Publish(const PublishRequest& request) = 0;
  // Several Publish requests (a topic's fan-out: one per subscription queue, all of one tenant,
  // each queue at most once) in one transaction, all or nothing: each request is checked as
  // Publish says, seeing the requests before it; if one is refused, nothing at all is written,
  // and its result carries the refusal (the others are empty). Otherwise one result per
  // request, in order.
  //
  // Each of `events` is recorded in the same transaction with the copies that were stored
  // fresh; an event whose copies were all duplicates is not recorded (an event with no copies,
  // a message no subscription took, is).
  virtual Result<std::vector<PublishResult>> PublishMany(
      const std::vector<PublishRequest>& requests,
      const std::vector<TopicEventWrite>& events = {}) = 0;
  // Leases up to max_messages ready, visible, unexpired messages in FIFO order:
  // increments delivery_count durably before returning them.
  virtual Result<std::vector<MessageRecord>> Lease(const LeaseRequest& request) = 0;
  virtual Result<std::optional<MessageRecord>> GetMessage(int64_t queue_id, int64_t seq) = 0;
  // Deletes each leased message whose token matches; one bool per receipt.
  virtual Result<std::vector<bool>> Ack(int64_t queue_id, const std::vector<Receipt>& receipts) = 0;
  // Moves the lease end of a message whose lease has not yet ended at `now`.
  virtual Result<bool> ExtendLease(int64_t queue_id, const Receipt& receipt, TimeMs now,
                                   TimeMs until) = 0;
  // Applies the outcome of each failed delivery (a nack, an ended lease, an expired TTL) in one
  // transaction; one bool per action: whether the message was still there to act on. A
  // kReroute moves the message to `reroute.queue_id` of the same tenant (the engine has checked
  // that it is a standard queue with room for it), counting it there from then on: the
  // tenant's usage does not change.
  virtual Result<std::vector<bool>> SettleFailures(int64_t queue_id,
                                                   const std::vector<FailureAction>& actions) = 0;

  // --- topic events. An ack of a copy (a message whose id holds ':') marks it delivered; a
  // Redrive of a copy's dead letter makes the redriven message its copy again.
  // Newest first; each event with its deliveries.
  virtual Result<std::vector<TopicEventRow>> ListTopicEvents(const TopicEventQuery& query) = 0;
  // One event, with its body.
  virtual Result<std::optional<TopicEventRow>> GetTopicEvent(const std::string& tenant,
                                                             int64_t topic_id,
                                                             const std::string& id) = 0;
  // In one transaction: unless the subscription's copy is live or dead-lettered (or the event
  // is gone), publishes the request's message as Publish does and makes it the copy, counting
  // a redelivery.
  virtual Result<RedeliverResult> Redeliver(const RedeliverRequest& request) = 0;
  // Deletes events past their retain_until. (DeleteQueue of a topic and DeleteTenant delete
  // theirs.)
  virtual Result<int64_t> DeleteExpiredTopicEvents(TimeMs now, int limit) = 0;

  // --- the sweeper's inputs: bounded batches, oldest first
  virtual Result<std::vector<MessageRecord>> ExpiredLeases(TimeMs now, int limit) = 0;
  virtual Result<std::vector<MessageRecord>> ExpiredMessages(TimeMs now, int limit) = 0;
  // Deletes messages past their retention; returns them (for the drop log).
  virtual Result<std::vector<MessageRecord>> DeleteRetained(TimeMs now, int limit) = 0;
  // Forgets idempotency keys older than their window; returns how many.
  virtual Result<int64_t> DeleteExpiredIdempotencyKeys(TimeMs now, int limit) = 0;

  // --- depths: ready, delayed and leased messages of a queue, and the dead letters whose
  // origin it is; for a dead-letter queue, ready is the dead letters it holds.
  virtual Result<QueueDepth> GetDepth(int64_t queue_id, TimeMs now) = 0;
  virtual Result<std::vector<QueueDepthRow>> AllDepths(TimeMs now) = 0;
};

}  // namespace redrive::store
