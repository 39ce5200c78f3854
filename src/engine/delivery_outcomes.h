// DeliveryOutcomes: how many deliveries from each origin queue succeeded and failed, by minute,
// the evidence behind the diagnosis of failure groups (diagnosis.h). Counted in memory where
// the outcomes happen, written to the store by a periodic flush (store rows add up, so several
// nodes each flush their own), kept for the dead-letter retention, and read back, stored plus
// not yet flushed, when a group is diagnosed.
//
// What counts (one rule, here and in Messages):
// - a success: an acked delivery (Messages::Ack: a consumer's ack, or the push dispatcher's);
// - a failure: a failed delivery that goes through the failure plan: a nack (a consumer's,
//   rejects included, or the push dispatcher's for a failed push) and a lease that ended
//   without ack or nack (counted by the sweeper that ends it);
// - of those failures, the TLS ones: whose cause (the attempt's error, else its reason,
//   normalized as for failure groups) IsTlsCause.
// A message whose TTL passed before it was delivered, a lease handed back unused (Release) and
// an extended lease count nothing. An outcome is counted in the minute of the engine's clock
// when the engine learns it (for a failure, before it plans the failure, so never in a minute
// after the dead letter it makes). A subscription's queue ("<topic>:<subscription>") has one
// endpoint, so the counts of an origin are also those of its endpoint.
//
// Counts not yet flushed are lost when the process dies (at most EngineOptions::outcome_flush
// of them); another node's are not visible until it flushes them.
//
// Thread-safety: thread-safe. Counting takes one mutex for a map update; Flush and Series are
// serialized with each other (a flush in progress holds counts that are in neither place).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/diagnosis.h"
#include "engine/model.h"
#include "store/control_store.h"

namespace redrive::engine {

// How long counts are kept when dead letters are kept until removed (dead_letter_retention 0).
inline constexpr DurationMs kOutcomeRetentionWhenKeptForever = 30 * 86'400'000LL;

class DeliveryOutcomes {
 public:
  DeliveryOutcomes(store::ControlStore& control, Clock& clock, const EngineOptions& options);
  DeliveryOutcomes(const DeliveryOutcomes&) = delete;
  DeliveryOutcomes& operator=(const DeliveryOutcomes&) = delete;

  // Counts `n` deliveries from queue `origin` of `tenant` that succeeded at `at`.
  void CountSucceeded(const std::string& tenant, const std::string& origin, TimeMs at, int64_t n);
  // Counts `n` that failed at `at`, `tls` of them with a TLS cause (tls <= n).
  void CountFailed(const std::string& tenant, const std::string& origin, TimeMs at, int64_t n,
                   int64_t tls);
  // Whether a failure with this cause counts as a TLS failure: IsTlsCause of the cause
  // normalized as for failure groups (so the counts and the groups agree).
  static bool IsTlsFailure(std::string_view cause);

  // Writes the counts made since the last flush in one store call, unless the last flush was
  // less than EngineOptions::outcome_flush ago and `force` is false. When the write fails the
  // counts are kept for the next flush and the error returned.
  Status Flush(bool force = false);

  // The counts of the origin's minutes from `since` on: the stored ones plus those this node
  // has not flushed yet, one per minute, in minute order.
  Result<std::vector<MinuteOutcomes>> Series(const std::string& tenant, const std::string& origin,
                                             TimeMs since);

  // How long counts are kept: EngineOptions::dead_letter_retention, or
  // kOutcomeRetentionWhenKeptForever when that is 0.
  DurationMs retention() const;

  // The sweeper's: deletes stored counts older than retention(), at most sweep_batch rows;
  // returns how many.
  Result<int64_t> SweepOnce();

 private:
  using Key = std::tuple<std::string, std::string, TimeMs>;  // tenant, origin, minute
  struct Counts {
    int64_t succeeded = 0;
    int64_t failed = 0;
    int64_t failed_tls = 0;
  };
  void Add(const std::string& tenant, const std::string& origin, TimeMs at, const Counts& add);

  store::ControlStore& control_;
  Clock& clock_;
  const EngineOptions& options_;

  std::mutex mu_;
  std::map<Key, Counts> pending_;  // GUARDED_BY(mu_)

  // Lock order: flush_mu_ before mu_.
  std::mutex flush_mu_;
  TimeMs flushed_at_ = 0;  // GUARDED_BY(flush_mu_)
};

}  // namespace redrive::engine
