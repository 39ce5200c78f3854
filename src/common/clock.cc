#include "common/clock.h"

#include <sys/random.h>

#include <stdexcept>

namespace redrive {

void Clock::WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                    DurationMs timeout) {
  if (timeout <= 0) return;
  cv.wait_for(lock, std::chrono::milliseconds(timeout));
}

TimeMs SystemClock::Now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TimeMs ManualClock::Now() {
  std::lock_guard<std::mutex> l(mu_);
  return now_;
}

void ManualClock::Advance(DurationMs d) {
  std::lock_guard<std::mutex> l(mu_);
  now_ += d;
}

void ManualClock::Set(TimeMs t) {
  std::lock_guard<std::mutex> l(mu_);
  now_ = t;
}

SystemRandom::SystemRandom() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) seed = std::random_device{}();
  engine_.seed(seed);
}

double SystemRandom::Uniform() {
  std::lock_guard<std::mutex> l(mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
}

std::string SystemRandom::Bytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out.data() + got, n - got, 0);
    if (r <= 0) {
      // getrandom only fails before the pool is initialised or on EINTR; fall back to the
      // seeded engine rather than failing a publish.
      std::lock_guard<std::mutex> l(mu_);
      for (; got < n; ++got) out[got] = static_cast<char>(engine_() & 0xff);
      break;
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

double SeededRandom::Uniform() {
  std::lock_guard<std::mutex> l(mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
}

std::string SeededRandom::Bytes(size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(engine_() & 0xff);
  return out;
}

}  // namespace redrive
