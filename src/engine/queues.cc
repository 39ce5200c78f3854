// Queues: the catalog and its cache (queues.h).
#include "engine/queues.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/tenancy.h"

namespace redrive::engine {
namespace {

using store::QueueKind;

std::string CacheKey(const std::string& tenant, const std::string& name) {
  return tenant + "/" + name;
}

Status QueueNotFound(const std::string& name) {
  return Status(ErrorCode::kQueueNotFound, "queue '" + name + "' not found");
}

const Principal& SystemActor() { return Tenancy::System(); }

Status NotAQueue(const std::string& name) {
  return Status(ErrorCode::kNotAQueue,
                "'" + name + "' is a topic; use the topic routes for it, and its subscriptions");
}

// A filter or an endpoint only belongs to a subscription's queue.
Status OnlySubscriptionsFilter(const std::string& name, const QueueConfig& config) {
  if (name.find(kSubscriptionSeparator) != std::string::npos) return Status::Ok();
  if (!config.filter.empty()) {
    return Status(ErrorCode::kInvalidArgument, "'filter' is for subscriptions of a topic only");
  }
  if (config.push) {
    return Status(ErrorCode::kInvalidArgument, "'push' is for subscriptions of a topic only");
  }
  return Status::Ok();
}

}  // namespace

Queues::Queues(store::ControlStore& control, store::MessageStore& messages, Clock& clock,
               Tenancy& tenancy, Coordinator& coordinator, AuditLog& audit,
               EngineCounters& counters)
    : control_(control),
      messages_(messages),
      clock_(clock),
      tenancy_(tenancy),
      coordinator_(coordinator),
      audit_(audit),
      counters_(counters) {
  coordinator_.Subscribe(this);
}

Queues::~Queues() { coordinator_.Unsubscribe(this); }

void Queues::OnInvalidate(CacheScope scope, const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  switch (scope) {
    case CacheScope::kQueue: {
      queues_.erase(key);
      // "tenant/topic" or "tenant/topic:subscription": the topic's list of subscriptions.
      subscriptions_.erase(key.substr(0, key.find(kSubscriptionSeparator)));
      break;
    }
    case CacheScope::kTenant: {
      std::string prefix = key + "/";
      for (auto it = queues_.begin(); it != queues_.end();) {
        it = it->first.compare(0, prefix.size(), prefix) == 0 ? queues_.erase(it) : std::next(it);
      }
      for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
        it = it->first.compare(0, prefix.size(), prefix) == 0 ? subscriptions_.erase(it)
                                                              : std::next(it);
      }
      break;
    }
    case CacheScope::kAll:
      queues_.clear();
      subscriptions_.clear();
      break;
    case CacheScope::kToken:
      break;
  }
}

Result<QueueRef> Queues::Lookup(const std::string& tenant, const std::string& name) {
  std::string key = CacheKey(tenant, name);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = queues_.find(key);
    if (it != queues_.end()) return it->second;
  }
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetQueue(tenant, name));
  if (!rec) return QueueNotFound(name);
  auto cached = std::make_shared<CachedQueue>();
  cached->record = *rec;
  if (rec->kind != QueueKind::kDeadLetter) {
    nlohmann::json j = nlohmann::json::parse(rec->config_json, nullptr, false);
    Status st = rec->kind == QueueKind::kTopic
                    ? ApplyTopicConfigJson(j, &cached->topic)
                    : ApplyQueueConfigJson(j, &cached->config, /*stored=*/true);
    if (!st.ok()) {
      return Status(ErrorCode::kInternal,
                    "stored config of queue " + name + " is unreadable: " + st.message());
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  queues_[key] = cached;
  return std::shared_ptr<const CachedQueue>(cached);
}

Result<QueueRef> Queues::LookupById(int64_t id) {
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetQueueById(id));
  if (!rec) return Status(ErrorCode::kQueueNotFound, "queue was deleted");
  return Lookup(rec->tenant, rec->name);
}

Result<std::shared_ptr<const std::vector<QueueRef>>> Queues::SubscriptionsOf(
    const std::string& tenant, const std::string& topic) {
  std::string key = CacheKey(tenant, topic);
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = subscriptions_.find(key);
    if (it != subscriptions_.end()) return it->second;
    generation = generation_;
  }
  auto t = Lookup(tenant, topic);
  if (!t.ok() || t.value()->record.kind != QueueKind::kTopic) {
    if (t.ok() || t.status().code() == ErrorCode::kQueueNotFound) {
      return Status(ErrorCode::kTopicNotFound, "topic '" + topic + "' not found");
    }
    return t.status();
  }
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListQueues(tenant));
  auto list = std::make_shared<std::vector<QueueRef>>();
  std::string prefix = SubscriptionQueueName(topic, "");
  for (const auto& r : records) {
    if (r.kind != QueueKind::kStandard || r.name.compare(0, prefix.size(), prefix) != 0) continue;
    auto q = Lookup(tenant, r.name);
    if (!q.ok() && q.status().code() == ErrorCode::kQueueNotFound) continue;  // deleted meanwhile
    REDRIVE_RETURN_IF_ERROR(q.status());
    list->push_back(q.value());
  }
  std::lock_guard<std::mutex> l(mu_);
  if (generation == generation_) subscriptions_[key] = list;
  return std::shared_ptr<const std::vector<QueueRef>>(list);
}

Result<std::vector<QueueRef>> Queues::AllPushSubscriptions() {
  std::vector<QueueRef> out;
  REDRIVE_ASSIGN_OR_RETURN(auto tenants, control_.ListTenants());
  for (const auto& t : tenants) {
    if (t.deleting) continue;
    REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListQueues(t.name));
    for (const auto& r : records) {
      if (r.kind != QueueKind::kStandard ||
          r.name.find(kSubscriptionSeparator) == std::string::npos) {
        continue;
      }
      auto q = Lookup(r.tenant, r.name);
      if (!q.ok() && q.status().code() == ErrorCode::kQueueNotFound) continue;
      REDRIVE_RETURN_IF_ERROR(q.status());
      if (q.value()->config.push) out.push_back(q.value());
    }
  }
  return out;
}

Status Queues::EnsureDeadLetterQueue(const std::string& tenant, const std::string& name) {
  REDRIVE_ASSIGN_OR_RETURN(auto existing, control_.GetQueue(tenant, name));
  if (existing) {
    if (existing->kind != QueueKind::kDeadLetter) {
      return Status(ErrorCode::kInvalidArgument,
                    "'deadLetterQueue' names '" + name + "', which is a " +
                        (existing->kind == QueueKind::kTopic ? "topic" : "standard queue"));
    }
    return Status::Ok();
  }
  TimeMs now = clock_.Now();
  store::QueueRecord rec{0, tenant, name, QueueKind::kDeadLetter, "{}", now, now};
  auto created = control_.CreateQueue(rec);
  // Another request may have created it at the same moment: that is fine.
  if (!created.ok() && created.status().code() != ErrorCode::kAlreadyExists) {
    return created.status();
  }
  return Status::Ok();
}

Status Queues::CheckRerouteTo(const std::string& tenant, const std::string& name,
                              const QueueConfig& config) {
  if (config.retry.on_exhausted != ExhaustedAction::kReroute) return Status::Ok();
  const std::string& to = config.retry.reroute_to;
  if (to == name) {
    return Status(ErrorCode::kInvalidArgument,
                  "'retryPolicy.rerouteTo' cannot be the queue itself");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto dest, control_.GetQueue(tenant, to));
  if (!dest || dest->kind != QueueKind::kStandard) {
    return Status(ErrorCode::kInvalidArgument, "'retryPolicy.rerouteTo' names '" + to +
                                                   "', which is not a standard queue of " +
                                                   "this tenant (create it first)");
  }
  return Status::Ok();
}

Result<QueueInfo> Queues::MakeQueueInfo(const store::QueueRecord& record) {
  QueueInfo info;
  info.tenant = record.tenant;
  info.name = record.name;
  info.kind = record.kind;
  info.created_at = record.created_at;
  info.updated_at = record.updated_at;
  if (record.kind == QueueKind::kStandard) {
    REDRIVE_ASSIGN_OR_RETURN(auto cached, Lookup(record.tenant, record.name));
    info.config = cached->config;
  }
  REDRIVE_ASSIGN_OR_RETURN(info.depth, messages_.GetDepth(record.id, clock_.Now()));
  return info;
}

Result<QueueInfo> Queues::CreateQueue(const Principal& actor, const std::string& tenant,
                                      const std::string& name, const QueueConfig& config) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateName(name, "queue"));
  REDRIVE_RETURN_IF_ERROR(OnlySubscriptionsFilter(name, config));
  return CreateStandard(actor, tenant, name, config);
}

Result<QueueInfo> Queues::CreateSubscription(const Principal& actor, const std::string& tenant,
                                             const std::string& topic,
                                             const std::string& subscription,
                                             const QueueConfig& config) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateName(subscription, "subscription"));
  REDRIVE_ASSIGN_OR_RETURN(auto existing, SubscriptionsOf(tenant, topic));
  if (existing->size() >= kMaxSubscriptionsPerTopic) {
    return Status(ErrorCode::kInvalidArgument, "topic '" + topic + "' has " +
                                                   std::to_string(kMaxSubscriptionsPerTopic) +
                                                   " subscriptions, the most a topic can have");
  }
  std::string name = SubscriptionQueueName(topic, subscription);
  auto created = CreateStandard(actor, tenant, name, config);
  if (!created.ok() && created.status().code() == ErrorCode::kAlreadyExists) {
    return Status(ErrorCode::kAlreadyExists,
                  "subscription '" + subscription + "' of topic '" + topic + "' already exists");
  }
  return created;
}

Result<QueueInfo> Queues::CreateStandard(const Principal& actor, const std::string& tenant,
                                         const std::string& name, const QueueConfig& config) {
  REDRIVE_RETURN_IF_ERROR(ValidateQueueConfig(config));
  if (config.dead_letter_queue == name) {
    return Status(ErrorCode::kInvalidArgument, "a queue cannot be its own dead-letter queue");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto existing, control_.GetQueue(tenant, name));
  if (existing) {
    return Status(ErrorCode::kAlreadyExists, "queue '" + name + "' already exists");
  }
  // Checked before the dead-letter queue is made, so a refusal leaves nothing behind; the
  // store checks again in the transaction that creates the queue.
  REDRIVE_ASSIGN_OR_RETURN(TenantQuotas quotas, tenancy_.QuotasOf(tenant));
  if (quotas.max_queues > 0) {
    REDRIVE_ASSIGN_OR_RETURN(auto usage, control_.GetTenantUsage(tenant));
    if (usage.queues >= quotas.max_queues) {
      return Status(ErrorCode::kQuotaExceeded, "tenant " + tenant +
                                                   " is at its maxQueues quota of " +
                                                   std::to_string(quotas.max_queues) + ": " +
                                                   std::to_string(usage.queues) + " queues exist");
    }
  }
  REDRIVE_RETURN_IF_ERROR(CheckRerouteTo(tenant, name, config));
  REDRIVE_RETURN_IF_ERROR(EnsureDeadLetterQueue(tenant, config.dead_letter_queue));
  TimeMs now = clock_.Now();
  store::QueueRecord rec{
      0, tenant, name, QueueKind::kStandard, QueueConfigToJson(config, true).dump(), now, now};
  auto id = control_.CreateQueueWithinQuota(rec, quotas.max_queues);
  if (!id.ok()) {
    if (id.status().code() == ErrorCode::kAlreadyExists) {
      return Status(ErrorCode::kAlreadyExists, "queue '" + name + "' already exists");
    }
    return id.status();
  }
  rec.id = id.value();
  coordinator_.Invalidate(CacheScope::kQueue, CacheKey(tenant, name));
  audit_.Write(tenant, actor.token_id, "queue.create",
               nlohmann::json{{"queue", name}, {"attributes", QueueConfigToJson(config)}});
  return MakeQueueInfo(rec);
}

Result<QueueInfo> Queues::UpdateQueue(const Principal& actor, const std::string& tenant,
                                      const std::string& name, const QueueConfig& config) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetQueue(tenant, name));
  if (!rec) return QueueNotFound(name);
  if (rec->kind == QueueKind::kDeadLetter) {
    return Status(ErrorCode::kDeadLetterQueueReadOnly,
                  "'" + name + "' is a dead-letter queue; it has no attributes to change");
  }
  if (rec->kind == QueueKind::kTopic) return NotAQueue(name);
  REDRIVE_RETURN_IF_ERROR(OnlySubscriptionsFilter(name, config));
  REDRIVE_RETURN_IF_ERROR(ValidateQueueConfig(config));
  if (config.dead_letter_queue == name) {
    return Status(ErrorCode::kInvalidArgument, "a queue cannot be its own dead-letter queue");
  }
  REDRIVE_RETURN_IF_ERROR(CheckRerouteTo(tenant, name, config));
  REDRIVE_RETURN_IF_ERROR(EnsureDeadLetterQueue(tenant, config.dead_letter_queue));
  // The audit sees the public forms: an endpoint's secrets stay out of it.
  REDRIVE_ASSIGN_OR_RETURN(auto old, Lookup(tenant, name));
  nlohmann::json before = QueueConfigToJson(old->config);
  nlohmann::json after = QueueConfigToJson(config);
  rec->config_json = QueueConfigToJson(config, /*for_store=*/true).dump();
  rec->updated_at = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(bool updated, control_.UpdateQueue(*rec));
  coordinator_.Invalidate(CacheScope::kQueue, CacheKey(tenant, name));
  if (!updated) return QueueNotFound(name);
  audit_.Write(tenant, actor.token_id, "queue.update",
               nlohmann::json{{"queue", name}, {"changed", AuditLog::Changes(before, after)}});
  return MakeQueueInfo(*rec);
}

Result<QueueInfo> Queues::GetQueue(const std::string& tenant, const std::string& name) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto cached, Lookup(tenant, name));
  if (cached->record.kind == QueueKind::kTopic) return NotAQueue(name);
  return MakeQueueInfo(cached->record);
}

Result<std::vector<QueueInfo>> Queues::ListQueues(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto records, control_.ListQueues(tenant));
  std::vector<QueueInfo> out;
  for (const auto& r : records) {
    if (r.kind == QueueKind::kTopic) continue;  // listed as topics
    REDRIVE_ASSIGN_OR_RETURN(auto info, MakeQueueInfo(r));
    out.push_back(std::move(info));
  }
  return out;
}

Status Queues::DeleteQueue(const Principal& actor, const std::string& tenant,
                           const std::string& name) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetQueue(tenant, name));
  if (!rec) return QueueNotFound(name);
  if (rec->kind == QueueKind::kDeadLetter) {
    // Deleting a dead-letter queue would delete dead letters, which only the dead-letter API
    // may do (it records what it removes).
    return Status(ErrorCode::kDeadLetterQueueReadOnly,
                  "'" + name + "' is a dead-letter queue and cannot be deleted as a queue");
  }
  if (rec->kind == QueueKind::kTopic) return NotAQueue(name);
  REDRIVE_ASSIGN_OR_RETURN(auto depth, messages_.GetDepth(rec->id, clock_.Now()));
  REDRIVE_ASSIGN_OR_RETURN(bool deleted, control_.DeleteQueue(rec->id));
  coordinator_.Invalidate(CacheScope::kQueue, CacheKey(tenant, name));
  if (!deleted) return QueueNotFound(name);
  int64_t discarded = depth.ready + depth.delayed + depth.leased;
  counters_.dropped += discarded;
  spdlog::warn("deleted queue {}/{} with {} messages in it", tenant, name, discarded);
  audit_.Write(tenant, actor.token_id, "queue.delete",
               nlohmann::json{{"queue", name}, {"messagesDiscarded", discarded}});
  coordinator_.SignalReady(rec->id);  // parked receives end: the queue is gone
  return Status::Ok();
}

Result<QueueInfo> Queues::CreateQueue(const std::string& tenant, const std::string& name,
                                      const QueueConfig& config) {
  return CreateQueue(SystemActor(), tenant, name, config);
}

Result<QueueInfo> Queues::UpdateQueue(const std::string& tenant, const std::string& name,
                                      const QueueConfig& config) {
  return UpdateQueue(SystemActor(), tenant, name, config);
}

Status Queues::DeleteQueue(const std::string& tenant, const std::string& name) {
  return DeleteQueue(SystemActor(), tenant, name);
}

}  // namespace redrive::engine
