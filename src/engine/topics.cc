// Topics: topics, subscriptions and endpoints (topics.h).
#include "engine/topics.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/tenancy.h"
#include "push/signature.h"

namespace redrive::engine {
namespace {

using store::QueueKind;

Status TopicNotFound(const std::string& name) {
  return Status(ErrorCode::kTopicNotFound, "topic '" + name + "' not found");
}

Status SubscriptionNotFound(const std::string& topic, const std::string& subscription) {
  return Status(ErrorCode::kSubscriptionNotFound,
                "subscription '" + subscription + "' of topic '" + topic + "' not found");
}

}  // namespace

Topics::Topics(store::ControlStore& control, Clock& clock, Random& random, Tenancy& tenancy,
               Queues& queues, Coordinator& coordinator, AuditLog& audit)
    : control_(control),
      clock_(clock),
      random_(random),
      tenancy_(tenancy),
      queues_(queues),
      coordinator_(coordinator),
      audit_(audit) {}

Result<QueueRef> Topics::LookupTopic(const std::string& tenant, const std::string& name) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  auto q = queues_.Lookup(tenant, name);
  if (!q.ok()) {
    if (q.status().code() == ErrorCode::kQueueNotFound) return TopicNotFound(name);
    return q.status();
  }
  if (q.value()->record.kind != QueueKind::kTopic) return TopicNotFound(name);
  return q;
}

Result<QueueRef> Topics::LookupSubscription(const std::string& tenant, const std::string& topic,
                                            const std::string& subscription) {
  REDRIVE_RETURN_IF_ERROR(LookupTopic(tenant, topic).status());
  auto q = queues_.Lookup(tenant, SubscriptionQueueName(topic, subscription));
  if (!q.ok()) {
    if (q.status().code() == ErrorCode::kQueueNotFound) {
      return SubscriptionNotFound(topic, subscription);
    }
    return q.status();
  }
  return q;
}

Result<TopicInfo> Topics::MakeTopicInfo(const CachedQueue& topic) {
  TopicInfo info;
  info.tenant = topic.record.tenant;
  info.name = topic.record.name;
  info.config = topic.topic;
  info.created_at = topic.record.created_at;
  info.updated_at = topic.record.updated_at;
  REDRIVE_ASSIGN_OR_RETURN(info.subscriptions, ListSubscriptions(info.tenant, info.name));
  return info;
}

Result<TopicInfo> Topics::CreateTopic(const Principal& actor, const std::string& tenant,
                                      const std::string& name, const TopicConfig& config) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateName(name, "topic"));
  REDRIVE_RETURN_IF_ERROR(ValidateTopicConfig(config));
  REDRIVE_ASSIGN_OR_RETURN(auto existing, control_.GetQueue(tenant, name));
  if (existing) {
    return Status(ErrorCode::kAlreadyExists,
                  std::string(existing->kind == QueueKind::kTopic ? "topic" : "a queue named") +
                      " '" + name + "' already exists");
  }
  REDRIVE_RETURN_IF_ERROR(queues_.EnsureDeadLetterQueue(tenant, config.dead_letter_queue));
  TimeMs now = clock_.Now();
  store::QueueRecord rec{0,   tenant, name, QueueKind::kTopic, TopicConfigToJson(config).dump(),
                         now, now};
  auto id = control_.CreateQueue(rec);
  if (!id.ok()) {
    if (id.status().code() == ErrorCode::kAlreadyExists) {
      return Status(ErrorCode::kAlreadyExists, "topic '" + name + "' already exists");
    }
    return id.status();
  }
  coordinator_.Invalidate(CacheScope::kQueue, tenant + "/" + name);
  audit_.Write(tenant, actor.token_id, "topic.create",
               nlohmann::json{{"topic", name}, {"attributes", TopicConfigToJson(config)}});
  return GetTopic(tenant, name);
}

Result<TopicInfo> Topics::UpdateTopic(const Principal& actor, const std::string& tenant,
                                      const std::string& name, const TopicConfig& config) {
  REDRIVE_ASSIGN_OR_RETURN(auto topic, LookupTopic(tenant, name));
  REDRIVE_RETURN_IF_ERROR(ValidateTopicConfig(config));
  REDRIVE_RETURN_IF_ERROR(queues_.EnsureDeadLetterQueue(tenant, config.dead_letter_queue));
  store::QueueRecord rec = topic->record;
  nlohmann::json before = TopicConfigToJson(topic->topic);
  nlohmann::json after = TopicConfigToJson(config);
  rec.config_json = after.dump();
  rec.updated_at = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(bool updated, control_.UpdateQueue(rec));
  coordinator_.Invalidate(CacheScope::kQueue, tenant + "/" + name);
  if (!updated) return TopicNotFound(name);
  audit_.Write(tenant, actor.token_id, "topic.update",
               nlohmann::json{{"topic", name}, {"changed", AuditLog::Changes(before, after)}});
  return GetTopic(tenant, name);
}

Result<TopicInfo> Topics::GetTopic(const std::string& tenant, const std::string& name) {
  REDRIVE_ASSIGN_OR_RETURN(auto topic, LookupTopic(tenant, name));
  return MakeTopicInfo(*topic);
}

Result<std::vector<TopicInfo>> Topics::ListTopics(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListQueues(tenant));
  std::vector<TopicInfo> out;
  for (const auto& r : records) {
    if (r.kind != QueueKind::kTopic) continue;
    auto topic = LookupTopic(tenant, r.name);
    if (!topic.ok() && topic.status().code() == ErrorCode::kTopicNotFound) continue;
    REDRIVE_RETURN_IF_ERROR(topic.status());
    REDRIVE_ASSIGN_OR_RETURN(auto info, MakeTopicInfo(*topic.value()));
    out.push_back(std::move(info));
  }
  return out;
}

Status Topics::DeleteTopic(const Principal& actor, const std::string& tenant,
                           const std::string& name) {
  REDRIVE_ASSIGN_OR_RETURN(auto topic, LookupTopic(tenant, name));
  REDRIVE_ASSIGN_OR_RETURN(auto subs, queues_.SubscriptionsOf(tenant, name));
  for (const auto& sub : *subs) {
    Status st = queues_.DeleteQueue(actor, tenant, sub->record.name);
    if (!st.ok() && st.code() != ErrorCode::kQueueNotFound) return st;
  }
  REDRIVE_ASSIGN_OR_RETURN(bool deleted, control_.DeleteQueue(topic->record.id));
  coordinator_.Invalidate(CacheScope::kQueue, tenant + "/" + name);
  if (!deleted) return TopicNotFound(name);
  audit_.Write(tenant, actor.token_id, "topic.delete",
               nlohmann::json{{"topic", name}, {"subscriptionsDeleted", subs->size()}});
  return Status::Ok();
}

Result<QueueInfo> Topics::CreateSubscription(const Principal& actor, const std::string& tenant,
                                             const std::string& topic,
                                             const std::string& subscription, QueueConfig config) {
  if (config.push && config.push->secrets.empty()) {
    config.push->secrets.push_back(EndpointSecret{push::NewSecret(random_), 0});
  }
  return queues_.CreateSubscription(actor, tenant, topic, subscription, config);
}

Result<QueueInfo> Topics::GetSubscription(const std::string& tenant, const std::string& topic,
                                          const std::string& subscription) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LookupSubscription(tenant, topic, subscription));
  return queues_.GetQueue(tenant, q->record.name);
}

Result<std::vector<QueueInfo>> Topics::ListSubscriptions(const std::string& tenant,
                                                         const std::string& topic) {
  REDRIVE_RETURN_IF_ERROR(LookupTopic(tenant, topic).status());
  REDRIVE_ASSIGN_OR_RETURN(auto subs, queues_.SubscriptionsOf(tenant, topic));
  std::vector<QueueInfo> out;
  for (const auto& sub : *subs) {
    auto info = queues_.GetQueue(tenant, sub->record.name);
    if (!info.ok() && info.status().code() == ErrorCode::kQueueNotFound) continue;
    REDRIVE_RETURN_IF_ERROR(info.status());
    out.push_back(std::move(info.value()));
  }
  return out;
}

Result<QueueInfo> Topics::UpdateSubscription(const Principal& actor, const std::string& tenant,
                                             const std::string& topic,
                                             const std::string& subscription,
                                             const QueueConfig& config) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LookupSubscription(tenant, topic, subscription));
  QueueConfig next = config;
  if (next.push && next.push->secrets.empty()) {
    // Turning a pull subscription into a push one: it needs a secret.
    next.push->secrets.push_back(EndpointSecret{push::NewSecret(random_), 0});
  }
  return queues_.UpdateQueue(actor, tenant, q->record.name, next);
}

Status Topics::DeleteSubscription(const Principal& actor, const std::string& tenant,
                                  const std::string& topic, const std::string& subscription) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LookupSubscription(tenant, topic, subscription));
  return queues_.DeleteQueue(actor, tenant, q->record.name);
}

Result<QueueInfo> Topics::SetEndpointDisabled(const Principal& actor, const std::string& tenant,
                                              const std::string& topic,
                                              const std::string& subscription, bool disabled,
                                              const std::string& reason) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LookupSubscription(tenant, topic, subscription));
  if (!q->config.push) {
    return Status(ErrorCode::kInvalidArgument,
                  "subscription '" + subscription + "' is pulled; it has no endpoint");
  }
  QueueConfig next = q->config;
  bool was = next.push->disabled;
  next.push->disabled = disabled;
  next.push->disabled_reason = disabled ? reason : "";
  next.push->disabled_at = disabled ? clock_.Now() : 0;
  REDRIVE_ASSIGN_OR_RETURN(auto info, queues_.UpdateQueue(actor, tenant, q->record.name, next));
  if (was != disabled) {
    audit_.Write(tenant, actor.token_id, disabled ? "endpoint.disabled" : "endpoint.enabled",
                 nlohmann::json{{"subscription", q->record.name}, {"reason", reason}});
  }
  return info;
}

Result<QueueInfo> Topics::RotateSecret(const Principal& actor, const std::string& tenant,
                                       const std::string& topic, const std::string& subscription,
                                       DurationMs overlap) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LookupSubscription(tenant, topic, subscription));
  if (!q->config.push) {
    return Status(ErrorCode::kInvalidArgument,
                  "subscription '" + subscription + "' is pulled; it has no endpoint");
  }
  if (overlap < 0 || overlap > 7 * 86'400'000LL) {
    return Status(ErrorCode::kInvalidArgument, "overlap must be between 0s and 7d");
  }
  TimeMs now = clock_.Now();
  QueueConfig next = q->config;
  std::vector<EndpointSecret> secrets{EndpointSecret{push::NewSecret(random_), 0}};
  for (const auto& s : next.push->secrets) {
    TimeMs until = s.expires_at == 0 ? now + overlap : std::min(s.expires_at, now + overlap);
    if (until > now) secrets.push_back(EndpointSecret{s.secret, until});
  }
  next.push->secrets = std::move(secrets);
  return queues_.UpdateQueue(actor, tenant, q->record.name, next);
}

}  // namespace redrive::engine
