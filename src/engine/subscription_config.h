// The configuration of topics and subscriptions (docs/api.md#topics-and-subscriptions): a
// topic's own settings (TopicConfig), a subscription's attribute filter (SubscriptionFilter) and
// a push subscription's endpoint (PushConfig). A subscription is a standard queue named
// "<topic>:<subscription>" whose QueueConfig carries `filter` and `push` besides the usual queue
// attributes. Validation and the JSON forms live here; the rules that use them are the
// engine's (messages.cc: fan-out; push_dispatcher.cc: delivery). Thread-safe (values).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "store/records.h"

namespace redrive::engine {

// --- topics

enum class NoRouteAction { kCount, kDeadLetter };

struct TopicConfig {
  // A message that matches no subscription is counted (redrive_topic_unrouted_total) and, with
  // kDeadLetter, dead-lettered with reason "no-route" to dead_letter_queue.
  NoRouteAction no_route = NoRouteAction::kCount;
  std::string dead_letter_queue = "dead-letters";
  int64_t max_message_size = 256 * 1024;
  // How long each published message is kept as an event (Topics::ListEvents, Redeliver), with
  // its body; 0 = no events. At most kMaxEventRetention.
  DurationMs event_retention = 7LL * 24 * 3600 * 1000;
};
inline constexpr DurationMs kMaxEventRetention = 30LL * 24 * 3600 * 1000;

Status ApplyTopicConfigJson(const nlohmann::json& j, TopicConfig* config);
Status ValidateTopicConfig(const TopicConfig& config);
nlohmann::json TopicConfigToJson(const TopicConfig& config);

// The separator of a subscription's queue name, "<topic>:<subscription>": not a character of
// user-made names (common/text.h ValidateName), so the two never clash.
inline constexpr char kSubscriptionSeparator = ':';
inline constexpr size_t kMaxSubscriptionsPerTopic = 100;
std::string SubscriptionQueueName(std::string_view topic, std::string_view subscription);
// "<topic>:<subscription>" split in two; {"", ""} for a queue that is not a subscription.
std::pair<std::string, std::string> SplitSubscriptionQueue(std::string_view queue);

// --- filters

// One accepted value of an attribute: equal to `value`, starting with `value`, present, or
// absent.
struct FilterTerm {
  enum class Kind { kEquals, kPrefix, kExists, kAbsent };
  Kind kind = Kind::kEquals;
  std::string value;
};

// A message matches when, for every attribute named, one of its terms holds (AND of ORs).
// Empty: every message matches.
struct SubscriptionFilter {
  std::vector<std::pair<std::string, std::vector<FilterTerm>>> attributes;

  bool empty() const { return attributes.empty(); }
  bool Matches(const store::Attributes& attrs) const;
};

inline constexpr size_t kMaxFilterAttributes = 20;
inline constexpr size_t kMaxFilterTerms = 50;

// JSON: {"type": "order.created", "region": {"prefix": "eu-"}, "vip": {"exists": true},
//        "kind": ["a", "b", {"prefix": "c-"}]}; null or {} = no filter.
Status ApplyFilterJson(const nlohmann::json& j, SubscriptionFilter* filter);
nlohmann::json FilterToJson(const SubscriptionFilter& filter);

// --- push endpoints

// A signing secret: the current one (expires_at 0), or a previous one still signing during a
// rotation until expires_at.
struct EndpointSecret {
  std::string secret;  // "whsec_..." (push/signature.h)
  TimeMs expires_at = 0;
};

struct PushConfig {
  std::string url;  // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  DurationMs timeout = 10'000;
  int max_in_flight = 10;
  double rate_limit = 0;  // requests per second; 0 = no limit
  std::string ca_file;    // verify TLS against this CA file instead of the system store
  std::vector<EndpointSecret> secrets;          // [0] is the current one
  std::vector<int> permanent_codes;             // dead-letter at once (reason permanent-failure)
  int circuit_failures = 5;                     // consecutive failures that open the circuit
  DurationMs probe_interval = 30'000;           // an open circuit sends one probe this often
  DurationMs disable_after = 24 * 3'600'000LL;  // failing this long disables; 0 = never
  bool auto_redrive = false;                    // autoRedriveOnRecovery
  double auto_redrive_rate = 10;                // its job's rate, dead letters per second
  int64_t auto_redrive_canary = 0;              // its job's canary size; 0 = none
  // State, changed by the engine and by operators (enable/disable).
  bool disabled = false;
  std::string disabled_reason;
  TimeMs disabled_at = 0;

  // The secrets that sign at `now`: the current one, then the previous ones not yet expired.
  std::vector<std::string> SigningSecrets(TimeMs now) const;
};

std::vector<int> DefaultPermanentCodes();
inline constexpr int kMaxInFlightLimit = 1000;
inline constexpr size_t kMaxPushHeaders = 20;
inline constexpr DurationMs kMaxPushTimeout = 300'000;

// Applies the fields of a "push" object. `stored` also accepts the state and the full secrets
// (the store's form); a user's JSON sets the current secret with "secret".
Status ApplyPushJson(const nlohmann::json& j, bool stored, PushConfig* push);
Status ValidatePushConfig(const PushConfig& push);
// The store's form (`redact` false) or the API's, where secrets show only their first
// characters.
nlohmann::json PushToJson(const PushConfig& push, bool redact);

}  // namespace redrive::engine
