// Background work: the sweeper (leases, TTLs, retention, token last use, counts of delivery
// outcomes) and the redrive job runner, each a thread started and stopped here and nowhere
// else. On several nodes each pass runs under a Coordinator claim: the sweeper's turn ("sweeper")
// on one node at a time, each job on one node at a time ("job/<id>", taken by
// DeadLetters::RunJobsOnce). The store's own threads (SQLite's writer and checkpointer) belong to
// the store and live as long as it.
//
// Thread-safety: Start and Stop from one thread; SweepOnce from any.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/status.h"
#include "engine/coordination.h"
#include "engine/model.h"

namespace redrive::engine {

class DeadLetters;
class DeliveryOutcomes;
class Messages;
class Notifications;
class Tenancy;

class Background {
 public:
  Background(Messages& messages, DeadLetters& dead_letters, Tenancy& tenancy,
             DeliveryOutcomes& outcomes, Notifications& notifications, Clock& clock,
             const EngineOptions& options, Coordinator& coordinator);
  ~Background();  // Stop()
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // Starts the sweeper, the job runner and the export runner; a second Start does nothing.
  void Start();
  // Ends them and joins them, then writes the tokens' last use and the counts of delivery
  // outcomes not yet written.
  void Stop();

  // One pass of the sweeper, if this node holds (or takes) the sweeper's claim: expired leases,
  // TTL expiry, retention of messages and dead letters, expired idempotency keys, old jobs,
  // counts of delivery outcomes past their retention; the notifications' scheduler (digests,
  // ticket expiry, alerts).
  // Returns how much it did (0 when another node holds the claim).
  Result<int64_t> SweepOnce();

 private:
  void SweeperLoop();
  // DeliveryOutcomes::Flush, logging a failure (the counts are kept for the next one).
  void FlushOutcomes(bool force);
  void JobRunnerLoop();
  void ExportRunnerLoop();

  Messages& messages_;
  DeadLetters& dead_letters_;
  Tenancy& tenancy_;
  DeliveryOutcomes& outcomes_;
  Notifications& notifications_;
  Clock& clock_;
  const EngineOptions& options_;
  Coordinator& coordinator_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::thread sweeper_;
  std::thread job_runner_;
  std::thread export_runner_;
};

}  // namespace redrive::engine
