// The retry rules: whether a failed delivery is the last one, and when the next one happens.
// Pure functions; thread-safe.
#pragma once

#include "common/clock.h"
#include "engine/queue_config.h"
#include "store/records.h"

namespace redrive::engine {

// True when a message that has now failed `delivery_count` deliveries must not be retried.
bool IsExhausted(const RetryPolicy& policy, int delivery_count);

// The delay before the next delivery after the `delivery_count`-th failure (count >= 1):
// initial * multiplier^(count-1), capped at max, then varied by +/- jitter (never above max).
DurationMs BackoffDelay(const Backoff& backoff, int delivery_count, Random& random);

// The delay before the next delivery after the `delivery_count`-th failure: the policy's
// schedule when it has one (its last delay repeats past its end), else BackoffDelay.
DurationMs RetryDelay(const RetryPolicy& policy, int delivery_count, Random& random);

// The longest delay the policy ever waits: its schedule's longest, else backoff.max. The bound
// of an endpoint's Retry-After.
DurationMs LongestDelay(const RetryPolicy& policy);

// Journal bounds: the first kJournalHead attempts and the last kJournalTail are kept; those in
// between are counted in Journal::omitted.
inline constexpr size_t kJournalHead = 5;
inline constexpr size_t kJournalTail = 15;
void AppendAttempt(store::Journal* journal, store::Attempt attempt);

}  // namespace redrive::engine
