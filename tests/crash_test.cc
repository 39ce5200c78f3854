// Kills the server with SIGKILL in the middle of a publish/receive/ack load, restarts it on the
// same data, and checks the durability guarantees: every publish that got a 2xx is still there
// or was acked, and no message whose ack got a 2xx is delivered again.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

TEST(CrashTest, AcknowledgedWorkSurvivesSigkill) {
  std::string dir = MakeTempDir();
  std::string token;
  std::mutex mu;
  std::set<std::string> published;  // publish answered 2xx
  std::set<std::string> acked;      // ack answered ok for this id
  std::set<std::string> in_doubt;   // ack sent, but the crash cut off its answer
  const std::string q = "/v1/tenants/acme/queues/work";

  for (int round = 0; round < 3; ++round) {
    ServerProcess server(dir);
    std::string error;
    ASSERT_TRUE(server.Start(&error)) << error;
    HttpClient op(server.url(), server.operator_token());
    if (round == 0) {
      CreateTenant(op, "acme");
      CreateQueue(op, "acme", "work", {{"visibilityTimeout", "1s"}});
      token = CreateToken(op, "acme", "load");
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int p = 0; p < 3; ++p) {
      threads.emplace_back([&, p] {
        HttpClient c(server.url(), token);
        int n = 0;
        while (!stop) {
          json batch = json::array();
          for (int i = 0; i < 20; ++i) {
            batch.push_back({{"body", "r" + std::to_string(round) + "p" + std::to_string(p) + "n" +
                                          std::to_string(n++)}});
          }
          auto r = c.Post(q + "/messages", {{"messages", batch}});
          if (r.status != 201) continue;  // the crash cut it off: no promise was made
          json answer = r.Json();
          std::lock_guard<std::mutex> l(mu);
          for (const auto& m : answer["messages"]) published.insert(m["id"]);
        }
      });
    }
    for (int k = 0; k < 2; ++k) {
      threads.emplace_back([&] {
        HttpClient c(server.url(), token);
        while (!stop) {
          auto r = c.Post(q + "/receive", {{"maxMessages", 25}, {"wait", "200ms"}});
          if (r.status != 200) continue;
          json receipts = json::array();
          std::vector<std::string> ids;
          json answer = r.Json();
          for (const auto& m : answer["messages"]) {
            receipts.push_back(m["receipt"]);
            ids.push_back(m["id"]);
          }
          if (ids.empty()) continue;
          {
            std::lock_guard<std::mutex> l(mu);
            for (const auto& id : ids) {
              ASSERT_EQ(acked.count(id), 0u) << "acked message " << id << " came back";
            }
          }
          auto a = c.Post(q + "/ack", {{"receipts", receipts}});
          if (a.status != 200) {
            // It may have committed before the crash: the client cannot know.
            std::lock_guard<std::mutex> l(mu);
            in_doubt.insert(ids.begin(), ids.end());
            continue;
          }
          std::lock_guard<std::mutex> l(mu);
          json results = a.Json()["results"];
          for (size_t i = 0; i < ids.size(); ++i) {
            if (results[i]["status"] == "ok") acked.insert(ids[i]);
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1200 + 300 * round));
    server.Kill();
    stop = true;
    for (auto& t : threads) t.join();
  }

  // Restart and drain: what is left plus what was acked must cover every promised publish.
  ServerProcess server(dir);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  HttpClient c(server.url(), token);
  std::set<std::string> remaining;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int empty_polls = 0;
  while (empty_polls < 3 && std::chrono::steady_clock::now() < deadline) {
    // Leases cut by the crash end after their 1s visibility timeout.
    auto r = c.Post(q + "/receive", {{"maxMessages", 1000}, {"wait", "1500ms"}});
    ASSERT_EQ(r.status, 200) << r.body;
    auto msgs = r.Json()["messages"];
    if (msgs.empty()) {
      ++empty_polls;
      continue;
    }
    empty_polls = 0;
    json receipts = json::array();
    for (const auto& m : msgs) {
      std::string id = m["id"];
      EXPECT_EQ(acked.count(id), 0u) << "acked message " << id << " came back after restart";
      remaining.insert(id);
      receipts.push_back(m["receipt"]);
    }
    ASSERT_EQ(c.Post(q + "/ack", {{"receipts", receipts}}).status, 200);
  }
  size_t lost = 0;
  for (const auto& id : published) {
    if (!acked.count(id) && !remaining.count(id) && !in_doubt.count(id)) ++lost;
  }
  EXPECT_GT(published.size(), 100u) << "the load did not run";
  EXPECT_GT(acked.size(), 0u);
  EXPECT_LT(in_doubt.size(), 200u) << "only acks in flight at a crash can be in doubt";
  EXPECT_EQ(lost, 0u) << "of " << published.size() << " acknowledged publishes";
  server.Stop();
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace redrive::testing
