// The engine's shared vocabulary: scopes and principals, dead-letter reasons, quotas, the
// options every service reads and the counters they all add to. The services themselves are
// in tenancy.h, queues.h, messages.h, dead_letters.h and background.h; engine.h puts them
// together.
#pragma once

#include <array>
#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "push/mailer.h"

namespace redrive::engine {

// Token scopes.
inline constexpr char kScopePublish[] = "publish";
inline constexpr char kScopeConsume[] = "consume";
inline constexpr char kScopeDlqRead[] = "dlq:read";
inline constexpr char kScopeDlqWrite[] = "dlq:write";
inline constexpr char kScopeDlqExport[] = "dlq:export";
// Sees the real values that a queue's redaction rules hide (docs/privacy.md). Never given by
// default: a token holds it only when its request names it.
inline constexpr char kScopeDlqReadUnredacted[] = "dlq:read-unredacted";
inline constexpr char kScopeAdmin[] = "admin";
inline constexpr char kScopeOperator[] = "operator";  // server-wide: manages tenants
// Every scope a tenant token may carry.
const std::vector<std::string>& TenantScopes();
// What a new tenant token gets when its request names no scopes: every tenant scope but
// dlq:read-unredacted.
const std::vector<std::string>& DefaultTenantScopes();

// Who is calling: the result of Authenticate.
struct Principal {
  std::string token_id;
  std::string tenant;  // empty for an operator token
  std::vector<std::string> scopes;
  bool HasScope(std::string_view scope) const;
};

// Dead-letter reasons.
inline constexpr char kReasonMaxDeliveries[] = "max-deliveries";
inline constexpr char kReasonRejected[] = "rejected";
inline constexpr char kReasonExpired[] = "expired";
inline constexpr char kReasonOverflow[] = "overflow";
inline constexpr char kReasonNoRoute[] = "no-route";  // a topic's message no subscription took
// A push endpoint answered a status that retrying cannot change (3xx, 4xx of its permanent set).
inline constexpr char kReasonPermanentFailure[] = "permanent-failure";
inline constexpr char kReasonScript[] = "script";  // the queue's exhausted script failed
const std::vector<std::string>& DeadLetterReasons();

// What exhausted scripts decided, as /metrics labels it (redrive_script_decisions_total):
// "retry" is retryIn, "failed" a run that failed (the message is dead-lettered, reason script).
inline constexpr std::array<std::string_view, 5> kScriptDecisions = {"dead-letter", "drop",
                                                                     "reroute", "retry", "failed"};

// A tenant's quotas; 0 = unlimited. The server's defaults (EngineOptions::default_quotas) apply
// unless an operator overrides one for the tenant.
struct TenantQuotas {
  int64_t max_queues = 0;     // standard queues (dead-letter queues are not counted)
  int64_t max_messages = 0;   // stored messages: ready, delayed, leased and dead-lettered
  int64_t max_bytes = 0;      // body bytes of those messages
  int64_t request_rate = 0;   // requests per second with a tenant token, on tenant routes
  int64_t request_burst = 0;  // requests allowed at once; 0 = request_rate
};

// An operator's overrides of the default quotas for one tenant; unset = the default applies.
struct QuotaOverrides {
  std::optional<int64_t> max_queues, max_messages, max_bytes, request_rate, request_burst;
};

// JSON forms, shared by the API and the config file: {"maxQueues": 10, "maxMessages": 0,
// "maxBytes": 0, "requestRate": 0, "requestBurst": 0}.
nlohmann::json TenantQuotasToJson(const TenantQuotas& quotas);
nlohmann::json QuotaOverridesToJson(const QuotaOverrides& overrides);  // only the set ones
// Applies an object of quotas to *overrides: an integer sets one (0 = unlimited), null removes
// the override. Errors: kUnknownField (naming it), kInvalidArgument (type, negative, too large).
Status ApplyQuotaOverridesJson(const nlohmann::json& j, QuotaOverrides* overrides);

inline constexpr DurationMs kDefaultRotationOverlap = 86'400'000;     // 24h
inline constexpr DurationMs kMaxRotationOverlap = 30 * 86'400'000LL;  // 30d
inline constexpr DurationMs kMaxTokenLifetime = 3650 * 86'400'000LL;  // 10 years
// Checks every set override (0 to the largest value each allows). Errors: kInvalidArgument.
Status ValidateQuotaOverrides(const QuotaOverrides& overrides);
// The defaults with the overrides applied.
TenantQuotas EffectiveQuotas(const TenantQuotas& defaults, const QuotaOverrides& overrides);

struct EngineOptions {
  int max_batch = 1000;               // messages per publish / receipts per ack, nack, extend
  int max_receive = 1000;             // messages per receive
  DurationMs max_wait = 20'000;       // longest long poll
  int max_attributes = 32;            // per message
  size_t max_attribute_name = 128;    // bytes
  size_t max_attribute_value = 4096;  // bytes
  size_t max_idempotency_key = 256;   // bytes
  size_t max_reason = 256;            // nack reason, bytes
  size_t max_error = 8192;            // nack error text, bytes (longer is truncated, not refused)
  DurationMs dead_letter_retention = 7 * 86'400'000LL;  // 0 = keep until removed
  DurationMs sweep_interval = 250;
  int sweep_batch = 500;
  DurationMs token_cache_ttl = 5'000;
  DurationMs job_history = 7 * 86'400'000LL;  // finished redrive jobs are kept this long
  int redrive_chunk = 500;                    // dead letters moved per transaction
  DurationMs job_tick = 100;                  // job runner pause when idle or throttled
  TenantQuotas default_quotas;                // every tenant's, unless overridden
  DurationMs quota_retry_after = 5'000;       // Retry-After of quota-exceeded
  DurationMs token_use_flush = 60'000;        // how often tokens' last use is written
  // Export jobs' files go under <export_dir>/<tenant>/; empty = exports are refused.
  std::string export_dir;
  DurationMs export_retention = 7 * 86'400'000LL;  // exports (jobs and files) are kept this long
  int export_step = 20'000;                        // dead letters written per runner pass
  // Notifications (notifications.h): the server's address in answer links, the SMTP server
  // of the e-mail channel, how long closed tickets are kept, how often the scheduler looks.
  std::string public_url = "http://127.0.0.1:8080";
  push::SmtpConfig smtp;
  DurationMs ticket_history = 30 * 86'400'000LL;
  DurationMs notify_interval = 5'000;
  DurationMs outcome_flush = 10'000;  // how often counts of delivery outcomes are written
};

struct AuditQuery {
  std::string filter;
  std::string cookie;
  int page_size = 100;
};

struct AuditQueryResult {
  std::vector<nlohmann::json> items;
  std::string next_cookie;
};

// Process-lifetime counters for /metrics. Monotonic.
struct EngineCounters {
  std::atomic<int64_t> published{0};
  std::atomic<int64_t> duplicates{0};
  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> nacked{0};
  std::atomic<int64_t> lease_timeouts{0};
  std::atomic<int64_t> dropped{0};
  std::atomic<int64_t> rerouted{0};  // moved to another queue by onExhausted reroute
  std::atomic<int64_t> retention_deleted{0};
  // Indexed like DeadLetterReasons().
  std::array<std::atomic<int64_t>, 7> dead_lettered{};
  std::atomic<int64_t> topic_published{0};  // messages published to topics
  std::atomic<int64_t> topic_unrouted{0};   // ... that no subscription took
  // Runs of exhausted scripts, by decision; indexed like kScriptDecisions.
  std::array<std::atomic<int64_t>, kScriptDecisions.size()> script_decisions{};

  // Counts one dead letter of `reason` (one of DeadLetterReasons()).
  void CountDeadLetter(std::string_view reason);
  // Counts one run of an exhausted script that decided `decision` (one of kScriptDecisions).
  void CountScriptDecision(std::string_view decision);
};

}  // namespace redrive::engine
