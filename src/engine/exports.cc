// Export jobs: a tenant's dead letters to an NDJSON file and its gzip copy, in the background,
// once by default (dead_letters.h; the line format: docs/export-format.md).
//
// Files, under <export_dir>/<tenant>/: <id>.ndjson (appended a step at a time), <id>.seqs (the
// seqs written, 8 bytes each, for the stamps; deleted when done) and, once complete,
// <id>.ndjson.gz. A step appends to the files and then saves the export's progress (cursor,
// lines, bytes); a node that takes over an export cuts the files back to the saved progress
// and goes on. Memory does not grow with the export: each step holds one page of dead letters.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/dead_letter_doc.h"
#include "engine/dead_letters.h"
#include "engine/internal/selector.h"
#include "engine/tenancy.h"

namespace redrive::engine {
namespace {

using nlohmann::json;
using store::JobState;

constexpr DurationMs kExportClaimTtl = 6'000;
constexpr int kExportFormatVersion = 1;
constexpr size_t kStampChunk = 10'000;

std::string StateName(JobState s) {
  switch (s) {
    case JobState::kRunning:
    case JobState::kCancelling:
    case JobState::kHalted:
      return "processing";
    case JobState::kCompleted:
      return "completed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kFailed:
      return "failed";
  }
  return "processing";
}

json SpecJson(const ExportSpec& s) {
  return {{"filter", s.filter},
          {"group", s.group},
          {"deadLetterQueue", s.dlq},
          {"origin", s.origin},
          {"since", s.since ? json(FormatTime(*s.since)) : json(nullptr)},
          {"until", s.until ? json(FormatTime(*s.until)) : json(nullptr)},
          {"includeExported", s.include_exported},
          {"redacted", s.redacted}};
}

ExportSpec SpecOf(const json& j) {
  ExportSpec s;
  s.filter = j.value("filter", "");
  s.group = j.value("group", "");
  s.dlq = j.value("deadLetterQueue", "");
  s.origin = j.value("origin", "");
  if (j.contains("since") && j["since"].is_string()) {
    auto t = ParseTime(j["since"].get<std::string>());
    if (t.ok()) s.since = t.value();
  }
  if (j.contains("until") && j["until"].is_string()) {
    auto t = ParseTime(j["until"].get<std::string>());
    if (t.ok()) s.until = t.value();
  }
  s.include_exported = j.value("includeExported", false);
  // Exports made before redaction existed were written as stored.
  s.redacted = j.value("redacted", false);
  return s;
}

ExportInfo InfoOf(const store::JobRecord& r) {
  ExportInfo i;
  i.id = r.id;
  i.tenant = r.tenant;
  i.state = StateName(r.state);
  json spec = json::parse(r.spec_json, nullptr, false);
  if (spec.is_object()) i.spec = SpecOf(spec);
  json p = json::parse(r.progress_json, nullptr, false);
  if (p.is_object()) {
    i.count = p.value("count", int64_t{0});
    i.bytes = p.value("bytes", int64_t{0});
    i.gzip_bytes = p.value("gzipBytes", int64_t{0});
    i.total = p.value("total", int64_t{-1});
    i.error = p.value("error", "");
    i.created_by = p.value("createdBy", "");
  }
  i.created_at = r.created_at;
  i.updated_at = r.updated_at;
  i.finished_at = r.finished_at;
  return i;
}

DeadLetterTarget TargetOf(const ExportSpec& s) {
  DeadLetterTarget t;
  t.filter = s.filter;
  t.group = s.group;
  t.dlq = s.dlq;
  t.since = s.since;
  t.until = s.until;
  return t;
}

Status IoError(const std::string& what, const std::string& path) {
  return Status(ErrorCode::kInternal, what + " " + path + ": " + std::strerror(errno));
}

// Cuts `path` back to `size` bytes (a step that wrote and was not saved), creating it empty
// when missing.
Status TruncateTo(const std::string& path, int64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot open", path);
  bool ok = ::ftruncate(fd, size) == 0;
  ::close(fd);
  if (!ok) return IoError("cannot truncate", path);
  return Status::Ok();
}

Status FsyncFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open", path);
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return IoError("cannot fsync", path);
  return Status::Ok();
}

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<FILE, FileCloser>;

// Compresses `from` into `to` (gzip, fast level), fsync'd; returns its size.
Result<int64_t> Gzip(const std::string& from, const std::string& to) {
  File in(std::fopen(from.c_str(), "rb"));
  if (!in) return IoError("cannot open", from);
  int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot create", to);
  gzFile gz = gzdopen(::dup(fd), "wb1");
  if (gz == nullptr) {
    ::close(fd);
    return IoError("cannot compress into", to);
  }
  gzbuffer(gz, 1 << 20);
  std::vector<char> buf(1 << 20);
  bool ok = true;
  for (;;) {
    size_t n = std::fread(buf.data(), 1, buf.size(), in.get());
    if (n > 0 && gzwrite(gz, buf.data(), static_cast<unsigned>(n)) != static_cast<int>(n)) {
      ok = false;
      break;
    }
    if (n < buf.size()) break;
  }
  ok = gzclose(gz) == Z_OK && ok && std::ferror(in.get()) == 0;
  ok = ok && ::fsync(fd) == 0;
  off_t size = ::lseek(fd, 0, SEEK_END);
  ::close(fd);
  if (!ok || size < 0) return IoError("cannot write", to);
  return static_cast<int64_t>(size);
}

void RemoveFiles(const std::string& base) {
  std::error_code ec;
  for (const char* ext : {".ndjson", ".ndjson.gz", ".seqs"}) {
    std::filesystem::remove(base + ext, ec);
  }
}

}  // namespace

// The dead letters an export of `spec` takes: its target, its origin, and unless
// includeExported only those never exported.
Result<DeadLetters::Selector> DeadLetters::ExportSelector(const std::string& tenant,
                                                          const ExportSpec& spec) {
  REDRIVE_ASSIGN_OR_RETURN(auto compiled, Compile(tenant, TargetOf(spec), spec.redacted));
  Selector sel = *compiled;
  if (!spec.origin.empty()) {
    if (!sel.scan.origin.empty() && sel.scan.origin != spec.origin) sel.covered = false;
    sel.scan.origin = spec.origin;
  }
  sel.scan.unexported = !spec.include_exported;
  return sel;
}

std::string DeadLetters::ExportBase(const std::string& tenant, const std::string& id) const {
  return options_.export_dir + "/" + tenant + "/" + id;
}

Result<ExportInfo> DeadLetters::StartExport(const Principal& actor, const std::string& tenant,
                                            const ExportSpec& requested) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  // The starter's scope decides, once: the file is written as they may see the dead letters.
  ExportSpec spec = requested;
  spec.redacted = !SeesUnredacted(actor);
  if (options_.export_dir.empty()) {
    return Status(ErrorCode::kInvalidArgument, "this server has no directory for exports");
  }
  if (spec.since && spec.until && *spec.since >= *spec.until) {
    return Status(ErrorCode::kInvalidArgument, "since must be before until");
  }
  REDRIVE_ASSIGN_OR_RETURN(Selector sel, ExportSelector(tenant, spec));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  int64_t total = -1;
  if (sel.covered) {
    store::DeadLetterScan count = sel.scan;
    count.snapshot = snapshot;
    REDRIVE_ASSIGN_OR_RETURN(total, control_.CountDeadLetters(count));
  }
  TimeMs now = clock_.Now();
  store::JobRecord rec;
  rec.id = "exp_" + NewUlid(now, random_);
  rec.tenant = tenant;
  rec.scope = "export";
  rec.state = JobState::kRunning;
  rec.spec_json = SpecJson(spec).dump();
  json progress = {{"cursor", 0},    {"maxSeq", snapshot.max_seq}, {"count", 0}, {"bytes", 0},
                   {"total", total}, {"createdBy", actor.token_id}};
  if (!snapshot.visible.empty()) progress["snapshot"] = snapshot.visible;
  rec.progress_json = progress.dump();
  rec.created_at = rec.updated_at = now;
  std::error_code ec;
  std::filesystem::create_directories(options_.export_dir + "/" + tenant, ec);
  if (ec) {
    return Status(ErrorCode::kInternal, "cannot create the export directory: " + ec.message());
  }
  Status st = control_.CreateExport(rec);
  if (st.code() == ErrorCode::kAlreadyExists) {
    std::string running;
    auto list = control_.ListExports(tenant);
    if (list.ok()) {
      for (const auto& e : list.value()) {
        if (e.state == JobState::kRunning) running = e.id;
      }
    }
    return Status(ErrorCode::kExportActive, "export " + running +
                                                " is already processing in tenant " + tenant +
                                                "; wait for it or cancel it");
  }
  REDRIVE_RETURN_IF_ERROR(st);
  audit_.Write(tenant, actor.token_id, "export.start",
               json{{"export", rec.id}, {"spec", SpecJson(spec)}, {"total", total}});
  WakeRunner();
  return InfoOf(rec);
}

Result<ExportInfo> DeadLetters::GetExport(const std::string& tenant, const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetExport(tenant, id));
  if (!rec) return Status(ErrorCode::kExportNotFound, "export '" + id + "' not found");
  return InfoOf(*rec);
}

Result<std::vector<ExportInfo>> DeadLetters::ListExports(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto recs, control_.ListExports(tenant));
  TimeMs from = clock_.Now() - options_.export_retention;
  std::vector<ExportInfo> out;
  for (const auto& r : recs) {
    if (r.created_at >= from) out.push_back(InfoOf(r));
  }
  return out;
}

Result<ExportInfo> DeadLetters::CancelExport(const Principal& actor, const std::string& tenant,
                                             const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetExport(tenant, id));
  if (!rec) return Status(ErrorCode::kExportNotFound, "export '" + id + "' not found");
  if (rec->state != JobState::kRunning) {
    return Status(ErrorCode::kJobStateConflict,
                  "export " + id + " is " + StateName(rec->state) + ", not processing");
  }
  TimeMs now = clock_.Now();
  rec->state = JobState::kCancelled;
  rec->updated_at = rec->finished_at = now;
  REDRIVE_ASSIGN_OR_RETURN(bool changed, control_.UpdateExport(*rec, JobState::kRunning));
  if (!changed) {
    REDRIVE_ASSIGN_OR_RETURN(auto now_rec, control_.GetExport(tenant, id));
    return Status(ErrorCode::kJobStateConflict,
                  "export " + id + " is " +
                      (now_rec ? StateName(now_rec->state) : std::string("gone")) +
                      ", not processing");
  }
  // No file is kept and nothing is stamped: the next export takes the same dead letters. (A
  // runner step in flight finds the export cancelled when it saves, and removes what it wrote.)
  RemoveFiles(ExportBase(tenant, id));
  audit_.Write(tenant, actor.token_id, "export.cancel", json{{"export", id}});
  return InfoOf(*rec);
}

Result<ExportFile> DeadLetters::GetExportFile(const std::string& tenant, const std::string& id,
                                              bool gzip) {
  REDRIVE_ASSIGN_OR_RETURN(ExportInfo info, GetExport(tenant, id));
  return FileOf(info, gzip);
}

Result<ExportFile> DeadLetters::FileOf(const ExportInfo& info, bool gzip) const {
  const std::string& id = info.id;
  if (info.state != "completed") {
    return Status(
        ErrorCode::kExportNotReady,
        "export " + id + " is " + info.state +
            (info.state == "processing" ? ": its file is not complete yet" : ": it has no file"));
  }
  ExportFile f;
  f.path = ExportBase(info.tenant, id) + (gzip ? ".ndjson.gz" : ".ndjson");
  f.size = gzip ? info.gzip_bytes : info.bytes;
  f.etag = id + (gzip ? "-gz-" : "-") + std::to_string(f.size);
  return f;
}

Result<ExportFile> DeadLetters::GetExportFile(const Principal& viewer, const std::string& tenant,
                                              const std::string& id, bool gzip) {
  REDRIVE_ASSIGN_OR_RETURN(ExportInfo info, GetExport(tenant, id));
  if (!info.spec.redacted && !SeesUnredacted(viewer)) {
    return Status(ErrorCode::kForbidden, "export " + id +
                                             " was written unredacted: downloading it needs the '" +
                                             kScopeDlqReadUnredacted + "' scope");
  }
  return FileOf(info, gzip);
}

Result<int64_t> DeadLetters::RunExportsOnce() {
  std::lock_guard<std::mutex> l(exports_mu_);
  REDRIVE_ASSIGN_OR_RETURN(auto exports, control_.ListExports(""));
  int64_t written = 0;
  for (auto& e : exports) {
    if (e.state != JobState::kRunning) continue;
    const std::string claim = "export/" + e.id;
    if (!coordinator_.Claim(claim, coordinator_.node_id(), kExportClaimTtl)) continue;
    TimeMs now = clock_.Now();
    auto r = StepExport(e, now);
    if (!r.ok() || e.finished_at != 0) coordinator_.Release(claim, coordinator_.node_id());
    if (!r.ok()) {
      spdlog::error("export {} failed: {}", e.id, r.status().ToString());
      RemoveFiles(ExportBase(e.tenant, e.id));
      json p = json::parse(e.progress_json, nullptr, false);
      if (!p.is_object()) p = json::object();
      p["error"] = r.status().message();
      e.progress_json = p.dump();
      e.state = JobState::kFailed;
      e.finished_at = e.updated_at = now;
      (void)control_.UpdateExport(e, JobState::kRunning);
      audit_.Write(e.tenant, "system", "export.failed",
                   json{{"export", e.id}, {"error", r.status().message()}});
      continue;
    }
    written += r.value();
  }
  return written;
}

Result<int64_t> DeadLetters::StepExport(store::JobRecord& job, TimeMs now) {
  json p = json::parse(job.progress_json, nullptr, false);
  json spec_json = json::parse(job.spec_json, nullptr, false);
  if (!p.is_object() || !spec_json.is_object()) {
    return Status(ErrorCode::kInternal, "export record unreadable");
  }
  ExportSpec spec = SpecOf(spec_json);
  REDRIVE_ASSIGN_OR_RETURN(Selector sel, ExportSelector(job.tenant, spec));
  store::DeadLetterSnapshot snapshot;
  snapshot.max_seq = p.value("maxSeq", int64_t{0});
  snapshot.visible = p.value("snapshot", "");
  int64_t cursor = p.value("cursor", int64_t{0});
  int64_t count = p.value("count", int64_t{0});
  int64_t bytes = p.value("bytes", int64_t{0});
  const std::string base = ExportBase(job.tenant, job.id);
  // Back to what was saved: a step that wrote and did not save (a crash, another node).
  std::error_code ec;
  std::filesystem::create_directories(options_.export_dir + "/" + job.tenant, ec);
  // A node that took the export over from another one, without the export directory shared
  // between them (docs/operations.md, "Several nodes"), lacks what was written: start again
  // from the beginning of the same snapshot rather than extend a file that is not there.
  const auto have_lines = std::filesystem::file_size(base + ".ndjson", ec);
  const bool lines_ok = !ec && static_cast<int64_t>(have_lines) >= bytes;
  const auto have_seqs = std::filesystem::file_size(base + ".seqs", ec);
  if (!lines_ok || ec || static_cast<int64_t>(have_seqs) < count * 8) {
    if (bytes > 0 || count > 0) {
      spdlog::warn("export {}: the part written so far is not in {}: writing it again", job.id,
                   options_.export_dir);
    }
    cursor = count = bytes = 0;
  }
  REDRIVE_RETURN_IF_ERROR(TruncateTo(base + ".ndjson", bytes));
  REDRIVE_RETURN_IF_ERROR(TruncateTo(base + ".seqs", count * 8));

  bool exhausted = snapshot.max_seq == 0;
  int64_t wrote = 0;
  if (!exhausted) {
    File out(std::fopen((base + ".ndjson").c_str(), "ab"));
    File seqs(std::fopen((base + ".seqs").c_str(), "ab"));
    if (!out || !seqs) return IoError("cannot open", base + ".ndjson");
    std::setvbuf(out.get(), nullptr, _IOFBF, 1 << 20);
    const std::string exported_at = FormatTime(job.created_at);
    std::string text;  // one line; reused, so a line costs no allocation
    while (wrote < options_.export_step && !exhausted) {
      int want = static_cast<int>(std::min<int64_t>(1000, options_.export_step - wrote));
      REDRIVE_ASSIGN_OR_RETURN(auto batch, NextMatches(sel, snapshot, want, &cursor, &exhausted));
      for (const auto& d : batch) {
        text.clear();
        AppendExportLine(text, d, kExportFormatVersion, exported_at);
        text += '\n';
        if (std::fwrite(text.data(), 1, text.size(), out.get()) != text.size() ||
            std::fwrite(&d.seq, sizeof d.seq, 1, seqs.get()) != 1) {
          return IoError("cannot write", base + ".ndjson");
        }
        bytes += static_cast<int64_t>(text.size());
        ++count;
        ++wrote;
      }
    }
    if (std::fflush(out.get()) != 0 || std::fflush(seqs.get()) != 0) {
      return IoError("cannot write", base + ".ndjson");
    }
  }
  p["cursor"] = cursor;
  p["count"] = count;
  p["bytes"] = bytes;
  job.progress_json = p.dump();
  job.updated_at = now;
  if (exhausted) {
    REDRIVE_RETURN_IF_ERROR(FinishExport(job, base, now));
    return wrote;
  }
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateExport(job, JobState::kRunning));
  if (!saved) RemoveFiles(base);  // cancelled meanwhile
  return wrote;
}

Status DeadLetters::FinishExport(store::JobRecord& job, const std::string& base, TimeMs now) {
  json p = json::parse(job.progress_json);
  // The files are durable before the export says completed.
  REDRIVE_RETURN_IF_ERROR(FsyncFile(base + ".ndjson"));
  REDRIVE_ASSIGN_OR_RETURN(int64_t gz, Gzip(base + ".ndjson", base + ".ndjson.gz"));
  p["gzipBytes"] = gz;
  job.progress_json = p.dump();
  job.state = JobState::kCompleted;
  job.updated_at = job.finished_at = now;
  // Completed first, then stamped: a cancel that won the race stamps nothing, and a stamp cut
  // short (a crash) leaves dead letters that the next export takes again, never one lost.
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateExport(job, JobState::kRunning));
  if (!saved) {
    RemoveFiles(base);  // cancelled meanwhile
    return Status::Ok();
  }
  // Stamped with the export's start time, the exportedAt of its lines, in bounded writes.
  File seqs(std::fopen((base + ".seqs").c_str(), "rb"));
  if (!seqs) return IoError("cannot open", base + ".seqs");
  std::vector<int64_t> chunk(kStampChunk);
  for (;;) {
    size_t n = std::fread(chunk.data(), sizeof(int64_t), chunk.size(), seqs.get());
    if (n == 0) break;
    chunk.resize(n);
    auto stamped = control_.MarkExported(job.tenant, chunk, job.created_at);
    if (!stamped.ok()) {
      spdlog::warn(
          "export {} of {}: stamping exportedAt failed ({}); the next export takes "
          "the unstamped ones again",
          job.id, job.tenant, stamped.status().ToString());
      break;
    }
    chunk.resize(kStampChunk);
  }
  seqs.reset();
  std::error_code ec;
  std::filesystem::remove(base + ".seqs", ec);
  audit_.Write(job.tenant, "system", "export.completed",
               json{{"export", job.id}, {"count", p.value("count", 0)}, {"bytes", p["bytes"]}});
  return Status::Ok();
}

Status DeadLetters::SweepExports(TimeMs now) {
  REDRIVE_ASSIGN_OR_RETURN(auto gone,
                           control_.DeleteFinishedExports(now - options_.export_retention));
  for (const auto& e : gone) RemoveFiles(ExportBase(e.tenant, e.id));
  return Status::Ok();
}

}  // namespace redrive::engine
