// Export benchmark (issue 14, "Export speed"), in process over the real SQLite store (fsync on).
//
// Set-up, not measured: N dead letters with --body-size byte bodies in a fresh data directory,
// written through the engine as bench/fill.cc does (an origin queue with maxLength 1000 and
// overflow dead-letter-oldest, so each published batch dead-letters as many of the oldest).
//
// Measured, per run: an export job the way a user gets it. The engine runs with its background
// threads started; the benchmark calls StartExport and then only watches, as a client polling
// the API would, while the export runner thread does the work:
//
//   plain    StartExport until <id>.ndjson is complete and fsync'd (the runner creates
//            <id>.ndjson.gz right after that fsync, so the file appearing marks it)
//   gzip     from there until the export says completed (the gzip copy written and fsync'd)
//   stamp    from there until every dead letter carries exportedAt (<id>.seqs is deleted then)
//
// Both files are always written by the same job, the gzip copy from the finished plain file, so
// "gzip" is the extra time the compressed copy costs. A user can download either file once the
// export says completed (plain + gzip).
//
// In the same run, before each export, the disk's sequential write bandwidth on the same
// filesystem: 1 MiB writes of zeros and one fdatasync, as `dd if=/dev/zero bs=1M count=1024
// conv=fdatasync` does, after a sync so that it does not also write what the set-up left. Figures
// are in MB (10^6 bytes), as dd prints them. Peak RSS is the process's VmHWM, reset
// (/proc/self/clear_refs) just before the export starts.
//
// Between runs the stamps are cleared with one UPDATE on the closed database (set-up), so each
// run exports the same N dead letters.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dead_letter_fill.h"
#include "engine/engine.h"

using namespace redrive;
using Steady = std::chrono::steady_clock;

namespace {

constexpr char kTenant[] = "bench";
constexpr char kQueue[] = "export-1m";

struct Options {
  int64_t dead_letters = 1'000'000;
  int body_size = 1024;
  std::string body = "json";
  std::string dir;
  int runs = 1;
  int dd_mib = 1024;
  bool reuse = false;
  bool keep = false;
  bool json_out = false;
};

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "redrive_export_bench: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

void Die(const std::string& what) {
  std::fprintf(stderr, "redrive_export_bench: %s\n", what.c_str());
  std::exit(1);
}

double Seconds(Steady::time_point from, Steady::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// A body of exactly `size` bytes. "json": a webhook-like JSON event whose field names and
// vocabulary repeat from message to message while ids and a hex payload do not, so that gzip
// has real work (about 2-3x); "x": `size` x's, which compress to almost nothing.
std::string MakeBody(const Options& o, int64_t n, std::mt19937_64& rng) {
  if (o.body == "x") return std::string(static_cast<size_t>(o.body_size), 'x');
  static const char* kEvents[] = {"order.created", "order.paid", "invoice.sent", "user.updated"};
  static const char* kWords[] = {"alpha",   "bravo", "charlie", "delta", "echo",
                                 "foxtrot", "golf",  "hotel",   "india", "juliet"};
  static const char kHex[] = "0123456789abcdef";
  std::string s = "{\"event\":\"" + std::string(kEvents[n % 4]) + "\",\"n\":" + std::to_string(n) +
                  ",\"customer\":{\"id\":\"cus_" + std::to_string(rng() % 100000) +
                  "\",\"name\":\"" + kWords[rng() % 10] + " " + kWords[rng() % 10] +
                  "\"},\"note\":\"";
  while (s.size() + 40 < static_cast<size_t>(o.body_size) / 2) {
    s += kWords[rng() % 10];
    s += ' ';
  }
  s += "\",\"payload\":\"";
  while (s.size() + 2 < static_cast<size_t>(o.body_size)) s += kHex[rng() % 16];
  s += "\"}";
  s.resize(static_cast<size_t>(o.body_size), ' ');
  return s;
}

void Fill(const Options& o) {
  std::filesystem::remove_all(o.dir);
  std::filesystem::create_directories(o.dir);
  auto store = Must(store::OpenStore("sqlite:" + o.dir + "/redrive.db"), "open store");
  SystemClock clock;
  SystemRandom random;
  engine::Engine eng(*store, clock, random);
  Must(eng.tenancy().CreateTenant(kTenant), "create tenant");
  bench::FillDeadLetters(eng, kTenant, kQueue, o.dead_letters,
                         [&](int64_t n, std::mt19937_64& rng, engine::NewMessage* m) {
                           m->body = MakeBody(o, n, rng);
                           m->attributes = {{"n", std::to_string(n)}, {"type", "bench"}};
                         });
  auto info = Must(eng.queues().GetQueue(kTenant, kQueue), "get queue");
  if (info.depth.dead_lettered != o.dead_letters) {
    Die("expected " + std::to_string(o.dead_letters) + " dead letters, got " +
        std::to_string(info.depth.dead_lettered));
  }
  std::ofstream(o.dir + "/filled") << o.dead_letters << ' ' << o.body_size << ' ' << o.body;
}

bool Filled(const Options& o) {
  std::ifstream in(o.dir + "/filled");
  int64_t n = 0;
  int size = 0;
  std::string body;
  return static_cast<bool>(in >> n >> size >> body) && n == o.dead_letters && size == o.body_size &&
         body == o.body;
}

// Clears every exportedAt stamp, on the closed database, so the next run exports them all again.
void ClearStamps(const Options& o) {
  sqlite3* db = nullptr;
  const std::string path = o.dir + "/redrive.db";
  char* error = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK ||
      sqlite3_exec(db,
                   "PRAGMA busy_timeout=10000; UPDATE dead_letters SET exported_at = 0 WHERE "
                   "exported_at != 0; PRAGMA wal_checkpoint(TRUNCATE);",
                   nullptr, nullptr, &error) != SQLITE_OK) {
    Die("clearing the stamps: " + std::string(error ? error : sqlite3_errmsg(db)));
  }
  sqlite3_close(db);
}

// Sequential write bandwidth: `dd if=/dev/zero of=<path> bs=1M count=<mib> conv=fdatasync`.
double DiskWriteMBps(const std::string& path, int mib) {
  std::vector<char> block(1 << 20, 0);
  ::sync();  // what earlier steps left dirty is not this measurement's to write
  auto start = Steady::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Die("cannot create " + path);
  for (int i = 0; i < mib; ++i) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      Die("cannot write " + path);
    }
  }
  if (::fdatasync(fd) != 0) Die("cannot fdatasync " + path);
  ::close(fd);
  double s = Seconds(start, Steady::now());
  ::unlink(path.c_str());
  return static_cast<double>(mib) * (1 << 20) / 1e6 / s;
}

int64_t ProcStatusKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, len, field) == 0 && line.size() > len && line[len] == ':') {
      return std::stoll(line.substr(len + 1));
    }
  }
  return -1;
}

double CpuSeconds() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

struct RunResult {
  double dd_mbps = 0;
  double plain_s = 0, gzip_s = 0, stamp_s = 0;
  double lines_s = 0;      // until the file last grew: plain_s - lines_s is the final fsync
  double cpu_s = 0;        // the process's CPU time (every thread) from start to all stamped
  double plain_cpu_s = 0;  // the same, from start until the plain file was fsync'd
  int64_t count = 0, bytes = 0, gzip_bytes = 0;
  int64_t rss_before_kib = 0, peak_rss_kib = 0;
};

RunResult RunOnce(const Options& o) {
  RunResult r;
  r.dd_mbps = DiskWriteMBps(o.dir + "/dd.bin", o.dd_mib);
  std::filesystem::remove_all(o.dir + "/exports");
  auto store = Must(store::OpenStore("sqlite:" + o.dir + "/redrive.db"), "open store");
  SystemClock clock;
  SystemRandom random;
  engine::EngineOptions options;
  options.export_dir = o.dir + "/exports";
  engine::Engine eng(*store, clock, random, options);
  eng.Start();
  engine::Principal ops{"tok_bench", "", {engine::kScopeOperator}};
  // The peak from here on: the filling (or an earlier run) does not count.
  std::ofstream("/proc/self/clear_refs") << "5";
  r.rss_before_kib = ProcStatusKiB("VmRSS");

  const double cpu_start = CpuSeconds();
  const auto start = Steady::now();
  auto info = Must(eng.dead_letters().StartExport(ops, kTenant, engine::ExportSpec{}), "start");
  const std::string base = o.dir + "/exports/" + std::string(kTenant) + "/" + info.id;
  Steady::time_point plain_done{}, completed{}, stamped{}, last_growth = start;
  int64_t size = 0;
  for (;;) {
    auto now = Steady::now();
    if (plain_done == Steady::time_point{}) {
      struct stat st;
      if (::stat((base + ".ndjson").c_str(), &st) == 0 && st.st_size != size) {
        size = st.st_size;
        last_growth = now;
      }
      if (Exists(base + ".ndjson.gz")) {
        plain_done = now;
        r.plain_cpu_s = CpuSeconds() - cpu_start;
      }
    }
    if (completed == Steady::time_point{}) {
      info = Must(eng.dead_letters().GetExport(kTenant, info.id), "get export");
      if (info.state == "completed") {
        completed = now;
        if (plain_done == Steady::time_point{}) {
          plain_done = now;
          r.plain_cpu_s = CpuSeconds() - cpu_start;
        }
      } else if (info.state != "processing") {
        Die("export " + info.id + " is " + info.state + ": " + info.error);
      }
    }
    if (completed != Steady::time_point{} && !Exists(base + ".seqs")) {
      stamped = now;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.peak_rss_kib = ProcStatusKiB("VmHWM");
  r.cpu_s = CpuSeconds() - cpu_start;
  r.lines_s = Seconds(start, last_growth);
  eng.Stop();
  r.plain_s = Seconds(start, plain_done);
  r.gzip_s = Seconds(plain_done, completed);
  r.stamp_s = Seconds(completed, stamped);
  r.count = info.count;
  r.bytes = info.bytes;
  r.gzip_bytes = info.gzip_bytes;
  if (r.count != o.dead_letters) {
    Die("the export wrote " + std::to_string(r.count) + " lines, expected " +
        std::to_string(o.dead_letters));
  }
  if (static_cast<int64_t>(std::filesystem::file_size(base + ".ndjson")) != r.bytes ||
      static_cast<int64_t>(std::filesystem::file_size(base + ".ndjson.gz")) != r.gzip_bytes) {
    Die("the export's files do not have the sizes it reports");
  }
  // Every dead letter stamped: an export of the unexported would now take none.
  auto again = Must(eng.dead_letters().StartExport(ops, kTenant, engine::ExportSpec{}), "recheck");
  if (again.total != 0) Die(std::to_string(again.total) + " dead letters left unstamped");
  (void)eng.dead_letters().CancelExport(ops, kTenant, again.id);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const char* tmp = std::getenv("BENCH_TMPDIR");
  if (!tmp) tmp = std::getenv("TMPDIR");
  o.dir = std::string(tmp ? tmp : "/tmp") + "/redrive-export-bench";
  CLI::App app{"redrive export benchmark: N dead letters to NDJSON and gzip, against dd"};
  app.add_option("--dead-letters", o.dead_letters)->capture_default_str();
  app.add_option("--body-size", o.body_size, "Bytes per body")->capture_default_str();
  app.add_option("--body", o.body, "json (webhook-like, compresses 2-3x) or x (all 'x')")
      ->check(CLI::IsMember({"json", "x"}))
      ->capture_default_str();
  app.add_option("--dir", o.dir, "Data directory, on the disk to measure (deleted first)")
      ->capture_default_str();
  app.add_option("--runs", o.runs, "Exports of the same dead letters")->capture_default_str();
  app.add_option("--dd-mib", o.dd_mib, "MiB written for the disk bandwidth")->capture_default_str();
  app.add_flag("--reuse", o.reuse, "Keep a directory filled with the same parameters");
  app.add_flag("--keep", o.keep, "Do not delete the directory at the end");
  app.add_flag("--json", o.json_out, "One JSON object per run");
  CLI11_PARSE(app, argc, argv);
  if (o.dead_letters < 1 || o.body_size < 64 || o.runs < 1 || o.dd_mib < 1) {
    Die("--dead-letters >= 1, --body-size >= 64, --runs >= 1, --dd-mib >= 1");
  }
  spdlog::set_level(spdlog::level::warn);
  struct statfs fs;
  std::filesystem::create_directories(std::filesystem::path(o.dir).parent_path());
  if (::statfs(std::filesystem::path(o.dir).parent_path().c_str(), &fs) == 0 &&
      fs.f_type == 0x01021994 /* TMPFS_MAGIC */) {
    std::fprintf(stderr, "redrive_export_bench: warning: %s is on tmpfs, fsync is free there\n",
                 o.dir.c_str());
  }

  if (o.reuse && Filled(o)) {
    ClearStamps(o);
    if (!o.json_out) std::printf("reusing %s\n", o.dir.c_str());
  } else {
    auto t = Steady::now();
    // In a child process, so that the export's memory figures start from a process that has
    // only ever exported.
    const pid_t child = ::fork();
    if (child == 0) {
      Fill(o);
      std::fflush(nullptr);
      ::_exit(0);
    }
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      Die("filling failed");
    }
    if (!o.json_out) {
      std::printf("filled %s with %lld dead letters in %.1f s (set-up)\n", o.dir.c_str(),
                  static_cast<long long>(o.dead_letters), Seconds(t, Steady::now()));
    }
  }
  for (int run = 1; run <= o.runs; ++run) {
    if (run > 1) ClearStamps(o);
    RunResult r = RunOnce(o);
    const double mb = static_cast<double>(r.bytes) / 1e6;
    const double ready_s = r.plain_s + r.gzip_s;
    const double plain_mbps = mb / r.plain_s;
    const double ready_mbps = mb / ready_s;
    if (o.json_out) {
      std::printf("%s\n", nlohmann::json{{"run", run},
                                         {"deadLetters", r.count},
                                         {"bodySize", o.body_size},
                                         {"body", o.body},
                                         {"bytes", r.bytes},
                                         {"gzipBytes", r.gzip_bytes},
                                         {"linesSeconds", r.lines_s},
                                         {"plainSeconds", r.plain_s},
                                         {"plainCpuSeconds", r.plain_cpu_s},
                                         {"gzipSeconds", r.gzip_s},
                                         {"completedSeconds", ready_s},
                                         {"stampSeconds", r.stamp_s},
                                         {"totalSeconds", ready_s + r.stamp_s},
                                         {"cpuSeconds", r.cpu_s},
                                         {"plainMBps", plain_mbps},
                                         {"completedMBps", ready_mbps},
                                         {"ddMBps", r.dd_mbps},
                                         {"plainRatio", plain_mbps / r.dd_mbps},
                                         {"completedRatio", ready_mbps / r.dd_mbps},
                                         {"rssBeforeKiB", r.rss_before_kib},
                                         {"peakRssKiB", r.peak_rss_kib}}
                              .dump()
                              .c_str());
    } else {
      std::printf(
          "run %d: %lld dead letters, %.1f MB NDJSON, %.1f MB gzip (%.2fx)\n"
          "  disk (dd, %d MiB, fdatasync)       %8.1f MB/s\n"
          "  lines written (page cache)         %8.2f s\n"
          "  plain: lines written + fsync       %8.2f s  %8.1f MB/s  ratio to dd %.2f  (CPU %.1f "
          "s)\n"
          "  gzip copy (fsync'd)              + %8.2f s\n"
          "  completed (both files)             %8.2f s  %8.1f MB/s  ratio to dd %.2f\n"
          "  stamping exportedAt              + %8.2f s\n"
          "  total, start to all stamped        %8.2f s  (CPU %.1f s, all threads)\n"
          "  RSS before %.0f MiB, peak during the export %.0f MiB\n",
          run, static_cast<long long>(r.count), mb, static_cast<double>(r.gzip_bytes) / 1e6,
          static_cast<double>(r.bytes) / static_cast<double>(r.gzip_bytes), o.dd_mib, r.dd_mbps,
          r.lines_s, r.plain_s, plain_mbps, plain_mbps / r.dd_mbps, r.plain_cpu_s, r.gzip_s,
          ready_s, ready_mbps, ready_mbps / r.dd_mbps, r.stamp_s, ready_s + r.stamp_s, r.cpu_s,
          r.rss_before_kib / 1024.0, r.peak_rss_kib / 1024.0);
    }
    std::fflush(stdout);
  }
  if (!o.keep) std::filesystem::remove_all(o.dir);
  return 0;
}
