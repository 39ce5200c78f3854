// redrive_push_bench: push delivery figures (issue 13), in process, on a real SQLite store (with
// fsync) in a fresh temporary directory, to webhook receivers on 127.0.0.1 (the tests'
// TestEndpoint: one thread per connection). Four phases, each bounded by --seconds:
//
//   raw        the HTTP client alone (push::DeliveryClient, the one redrive uses), --in-flight
//              requests kept going to one receiver, each signed as redrive signs: requests/s
//   push       redrive delivering a backlog to the same receiver through a push subscription
//              with maxInFlight --in-flight: deliveries/s, and its ratio to raw
//   latency    publishes at --rate messages/s (batches every 10 ms) for --seconds: publish to
//              receipt at the receiver, p50/p99/max
//   isolation  --endpoints subscriptions of one topic, each to its own receiver, at
//              --isolation-rate deliveries/s over all but the first; then the same with the
//              first receiver black-holed (it reads requests and never answers): the others'
//              delivery rate and p99 in both runs, and their ratios
//
// Loopback only, bounded in time and count. docs/benchmarks.md says how to read the figures.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/engine.h"
#include "push/delivery_client.h"
#include "push/signature.h"
#include "push/test_endpoint.h"
#include "store/store.h"

namespace {

using namespace redrive;
using SteadyClock = std::chrono::steady_clock;
using push::testing::TestEndpoint;

struct Options {
  int seconds = 5;
  int in_flight = 16;
  int body = 1024;
  int rate = 5000;
  int endpoints = 10;
  int isolation_rate = 2000;  // deliveries/s over all healthy endpoints
  int isolation_passes = 3;   // of each configuration, alternating
};

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return static_cast<double>(v[i]) / 1000.0;  // ms
}

std::string Body(int size, int64_t stamp) {
  std::string head = "{\"t\":" + std::to_string(stamp) + ",\"pad\":\"";
  std::string out = head + std::string(std::max(0, size - static_cast<int>(head.size()) - 2), 'x');
  return out + "\"}";
}

int64_t StampOf(const std::string& body) { return std::strtoll(body.c_str() + 5, nullptr, 10); }

// The raw client: --in-flight requests always going, for --seconds.
double RawRate(const Options& o, TestEndpoint& endpoint) {
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  push::DeliveryClient client(io);
  std::thread runner([&] { io.run(); });
  SystemRandom random;
  std::string secret = push::NewSecret(random);
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::function<void()> send_one = [&] {
    push::DeliveryRequest r;
    r.url = endpoint.url("/raw");
    r.body = Body(o.body, NowUs());
    int64_t ts = NowUs() / 1'000'000;
    r.headers = {{"content-type", "application/json"},
                 {"webhook-id", "raw"},
                 {"webhook-timestamp", std::to_string(ts)},
                 {"webhook-signature", push::Sign("raw", ts, r.body, {secret}).value()}};
    client.Send(std::move(r), [&](push::DeliveryResult) {
      ++done;
      if (!stop) send_one();
    });
  };
  auto start = SteadyClock::now();
  for (int i = 0; i < o.in_flight; ++i) send_one();
  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  stop = true;
  double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
  int64_t n = done.load();
  client.Shutdown();
  guard.reset();
  io.stop();
  runner.join();
  return static_cast<double>(n) / secs;
}

struct Bench {
  explicit Bench(const Options& o) : options(o) {
    dir =
        std::filesystem::temp_directory_path() / ("redrive-push-bench-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = store::OpenStore((dir / "db").string()).value();
    engine = std::make_unique<engine::Engine>(*store, clock, random);
    (void)engine->tenancy().CreateTenant("bench");
    engine->Start();
  }
  ~Bench() {
    engine->Stop();
    engine.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  void Topic(const std::string& name) {
    (void)engine->topics().CreateTopic(engine::Tenancy::System(), "bench", name, {});
  }
  void Subscribe(const std::string& topic, const std::string& name, const std::string& url,
                 bool disabled) {
    engine::QueueConfig c;
    nlohmann::json attrs = {{"push", {{"url", url}, {"maxInFlight", options.in_flight}}}};
    (void)engine::ApplyQueueConfigJson(attrs, &c);
    auto s =
        engine->topics().CreateSubscription(engine::Tenancy::System(), "bench", topic, name, c);
    if (!s.ok()) std::fprintf(stderr, "subscription: %s\n", s.status().ToString().c_str());
    if (disabled) {
      (void)engine->topics().SetEndpointDisabled(engine::Tenancy::System(), "bench", topic, name,
                                                 true, "bench");
    }
  }
  void Publish(const std::string& topic, int n) {
    std::vector<engine::NewMessage> batch(n);
    for (auto& m : batch) m.body = Body(options.body, NowUs());
    auto r = engine->messages().PublishTopic("bench", topic, std::move(batch));
    if (!r.ok()) std::fprintf(stderr, "publish: %s\n", r.status().ToString().c_str());
  }
  // Publishes at options.rate for options.seconds, in batches every 10 ms.
  void PublishAtRate(const std::string& topic) {
    int per_tick = std::max(1, options.rate / 100);
    auto start = SteadyClock::now();
    for (int tick = 0; tick < options.seconds * 100; ++tick) {
      Publish(topic, per_tick);
      std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * (tick + 1)));
    }
  }

  Options options;
  std::filesystem::path dir;
  SystemClock clock;
  SystemRandom random;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<engine::Engine> engine;
};

bool WaitRequests(TestEndpoint& e, int n, int seconds) {
  auto deadline = SteadyClock::now() + std::chrono::seconds(seconds);
  while (e.requests() < n && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return e.requests() >= n;
}

std::vector<int64_t> Latencies(const TestEndpoint& e) {
  std::vector<int64_t> out;
  for (const auto& r : e.received()) out.push_back(r.received_us - StampOf(r.body));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app("redrive push delivery benchmark (loopback only)");
  app.add_option("--seconds", o.seconds, "Length of each phase")->check(CLI::Range(1, 60));
  app.add_option("--in-flight", o.in_flight, "Requests in flight per endpoint")
      ->check(CLI::Range(1, 256));
  app.add_option("--body", o.body, "Body bytes")->check(CLI::Range(64, 65536));
  app.add_option("--rate", o.rate, "Messages per second in the latency and isolation phases")
      ->check(CLI::Range(100, 50000));
  app.add_option("--endpoints", o.endpoints, "Endpoints in the isolation phase")
      ->check(CLI::Range(2, 50));
  app.add_option("--isolation-rate", o.isolation_rate,
                 "Deliveries per second over the healthy endpoints in the isolation phase")
      ->check(CLI::Range(100, 50000));
  app.add_option("--isolation-passes", o.isolation_passes,
                 "Runs of each isolation configuration, alternating; their samples are pooled")
      ->check(CLI::Range(1, 20));
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  // 1. raw
  TestEndpoint raw_endpoint;
  if (!raw_endpoint.Start()) return 1;
  double raw = RawRate(o, raw_endpoint);
  raw_endpoint.Stop();
  std::printf("raw client:   %.0f requests/s (%d in flight, %d-byte signed bodies)\n", raw,
              o.in_flight, o.body);

  // 2. push throughput: a backlog, then the endpoint enabled.
  {
    Bench b(o);
    TestEndpoint endpoint;
    if (!endpoint.Start()) return 1;
    b.Topic("t");
    b.Subscribe("t", "s", endpoint.url("/push"), true);
    int backlog = std::max(1000, static_cast<int>(raw * o.seconds));
    for (int done = 0; done < backlog; done += 500) b.Publish("t", std::min(500, backlog - done));
    auto start = SteadyClock::now();
    (void)b.engine->topics().SetEndpointDisabled(engine::Tenancy::System(), "bench", "t", "s",
                                                 false, "");
    bool all = WaitRequests(endpoint, backlog, o.seconds * 6);
    double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
    double rate = endpoint.requests() / secs;
    std::printf(
        "redrive push: %.0f deliveries/s (%d of %d delivered%s, over %d connections), ratio to "
        "raw %.2f\n",
        rate, endpoint.requests(), backlog, all ? "" : ", timed out", endpoint.connections(),
        rate / raw);
    endpoint.Stop();
  }

  // 3. latency at --rate
  {
    Bench b(o);
    TestEndpoint endpoint;
    if (!endpoint.Start()) return 1;
    b.Topic("t");
    b.Subscribe("t", "s", endpoint.url("/latency"), false);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    b.PublishAtRate("t");
    int expected = std::max(1, o.rate / 100) * o.seconds * 100;
    WaitRequests(endpoint, expected, 30);
    auto lat = Latencies(endpoint);
    std::printf(
        "latency at %d msg/s: publish to receipt p50 %.1f ms, p99 %.1f ms, max %.1f ms "
        "(%zu of %d delivered)\n",
        o.rate, Percentile(lat, 0.5), Percentile(lat, 0.99), Percentile(lat, 1.0), lat.size(),
        expected);
    endpoint.Stop();
  }

  // 4. isolation: all healthy, then the first black-holed, alternating --isolation-passes
  // times; each configuration's samples are pooled (a single 5 s p99 of ~10 ms moves by a third
  // from run to run on its own).
  std::vector<int64_t> lat_of[2];
  int64_t delivered_of[2] = {0, 0};
  double secs_of[2] = {0, 0};
  for (int pass = 0; pass < 2 * o.isolation_passes; ++pass) {
    int run = (std::getenv("REDRIVE_BENCH_BLACK_HOLE_FIRST") ? 1 : 0) ^ (pass % 2);
    Bench b(o);
    std::vector<std::unique_ptr<TestEndpoint>> eps;
    b.Topic("t");
    for (int i = 0; i < o.endpoints; ++i) {
      eps.push_back(std::make_unique<TestEndpoint>());
      if (!eps.back()->Start()) return 1;
      // The baseline has the same subscriptions (the same fan-out work) with every endpoint
      // healthy; the others are measured in both.
      if (i == 0 && run == 1) eps.back()->Hang();
      b.Subscribe("t", "e" + std::to_string(i), eps.back()->url("/iso"), false);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Options per = o;
    // Each message fans out to every endpoint: publish so that the measured ones get
    // --isolation-rate deliveries per second in all.
    per.rate = std::max(100, o.isolation_rate / (o.endpoints - 1));
    b.options = per;
    auto start = SteadyClock::now();
    b.PublishAtRate("t");
    int expected = std::max(1, per.rate / 100) * per.seconds * 100;
    for (int i = 1; i < o.endpoints; ++i) {
      WaitRequests(*eps[i], expected, 30);
      auto l = Latencies(*eps[i]);
      lat_of[run].insert(lat_of[run].end(), l.begin(), l.end());
      delivered_of[run] += static_cast<int64_t>(l.size());
    }
    secs_of[run] += std::chrono::duration<double>(SteadyClock::now() - start).count();
    if (run == 1 && eps[0]->requests() == 0) std::printf("the black hole got no request\n");
    for (auto& e : eps) e->Stop();
  }
  double rate_of[2], p99_of[2];
  for (int run = 0; run < 2; ++run) {
    rate_of[run] = static_cast<double>(delivered_of[run]) / secs_of[run];
    p99_of[run] = Percentile(lat_of[run], 0.99);
    std::printf(
        "isolation (%s, %d passes): %d measured endpoints, %.0f deliveries/s, p50 %.1f ms, p99 "
        "%.1f ms\n",
        run == 0 ? "all healthy" : "first black-holed", o.isolation_passes, o.endpoints - 1,
        rate_of[run], Percentile(lat_of[run], 0.5), p99_of[run]);
  }
  std::printf("isolation ratios (black hole / healthy): rate %.2f, p99 %.2f\n",
              rate_of[1] / rate_of[0], p99_of[1] / p99_of[0]);
  return 0;
}
