// QueueConfig: the attributes of a queue, with defaults, validation and the JSON form used by
// the REST API, the config file and the store (as an opaque column). Thread-safe (values).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/redaction.h"
#include "engine/subscription_config.h"

namespace redrive::script {
class ExhaustedScript;
}  // namespace redrive::script

namespace redrive::engine {

enum class OverflowPolicy { kRejectPublish, kDeadLetterOldest };
enum class ExhaustedAction { kDeadLetter, kDrop, kReroute, kScript };

struct Backoff {
  DurationMs initial = 1000;
  double multiplier = 2.0;
  DurationMs max = 300'000;
  double jitter = 0.1;  // the delay varies by up to +/- this share
};

struct RetryPolicy {
  // -1 = retry forever; 0 = never retry (the first failure is final); N = at most N deliveries.
  // With a schedule: the schedule's length + 1 (the first delivery, then one per delay).
  int max_deliveries = 10;
  Backoff backoff;
  // An explicit schedule: the delay after the n-th failed delivery is schedule[n-1]. When set,
  // it replaces `backoff`. `schedule_preset` names the preset it came from, if any.
  std::vector<DurationMs> schedule;
  std::string schedule_preset;
  ExhaustedAction on_exhausted = ExhaustedAction::kDeadLetter;
  // kReroute: the standard queue of the same tenant that exhausted messages move to.
  std::string reroute_to;
  // kScript: the script that decides each exhausted message's fate, compiled when it is set
  // (its source is the JSON form's retryPolicy.script). Shared by every copy of the
  // configuration and by the runs in flight; immutable, so thread-safe.
  std::shared_ptr<const script::ExhaustedScript> script;
};

// A named retry schedule (retryPolicy.schedule = "<name>").
struct SchedulePreset {
  std::string_view name;
  std::vector<DurationMs> delays;
  std::string_view description;
};
// Every preset, in the order the docs list them: "akamai" (the six attempts of the Akamai
// Webhooks service: at once, then 3s, 30s, 5m, 1h and 24h), "svix" and "fast".
const std::vector<SchedulePreset>& SchedulePresets();
inline constexpr size_t kMaxScheduleLength = 100;

inline constexpr char kDefaultDeadLetterQueue[] = "dead-letters";

struct QueueConfig {
  DurationMs visibility_timeout = 30'000;
  DurationMs retention = 4 * 86'400'000LL;  // 0 = keep until consumed
  DurationMs delivery_delay = 0;
  int64_t max_message_size = 256 * 1024;
  int64_t max_length = 0;  // 0 = unlimited
  OverflowPolicy overflow = OverflowPolicy::kRejectPublish;
  DurationMs message_ttl = 0;  // 0 = messages never expire
  DurationMs dedup_window = 5 * 60'000;
  std::string dead_letter_queue = kDefaultDeadLetterQueue;
  // How long this queue's dead letters are kept; -1 = the server's dead_letter_retention,
  // 0 = until removed.
  DurationMs dead_letter_retention = -1;
  RetryPolicy retry;
  // Logs every retry and the exhausted action of each message in the operator's words
  // ("delivery retries = 1/4, retrying"); push subscriptions always do.
  bool log_retries = false;
  // Which values of its messages are hidden wherever its dead letters are shown (and, with
  // storeRedacted, never stored in them): engine/redaction.h, docs/privacy.md.
  RedactionRules redaction;
  // Subscriptions only (a queue named "<topic>:<subscription>", subscription_config.h): which
  // of the topic's messages it takes, and, for a push subscription, its endpoint.
  SubscriptionFilter filter;
  std::optional<PushConfig> push;
};

// Hard limits on attribute values, shared by validation and the docs.
inline constexpr int64_t kMaxMessageSizeLimit = 16 * 1024 * 1024;
inline constexpr DurationMs kMaxVisibilityTimeout = 12 * 3'600'000LL;
inline constexpr DurationMs kMaxDelay = 7 * 86'400'000LL;

// Applies the fields present in `j` (a JSON object) to `*config`. Unknown fields, wrong types
// and out-of-range values are errors (kUnknownField, kInvalidArgument, kInvalidDuration) that
// name the field; on error `*config` may be partly changed, so apply to a copy. A
// retryPolicy.script is compiled here: one that does not compile (Lua's message names the
// line), is bytecode, is not UTF-8 or is over 64 KiB is kInvalidArgument.
// `stored`: `j` is the store's form (QueueConfigToJson with for_store), which also holds an
// endpoint's state and full secrets.
Status ApplyQueueConfigJson(const nlohmann::json& j, QueueConfig* config, bool stored = false);
// Checks ranges and combinations. Errors: kInvalidArgument.
Status ValidateQueueConfig(const QueueConfig& config);
// The full JSON form (every field, durations as strings like "30s"). An endpoint's secrets are
// shown as hints, unless `for_store`.
nlohmann::json QueueConfigToJson(const QueueConfig& config, bool for_store = false);

std::string_view OverflowPolicyName(OverflowPolicy p);
std::string_view ExhaustedActionName(ExhaustedAction a);

}  // namespace redrive::engine
