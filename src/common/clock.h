// Time and randomness, injected so that retry schedules, TTLs and leases are testable without
// sleeping. Engine code never calls now() or sleep() directly.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

namespace redrive {

// Milliseconds since the Unix epoch. Every timestamp in redrive has this type.
using TimeMs = int64_t;
// A span of milliseconds.
using DurationMs = int64_t;

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs Now() = 0;
  // Blocks on `cv` until notified or until `timeout` of real time passed. ManualClock uses the
  // same real wait; long-poll tests use a system clock.
  virtual void WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                       DurationMs timeout);
};

class SystemClock : public Clock {
 public:
  TimeMs Now() override;
};

// A clock that moves only when told. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(TimeMs start = 1'700'000'000'000) : now_(start) {}
  TimeMs Now() override;
  void Advance(DurationMs d);
  void Set(TimeMs t);

 private:
  std::mutex mu_;
  TimeMs now_;  // GUARDED_BY(mu_)
};

// Randomness. Thread-safe.
class Random {
 public:
  virtual ~Random() = default;
  // Uniform in [0, 1).
  virtual double Uniform() = 0;
  // `n` bytes of randomness (cryptographic quality for SystemRandom: used for tokens).
  virtual std::string Bytes(size_t n) = 0;
};

// Uses the OS CSPRNG for Bytes and a seeded engine for Uniform.
class SystemRandom : public Random {
 public:
  SystemRandom();
  double Uniform() override;
  std::string Bytes(size_t n) override;

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // GUARDED_BY(mu_)
};

// Deterministic randomness for tests.
class SeededRandom : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : engine_(seed) {}
  double Uniform() override;
  std::string Bytes(size_t n) override;

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // GUARDED_BY(mu_)
};

}  // namespace redrive
