// Messages, topic events: a topic's recent messages with the state of each subscription's copy,
// and redelivery on request (messages.h, "topic events"). The store records the events with
// the fan-out (PublishMany) and knows where each copy is; the states are read here.
#include <charconv>
#include <nlohmann/json.hpp>

#include "engine/audit_log.h"
#include "engine/messages.h"
#include "engine/redaction.h"
#include "engine/tenancy.h"

namespace redrive::engine {
namespace {

constexpr int kMaxEventPage = 1000;
// Events read per call at most, however few match the filter: the page then ends early with a
// cursor to go on from.
constexpr int kMaxEventScan = 10'000;

Status EventNotFound(const std::string& topic, const std::string& id) {
  return Status(ErrorCode::kEventNotFound,
                "message '" + id + "' is not among the events of topic '" + topic +
                    "' (never published to it, or past its eventRetention)");
}

}  // namespace

std::string_view DeliveryStateName(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending:
      return "pending";
    case DeliveryState::kDelivering:
      return "delivering";
    case DeliveryState::kDelivered:
      return "delivered";
    case DeliveryState::kDeadLettered:
      return "dead-lettered";
    case DeliveryState::kDropped:
      return "dropped";
  }
  return "pending";
}

std::optional<DeliveryState> ParseDeliveryState(std::string_view name) {
  for (DeliveryState s :
       {DeliveryState::kPending, DeliveryState::kDelivering, DeliveryState::kDelivered,
        DeliveryState::kDeadLettered, DeliveryState::kDropped}) {
    if (DeliveryStateName(s) == name) return s;
  }
  return std::nullopt;
}

Result<QueueRef> Messages::LookupTopic(const std::string& tenant, const std::string& name) {
  auto q = queues_.Lookup(tenant, name);
  if (!q.ok() && q.status().code() != ErrorCode::kQueueNotFound) return q.status();
  if (!q.ok() || q.value()->record.kind != store::QueueKind::kTopic) {
    return Status(ErrorCode::kTopicNotFound, "topic '" + name + "' not found");
  }
  return q;
}

// The state of a copy is read from where it is: in a queue (leased or not), among the dead
// letters, acked; anything else removed it undelivered (the drop action, a TTL or retention
// drop, a purge, a deleted queue or dead letter): dropped.
TopicEvent Messages::MakeEvent(const CachedQueue& topic, store::TopicEventRow row) {
  TopicEvent e;
  e.id = std::move(row.event.id);
  e.published_at = row.event.published_at;
  e.retain_until = row.event.retain_until;
  e.attributes = std::move(row.event.attributes);
  e.idempotency_key = std::move(row.event.idempotency_key);
  e.body_size = row.event.body_size;
  e.body = std::move(row.event.body);
  for (auto& f : row.deliveries) {
    TopicDelivery d;
    d.subscription = std::move(f.subscription);
    d.redeliveries = f.redeliveries;
    if (f.live) {
      d.state = f.leased ? DeliveryState::kDelivering : DeliveryState::kPending;
      auto q = queues_.LookupById(f.queue_id);
      d.queue = q.ok() ? q.value()->record.name
                       : SubscriptionQueueName(topic.record.name, d.subscription);
      d.delivery_count = f.delivery_count;
      d.next_at = f.visible_at;
    } else if (f.dead_lettered) {
      d.state = DeliveryState::kDeadLettered;
      d.dead_letter_id = SubscriptionQueueName(e.id, d.subscription);
      d.dead_letter_reason = std::move(f.dead_letter_reason);
      d.dead_lettered_at = f.dead_lettered_at;
    } else if (f.delivered_at > 0) {
      d.state = DeliveryState::kDelivered;
      d.delivered_at = f.delivered_at;
    } else {
      d.state = DeliveryState::kDropped;
    }
    e.deliveries.push_back(std::move(d));
  }
  return e;
}

Result<EventPage> Messages::ListEvents(const std::string& tenant, const std::string& topic,
                                       const EventQuery& query) {
  if (query.limit < 1 || query.limit > kMaxEventPage) {
    return Status(ErrorCode::kInvalidArgument,
                  "limit must be between 1 and " + std::to_string(kMaxEventPage));
  }
  if (query.until > 0 && query.since >= query.until) {
    return Status(ErrorCode::kInvalidArgument, "since must be before until");
  }
  int64_t before = 0;
  if (!query.cursor.empty()) {
    const char* end = query.cursor.data() + query.cursor.size();
    auto [p, ec] = std::from_chars(query.cursor.data(), end, before);
    if (ec != std::errc() || p != end || before <= 0) {
      return Status(ErrorCode::kInvalidQuery, "cursor is not one this server gave");
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(QueueRef t, LookupTopic(tenant, topic));
  EventPage page;
  int scanned = 0;
  for (;;) {
    store::TopicEventQuery q;
    q.tenant = tenant;
    q.topic_id = t->record.id;
    q.since = query.since;
    q.until = query.until;
    q.before_seq = before;
    bool filtered = query.state || !query.subscription.empty();
    q.limit = filtered ? std::min(kMaxEventPage, kMaxEventScan - scanned) : query.limit;
    REDRIVE_ASSIGN_OR_RETURN(auto rows, store_.ListTopicEvents(q));
    scanned += static_cast<int>(rows.size());
    for (auto& row : rows) {
      before = row.event.seq;
      TopicEvent e = MakeEvent(*t, std::move(row));
      if (!query.unredacted) {
        REDRIVE_RETURN_IF_ERROR(redactor_.RedactTopicEvent(tenant, topic, &e.body, &e.attributes));
      }
      if (!query.subscription.empty()) {
        std::erase_if(e.deliveries,
                      [&](const TopicDelivery& d) { return d.subscription != query.subscription; });
        if (e.deliveries.empty()) continue;
      }
      if (query.state) {
        bool any = false;
        for (const auto& d : e.deliveries) any = any || d.state == *query.state;
        if (!any) continue;
      }
      page.events.push_back(std::move(e));
      if (static_cast<int>(page.events.size()) == query.limit) {
        page.next_cursor = std::to_string(before);
        return page;
      }
    }
    if (static_cast<int>(rows.size()) < q.limit) return page;  // no more events
    if (scanned >= kMaxEventScan) {
      page.next_cursor = std::to_string(before);
      return page;
    }
  }
}

Result<TopicEvent> Messages::GetEvent(const std::string& tenant, const std::string& topic,
                                      const std::string& id, bool unredacted) {
  REDRIVE_ASSIGN_OR_RETURN(QueueRef t, LookupTopic(tenant, topic));
  REDRIVE_ASSIGN_OR_RETURN(auto row, store_.GetTopicEvent(tenant, t->record.id, id));
  if (!row) return EventNotFound(topic, id);
  TopicEvent e = MakeEvent(*t, std::move(*row));
  if (!unredacted) {
    REDRIVE_RETURN_IF_ERROR(redactor_.RedactTopicEvent(tenant, topic, &e.body, &e.attributes));
  }
  return e;
}

Result<TopicDelivery> Messages::Redeliver(const Principal& actor, const std::string& tenant,
                                          const std::string& topic, const std::string& subscription,
                                          const std::string& id) {
  REDRIVE_ASSIGN_OR_RETURN(QueueRef t, LookupTopic(tenant, topic));
  auto sub = queues_.Lookup(tenant, SubscriptionQueueName(topic, subscription));
  if (!sub.ok()) {
    if (sub.status().code() != ErrorCode::kQueueNotFound) return sub.status();
    return Status(ErrorCode::kSubscriptionNotFound,
                  "subscription '" + subscription + "' of topic '" + topic + "' not found");
  }
  const CachedQueue& s = *sub.value();
  REDRIVE_ASSIGN_OR_RETURN(auto row, store_.GetTopicEvent(tenant, t->record.id, id));
  if (!row) return EventNotFound(topic, id);
  const store::TopicEventRecord& ev = row->event;
  if (static_cast<int64_t>(ev.body.size()) > s.config.max_message_size) {
    return Status(ErrorCode::kMessageTooLarge,
                  "body of " + std::to_string(ev.body.size()) +
                      " bytes exceeds the maxMessageSize of subscription " + subscription + ", " +
                      std::to_string(s.config.max_message_size));
  }
  int32_t redeliveries = 0;
  for (const auto& f : row->deliveries) {
    if (f.subscription == subscription) redeliveries = f.redeliveries;
  }
  TimeMs now = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(TenantQuotas quotas, tenancy_.QuotasOf(tenant));
  store::RedeliverRequest req;
  req.event_seq = ev.seq;
  req.subscription = subscription;
  req.publish = SubscriptionRequest(s, now, quotas);
  req.publish.dedup_window = 0;  // a redelivery is asked for: never a duplicate
  store::MessageRecord copy;
  copy.id = SubscriptionQueueName(ev.id, subscription);
  copy.body = ev.body;
  copy.attributes = ev.attributes;
  copy.idempotency_key = ev.idempotency_key;
  copy.published_at = ev.published_at;
  SetCopyTimes(s.config, now, std::nullopt, &copy);
  copy.lineage.redrive_count = redeliveries + 1;
  copy.lineage.last_redriven_at = now;
  copy.lineage.last_redriven_by = "request:" + actor.token_id;
  copy.lineage.original_queue = s.record.name;
  req.publish.messages.push_back(std::move(copy));
  REDRIVE_ASSIGN_OR_RETURN(store::RedeliverResult result, store_.Redeliver(req));
  switch (result.outcome) {
    case store::RedeliverResult::Outcome::kGone:
      return EventNotFound(topic, id);
    case store::RedeliverResult::Outcome::kLive:
      return Status(ErrorCode::kDeliveryPending, "the copy of message '" + id +
                                                     "' for subscription '" + subscription +
                                                     "' is still pending or being delivered");
    case store::RedeliverResult::Outcome::kDeadLettered:
      return Status(ErrorCode::kDeliveryDeadLettered,
                    "the copy of message '" + id + "' for subscription '" + subscription +
                        "' is dead letter '" + SubscriptionQueueName(id, subscription) +
                        "': restore it (POST .../dead-letters/" +
                        SubscriptionQueueName(id, subscription) + "/restore)");
    case store::RedeliverResult::Outcome::kPublished:
      break;
  }
  REDRIVE_RETURN_IF_ERROR(RefusalStatus(result.publish, tenant, "subscription " + subscription,
                                        s.config.max_length, quotas));
  for (size_t e = 0; e < result.publish.evicted_ids.size(); ++e) {
    counters_.CountDeadLetter(kReasonOverflow);
  }
  coordinator_.SignalReady(s.record.id);
  audit_.Write(tenant, actor.token_id, "topic.redeliver",
               nlohmann::json{{"topic", topic}, {"subscription", subscription}, {"id", id}});
  TopicDelivery d;
  d.subscription = subscription;
  d.state = DeliveryState::kPending;
  d.queue = s.record.name;
  d.next_at = req.publish.messages[0].visible_at;
  d.redeliveries = redeliveries + 1;
  return d;
}

}  // namespace redrive::engine
