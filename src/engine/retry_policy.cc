#include "engine/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace redrive::engine {

bool IsExhausted(const RetryPolicy& policy, int delivery_count) {
  if (policy.max_deliveries < 0) return false;
  if (policy.max_deliveries == 0) return true;
  return delivery_count >= policy.max_deliveries;
}

DurationMs BackoffDelay(const Backoff& b, int delivery_count, Random& random) {
  int exponent = std::max(0, delivery_count - 1);
  double delay = static_cast<double>(b.initial) * std::pow(b.multiplier, exponent);
  double cap = static_cast<double>(b.max);
  if (!(delay <= cap)) delay = cap;  // also catches overflow to inf
  if (b.jitter > 0) delay *= 1.0 + b.jitter * (2.0 * random.Uniform() - 1.0);
  delay = std::clamp(delay, 0.0, cap);
  return static_cast<DurationMs>(std::llround(delay));
}

DurationMs RetryDelay(const RetryPolicy& policy, int delivery_count, Random& random) {
  if (policy.schedule.empty()) return BackoffDelay(policy.backoff, delivery_count, random);
  size_t i = static_cast<size_t>(std::max(1, delivery_count)) - 1;
  return policy.schedule[std::min(i, policy.schedule.size() - 1)];
}

DurationMs LongestDelay(const RetryPolicy& policy) {
  if (policy.schedule.empty()) return policy.backoff.max;
  return *std::max_element(policy.schedule.begin(), policy.schedule.end());
}

void AppendAttempt(store::Journal* journal, store::Attempt attempt) {
  journal->attempts.push_back(std::move(attempt));
  if (journal->attempts.size() > kJournalHead + kJournalTail) {
    journal->attempts.erase(journal->attempts.begin() + static_cast<long>(kJournalHead));
    ++journal->omitted;
  }
}

}  // namespace redrive::engine
