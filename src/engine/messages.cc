// Messages: publish (queues and topics), ack, nack, release, extend and the sweeper's pass
// (messages.h). The failure plan is in failure_plan.cc.
// Receives and long polls are in long_poll.cc.
#include "engine/messages.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "common/text.h"
#include "engine/delivery_outcomes.h"
#include "engine/failure_group.h"
#include "engine/redaction.h"
#include "engine/retry_policy.h"
#include "engine/tenancy.h"
#include "script/exhausted_script.h"

namespace redrive::engine {

static_assert(std::string_view(kReasonScript) == script::kScriptReason);

namespace {

using store::QueueKind;

// Receipt handles are "<seq>.<lease token>"; the token is 24 hex characters.
std::string EncodeReceipt(int64_t seq, const std::string& token) {
  return std::to_string(seq) + "." + token;
}

bool DecodeReceipt(const std::string& text, store::Receipt* out) {
  auto dot = text.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 19) return false;
  int64_t seq = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + dot, seq);
  if (ec != std::errc() || p != text.data() + dot || seq <= 0) return false;
  std::string token = text.substr(dot + 1);
  if (token.size() != 24) return false;
  for (char c : token) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  out->seq = seq;
  out->lease_token = std::move(token);
  return true;
}

Status InvalidReceipt() {
  return Status(ErrorCode::kInvalidReceipt, "receipt handle is malformed");
}

Status LeaseLost() {
  return Status(ErrorCode::kLeaseLost,
                "the receipt no longer holds the message (lease expired, acked or nacked)");
}

std::string Truncate(std::string s, size_t n) {
  if (s.size() > n) s.resize(n);
  return s;
}

// For each message of a publish, the index of the first message of the batch with the same
// idempotency key (its own index when it is the first, has no key, or `dedup` is off).
std::vector<size_t> FirstOccurrences(const std::vector<NewMessage>& messages, bool dedup) {
  std::vector<size_t> first(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) first[i] = i;
  if (!dedup) return first;
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& key = messages[i].idempotency_key;
    if (key.empty()) continue;
    auto [at, fresh] = seen.emplace(key, i);
    if (!fresh) first[i] = at->second;
  }
  return first;
}

}  // namespace

Status RefusalStatus(const store::PublishResult& r, const std::string& tenant,
                     const std::string& what, int64_t max_length, const TenantQuotas& quotas) {
  switch (r.refusal) {
    case store::PublishRefusal::kNone:
      return Status::Ok();
    case store::PublishRefusal::kTenantMaxMessages:
      return Status(ErrorCode::kQuotaExceeded,
                    "tenant " + tenant + " is at its maxMessages quota of " +
                        std::to_string(quotas.max_messages) + ": " + std::to_string(r.stored) +
                        " messages stored, this publish adds " + std::to_string(r.adding));
    case store::PublishRefusal::kTenantMaxBytes:
      return Status(ErrorCode::kQuotaExceeded,
                    "tenant " + tenant + " is at its maxBytes quota of " +
                        std::to_string(quotas.max_bytes) + ": " + std::to_string(r.stored) +
                        " body bytes stored, this publish adds " + std::to_string(r.adding));
    case store::PublishRefusal::kQueueFull:
      return Status(ErrorCode::kQueueFull,
                    what + " is at its max length of " + std::to_string(max_length) + " messages");
  }
  return Status(ErrorCode::kInternal, "unknown publish refusal");
}

Messages::Messages(store::MessageStore& store, Clock& clock, Random& random,
                   const EngineOptions& options, Queues& queues, Tenancy& tenancy,
                   Coordinator& coordinator, EngineCounters& counters, AuditLog& audit,
                   DeliveryOutcomes& outcomes, Redactor& redactor)
    : store_(store),
      clock_(clock),
      random_(random),
      options_(options),
      queues_(queues),
      tenancy_(tenancy),
      coordinator_(coordinator),
      counters_(counters),
      audit_(audit),
      outcomes_(outcomes),
      redactor_(redactor) {
  for (int i = 0; i < 2; ++i) wakers_.emplace_back([this] { WakerLoop(); });
  coordinator_.Subscribe(this);
}

Messages::~Messages() {
  coordinator_.Unsubscribe(this);
  stopping_ = true;
  {
    std::lock_guard<std::mutex> l(wait_mu_);
    wakers_exit_ = true;
  }
  wait_cv_.notify_all();
  for (auto& t : wakers_) t.join();
  EndLongPolls();
}

void Messages::OnReady(int64_t queue_id) { Notify(queue_id); }

void Messages::StopLongPolls() {
  stopping_ = true;
  EndLongPolls();
}

void Messages::ResumeLongPolls() { stopping_ = false; }

// ------------------------------------------------------------------ messages

Status Messages::CheckBatch(const std::vector<NewMessage>& messages, int64_t max_message_size,
                            const std::string& whose) const {
  if (messages.empty()) return Status(ErrorCode::kEmptyBatch, "no messages to publish");
  if (messages.size() > static_cast<size_t>(options_.max_batch)) {
    return Status(ErrorCode::kBatchTooLarge,
                  "at most " + std::to_string(options_.max_batch) + " messages per publish");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    std::string where = "message " + std::to_string(i) + ": ";
    if (static_cast<int64_t>(m.body.size()) > max_message_size) {
      return Status(ErrorCode::kMessageTooLarge,
                    where + "body of " + std::to_string(m.body.size()) + " bytes exceeds the " +
                        whose + " maxMessageSize of " + std::to_string(max_message_size));
    }
    if (m.attributes.size() > static_cast<size_t>(options_.max_attributes)) {
      return Status(ErrorCode::kTooManyAttributes,
                    where + "at most " + std::to_string(options_.max_attributes) + " attributes");
    }
    for (const auto& [k, v] : m.attributes) {
      if (k.empty() || k.size() > options_.max_attribute_name ||
          v.size() > options_.max_attribute_value) {
        return Status(ErrorCode::kAttributeTooLarge,
                      where + "attribute names are 1-" +
                          std::to_string(options_.max_attribute_name) + " bytes, values at most " +
                          std::to_string(options_.max_attribute_value));
      }
    }
    if (m.idempotency_key.size() > options_.max_idempotency_key) {
      return Status(ErrorCode::kInvalidArgument, where + "idempotencyKey is longer than " +
                                                     std::to_string(options_.max_idempotency_key) +
                                                     " bytes");
    }
    if (m.delay && (*m.delay < 0 || *m.delay > kMaxDelay)) {
      return Status(ErrorCode::kInvalidArgument, where + "delay must be between 0s and 7d");
    }
  }
  return Status::Ok();
}

Result<std::vector<store::PublishOutcome>> Messages::PublishTopic(
    const std::string& tenant, const std::string& topic, std::vector<NewMessage> messages) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  auto q = queues_.Lookup(tenant, topic);
  if ((q.ok() && q.value()->record.kind != QueueKind::kTopic) ||
      (!q.ok() && q.status().code() == ErrorCode::kQueueNotFound)) {
    return Status(ErrorCode::kTopicNotFound, "topic '" + topic + "' not found");
  }
  REDRIVE_RETURN_IF_ERROR(q.status());
  return PublishToTopic(*q.value(), std::move(messages));
}

// The fan-out: one copy of each message for every subscription whose filter it matches, all
// stored in one transaction (PublishMany), or none. A copy's id is "<message id>:<subscription>"
// (dead letters are unique by id within a tenant, and a copy can be dead-lettered by each
// subscription); the publisher gets the message id.
store::PublishRequest Messages::SubscriptionRequest(const CachedQueue& sub, TimeMs now,
                                                    const TenantQuotas& quotas) {
  const QueueConfig& cfg = sub.config;
  store::PublishRequest req;
  req.queue_id = sub.record.id;
  req.tenant = sub.record.tenant;
  req.now = now;
  req.tenant_max_messages = quotas.max_messages;
  req.tenant_max_bytes = quotas.max_bytes;
  req.dedup_window = cfg.dedup_window;
  req.max_length = cfg.max_length;
  req.overflow = cfg.overflow == OverflowPolicy::kDeadLetterOldest
                     ? store::OverflowAction::kDeadLetterOldest
                     : store::OverflowAction::kRefuse;
  std::string overflow_cause = "subscription " + SplitSubscriptionQueue(sub.record.name).second +
                               " reached its max length of " + std::to_string(cfg.max_length);
  FailureSignature sig = SignatureOf(sub.record.name, kReasonOverflow, overflow_cause);
  req.overflow_death = store::DeathInfo{cfg.dead_letter_queue,
                                        kReasonOverflow,
                                        overflow_cause,
                                        now,
                                        DeadLetterRetainUntil(cfg, now),
                                        sig.group_id,
                                        sig.text,
                                        redactor_.StoreRedaction(sub)};
  return req;
}

void Messages::SetCopyTimes(const QueueConfig& cfg, TimeMs now, std::optional<DurationMs> delay,
                            store::MessageRecord* r) {
  r->enqueued_at = now;
  r->visible_at = now + (delay ? *delay : cfg.delivery_delay);
  r->expires_at = cfg.message_ttl > 0 ? now + cfg.message_ttl : 0;
  r->retain_until = cfg.retention > 0 ? now + cfg.retention : 0;
}

Result<std::vector<store::PublishOutcome>> Messages::PublishToTopic(
    const CachedQueue& topic, std::vector<NewMessage> messages) {
  const std::string& tenant = topic.record.tenant;
  REDRIVE_RETURN_IF_ERROR(CheckBatch(messages, topic.topic.max_message_size, "topic's"));
  REDRIVE_ASSIGN_OR_RETURN(auto subs, queues_.SubscriptionsOf(tenant, topic.record.name));
  std::vector<size_t> first_of = FirstOccurrences(messages, true);
  TimeMs now = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(TenantQuotas quotas, tenancy_.QuotasOf(tenant));
  std::vector<std::string> ids(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    if (first_of[i] == i) ids[i] = NewUlid(now, random_);
  }
  std::vector<int> copies(messages.size(), 0);
  std::vector<store::PublishRequest> requests;
  std::vector<const CachedQueue*> request_queue;
  // message -> (request, slot) of each of its copies
  std::vector<std::vector<std::pair<size_t, size_t>>> where(messages.size());
  auto base_request = [&](int64_t queue_id) {
    store::PublishRequest req;
    req.queue_id = queue_id;
    req.tenant = tenant;
    req.now = now;
    req.tenant_max_messages = quotas.max_messages;
    req.tenant_max_bytes = quotas.max_bytes;
    return req;
  };
  std::vector<std::string> sub_names;  // per request
  for (const QueueRef& sub : *subs) {
    const QueueConfig& cfg = sub->config;
    std::string name = SplitSubscriptionQueue(sub->record.name).second;
    store::PublishRequest req = SubscriptionRequest(*sub, now, quotas);
    for (size_t i = 0; i < messages.size(); ++i) {
      const NewMessage& m = messages[i];
      if (first_of[i] != i || !cfg.filter.Matches(m.attributes)) continue;
      if (static_cast<int64_t>(m.body.size()) > cfg.max_message_size) {
        return Status(ErrorCode::kMessageTooLarge,
                      "message " + std::to_string(i) + ": body of " +
                          std::to_string(m.body.size()) + " bytes exceeds the maxMessageSize of " +
                          "subscription " + name + ", " + std::to_string(cfg.max_message_size));
      }
      store::MessageRecord r;
      r.id = SubscriptionQueueName(ids[i], name);
      r.body = m.body;
      r.attributes = m.attributes;
      r.idempotency_key = m.idempotency_key;
      r.published_at = now;
      SetCopyTimes(cfg, now, m.delay, &r);
      where[i].push_back({requests.size(), req.messages.size()});
      ++copies[i];
      req.messages.push_back(std::move(r));
    }
    if (req.messages.empty()) continue;
    requests.push_back(std::move(req));
    request_queue.push_back(sub.get());
    sub_names.push_back(std::move(name));
  }
  // The events (Topics' ListEvents): each fresh message, with where its copies are.
  std::vector<store::TopicEventWrite> events;
  if (topic.topic.event_retention > 0) {
    for (size_t i = 0; i < messages.size(); ++i) {
      if (first_of[i] != i) continue;
      store::TopicEventWrite w;
      w.event.tenant = tenant;
      w.event.topic_id = topic.record.id;
      w.event.id = ids[i];
      w.event.published_at = now;
      w.event.retain_until = now + topic.topic.event_retention;
      w.event.attributes = messages[i].attributes;
      w.event.idempotency_key = messages[i].idempotency_key;
      w.event.body = messages[i].body;
      for (const auto& [k, slot] : where[i]) w.copies.push_back({k, slot, sub_names[k]});
      events.push_back(std::move(w));
    }
  }
  // Messages no subscription took.
  int64_t unrouted = 0;
  std::optional<size_t> no_route_request;
  store::PublishRequest dead = base_request(topic.record.id);
  std::string cause = "no subscription of topic " + topic.record.name + " matched the message";
  FailureSignature no_route_sig = SignatureOf(topic.record.name, kReasonNoRoute, cause);
  DurationMs keep = options_.dead_letter_retention;
  // A topic has no redaction rules of its own (its subscriptions have): no-route dead letters
  // are stored as published (docs/privacy.md).
  dead.arrival_death = store::DeathInfo{
      topic.topic.dead_letter_queue, kReasonNoRoute,    cause, now, keep > 0 ? now + keep : 0,
      no_route_sig.group_id,         no_route_sig.text, {}};
  for (size_t i = 0; i < messages.size(); ++i) {
    if (first_of[i] != i || copies[i] > 0) continue;
    ++unrouted;
    if (topic.topic.no_route != NoRouteAction::kDeadLetter) continue;
    store::MessageRecord r;
    r.id = ids[i];
    r.body = std::move(messages[i].body);
    r.attributes = std::move(messages[i].attributes);
    r.idempotency_key = std::move(messages[i].idempotency_key);
    r.published_at = now;
    r.enqueued_at = now;
    r.visible_at = now;
    dead.messages.push_back(std::move(r));
  }
  if (!dead.messages.empty()) {
    no_route_request = requests.size();
    requests.push_back(std::move(dead));
    request_queue.push_back(&topic);
  }

  std::vector<store::PublishResult> results;
  if (!requests.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(results, store_.PublishMany(requests, events));
    for (size_t k = 0; k < results.size(); ++k) {
      if (results[k].refusal == store::PublishRefusal::kNone) continue;
      const CachedQueue& q = *request_queue[k];
      return RefusalStatus(results[k], tenant,
                           "subscription " + SplitSubscriptionQueue(q.record.name).second,
                           q.config.max_length, quotas);
    }
  }
  std::vector<store::PublishOutcome> outcomes;
  outcomes.reserve(messages.size());
  int64_t fresh = 0, dup = 0, evicted = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (first_of[i] != i) {
      outcomes.push_back(store::PublishOutcome{outcomes[first_of[i]].id, true});
      ++dup;
      continue;
    }
    // A duplicate when every copy was (the key was remembered by each subscription).
    store::PublishOutcome o{ids[i], !where[i].empty()};
    for (const auto& [k, slot] : where[i]) {
      const store::PublishOutcome& c = results[k].outcomes[slot];
      if (!c.duplicate) {
        o.duplicate = false;
        break;
      }
      o.id = c.id.substr(0, c.id.find(kSubscriptionSeparator));
    }
    if (!o.duplicate) o.id = ids[i];
    (o.duplicate ? dup : fresh) += 1;
    outcomes.push_back(std::move(o));
  }
  for (size_t k = 0; k < results.size(); ++k) {
    bool any_fresh = false;
    for (const auto& c : results[k].outcomes) any_fresh = any_fresh || !c.duplicate;
    evicted += static_cast<int64_t>(results[k].evicted_ids.size());
    for (size_t e = 0; e < results[k].evicted_ids.size(); ++e) {
      counters_.CountDeadLetter(kReasonOverflow);
    }
    if (no_route_request && k == *no_route_request) {
      for (size_t c = 0; c < results[k].outcomes.size(); ++c) {
        counters_.CountDeadLetter(kReasonNoRoute);
      }
      continue;
    }
    if (any_fresh) coordinator_.SignalReady(request_queue[k]->record.id);
  }
  counters_.topic_published += fresh;
  counters_.topic_unrouted += unrouted;
  counters_.duplicates += dup;
  if (unrouted > 0) {
    spdlog::info(
        "{}/{}: {} of {} messages matched no subscription ({})", tenant, topic.record.name,
        unrouted, messages.size(),
        topic.topic.no_route == NoRouteAction::kDeadLetter ? "dead-lettered, no-route" : "counted");
  }
  if (evicted > 0) {
    spdlog::info("dead-lettered {} oldest messages of subscriptions of {}/{} (overflow)", evicted,
                 tenant, topic.record.name);
  }
  return outcomes;
}

Result<std::vector<store::PublishOutcome>> Messages::Publish(const std::string& tenant,
                                                             const std::string& queue,
                                                             std::vector<NewMessage> messages) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto q, queues_.Lookup(tenant, queue));
  if (q->record.kind == QueueKind::kDeadLetter) {
    return Status(ErrorCode::kDeadLetterQueueReadOnly,
                  "'" + queue + "' is a dead-letter queue; only redrive writes to it");
  }
  if (q->record.kind == QueueKind::kTopic) return PublishToTopic(*q, std::move(messages));
  const QueueConfig& cfg = q->config;
  REDRIVE_RETURN_IF_ERROR(CheckBatch(messages, cfg.max_message_size, "queue's"));

  // A key repeated within the batch is a duplicate of its first occurrence, which alone goes
  // to the store (its contract wants the keys of one request distinct); keys already stored
  // are the store's to find, in the transaction that stores the batch.
  std::vector<size_t> first_of = FirstOccurrences(messages, cfg.dedup_window > 0);

  TimeMs now = clock_.Now();
  store::PublishRequest req;
  req.queue_id = q->record.id;
  req.tenant = tenant;
  req.now = now;
  req.dedup_window = cfg.dedup_window;
  req.max_length = cfg.max_length;
  req.overflow = cfg.overflow == OverflowPolicy::kDeadLetterOldest
                     ? store::OverflowAction::kDeadLetterOldest
                     : store::OverflowAction::kRefuse;
  REDRIVE_ASSIGN_OR_RETURN(TenantQuotas quotas, tenancy_.QuotasOf(tenant));
  req.tenant_max_messages = quotas.max_messages;
  req.tenant_max_bytes = quotas.max_bytes;
  std::string overflow_cause =
      "queue " + queue + " reached its max length of " + std::to_string(cfg.max_length);
  FailureSignature overflow_sig = SignatureOf(queue, kReasonOverflow, overflow_cause);
  req.overflow_death = store::DeathInfo{cfg.dead_letter_queue,
                                        kReasonOverflow,
                                        overflow_cause,
                                        now,
                                        DeadLetterRetainUntil(cfg, now),
                                        overflow_sig.group_id,
                                        overflow_sig.text,
                                        redactor_.StoreRedaction(*q)};
  std::vector<size_t> slot(messages.size());  // message -> its entry in req.messages
  req.messages.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    if (first_of[i] != i) continue;
    NewMessage& m = messages[i];
    store::MessageRecord r;
    r.id = NewUlid(now, random_);
    r.body = std::move(m.body);
    r.attributes = std::move(m.attributes);
    r.idempotency_key = std::move(m.idempotency_key);
    r.published_at = now;
    r.enqueued_at = now;
    r.visible_at = now + (m.delay ? *m.delay : cfg.delivery_delay);
    r.expires_at = cfg.message_ttl > 0 ? now + cfg.message_ttl : 0;
    r.retain_until = cfg.retention > 0 ? now + cfg.retention : 0;
    slot[i] = req.messages.size();
    req.messages.push_back(std::move(r));
  }
  REDRIVE_ASSIGN_OR_RETURN(auto result, store_.Publish(req));
  REDRIVE_RETURN_IF_ERROR(RefusalStatus(result, tenant, "queue " + queue, cfg.max_length, quotas));
  std::vector<store::PublishOutcome> outcomes;
  outcomes.reserve(messages.size());
  int64_t dup = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (first_of[i] == i) {
      outcomes.push_back(std::move(result.outcomes[slot[i]]));
    } else {
      outcomes.push_back(store::PublishOutcome{outcomes[first_of[i]].id, true});
    }
    dup += outcomes.back().duplicate ? 1 : 0;
  }
  counters_.published += static_cast<int64_t>(outcomes.size()) - dup;
  counters_.duplicates += dup;
  for (size_t i = 0; i < result.evicted_ids.size(); ++i) counters_.CountDeadLetter(kReasonOverflow);
  if (!result.evicted_ids.empty()) {
    // One line per publish, not per message: an overflowing queue must not flood the log.
    spdlog::info("dead-lettered {} oldest messages of {}/{} (overflow), first {}",
                 result.evicted_ids.size(), tenant, queue, result.evicted_ids.front());
  }
  if (static_cast<int64_t>(outcomes.size()) > dup) coordinator_.SignalReady(q->record.id);
  return outcomes;
}

namespace {

// Ack, nack and extend act on leases, which only standard queues hand out: on a dead-letter
// queue they are refused like publish and receive, whatever the receipts.
Status NoLeasesOn(const auto& queue) {
  if (queue.record.kind == QueueKind::kTopic) {
    return Status(ErrorCode::kNotAQueue, "'" + queue.record.name +
                                             "' is a topic: it holds no leases; its "
                                             "subscriptions do");
  }
  if (queue.record.kind != QueueKind::kDeadLetter) return Status::Ok();
  return Status(ErrorCode::kDeadLetterQueueReadOnly,
                "'" + queue.record.name +
                    "' is a dead-letter queue: it holds no leases; act on its dead letters "
                    "through the dead-letter API");
}

}  // namespace

std::string Messages::NewLeaseToken() { return HexEncode(random_.Bytes(12)); }

Result<std::vector<Delivery>> Messages::LeaseNow(const CachedQueue& q, int max,
                                                 DurationMs visibility_timeout,
                                                 const std::string& consumer) {
  TimeMs now = clock_.Now();
  store::LeaseRequest req;
  req.queue_id = q.record.id;
  req.now = now;
  req.lease_until = now + visibility_timeout;
  req.consumer = consumer;
  req.max_messages = max;
  req.lease_token = NewLeaseToken();
  REDRIVE_ASSIGN_OR_RETURN(auto leased, store_.Lease(req));
  std::vector<Delivery> out;
  out.reserve(leased.size());
  for (auto& m : leased) {
    std::string receipt = EncodeReceipt(m.seq, m.lease_token);
    out.push_back(Delivery{std::move(m), std::move(receipt)});
  }
  counters_.delivered += static_cast<int64_t>(out.size());
  return out;
}

Result<std::vector<Status>> Messages::Ack(const std::string& tenant, const std::string& queue,
                                          const std::vector<std::string>& receipts) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LeasedQueue(tenant, queue, receipts.size()));
  std::vector<Status> out(receipts.size());
  std::vector<store::Receipt> valid;
  std::vector<size_t> index;
  for (size_t i = 0; i < receipts.size(); ++i) {
    store::Receipt r;
    if (!DecodeReceipt(receipts[i], &r)) {
      out[i] = InvalidReceipt();
      continue;
    }
    valid.push_back(std::move(r));
    index.push_back(i);
  }
  if (!valid.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto acked, store_.Ack(q->record.id, valid));
    int64_t succeeded = 0;
    for (size_t k = 0; k < valid.size(); ++k) {
      if (acked[k]) {
        ++succeeded;
      } else {
        out[index[k]] = LeaseLost();
      }
    }
    counters_.acked += succeeded;
    outcomes_.CountSucceeded(q->record.tenant, q->record.name, clock_.Now(), succeeded);
  }
  return out;
}

Result<QueueRef> Messages::LeasedQueue(const std::string& tenant, const std::string& queue,
                                       size_t receipts) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto q, queues_.Lookup(tenant, queue));
  REDRIVE_RETURN_IF_ERROR(NoLeasesOn(*q));
  if (receipts == 0) return Status(ErrorCode::kEmptyBatch, "no receipts");
  if (receipts > static_cast<size_t>(options_.max_batch)) {
    return Status(ErrorCode::kBatchTooLarge,
                  "at most " + std::to_string(options_.max_batch) + " receipts per call");
  }
  return q;
}

Result<std::vector<Status>> Messages::Nack(const std::string& tenant, const std::string& queue,
                                           const std::vector<NackRequest>& nacks) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LeasedQueue(tenant, queue, nacks.size()));
  for (size_t i = 0; i < nacks.size(); ++i) {
    const NackRequest& n = nacks[i];
    std::string where = "nacks[" + std::to_string(i) + "].";
    if (n.dead_letter && n.delay) {
      return Status(ErrorCode::kInvalidArgument,
                    "'" + where + "delay' and 'deadLetter' exclude each other");
    }
    if (n.consumer.size() > kMaxConsumerName) {
      return Status(ErrorCode::kInvalidArgument, "'" + where + "consumer' is longer than " +
                                                     std::to_string(kMaxConsumerName) + " bytes");
    }
    if (n.delay && (*n.delay < 0 || *n.delay > kMaxDelay)) {
      return Status(ErrorCode::kInvalidArgument, "delay must be between 0s and 7d");
    }
    if (n.reason.size() > options_.max_reason) {
      return Status(ErrorCode::kInvalidArgument,
                    "reason is longer than " + std::to_string(options_.max_reason) + " bytes");
    }
  }
  std::vector<Status> out(nacks.size());
  TimeMs now = clock_.Now();
  // Every nack of the batch is decided first, then applied in one store write (one fsync).
  std::vector<store::MessageRecord> messages;
  std::vector<store::FailureAction> actions;
  std::vector<size_t> index;
  std::vector<bool> tls;  // the failure's cause is a TLS error (DeliveryOutcomes)
  messages.reserve(nacks.size());
  for (size_t i = 0; i < nacks.size(); ++i) {
    const auto& n = nacks[i];
    store::Receipt r;
    REDRIVE_ASSIGN_OR_RETURN(auto msg, HeldMessage(*q, n.receipt, &r, &out[i]));
    if (!msg) continue;
    const std::string& consumer = !n.consumer.empty() ? n.consumer
                                  : !n.caller.empty() ? n.caller
                                                      : msg->consumer;
    store::Attempt attempt{now, consumer, n.dead_letter ? "rejected" : "nack", n.reason,
                           Truncate(n.error, options_.max_error)};
    attempt.status = n.status;
    attempt.duration_ms = n.duration_ms;
    attempt.response = n.response;
    std::string force = n.dead_letter ? kReasonRejected : n.force_reason;
    tls.push_back(DeliveryOutcomes::IsTlsFailure(!n.error.empty() ? n.error : n.reason));
    actions.push_back(PlanFailure(*q, *msg, r, std::move(attempt), n.delay, force, n.retry_after));
    messages.push_back(std::move(*msg));
    index.push_back(i);
  }
  if (actions.empty()) return out;
  std::vector<const store::MessageRecord*> message_ptrs;
  for (const auto& m : messages) message_ptrs.push_back(&m);
  REDRIVE_ASSIGN_OR_RETURN(auto held, ApplyFailures(*q, message_ptrs, actions));
  int64_t failed = 0, failed_tls = 0;
  for (size_t k = 0; k < actions.size(); ++k) {
    if (held[k]) {
      ++failed;
      failed_tls += tls[k] ? 1 : 0;
    } else {
      out[index[k]] = LeaseLost();
    }
  }
  counters_.nacked += failed;
  outcomes_.CountFailed(q->record.tenant, q->record.name, now, failed, failed_tls);
  return out;
}

Result<std::optional<store::MessageRecord>> Messages::HeldMessage(const CachedQueue& q,
                                                                  const std::string& receipt,
                                                                  store::Receipt* decoded,
                                                                  Status* why) {
  if (!DecodeReceipt(receipt, decoded)) {
    *why = InvalidReceipt();
    return std::optional<store::MessageRecord>();
  }
  REDRIVE_ASSIGN_OR_RETURN(auto msg, store_.GetMessage(q.record.id, decoded->seq));
  if (!msg || !msg->leased || msg->lease_token != decoded->lease_token) {
    *why = LeaseLost();
    return std::optional<store::MessageRecord>();
  }
  return msg;
}

Result<std::vector<Status>> Messages::Release(const std::string& tenant, const std::string& queue,
                                              const std::vector<std::string>& receipts) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LeasedQueue(tenant, queue, receipts.size()));
  std::vector<Status> out(receipts.size());
  std::vector<store::FailureAction> actions;
  std::vector<size_t> index;
  TimeMs now = clock_.Now();
  for (size_t i = 0; i < receipts.size(); ++i) {
    store::Receipt r;
    REDRIVE_ASSIGN_OR_RETURN(auto msg, HeldMessage(*q, receipts[i], &r, &out[i]));
    if (!msg) continue;
    store::FailureAction a;
    a.kind = store::FailureAction::Kind::kRequeue;
    a.receipt = r;
    a.visible_at = now;
    a.journal = std::move(msg->journal);
    a.undo_delivery = true;
    actions.push_back(std::move(a));
    index.push_back(i);
  }
  if (actions.empty()) return out;
  REDRIVE_ASSIGN_OR_RETURN(auto held, store_.SettleFailures(q->record.id, actions));
  bool any = false;
  for (size_t k = 0; k < held.size(); ++k) {
    if (!held[k]) out[index[k]] = LeaseLost();
    any = any || held[k];
  }
  if (any) coordinator_.SignalReady(q->record.id);
  return out;
}

Result<std::vector<Status>> Messages::ExtendLeases(const std::string& tenant,
                                                   const std::string& queue,
                                                   const std::vector<std::string>& receipts,
                                                   DurationMs visibility_timeout) {
  REDRIVE_ASSIGN_OR_RETURN(auto q, LeasedQueue(tenant, queue, receipts.size()));
  if (visibility_timeout < 1000 || visibility_timeout > kMaxVisibilityTimeout) {
    return Status(ErrorCode::kInvalidArgument, "visibilityTimeout must be between 1s and 12h");
  }
  std::vector<Status> out(receipts.size());
  TimeMs now = clock_.Now();
  for (size_t i = 0; i < receipts.size(); ++i) {
    store::Receipt r;
    if (!DecodeReceipt(receipts[i], &r)) {
      out[i] = InvalidReceipt();
      continue;
    }
    REDRIVE_ASSIGN_OR_RETURN(bool held,
                             store_.ExtendLease(q->record.id, r, now, now + visibility_timeout));
    if (!held) out[i] = LeaseLost();
  }
  return out;
}

// ------------------------------------------------------------------ the sweeper's pass

Result<int64_t> Messages::SweepOnce() {
  int64_t done = 0;
  TimeMs now = clock_.Now();

  // Leases that ended without an ack or nack count as failed deliveries; messages past their
  // TTL leave by the exhausted action with reason "expired". Both are applied one store write
  // per queue.
  struct QueueBatch {
    QueueRef queue;
    std::vector<const store::MessageRecord*> messages;
    std::vector<store::FailureAction> actions;
    bool lease_timeouts = false;
  };
  auto apply = [&](std::map<int64_t, QueueBatch>& batches) -> Status {
    for (auto& [id, b] : batches) {
      REDRIVE_ASSIGN_OR_RETURN(auto held, ApplyFailures(*b.queue, b.messages, b.actions));
      int64_t applied = 0;
      for (bool h : held) applied += h ? 1 : 0;
      done += applied;
      if (b.lease_timeouts) {
        // A lease that ended is a failed delivery; an expired TTL is not a delivery at all.
        counters_.lease_timeouts += applied;
        outcomes_.CountFailed(b.queue->record.tenant, b.queue->record.name, now, applied, 0);
      }
    }
    return Status::Ok();
  };

  REDRIVE_ASSIGN_OR_RETURN(auto leases, store_.ExpiredLeases(now, options_.sweep_batch));
  {
    std::map<int64_t, QueueBatch> batches;
    for (const auto& m : leases) {
      auto q = queues_.LookupById(m.queue_id);
      if (!q.ok()) continue;  // queue deleted meanwhile
      QueueBatch& b = batches[m.queue_id];
      b.queue = q.value();
      b.lease_timeouts = true;
      store::Attempt attempt{m.visible_at, m.consumer, "lease-timeout", "lease-timeout",
                             "lease expired after " +
                                 FormatDuration(m.visible_at - m.last_delivered_at) +
                                 " without ack or nack"};
      b.actions.push_back(PlanFailure(*b.queue, m, store::Receipt{m.seq, m.lease_token},
                                      std::move(attempt), std::nullopt, ""));
      b.messages.push_back(&m);
    }
    REDRIVE_RETURN_IF_ERROR(apply(batches));
  }

  REDRIVE_ASSIGN_OR_RETURN(auto expired, store_.ExpiredMessages(now, options_.sweep_batch));
  {
    std::map<int64_t, QueueBatch> batches;
    for (const auto& m : expired) {
      auto q = queues_.LookupById(m.queue_id);
      if (!q.ok()) continue;
      QueueBatch& b = batches[m.queue_id];
      b.queue = q.value();
      std::string cause = "message TTL of " + FormatDuration(b.queue->config.message_ttl) +
                          " passed before it was consumed";
      store::Journal journal = m.journal;
      AppendAttempt(&journal, store::Attempt{now, "", "expired", kReasonExpired, cause});
      b.actions.push_back(PlanExhausted(*b.queue, m, store::Receipt{m.seq, ""}, std::move(journal),
                                        kReasonExpired, cause));
      b.messages.push_back(&m);
    }
    REDRIVE_RETURN_IF_ERROR(apply(batches));
  }

  // Retention: the queue's limit on how long any message is kept.
  REDRIVE_ASSIGN_OR_RETURN(auto retained, store_.DeleteRetained(now, options_.sweep_batch));
  for (const auto& m : retained) {
    spdlog::warn("dropped message {} (queue id {}): past the queue's retention", m.id, m.queue_id);
  }
  counters_.retention_deleted += static_cast<int64_t>(retained.size());
  counters_.dropped += static_cast<int64_t>(retained.size());
  done += static_cast<int64_t>(retained.size());

  REDRIVE_ASSIGN_OR_RETURN(int64_t keys,
                           store_.DeleteExpiredIdempotencyKeys(now, options_.sweep_batch));
  (void)keys;
  REDRIVE_ASSIGN_OR_RETURN(int64_t events,
                           store_.DeleteExpiredTopicEvents(now, options_.sweep_batch));
  (void)events;
  return done;
}

Result<std::vector<store::QueueDepthRow>> Messages::AllDepths() {
  return store_.AllDepths(clock_.Now());
}
}  // namespace redrive::engine
