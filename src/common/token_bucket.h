// TokenBucket: the one rate limiter of redrive (a tenant's request rate, a redrive job's rate).
// It holds at most `burst` tokens and gains `rate` per second; taking fewer than it holds
// succeeds. Not thread-safe: its owner locks.
#pragma once

#include <algorithm>
#include <cmath>

#include "common/clock.h"

namespace redrive {

class TokenBucket {
 public:
  // A bucket holding `initial` tokens at `now`.
  TokenBucket(double rate, double burst, double initial, TimeMs now)
      : rate_(rate), burst_(burst), tokens_(std::min(initial, burst)), at_(now) {}

  // Adds what the time since the last refill earned, up to the burst. Time going backwards
  // earns nothing.
  void Refill(TimeMs now) {
    if (now <= at_) return;
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now - at_) * rate_ / 1000.0);
    at_ = now;
  }

  // Refills, then takes `n` if the bucket holds them. When it does not, *wait (if given) is
  // how long until it will, at least 1 ms.
  bool TryTake(TimeMs now, double n = 1.0, DurationMs* wait = nullptr) {
    Refill(now);
    if (tokens_ >= n) {
      tokens_ -= n;
      return true;
    }
    if (wait != nullptr) {
      // Less a hair, so that rounding (0.998 tokens at 2/s) does not add a millisecond.
      double ms = rate_ > 0 ? std::ceil((n - tokens_) * 1000.0 / rate_ - 1e-6) : 1e12;
      *wait = std::max<DurationMs>(1, static_cast<DurationMs>(ms));
    }
    return false;
  }

  // Takes `n` whatever the bucket holds (for work already done: the bucket may go below zero
  // and then earns its way back).
  void Take(double n) { tokens_ -= n; }

  // Whole tokens held after a refill at `now`.
  int64_t Available(TimeMs now) {
    Refill(now);
    return tokens_ > 0 ? static_cast<int64_t>(tokens_) : 0;
  }

  double tokens() const { return tokens_; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

 private:
  double rate_;   // tokens per second
  double burst_;  // the most it holds
  double tokens_;
  TimeMs at_;  // of the last refill
};

}  // namespace redrive
