// PushDispatcher: leases, sends, settles; circuits and disabling (push_dispatcher.h).
#include "engine/push_dispatcher.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/dead_letters.h"
#include "engine/messages.h"
#include "engine/tenancy.h"
#include "engine/topics.h"
#include "push/delivery_client.h"
#include "push/signature.h"

namespace redrive::engine {
namespace {

constexpr DurationMs kTick = 50;  // the scheduler looks at every endpoint this often
constexpr DurationMs kPollInterval = 1000;
// Endpoint claims: renewed every kClaimRenewal, held kPushClaimTtl (a dead node's endpoints
// move on within that).
constexpr DurationMs kClaimRenewal = 1000;
constexpr DurationMs kPushClaimTtl = 6000;     // leases without a signal (retries coming due)
constexpr DurationMs kRefreshInterval = 5000;  // re-reads the list of endpoints
constexpr int kMaxLease = 250;                 // messages per lease
constexpr DurationMs kLeaseMargin = 10'000;    // a lease outlives its request's timeout by this

using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

std::string ContentType(const std::string& body) {
  size_t i = body.find_first_not_of(" \t\r\n");
  if (i != std::string::npos && (body[i] == '{' || body[i] == '[') && IsValidUtf8(body)) {
    return "application/json";
  }
  return IsValidUtf8(body) ? "text/plain; charset=utf-8" : "application/octet-stream";
}

// The journal's words for a failed attempt.
std::string Describe(const push::DeliveryResult& r) {
  if (r.error == push::TransportError::kNone) return "HTTP " + std::to_string(r.status);
  return std::string(push::ToString(r.error)) +
         (r.error_message.empty() ? "" : ": " + r.error_message);
}

std::set<int> PermanentSet(const PushConfig& push) {
  return std::set<int>(push.permanent_codes.begin(), push.permanent_codes.end());
}

}  // namespace

std::string_view CircuitStateName(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half-open";
  }
  return "closed";
}

PushDispatcher::PushDispatcher(Messages& messages, Queues& queues, Topics& topics,
                               DeadLetters& dead_letters, Clock& clock, Random& random,
                               Coordinator& coordinator, AuditLog& audit)
    : messages_(messages),
      queues_(queues),
      topics_(topics),
      dead_letters_(dead_letters),
      clock_(clock),
      random_(random),
      coordinator_(coordinator),
      audit_(audit) {
  coordinator_.Subscribe(this);
}

PushDispatcher::~PushDispatcher() {
  Stop();
  coordinator_.Unsubscribe(this);
}

void PushDispatcher::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (running_) return;
  running_ = true;
  refresh_ = true;
  io_ = std::make_unique<boost::asio::io_context>();
  client_ = std::make_unique<push::DeliveryClient>(*io_);
  io_thread_ = std::thread([io = io_.get()] {
    WorkGuard guard(io->get_executor());
    io->run();
  });
  {
    std::lock_guard<std::mutex> s(settle_mu_);
    settler_exit_ = false;
  }
  {
    std::lock_guard<std::mutex> s(lease_mu_);
    leaser_exit_ = false;
  }
  settler_ = std::thread([this] { SettlerLoop(); });
  leaser_ = std::thread([this] { LeaserLoop(); });
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

void PushDispatcher::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!running_) return;
    running_ = false;
  }
  cv_.notify_all();
  scheduler_.join();
  {
    // The leaser finishes the lease it is making; the others are not made.
    std::lock_guard<std::mutex> s(lease_mu_);
    leaser_exit_ = true;
    lease_jobs_.clear();
  }
  lease_cv_.notify_all();
  leaser_.join();
  {
    // The settler writes what it holds (nothing settled is lost), then ends.
    std::lock_guard<std::mutex> s(settle_mu_);
    settler_exit_ = true;
  }
  settle_cv_.notify_all();
  settler_.join();
  // Requests still in flight are cut off: their leases end and the sweeper retries them.
  client_->Shutdown();
  io_->stop();
  io_thread_.join();
  client_.reset();
  io_.reset();
  std::vector<Leased> leased;
  {
    std::lock_guard<std::mutex> l(mu_);
    done_.clear();
    leased.swap(leased_);
  }
  // Not under mu_: a release signals the queue, which reaches OnReady.
  for (auto& r : leased) Release(r.job.tenant, r.job.queue, r.deliveries);
  std::vector<int64_t> owned;
  {
    std::lock_guard<std::mutex> s(state_mu_);
    for (auto& [id, e] : endpoints_) {
      ReleaseBuffered(e);
      if (e.owned) owned.push_back(id);
    }
    endpoints_.clear();
  }
  // Another node takes these endpoints over at once rather than when the claims expire.
  for (int64_t id : owned) {
    coordinator_.Release("push/" + std::to_string(id), coordinator_.node_id());
  }
}

void PushDispatcher::OnReady(int64_t queue_id) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!running_) return;
    ready_.insert(queue_id);
  }
  cv_.notify_one();
}

void PushDispatcher::OnInvalidate(CacheScope scope, const std::string&) {
  if (scope == CacheScope::kToken) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    refresh_ = true;
  }
  cv_.notify_one();
}

namespace {

EndpointStatus StatusOf(const CachedQueue& queue) {
  EndpointStatus s;
  s.tenant = queue.record.tenant;
  std::tie(s.topic, s.subscription) = SplitSubscriptionQueue(queue.record.name);
  const PushConfig& push = *queue.config.push;
  s.url = push.url;
  s.disabled = push.disabled;
  s.disabled_reason = push.disabled_reason;
  return s;
}

}  // namespace

std::vector<EndpointStatus> PushDispatcher::Endpoints() {
  std::vector<EndpointStatus> out;
  std::lock_guard<std::mutex> l(state_mu_);
  for (const auto& [id, e] : endpoints_) {
    EndpointStatus s = StatusOf(*e.queue);
    s.circuit = e.circuit;
    s.in_flight = e.in_flight;
    s.consecutive_failures = e.consecutive_failures;
    s.last_error = e.last_error;
    s.last_success_at = e.last_success_at;
    s.failing_since = e.failing_since;
    s.delivered = e.delivered;
    s.failed = e.failed;
    out.push_back(std::move(s));
  }
  return out;
}

Result<EndpointStatus> PushDispatcher::Health(const QueueRef& q) {
  if (!q->config.push) {
    return Status(ErrorCode::kInvalidArgument, "subscription '" +
                                                   SplitSubscriptionQueue(q->record.name).second +
                                                   "' is pulled; it has no endpoint");
  }
  for (auto& s : Endpoints()) {
    if (s.tenant == q->record.tenant &&
        SubscriptionQueueName(s.topic, s.subscription) == q->record.name) {
      return s;
    }
  }
  return StatusOf(*q);
}

void PushDispatcher::SchedulerLoop() {
  TimeMs next_refresh = 0;
  TimeMs next_claims = 0;
  for (;;) {
    std::vector<Completion> done;
    std::vector<Leased> leased;
    std::set<int64_t> ready;
    bool refresh = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::milliseconds(kTick), [&] {
        return !running_ || !done_.empty() || !leased_.empty() || !ready_.empty() || refresh_;
      });
      if (!running_) return;
      done.swap(done_);
      leased.swap(leased_);
      ready.swap(ready_);
      refresh = refresh_;
      refresh_ = false;
    }
    TimeMs now = clock_.Now();
    bool refreshed = false;
    if (refresh || now >= next_refresh) {
      Refresh();
      next_refresh = now + kRefreshInterval;
      refreshed = true;
    }
    if (refreshed || now >= next_claims) {
      RenewClaims();
      next_claims = now + kClaimRenewal;
    }
    if (!done.empty()) Settle(std::move(done));
    std::lock_guard<std::mutex> s(state_mu_);
    for (int64_t id : ready) {
      auto it = endpoints_.find(id);
      if (it != endpoints_.end()) it->second.ready = true;
    }
    if (!leased.empty()) TakeLeased(std::move(leased), clock_.Now());
    for (auto& [id, e] : endpoints_) Dispatch(e, clock_.Now());
  }
}

void PushDispatcher::LeaserLoop() {
  for (;;) {
    std::vector<LeaseJob> jobs;
    {
      std::unique_lock<std::mutex> l(lease_mu_);
      lease_cv_.wait(l, [&] { return leaser_exit_ || !lease_jobs_.empty(); });
      if (leaser_exit_) return;
      jobs.swap(lease_jobs_);
    }
    std::vector<Leased> out;
    for (auto& job : jobs) {
      Leased r;
      auto got = messages_.Receive(job.tenant, job.queue, job.options);
      if (got.ok()) {
        r.deliveries = std::move(got).value();
      } else {
        r.status = got.status();
      }
      r.job = std::move(job);
      out.push_back(std::move(r));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      for (auto& r : out) leased_.push_back(std::move(r));
    }
    cv_.notify_one();
  }
}

void PushDispatcher::Release(const std::string& tenant, const std::string& queue,
                             std::vector<Delivery>& deliveries) {
  if (deliveries.empty()) return;
  std::vector<std::string> receipts;
  for (auto& d : deliveries) receipts.push_back(std::move(d.receipt));
  deliveries.clear();
  auto r = messages_.Release(tenant, queue, receipts);
  if (!r.ok()) {
    // Their leases end by themselves; the sweeper then retries them.
    spdlog::warn("push: releasing {} leases of {}/{}: {}", receipts.size(), tenant, queue,
                 r.status().ToString());
  }
}

void PushDispatcher::TakeLeased(std::vector<Leased> leased, TimeMs now) {
  for (auto& r : leased) {
    auto it = endpoints_.find(r.job.queue_id);
    if (it == endpoints_.end()) {
      Release(r.job.tenant, r.job.queue, r.deliveries);
      continue;
    }
    Endpoint& e = it->second;
    e.leasing = false;
    if (!r.status.ok()) {
      if (r.status.code() != ErrorCode::kShuttingDown) {
        spdlog::warn("push: lease from {}/{} failed: {}", r.job.tenant, r.job.queue,
                     r.status.ToString());
      }
      continue;
    }
    bool full = static_cast<int>(r.deliveries.size()) == r.job.options.max_messages;
    // A publish signalled meanwhile (ready) or the lease was full: lease again at once.
    e.ready = e.ready || (full && !r.job.probe);
    if (r.job.probe && e.circuit == CircuitState::kOpen) {
      if (r.deliveries.empty()) {
        e.opened_at = now;  // nothing to probe with yet: look again after another interval
        continue;
      }
      e.circuit = CircuitState::kHalfOpen;
      ++counters_.probes;
      Delivery d = std::move(r.deliveries.front());
      Send(e, d.message.id, d.message.body, d.message.attributes, d.message.delivery_count,
           std::move(d.receipt));
      continue;
    }
    // Buffered; Dispatch sends them, or hands them back if the endpoint stopped meanwhile.
    for (auto& d : r.deliveries) e.buffered.push_back(std::move(d));
  }
}

void PushDispatcher::Refresh() {
  auto list = queues_.AllPushSubscriptions();
  if (!list.ok()) {
    spdlog::warn("push: cannot list the endpoints: {}", list.status().ToString());
    return;
  }
  std::lock_guard<std::mutex> l(state_mu_);
  std::set<int64_t> seen;
  TimeMs now = clock_.Now();
  for (const QueueRef& q : list.value()) {
    seen.insert(q->record.id);
    auto [it, fresh] = endpoints_.try_emplace(q->record.id);
    Endpoint& e = it->second;
    const PushConfig& next = *q->config.push;
    bool reenabled = !fresh && e.queue->config.push->disabled && !next.disabled;
    bool new_rate = fresh || e.queue->config.push->rate_limit != next.rate_limit;
    e.queue = q;
    if (new_rate) {
      e.bucket.reset();
      if (next.rate_limit > 0) {
        e.bucket.emplace(next.rate_limit, std::max(1.0, next.rate_limit), 1.0, now);
      }
    }
    if (reenabled) {
      // An operator enabled it: a fresh start, its messages are all still there.
      e.circuit = CircuitState::kClosed;
      e.consecutive_failures = 0;
      e.failing_since = 0;
      e.disabling = false;
      e.ready = true;
      spdlog::info("push: endpoint of {}/{} enabled", q->record.tenant, q->record.name);
    }
  }
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    bool busy = it->second.in_flight > 0 || it->second.leasing;
    it = seen.count(it->first) > 0 || busy ? std::next(it) : endpoints_.erase(it);
  }
}

// Claims (or renews) every endpoint this dispatcher knows, outside the state lock (each claim
// is a store write on several nodes). An endpoint another node holds is left to it; one whose
// holder stops is taken over kPushClaimTtl after the holder's last renewal.
void PushDispatcher::RenewClaims() {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> l(state_mu_);
    for (const auto& [id, e] : endpoints_) ids.push_back(id);
  }
  std::map<int64_t, bool> owned;
  for (int64_t id : ids) {
    owned[id] =
        coordinator_.Claim("push/" + std::to_string(id), coordinator_.node_id(), kPushClaimTtl);
  }
  std::lock_guard<std::mutex> l(state_mu_);
  for (auto& [id, held] : owned) {
    auto it = endpoints_.find(id);
    if (it == endpoints_.end()) continue;
    if (held && !it->second.owned) it->second.ready = true;  // taken over: look at once
    it->second.owned = held;
  }
}

void PushDispatcher::Dispatch(Endpoint& e, TimeMs now) {
  const PushConfig& push = *e.queue->config.push;
  if (!e.owned) {
    ReleaseBuffered(e);  // another node delivers to this endpoint (or the claim was lost)
    return;
  }
  if (push.disabled || e.disabling) {
    ReleaseBuffered(e);
    return;
  }
  if (e.circuit == CircuitState::kHalfOpen) return;  // the probe is out
  if (e.circuit == CircuitState::kOpen) {
    ReleaseBuffered(e);
    if (now < e.opened_at + push.probe_interval || e.in_flight > 0) return;
  }
  // Each lease is a store write: leasing ahead (kMaxLease, or maxInFlight when larger) lets one
  // write feed many sends; the buffer is topped up when it is half empty.
  bool probe = e.circuit == CircuitState::kOpen;
  int ahead = std::max(kMaxLease, push.max_in_flight);
  int buffered = static_cast<int>(e.buffered.size());
  int room = probe ? 1 : push.max_in_flight + ahead - e.in_flight - buffered;
  int want = std::min(room, kMaxLease);
  if (e.bucket) want = static_cast<int>(std::min<int64_t>(want, e.bucket->Available(now) + ahead));
  bool lease = !e.leasing && want > 0 && (probe || e.ready || now >= e.next_poll) &&
               (probe || buffered <= ahead / 2);
  if (lease) {
    LeaseJob job;
    job.queue_id = e.queue->record.id;
    job.tenant = e.queue->record.tenant;
    job.queue = e.queue->record.name;
    job.options.max_messages = want;
    // A buffered message waits for a request to finish, then takes its own.
    job.options.visibility_timeout = std::max<DurationMs>(1000, 2 * push.timeout + kLeaseMargin);
    job.options.consumer = "push";
    job.probe = probe;
    e.leasing = true;
    e.ready = false;  // a signal while the lease is out sets it again
    e.next_poll = now + kPollInterval;
    {
      std::lock_guard<std::mutex> l(lease_mu_);
      lease_jobs_.push_back(std::move(job));
    }
    lease_cv_.notify_one();
  }
  if (probe) return;  // the probe is sent when its lease comes back (TakeLeased)
  int slots = push.max_in_flight - e.in_flight;
  while (slots-- > 0 && !e.buffered.empty()) {
    if (e.bucket && !e.bucket->TryTake(now)) break;
    Delivery d = std::move(e.buffered.front());
    e.buffered.pop_front();
    Send(e, d.message.id, d.message.body, d.message.attributes, d.message.delivery_count,
         std::move(d.receipt));
  }
}

void PushDispatcher::ReleaseBuffered(Endpoint& e) {
  if (e.buffered.empty()) return;
  std::vector<Delivery> buffered(std::make_move_iterator(e.buffered.begin()),
                                 std::make_move_iterator(e.buffered.end()));
  e.buffered.clear();
  Release(e.queue->record.tenant, e.queue->record.name, buffered);
}

void PushDispatcher::Send(Endpoint& e, const std::string& message_id, const std::string& body,
                          const store::Attributes& attributes, int delivery_count,
                          std::string receipt) {
  const PushConfig& push = *e.queue->config.push;
  TimeMs now = clock_.Now();
  int64_t timestamp = now / 1000;
  push::DeliveryRequest req;
  req.url = push.url;
  req.timeout = push.timeout;
  req.ca_file = push.ca_file;
  req.body = body;
  auto signature = push::Sign(message_id, timestamp, body, push.SigningSecrets(now));
  req.headers.emplace_back("content-type", ContentType(body));
  req.headers.emplace_back(push::kWebhookIdHeader, message_id);
  req.headers.emplace_back(push::kWebhookTimestampHeader, std::to_string(timestamp));
  if (signature.ok()) req.headers.emplace_back(push::kWebhookSignatureHeader, signature.value());
  auto [topic, subscription] = SplitSubscriptionQueue(e.queue->record.name);
  req.headers.emplace_back("redrive-topic", topic);
  req.headers.emplace_back("redrive-subscription", subscription);
  req.headers.emplace_back("redrive-delivery-count", std::to_string(delivery_count));
  if (!attributes.empty()) {
    nlohmann::json a = nlohmann::json::object();
    for (const auto& [k, v] : attributes) a[k] = v;
    req.headers.emplace_back("redrive-attributes", a.dump());
  }
  for (const auto& h : push.headers) req.headers.push_back(h);
  ++e.in_flight;
  Completion c;
  c.queue_id = e.queue->record.id;
  c.receipt = std::move(receipt);
  c.message_id = message_id;
  client_->Send(std::move(req), [this, c = std::move(c)](push::DeliveryResult r) mutable {
    c.result = std::move(r);
    bool first = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      first = done_.empty();
      done_.push_back(std::move(c));
    }
    // The scheduler takes every completion when it wakes: one wake-up per batch is enough.
    if (first) cv_.notify_one();
  });
}

void PushDispatcher::SettlerLoop() {
  for (;;) {
    std::map<int64_t, SettleBatch> batches;
    bool exit = false;
    {
      std::unique_lock<std::mutex> l(settle_mu_);
      settle_cv_.wait(l, [&] { return settler_exit_ || !to_settle_.empty(); });
      batches.swap(to_settle_);
      exit = settler_exit_;
    }
    ApplyBatches(std::move(batches));
    if (exit) {
      std::lock_guard<std::mutex> l(settle_mu_);
      if (to_settle_.empty()) return;
    }
  }
}

void PushDispatcher::ApplyBatches(std::map<int64_t, SettleBatch> batches) {
  for (auto& [id, batch] : batches) {
    if (!batch.acks.empty()) {
      auto r = messages_.Ack(batch.tenant, batch.queue, batch.acks);
      if (!r.ok()) {
        spdlog::warn("push: ack on {}/{}: {}", batch.tenant, batch.queue, r.status().ToString());
      }
    }
    if (!batch.nacks.empty()) {
      auto r = messages_.Nack(batch.tenant, batch.queue, batch.nacks);
      if (!r.ok()) {
        spdlog::warn("push: nack on {}/{}: {}", batch.tenant, batch.queue, r.status().ToString());
      }
    }
  }
}

void PushDispatcher::Settle(std::vector<Completion> done) {
  std::map<int64_t, SettleBatch> batches;
  TimeMs now = clock_.Now();
  {
    std::lock_guard<std::mutex> l(state_mu_);
    for (auto& c : done) {
      auto it = endpoints_.find(c.queue_id);
      if (it == endpoints_.end()) continue;  // deleted: its leases end by themselves
      Endpoint& e = it->second;
      --e.in_flight;
      const PushConfig& push = *e.queue->config.push;
      const push::DeliveryResult& r = c.result;
      double seconds = static_cast<double>(r.duration) / 1000.0;
      size_t b = 0;
      while (b < std::size(kPushLatencyBuckets) && seconds > kPushLatencyBuckets[b]) ++b;
      ++counters_.latency[b];
      counters_.latency_sum_us += r.duration * 1000;
      SettleBatch& batch = batches[c.queue_id];
      batch.tenant = e.queue->record.tenant;
      batch.queue = e.queue->record.name;
      if (r.error == push::TransportError::kShutdown) continue;  // the lease ends by itself
      push::Outcome outcome = push::Classify(r, now, PermanentSet(push));
      if (outcome.verdict == push::Verdict::kSuccess) {
        batch.acks.push_back(std::move(c.receipt));
        ++e.delivered;
        ++counters_.succeeded;
        Observe(e, true, "", now);
        continue;
      }
      NackRequest n;
      n.receipt = std::move(c.receipt);
      n.reason = outcome.cause;
      n.error = Describe(r);
      n.consumer = "push";
      n.status = r.error == push::TransportError::kNone ? static_cast<int>(r.status) : 0;
      n.duration_ms = r.duration;
      n.response = r.body_snippet;
      n.retry_after = outcome.retry_after;
      if (outcome.verdict == push::Verdict::kPermanent) {
        n.force_reason = kReasonPermanentFailure;
        ++counters_.permanent;
      } else {
        ++counters_.retried;
      }
      batch.nacks.push_back(std::move(n));
      ++e.failed;
      // A permanent answer (a 4xx of the set) means the endpoint is up and judged the message;
      // only 410 says the endpoint itself is gone.
      bool alive = outcome.verdict == push::Verdict::kPermanent && !outcome.disable_endpoint;
      Observe(e, alive, Describe(r), now);
      if (outcome.disable_endpoint) {
        Disable(e, "the endpoint answered 410 Gone");
      }
    }
  }
  {
    std::lock_guard<std::mutex> l(settle_mu_);
    for (auto& [id, batch] : batches) {
      SettleBatch& into = to_settle_[id];
      into.tenant = std::move(batch.tenant);
      into.queue = std::move(batch.queue);
      for (auto& a : batch.acks) into.acks.push_back(std::move(a));
      for (auto& n : batch.nacks) into.nacks.push_back(std::move(n));
    }
  }
  settle_cv_.notify_one();
}

void PushDispatcher::Observe(Endpoint& e, bool alive, const std::string& error, TimeMs now) {
  const PushConfig& push = *e.queue->config.push;
  const std::string where = e.queue->record.tenant + "/" + e.queue->record.name;
  if (alive) {
    if (e.circuit != CircuitState::kClosed) {
      spdlog::info("push: {}: circuit closed, the endpoint answers again", where);
    }
    e.circuit = CircuitState::kClosed;
    e.consecutive_failures = 0;
    e.failing_since = 0;
    e.last_success_at = now;
    e.ready = true;
    if (e.was_open) {
      e.was_open = false;
      audit_.Write(e.queue->record.tenant, "system", "endpoint.recovered",
                   nlohmann::json{{"subscription", e.queue->record.name}});
      if (push.auto_redrive) AutoRedrive(e);
    }
    return;
  }
  ++e.consecutive_failures;
  e.last_error = error;
  if (e.failing_since == 0) e.failing_since = now;
  if (e.circuit == CircuitState::kHalfOpen) {
    e.circuit = CircuitState::kOpen;
    e.opened_at = now;
  } else if (e.circuit == CircuitState::kClosed &&
             e.consecutive_failures >= push.circuit_failures) {
    e.circuit = CircuitState::kOpen;
    e.opened_at = now;
    e.was_open = true;
    spdlog::warn(
        "push: {}: circuit open after {} consecutive failures (last: {}); one probe "
        "every {}",
        where, e.consecutive_failures, error, FormatDuration(push.probe_interval));
  }
  if (push.disable_after > 0 && now - e.failing_since >= push.disable_after) {
    Disable(e, "failing since " + FormatTime(e.failing_since) + ": " + error);
  }
}

void PushDispatcher::Disable(Endpoint& e, const std::string& reason) {
  if (e.disabling || e.queue->config.push->disabled) return;
  e.disabling = true;
  auto [topic, subscription] = SplitSubscriptionQueue(e.queue->record.name);
  spdlog::warn("push: {}/{}: endpoint disabled ({}); its messages are kept until it is enabled",
               e.queue->record.tenant, e.queue->record.name, reason);
  auto r = topics_.SetEndpointDisabled(Tenancy::System(), e.queue->record.tenant, topic,
                                       subscription, true, reason);
  if (!r.ok()) {
    spdlog::warn("push: cannot disable {}/{}: {}", e.queue->record.tenant, e.queue->record.name,
                 r.status().ToString());
    e.disabling = false;
  }
}

void PushDispatcher::AutoRedrive(const Endpoint& e) {
  const QueueConfig& config = e.queue->config;
  const PushConfig& push = *config.push;
  JobSpec spec;
  spec.dlq = config.dead_letter_queue;
  nlohmann::json origin = e.queue->record.name;
  spec.filter = "origin eq " + origin.dump();
  spec.rate = push.auto_redrive_rate;
  if (push.auto_redrive_canary > 0) spec.canary = push.auto_redrive_canary;
  auto job = dead_letters_.StartJob(Tenancy::System(), e.queue->record.tenant, spec);
  if (job.ok()) {
    ++counters_.auto_redrives;
    spdlog::info("push: {}/{} recovered: redrive job {} takes its dead letters back",
                 e.queue->record.tenant, e.queue->record.name, job->id);
  } else {
    spdlog::warn("push: {}/{} recovered, but its auto-redrive did not start: {}",
                 e.queue->record.tenant, e.queue->record.name, job.status().ToString());
  }
}

Result<TestSendResult> PushDispatcher::TestSend(const QueueRef& q) {
  if (!q->config.push) {
    return Status(ErrorCode::kInvalidArgument, "'" + q->record.name + "' is not pushed");
  }
  const PushConfig& push = *q->config.push;
  TimeMs now = clock_.Now();
  auto [topic, subscription] = SplitSubscriptionQueue(q->record.name);
  std::string id = "test_" + NewUlid(now, random_);
  nlohmann::json body = {{"type", "redrive.test"},
                         {"topic", topic},
                         {"subscription", subscription},
                         {"sentAt", FormatTime(now)}};
  push::DeliveryRequest req;
  req.url = push.url;
  req.timeout = push.timeout;
  req.ca_file = push.ca_file;
  req.body = body.dump();
  int64_t timestamp = now / 1000;
  REDRIVE_ASSIGN_OR_RETURN(auto sig, push::Sign(id, timestamp, req.body, push.SigningSecrets(now)));
  req.headers = {{"content-type", "application/json"},
                 {std::string(push::kWebhookIdHeader), id},
                 {std::string(push::kWebhookTimestampHeader), std::to_string(timestamp)},
                 {std::string(push::kWebhookSignatureHeader), sig}};
  for (const auto& h : push.headers) req.headers.push_back(h);
  auto promise = std::make_shared<std::promise<push::DeliveryResult>>();
  auto answer = promise->get_future();
  bool sent = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (running_) {
      client_->Send(std::move(req),
                    [promise](push::DeliveryResult r) { promise->set_value(std::move(r)); });
      sent = true;
    }
  }
  if (!sent) {
    // Delivery is not running (an engine not started, as in tools): a client of its own, on
    // this thread, for this one request.
    boost::asio::io_context io;
    push::DeliveryClient client(io);
    client.Send(std::move(req),
                [promise](push::DeliveryResult r) { promise->set_value(std::move(r)); });
    io.run();
    client.Shutdown();
  }
  push::DeliveryResult r = answer.get();
  TestSendResult out;
  out.status = r.error == push::TransportError::kNone ? static_cast<int>(r.status) : 0;
  out.error = r.error == push::TransportError::kNone ? "" : Describe(r);
  out.duration = r.duration;
  out.response = r.body_snippet;
  return out;
}

}  // namespace redrive::engine
