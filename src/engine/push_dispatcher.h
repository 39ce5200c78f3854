// PushDispatcher: delivers the messages of push subscriptions to their endpoints. It is one
// more consumer of the messages service: it leases from a subscription's queue, POSTs each
// message (signed, Standard Webhooks) with push::DeliveryClient, and acks, or nacks into the
// same failure plan every consumer's failure goes through (retry by policy, Retry-After within
// its bounds, permanent codes dead-lettered at once with reason permanent-failure).
//
// Per endpoint, a gate: at most maxInFlight requests, at most rateLimit per second (a token
// bucket), and a circuit: after circuitFailures consecutive failures it opens, nothing is
// leased (messages wait in the queue, their delivery counts untouched), and one probe every
// probeInterval decides when to close it. An endpoint failing for disableAfter, or answering
// 410 Gone, is disabled (kept in its config, so across restarts): its messages stay until an
// operator enables it. When a circuit closes and the endpoint has autoRedriveOnRecovery, a
// redrive job (with its rate and canary) takes its parked dead letters back.
//
// Threads: four, from Start to Stop: the io thread runs the DeliveryClient (no request ever
// holds a thread); the scheduler thread decides, asks for leases (ahead, up to 250 more than
// are in flight, so that one lease serves many sends) and sends from the buffer; the leaser
// thread makes the leases (store writes) so that the scheduler never waits for one; the
// settler thread writes the acks and nacks in batches (the store commits them in one group
// with the leases). Thread-safety: thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/token_bucket.h"
#include "engine/coordination.h"
#include "engine/messages.h"
#include "engine/queues.h"
#include "push/outcome.h"

namespace boost::asio {
class io_context;
}
namespace redrive::push {
class DeliveryClient;
}

namespace redrive::engine {

class Messages;
class Topics;
class DeadLetters;
class AuditLog;

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view CircuitStateName(CircuitState state);

// An endpoint as the dispatcher sees it now (metrics, the API).
struct EndpointStatus {
  std::string tenant;
  std::string topic;
  std::string subscription;
  std::string url;
  CircuitState circuit = CircuitState::kClosed;
  bool disabled = false;
  std::string disabled_reason;
  int in_flight = 0;
  int consecutive_failures = 0;
  std::string last_error;
  TimeMs last_success_at = 0;
  TimeMs failing_since = 0;  // 0 = not failing
  int64_t delivered = 0;
  int64_t failed = 0;  // attempts that failed (retried or dead-lettered)
};

// The answer of a test send.
struct TestSendResult {
  int status = 0;  // 0 = no answer
  std::string error;
  DurationMs duration = 0;
  std::string response;
};

// Delivery latency buckets (seconds, cumulative) of redrive_push_request_duration_seconds.
inline constexpr double kPushLatencyBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10};

struct PushCounters {
  std::atomic<int64_t> succeeded{0};
  std::atomic<int64_t> retried{0};
  std::atomic<int64_t> permanent{0};  // dead-lettered at once (3xx, the permanent codes)
  std::atomic<int64_t> probes{0};
  std::atomic<int64_t> auto_redrives{0};
  std::array<std::atomic<int64_t>, std::size(kPushLatencyBuckets) + 1> latency{};
  std::atomic<int64_t> latency_sum_us{0};
};

class PushDispatcher : public CoordinationListener {
 public:
  PushDispatcher(Messages& messages, Queues& queues, Topics& topics, DeadLetters& dead_letters,
                 Clock& clock, Random& random, Coordinator& coordinator, AuditLog& audit);
  ~PushDispatcher() override;
  PushDispatcher(const PushDispatcher&) = delete;
  PushDispatcher& operator=(const PushDispatcher&) = delete;

  void Start();
  // Stops leasing, cuts off the requests in flight (their leases end and the sweeper retries
  // them) and joins its threads.
  void Stop();

  std::vector<EndpointStatus> Endpoints();
  // One subscription's endpoint: as the dispatcher sees it, or, before the dispatcher has
  // picked it up (it reads the endpoints every few seconds), its configured state. Errors:
  // kInvalidArgument when the subscription is pulled.
  Result<EndpointStatus> Health(const QueueRef& subscription);
  const PushCounters& counters() const { return counters_; }

  // Sends one signed test request ({"type": "redrive.test", ...}) to the subscription's
  // endpoint now, whatever its circuit, and waits for the answer (also when the dispatcher is
  // not running). Errors: kInvalidArgument when the subscription is not a push one.
  Result<TestSendResult> TestSend(const QueueRef& subscription);

  void OnReady(int64_t queue_id) override;
  void OnInvalidate(CacheScope scope, const std::string& key) override;

 private:
  struct Endpoint {
    QueueRef queue;
    int in_flight = 0;
    CircuitState circuit = CircuitState::kClosed;
    int consecutive_failures = 0;
    TimeMs failing_since = 0;
    TimeMs opened_at = 0;
    bool was_open = false;  // the circuit opened since the last success
    bool ready = true;      // a publish signalled it, or the last lease was full
    TimeMs next_poll = 0;   // lease anyway from then (delayed messages, retries coming due)
    std::optional<TokenBucket> bucket;
    std::string last_error;
    TimeMs last_success_at = 0;
    int64_t delivered = 0;
    int64_t failed = 0;
    bool disabling = false;  // a disable is being written
    bool leasing = false;    // a lease was asked of the leaser thread and has not come back
    // This node holds the endpoint's claim ("push/<queue id>"): with several nodes, one of them
    // delivers to an endpoint at a time, so its maxInFlight, rate limit and circuit hold.
    bool owned = false;
    // Leased ahead (up to maxInFlight), sent as requests finish, so that a lease serves many
    // sends; handed back unused (Messages::Release) when the circuit opens or delivery stops.
    std::deque<Delivery> buffered;
  };
  // The acks and nacks of one queue, applied by the settler thread in one call each.
  struct SettleBatch {
    std::string tenant;
    std::string queue;
    std::vector<std::string> acks;
    std::vector<NackRequest> nacks;
  };
  struct Completion {
    int64_t queue_id = 0;
    std::string receipt;
    std::string message_id;
    push::DeliveryResult result;
  };
  // A lease the scheduler asks of the leaser thread, and what came of it.
  struct LeaseJob {
    int64_t queue_id = 0;
    std::string tenant;
    std::string queue;
    ReceiveOptions options;
    bool probe = false;  // one message for an open circuit's probe
  };
  struct Leased {
    LeaseJob job;
    Status status;
    std::vector<Delivery> deliveries;
  };

  void SchedulerLoop();
  // Applies the settled batches (acks, nacks) off the scheduler's thread, so that the next
  // leases go out while they are written (the store commits both in one group).
  void SettlerLoop();
  // Leases for the scheduler off its thread (a lease is a store write, one fsync): the
  // scheduler keeps sending from the buffer meanwhile, and the store commits a lease and the
  // settler's acks in one group.
  void LeaserLoop();
  // The leases that came back: into the endpoints' buffers (a probe's is sent at once).
  void TakeLeased(std::vector<Leased> leased, TimeMs now);
  // Hands the messages of a lease back.
  void Release(const std::string& tenant, const std::string& queue,
               std::vector<Delivery>& deliveries);
  void ApplyBatches(std::map<int64_t, SettleBatch> batches);
  void Refresh();
  void Dispatch(Endpoint& endpoint, TimeMs now);
  void RenewClaims();
  void Settle(std::vector<Completion> done);
  // Records the outcome of one attempt in the endpoint's health: circuit, failing time.
  void Observe(Endpoint& endpoint, bool alive, const std::string& error, TimeMs now);
  void Disable(Endpoint& endpoint, const std::string& reason);
  // Hands the buffered leases back (their messages are ready again, their counts undone).
  void ReleaseBuffered(Endpoint& endpoint);
  void AutoRedrive(const Endpoint& endpoint);
  void Send(Endpoint& endpoint, const std::string& message_id, const std::string& body,
            const store::Attributes& attributes, int delivery_count, std::string receipt);

  Messages& messages_;
  Queues& queues_;
  Topics& topics_;
  DeadLetters& dead_letters_;
  Clock& clock_;
  Random& random_;
  Coordinator& coordinator_;
  AuditLog& audit_;
  PushCounters counters_;

  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<push::DeliveryClient> client_;
  std::thread io_thread_;
  std::thread scheduler_;
  std::thread settler_;
  std::thread leaser_;

  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  std::vector<LeaseJob> lease_jobs_;  // GUARDED_BY(lease_mu_)
  bool leaser_exit_ = false;          // GUARDED_BY(lease_mu_)

  std::mutex settle_mu_;
  std::condition_variable settle_cv_;
  std::map<int64_t, SettleBatch> to_settle_;  // by queue id. GUARDED_BY(settle_mu_)
  bool settler_exit_ = false;                 // GUARDED_BY(settle_mu_)

  std::mutex mu_;  // the inbox: what other threads hand the scheduler
  std::condition_variable cv_;
  std::vector<Completion> done_;  // GUARDED_BY(mu_)
  std::vector<Leased> leased_;    // GUARDED_BY(mu_)
  std::set<int64_t> ready_;       // GUARDED_BY(mu_)
  bool refresh_ = true;           // GUARDED_BY(mu_)
  bool running_ = false;          // GUARDED_BY(mu_)

  std::mutex state_mu_;                    // the endpoints: the scheduler writes, Endpoints reads
  std::map<int64_t, Endpoint> endpoints_;  // by queue id. GUARDED_BY(state_mu_)
};

}  // namespace redrive::engine
