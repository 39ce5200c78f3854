// Several nodes on one PostgreSQL (docs/operations.md, "Several nodes"): three real `redrive
// serve` processes share a database on the test cluster, under a mixed load of publishes,
// receives, acks, nacks, dead-lettering and a redrive job, while nodes are killed with SIGKILL.
// Then every message must be accounted for, no acked message delivered again, no dead letter in
// two places, and the job must have completed once. A second test restarts PostgreSQL itself
// (a cluster of its own) under load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "store/postgres/pg_test_database.h"
#include "tests/harness.h"

namespace redrive::testing {
namespace {

using namespace std::chrono_literals;
namespace pg = redrive::store::postgres;

// The nodes, as a client sees them behind a load balancer: a call goes to a random live node
// and, when that node does not answer (killed) or answers 503 (its store is away), to another.
class Nodes {
 public:
  void Add(std::string url) {
    std::lock_guard l(mu_);
    urls_.push_back(std::move(url));
    alive_.push_back(true);
  }
  void MarkDead(size_t i) {
    std::lock_guard l(mu_);
    alive_[i] = false;
  }
  // Calls `fn` with a client of a live node until it answers something other than 0 or 503,
  // for up to `within`. Returns the last answer.
  HttpResult Call(const std::string& token, const std::function<HttpResult(HttpClient&)>& fn,
                  std::chrono::milliseconds within = 30s) {
    auto deadline = std::chrono::steady_clock::now() + within;
    HttpResult r;
    for (;;) {
      std::string url = Pick();
      HttpClient c(url, token);
      r = fn(c);
      if ((r.status != 0 && r.status != 503) || std::chrono::steady_clock::now() > deadline) {
        return r;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

 private:
  std::string Pick() {
    std::lock_guard l(mu_);
    std::vector<size_t> live;
    for (size_t i = 0; i < urls_.size(); ++i) {
      if (alive_[i]) live.push_back(i);
    }
    return urls_[live[rng_() % live.size()]];
  }
  std::mutex mu_;
  std::vector<std::string> urls_;
  std::vector<bool> alive_;
  std::mt19937 rng_{42};
};

// What the clients saw, by message id (the body is the id).
struct Ledger {
  std::mutex mu;
  std::set<std::string> published;       // 201 seen (publishes use the id as idempotency key)
  std::set<std::string> acked;           // ack answered "ok"
  std::set<std::string> ack_unknown;     // the ack's answer was lost (node killed): either way
  std::vector<std::string> redelivered;  // received again after an "ok" ack: must stay empty
  std::set<std::string> received;
};

// Poison messages (1 in 10) are nacked until they are dead-lettered; 1 in 10 more fail once.
int Kind(const std::string& id) { return static_cast<int>(std::hash<std::string>{}(id) % 10); }

class ClusterTest : public ::testing::Test {
 protected:
  void StartNodes(const std::string& store_uri, int count) {
    for (int i = 0; i < count; ++i) {
      auto node =
          std::make_unique<ServerProcess>("", std::vector<std::string>{"--store", store_uri});
      std::string error;
      ASSERT_TRUE(node->Start(&error)) << error;
      nodes_.Add(node->url());
      servers_.push_back(std::move(node));
    }
    // The first node made the operator token; the others share its store, and so its tokens.
    operator_token_ = servers_[0]->operator_token();
    ASSERT_FALSE(operator_token_.empty());
  }

  void CreateQueues() {
    HttpClient op(servers_[0]->url(), operator_token_);
    CreateTenant(op, "acme");
    token_ = CreateToken(op, "acme", "app");
    HttpClient app(servers_[0]->url(), token_);
    auto r = app.Post(
        "/v1/tenants/acme/queues",
        {{"name", "work"},
         {"attributes",
          {{"visibilityTimeout", "2s"},
           {"retryPolicy",
            {{"maxDeliveries", 3}, {"backoff", {{"initial", "10ms"}, {"max", "50ms"}}}}}}}});
    ASSERT_EQ(r.status, 201) << r.body;
    ASSERT_EQ(app.Post("/v1/tenants/acme/queues", {{"name", "rescued"}}).status, 201);
  }

  // Publishes `count` messages in batches of 10 from `thread`, each batch until it is stored.
  void Publish(int thread, int count, std::atomic<bool>* failed) {
    for (int b = 0; b < count / 10; ++b) {
      json messages = json::array();
      std::vector<std::string> ids;
      for (int i = 0; i < 10; ++i) {
        std::string id = "m-" + std::to_string(thread) + "-" + std::to_string(b * 10 + i);
        messages.push_back({{"body", id}, {"idempotencyKey", id}});
        ids.push_back(id);
      }
      auto r = nodes_.Call(token_, [&](HttpClient& c) {
        return c.Post("/v1/tenants/acme/queues/work/messages", {{"messages", messages}});
      });
      if (r.status != 201) {
        ADD_FAILURE() << "publish: " << r.status << " " << r.body;
        *failed = true;
        return;
      }
      std::lock_guard l(ledger_.mu);
      ledger_.published.insert(ids.begin(), ids.end());
    }
  }

  // Receives, then acks or nacks each message by its kind, until `stop` and the queue is empty.
  void Consume(const std::atomic<bool>& stop) {
    int empty_polls = 0;
    while (!stop || empty_polls < 3) {
      auto r = nodes_.Call(token_, [&](HttpClient& c) {
        return c.Post("/v1/tenants/acme/queues/work/receive",
                      {{"maxMessages", 10}, {"wait", "500ms"}});
      });
      if (r.status != 200) continue;
      json messages = r.Json()["messages"];
      empty_polls = messages.empty() ? empty_polls + 1 : 0;
      json acks = json::array(), nacks = json::array();
      std::vector<std::string> acked_ids;
      {
        std::lock_guard l(ledger_.mu);
        for (const auto& m : messages) {
          std::string id = m["body"];
          if (ledger_.acked.count(id)) ledger_.redelivered.push_back(id);
          ledger_.received.insert(id);
          int kind = Kind(id);
          if (kind == 0 || (kind == 1 && m["deliveryCount"] == 1)) {
            nacks.push_back({{"receipt", m["receipt"]}, {"reason", "test"}});
          } else {
            acks.push_back(m["receipt"]);
            acked_ids.push_back(id);
          }
        }
      }
      if (!nacks.empty()) {
        nodes_.Call(token_, [&](HttpClient& c) {
          return c.Post("/v1/tenants/acme/queues/work/nack", {{"nacks", nacks}});
        });
      }
      if (acks.empty()) continue;
      // One try: an answer lost with a killed node leaves these acks unknown (applied or not).
      HttpResult a = nodes_.Call(
          token_,
          [&](HttpClient& c) {
            return c.Post("/v1/tenants/acme/queues/work/ack", {{"receipts", acks}});
          },
          0ms);
      std::lock_guard l(ledger_.mu);
      if (a.status != 200) {
        ledger_.ack_unknown.insert(acked_ids.begin(), acked_ids.end());
        continue;
      }
      json results = a.Json()["results"];
      for (size_t i = 0; i < acked_ids.size() && i < results.size(); ++i) {
        if (results[i]["status"] == "ok") ledger_.acked.insert(acked_ids[i]);
      }
    }
  }

  // Every dead letter's id (the body) in `dlq`, paging through the list.
  std::vector<std::string> DeadLetterIds() {
    std::vector<std::string> out;
    std::string cookie;
    for (;;) {
      std::string path = "/v1/tenants/acme/dead-letters?_pageSize=500";
      if (!cookie.empty()) path += "&_pagedResultsCookie=" + cookie;
      auto r = nodes_.Call(token_, [&](HttpClient& c) { return c.Get(path); });
      EXPECT_EQ(r.status, 200) << r.body;
      json page = r.Json();
      for (const auto& d : page["result"]) out.push_back(d["body"]);
      if (!page["pagedResultsCookie"].is_string()) break;
      cookie = page["pagedResultsCookie"];
    }
    return out;
  }

  // Receives and acks everything in `queue`; returns the ids.
  std::vector<std::string> Drain(const std::string& queue) {
    std::vector<std::string> out;
    for (;;) {
      auto r = nodes_.Call(token_, [&](HttpClient& c) {
        return c.Post("/v1/tenants/acme/queues/" + queue + "/receive",
                      {{"maxMessages", 100}, {"wait", "0s"}});
      });
      EXPECT_EQ(r.status, 200) << r.body;
      json messages = r.Json()["messages"];
      if (messages.empty()) return out;
      json receipts = json::array();
      for (const auto& m : messages) {
        out.push_back(m["body"]);
        receipts.push_back(m["receipt"]);
      }
      nodes_.Call(token_, [&](HttpClient& c) {
        return c.Post("/v1/tenants/acme/queues/" + queue + "/ack", {{"receipts", receipts}});
      });
    }
  }

  json Depth(const std::string& queue) {
    auto r = nodes_.Call(token_,
                         [&](HttpClient& c) { return c.Get("/v1/tenants/acme/queues/" + queue); });
    return r.Json()["depth"];
  }

  Nodes nodes_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
  std::string operator_token_, token_;
  Ledger ledger_;
};

TEST_F(ClusterTest, ThreeNodesUnderLoadLoseNothingWhenTwoAreKilled) {
  const std::string key = "cluster-" + std::to_string(getpid());
  StartNodes(pg::TestDatabase(key), 3);
  CreateQueues();

  std::atomic<bool> failed{false}, stop{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p) threads.emplace_back([&, p] { Publish(p, 1500, &failed); });
  std::vector<std::thread> consumers;
  for (int c = 0; c < 3; ++c) consumers.emplace_back([&] { Consume(stop); });

  // A redrive job of what is dead-lettered by then, to a queue nobody consumes, slow enough
  // (5 a second) to be running when the nodes die: whichever node runs it, two in three
  // times it is one of those killed, and another must take it over.
  ASSERT_TRUE(Eventually([&] { return Depth("work")["deadLettered"].get<int64_t>() >= 30; }, 30s));
  auto job = nodes_.Call(token_, [&](HttpClient& c) {
    return c.Post("/v1/tenants/acme/redrive-jobs",
                  {{"deadLetterQueue", "dead-letters"}, {"destination", "rescued"}, {"rate", 5}});
  });
  ASSERT_EQ(job.status, 201) << job.body;
  const std::string job_id = job.Json()["id"];
  const int64_t to_move = job.Json()["progress"]["toMove"];

  std::this_thread::sleep_for(1s);
  servers_[1]->Kill();
  nodes_.MarkDead(1);
  std::this_thread::sleep_for(2s);
  servers_[2]->Kill();
  nodes_.MarkDead(2);

  for (auto& t : threads) t.join();
  ASSERT_FALSE(failed);
  // The job finishes on the node left, whichever node ran it before.
  json done;
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = nodes_.Call(token_, [&](HttpClient& c) {
          return c.Get("/v1/tenants/acme/redrive-jobs/" + job_id);
        });
        done = r.Json();
        return done.is_object() && done["state"] != "running";
      },
      60s))
      << done.dump();
  stop = true;
  for (auto& t : consumers) t.join();
  // Leases of the killed nodes' consumers end (2s), and their messages come back.
  std::this_thread::sleep_for(2500ms);

  EXPECT_EQ(done["state"], "completed") << done.dump();
  EXPECT_EQ(done["progress"]["moved"].get<int64_t>() + done["progress"]["skipped"].get<int64_t>(),
            to_move)
      << done.dump();

  std::vector<std::string> left = Drain("work");
  std::vector<std::string> rescued = Drain("rescued");
  std::vector<std::string> dead = DeadLetterIds();

  std::lock_guard l(ledger_.mu);
  EXPECT_EQ(ledger_.published.size(), 3000u);
  EXPECT_TRUE(ledger_.redelivered.empty())
      << ledger_.redelivered.size() << " acked messages were delivered again, e.g. "
      << ledger_.redelivered.front();
  // Every message is in exactly one place: acked, still queued, rescued by the job, or dead.
  std::map<std::string, int> places;
  for (const auto& id : ledger_.acked) places[id]++;
  for (const auto& id : left) places[id]++;
  for (const auto& id : rescued) places[id]++;
  for (const auto& id : dead) places[id]++;
  int64_t missing = 0, twice = 0;
  for (const auto& id : ledger_.published) {
    auto it = places.find(id);
    if (it == places.end()) {
      // An ack whose answer was lost may have been applied: the message is gone, as acked.
      if (!ledger_.ack_unknown.count(id)) ++missing;
    } else if (it->second > 1) {
      ++twice;
    }
  }
  EXPECT_EQ(missing, 0) << "published messages found nowhere";
  EXPECT_EQ(twice, 0) << "messages in two places";
  for (const auto& [id, n] : places) EXPECT_TRUE(ledger_.published.count(id)) << id;
  EXPECT_EQ(static_cast<int64_t>(rescued.size()), done["progress"]["moved"].get<int64_t>());
  // The poison messages ended dead (or rescued); nothing else did.
  for (const auto& id : dead) EXPECT_EQ(Kind(id), 0) << id;

  // The job ran once: one start and one completion in the audit log.
  HttpClient op(servers_[0]->url(), operator_token_);
  auto audit =
      op.Get("/v1/tenants/acme/audit?_pageSize=1000&_queryFilter=%2Faction%20sw%20%22job.%22");
  ASSERT_EQ(audit.status, 200) << audit.body;
  int starts = 0, completions = 0;
  const json entries = audit.Json()["result"];
  for (const auto& e : entries) {
    if (e.value("action", "") == "job.start") ++starts;
    if (e.value("action", "") == "job.completed") ++completions;
  }
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(completions, 1) << audit.body;
  servers_.clear();
  pg::DropTestDatabase(key);
}

// What crosses nodes besides the data: a publish on one node wakes a long poll parked on
// another (NOTIFY, not the poll's own re-check every 500 ms), and a token revoked on one node
// is refused by the other within a second (an invalidation; caches would keep it 5 s).
TEST_F(ClusterTest, WakeUpsAndRevocationsCrossNodes) {
  const std::string key = "cluster-signals-" + std::to_string(getpid());
  StartNodes(pg::TestDatabase(key), 2);
  CreateQueues();
  HttpClient a(servers_[0]->url(), token_), b(servers_[1]->url(), token_);
  std::vector<double> waits;
  for (int i = 0; i < 5; ++i) {
    std::atomic<bool> parked{false};
    std::chrono::steady_clock::time_point published;
    std::thread poller([&] {
      parked = true;
      auto r =
          b.Post("/v1/tenants/acme/queues/work/receive", {{"maxMessages", 1}, {"wait", "10s"}});
      auto got = std::chrono::steady_clock::now();
      ASSERT_EQ(r.status, 200) << r.body;
      ASSERT_EQ(r.Json()["messages"].size(), 1u) << r.body;
      waits.push_back(std::chrono::duration<double, std::milli>(got - published).count());
      json receipts = json::array({r.Json()["messages"][0]["receipt"]});
      b.Post("/v1/tenants/acme/queues/work/ack", {{"receipts", receipts}});
    });
    while (!parked) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(300ms);  // the receive is parked on node b
    published = std::chrono::steady_clock::now();
    ASSERT_EQ(
        a.Post("/v1/tenants/acme/queues/work/messages", {{"messages", {{{"body", "x"}}}}}).status,
        201);
    poller.join();
  }
  std::sort(waits.begin(), waits.end());
  EXPECT_LT(waits[2], 150.0) << "median wake-up across nodes, ms";
  std::printf("wake-ups across nodes, ms: %.1f %.1f %.1f %.1f %.1f\n", waits[0], waits[1], waits[2],
              waits[3], waits[4]);

  // A token used on node b (so b caches it), revoked on node a.
  HttpClient op(servers_[0]->url(), operator_token_);
  auto made = op.Post("/v1/tenants/acme/tokens", {{"label", "short-lived"}});
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string secret = made.Json()["token"], id = made.Json()["id"];
  HttpClient user(servers_[1]->url(), secret);
  ASSERT_EQ(user.Get("/v1/tenants/acme/queues").status, 200);
  ASSERT_EQ(op.Delete("/v1/tenants/acme/tokens/" + id).status, 204);
  auto revoked = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return user.Get("/v1/tenants/acme/queues").status == 401; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - revoked, 1s);
  servers_.clear();
  pg::DropTestDatabase(key);
}

// Runs a command; its exit status.
int Shell(const std::string& command) { return std::system(command.c_str()); }

TEST_F(ClusterTest, APostgresRestartUnderLoadNeedsNoIntervention) {
  // A cluster of its own: restarting the shared test cluster would disturb the other tests.
  const std::string dir = "/tmp/redrive-pg-restart-" + std::to_string(getpid());
  const std::string script = std::string(REDRIVE_SOURCE_DIR) + "/bench/peers/postgres.sh";
  ASSERT_EQ(Shell(std::string(REDRIVE_SOURCE_DIR) + "/scripts/test-postgres.sh start " + dir +
                  " >/dev/null"),
            0);
  std::string port;
  {
    std::ifstream in(dir + "/port");
    in >> port;
  }
  const std::string uri = "postgresql://postgres@127.0.0.1:" + port + "/postgres";
  StartNodes(uri, 2);
  CreateQueues();

  std::atomic<bool> failed{false}, stop{false};
  std::thread publisher([&] { Publish(0, 1000, &failed); });
  std::thread consumer([&] { Consume(stop); });
  ASSERT_TRUE(Eventually(
      [&] {
        std::lock_guard l(ledger_.mu);
        return ledger_.published.size() >= 200;
      },
      30s));

  ASSERT_EQ(Shell(script + " stop " + dir + " >/dev/null"), 0);
  // While the database is down: writes answer 503 store-failed with Retry-After, and /readyz
  // says the node is not ready; /healthz (the process) still answers.
  {
    HttpClient app(servers_[0]->url(), token_);
    auto r = app.Post("/v1/tenants/acme/queues/work/messages", {{"messages", {{{"body", "x"}}}}});
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.ErrorCode(), "store-failed") << r.body;
    EXPECT_EQ(r.Header("retry-after"), "1");
    EXPECT_EQ(app.Get("/readyz").status, 503);
    EXPECT_EQ(app.Get("/healthz").status, 200);
  }
  std::this_thread::sleep_for(1s);
  ASSERT_EQ(Shell(script + " start " + dir + " >/dev/null"), 0);

  // Both nodes come back by themselves.
  for (auto& s : servers_) {
    HttpClient c(s->url());
    EXPECT_TRUE(Eventually([&] { return c.Get("/readyz").status == 200; }, 30s)) << s->log();
  }
  publisher.join();
  stop = true;
  consumer.join();
  ASSERT_FALSE(failed);
  std::this_thread::sleep_for(2500ms);  // leases cut short by the restart end
  std::vector<std::string> left = Drain("work");
  std::vector<std::string> dead = DeadLetterIds();

  std::lock_guard l(ledger_.mu);
  EXPECT_EQ(ledger_.published.size(), 1000u);
  EXPECT_TRUE(ledger_.redelivered.empty()) << ledger_.redelivered.size();
  std::set<std::string> found(left.begin(), left.end());
  found.insert(dead.begin(), dead.end());
  found.insert(ledger_.acked.begin(), ledger_.acked.end());
  int64_t lost = 0;
  for (const auto& id : ledger_.published) {
    if (!found.count(id) && !ledger_.ack_unknown.count(id)) ++lost;
  }
  EXPECT_EQ(lost, 0) << "acknowledged publishes lost across the restart";
  servers_.clear();
  Shell(std::string(REDRIVE_SOURCE_DIR) + "/scripts/test-postgres.sh stop " + dir + " >/dev/null");
}

}  // namespace
}  // namespace redrive::testing
