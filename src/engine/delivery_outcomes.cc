#include "engine/delivery_outcomes.h"

#include <limits>

#include "engine/failure_group.h"

namespace redrive::engine {

DeliveryOutcomes::DeliveryOutcomes(store::ControlStore& control, Clock& clock,
                                   const EngineOptions& options)
    : control_(control), clock_(clock), options_(options) {}

void DeliveryOutcomes::CountSucceeded(const std::string& tenant, const std::string& origin,
                                      TimeMs at, int64_t n) {
  if (n <= 0) return;
  Add(tenant, origin, at, Counts{n, 0, 0});
}

void DeliveryOutcomes::CountFailed(const std::string& tenant, const std::string& origin, TimeMs at,
                                   int64_t n, int64_t tls) {
  if (n <= 0) return;
  Add(tenant, origin, at, Counts{0, n, tls});
}

bool DeliveryOutcomes::IsTlsFailure(std::string_view cause) {
  return IsTlsCause(NormalizeCause(cause));
}

void DeliveryOutcomes::Add(const std::string& tenant, const std::string& origin, TimeMs at,
                           const Counts& add) {
  TimeMs minute = at - ((at % kOutcomeMinute) + kOutcomeMinute) % kOutcomeMinute;
  std::lock_guard<std::mutex> l(mu_);
  Counts& c = pending_[Key{tenant, origin, minute}];
  c.succeeded += add.succeeded;
  c.failed += add.failed;
  c.failed_tls += add.failed_tls;
}

Status DeliveryOutcomes::Flush(bool force) {
  std::lock_guard<std::mutex> f(flush_mu_);
  TimeMs now = clock_.Now();
  if (!force && now - flushed_at_ < options_.outcome_flush) return Status::Ok();
  flushed_at_ = now;
  std::map<Key, Counts> taken;
  {
    std::lock_guard<std::mutex> l(mu_);
    taken.swap(pending_);
  }
  if (taken.empty()) return Status::Ok();
  std::vector<store::DeliveryOutcomeRow> rows;
  rows.reserve(taken.size());
  for (const auto& [key, c] : taken) {
    rows.push_back(store::DeliveryOutcomeRow{std::get<0>(key), std::get<1>(key), std::get<2>(key),
                                             c.succeeded, c.failed, c.failed_tls});
  }
  Status st = control_.AddDeliveryOutcomes(rows);
  if (!st.ok()) {
    // Kept for the next flush, added to what was counted meanwhile.
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [key, c] : taken) {
      Counts& p = pending_[key];
      p.succeeded += c.succeeded;
      p.failed += c.failed;
      p.failed_tls += c.failed_tls;
    }
  }
  return st;
}

Result<std::vector<MinuteOutcomes>> DeliveryOutcomes::Series(const std::string& tenant,
                                                             const std::string& origin,
                                                             TimeMs since) {
  std::lock_guard<std::mutex> f(flush_mu_);
  REDRIVE_ASSIGN_OR_RETURN(
      auto stored,
      control_.ListDeliveryOutcomes(tenant, origin, since, std::numeric_limits<TimeMs>::max()));
  std::map<TimeMs, MinuteOutcomes> by_minute;
  for (const auto& r : stored) {
    by_minute[r.minute] = MinuteOutcomes{r.minute, r.succeeded, r.failed, r.failed_tls};
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = pending_.lower_bound(Key{tenant, origin, since});
         it != pending_.end() && std::get<0>(it->first) == tenant &&
         std::get<1>(it->first) == origin;
         ++it) {
      TimeMs minute = std::get<2>(it->first);
      MinuteOutcomes& m = by_minute[minute];
      m.minute = minute;
      m.succeeded += it->second.succeeded;
      m.failed += it->second.failed;
      m.failed_tls += it->second.failed_tls;
    }
  }
  std::vector<MinuteOutcomes> out;
  out.reserve(by_minute.size());
  for (auto& [minute, m] : by_minute) {
    if (m.succeeded > 0 || m.failed > 0) out.push_back(m);
  }
  return out;
}

DurationMs DeliveryOutcomes::retention() const {
  return options_.dead_letter_retention > 0 ? options_.dead_letter_retention
                                            : kOutcomeRetentionWhenKeptForever;
}

Result<int64_t> DeliveryOutcomes::SweepOnce() {
  return control_.DeleteDeliveryOutcomes(clock_.Now() - retention(), options_.sweep_batch);
}

}  // namespace redrive::engine
