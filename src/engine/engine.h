// Engine: every rule of redrive in one place. Tenants and tokens, queues, publishing, leases,
// acks and nacks, the retry policy, dead-lettering, the sweeper and the counters. Handlers
// (REST, CLI, later SQS) translate their protocol into these calls and nothing else.
//
// Errors: each method documents the ErrorCodes it returns; kStoreFailed and kInternal can come
// from any method that touches the store.
//
// Thread-safety: thread-safe. Threads: Start() runs one sweeper thread; Stop() joins it and
// wakes every long poll. Long polls block the calling thread (at most their wait time).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
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
};

struct TenantInfo {
  std::string name;
  TimeMs created_at = 0;
};

struct TokenInfo {
  std::string id;
  std::string tenant;
  std::string label;
  std::vector<std::string> scopes;
  TimeMs created_at = 0;
  TimeMs revoked_at = 0;
};

struct NewToken {
  TokenInfo info;
  std::string secret;  // shown once; only its hash is stored
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

struct ReceiveOptions {
  int max_messages = 1;
  DurationMs wait = 0;
  std::optional<DurationMs> visibility_timeout;  // overrides the queue's
  std::string consumer;                          // recorded in the attempt journal
};

struct Delivery {
  store::MessageRecord message;
  std::string receipt;  // opaque receipt handle for ack, nack, extend
};

struct NackRequest {
  std::string receipt;
  std::string reason;
  std::string error;
  std::optional<DurationMs> delay;  // overrides the backoff
  bool dead_letter = false;         // skip the remaining retries
  std::string consumer;
};

struct DeadLetterFilter {
  std::string dlq;
  std::string origin;
  std::string reason;
};

struct DeadLetterPage {
  std::vector<store::DeadLetterRecord> items;
  std::string next_cursor;  // empty when there is no further page
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

  // ---- tenants and their tokens
  // Errors: kInvalidName, kAlreadyExists.
  Result<TenantInfo> CreateTenant(const std::string& name);
  Result<std::vector<TenantInfo>> ListTenants();
  // Errors: kTenantNotFound.
  Result<TenantInfo> GetTenant(const std::string& name);
  // Errors: kTenantNotFound, kInvalidName (label), kInvalidArgument (unknown scope).
  Result<NewToken> CreateToken(const std::string& tenant, const std::string& label,
                               const std::vector<std::string>& scopes);
  Result<std::vector<TokenInfo>> ListTokens(const std::string& tenant);
  // Errors: kTokenNotFound.
  Status RevokeToken(const std::string& tenant, const std::string& token_id);

  // ---- queues
  // Creates the queue and, if missing, its dead-letter queue. Errors: kTenantNotFound,
  // kInvalidName, kInvalidArgument, kAlreadyExists.
  Result<QueueInfo> CreateQueue(const std::string& tenant, const std::string& name,
                                const QueueConfig& config);
  // Replaces the attributes. Errors: kQueueNotFound, kInvalidArgument,
  // kDeadLetterQueueReadOnly (a dead-letter queue has no attributes to change).
  Result<QueueInfo> UpdateQueue(const std::string& tenant, const std::string& name,
                                const QueueConfig& config);
  // With depths. Errors: kQueueNotFound.
  Result<QueueInfo> GetQueue(const std::string& tenant, const std::string& name);
  Result<std::vector<QueueInfo>> ListQueues(const std::string& tenant);
  // Deletes the queue and its messages; dead letters from it stay. Errors: kQueueNotFound.
  Status DeleteQueue(const std::string& tenant, const std::string& name);

  // ---- messages
  // All or nothing: every message is validated before any is stored. Errors: kQueueNotFound,
  // kDeadLetterQueueReadOnly, kEmptyBatch, kBatchTooLarge, kMessageTooLarge,
  // kTooManyAttributes, kAttributeTooLarge, kInvalidArgument, kQueueFull.
  Result<std::vector<store::PublishOutcome>> Publish(const std::string& tenant,
                                                     const std::string& queue,
                                                     std::vector<NewMessage> messages);
  // Leases up to max_messages; with wait > 0 blocks until one is available or wait passed.
  // Errors: kQueueNotFound, kDeadLetterQueueReadOnly, kInvalidArgument.
  Result<std::vector<Delivery>> Receive(const std::string& tenant, const std::string& queue,
                                        const ReceiveOptions& options);
  // One Status per receipt: ok, kInvalidReceipt or kLeaseLost. Errors (whole call):
  // kQueueNotFound, kEmptyBatch, kBatchTooLarge.
  Result<std::vector<Status>> Ack(const std::string& tenant, const std::string& queue,
                                  const std::vector<std::string>& receipts);
  // Records the failure in the journal, then retries by policy or takes the exhausted action.
  Result<std::vector<Status>> Nack(const std::string& tenant, const std::string& queue,
                                   const std::vector<NackRequest>& nacks);
  Result<std::vector<Status>> ExtendLeases(const std::string& tenant, const std::string& queue,
                                           const std::vector<std::string>& receipts,
                                           DurationMs visibility_timeout);

  // ---- dead letters
  // `cursor` is an opaque string from a previous page. Errors: kInvalidQuery (bad cursor or
  // limit), kQueueNotFound (dlq or origin filter names no queue is not an error: empty page).
  Result<DeadLetterPage> ListDeadLetters(const std::string& tenant, const DeadLetterFilter& filter,
                                         const std::string& cursor, int limit);
  // Errors: kDeadLetterNotFound.
  Result<store::DeadLetterRecord> GetDeadLetter(const std::string& tenant, const std::string& id);

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
  struct QueueSignal {
    std::mutex mu;
    std::condition_variable cv;
    uint64_t epoch = 0;  // GUARDED_BY(mu)
  };
  struct CachedPrincipal {
    Principal principal;
    TimeMs fetched_at = 0;
  };

  Result<std::shared_ptr<const CachedQueue>> LookupQueue(const std::string& tenant,
                                                         const std::string& name);
  Result<std::shared_ptr<const CachedQueue>> LookupQueueById(int64_t id);
  void ForgetQueue(const std::string& tenant, const std::string& name);
  Status EnsureTenant(const std::string& tenant);
  Status EnsureDeadLetterQueue(const std::string& tenant, const std::string& name);
  Result<QueueInfo> MakeQueueInfo(const store::QueueRecord& record);
  Result<NewToken> IssueToken(const std::string& tenant, const std::string& label,
                              const std::vector<std::string>& scopes);

  // The shared path of every failed delivery: journal it, then retry or take the exhausted
  // action. `force_reason` non-empty skips the remaining retries with that reason.
  // Returns false when the lease was lost meanwhile.
  Result<bool> HandleFailure(const CachedQueue& queue, const store::MessageRecord& message,
                             const store::Receipt& receipt, store::Attempt attempt,
                             std::optional<DurationMs> delay, const std::string& force_reason);
  Result<bool> TakeExhaustedAction(const CachedQueue& queue, const store::MessageRecord& message,
                                   const store::Receipt& receipt, const store::Journal& journal,
                                   const std::string& reason, const std::string& cause);
  void CountDeadLetter(const std::string& reason);
  // When a dead letter made now expires: 0 (never) when dead_letter_retention is 0.
  TimeMs DeadLetterRetainUntil(TimeMs now) const;

  std::shared_ptr<QueueSignal> SignalFor(int64_t queue_id);
  void Notify(int64_t queue_id);
  std::string NewLeaseToken();
  void SweeperLoop();

  store::Store& store_;
  Clock& clock_;
  Random& random_;
  const EngineOptions options_;
  EngineCounters counters_;

  std::mutex cache_mu_;
  // Queues by "tenant/name"; invalidated on update and delete. GUARDED_BY(cache_mu_)
  std::unordered_map<std::string, std::shared_ptr<const CachedQueue>> queues_;
  std::unordered_map<std::string, CachedPrincipal> principals_;  // by token hash
  std::unordered_map<std::string, bool> tenants_;                // known to exist

  std::mutex signal_mu_;
  std::unordered_map<int64_t, std::shared_ptr<QueueSignal>> signals_;  // GUARDED_BY(signal_mu_)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // GUARDED_BY(stop_mu_); also read by long polls via stopping_flag_
  std::atomic<bool> stopping_flag_{false};
  std::thread sweeper_;
};

}  // namespace redrive::engine
