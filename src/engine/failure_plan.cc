// Messages: the failure plan every failed delivery goes through (a nack, an ended lease, an
// expired TTL): retry by policy, or the queue's exhausted action (dead-letter, drop, reroute, its
// script), applied in one store write, counted and logged (messages.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "common/text.h"
#include "engine/failure_group.h"
#include "engine/messages.h"
#include "engine/redaction.h"
#include "engine/retry_policy.h"
#include "script/exhausted_script.h"

namespace redrive::engine {

store::FailureAction Messages::PlanFailure(const CachedQueue& q, const store::MessageRecord& msg,
                                           const store::Receipt& receipt, store::Attempt attempt,
                                           std::optional<DurationMs> delay,
                                           const std::string& force_reason,
                                           std::optional<DurationMs> retry_after) {
  store::Journal journal = msg.journal;
  std::string cause = !attempt.error.empty() ? attempt.error : attempt.reason;
  AppendAttempt(&journal, std::move(attempt));
  if (!force_reason.empty()) {
    return PlanExhausted(q, msg, receipt, std::move(journal), force_reason, cause);
  }
  if (IsExhausted(q.config.retry, msg.delivery_count)) {
    return PlanExhausted(q, msg, receipt, std::move(journal), kReasonMaxDeliveries, cause);
  }
  DurationMs wait = delay ? *delay : RetryDelay(q.config.retry, msg.delivery_count, random_);
  if (retry_after && !delay) {
    // The endpoint's Retry-After, within the policy's bounds: never sooner than the policy
    // would retry, never later than its longest delay.
    wait = std::max(wait, std::min(*retry_after, LongestDelay(q.config.retry)));
  }
  store::FailureAction a;
  a.kind = store::FailureAction::Kind::kRequeue;
  a.receipt = receipt;
  a.visible_at = clock_.Now() + wait;
  a.journal = std::move(journal);
  return a;
}

store::FailureAction Messages::PlanExhausted(const CachedQueue& q, const store::MessageRecord& msg,
                                             const store::Receipt& receipt, store::Journal journal,
                                             const std::string& reason, const std::string& cause) {
  switch (q.config.retry.on_exhausted) {
    case ExhaustedAction::kDrop:
      return DropAction(receipt, reason, cause);
    case ExhaustedAction::kReroute:
      return RerouteAction(q, msg, receipt, std::move(journal), q.config.retry.reroute_to, reason,
                           cause);
    case ExhaustedAction::kScript:
      return ScriptAction(q, msg, receipt, std::move(journal), reason, cause);
    case ExhaustedAction::kDeadLetter:
      break;
  }
  return DeadLetterAction(q, msg, receipt, std::move(journal), reason, cause, cause);
}

store::FailureAction Messages::DropAction(const store::Receipt& receipt, const std::string& reason,
                                          const std::string& cause) {
  store::FailureAction a;
  a.kind = store::FailureAction::Kind::kDrop;
  a.receipt = receipt;
  a.death.reason = reason;  // for the log line only
  a.death.cause = cause;
  return a;
}

store::FailureAction Messages::DeadLetterAction(const CachedQueue& q,
                                                const store::MessageRecord& msg,
                                                const store::Receipt& receipt,
                                                store::Journal journal, const std::string& reason,
                                                std::string cause, std::string death_cause) {
  TimeMs now = clock_.Now();
  store::DeadLetterRedaction redact = redactor_.StoreRedaction(q);
  if (redact) {
    // The causes are stored too (and the signature made of one): without the values either.
    Replacements values = redactor_.ValuesOf(q, msg);
    ScrubText(values, &cause);
    ScrubText(values, &death_cause);
  }
  FailureSignature sig = SignatureOf(q.record.name, reason, cause);
  store::FailureAction a;
  a.kind = store::FailureAction::Kind::kDeadLetter;
  a.receipt = receipt;
  a.journal = std::move(journal);
  a.death = store::DeathInfo{q.config.dead_letter_queue,
                             reason,
                             std::move(death_cause),
                             now,
                             DeadLetterRetainUntil(q.config, now),
                             sig.group_id,
                             sig.text,
                             std::move(redact)};
  return a;
}

store::FailureAction Messages::RerouteAction(const CachedQueue& q, const store::MessageRecord& msg,
                                             const store::Receipt& receipt, store::Journal journal,
                                             const std::string& to, const std::string& reason,
                                             const std::string& cause) {
  auto dest = RerouteDestination(q, msg, to);
  if (!dest.ok()) {
    // The destination cannot take it: the message is dead-lettered instead, saying why.
    return DeadLetterAction(
        q, msg, receipt, std::move(journal), reason, cause,
        cause + " (reroute to " + to + " refused: " + dest.status().message() + ")");
  }
  TimeMs now = clock_.Now();
  const CachedQueue& d = *dest.value();
  store::FailureAction a;
  a.kind = store::FailureAction::Kind::kReroute;
  a.receipt = receipt;
  a.journal = std::move(journal);
  a.death.reason = reason;  // for the log line only
  a.death.cause = cause;
  a.reroute.queue_id = d.record.id;
  a.reroute.queue_name = d.record.name;
  a.reroute.enqueued_at = now;
  a.reroute.visible_at = now + d.config.delivery_delay;
  a.reroute.expires_at = d.config.message_ttl > 0 ? now + d.config.message_ttl : 0;
  a.reroute.retain_until = d.config.retention > 0 ? now + d.config.retention : 0;
  a.reroute.lineage = msg.lineage;
  ++a.reroute.lineage.redrive_count;
  a.reroute.lineage.last_redriven_at = now;
  a.reroute.lineage.last_redriven_by = "reroute:" + q.record.name;
  if (a.reroute.lineage.original_queue.empty()) a.reroute.lineage.original_queue = q.record.name;
  return a;
}

store::FailureAction Messages::ScriptAction(const CachedQueue& q, const store::MessageRecord& msg,
                                            const store::Receipt& receipt, store::Journal journal,
                                            const std::string& reason, const std::string& cause) {
  using Kind = script::ScriptDecision::Kind;
  script::ScriptFailure failure;
  failure.message_id = msg.id;
  failure.origin = q.record.name;
  // A subscription's queue is "<topic>:<subscription>"; for any other queue both stay empty.
  std::tie(failure.topic, failure.subscription) = SplitSubscriptionQueue(q.record.name);
  failure.attributes = msg.attributes;
  failure.body = msg.body;
  // What the API shows as text rather than base64 (engine::DeadLetterDocument does the same).
  failure.body_is_text = IsValidUtf8(msg.body);
  failure.journal = std::move(journal);
  failure.delivery_count = msg.delivery_count;
  failure.cause = cause;
  // ValidateQueueConfig holds kScript to a compiled script, and the cached queue keeps it.
  script::ScriptDecision d;
  if (q.config.retry.script) {
    d = q.config.retry.script->Run(failure);
  } else {
    d.error = "the queue has no script";
  }
  journal = std::move(failure.journal);

  std::string where = q.record.tenant + "/" + q.record.name;
  // A script may log what the queue's redaction rules hide.
  const Replacements hidden = d.log.empty() ? Replacements() : redactor_.ValuesOf(q, msg);
  for (std::string line : d.log) {
    ScrubText(hidden, &line);
    spdlog::info("{}: message {} script: {}", where, msg.id, line);
  }
  if (d.log_omitted > 0) {
    spdlog::info("{}: message {} script: ({} more lines not kept)", where, msg.id, d.log_omitted);
  }

  store::FailureAction a;
  if (d.failed()) {
    counters_.CountScriptDecision("failed");
    a = DeadLetterAction(q, msg, receipt, std::move(journal), kReasonScript, d.error, d.error);
    a.decision = "script failed";
    return a;
  }
  switch (d.kind) {
    case Kind::kDeadLetter:
      counters_.CountScriptDecision("dead-letter");
      a = DeadLetterAction(q, msg, receipt, std::move(journal), reason, cause, cause);
      a.decision = "script decided deadLetter()";
      break;
    case Kind::kDrop:
      counters_.CountScriptDecision("drop");
      a = DropAction(receipt, reason, cause);
      a.decision = "script decided drop()";
      break;
    case Kind::kReroute:
      counters_.CountScriptDecision("reroute");
      a = RerouteAction(q, msg, receipt, std::move(journal), d.queue, reason, cause);
      a.decision = "script decided reroute(\"" + d.queue + "\")";
      break;
    case Kind::kRetryIn:
      counters_.CountScriptDecision("retry");
      if (receipt.lease_token.empty()) {
        // An expired message is not delivered again: its TTL has passed for good.
        a = DeadLetterAction(q, msg, receipt, std::move(journal), reason, cause,
                             cause + " (retryIn refused: the message has expired)");
      } else {
        a.kind = store::FailureAction::Kind::kRequeue;
        a.receipt = receipt;
        a.visible_at = clock_.Now() + d.delay;
        a.journal = std::move(journal);
        a.death.reason = reason;  // for the log line only
        a.death.cause = cause;
      }
      a.decision = "script decided retryIn(" + FormatDuration(d.delay) + ")";
      break;
  }
  return a;
}

Result<QueueRef> Messages::RerouteDestination(const CachedQueue& q, const store::MessageRecord& msg,
                                              const std::string& to) {
  if (to == q.record.name) {
    // A configured rerouteTo never names its own queue (Queues checks it); a script's may.
    return Status(ErrorCode::kInvalidArgument, "it is the queue the message failed in");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto dest, queues_.Lookup(q.record.tenant, to));
  if (dest->record.kind != store::QueueKind::kStandard) {
    return Status(ErrorCode::kInvalidArgument, "it is a dead-letter queue");
  }
  if (static_cast<int64_t>(msg.body.size()) > dest->config.max_message_size) {
    return Status(ErrorCode::kMessageTooLarge, "the body is larger than its maxMessageSize");
  }
  if (dest->config.max_length > 0) {
    // Checked before the move, not in its transaction: under concurrent publishes the
    // destination may end a few messages over its maxLength.
    REDRIVE_ASSIGN_OR_RETURN(auto depth, store_.GetDepth(dest->record.id, clock_.Now()));
    if (depth.ready + depth.delayed + depth.leased >= dest->config.max_length) {
      return Status(ErrorCode::kQueueFull, "it is at its maxLength");
    }
  }
  return dest;
}

Result<std::vector<bool>> Messages::ApplyFailures(
    const CachedQueue& q, const std::vector<const store::MessageRecord*>& messages,
    const std::vector<store::FailureAction>& actions) {
  REDRIVE_ASSIGN_OR_RETURN(auto held, store_.SettleFailures(q.record.id, actions));
  TimeMs now = clock_.Now();
  bool wake = false;
  std::vector<int64_t> rerouted;  // destinations to wake
  for (size_t i = 0; i < actions.size(); ++i) {
    if (!held[i]) continue;
    const store::FailureAction& a = actions[i];
    const store::MessageRecord& msg = *messages[i];
    // A consumer's or an endpoint's words may quote what the queue's redaction rules hide; a
    // retry without logRetries or a script's decision logs nothing, so costs nothing.
    std::string cause = a.death.cause;
    bool logged = q.config.log_retries || a.kind != store::FailureAction::Kind::kRequeue ||
                  !a.decision.empty();
    if (logged && !q.config.redaction.empty()) ScrubText(redactor_.ValuesOf(q, msg), &cause);
    if (q.config.log_retries) LogRetry(q, msg, a, cause, now);
    // Without logRetries, one line says where the message went, and who decided when a script
    // did.
    std::string by = a.decision.empty() ? "" : "; " + a.decision;
    switch (a.kind) {
      case store::FailureAction::Kind::kRequeue:
        wake = wake || a.visible_at <= now;
        if (!q.config.log_retries && !a.decision.empty()) {
          spdlog::info("retrying message {} from {}/{} in {} after {} deliveries: {} ({}){}",
                       msg.id, q.record.tenant, q.record.name,
                       FormatDuration(std::max<DurationMs>(0, a.visible_at - now)),
                       msg.delivery_count, a.death.reason, cause, by);
        }
        break;
      case store::FailureAction::Kind::kDrop:
        ++counters_.dropped;
        if (!q.config.log_retries) {
          spdlog::warn("dropped message {} from {}/{} after {} deliveries: {} ({}){}", msg.id,
                       q.record.tenant, q.record.name, msg.delivery_count, a.death.reason, cause,
                       by);
        }
        break;
      case store::FailureAction::Kind::kReroute:
        ++counters_.rerouted;
        rerouted.push_back(a.reroute.queue_id);
        if (!q.config.log_retries) {
          spdlog::info("rerouted message {} from {}/{} to {} after {} deliveries: {} ({}){}",
                       msg.id, q.record.tenant, q.record.name, a.reroute.queue_name,
                       msg.delivery_count, a.death.reason, cause, by);
        }
        break;
      case store::FailureAction::Kind::kDeadLetter:
        counters_.CountDeadLetter(a.death.reason);
        if (!q.config.log_retries) {
          spdlog::info("dead-lettered message {} from {}/{} to {} after {} deliveries: {} ({}){}",
                       msg.id, q.record.tenant, q.record.name, a.death.dlq, msg.delivery_count,
                       a.death.reason, cause, by);
        }
        break;
    }
  }
  if (wake) coordinator_.SignalReady(q.record.id);
  std::sort(rerouted.begin(), rerouted.end());
  rerouted.erase(std::unique(rerouted.begin(), rerouted.end()), rerouted.end());
  for (int64_t id : rerouted) coordinator_.SignalReady(id);
  return held;
}

void Messages::LogRetry(const CachedQueue& q, const store::MessageRecord& msg,
                        const store::FailureAction& a, const std::string& cause, TimeMs now) {
  // "delivery retries = n/N": n retries used of the N the policy allows (maxDeliveries - 1).
  int max = q.config.retry.max_deliveries;
  std::string of = max < 0 ? "unlimited" : std::to_string(std::max(0, max - 1));
  int used = msg.delivery_count;  // after this failure: the retry about to happen
  std::string where = q.record.tenant + "/" + q.record.name;
  if (a.kind == store::FailureAction::Kind::kRequeue && a.decision.empty()) {
    spdlog::info("{}: message {} delivery retries = {}/{}, retrying in {}", where, msg.id, used, of,
                 FormatDuration(std::max<DurationMs>(0, a.visible_at - now)));
    return;
  }
  // The failed delivery was the last: its retries were those before it. The exhausted action,
  // or the script, decided what happens now.
  std::string why = a.death.reason == kReasonMaxDeliveries ? "retries exhausted"
                    : a.death.reason == kReasonScript      ? ""
                                                           : "reason " + a.death.reason;
  if (!a.decision.empty()) why += (why.empty() ? "" : ", ") + a.decision;
  std::string fate;
  switch (a.kind) {
    case store::FailureAction::Kind::kRequeue:
      fate = "retrying in " + FormatDuration(std::max<DurationMs>(0, a.visible_at - now));
      break;
    case store::FailureAction::Kind::kDrop:
      fate = msg.id + " dropped";
      break;
    case store::FailureAction::Kind::kReroute:
      fate = msg.id + " rerouted to queue " + a.reroute.queue_name;
      break;
    case store::FailureAction::Kind::kDeadLetter:
      fate = msg.id + " saved to dead letter queue " + a.death.dlq;
      break;
  }
  spdlog::warn("{}: message {} delivery retries = {}/{}, {}, {} ({})", where, msg.id,
               std::max(0, used - 1), of, why, fate, cause);
}

TimeMs Messages::DeadLetterRetainUntil(const QueueConfig& origin, TimeMs now) const {
  DurationMs keep = origin.dead_letter_retention >= 0 ? origin.dead_letter_retention
                                                      : options_.dead_letter_retention;
  return keep > 0 ? now + keep : 0;
}

}  // namespace redrive::engine
