// Ticket cycle benchmark (issue 14, "Ticket cycle"), in process over the real SQLite store
// (fsync on), with the engine's background threads (sweeper, job runner) started as `serve`
// starts them.
//
// Set-up, not measured: N dead letters of --body-size bytes from one origin queue
// (bench/dead_letter_fill.h); notification settings with the log channel.
//
// Measured: the digest firing (RunDigest: the ticket opened over every dead letter, its summary
// with the groups' diagnoses, its notice sent) -> a `retry` answer -> every dead letter back in
// its origin queue (the ticket's redrive job done, as the queue's ready depth shows) -> the
// ticket closed as answered (the sweeper's next pass).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "dead_letter_fill.h"
#include "engine/engine.h"

using namespace redrive;
using Steady = std::chrono::steady_clock;

namespace {

constexpr char kTenant[] = "bench";
constexpr char kQueue[] = "orders";

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "redrive_ticket_bench: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

double Seconds(Steady::time_point from, Steady::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t dead_letters = 100'000;
  int body_size = 1024;
  std::string dir = (std::filesystem::temp_directory_path() / "redrive-ticket-bench").string();
  CLI::App app{"redrive ticket cycle: digest -> retry -> every dead letter back in its queue"};
  app.add_option("--dead-letters", dead_letters, "How many dead letters the ticket lists");
  app.add_option("--body-size", body_size, "Bytes per body (at least 16)")
      ->check(CLI::Range(16, 1 << 20));
  app.add_option("--dir", dir, "Data directory (made fresh, removed after)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = Must(store::OpenStore("sqlite:" + dir + "/redrive.db"), "open store");
  SystemClock clock;
  SystemRandom random;
  engine::Engine eng(*store, clock, random);
  Must(eng.tenancy().CreateTenant(kTenant), "create tenant");
  auto t_fill = Steady::now();
  bench::FillDeadLetters(eng, kTenant, kQueue, dead_letters,
                         [&](int64_t n, std::mt19937_64&, engine::NewMessage* m) {
                           m->body = "{\"order\":" + std::to_string(n) + ",\"pad\":\"";
                           m->body.resize(static_cast<size_t>(body_size) - 2, 'x');
                           m->body += "\"}";
                         });
  std::printf("set-up: %lld dead letters of %d bytes in %.1f s (not measured)\n",
              static_cast<long long>(dead_letters), body_size, Seconds(t_fill, Steady::now()));
  engine::NotificationSettings settings;  // the log channel; the digest runs when told here
  Must(eng.notifications().SetSettings(engine::Tenancy::System(), kTenant, settings), "settings");
  eng.Start();

  auto t0 = Steady::now();
  auto ticket = Must(eng.notifications().RunDigest(engine::Tenancy::System(), kTenant), "digest");
  auto t1 = Steady::now();
  if (!ticket || ticket->record.count != dead_letters) {
    std::fprintf(stderr, "redrive_ticket_bench: the ticket lists %lld, expected %lld\n",
                 ticket ? static_cast<long long>(ticket->record.count) : 0LL,
                 static_cast<long long>(dead_letters));
    return 1;
  }
  Must(eng.notifications().Answer(engine::Tenancy::System(), kTenant, ticket->record.id, "retry"),
       "answer");
  auto t2 = Steady::now();
  for (;;) {
    auto q = Must(eng.queues().GetQueue(kTenant, kQueue), "queue");
    if (q.depth.ready >= dead_letters) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto t3 = Steady::now();
  for (;;) {
    auto t = Must(eng.notifications().GetTicket(kTenant, ticket->record.id), "ticket");
    if (t.record.state == "answered") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto t4 = Steady::now();
  eng.Stop();
  std::printf("digest (ticket opened, summarized, notice sent): %.2f s\n", Seconds(t0, t1));
  std::printf("answer retry (job started):                     %.3f s\n", Seconds(t1, t2));
  std::printf("job: every dead letter back in its queue:        %.2f s (%.0f dead letters/s)\n",
              Seconds(t2, t3), static_cast<double>(dead_letters) / Seconds(t2, t3));
  std::printf("ticket closed as answered:                       %.2f s later\n", Seconds(t3, t4));
  std::printf("ticket cycle, digest firing -> all back:         %.2f s\n", Seconds(t0, t3));
  std::filesystem::remove_all(dir);
  return 0;
}
