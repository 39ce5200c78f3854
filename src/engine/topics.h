// Topics: topics, their subscriptions and the endpoints of push subscriptions, as operators
// manage them. A topic is a record of the queue catalog (QueueKind::kTopic) that holds no
// messages; each subscription is a standard queue named "<topic>:<subscription>" with its own
// retry policy, dead-letter queue and state (subscription_config.h). Publishing to a topic
// (the fan-out) is Messages::Publish; delivering to endpoints is the PushDispatcher.
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store. Thread-safety: thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/coordination.h"
#include "engine/model.h"
#include "engine/queues.h"
#include "store/control_store.h"

namespace redrive::engine {

class AuditLog;
class Tenancy;

struct TopicInfo {
  std::string tenant;
  std::string name;
  TopicConfig config;
  std::vector<QueueInfo> subscriptions;  // with depths
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
};

class Topics {
 public:
  Topics(store::ControlStore& control, Clock& clock, Random& random, Tenancy& tenancy,
         Queues& queues, Coordinator& coordinator, AuditLog& audit);

  // Creates the topic and, if missing, its dead-letter queue. Errors: kTenantNotFound,
  // kInvalidName, kInvalidArgument, kAlreadyExists (a topic or queue of that name).
  Result<TopicInfo> CreateTopic(const Principal& actor, const std::string& tenant,
                                const std::string& name, const TopicConfig& config);
  // Errors: kTopicNotFound, kInvalidArgument.
  Result<TopicInfo> UpdateTopic(const Principal& actor, const std::string& tenant,
                                const std::string& name, const TopicConfig& config);
  Result<TopicInfo> GetTopic(const std::string& tenant, const std::string& name);
  Result<std::vector<TopicInfo>> ListTopics(const std::string& tenant);
  // Deletes its subscriptions (with their messages; their dead letters stay), then the topic.
  Status DeleteTopic(const Principal& actor, const std::string& tenant, const std::string& name);

  // A push subscription created without a secret gets a new one (push::NewSecret). Errors: as
  // Queues::CreateSubscription.
  Result<QueueInfo> CreateSubscription(const Principal& actor, const std::string& tenant,
                                       const std::string& topic, const std::string& subscription,
                                       QueueConfig config);
  // Errors: kTopicNotFound, kSubscriptionNotFound.
  Result<QueueInfo> GetSubscription(const std::string& tenant, const std::string& topic,
                                    const std::string& subscription);
  Result<std::vector<QueueInfo>> ListSubscriptions(const std::string& tenant,
                                                   const std::string& topic);
  // Errors: as GetSubscription, and kInvalidArgument.
  Result<QueueInfo> UpdateSubscription(const Principal& actor, const std::string& tenant,
                                       const std::string& topic, const std::string& subscription,
                                       const QueueConfig& config);
  Status DeleteSubscription(const Principal& actor, const std::string& tenant,
                            const std::string& topic, const std::string& subscription);

  // Disables or re-enables the endpoint of a push subscription; a disabled endpoint keeps its
  // messages. Errors: as GetSubscription, and kInvalidArgument when it is not a push
  // subscription.
  Result<QueueInfo> SetEndpointDisabled(const Principal& actor, const std::string& tenant,
                                        const std::string& topic, const std::string& subscription,
                                        bool disabled, const std::string& reason);
  // A new current secret; the old one keeps signing (beside it) for `overlap`. Returns the
  // subscription, whose push.secrets[0] is the new secret. Errors: as SetEndpointDisabled, and
  // kInvalidArgument for an overlap outside 0s..7d.
  Result<QueueInfo> RotateSecret(const Principal& actor, const std::string& tenant,
                                 const std::string& topic, const std::string& subscription,
                                 DurationMs overlap);

 private:
  Result<QueueRef> LookupTopic(const std::string& tenant, const std::string& name);
  Result<QueueRef> LookupSubscription(const std::string& tenant, const std::string& topic,
                                      const std::string& subscription);
  Result<TopicInfo> MakeTopicInfo(const CachedQueue& topic);

  store::ControlStore& control_;
  Clock& clock_;
  Random& random_;
  Tenancy& tenancy_;
  Queues& queues_;
  Coordinator& coordinator_;
  AuditLog& audit_;
};

}  // namespace redrive::engine
