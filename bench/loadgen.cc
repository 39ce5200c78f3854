// redrive_loadgen: drives a messaging system with concurrent producers and consumers and
// accounts for every message it published. The system is redrive (its REST API) or one of the
// peers it is compared with (RabbitMQ classic and quorum queues, a PostgreSQL table used as a
// queue); bench/driver.h is the interface, and the scenarios below are written once against it,
// so every system runs exactly the same workload.
//
// Scenarios:
//   publish      producers only; checks that the queue's ready depth grew by what was published.
//   end-to-end   producers and consumers at once; every message received is acked; checks
//                published == acked. Reports publish-to-receive latency.
//   dead-letter  like end-to-end, but a deterministic share (--fail-share) of the messages is
//                nacked on every delivery until the system dead-letters it (after
//                --max-deliveries deliveries); checks acked + dead-lettered == published
//                (dead-lettered read from the driver's depth) and that exactly the failing
//                messages were dead-lettered, each after exactly --max-deliveries nacks.
//   latency      producers publish at a fixed --rate; consumers ack; reports publish-to-receive
//                latency percentiles. Each message carries its *intended* send time, so a
//                producer that falls behind does not hide the delay (no coordinated omission).
//
// --max-backlog N makes producers wait while N published messages are unsettled, so end-to-end
// and dead-letter runs measure what the system sustains rather than how fast a backlog grows.
//
// Each producer and consumer thread owns one Session (one connection), opened before the clock
// starts. Messages carry a sequence number (decides which messages fail) and their send time in
// microseconds on this process's steady clock.
//
// redrive's --url may list several nodes (comma-separated, one PostgreSQL store): producer and
// consumer threads take them round-robin (bench/driver.h). Only 127.0.0.1 / localhost addresses
// are accepted, for every URL (bench/driver.cc); every run is bounded by --timeout.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "driver.h"

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

const SteadyClock::time_point kEpoch = SteadyClock::now();

// How long one receive waits for a first message.
constexpr int kReceiveWaitMs = 1000;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - kEpoch).count();
}

void SleepUntilMicros(int64_t t) {
  int64_t now = NowMicros();
  if (t > now) std::this_thread::sleep_for(std::chrono::microseconds(t - now));
}

struct Options {
  bench::DriverOptions driver;
  std::string token_file;
  std::string queue = "bench";
  int producers = 4;
  int consumers = 4;
  int batch = 100;
  int receive_batch = 0;  // 0: same as batch
  int64_t messages = 0;
  double seconds = 0;
  std::string scenario = "end-to-end";
  double rate = 10'000;
  double fail_share = 0.1;
  int max_deliveries = 3;
  double timeout = 0;       // 0: derived from the run's size
  int64_t max_backlog = 0;  // 0: unbounded
  bool keep_queue = false;
  bool json_output = false;
};

// Message n fails (is nacked on every delivery) when it crosses a multiple of 1/share: exactly
// floor(N * share) of the first N messages fail, spread evenly.
bool Fails(int64_t n, double share) {
  if (share <= 0) return false;
  return std::floor(static_cast<double>(n + 1) * share) >
         std::floor(static_cast<double>(n) * share);
}

struct Stats {
  std::atomic<int64_t> published{0};
  std::atomic<int64_t> published_fails{0};  // how many published messages are set to fail
  std::atomic<int64_t> publish_requests{0};
  std::atomic<int64_t> receive_requests{0};
  std::atomic<int64_t> empty_receives{0};
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> redelivered{0};
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> ack_lost{0};
  std::atomic<int64_t> nacked{0};
  std::atomic<int64_t> final_nacks{0};  // nacks of a last allowed delivery: dead-lettered
  std::atomic<int64_t> errors{0};
  std::atomic<int64_t> last_publish_us{0};
  std::atomic<int64_t> last_settle_us{0};  // last ack or nack that succeeded
  std::atomic<int64_t> behind_us{0};       // latency scenario: worst lag behind schedule

  std::mutex mu;
  std::vector<uint32_t> latencies_us;  // GUARDED_BY(mu)
  std::string first_error;             // GUARDED_BY(mu)
};

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load();
  while (v > cur && !a.compare_exchange_weak(cur, v)) {
  }
}

void RecordError(Stats& st, const std::string& what, const std::string& error) {
  ++st.errors;
  std::lock_guard<std::mutex> l(st.mu);
  if (st.first_error.empty()) st.first_error = what + ": " + error;
}

class Run {
 public:
  Run(const Options& o, bench::Driver& driver) : o_(o), driver_(driver) {
    receive_batch_ = o_.receive_batch > 0 ? o_.receive_batch : o_.batch;
  }

  int Execute();

 private:
  bool Prepare();
  void Producer(bench::Session& session, int index);
  void Consumer(bench::Session& session);
  void WaitForConsumers();
  void Report(double seconds, bool accounted, const std::string& verdict);

  bool Timed() const { return o_.seconds > 0; }
  bool HasConsumers() const { return o_.scenario != "publish"; }

  const Options& o_;
  bench::Driver& driver_;  // Prepare, Connect and GetDepth: the main thread only
  int receive_batch_ = 0;
  int64_t deadline_us_ = 0;  // hard stop for everything
  int64_t publish_end_us_ = 0;
  int64_t start_us_ = 0;
  int max_deliveries_ = 0;
  int64_t baseline_ready_ = 0;
  int64_t baseline_dead_ = 0;
  int64_t final_dead_ = 0;

  std::atomic<int64_t> next_n_{0};
  std::atomic<bool> stop_consumers_{false};
  Stats st_;
};

bool Run::Prepare() {
  bench::QueueSpec spec;
  spec.name = o_.queue;
  spec.max_deliveries = o_.scenario == "dead-letter" ? o_.max_deliveries : 0;
  // redrive's queues are made by bench/run.sh or --create and used as they are; the peers'
  // queues are recreated unless --keep-queue.
  spec.fresh = o_.driver.system != "redrive" && !o_.keep_queue;
  if (!driver_.Prepare(spec)) {
    std::fprintf(stderr, "redrive_loadgen: prepare %s: %s\n", o_.driver.system.c_str(),
                 driver_.error().c_str());
    return false;
  }
  bench::Depth d;
  if (!driver_.GetDepth(&d)) {
    std::fprintf(stderr, "redrive_loadgen: depth of %s: %s\n", o_.queue.c_str(),
                 driver_.error().c_str());
    return false;
  }
  baseline_ready_ = d.ready;
  baseline_dead_ = d.dead_lettered;
  int64_t unsettled = d.ready + d.in_flight;
  if (HasConsumers() && unsettled != 0) {
    std::fprintf(stderr,
                 "redrive_loadgen: queue %s holds %lld messages; the %s scenario needs an "
                 "empty queue to account for every message\n",
                 o_.queue.c_str(), static_cast<long long>(unsettled), o_.scenario.c_str());
    return false;
  }
  max_deliveries_ = spec.max_deliveries;
  return true;
}

void Run::Producer(bench::Session& session, int index) {
  std::vector<bench::Outgoing> batch;
  batch.reserve(static_cast<size_t>(o_.batch));
  const bool paced = o_.scenario == "latency";
  // Paced producers share the rate: each sends one batch every `interval`, staggered.
  const double interval_us =
      paced ? 1e6 * static_cast<double>(o_.batch) * o_.producers / o_.rate : 0;
  double next_us = static_cast<double>(start_us_) + interval_us * index / o_.producers;
  const double fail_share = o_.scenario == "dead-letter" ? o_.fail_share : 0;

  for (;;) {
    int64_t now = NowMicros();
    if (now >= deadline_us_ || (Timed() && now >= publish_end_us_)) break;
    int64_t sent_us = now;
    if (paced) {
      if (Timed() && next_us >= static_cast<double>(publish_end_us_)) break;
      SleepUntilMicros(static_cast<int64_t>(next_us));
      sent_us = static_cast<int64_t>(next_us);  // the intended time, even when late
      AtomicMax(st_.behind_us, NowMicros() - sent_us);
      next_us += interval_us;
    }
    // With --max-backlog, producers wait while too many published messages are not yet settled,
    // so end-to-end runs measure what the system sustains rather than how fast a backlog grows.
    while (o_.max_backlog > 0 && NowMicros() < deadline_us_ &&
           st_.published - st_.acked - st_.final_nacks >= o_.max_backlog) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (Timed() && NowMicros() >= publish_end_us_) break;
    if (!paced) sent_us = NowMicros();
    int64_t count = o_.batch;
    int64_t first = next_n_.fetch_add(count);
    if (!Timed()) {
      if (first >= o_.messages) break;
      count = std::min<int64_t>(count, o_.messages - first);
    }
    batch.clear();
    int64_t fails = 0;
    for (int64_t i = 0; i < count; ++i) {
      int64_t n = first + i;
      fails += Fails(n, fail_share) ? 1 : 0;
      batch.push_back({n, sent_us});
    }
    bool ok = session.Publish(batch);
    ++st_.publish_requests;
    if (!ok) {
      // A failed publish is not retried: its messages are not counted as published, and the run
      // reports the error.
      RecordError(st_, "publish", session.error());
      continue;
    }
    st_.published += count;
    st_.published_fails += fails;
    AtomicMax(st_.last_publish_us, NowMicros());
  }
}

void Run::Consumer(bench::Session& session) {
  const bool measure = o_.scenario == "end-to-end" || o_.scenario == "latency";
  const double fail_share = o_.scenario == "dead-letter" ? o_.fail_share : 0;
  std::vector<bench::Delivery> got, acks, nacks;
  std::vector<uint32_t> latencies;

  while (!stop_consumers_ && NowMicros() < deadline_us_) {
    bool ok = session.Receive(receive_batch_, kReceiveWaitMs, &got);
    ++st_.receive_requests;
    if (!ok) {
      RecordError(st_, "receive", session.error());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    int64_t now = NowMicros();
    if (got.empty()) {
      ++st_.empty_receives;
      continue;
    }
    st_.received += static_cast<int64_t>(got.size());
    acks.clear();
    nacks.clear();
    int64_t n_final = 0;
    for (auto& m : got) {
      if (m.delivery_count > 1) ++st_.redelivered;
      if (measure && m.delivery_count == 1 && m.sent_us >= 0) {
        latencies.push_back(
            static_cast<uint32_t>(std::clamp<int64_t>(now - m.sent_us, 0, UINT32_MAX)));
      }
      if (Fails(m.n, fail_share)) {
        if (m.delivery_count >= max_deliveries_) ++n_final;
        nacks.push_back(std::move(m));
      } else {
        acks.push_back(std::move(m));
      }
    }
    if (!acks.empty()) {
      int64_t settled = 0;
      if (!session.Ack(acks, &settled)) {
        RecordError(st_, "ack", session.error());
      } else {
        st_.acked += settled;
        st_.ack_lost += static_cast<int64_t>(acks.size()) - settled;
        AtomicMax(st_.last_settle_us, NowMicros());
      }
    }
    if (!nacks.empty()) {
      int64_t settled = 0;
      if (!session.Nack(nacks, &settled)) {
        RecordError(st_, "nack", session.error());
      } else {
        st_.nacked += settled;
        if (settled == static_cast<int64_t>(nacks.size())) st_.final_nacks += n_final;
        AtomicMax(st_.last_settle_us, NowMicros());
      }
    }
  }
  std::lock_guard<std::mutex> l(st_.mu);
  st_.latencies_us.insert(st_.latencies_us.end(), latencies.begin(), latencies.end());
}

// Called once the producers are done: lets the consumers drain what was published.
void Run::WaitForConsumers() {
  if (o_.scenario == "dead-letter") {
    // Dead letters are only visible in the system's depth: poll it.
    while (NowMicros() < deadline_us_) {
      bench::Depth d;
      if (driver_.GetDepth(&d)) {
        final_dead_ = d.dead_lettered - baseline_dead_;
        if (st_.acked + final_dead_ >= st_.published) break;
      } else {
        RecordError(st_, "depth", driver_.error());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } else {
    while (NowMicros() < deadline_us_ && st_.acked < st_.published) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  stop_consumers_ = true;
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;
}

int Run::Execute() {
  if (!Prepare()) return 2;

  // Every connection is open before the clock starts.
  std::vector<std::unique_ptr<bench::Session>> producer_sessions, consumer_sessions;
  for (int i = 0; i < o_.producers + (HasConsumers() ? o_.consumers : 0); ++i) {
    std::unique_ptr<bench::Session> s = driver_.Connect();
    if (s == nullptr) {
      std::fprintf(stderr, "redrive_loadgen: connect to %s: %s\n", o_.driver.system.c_str(),
                   driver_.error().c_str());
      return 2;
    }
    (i < o_.producers ? producer_sessions : consumer_sessions).push_back(std::move(s));
  }

  double timeout = o_.timeout > 0 ? o_.timeout : (Timed() ? o_.seconds + 120 : 600);
  start_us_ = NowMicros();
  deadline_us_ = start_us_ + static_cast<int64_t>(timeout * 1e6);
  publish_end_us_ = Timed() ? start_us_ + static_cast<int64_t>(o_.seconds * 1e6) : deadline_us_;

  std::vector<std::thread> consumers;
  for (auto& s : consumer_sessions) consumers.emplace_back([this, &s] { Consumer(*s); });
  std::vector<std::thread> producers;
  for (int i = 0; i < o_.producers; ++i) {
    producers.emplace_back([this, i, &producer_sessions] { Producer(*producer_sessions[i], i); });
  }
  for (auto& t : producers) t.join();
  if (HasConsumers()) {
    WaitForConsumers();
    for (auto& t : consumers) t.join();
  }

  // Accounting.
  bool accounted = false;
  std::string verdict;
  int64_t published = st_.published;
  double seconds = 0;
  if (o_.scenario == "publish") {
    seconds = (st_.last_publish_us - start_us_) / 1e6;
    bench::Depth d;
    int64_t ready = -1;
    if (driver_.GetDepth(&d)) {
      ready = d.ready - baseline_ready_;
    } else {
      RecordError(st_, "depth", driver_.error());
    }
    accounted = ready == published;
    verdict = "queue ready depth grew by " + std::to_string(ready) + ", published " +
              std::to_string(published);
  } else if (o_.scenario == "dead-letter") {
    seconds = (st_.last_settle_us - start_us_) / 1e6;
    int64_t expect_dead = st_.published_fails;
    accounted = st_.acked + final_dead_ == published && final_dead_ == expect_dead &&
                st_.nacked == expect_dead * max_deliveries_;
    verdict = "acked " + std::to_string(st_.acked) + " + dead-lettered " +
              std::to_string(final_dead_) + " = " + std::to_string(st_.acked + final_dead_) +
              ", published " + std::to_string(published) + " (expected " +
              std::to_string(expect_dead) + " dead letters after " +
              std::to_string(expect_dead * max_deliveries_) + " nacks, saw " +
              std::to_string(st_.nacked.load()) + " nacks)";
  } else {
    seconds = (st_.last_settle_us - start_us_) / 1e6;
    accounted = st_.acked == published;
    verdict = "acked " + std::to_string(st_.acked) + ", published " + std::to_string(published);
  }
  if (st_.errors > 0) accounted = false;
  Report(seconds, accounted, verdict);
  return accounted ? 0 : 1;
}

void Run::Report(double seconds, bool accounted, const std::string& verdict) {
  std::vector<uint32_t> lat;
  {
    std::lock_guard<std::mutex> l(st_.mu);
    lat = std::move(st_.latencies_us);
  }
  std::sort(lat.begin(), lat.end());
  int64_t published = st_.published;
  int64_t messages = o_.scenario == "end-to-end" || o_.scenario == "latency"
                         ? st_.acked.load()
                         : published;  // publish: stored; dead-letter: settled either way
  double rate = seconds > 0 ? static_cast<double>(messages) / seconds : 0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6;
  bool has_latency = !lat.empty();
  double achieved_publish_rate =
      seconds > 0 ? static_cast<double>(published) / ((st_.last_publish_us - start_us_) / 1e6) : 0;
  const std::string describe = driver_.Describe();

  if (o_.json_output) {
    json j = {{"system", o_.driver.system},
              {"describe", describe},
              {"scenario", o_.scenario},
              {"messages", messages},
              {"seconds", std::round(seconds * 1000) / 1000},
              {"messagesPerSecond", std::round(rate)},
              {"published", published},
              {"acked", st_.acked.load()},
              {"nacked", st_.nacked.load()},
              {"deadLettered", final_dead_},
              {"received", st_.received.load()},
              {"redelivered", st_.redelivered.load()},
              {"ackLost", st_.ack_lost.load()},
              {"publishRequests", st_.publish_requests.load()},
              {"receiveRequests", st_.receive_requests.load()},
              {"emptyReceives", st_.empty_receives.load()},
              {"errors", st_.errors.load()},
              {"producers", o_.producers},
              {"consumers", HasConsumers() ? o_.consumers : 0},
              {"batch", o_.batch},
              {"receiveBatch", receive_batch_},
              {"bodySize", o_.driver.body_size},
              {"maxBacklog", o_.max_backlog},
              {"loadgenCpuSeconds", std::round(cpu * 100) / 100},
              {"accounted", accounted},
              {"verdict", verdict}};
    if (o_.scenario == "dead-letter") {
      j["failShare"] = o_.fail_share;
      j["maxDeliveries"] = max_deliveries_;
    }
    if (o_.scenario == "latency") {
      j["targetRate"] = o_.rate;
      j["publishRate"] = std::round(achieved_publish_rate);
      j["maxBehindMs"] = st_.behind_us / 1000.0;
    }
    if (has_latency) {
      j["p50Ms"] = Percentile(lat, 0.50);
      j["p90Ms"] = Percentile(lat, 0.90);
      j["p99Ms"] = Percentile(lat, 0.99);
      j["p999Ms"] = Percentile(lat, 0.999);
      j["maxMs"] = lat.back() / 1000.0;
    }
    if (!st_.first_error.empty()) j["firstError"] = st_.first_error;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("system              %s (%s)\n", o_.driver.system.c_str(), describe.c_str());
    std::printf("scenario            %s\n", o_.scenario.c_str());
    std::printf("messages            %lld\n", static_cast<long long>(messages));
    std::printf("seconds             %.3f\n", seconds);
    std::printf("messages/second     %.0f\n", rate);
    if (has_latency) {
      std::printf("latency ms          p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
                  Percentile(lat, 0.50), Percentile(lat, 0.90), Percentile(lat, 0.99),
                  Percentile(lat, 0.999), lat.back() / 1000.0);
    }
    if (o_.scenario == "latency") {
      std::printf(
          "publish rate        %.0f msg/s (target %.0f), worst lag behind schedule %.1f ms\n",
          achieved_publish_rate, o_.rate, st_.behind_us / 1000.0);
    }
    std::printf(
        "parameters          producers %d, consumers %d, batch %d, receive batch %d, "
        "body %d bytes\n",
        o_.producers, HasConsumers() ? o_.consumers : 0, o_.batch, receive_batch_,
        o_.driver.body_size);
    std::printf(
        "requests            publish %lld, receive %lld (empty %lld), redelivered %lld, "
        "errors %lld\n",
        static_cast<long long>(st_.publish_requests.load()),
        static_cast<long long>(st_.receive_requests.load()),
        static_cast<long long>(st_.empty_receives.load()),
        static_cast<long long>(st_.redelivered.load()), static_cast<long long>(st_.errors.load()));
    std::printf("loadgen cpu         %.2f s\n", cpu);
    std::printf("accounted           %s: %s\n", accounted ? "yes" : "NO", verdict.c_str());
    if (!st_.first_error.empty()) std::printf("first error         %s\n", st_.first_error.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bench::DriverOptions& d = o.driver;
  CLI::App app{
      "redrive_loadgen: a load generator for redrive and its peers (127.0.0.1 only); see "
      "docs/benchmarks.md"};
  app.add_option("--system", d.system,
                 "redrive | rabbitmq-classic | rabbitmq-quorum | postgres-queue")
      ->check(CLI::IsMember({"redrive", "rabbitmq-classic", "rabbitmq-quorum", "postgres-queue"}))
      ->capture_default_str();
  app.add_option("--url", d.url,
                 "redrive: server base URL (127.0.0.1 or localhost only); a comma-separated "
                 "list spreads the connections over several nodes, round-robin by thread")
      ->capture_default_str();
  auto* token = app.add_option("--token", d.token, "redrive: bearer token");
  app.add_option("--token-file", o.token_file, "redrive: read the bearer token from this file")
      ->excludes(token);
  app.add_option("--tenant", d.tenant, "redrive: tenant")->capture_default_str();
  app.add_option("--amqp-port", d.amqp_port, "RabbitMQ: AMQP port on 127.0.0.1")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--pg-conninfo", d.pg_conninfo,
                 "postgres-queue: libpq connection string (host 127.0.0.1, localhost or a "
                 "socket directory)")
      ->capture_default_str();
  app.add_option("--queue", o.queue, "Queue")->capture_default_str();
  app.add_option("--producers", o.producers, "Producer threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--consumers", o.consumers, "Consumer threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "Messages per publish (and maxMessages per receive)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--receive-batch", o.receive_batch, "maxMessages per receive (default --batch)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--body-size", d.body_size, "Body bytes per message")
      ->check(CLI::Range(1, 256 * 1024))
      ->capture_default_str();
  auto* messages = app.add_option("--messages", o.messages, "Messages to publish in total")
                       ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  app.add_option("--seconds", o.seconds, "Publish for this long instead of --messages")
      ->check(CLI::Range(0.1, 3600.0))
      ->excludes(messages);
  app.add_option("--scenario", o.scenario, "publish | end-to-end | dead-letter | latency")
      ->check(CLI::IsMember({"publish", "end-to-end", "dead-letter", "latency"}))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "Latency scenario: messages/second to publish")
      ->check(CLI::Range(1.0, 10'000'000.0))
      ->capture_default_str();
  app.add_option("--fail-share", o.fail_share,
                 "Dead-letter scenario: share of messages nacked on every delivery")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--max-deliveries", o.max_deliveries,
                 "Dead-letter scenario: deliveries before a failing message is dead-lettered")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--timeout", o.timeout,
                 "Give up after this many seconds (default: --seconds + 120, or 600)")
      ->check(CLI::Range(1.0, 7200.0));
  app.add_option("--max-backlog", o.max_backlog,
                 "Producers pause while this many published messages are unsettled (0: no limit)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}));
  app.add_flag("--create", d.create,
               "redrive: create the tenant and queue when missing (needs an operator token)");
  app.add_flag("--keep-queue", o.keep_queue,
               "Peers: use the queue as it is instead of deleting and recreating it (redrive "
               "always does)");
  app.add_flag("--json", o.json_output, "Print one JSON object instead of text");
  CLI11_PARSE(app, argc, argv);

  if (!o.token_file.empty()) {
    std::ifstream f(o.token_file);
    if (!f) {
      std::fprintf(stderr, "redrive_loadgen: cannot read --token-file %s\n", o.token_file.c_str());
      return 2;
    }
    std::getline(f, d.token);
  }
  if (o.messages == 0 && o.seconds == 0) o.messages = 100'000;

  std::string error;
  std::unique_ptr<bench::Driver> driver = bench::MakeDriver(d, &error);
  if (driver == nullptr) {
    std::fprintf(stderr, "redrive_loadgen: %s\n", error.c_str());
    return 2;
  }
  Run run(o, *driver);
  return run.Execute();
}
