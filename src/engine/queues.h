// Queues: the catalog of a tenant's queues and dead-letter queues, their configuration, and
// the cache every other service reads them through. A queue's change is invalidated through
// the Coordinator (kQueue "tenant/name"; a tenant's deletion, kTenant, drops all of its).
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store. Thread-safety: thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/coordination.h"
#include "engine/model.h"
#include "engine/queue_config.h"
#include "store/control_store.h"
#include "store/message_store.h"

namespace redrive::engine {

class AuditLog;
class Tenancy;

struct QueueInfo {
  std::string tenant;
  std::string name;
  store::QueueKind kind = store::QueueKind::kStandard;
  QueueConfig config;
  store::QueueDepth depth;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
};

// A queue as the services use it: its record and its parsed configuration (empty for a
// dead-letter queue). Immutable; a change makes a new one.
struct CachedQueue {
  store::QueueRecord record;
  QueueConfig config;  // a standard queue's (a subscription's too)
  TopicConfig topic;   // a topic's
};
using QueueRef = std::shared_ptr<const CachedQueue>;

class Queues : public CoordinationListener {
 public:
  Queues(store::ControlStore& control, store::MessageStore& messages, Clock& clock,
         Tenancy& tenancy, Coordinator& coordinator, AuditLog& audit, EngineCounters& counters);
  ~Queues() override;
  Queues(const Queues&) = delete;
  Queues& operator=(const Queues&) = delete;

  // Each change is audited with `actor`; without one, as `system`)
  // Creates the queue and, if missing, its dead-letter queue. Errors: kTenantNotFound,
  // kInvalidName, kInvalidArgument, kAlreadyExists, kQuotaExceeded (maxQueues).
  Result<QueueInfo> CreateQueue(const Principal& actor, const std::string& tenant,
                                const std::string& name, const QueueConfig& config);
  Result<QueueInfo> CreateQueue(const std::string& tenant, const std::string& name,
                                const QueueConfig& config);
  // Creates the queue of subscription `subscription` of topic `topic`, named
  // "<topic>:<subscription>". Errors: as CreateQueue, and kTopicNotFound, kInvalidArgument
  // (the topic has kMaxSubscriptionsPerTopic subscriptions).
  Result<QueueInfo> CreateSubscription(const Principal& actor, const std::string& tenant,
                                       const std::string& topic, const std::string& subscription,
                                       const QueueConfig& config);
  // Replaces the attributes. Errors: kQueueNotFound, kInvalidArgument,
  // kDeadLetterQueueReadOnly (a dead-letter queue has no attributes to change).
  Result<QueueInfo> UpdateQueue(const Principal& actor, const std::string& tenant,
                                const std::string& name, const QueueConfig& config);
  Result<QueueInfo> UpdateQueue(const std::string& tenant, const std::string& name,
                                const QueueConfig& config);
  // With depths. Errors: kQueueNotFound.
  Result<QueueInfo> GetQueue(const std::string& tenant, const std::string& name);
  Result<std::vector<QueueInfo>> ListQueues(const std::string& tenant);
  // Deletes the queue and its messages; dead letters from it stay. Errors: kQueueNotFound.
  Status DeleteQueue(const Principal& actor, const std::string& tenant, const std::string& name);
  Status DeleteQueue(const std::string& tenant, const std::string& name);

  // The queue, from the cache. Errors: kQueueNotFound.
  Result<QueueRef> Lookup(const std::string& tenant, const std::string& name);
  Result<QueueRef> LookupById(int64_t id);
  // Every push subscription of every tenant (the PushDispatcher's list of endpoints). Reads the
  // catalog: call it seconds apart, not per message.
  Result<std::vector<QueueRef>> AllPushSubscriptions();
  // The subscriptions (their queues) of a topic, by name, from the cache. Errors:
  // kTopicNotFound.
  Result<std::shared_ptr<const std::vector<QueueRef>>> SubscriptionsOf(const std::string& tenant,
                                                                       const std::string& topic);

  void OnInvalidate(CacheScope scope, const std::string& key) override;

 private:
  // CreateQueue and CreateSubscription, once the name is checked.
  Result<QueueInfo> CreateStandard(const Principal& actor, const std::string& tenant,
                                   const std::string& name, const QueueConfig& config);

 public:
  // Creates the dead-letter queue `name` if it does not exist. Errors: kInvalidArgument when
  // `name` is a standard queue or a topic.
  Status EnsureDeadLetterQueue(const std::string& tenant, const std::string& name);

 private:
  // With onExhausted reroute: the destination is another standard queue of the tenant.
  Status CheckRerouteTo(const std::string& tenant, const std::string& name,
                        const QueueConfig& config);
  Result<QueueInfo> MakeQueueInfo(const store::QueueRecord& record);

  store::ControlStore& control_;
  store::MessageStore& messages_;
  Clock& clock_;
  Tenancy& tenancy_;
  Coordinator& coordinator_;
  AuditLog& audit_;
  EngineCounters& counters_;

  std::mutex mu_;
  // By "tenant/name"; dropped on invalidation. GUARDED_BY(mu_)
  std::unordered_map<std::string, QueueRef> queues_;
  // By "tenant/topic"; dropped when the topic or one of its subscriptions changes.
  // GUARDED_BY(mu_)
  std::unordered_map<std::string, std::shared_ptr<const std::vector<QueueRef>>> subscriptions_;
  uint64_t generation_ = 0;  // counts invalidations, so a list read meanwhile is not cached
};

}  // namespace redrive::engine
