// Messages: publish, receive (with long polls), ack, nack and extend; the failure plan every
// failed delivery goes through (a nack, an ended lease, an expired TTL): retry by policy or
// take the exhausted action; and the sweeper's pass over leases, TTLs and retention.
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store.
//
// Thread-safety: thread-safe. Two waker threads (from construction to destruction) finish
// parked long polls: they lease for them when messages become ready (the Coordinator's
// SignalReady, from this node or another) and answer them when their wait ends. A long poll
// parked by ReceiveAsync holds no thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/coordination.h"
#include "engine/model.h"
#include "engine/queues.h"
#include "store/message_store.h"

namespace redrive::engine {

class AuditLog;
class DeliveryOutcomes;
class Redactor;
class Tenancy;

struct NewMessage {
  std::string body;  // bytes
  store::Attributes attributes;
  std::string idempotency_key;
  std::optional<DurationMs> delay;  // overrides the queue's delivery delay
};

inline constexpr size_t kMaxConsumerName = 256;  // bytes

struct ReceiveOptions {
  int64_t max_messages = 1;                      // 1 to EngineOptions::max_receive
  DurationMs wait = 0;                           // 0 to EngineOptions::max_wait
  std::optional<DurationMs> visibility_timeout;  // overrides the queue's; 1s to 12h
  // Recorded in the attempt journal, at most kMaxConsumerName bytes; empty = `caller`.
  std::string consumer;
  std::string caller;  // the id of the token that receives
};

struct Delivery {
  store::MessageRecord message;
  std::string receipt;  // opaque receipt handle for ack, nack, extend
};

// --- topic events (topic_events.cc): a topic's recent messages and, per subscription, the
// state of its copy.
enum class DeliveryState { kPending, kDelivering, kDelivered, kDeadLettered, kDropped };
// "pending", "delivering", "delivered", "dead-lettered", "dropped".
std::string_view DeliveryStateName(DeliveryState state);
std::optional<DeliveryState> ParseDeliveryState(std::string_view name);

struct TopicDelivery {
  std::string subscription;
  DeliveryState state = DeliveryState::kPending;
  std::string queue;           // pending, delivering: the queue it is in (moved by a reroute)
  int32_t delivery_count = 0;  // pending, delivering: deliveries so far
  TimeMs next_at = 0;          // pending: ready at; delivering: the lease ends at
  TimeMs delivered_at = 0;     // delivered: when the delivery that succeeded began
  std::string dead_letter_id;  // dead-lettered: the dead letter, to restore or browse
  std::string dead_letter_reason;
  TimeMs dead_lettered_at = 0;
  int32_t redeliveries = 0;  // times redelivered on request
};

struct TopicEvent {
  std::string id;
  TimeMs published_at = 0;
  TimeMs retain_until = 0;
  store::Attributes attributes;
  std::string idempotency_key;
  int64_t body_size = 0;
  std::string body;                       // GetEvent only
  std::vector<TopicDelivery> deliveries;  // by subscription name
};

struct EventQuery {
  TimeMs since = 0;                    // published at or after; 0 = no bound
  TimeMs until = 0;                    // published before; 0 = no bound
  std::optional<DeliveryState> state;  // events with a delivery in this state
  std::string subscription;            // only this subscription's deliveries (and events with one)
  int limit = 100;                     // 1..1000
  std::string cursor;                  // a page's next_cursor; empty = from the newest
  bool unredacted = false;             // the caller holds dlq:read-unredacted
};

struct EventPage {
  std::vector<TopicEvent> events;  // newest first
  // Non-empty when more events may follow: pass it as the next query's cursor. A page can hold
  // fewer than `limit` events and still have one (a filter that few events match).
  std::string next_cursor;
};

// The error of a publish the store refused (kQuotaExceeded, kQueueFull), with the figures the
// store compared; `what` names the queue ("queue orders", "subscription hook").
Status RefusalStatus(const store::PublishResult& result, const std::string& tenant,
                     const std::string& what, int64_t max_length, const TenantQuotas& quotas);

// The end of a receive: its deliveries (empty when the wait passed) or its error.
using ReceiveCallback = std::function<void(Result<std::vector<Delivery>>)>;

struct NackRequest {
  std::string receipt;
  std::string reason;
  std::string error;
  std::optional<DurationMs> delay;  // overrides the backoff; not with dead_letter
  bool dead_letter = false;         // skip the remaining retries
  // Recorded in the journal, at most kMaxConsumerName bytes; empty = `caller`, else the
  // consumer of the delivery.
  std::string consumer;
  std::string caller;  // the id of the token that nacks
  // Push deliveries (PushDispatcher) only, not the API: what the endpoint answered, for the
  // journal; Retry-After, honoured within the retry policy's bounds; and a reason that skips
  // the remaining retries (permanent-failure).
  int status = 0;
  int64_t duration_ms = 0;
  std::string response;
  std::optional<DurationMs> retry_after;
  std::string force_reason;
};

class Messages : public CoordinationListener {
 public:
  Messages(store::MessageStore& store, Clock& clock, Random& random, const EngineOptions& options,
           Queues& queues, Tenancy& tenancy, Coordinator& coordinator, EngineCounters& counters,
           AuditLog& audit, DeliveryOutcomes& outcomes, Redactor& redactor);
  ~Messages() override;
  Messages(const Messages&) = delete;
  Messages& operator=(const Messages&) = delete;

  // All or nothing: every message is validated before any is stored. Errors: kQueueNotFound,
  // kDeadLetterQueueReadOnly, kEmptyBatch, kBatchTooLarge, kMessageTooLarge,
  // kTooManyAttributes, kAttributeTooLarge, kInvalidArgument, kQueueFull, kQuotaExceeded
  // (maxMessages or maxBytes of the tenant: nothing of the batch is stored).
  Result<std::vector<store::PublishOutcome>> Publish(const std::string& tenant,
                                                     const std::string& queue,
                                                     std::vector<NewMessage> messages);
  // Publishes to a topic: each message goes to every subscription whose filter it matches,
  // all in one transaction or none; a message no subscription takes is counted, and
  // dead-lettered with reason no-route if the topic says so. Errors: as Publish, with
  // kTopicNotFound for kQueueNotFound. (Publish given a topic's name does the same.)
  Result<std::vector<store::PublishOutcome>> PublishTopic(const std::string& tenant,
                                                          const std::string& topic,
                                                          std::vector<NewMessage> messages);
  // Leases up to max_messages. With wait > 0 and nothing ready, the receive parks as a waiter
  // (no thread) until messages become ready or the wait passes; `done` is then called once,
  // from a waker thread, or from the thread that calls Stop(). Otherwise `done` is called before
  // ReceiveAsync returns. Waiters on a queue are served in arrival order, and a publish of n
  // messages wakes at most the waiters those n messages satisfy (one lease for several waiters
  // of the same consumer and visibility timeout).
  // Errors: kQueueNotFound, kDeadLetterQueueReadOnly, kInvalidArgument.
  void ReceiveAsync(const std::string& tenant, const std::string& queue,
                    const ReceiveOptions& options, ReceiveCallback done);
  // ReceiveAsync, blocking the calling thread until `done`.
  Result<std::vector<Delivery>> Receive(const std::string& tenant, const std::string& queue,
                                        const ReceiveOptions& options);
  // A topic's events (the messages published to it within its eventRetention), newest first,
  // with the state of each subscription's copy. Bodies and attributes are redacted by the rules
  // of every subscription of the topic (Redactor::RedactTopicEvent) unless `unredacted` (the
  // caller holds dlq:read-unredacted). Errors: kTopicNotFound, kInvalidArgument (limit,
  // since after until), kInvalidQuery (cursor).
  Result<EventPage> ListEvents(const std::string& tenant, const std::string& topic,
                               const EventQuery& query);
  // One event, with its body (redacted as ListEvents says). Errors: kTopicNotFound,
  // kEventNotFound.
  Result<TopicEvent> GetEvent(const std::string& tenant, const std::string& topic,
                              const std::string& id, bool unredacted = false);
  // Publishes the event's message again to one subscription, as a fresh copy (same copy id, so
  // an endpoint sees the same webhook-id; delivery count 0; lineage counts the redelivery),
  // whatever the subscription's filter says, and audits it. Returns the copy's delivery.
  // Errors: kTopicNotFound, kSubscriptionNotFound, kEventNotFound, kDeliveryPending (the copy
  // is still in the queue), kDeliveryDeadLettered (restore the dead letter instead),
  // kMessageTooLarge, kQueueFull, kQuotaExceeded.
  Result<TopicDelivery> Redeliver(const Principal& actor, const std::string& tenant,
                                  const std::string& topic, const std::string& subscription,
                                  const std::string& id);

  // Long polls parked now (for tests and metrics).
  int64_t parked_receives();
  // One Status per receipt: ok, kInvalidReceipt or kLeaseLost. Errors (whole call):
  // kQueueNotFound, kEmptyBatch, kBatchTooLarge, kDeadLetterQueueReadOnly (as for Nack and
  // ExtendLeases: a dead-letter queue has no leases).
  Result<std::vector<Status>> Ack(const std::string& tenant, const std::string& queue,
                                  const std::vector<std::string>& receipts);
  // Records the failure in the journal, then retries by policy or takes the exhausted action.
  // Errors (whole call, nothing applied): kInvalidArgument for a delay outside 0s..7d, a delay
  // together with dead_letter, a reason or consumer too long.
  Result<std::vector<Status>> Nack(const std::string& tenant, const std::string& queue,
                                   const std::vector<NackRequest>& nacks);
  // Hands leases back unused: each message is ready again at once, its delivery count goes back
  // by one and its journal is untouched (a consumer that leased ahead and will not deliver: the
  // push dispatcher's buffer when a circuit opens). One Status per receipt, as Ack.
  Result<std::vector<Status>> Release(const std::string& tenant, const std::string& queue,
                                      const std::vector<std::string>& receipts);
  Result<std::vector<Status>> ExtendLeases(const std::string& tenant, const std::string& queue,
                                           const std::vector<std::string>& receipts,
                                           DurationMs visibility_timeout);

  // One pass over leases that ended without an ack or nack (failed deliveries), messages past
  // their TTL (the exhausted action, reason expired), messages past their queue's retention,
  // and expired idempotency keys. Returns how many messages it moved or removed.
  Result<int64_t> SweepOnce();
  Result<std::vector<store::QueueDepthRow>> AllDepths();

  // Answers every parked long poll with no messages, and every later one at once, until
  // ResumeLongPolls (the engine's Stop and Start).
  void StopLongPolls();
  void ResumeLongPolls();

  void OnReady(int64_t queue_id) override;

 private:
  // A receive parked until messages are ready or its deadline passes (long_poll.cc).
  struct Waiter {
    QueueRef queue;
    int max_messages = 1;
    DurationMs visibility_timeout = 0;
    std::string consumer;
    TimeMs deadline = 0;
    uint64_t id = 0;
    ReceiveCallback done;
  };
  using WaiterList = std::list<Waiter>;
  struct QueueWaiters {
    WaiterList waiting;            // in arrival order
    uint64_t epoch = 0;            // counts Notify calls, so that a receive about to park sees one
    bool draining = false;         // a waker thread is leasing for this queue's waiters
    bool drain_requested = false;  // Notify came while draining: go round again
  };

  // The checks of a publish's batch that need no store: sizes, attributes, keys, delays.
  Status CheckBatch(const std::vector<NewMessage>& messages, int64_t max_message_size,
                    const std::string& whose) const;
  Result<std::vector<store::PublishOutcome>> PublishToTopic(const CachedQueue& topic,
                                                            std::vector<NewMessage> messages);
  // A publish request of copies into subscription `sub` (its limits, overflow and dedup),
  // without messages; and the times of one copy published `now`.
  store::PublishRequest SubscriptionRequest(const CachedQueue& sub, TimeMs now,
                                            const TenantQuotas& quotas);
  static void SetCopyTimes(const QueueConfig& config, TimeMs now, std::optional<DurationMs> delay,
                           store::MessageRecord* copy);
  // The topic `name`. Errors: kTopicNotFound.
  Result<QueueRef> LookupTopic(const std::string& tenant, const std::string& name);
  TopicEvent MakeEvent(const CachedQueue& topic, store::TopicEventRow row);
  // The shared path of every failed delivery (nack, ended lease, expired TTL): journal it, then
  // decide between a retry and the exhausted action. `force_reason` non-empty skips the
  // remaining retries with that reason; `journal` already holds this failure (TTL expiry).
  store::FailureAction PlanFailure(const CachedQueue& queue, const store::MessageRecord& message,
                                   const store::Receipt& receipt, store::Attempt attempt,
                                   std::optional<DurationMs> delay, const std::string& force_reason,
                                   std::optional<DurationMs> retry_after = std::nullopt);
  // The queue's onExhausted action for a message that leaves with `reason` and `cause`.
  store::FailureAction PlanExhausted(const CachedQueue& queue, const store::MessageRecord& message,
                                     const store::Receipt& receipt, store::Journal journal,
                                     const std::string& reason, const std::string& cause);
  store::FailureAction DropAction(const store::Receipt& receipt, const std::string& reason,
                                  const std::string& cause);
  // Dead-lettered with `reason` and `death_cause`; the failure group is that of `cause`. When
  // the queue's redaction says storeRedacted, the store is given what to strip
  // (Redactor::StoreRedaction) and both causes lose the values it strips.
  store::FailureAction DeadLetterAction(const CachedQueue& queue,
                                        const store::MessageRecord& message,
                                        const store::Receipt& receipt, store::Journal journal,
                                        const std::string& reason, std::string cause,
                                        std::string death_cause);
  // Moved to the queue `to`, or dead-lettered saying why `to` refused it.
  store::FailureAction RerouteAction(const CachedQueue& queue, const store::MessageRecord& message,
                                     const store::Receipt& receipt, store::Journal journal,
                                     const std::string& to, const std::string& reason,
                                     const std::string& cause);
  // onExhausted script: runs the queue's script for the message (on the calling thread), logs
  // the lines it kept, counts its decision and turns it into an action: deadLetter, drop and
  // reroute as the actions of those names, retryIn a requeue (an expired message, whose TTL
  // has passed, is dead-lettered instead), a failed run a dead letter with reason script.
  store::FailureAction ScriptAction(const CachedQueue& queue, const store::MessageRecord& message,
                                    const store::Receipt& receipt, store::Journal journal,
                                    const std::string& reason, const std::string& cause);
  // The queue of an ack, nack or extend of `receipts` receipts, with the checks they share.
  // Errors: kTenantNotFound, kQueueNotFound, kDeadLetterQueueReadOnly, kEmptyBatch,
  // kBatchTooLarge.
  // The message `receipt` holds now, with the receipt decoded into `*decoded`; nullopt, with
  // `*why` set (kInvalidReceipt, kLeaseLost), when it holds none.
  Result<std::optional<store::MessageRecord>> HeldMessage(const CachedQueue& queue,
                                                          const std::string& receipt,
                                                          store::Receipt* decoded, Status* why);
  Result<QueueRef> LeasedQueue(const std::string& tenant, const std::string& queue,
                               size_t receipts);
  // The queue `to` that a message exhausted on `queue` moves to when rerouted (by onExhausted
  // reroute or a script), if it can take it: another standard queue of the tenant, with room,
  // whose maxMessageSize the body fits. The error's message says why not.
  Result<QueueRef> RerouteDestination(const CachedQueue& queue, const store::MessageRecord& message,
                                      const std::string& to);
  // Applies the planned failures of one queue in one store write, then counts, logs and wakes
  // receivers. `messages[i]` is the message of `actions[i]`. One bool per action: false when
  // the lease was lost meanwhile.
  Result<std::vector<bool>> ApplyFailures(const CachedQueue& queue,
                                          const std::vector<const store::MessageRecord*>& messages,
                                          const std::vector<store::FailureAction>& actions);
  // The operator's log line of one failure, for queues with logRetries; `cause` is the action's,
  // without the values the queue's redaction rules hide.
  void LogRetry(const CachedQueue& queue, const store::MessageRecord& message,
                const store::FailureAction& action, const std::string& cause, TimeMs now);
  // When a dead letter of `origin` made now expires: the queue's deadLetterRetention, else the
  // server's dead_letter_retention; 0 (never) when that is 0.
  TimeMs DeadLetterRetainUntil(const QueueConfig& origin, TimeMs now) const;

  // Long polls (long_poll.cc). Notify: messages of the queue became ready now.
  void Notify(int64_t queue_id);
  // One lease of up to `max` messages for `consumer`.
  Result<std::vector<Delivery>> LeaseNow(const CachedQueue& queue, int max,
                                         DurationMs visibility_timeout,
                                         const std::string& consumer);
  // Parks `w` (moving from it) unless the queue's epoch moved past `epoch`: then returns false
  // and leaves `w` as it was, to lease again.
  bool Park(Waiter& w, uint64_t epoch);
  uint64_t EpochOf(int64_t queue_id);
  void WakerLoop();
  // Leases for the waiters of one queue, in order, until one finds nothing.
  void Drain(int64_t queue_id);
  // Ends every parked long poll with no messages.
  void EndLongPolls();
  std::string NewLeaseToken();

  store::MessageStore& store_;
  Clock& clock_;
  Random& random_;
  const EngineOptions& options_;
  Queues& queues_;
  Tenancy& tenancy_;
  Coordinator& coordinator_;
  EngineCounters& counters_;
  AuditLog& audit_;
  DeliveryOutcomes& outcomes_;  // acks, nacks and ended leases are counted there
  Redactor& redactor_;

  // Long polls. Lock order: wait_mu_ before nothing else; callbacks run without it.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;                    // the waker threads wait on it
  std::unordered_map<int64_t, QueueWaiters> waiters_;  // by queue id. GUARDED_BY(wait_mu_)
  // Parked waiters by deadline. GUARDED_BY(wait_mu_)
  std::map<std::pair<TimeMs, uint64_t>, std::pair<int64_t, WaiterList::iterator>> deadlines_;
  std::vector<int64_t> drains_;        // queues to drain. GUARDED_BY(wait_mu_)
  uint64_t next_waiter_id_ = 0;        // GUARDED_BY(wait_mu_)
  int64_t parked_ = 0;                 // GUARDED_BY(wait_mu_)
  TimeMs next_recheck_ = 0;            // GUARDED_BY(wait_mu_)
  bool wakers_exit_ = false;           // GUARDED_BY(wait_mu_)
  std::atomic<bool> stopping_{false};  // long polls are answered at once
  std::vector<std::thread> wakers_;
};

}  // namespace redrive::engine
