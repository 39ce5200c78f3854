#include "engine/queue_config.h"

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/internal/config_fields.h"
#include "script/exhausted_script.h"

namespace redrive::engine {
namespace {

using internal::Bad;
using internal::ReadDouble;
using internal::ReadDuration;
using internal::ReadInt;
using internal::Unknown;
using nlohmann::json;

Status ApplyBackoff(const json& j, Backoff* b) {
  if (!j.is_object()) return Bad("retryPolicy.backoff", "must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const std::string f = "retryPolicy.backoff." + k;
    if (k == "initial") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, f, &b->initial));
    } else if (k == "multiplier") {
      REDRIVE_RETURN_IF_ERROR(ReadDouble(*it, f, 1.0, 100.0, &b->multiplier));
    } else if (k == "max") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, f, &b->max));
    } else if (k == "jitter") {
      REDRIVE_RETURN_IF_ERROR(ReadDouble(*it, f, 0.0, 1.0, &b->jitter));
    } else {
      return Unknown(f);
    }
  }
  return Status::Ok();
}

// retryPolicy.schedule: a preset's name, or a list of durations.
Status ApplySchedule(const json& j, RetryPolicy* r) {
  const std::string f = "retryPolicy.schedule";
  r->schedule.clear();
  r->schedule_preset.clear();
  if (j.is_string()) {
    std::string names;
    for (const auto& p : SchedulePresets()) {
      if (p.name == j.get<std::string>()) {
        r->schedule = p.delays;
        r->schedule_preset = std::string(p.name);
        return Status::Ok();
      }
      names += std::string(names.empty() ? "" : ", ") + "\"" + std::string(p.name) + "\"";
    }
    return Bad(f, "names no preset (known: " + names + ")");
  }
  if (!j.is_array() || j.empty() || j.size() > kMaxScheduleLength) {
    return Bad(f, "must be a preset's name or a list of 1 to " +
                      std::to_string(kMaxScheduleLength) + " durations");
  }
  for (size_t i = 0; i < j.size(); ++i) {
    DurationMs d = 0;
    std::string at = f + "[" + std::to_string(i) + "]";
    REDRIVE_RETURN_IF_ERROR(ReadDuration(j[i], at, &d));
    if (d > kMaxDelay) return Bad(at, "must be at most 7d");
    r->schedule.push_back(d);
  }
  return Status::Ok();
}

// retryPolicy.script: Lua source text, compiled now so that a queue never holds a script that
// cannot run; null removes it.
Status ReadScript(const json& v, RetryPolicy* r) {
  const std::string f = "retryPolicy.script";
  if (v.is_null()) {
    r->script.reset();
    return Status::Ok();
  }
  if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
    return Bad(f, "must be the script's Lua source text, or null");
  }
  // The text comes from JSON or the config file, and is stored and shown as JSON again.
  if (!IsValidUtf8(v.get_ref<const std::string&>())) return Bad(f, "must be UTF-8 text");
  auto compiled = script::ExhaustedScript::Compile(v.get<std::string>());
  if (!compiled.ok()) {
    return Status(ErrorCode::kInvalidArgument, "'" + f + "': " + compiled.status().message());
  }
  r->script = std::move(compiled).value();
  return Status::Ok();
}

Status ApplyRetry(const json& j, RetryPolicy* r) {
  if (!j.is_object()) return Bad("retryPolicy", "must be an object");
  // A schedule and a backoff exclude each other: giving one replaces the other; null removes a
  // schedule (the backoff applies again).
  auto schedule = j.find("schedule");
  bool set_schedule = schedule != j.end() && !schedule->is_null();
  if (set_schedule && j.contains("backoff")) {
    return Bad("retryPolicy.schedule", "and 'retryPolicy.backoff' exclude each other");
  }
  if (set_schedule) {
    REDRIVE_RETURN_IF_ERROR(ApplySchedule(*schedule, r));
    if (!j.contains("maxDeliveries")) r->max_deliveries = static_cast<int>(r->schedule.size()) + 1;
  } else if (schedule != j.end() || j.contains("backoff")) {
    r->schedule.clear();
    r->schedule_preset.clear();
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "schedule") {
      continue;  // applied above
    } else if (k == "maxDeliveries" && !r->schedule.empty()) {
      int64_t n;
      int64_t implied = static_cast<int64_t>(r->schedule.size()) + 1;
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, "retryPolicy.maxDeliveries", -1, 1'000'000, &n));
      if (n != implied) {
        return Bad("retryPolicy.maxDeliveries",
                   "must be " + std::to_string(implied) +
                       " with this schedule (its length + 1), or left out");
      }
      r->max_deliveries = static_cast<int>(n);
    } else if (k == "maxDeliveries") {
      int64_t n;
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, "retryPolicy.maxDeliveries", -1, 1'000'000, &n));
      r->max_deliveries = static_cast<int>(n);
    } else if (k == "backoff") {
      REDRIVE_RETURN_IF_ERROR(ApplyBackoff(*it, &r->backoff));
    } else if (k == "onExhausted") {
      std::string v = it->is_string() ? it->get<std::string>() : "";
      if (v == "dead-letter") {
        r->on_exhausted = ExhaustedAction::kDeadLetter;
      } else if (v == "drop") {
        r->on_exhausted = ExhaustedAction::kDrop;
      } else if (v == "reroute") {
        r->on_exhausted = ExhaustedAction::kReroute;
      } else if (v == "script") {
        r->on_exhausted = ExhaustedAction::kScript;
      } else {
        return Bad("retryPolicy.onExhausted",
                   "must be \"dead-letter\", \"drop\", \"reroute\" or \"script\"");
      }
    } else if (k == "rerouteTo") {
      if (it->is_null()) {
        r->reroute_to.clear();
      } else if (it->is_string()) {
        r->reroute_to = it->get<std::string>();
      } else {
        return Bad("retryPolicy.rerouteTo", "must be a queue name or null");
      }
    } else if (k == "script") {
      REDRIVE_RETURN_IF_ERROR(ReadScript(*it, r));
    } else {
      return Unknown("retryPolicy." + k);
    }
  }
  return Status::Ok();
}

}  // namespace

Status ApplyQueueConfigJson(const json& j, QueueConfig* c, bool stored) {
  if (!j.is_object())
    return Status(ErrorCode::kInvalidArgument, "queue attributes must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "visibilityTimeout") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->visibility_timeout));
    } else if (k == "retention") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->retention));
    } else if (k == "deliveryDelay") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->delivery_delay));
    } else if (k == "maxMessageSize") {
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, k, 1, kMaxMessageSizeLimit, &c->max_message_size));
    } else if (k == "maxLength") {
      REDRIVE_RETURN_IF_ERROR(ReadInt(*it, k, 0, int64_t{1} << 40, &c->max_length));
    } else if (k == "overflow") {
      std::string v = it->is_string() ? it->get<std::string>() : "";
      if (v == "reject-publish") {
        c->overflow = OverflowPolicy::kRejectPublish;
      } else if (v == "dead-letter-oldest") {
        c->overflow = OverflowPolicy::kDeadLetterOldest;
      } else {
        return Bad(k, "must be \"reject-publish\" or \"dead-letter-oldest\"");
      }
    } else if (k == "messageTtl") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->message_ttl));
    } else if (k == "logRetries") {
      if (!it->is_boolean()) return Bad(k, "must be true or false");
      c->log_retries = it->get<bool>();
    } else if (k == "dedupWindow") {
      REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->dedup_window));
    } else if (k == "deadLetterRetention") {
      if (it->is_null()) {
        c->dead_letter_retention = -1;
      } else {
        REDRIVE_RETURN_IF_ERROR(ReadDuration(*it, k, &c->dead_letter_retention));
      }
    } else if (k == "deadLetterQueue") {
      if (!it->is_string()) return Bad(k, "must be a queue name");
      c->dead_letter_queue = it->get<std::string>();
    } else if (k == "retryPolicy") {
      REDRIVE_RETURN_IF_ERROR(ApplyRetry(*it, &c->retry));
    } else if (k == "filter") {
      REDRIVE_RETURN_IF_ERROR(ApplyFilterJson(*it, &c->filter));
    } else if (k == "redaction") {
      REDRIVE_RETURN_IF_ERROR(ApplyRedactionJson(*it, &c->redaction));
    } else if (k == "push") {
      if (it->is_null()) {
        c->push.reset();
        continue;
      }
      if (!c->push) {
        c->push.emplace();
        c->push->permanent_codes = DefaultPermanentCodes();
      }
      REDRIVE_RETURN_IF_ERROR(ApplyPushJson(*it, stored, &*c->push));
    } else {
      return Unknown(k);
    }
  }
  return Status::Ok();
}

Status ValidateQueueConfig(const QueueConfig& c) {
  if (c.visibility_timeout < 1000 || c.visibility_timeout > kMaxVisibilityTimeout) {
    return Bad("visibilityTimeout", "must be between 1s and 12h");
  }
  if (c.delivery_delay > kMaxDelay) return Bad("deliveryDelay", "must be at most 7d");
  if (c.retention != 0 && c.retention < 60'000) {
    return Bad("retention", "must be 0 (keep until consumed) or at least 1m");
  }
  if (c.message_ttl != 0 && c.message_ttl < 1000) {
    return Bad("messageTtl", "must be 0 (never expire) or at least 1s");
  }
  if (c.dedup_window > 7 * 86'400'000LL) return Bad("dedupWindow", "must be at most 7d");
  if (c.dead_letter_retention > 3650LL * 86'400'000LL) {
    return Bad("deadLetterRetention", "must be at most 3650d");
  }
  if (c.retry.backoff.max < c.retry.backoff.initial) {
    return Bad("retryPolicy.backoff.max", "must not be less than retryPolicy.backoff.initial");
  }
  if (c.retry.backoff.max > kMaxDelay) return Bad("retryPolicy.backoff.max", "must be at most 7d");
  if (!c.retry.schedule.empty() &&
      c.retry.max_deliveries != static_cast<int>(c.retry.schedule.size()) + 1) {
    return Bad("retryPolicy.maxDeliveries", "must be the schedule's length + 1");
  }
  REDRIVE_RETURN_IF_ERROR(ValidateName(c.dead_letter_queue, "deadLetterQueue"));
  if (c.push) REDRIVE_RETURN_IF_ERROR(ValidatePushConfig(*c.push));
  if (c.retry.on_exhausted == ExhaustedAction::kReroute) {
    if (c.retry.reroute_to.empty()) {
      return Bad("retryPolicy.rerouteTo", "is required with onExhausted \"reroute\"");
    }
    REDRIVE_RETURN_IF_ERROR(ValidateName(c.retry.reroute_to, "retryPolicy.rerouteTo"));
  } else if (!c.retry.reroute_to.empty()) {
    return Bad("retryPolicy.rerouteTo", "is only for onExhausted \"reroute\"");
  }
  if (c.retry.on_exhausted == ExhaustedAction::kScript) {
    if (!c.retry.script) {
      return Bad("retryPolicy.script", "is required with onExhausted \"script\"");
    }
  } else if (c.retry.script) {
    return Bad("retryPolicy.script", "is only for onExhausted \"script\" (null removes it)");
  }
  return Status::Ok();
}

json QueueConfigToJson(const QueueConfig& c, bool for_store) {
  json retry = {
      {"maxDeliveries", c.retry.max_deliveries},
      {"onExhausted", ExhaustedActionName(c.retry.on_exhausted)},
      {"rerouteTo", c.retry.reroute_to.empty() ? json(nullptr) : json(c.retry.reroute_to)},
      {"script", c.retry.script ? json(c.retry.script->source()) : json(nullptr)}};
  if (!c.retry.schedule_preset.empty()) {
    retry["schedule"] = c.retry.schedule_preset;
  } else if (!c.retry.schedule.empty()) {
    json delays = json::array();
    for (DurationMs d : c.retry.schedule) delays.push_back(FormatDuration(d));
    retry["schedule"] = delays;
  } else {
    retry["backoff"] = {{"initial", FormatDuration(c.retry.backoff.initial)},
                        {"multiplier", c.retry.backoff.multiplier},
                        {"max", FormatDuration(c.retry.backoff.max)},
                        {"jitter", c.retry.backoff.jitter}};
  }
  json out{
      {"visibilityTimeout", FormatDuration(c.visibility_timeout)},
      {"retention", FormatDuration(c.retention)},
      {"deliveryDelay", FormatDuration(c.delivery_delay)},
      {"maxMessageSize", c.max_message_size},
      {"maxLength", c.max_length},
      {"overflow", OverflowPolicyName(c.overflow)},
      {"messageTtl", FormatDuration(c.message_ttl)},
      {"dedupWindow", FormatDuration(c.dedup_window)},
      {"logRetries", c.log_retries},
      {"deadLetterQueue", c.dead_letter_queue},
      {"deadLetterRetention",
       c.dead_letter_retention < 0 ? json(nullptr) : json(FormatDuration(c.dead_letter_retention))},
      {"retryPolicy", retry},
  };
  if (!c.filter.empty()) out["filter"] = FilterToJson(c.filter);
  if (!c.redaction.empty()) out["redaction"] = RedactionToJson(c.redaction);
  if (c.push) out["push"] = PushToJson(*c.push, !for_store);
  return out;
}

const std::vector<SchedulePreset>& SchedulePresets() {
  constexpr DurationMs s = 1000, m = 60 * s, h = 60 * m;
  static const std::vector<SchedulePreset> kPresets = {
      {"akamai",
       {3 * s, 30 * s, 5 * m, h, 24 * h},
       "the Akamai Webhooks service: at once, then 3s, 30s, 5m, 1h and 24h (6 deliveries)"},
      {"svix",
       {5 * s, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h},
       "Svix's: at once, then 5s, 5m, 30m, 2h, 5h, 10h and 10h (8 deliveries, about 28h)"},
      {"fast",
       {s, 2 * s, 5 * s, 10 * s, 30 * s},
       "for consumers that recover in seconds: 1s, 2s, 5s, 10s, 30s (6 deliveries)"},
  };
  return kPresets;
}

std::string_view OverflowPolicyName(OverflowPolicy p) {
  return p == OverflowPolicy::kRejectPublish ? "reject-publish" : "dead-letter-oldest";
}

std::string_view ExhaustedActionName(ExhaustedAction a) {
  switch (a) {
    case ExhaustedAction::kDeadLetter:
      return "dead-letter";
    case ExhaustedAction::kDrop:
      return "drop";
    case ExhaustedAction::kReroute:
      return "reroute";
    case ExhaustedAction::kScript:
      return "script";
  }
  return "dead-letter";
}

}  // namespace redrive::engine
