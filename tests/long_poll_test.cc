// The real binary's event loop: long polls that hold no thread, a publish that wakes exactly one
// of many waiting receives, a shutdown that answers every one of them, and an IPv6 listener.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

int ThreadsOf(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

int64_t ParkedReceives(HttpClient& op) {
  std::string m = op.Get("/metrics").body;
  auto at = m.find("\nredrive_long_polls_waiting ");
  return at == std::string::npos ? -1 : std::atoll(m.c_str() + at + 28);
}

TEST(LongPollTest, WaitingReceivesHoldNoThreadAndAPublishWakesExactlyOne) {
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  HttpClient op(server.url(), server.operator_token());
  CreateTenant(op, "acme");
  CreateQueue(op, "acme", "orders");
  std::string token = CreateToken(op, "acme", "worker");
  int idle_threads = ThreadsOf(server.pid());
  ASSERT_GT(idle_threads, 0);

  constexpr int kWaiters = 200;
  std::atomic<int> answered{0}, with_message{0}, failed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kWaiters; ++i) {
    clients.emplace_back([&] {
      HttpClient c(server.url(), token);
      auto r = c.Post("/v1/tenants/acme/queues/orders/receive", {{"wait", "20s"}});
      if (r.status != 200) ++failed;
      if (r.status == 200 && !r.Json()["messages"].empty()) ++with_message;
      ++answered;
    });
  }
  ASSERT_TRUE(Eventually([&] { return ParkedReceives(op) == kWaiters; }))
      << "parked: " << ParkedReceives(op);
  // Two hundred waiting connections, and no more threads than with none.
  EXPECT_LE(ThreadsOf(server.pid()), idle_threads + 2);

  HttpClient producer(server.url(), token);
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(
      producer
          .Post("/v1/tenants/acme/queues/orders/messages", {{"messages", {{{"body", "wake one"}}}}})
          .status,
      201);
  ASSERT_TRUE(Eventually([&] { return with_message == 1; }));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // Exactly one woke: the others still wait.
  EXPECT_TRUE(Eventually([&] { return ParkedReceives(op) == kWaiters - 1; }));
  EXPECT_EQ(answered, 1);

  // A shutdown answers every waiting receive (empty) and exits cleanly.
  EXPECT_EQ(server.Stop(), 0);
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered, kWaiters);
  EXPECT_EQ(with_message, 1);
  EXPECT_EQ(failed, 0);
}

TEST(LongPollTest, ServesOnIpv6Loopback) {
  ServerProcess server;
  server.set_listen_host("::1");
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  EXPECT_NE(server.url().find("http://[::1]:"), std::string::npos);
  HttpClient op(server.url(), server.operator_token());
  CreateTenant(op, "acme");
  CreateQueue(op, "acme", "orders");
  auto r = op.Post("/v1/tenants/acme/queues/orders/messages", {{"messages", {{{"body", "x"}}}}});
  EXPECT_EQ(r.status, 201);
  EXPECT_NE(server.log().find("listening on http://[::1]:"), std::string::npos) << server.log();
  EXPECT_EQ(server.Stop(), 0);
}

TEST(LongPollTest, AHostNameListenIsRefused) {
  ServerProcess server;
  server.set_listen_host("localhost");
  std::string error;
  EXPECT_FALSE(server.Start(&error));
  EXPECT_EQ(server.start_exit_code(), 1);
  EXPECT_NE(error.find("is not an IPv4 or IPv6 address"), std::string::npos) << error;
}

}  // namespace
}  // namespace redrive::testing
