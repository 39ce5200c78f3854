// Receives and long polls: a receive leases at once; one that finds nothing and may wait parks
// as a Waiter (a callback, no thread) on its queue. A publish or requeue calls Notify, which
// hands the queue to a waker thread; the waker leases for the queue's waiters in arrival order,
// several of the same consumer in one lease, until a lease comes back short. So n ready
// messages wake at most the waiters they satisfy, however many are parked. Messages that become
// ready by time alone (delays, backoffs) are caught by a recheck of every queue with waiters
// every kRecheckMs; deadlines are kept in one ordered map.
#include <spdlog/spdlog.h>

#include <future>

#include "common/text.h"
#include "engine/messages.h"
#include "engine/tenancy.h"

namespace redrive::engine {
namespace {

constexpr DurationMs kRecheckMs = 500;
// Waiters served by one lease: bounded so that one drain does not hold many answers back.
constexpr size_t kMaxWaitersPerLease = 64;

}  // namespace

void Messages::ReceiveAsync(const std::string& tenant, const std::string& queue,
                            const ReceiveOptions& opt, ReceiveCallback done) {
  auto q_or = [&]() -> Result<QueueRef> {
    REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
    REDRIVE_ASSIGN_OR_RETURN(auto q, queues_.Lookup(tenant, queue));
    if (q->record.kind == store::QueueKind::kDeadLetter) {
      return Status(ErrorCode::kDeadLetterQueueReadOnly,
                    "'" + queue + "' is a dead-letter queue; read it through the dead-letter API");
    }
    if (q->record.kind == store::QueueKind::kTopic) {
      return Status(ErrorCode::kNotAQueue,
                    "'" + queue + "' is a topic; receive from one of its subscriptions");
    }
    if (opt.max_messages < 1 || opt.max_messages > options_.max_receive) {
      return Status(ErrorCode::kInvalidArgument,
                    "maxMessages must be between 1 and " + std::to_string(options_.max_receive));
    }
    if (opt.wait < 0 || opt.wait > options_.max_wait) {
      return Status(ErrorCode::kInvalidArgument,
                    "wait must be between 0s and " + FormatDuration(options_.max_wait));
    }
    DurationMs vt = opt.visibility_timeout.value_or(q->config.visibility_timeout);
    if (vt < 1000 || vt > kMaxVisibilityTimeout) {
      return Status(ErrorCode::kInvalidArgument, "visibilityTimeout must be between 1s and 12h");
    }
    if (opt.consumer.size() > kMaxConsumerName) {
      return Status(ErrorCode::kInvalidArgument,
                    "'consumer' is longer than " + std::to_string(kMaxConsumerName) + " bytes");
    }
    return q;
  }();
  if (!q_or.ok()) {
    done(q_or.status());
    return;
  }
  Waiter w;
  w.queue = std::move(q_or).value();
  w.max_messages = static_cast<int>(opt.max_messages);
  w.visibility_timeout = opt.visibility_timeout.value_or(w.queue->config.visibility_timeout);
  w.consumer = opt.consumer.empty() ? opt.caller : opt.consumer;
  w.deadline = clock_.Now() + opt.wait;
  w.done = std::move(done);
  int64_t queue_id = w.queue->record.id;
  for (;;) {
    uint64_t epoch = EpochOf(queue_id);
    auto leased = LeaseNow(*w.queue, w.max_messages, w.visibility_timeout, w.consumer);
    if (!leased.ok() || !leased->empty() || opt.wait == 0 || stopping_ ||
        clock_.Now() >= w.deadline) {
      w.done(std::move(leased));
      return;
    }
    // A Notify between the lease and now moved the epoch: lease again rather than sleep
    // through it.
    if (Park(w, epoch)) return;
  }
}

Result<std::vector<Delivery>> Messages::Receive(const std::string& tenant, const std::string& queue,
                                                const ReceiveOptions& options) {
  std::promise<Result<std::vector<Delivery>>> promise;
  auto future = promise.get_future();
  ReceiveAsync(tenant, queue, options,
               [&promise](Result<std::vector<Delivery>> r) { promise.set_value(std::move(r)); });
  return future.get();
}

uint64_t Messages::EpochOf(int64_t queue_id) {
  std::lock_guard<std::mutex> l(wait_mu_);
  return waiters_[queue_id].epoch;
}

bool Messages::Park(Waiter& w, uint64_t epoch) {
  ReceiveCallback ended;
  {
    std::lock_guard<std::mutex> l(wait_mu_);
    QueueWaiters& qw = waiters_[w.queue->record.id];
    if (qw.epoch != epoch) return false;
    if (stopping_ || wakers_exit_) {
      ended = std::move(w.done);
    } else {
      w.id = ++next_waiter_id_;
      std::pair<TimeMs, uint64_t> key{w.deadline, w.id};
      int64_t queue_id = w.queue->record.id;
      qw.waiting.push_back(std::move(w));
      deadlines_.emplace(key, std::make_pair(queue_id, std::prev(qw.waiting.end())));
      ++parked_;
    }
  }
  if (ended) {
    ended(std::vector<Delivery>{});
  } else {
    wait_cv_.notify_one();  // the earliest deadline may have changed
  }
  return true;
}

void Messages::Notify(int64_t queue_id) {
  {
    std::lock_guard<std::mutex> l(wait_mu_);
    auto it = waiters_.find(queue_id);
    if (it == waiters_.end()) return;  // nobody has ever waited on it
    ++it->second.epoch;
    if (it->second.waiting.empty()) return;
    if (it->second.draining) {
      it->second.drain_requested = true;
      return;
    }
    drains_.push_back(queue_id);
  }
  wait_cv_.notify_one();
}

int64_t Messages::parked_receives() {
  std::lock_guard<std::mutex> l(wait_mu_);
  return parked_;
}

void Messages::WakerLoop() {
  std::unique_lock<std::mutex> l(wait_mu_);
  while (!wakers_exit_) {
    TimeMs now = clock_.Now();
    // Waits that ended: answered with no messages, outside the lock.
    std::vector<ReceiveCallback> ended;
    while (!deadlines_.empty() && deadlines_.begin()->first.first <= now) {
      auto [queue_id, it] = deadlines_.begin()->second;
      ended.push_back(std::move(it->done));
      waiters_[queue_id].waiting.erase(it);
      deadlines_.erase(deadlines_.begin());
      --parked_;
    }
    if (!ended.empty()) {
      l.unlock();
      for (auto& done : ended) done(std::vector<Delivery>{});
      l.lock();
      continue;
    }
    if (now >= next_recheck_) {
      next_recheck_ = now + kRecheckMs;
      for (auto& [queue_id, qw] : waiters_) {
        if (qw.waiting.empty()) continue;
        if (qw.draining) {
          qw.drain_requested = true;
        } else if (std::find(drains_.begin(), drains_.end(), queue_id) == drains_.end()) {
          drains_.push_back(queue_id);
        }
      }
    }
    if (!drains_.empty()) {
      int64_t queue_id = drains_.front();
      drains_.erase(drains_.begin());
      QueueWaiters& qw = waiters_[queue_id];
      if (qw.draining) {
        qw.drain_requested = true;
        continue;
      }
      qw.draining = true;
      l.unlock();
      Drain(queue_id);
      l.lock();
      continue;
    }
    DurationMs wait = next_recheck_ - now;
    if (!deadlines_.empty()) wait = std::min(wait, deadlines_.begin()->first.first - now);
    clock_.WaitFor(wait_cv_, l, std::max<DurationMs>(wait, 1));
  }
}

void Messages::Drain(int64_t queue_id) {
  // REQUIRES: this thread set waiters_[queue_id].draining.
  std::unique_lock<std::mutex> l(wait_mu_);
  for (;;) {
    QueueWaiters& qw = waiters_[queue_id];
    qw.drain_requested = false;
    if (qw.waiting.empty() || stopping_) break;
    // The front waiter and those right behind it with the same consumer and lease share a
    // lease; the messages go to them in order.
    WaiterList batch;
    const Waiter& front = qw.waiting.front();
    std::string consumer = front.consumer;
    DurationMs vt = front.visibility_timeout;
    QueueRef queue = front.queue;
    int64_t want = 0;
    while (!qw.waiting.empty() && batch.size() < kMaxWaitersPerLease) {
      Waiter& w = qw.waiting.front();
      if (w.consumer != consumer || w.visibility_timeout != vt ||
          want + w.max_messages > options_.max_receive) {
        break;
      }
      want += w.max_messages;
      deadlines_.erase({w.deadline, w.id});
      batch.splice(batch.end(), qw.waiting, qw.waiting.begin());
    }
    // The batch still counts as parked until each of its receives is answered.
    l.unlock();

    auto leased = LeaseNow(*queue, static_cast<int>(want), vt, consumer);
    std::vector<std::pair<ReceiveCallback, Result<std::vector<Delivery>>>> answers;
    bool short_lease = true;
    if (!leased.ok()) {
      for (auto& w : batch) answers.emplace_back(std::move(w.done), leased.status());
      batch.clear();
    } else {
      std::vector<Delivery>& got = leased.value();
      short_lease = static_cast<int64_t>(got.size()) < want;
      size_t next = 0;
      while (!batch.empty() && next < got.size()) {
        Waiter& w = batch.front();
        size_t n = std::min<size_t>(static_cast<size_t>(w.max_messages), got.size() - next);
        std::vector<Delivery> mine(std::make_move_iterator(got.begin() + next),
                                   std::make_move_iterator(got.begin() + next + n));
        next += n;
        answers.emplace_back(std::move(w.done), std::move(mine));
        batch.pop_front();
      }
    }
    l.lock();
    parked_ -= static_cast<int64_t>(answers.size());
    l.unlock();
    for (auto& [done, result] : answers) done(std::move(result));

    l.lock();
    QueueWaiters& again = waiters_[queue_id];
    // Those the lease did not reach go back to the front, in order, unless their wait ended.
    TimeMs now = clock_.Now();
    std::vector<ReceiveCallback> ended;
    for (auto it = batch.begin(); it != batch.end();) {
      if (it->deadline <= now || stopping_) {
        ended.push_back(std::move(it->done));
        it = batch.erase(it);
      } else {
        ++it;
      }
    }
    // Iterators into `batch` stay valid once its nodes move to the queue's list.
    for (auto it = batch.begin(); it != batch.end(); ++it) {
      deadlines_.emplace(std::make_pair(it->deadline, it->id), std::make_pair(queue_id, it));
    }
    again.waiting.splice(again.waiting.begin(), batch);
    parked_ -= static_cast<int64_t>(ended.size());
    if (!ended.empty()) {
      l.unlock();
      for (auto& done : ended) done(std::vector<Delivery>{});
      l.lock();
    }
    QueueWaiters& after = waiters_[queue_id];
    if (short_lease && !after.drain_requested) break;
  }
  waiters_[queue_id].draining = false;
}

void Messages::EndLongPolls() {
  std::vector<ReceiveCallback> ended;
  {
    std::lock_guard<std::mutex> l(wait_mu_);
    for (auto& [queue_id, qw] : waiters_) {
      for (auto& w : qw.waiting) ended.push_back(std::move(w.done));
      qw.waiting.clear();
    }
    deadlines_.clear();
    // Waiters inside a drain are answered by it.
    parked_ -= static_cast<int64_t>(ended.size());
  }
  for (auto& done : ended) done(std::vector<Delivery>{});
}

}  // namespace redrive::engine
