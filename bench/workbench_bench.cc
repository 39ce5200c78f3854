// Workbench benchmark, in process over the real SQLite store (fsync on): seeds N dead letters
// across 10 origin queues, then measures query latency on the indexed fields (origin, reason,
// group, time window) and on a body filter that no index serves, and the time an unthrottled
// redrive job takes to restore every dead letter to its origin.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/engine.h"

using namespace redrive;
using Steady = std::chrono::steady_clock;

namespace {

double Ms(Steady::time_point since) {
  return std::chrono::duration<double, std::milli>(Steady::now() - since).count();
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"redrive workbench benchmark"};
  int64_t total = 1'000'000;
  std::string dir = (std::filesystem::temp_directory_path() / "redrive-workbench-bench").string();
  bool json_out = false;
  app.add_option("--dead-letters", total, "How many dead letters to seed");
  app.add_option("--dir", dir, "Scratch directory (deleted first)");
  app.add_flag("--json", json_out, "Print results as JSON lines");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = Must(store::OpenStore(dir + "/redrive.db"), "open");
  SystemClock clock;
  SystemRandom random;
  engine::Engine eng(*store, clock, random);
  engine::Principal ops{"tok_bench", "", {engine::kScopeOperator}};
  Must(eng.tenancy().CreateTenant("bench"), "tenant");

  // Seeding: each origin queue has maxLength 1000 and overflow dead-letter-oldest, so every
  // publish batch of 1000 dead-letters the previous 1000 in the same transaction.
  constexpr int kOrigins = 10;
  engine::QueueConfig cfg;
  cfg.max_length = 1000;
  cfg.overflow = engine::OverflowPolicy::kDeadLetterOldest;
  for (int q = 0; q < kOrigins; ++q)
    Must(eng.queues().CreateQueue("bench", "q" + std::to_string(q), cfg), "queue");
  auto seed_start = Steady::now();
  std::vector<engine::NewMessage> batch(1000);
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].body =
        nlohmann::json{{"customer", {{"id", i}, {"tier", i % 100 == 0 ? "gold" : "free"}}},
                       {"pad", std::string(900, 'x')}}
            .dump();
    batch[i].attributes = {{"region", i % 2 ? "eu-west" : "us-east"}};
  }
  int64_t seeded = 0;
  TimeMs mid_time = 0;
  for (int64_t round = 0; seeded < total; ++round) {
    std::string q = "q" + std::to_string(round % kOrigins);
    Must(eng.messages().Publish("bench", q, batch), "publish");
    if (round >= kOrigins) seeded += 1000;
    if (!mid_time && seeded >= total / 2) mid_time = clock.Now();
  }
  // The last 1000 of each queue are still queued: drain them so only dead letters remain.
  for (int q = 0; q < kOrigins; ++q) {
    engine::QueueConfig open = cfg;
    open.max_length = 0;
    Must(eng.queues().UpdateQueue("bench", "q" + std::to_string(q), open), "update");
  }
  double seed_ms = Ms(seed_start);

  auto groups = Must(eng.dead_letters().ListFailureGroups("bench", ""), "groups");
  struct Case {
    const char* name;
    std::string filter;
  };
  std::vector<Case> cases = {
      {"origin", R"(/origin eq "q3")"},
      {"reason", R"(/reason eq "overflow")"},
      {"group", "/group eq \"" + groups.at(0).row.group_id + "\""},
      {"time-window", "/deadLetteredAt ge \"" + FormatTime(mid_time) +
                          "\" and /deadLetteredAt lt \"" + FormatTime(mid_time + 2000) + "\""},
      {"origin+attribute", R"(/origin eq "q3" and /attributes/region eq "eu-west")"},
      {"body (no index)", R"(/body/customer/tier eq "gold")"},
  };
  auto report = [&](const std::string& name, double value, const char* unit) {
    if (json_out) {
      std::printf(
          "%s\n",
          nlohmann::json{{"scenario", name}, {"value", value}, {"unit", unit}}.dump().c_str());
    } else {
      std::printf("%-40s %12.2f %s\n", name.c_str(), value, unit);
    }
  };
  report("seed dead letters", static_cast<double>(seeded), "dead letters");
  report("seed rate", seeded / (seed_ms / 1000.0), "dead letters/s");
  for (const auto& c : cases) {
    engine::DeadLetterQuery q;
    q.filter = c.filter;
    q.page_size = 100;
    // First page + total (where the index can count it); best of 3 after one warm-up.
    (void)eng.dead_letters().QueryDeadLetters("bench", q);
    double best = 1e18;
    int64_t count = -1;
    for (int i = 0; i < 3; ++i) {
      auto t = Steady::now();
      auto r = Must(eng.dead_letters().QueryDeadLetters("bench", q), c.name);
      best = std::min(best, Ms(t));
      count = r.total;
    }
    report(std::string("query ") + c.name + " (first page" + (count >= 0 ? " + total)" : ")"), best,
           "ms");
  }
  {
    auto t = Steady::now();
    auto g = Must(eng.dead_letters().ListFailureGroups("bench", ""), "groups");
    report("failure groups (" + std::to_string(g.size()) + ")", Ms(t), "ms");
    t = Steady::now();
    (void)Must(eng.dead_letters().GetDeadLetterStats("bench", ""), "stats");
    report("stats by origin/reason/group/hour", Ms(t), "ms");
  }

  auto start = Steady::now();
  auto job = Must(eng.dead_letters().StartJob(ops, "bench", engine::JobSpec{}), "job");
  for (;;) {
    auto moved = Must(eng.dead_letters().RunJobsOnce(), "run");
    if (moved == 0 &&
        Must(eng.dead_letters().GetJob("bench", job.id), "get").state != engine::JobState::kRunning)
      break;
  }
  double redrive_ms = Ms(start);
  auto done = Must(eng.dead_letters().GetJob("bench", job.id), "get");
  report("redrive job: moved", static_cast<double>(done.moved), "messages");
  report("redrive job: time", redrive_ms / 1000.0, "s");
  report("redrive job: rate", done.moved / (redrive_ms / 1000.0), "messages/s");
  store.reset();
  std::filesystem::remove_all(dir);
  return done.moved == seeded ? 0 : 1;
}
