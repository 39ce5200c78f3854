// redrive_probe: how long until a system that is (re)starting hands out a message. Used by
// bench/compare.sh for restart-1m: started right after the system's start command, it retries
// (connect, prepare, receive one message) until a receive returns a message or --timeout
// passes, then prints the seconds since it started and the queue's depth. The message it
// receives is left unsettled: the system takes it back when the probe's connection closes (or
// its lease ends).
//
// With --listen-port, an attempt is made only once something listens on that port of this
// machine: connecting to a port nobody listens on yet can make the kernel pick that very port as
// the connection's own (a TCP self-connect, possible because the peers' ports lie in the
// ephemeral range), and the system then fails to bind it.
//
// Also `--depth-only`: prints the depth at once (compare.sh checks counts with it).
//
// Works through the load generator's drivers (bench/driver.h), with the same flags.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "driver.h"

namespace {

using Steady = std::chrono::steady_clock;

double Since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

// Whether a socket of this machine is in state LISTEN on `port` (/proc/net/tcp and tcp6).
bool Listening(int port) {
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // "  0: 0100007F:1F90 00000000:0000 0A ...": local address:port (hex), remote, state.
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      size_t colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  bench::DriverOptions o;
  std::string token_file;
  std::string queue = "bench";
  int max_deliveries = 0;
  double timeout = 300;
  bool depth_only = false;
  int listen_port = 0;
  CLI::App app{"redrive_probe: time until a (re)starting system hands out a message"};
  app.add_option("--system", o.system, "redrive, rabbitmq-classic, rabbitmq-quorum, postgres-queue")
      ->capture_default_str();
  app.add_option("--url", o.url, "redrive: base URL (127.0.0.1 only)")->capture_default_str();
  app.add_option("--token-file", token_file, "redrive: file holding the bearer token");
  app.add_option("--tenant", o.tenant, "redrive: tenant")->capture_default_str();
  app.add_option("--amqp-port", o.amqp_port, "RabbitMQ: AMQP port on 127.0.0.1");
  app.add_option("--pg-conninfo", o.pg_conninfo, "PostgreSQL: libpq connection string");
  app.add_option("--queue", queue, "The queue (must exist)")->capture_default_str();
  app.add_option("--max-deliveries", max_deliveries,
                 "The queue's delivery limit, as it was created (RabbitMQ quorum queues are "
                 "declared with it)")
      ->capture_default_str();
  app.add_option("--timeout", timeout, "Give up after this many seconds")->capture_default_str();
  app.add_option("--listen-port", listen_port,
                 "Try only once something listens on this port (avoids a TCP self-connect)");
  app.add_flag("--depth-only", depth_only, "Print the depth, receive nothing");
  CLI11_PARSE(app, argc, argv);

  const auto start = Steady::now();
  std::string last_error = "no attempt";
  bool got = false;
  bench::Depth depth;
  while (Since(start) < timeout) {
    if (listen_port > 0 && !Listening(listen_port)) {
      last_error = "nothing listens on port " + std::to_string(listen_port) + " yet";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (!token_file.empty()) {
      // Read each time: a redrive server writes it when it first starts.
      std::ifstream in(token_file);
      std::stringstream ss;
      ss << in.rdbuf();
      o.token = ss.str();
      while (!o.token.empty() && (o.token.back() == '\n' || o.token.back() == ' ')) {
        o.token.pop_back();
      }
    }
    std::string error;
    auto driver = bench::MakeDriver(o, &error);
    if (driver == nullptr) {
      std::fprintf(stderr, "redrive_probe: %s\n", error.c_str());
      return 2;
    }
    bench::QueueSpec spec;
    spec.name = queue;
    spec.max_deliveries = max_deliveries;
    spec.fresh = false;
    std::unique_ptr<bench::Session> session;
    std::vector<bench::Delivery> deliveries;
    if (!driver->Prepare(spec)) {
      last_error = "prepare: " + driver->error();
    } else if (depth_only) {
      if (!driver->GetDepth(&depth)) {
        std::fprintf(stderr, "redrive_probe: depth: %s\n", driver->error().c_str());
        return 1;
      }
      got = true;
    } else if ((session = driver->Connect()) == nullptr) {
      last_error = "connect: " + driver->error();
    } else if (!session->Receive(1, 1000, &deliveries)) {
      last_error = "receive: " + session->error();
    } else if (deliveries.empty()) {
      last_error = "receive: the queue handed out nothing";
    } else {
      got = true;
      if (!driver->GetDepth(&depth)) depth = bench::Depth{-1, -1, -1};
    }
    if (got) {
      std::printf(
          "{\"system\":\"%s\",\"queue\":\"%s\",\"seconds\":%.3f,\"ready\":%lld,"
          "\"inFlight\":%lld,\"deadLettered\":%lld}\n",
          o.system.c_str(), queue.c_str(), Since(start), static_cast<long long>(depth.ready),
          static_cast<long long>(depth.in_flight), static_cast<long long>(depth.dead_lettered));
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "redrive_probe: no message from %s/%s within %.0f s; last error: %s\n",
               o.system.c_str(), queue.c_str(), timeout, last_error.c_str());
  return 1;
}
