// redrive_long_poll_bench: many simultaneous long-poll receives against one running server, and
// how long a publish takes to wake one of them (docs/benchmarks.md says how to run it).
//
// Opens --waiters keep-alive connections to 127.0.0.1, each sending a receive with `wait` and
// maxMessages 1, waits until the server's /metrics says that many are parked, reads the server's
// threads and RSS from /proc, then publishes --wakes single messages one at a time and times each
// from the publish request to the first byte of the receive answer that carries it. A connection
// whose receive ended re-sends it, so the number parked stays near --waiters.
//
// Loopback only: the host is fixed to 127.0.0.1 and the run is bounded by --wakes and --seconds.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int port = 8080;
  std::string token;
  std::string operator_token;
  std::string tenant = "bench";
  std::string queue = "long-poll";
  int waiters = 10'000;
  std::string wait = "20s";
  int wakes = 200;
  int seconds = 120;
  int server_pid = 0;
};

std::string Request(const Options& o, const std::string& method, const std::string& path,
                    const std::string& body) {
  const std::string& token = path == "/metrics" ? o.operator_token : o.token;
  return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// One blocking request on its own connection: the answer's body.
std::string Call(const Options& o, const std::string& method, const std::string& path,
                 const std::string& body) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(o.port)));
  std::string req = Request(o, method, path, body);
  req.insert(req.find("\r\n\r\n"), "\r\nConnection: close");
  asio::write(s, asio::buffer(req));
  std::string out;
  boost::system::error_code ec;
  char buf[65536];
  for (;;) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  auto at = out.find("\r\n\r\n");
  return at == std::string::npos ? "" : out.substr(at + 4);
}

int64_t Parked(const Options& o) {
  std::string m = Call(o, "GET", "/metrics", "");
  auto at = m.find("\nredrive_long_polls_waiting ");
  if (at == std::string::npos) return -1;
  return std::atoll(m.c_str() + at + 28);
}

struct Waiter : std::enable_shared_from_this<Waiter> {
  Waiter(asio::io_context& ioc, const Options& o, std::string req)
      : socket(ioc), options(o), request(std::move(req)) {}
  tcp::socket socket;
  const Options& options;
  std::string request;
  std::string in;
  char buf[16384];
  std::function<void(bool got_message)> on_answer;

  void Send() {
    in.clear();
    asio::async_write(socket, asio::buffer(request),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        if (!ec) self->Read();
                      });
  }
  void Read() {
    socket.async_read_some(asio::buffer(buf),
                           [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                             if (ec) return;
                             self->in.append(self->buf, n);
                             auto head = self->in.find("\r\n\r\n");
                             if (head == std::string::npos) return self->Read();
                             auto cl = self->in.find("Content-Length: ");
                             size_t len = std::strtoul(self->in.c_str() + cl + 16, nullptr, 10);
                             if (self->in.size() < head + 4 + len) return self->Read();
                             bool got = self->in.find("\"receipt\"") != std::string::npos;
                             if (self->on_answer) self->on_answer(got);
                             self->Send();  // park again
                           });
  }
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app("redrive_long_poll_bench: many long polls, and how fast a publish wakes one");
  app.add_option("--port", o.port, "Server port on 127.0.0.1")->required();
  app.add_option("--token", o.token, "Tenant token (consume and publish)")->required();
  app.add_option("--operator-token", o.operator_token, "Operator token (reads /metrics)")
      ->required();
  app.add_option("--tenant", o.tenant)->capture_default_str();
  app.add_option("--queue", o.queue)->capture_default_str();
  app.add_option("--waiters", o.waiters)->check(CLI::Range(1, 50'000))->capture_default_str();
  app.add_option("--wait", o.wait, "each receive's wait")->capture_default_str();
  app.add_option("--wakes", o.wakes)->check(CLI::Range(1, 10'000))->capture_default_str();
  app.add_option("--seconds", o.seconds, "give up after")->capture_default_str();
  app.add_option("--server-pid", o.server_pid, "read threads and RSS of this process");
  CLI11_PARSE(app, argc, argv);

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  const std::string base = "/v1/tenants/" + o.tenant + "/queues/" + o.queue;
  const std::string receive =
      Request(o, "POST", base + "/receive", R"({"maxMessages":1,"wait":")" + o.wait + "\"}");
  auto deadline = Clock::now() + std::chrono::seconds(o.seconds);

  asio::io_context ioc;
  std::vector<std::shared_ptr<Waiter>> waiters;
  Clock::time_point published_at{};
  bool awaiting = false;
  int woken = 0;
  std::vector<double> latencies_ms;
  std::vector<double> publish_ms;  // until the publish itself was answered (stored durably)
  auto answered = [&](bool got) {
    if (!got || !awaiting) return;
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - published_at).count());
    awaiting = false;
    ++woken;
  };
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(o.port));
  for (int i = 0; i < o.waiters; ++i) {
    auto w = std::make_shared<Waiter>(ioc, o, receive);
    boost::system::error_code ec;
    w->socket.connect(ep, ec);
    if (ec) {
      std::fprintf(stderr, "connection %d: %s\n", i, ec.message().c_str());
      return 1;
    }
    w->on_answer = answered;
    w->Send();
    waiters.push_back(w);
    if (i % 500 == 0) ioc.poll();
  }
  std::thread loop([&] {
    auto guard = asio::make_work_guard(ioc);
    ioc.run();
  });

  int64_t parked = 0;
  while (Clock::now() < deadline) {
    parked = Parked(o);
    if (parked >= o.waiters) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("parked %lld of %d receives\n", static_cast<long long>(parked), o.waiters);
  if (o.server_pid > 0) {
    std::string proc = "/proc/" + std::to_string(o.server_pid);
    int threads = 0;
    std::ifstream status(proc + "/status");
    std::string line;
    long rss_kb = 0;
    while (std::getline(status, line)) {
      if (line.rfind("Threads:", 0) == 0) threads = std::atoi(line.c_str() + 8);
      if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::atol(line.c_str() + 6);
    }
    std::printf("server threads %d, rss %.1f MiB\n", threads, static_cast<double>(rss_kb) / 1024);
  }

  const std::string publish = R"({"messages":[{"body":"wake"}]})";
  for (int i = 0; i < o.wakes && Clock::now() < deadline; ++i) {
    asio::post(ioc, [&] {
      awaiting = true;
      published_at = Clock::now();
    });
    // The flag is set on the loop's thread before the publish leaves.
    std::promise<void> set;
    asio::post(ioc, [&] { set.set_value(); });
    set.get_future().wait();
    auto sent = Clock::now();
    Call(o, "POST", base + "/messages", publish);
    publish_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
    auto until = Clock::now() + std::chrono::seconds(5);
    for (;;) {
      std::promise<bool> done;
      asio::post(ioc, [&] { done.set_value(!awaiting); });
      if (done.get_future().get() || Clock::now() > until) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ioc.stop();
  loop.join();
  std::printf("woke %d of %d: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", woken, o.wakes,
              Percentile(latencies_ms, 0.50), Percentile(latencies_ms, 0.99),
              Percentile(latencies_ms, 1.0));
  // The wake includes the publish's own durable commit: its answer is the floor under it.
  std::printf("publish answered (durable): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              Percentile(publish_ms, 0.50), Percentile(publish_ms, 0.99),
              Percentile(publish_ms, 1.0));
  return woken == o.wakes ? 0 : 1;
}
