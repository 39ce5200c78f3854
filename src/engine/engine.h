// Engine: every rule of redrive in one place. Tenants and tokens, queues, publishing, leases,
// acks and nacks, the retry policy, dead-lettering, the sweeper and the counters. Handlers
// (REST, CLI, later SQS) translate their protocol into these calls and nothing else.
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store.
//
// Thread-safety: thread-safe. Threads: Start() runs the sweeper and the redrive job runner;
// Stop() joins both and ends every long poll early. Two waker threads (from construction to
// destruction) finish parked long polls: they lease for them when messages become ready and
// answer them when their wait ends. A long poll parked by ReceiveAsync holds no thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/queue_config.h"
#include "store/store.h"

namespace redrive::engine {

// Token scopes.
inline constexpr char kScopePublish[] = "publish";
inline constexpr char kScopeConsume[] = "consume";
inline constexpr char kScopeDlqRead[] = "dlq:read";
inline constexpr char kScopeDlqWrite[] = "dlq:write";
inline constexpr char kScopeDlqExport[] = "dlq:export";
inline constexpr char kScopeAdmin[] = "admin";
inline constexpr char kScopeOperator[] = "operator";  // server-wide: manages tenants
// Every scope a tenant token may carry (the default for a new token).
const std::vector<std::string>& TenantScopes();

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
const std::vector<std::string>& DeadLetterReasons();

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
};

struct TenantInfo {
  std::string name;
  TimeMs created_at = 0;
  bool deleting = false;
  QuotaOverrides overrides;
  // Filled by GetTenant only:
  TenantQuotas quotas;  // effective: the defaults with the overrides
  store::TenantUsage usage;
};

struct TokenInfo {
  std::string id;
  std::string tenant;
  std::string label;
  std::vector<std::string> scopes;
  TimeMs created_at = 0;
  TimeMs revoked_at = 0;
  TimeMs expires_at = 0;    // 0 = never
  TimeMs last_used_at = 0;  // to within EngineOptions::token_use_flush on other nodes
  std::string replaced_by;  // the token a rotation issued in its place
  std::string state;        // active, expired or revoked (at the time of the call)
};

struct NewToken {
  TokenInfo info;
  std::string secret;  // shown once; only its hash is stored
  // Set by a rotation: the token this one replaces, and when that one stops being accepted.
  std::string replaces;
  TimeMs replaces_until = 0;
};

struct QueueInfo {
  std::string tenant;
  std::string name;
  store::QueueKind kind = store::QueueKind::kStandard;
  QueueConfig config;
  store::QueueDepth depth;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
};

struct NewMessage {
  std::string body;  // bytes
  store::Attributes attributes;
  std::string idempotency_key;
  std::optional<DurationMs> delay;  // overrides the queue's delivery delay
};

inline constexpr size_t kMaxConsumerName = 256;  // bytes

struct ReceiveOptions {
  int64_t max_messages = 1;                      // 1 to EngineOptions::max_receive
  DurationMs wait = 0;                           // 0 to EngineOptions::max_wait
  std::optional<DurationMs> visibility_timeout;  // overrides the queue's; 1s to 12h
  // Recorded in the attempt journal, at most kMaxConsumerName bytes; empty = `caller`.
  std::string consumer;
  std::string caller;  // the id of the token that receives
};

struct Delivery {
  store::MessageRecord message;
  std::string receipt;  // opaque receipt handle for ack, nack, extend
};

// The end of a receive: its deliveries (empty when the wait passed) or its error.
using ReceiveCallback = std::function<void(Result<std::vector<Delivery>>)>;

struct NackRequest {
  std::string receipt;
  std::string reason;
  std::string error;
  std::optional<DurationMs> delay;  // overrides the backoff; not with dead_letter
  bool dead_letter = false;         // skip the remaining retries
  // Recorded in the journal, at most kMaxConsumerName bytes; empty = `caller`, else the
  // consumer of the delivery.
  std::string consumer;
  std::string caller;  // the id of the token that nacks
};

// A dead-letter query in the ForgeRock common REST conventions.
struct DeadLetterQuery {
  std::string filter;        // _queryFilter; empty = every dead letter in scope
  std::string fields;        // _fields; empty = every field
  std::string sort_keys;     // _sortKeys; empty = dead-lettering order
  std::string cookie;        // _pagedResultsCookie from the previous page
  int page_size = 100;       // _pageSize, 1..1000
  std::string total_policy;  // _totalPagedResultsPolicy: "", "EXACT" or "NONE"
  // Scope from the route: a dead-letter queue, an origin queue or a failure group.
  std::string dlq, origin, group;
};

struct DeadLetterQueryResult {
  std::vector<nlohmann::json> items;  // dead-letter documents, projected by _fields
  std::string next_cookie;            // empty on the last page
  int64_t total = -1;                 // -1 when not counted (see total_policy)
};

// What a dead-letter action applies to: explicit ids, or every dead letter matching a filter
// and/or a failure group, within a dead-letter queue and a time window.
struct DeadLetterTarget {
  std::vector<std::string> ids;
  std::string filter;
  std::string group;
  std::string dlq;
  std::optional<TimeMs> since, until;  // dead-lettered at, since inclusive, until exclusive
};

struct SkippedItem {
  std::string id;
  std::string reason;  // not-found, origin-missing, too-large, overflow
  std::string detail;
};

struct ActionResult {
  int64_t matched = 0;
  int64_t done = 0;  // deleted, or moved
  int64_t skipped = 0;
  std::vector<SkippedItem> skipped_items;  // the first 100
};

struct JobSpec {
  std::string dlq = kDefaultDeadLetterQueue;
  std::string filter;
  std::string group;
  std::optional<TimeMs> since, until;
  std::string destination;  // empty = each message's origin queue
  double rate = 0;          // messages per second; 0 = as fast as the store goes
  int canary = 0;           // move this many first, then wait and check
  DurationMs canary_wait = 30'000;
  double canary_max_failure = 0.1;  // halt when a larger share of the canary fails again
};

// A job's state and phase, and their words (store/job_state.h: ToString, FromString).
using store::JobPhase;
using store::JobState;

struct JobInfo {
  std::string id;
  std::string tenant;
  JobState state = JobState::kRunning;
  JobSpec spec;
  JobPhase phase = JobPhase::kBulk;
  int64_t to_move = 0;
  int64_t moved = 0;
  int64_t skipped = 0;
  int64_t failed_again = 0;  // moved by this job and dead-lettered again since
  std::string halt_reason;
  std::string error;
  std::string created_by;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  TimeMs finished_at = 0;
};

struct DryRunResult {
  int64_t to_move = 0;
  std::map<std::string, int64_t> destinations;  // queue -> how many would go there
  std::vector<std::string> sample;              // the first ids that would move
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
  std::atomic<int64_t> retention_deleted{0};
  // Indexed like DeadLetterReasons().
  std::array<std::atomic<int64_t>, 4> dead_lettered{};
};

class Engine {
 public:
  Engine(store::Store& store, Clock& clock, Random& random, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void Start();  // starts the sweeper
  void Stop();   // joins the sweeper and ends every long poll early

  // ---- auth
  // Errors: kUnauthenticated for a missing, unknown or revoked token.
  Result<Principal> Authenticate(std::string_view bearer_token);
  // Whether `p` may act on `tenant` with `scope`. Errors: kTenantNotFound when the tenant does
  // not exist or belongs to another token (never revealing which), kForbidden when the scope
  // is missing or when a tenant token calls a server-wide route (`tenant` empty).
  Status Authorize(const Principal& p, const std::string& tenant, std::string_view scope);
  // Operator tokens (server-wide). The first is written by `serve` on first start.
  Result<NewToken> CreateOperatorToken(const std::string& label);
  Result<std::vector<TokenInfo>> ListOperatorTokens();

  // ---- tenancy (tenancy.cc): tenants, tokens, quotas, request rate, the audit of
  // administrative changes. Every change is written to the audit log with the token id of
  // `actor`: changes inside a tenant (its tokens, queues, quotas) to the tenant's log,
  // server-wide ones (tenants, operator tokens, quotas) to the server log (tenant ""), which
  // QueryServerAudit reads. The overloads without an actor act as `system`.
  //
  // Errors: kInvalidName, kAlreadyExists, kInvalidArgument (a negative quota).
  Result<TenantInfo> CreateTenant(const Principal& actor, const std::string& name,
                                  const QuotaOverrides& quotas = {});
  Result<TenantInfo> CreateTenant(const std::string& name);
  Result<std::vector<TenantInfo>> ListTenants();
  // With its effective quotas and usage. Errors: kTenantNotFound.
  Result<TenantInfo> GetTenant(const std::string& name);
  // Replaces the tenant's overrides; a quota already below its usage refuses only new work.
  // Errors: kTenantNotFound, kInvalidArgument (a negative quota).
  Result<TenantInfo> SetTenantQuotas(const Principal& actor, const std::string& name,
                                     const QuotaOverrides& overrides);
  // Deletes the tenant with its tokens, queues, messages, dead letters, jobs and audit log.
  // Errors: kTenantNotFound, kTenantNotEmpty (it has queues and `force` is false).
  Status DeleteTenant(const Principal& actor, const std::string& name, bool force);
  // The defaults with the tenant's overrides. Errors: kTenantNotFound.
  Result<TenantQuotas> QuotasOf(const std::string& tenant);
  // Admits one request of `p` on `tenant` by the tenant's request rate (a token bucket of
  // request_burst, refilled at request_rate per second). Operator tokens are never limited.
  // Errors: kRateLimited, with *retry_after set to when a request will be admitted again.
  Status AdmitRequest(const Principal& p, const std::string& tenant, DurationMs* retry_after);
  // Retry-After for kQuotaExceeded: space frees only as consumers and operators remove work.
  DurationMs quota_retry_after() const { return options_.quota_retry_after; }

  // Tenant tokens. `expires_in`: the token is refused from then on (1s to kMaxTokenLifetime).
  // Errors: kTenantNotFound, kInvalidName (label), kInvalidArgument (unknown scope, lifetime).
  Result<NewToken> CreateToken(const Principal& actor, const std::string& tenant,
                               const std::string& label, const std::vector<std::string>& scopes,
                               std::optional<DurationMs> expires_in = std::nullopt);
  Result<NewToken> CreateToken(const std::string& tenant, const std::string& label,
                               const std::vector<std::string>& scopes);
  Result<std::vector<TokenInfo>> ListTokens(const std::string& tenant);
  // Errors: kTokenNotFound.
  Status RevokeToken(const Principal& actor, const std::string& tenant,
                     const std::string& token_id);
  Status RevokeToken(const std::string& tenant, const std::string& token_id);
  // Issues a new token with the same tenant, label and scopes (and `expires_in`, else no
  // expiry); the old one is still accepted for `overlap` (0 = stops at once), then refused
  // like a revoked one. Errors: kTokenNotFound (no token with that id that is neither revoked
  // nor expired), kInvalidArgument (overlap outside 0 to kMaxRotationOverlap; lifetime).
  Result<NewToken> RotateToken(const Principal& actor, const std::string& tenant,
                               const std::string& token_id, DurationMs overlap,
                               std::optional<DurationMs> expires_in = std::nullopt);

  // Operator tokens. Errors as for tenant tokens; revoking fails with kLastOperatorToken
  // when no other operator token would stay active (neither revoked nor expired).
  Result<NewToken> CreateOperatorToken(const Principal& actor, const std::string& label,
                                       std::optional<DurationMs> expires_in = std::nullopt);
  Status RevokeOperatorToken(const Principal& actor, const std::string& token_id);
  Result<NewToken> RotateOperatorToken(const Principal& actor, const std::string& token_id,
                                       DurationMs overlap,
                                       std::optional<DurationMs> expires_in = std::nullopt);
  // The server-wide audit log (tenants, operator tokens, quotas). Errors: kInvalidQuery.
  Result<AuditQueryResult> QueryServerAudit(const AuditQuery& query);

  // ---- queues (each change audited with `actor`; without one, as `system`)
  // Creates the queue and, if missing, its dead-letter queue. Errors: kTenantNotFound,
  // kInvalidName, kInvalidArgument, kAlreadyExists, kQuotaExceeded (maxQueues).
  Result<QueueInfo> CreateQueue(const Principal& actor, const std::string& tenant,
                                const std::string& name, const QueueConfig& config);
  Result<QueueInfo> CreateQueue(const std::string& tenant, const std::string& name,
                                const QueueConfig& config);
  // Replaces the attributes. Errors: kQueueNotFound, kInvalidArgument,
  // kDeadLetterQueueReadOnly (a dead-letter queue has no attributes to change).
  Result<QueueInfo> UpdateQueue(const Principal& actor, const std::string& tenant,
                                const std::string& name, const QueueConfig& config);
  Result<QueueInfo> UpdateQueue(const std::string& tenant, const std::string& name,
                                const QueueConfig& config);
  // With depths. Errors: kQueueNotFound.
  Result<QueueInfo> GetQueue(const std::string& tenant, const std::string& name);
  Result<std::vector<QueueInfo>> ListQueues(const std::string& tenant);
  // Deletes the queue and its messages; dead letters from it stay. Errors: kQueueNotFound.
  Status DeleteQueue(const Principal& actor, const std::string& tenant, const std::string& name);
  Status DeleteQueue(const std::string& tenant, const std::string& name);

  // ---- messages
  // All or nothing: every message is validated before any is stored. Errors: kQueueNotFound,
  // kDeadLetterQueueReadOnly, kEmptyBatch, kBatchTooLarge, kMessageTooLarge,
  // kTooManyAttributes, kAttributeTooLarge, kInvalidArgument, kQueueFull, kQuotaExceeded
  // (maxMessages or maxBytes of the tenant: nothing of the batch is stored).
  Result<std::vector<store::PublishOutcome>> Publish(const std::string& tenant,
                                                     const std::string& queue,
                                                     std::vector<NewMessage> messages);
  // Leases up to max_messages. With wait > 0 and nothing ready, the receive parks as a waiter
  // (no thread) until messages become ready or the wait passes; `done` is then called once,
  // from a waker thread, or from the thread that calls Stop(). Otherwise `done` is called before
  // ReceiveAsync returns. Waiters on a queue are served in arrival order, and a publish of n
  // messages wakes at most the waiters those n messages satisfy (one lease for several waiters
  // of the same consumer and visibility timeout).
  // Errors: kQueueNotFound, kDeadLetterQueueReadOnly, kInvalidArgument.
  void ReceiveAsync(const std::string& tenant, const std::string& queue,
                    const ReceiveOptions& options, ReceiveCallback done);
  // ReceiveAsync, blocking the calling thread until `done`.
  Result<std::vector<Delivery>> Receive(const std::string& tenant, const std::string& queue,
                                        const ReceiveOptions& options);
  // Long polls parked now (for tests and metrics).
  int64_t parked_receives();
  // One Status per receipt: ok, kInvalidReceipt or kLeaseLost. Errors (whole call):
  // kQueueNotFound, kEmptyBatch, kBatchTooLarge, kDeadLetterQueueReadOnly (as for Nack and
  // ExtendLeases: a dead-letter queue has no leases).
  Result<std::vector<Status>> Ack(const std::string& tenant, const std::string& queue,
                                  const std::vector<std::string>& receipts);
  // Records the failure in the journal, then retries by policy or takes the exhausted action.
  // Errors (whole call, nothing applied): kInvalidArgument for a delay outside 0s..7d, a delay
  // together with dead_letter, a reason or consumer too long.
  Result<std::vector<Status>> Nack(const std::string& tenant, const std::string& queue,
                                   const std::vector<NackRequest>& nacks);
  Result<std::vector<Status>> ExtendLeases(const std::string& tenant, const std::string& queue,
                                           const std::vector<std::string>& receipts,
                                           DurationMs visibility_timeout);

  // ---- dead letters
  // Errors: kDeadLetterNotFound.
  Result<store::DeadLetterRecord> GetDeadLetter(const std::string& tenant, const std::string& id);

  // ---- the dead-letter workbench (workbench.cc). Browsing never changes a dead letter.
  // Errors: kInvalidQuery (filter, fields, sort keys, cookie, page size: the message points at
  // the position of the error).
  Result<DeadLetterQueryResult> QueryDeadLetters(const std::string& tenant,
                                                 const DeadLetterQuery& query);
  Result<std::vector<store::FailureGroupRow>> ListFailureGroups(const std::string& tenant,
                                                                const std::string& dlq);
  Result<store::DeadLetterStats> GetDeadLetterStats(const std::string& tenant,
                                                    const std::string& dlq);
  // Each action is atomic per message and idempotent: a dead letter already gone is skipped
  // with reason not-found. Every action is written to the audit log with `actor`.
  // Errors: kInvalidQuery (filter), kInvalidArgument (empty target), kDeadLetterNotFound (a
  // single id that is not there).
  Result<ActionResult> DeleteDeadLetters(const Principal& actor, const std::string& tenant,
                                         const DeadLetterTarget& target);
  // Errors: kInvalidArgument unless `confirm` equals `dlq`; kQueueNotFound.
  Result<ActionResult> PurgeDeadLetterQueue(const Principal& actor, const std::string& tenant,
                                            const std::string& dlq, const std::string& confirm);
  // Back to each dead letter's origin queue, keeping id, idempotency key, attributes and first
  // publish time; delivery count restarts; lineage recorded. A destination whose limits refuse
  // the message leaves it dead-lettered (skipped: too-large, overflow; recorded on it).
  Result<ActionResult> RestoreDeadLetters(const Principal& actor, const std::string& tenant,
                                          const DeadLetterTarget& target);
  // To another standard queue of the tenant; the original queue stays in the lineage.
  // Errors: kQueueNotFound, kDeadLetterQueueReadOnly (destination is a dead-letter queue).
  Result<ActionResult> RerouteDeadLetters(const Principal& actor, const std::string& tenant,
                                          const DeadLetterTarget& target,
                                          const std::string& destination);

  // ---- redrive jobs (workbench.cc): bulk restore/reroute in the background.
  // Counts what would move and where, moving nothing.
  Result<DryRunResult> DryRunJob(const std::string& tenant, const JobSpec& spec);
  // Errors: kJobActive (a job is already active on this dead-letter queue: running,
  // cancelling or halted), kInvalidArgument, kInvalidQuery, kQueueNotFound.
  Result<JobInfo> StartJob(const Principal& actor, const std::string& tenant, const JobSpec& spec);
  // Errors: kJobNotFound.
  Result<JobInfo> GetJob(const std::string& tenant, const std::string& id);
  Result<std::vector<JobInfo>> ListJobs(const std::string& tenant);
  // Errors: kJobNotFound, kJobStateConflict (not running, halted or cancelling).
  Result<JobInfo> CancelJob(const Principal& actor, const std::string& tenant,
                            const std::string& id);
  // Halted -> running (the canary is not repeated). Errors: kJobNotFound, kJobStateConflict.
  Result<JobInfo> ResumeJob(const Principal& actor, const std::string& tenant,
                            const std::string& id);
  // One pass of the job runner over every active job; returns messages moved. The runner
  // thread calls it; tests call it directly.
  Result<int64_t> RunJobsOnce();

  // ---- audit
  Result<AuditQueryResult> QueryAudit(const std::string& tenant, const AuditQuery& query);

  // ---- background work
  // One pass of the sweeper: expired leases, TTL expiry, retention. Returns how much it did.
  Result<int64_t> SweepOnce();

  // ---- observation
  const EngineCounters& counters() const { return counters_; }
  Result<std::vector<store::QueueDepthRow>> AllDepths();
  TimeMs Now() { return clock_.Now(); }

 private:
  struct CachedQueue {
    store::QueueRecord record;
    QueueConfig config;
  };
  // A receive parked until messages are ready or its deadline passes (long_poll.cc).
  struct Waiter {
    std::shared_ptr<const CachedQueue> queue;
    int max_messages = 1;
    DurationMs visibility_timeout = 0;
    std::string consumer;
    TimeMs deadline = 0;
    uint64_t id = 0;
    ReceiveCallback done;
  };
  using WaiterList = std::list<Waiter>;
  struct QueueWaiters {
    WaiterList waiting;            // in arrival order
    uint64_t epoch = 0;            // counts Notify calls, so that a receive about to park sees one
    bool draining = false;         // a waker thread is leasing for this queue's waiters
    bool drain_requested = false;  // Notify came while draining: go round again
  };
  struct CachedPrincipal {
    Principal principal;
    TimeMs fetched_at = 0;
    TimeMs expires_at = 0;  // the token's; 0 = never
  };
  struct CachedOverrides {
    QuotaOverrides overrides;
    TimeMs fetched_at = 0;
  };
  struct RateBucket {
    double tokens = 0;
    TimeMs at = 0;
  };

  Result<std::shared_ptr<const CachedQueue>> LookupQueue(const std::string& tenant,
                                                         const std::string& name);
  Result<std::shared_ptr<const CachedQueue>> LookupQueueById(int64_t id);
  void ForgetQueue(const std::string& tenant, const std::string& name);
  Status EnsureTenant(const std::string& tenant);
  Status EnsureDeadLetterQueue(const std::string& tenant, const std::string& name);
  Result<QueueInfo> MakeQueueInfo(const store::QueueRecord& record);
  // tenancy.cc: a token for `tenant` ("" = operator) with a fresh id and secret, not stored.
  NewToken MintToken(const std::string& tenant, const std::string& label,
                     const std::vector<std::string>& scopes, TimeMs expires_at);
  // Now + expires_in, or 0 without one. Errors: kInvalidArgument (outside 1s..10y).
  Result<TimeMs> ExpiryOf(std::optional<DurationMs> expires_in);
  Result<NewToken> Rotate(const Principal& actor, const std::string& tenant,
                          const std::string& token_id, DurationMs overlap,
                          std::optional<DurationMs> expires_in);
  TokenInfo TokenInfoOf(const store::TokenRecord& record, TimeMs now);
  // Drops cached principals whose token id is `token_id`, or (token_id empty) of `tenant`.
  void ForgetPrincipals(const std::string& tenant, const std::string& token_id);
  Result<QuotaOverrides> OverridesOf(const std::string& tenant);
  // Writes the last use of tokens seen since the last flush, at most every token_use_flush
  // unless `force` (the sweeper thread calls it, and Stop once the sweeper has ended).
  void FlushTokenUse(bool force = false);
  // What differs between two JSON objects, by JSON pointer: {"/a/b": {"from": x, "to": y}}.
  static nlohmann::json Changes(const nlohmann::json& before, const nlohmann::json& after);
  // The audit log of `tenant` ("" = server-wide), filtered and paged (workbench.cc).
  Result<AuditQueryResult> ReadAudit(const std::string& tenant, const AuditQuery& query);

  // The shared path of every failed delivery (nack, ended lease, expired TTL): journal it, then
  // decide between a retry and the exhausted action. `force_reason` non-empty skips the
  // remaining retries with that reason; `journal` already holds this failure (TTL expiry).
  store::FailureAction PlanFailure(const CachedQueue& queue, const store::MessageRecord& message,
                                   const store::Receipt& receipt, store::Attempt attempt,
                                   std::optional<DurationMs> delay,
                                   const std::string& force_reason);
  store::FailureAction PlanExhausted(const CachedQueue& queue, const store::MessageRecord& message,
                                     const store::Receipt& receipt, store::Journal journal,
                                     const std::string& reason, const std::string& cause);
  // Applies the planned failures of one queue in one store write, then counts, logs and wakes
  // receivers. `messages[i]` is the message of `actions[i]`. One bool per action: false when
  // the lease was lost meanwhile.
  Result<std::vector<bool>> ApplyFailures(const CachedQueue& queue,
                                          const std::vector<const store::MessageRecord*>& messages,
                                          const std::vector<store::FailureAction>& actions);
  void CountDeadLetter(const std::string& reason);
  // When a dead letter of `origin` made now expires: the queue's deadLetterRetention, else the
  // server's dead_letter_retention; 0 (never) when that is 0.
  TimeMs DeadLetterRetainUntil(const QueueConfig& origin, TimeMs now) const;

  // Long polls (long_poll.cc). Notify: messages of the queue became ready now.
  void Notify(int64_t queue_id);
  // One lease of up to `max` messages for `consumer`.
  Result<std::vector<Delivery>> LeaseNow(const CachedQueue& queue, int max,
                                         DurationMs visibility_timeout,
                                         const std::string& consumer);
  // Parks `w` (moving from it) unless the queue's epoch moved past `epoch`: then returns false
  // and leaves `w` as it was, to lease again.
  bool Park(Waiter& w, uint64_t epoch);
  uint64_t EpochOf(int64_t queue_id);
  void WakerLoop();
  // Leases for the waiters of one queue, in order, until one finds nothing.
  void Drain(int64_t queue_id);
  // Ends every parked long poll with no messages (Stop, destruction).
  void EndLongPolls();
  std::string NewLeaseToken();
  void SweeperLoop();
  void JobRunnerLoop();

  struct Selector;  // a compiled DeadLetterTarget (workbench.cc)
  Result<std::shared_ptr<const Selector>> Compile(const std::string& tenant,
                                                  const DeadLetterTarget& target);
  // The next matches of `snapshot` after `*cursor` (advanced past everything scanned), in seq
  // order, at most `limit`.
  Result<std::vector<store::DeadLetterRecord>> NextMatches(
      const Selector& selector, const store::DeadLetterSnapshot& snapshot, int limit,
      int64_t* cursor, bool* exhausted);
  // What a job of `spec` would move from `snapshot`.
  Result<DryRunResult> DryRun(const Selector& selector, const store::DeadLetterSnapshot& snapshot,
                              const JobSpec& spec);
  Result<ActionResult> MoveDeadLetters(const Principal& actor, const std::string& tenant,
                                       const DeadLetterTarget& target,
                                       const std::string& destination, const char* action);
  // Moves `batch` to `destination` (empty = origins) for `by`; adds to *result.
  Status MoveBatch(const std::string& tenant, const std::vector<store::DeadLetterRecord>& batch,
                   const std::string& destination, const std::string& by, ActionResult* result);
  void Audit(const std::string& tenant, const std::string& actor, const std::string& action,
             nlohmann::json detail);
  Result<int64_t> StepJob(store::JobRecord& job, TimeMs now);
  // Saves a job the runner advanced, if its state is still `expected`; when a cancel came in
  // meanwhile, saves the progress under the cancel's state and returns false.
  Result<bool> SaveJob(store::JobRecord& job, JobState expected);

  // The two ports of one store. Each call goes to the narrowest: messages_ for the hot path
  // and the sweeper's scans, control_ for everything else. store_ is both (the long poll in
  // Receive uses it until the messages service takes it over).
  store::Store& store_;
  store::MessageStore& messages_;
  store::ControlStore& control_;
  Clock& clock_;
  Random& random_;
  const EngineOptions options_;
  EngineCounters counters_;

  std::mutex cache_mu_;
  // Queues by "tenant/name"; invalidated on update and delete. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, std::shared_ptr<const CachedQueue>> queues_;
  std::unordered_map<std::string, CachedPrincipal> principals_;  // by token hash
  std::unordered_map<std::string, bool> tenants_;                // known to exist

  // Long polls. Lock order: wait_mu_ before nothing else; callbacks run without it.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;                    // the waker threads wait on it
  std::unordered_map<int64_t, QueueWaiters> waiters_;  // by queue id. GUARDED_BY(wait_mu_)
  // Parked waiters by deadline. GUARDED_BY(wait_mu_)
  std::map<std::pair<TimeMs, uint64_t>, std::pair<int64_t, WaiterList::iterator>> deadlines_;
  std::vector<int64_t> drains_;  // queues to drain. GUARDED_BY(wait_mu_)
  uint64_t next_waiter_id_ = 0;  // GUARDED_BY(wait_mu_)
  int64_t parked_ = 0;           // GUARDED_BY(wait_mu_)
  TimeMs next_recheck_ = 0;      // GUARDED_BY(wait_mu_)
  bool wakers_exit_ = false;     // GUARDED_BY(wait_mu_)
  std::vector<std::thread> wakers_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // GUARDED_BY(stop_mu_); also read by long polls via stopping_flag_
  std::atomic<bool> stopping_flag_{false};
  std::thread sweeper_;
  std::thread job_runner_;
  // Token buckets of throttled jobs, by job id. Used by the job runner thread only.
  std::unordered_map<std::string, std::pair<double, TimeMs>> job_tokens_;

  // Last use of tokens, by id, not yet written to the store. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, TimeMs> token_last_used_;
  // Quota overrides by tenant, refreshed after token_cache_ttl. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, CachedOverrides> quota_overrides_;
  TimeMs token_use_flushed_at_ = 0;  // used by the sweeper thread only
  std::mutex rate_mu_;
  std::unordered_map<std::string, RateBucket> rate_buckets_;  // by tenant. GUARDED_BY(rate_mu_)
};

}  // namespace redrive::engine
