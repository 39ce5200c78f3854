#include "engine/background.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/dead_letters.h"
#include "engine/delivery_outcomes.h"
#include "engine/messages.h"
#include "engine/notifications.h"
#include "engine/tenancy.h"

namespace redrive::engine {
namespace {

constexpr char kSweeperClaim[] = "sweeper";

}  // namespace

Background::Background(Messages& messages, DeadLetters& dead_letters, Tenancy& tenancy,
                       DeliveryOutcomes& outcomes, Notifications& notifications, Clock& clock,
                       const EngineOptions& options, Coordinator& coordinator)
    : messages_(messages),
      dead_letters_(dead_letters),
      tenancy_(tenancy),
      outcomes_(outcomes),
      notifications_(notifications),
      clock_(clock),
      options_(options),
      coordinator_(coordinator) {
  dead_letters_.SetJobWaker([this] { cv_.notify_all(); });
}

Background::~Background() {
  Stop();
  dead_letters_.SetJobWaker(nullptr);
}

void Background::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (sweeper_.joinable()) return;
  stopping_ = false;
  sweeper_ = std::thread([this] { SweeperLoop(); });
  job_runner_ = std::thread([this] { JobRunnerLoop(); });
  export_runner_ = std::thread([this] { ExportRunnerLoop(); });
}

void Background::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  bool was_running = sweeper_.joinable();
  if (sweeper_.joinable()) sweeper_.join();
  if (job_runner_.joinable()) job_runner_.join();
  if (export_runner_.joinable()) export_runner_.join();
  if (was_running) {
    coordinator_.Release(kSweeperClaim, coordinator_.node_id());
    tenancy_.FlushTokenUse(/*force=*/true);
  }
  // Also when the threads never ran: what was counted is kept, whoever drove the engine.
  FlushOutcomes(/*force=*/true);
}

Result<int64_t> Background::SweepOnce() {
  // The claim outlives a few passes, so a node that stops is replaced within seconds.
  DurationMs ttl = std::max<DurationMs>(6'000, 4 * options_.sweep_interval);
  if (!coordinator_.Claim(kSweeperClaim, coordinator_.node_id(), ttl)) return 0;
  REDRIVE_ASSIGN_OR_RETURN(int64_t messages, messages_.SweepOnce());
  REDRIVE_ASSIGN_OR_RETURN(int64_t dead_letters, dead_letters_.SweepOnce());
  REDRIVE_ASSIGN_OR_RETURN(int64_t outcomes, outcomes_.SweepOnce());
  (void)outcomes;  // counts, not messages: they do not make the sweeper go round again
  // Digests, ticket expiry and alerts: their failures are logged, and do not stop the sweeper.
  Status notified = notifications_.RunOnce();
  if (!notified.ok()) spdlog::error("notifications: {}", notified.ToString());
  return messages + dead_letters;
}

void Background::SweeperLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    l.unlock();
    auto r = SweepOnce();
    if (!r.ok()) spdlog::error("sweeper: {}", r.status().ToString());
    tenancy_.FlushTokenUse();
    FlushOutcomes(/*force=*/false);
    l.lock();
    // Under load a pass that did a full batch runs again at once.
    if (r.ok() && r.value() >= options_.sweep_batch) continue;
    clock_.WaitFor(cv_, l, options_.sweep_interval);
  }
}

void Background::FlushOutcomes(bool force) {
  // Each node writes its own counts (they add up in the store), so no claim is needed.
  Status st = outcomes_.Flush(force);
  if (!st.ok()) spdlog::warn("writing the counts of delivery outcomes: {}", st.ToString());
}

void Background::JobRunnerLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    l.unlock();
    auto r = dead_letters_.RunJobsOnce();
    if (!r.ok()) spdlog::error("job runner: {}", r.status().ToString());
    l.lock();
    if (r.ok() && r.value() > 0) continue;  // keep going while there is work
    clock_.WaitFor(cv_, l, options_.job_tick);
  }
}

// Exports run on their own thread: a step writes thousands of lines, and redrive jobs must not
// wait for it.
void Background::ExportRunnerLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    l.unlock();
    auto r = dead_letters_.RunExportsOnce();
    if (!r.ok()) spdlog::error("export runner: {}", r.status().ToString());
    l.lock();
    if (r.ok() && r.value() > 0) continue;  // keep going while there is work
    clock_.WaitFor(cv_, l, options_.job_tick);
  }
}

}  // namespace redrive::engine
