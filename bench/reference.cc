// redrive_reference: the yardstick of the CI regression guard (bench/guard.sh). Measures raw
// batched SQLite inserts of 1 KiB rows on a given directory, with the durability redrive uses
// (WAL, synchronous=FULL: every commit is fsynced), one transaction per batch, for a fixed time.
//
// The guard judges redrive by its ratio to this figure, measured in the same job on the same
// disk, so a slower machine or disk moves both and the ratio stays put; only a regression in
// redrive moves the ratio. Prints one JSON object (or a line of text) and deletes its database.
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

using Steady = std::chrono::steady_clock;

bool Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "redrive_reference: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"redrive_reference: raw batched SQLite inserts (WAL, synchronous=FULL)"};
  std::string dir;
  double seconds = 3;
  int batch = 1000;
  int body_size = 1024;
  bool json = false;
  app.add_option("--dir", dir, "Directory for the scratch database (the disk to measure)")
      ->required();
  app.add_option("--seconds", seconds, "How long to insert")->capture_default_str();
  app.add_option("--batch", batch, "Rows per transaction")->capture_default_str();
  app.add_option("--body-size", body_size, "Bytes per row")->capture_default_str();
  app.add_flag("--json", json, "Print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (seconds <= 0 || seconds > 600 || batch < 1 || body_size < 0) {
    std::fprintf(stderr, "redrive_reference: --seconds must be in (0, 600], --batch >= 1\n");
    return 2;
  }

  const std::string path = (std::filesystem::path(dir) / "reference.db").string();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::fprintf(stderr, "redrive_reference: cannot open %s: %s\n", path.c_str(),
                 sqlite3_errmsg(db));
    return 1;
  }
  // The same durability settings as redrive's store (src/store/sqlite/sqlite_store.cc).
  bool ok = Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;") &&
            Exec(db,
                 "CREATE TABLE rows (id INTEGER PRIMARY KEY, created INTEGER NOT NULL, "
                 "body BLOB NOT NULL)");
  sqlite3_stmt* insert = nullptr;
  if (ok && sqlite3_prepare_v2(db, "INSERT INTO rows (created, body) VALUES (?, ?)", -1, &insert,
                               nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "redrive_reference: prepare: %s\n", sqlite3_errmsg(db));
    ok = false;
  }
  const std::string body(static_cast<size_t>(body_size), 'x');
  int64_t rows = 0;
  const auto start = Steady::now();
  const auto end =
      start + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
  auto last = start;
  while (ok && last < end) {
    ok = Exec(db, "BEGIN");
    for (int i = 0; ok && i < batch; ++i) {
      sqlite3_bind_int64(insert, 1, rows + i);
      sqlite3_bind_blob(insert, 2, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
      if (sqlite3_step(insert) != SQLITE_DONE) {
        std::fprintf(stderr, "redrive_reference: insert: %s\n", sqlite3_errmsg(db));
        ok = false;
      }
      sqlite3_reset(insert);
    }
    ok = ok && Exec(db, "COMMIT");
    if (ok) rows += batch;
    last = Steady::now();
  }
  sqlite3_finalize(insert);
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  if (!ok) return 1;

  const double elapsed = std::chrono::duration<double>(last - start).count();
  const double rate = elapsed > 0 ? static_cast<double>(rows) / elapsed : 0;
  if (json) {
    std::printf(
        "{\"reference\":\"sqlite-batched-insert\",\"rowsPerSecond\":%.0f,\"rows\":%lld,"
        "\"seconds\":%.3f,\"batch\":%d,\"bodySize\":%d,\"sqlite\":\"%s\"}\n",
        rate, static_cast<long long>(rows), elapsed, batch, body_size, sqlite3_libversion());
  } else {
    std::printf("sqlite batched inserts: %.0f rows/s (%lld rows in %.3f s, %d per commit)\n", rate,
                static_cast<long long>(rows), elapsed, batch);
  }
  return 0;
}
