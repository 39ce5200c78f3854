// export: export jobs of dead letters: start (and follow), list, show, cancel, download.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(500);

std::string ExportPath(const Context& ctx, const std::string& id) {
  return ctx.TenantPath() + "/exports/" + UrlEscape(id);
}

std::string Bar(double done, const std::string& tail) {
  constexpr int kWidth = 30;
  done = std::max(0.0, std::min(1.0, done));
  int filled = static_cast<int>(done * kWidth);
  return "[" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(kWidth - filled), '-') + "] " +
         std::to_string(static_cast<int>(done * 100)) + "% " + tail;
}

void PrintExport(const json& e) {
  Details d;
  d.Add("id", Text(e, "id"));
  d.Add("state", Text(e, "state"));
  d.Add("dead letters", Text(e, "count") + " of " + Text(e, "total", "?"));
  d.Add("bytes", Text(e, "bytes") + " (gzip " + Text(e, "gzipBytes") + ")");
  if (!Text(e, "error", "").empty()) d.Add("error", Text(e, "error"));
  d.Add("created at", Text(e, "createdAt"));
  d.Add("finished at", Text(e, "finishedAt"));
  d.Add("download", Text(At(e, "_links"), "download"));
  d.Print(stdout);
}

// Follows an export until it is no longer processing; a bar on a terminal, else a line per
// change, on stderr.
int Follow(Context& ctx, const std::string& id) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  std::string last;
  json e;
  for (;;) {
    auto r = ctx.client.Get(ExportPath(ctx, id));
    if (!r.ok()) return ctx.Fail(r.error());
    e = std::move(r).value();
    std::string state = Text(e, "state", "");
    std::string line = Text(e, "count") + "/" + Text(e, "total", "?") + " dead letters, " +
                       Text(e, "bytes") + " bytes, " + state;
    if (tty) {
      double done = At(e, "progress").is_number() ? At(e, "progress").get<double>() : 0.0;
      std::fprintf(stderr, "\r%s\x1b[K", Bar(done, line).c_str());
    } else if (line != last) {
      std::fprintf(stderr, "%s %s\n", Printable(id).c_str(), line.c_str());
    }
    std::fflush(stderr);
    last = line;
    if (state != "processing") break;
    std::this_thread::sleep_for(kPollInterval);
  }
  if (tty) std::fputc('\n', stderr);
  int rc = ctx.Answer(e, [&] { PrintExport(e); });
  if (Text(e, "state", "") == "completed") return rc;
  std::fprintf(stderr, "error: export %s %s\n", Printable(id).c_str(),
               Printable(Text(e, "state", "")).c_str());
  return kExitServerError;
}

int ExportStart(Context& ctx, const Flags& f) {
  json body = json::object();
  AddSelection(f, &body);
  if (!f.topic.empty()) body["topic"] = f.topic;
  if (!f.name.empty()) body["subscription"] = f.name;
  if (f.include_exported) body["includeExported"] = true;
  auto r = ctx.client.Post(ctx.TenantPath() + "/exports", body);
  if (!r.ok()) {
    int rc = ctx.Fail(r.error());
    if (r.error().code == "export-active") {
      std::fprintf(stderr, "hint: 'redrive export ls' shows it; wait, or 'export cancel' it\n");
    }
    return rc;
  }
  if (f.wait_job) return Follow(ctx, Text(r.value(), "id"));
  return ctx.Answer(r.value(), [&] { PrintExport(r.value()); });
}

int ExportList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/exports");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "state", "dead letters", "bytes", "created"});
  for (const auto& e : Items(r.value(), "exports")) {
    t.AddRow({Text(e, "id"), Text(e, "state"), Text(e, "count"), Text(e, "bytes"),
              Text(e, "createdAt")});
  }
  t.Print(stdout);
  return kExitOk;
}

int ExportShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(ExportPath(ctx, f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintExport(r.value()); });
}

int ExportCancel(Context& ctx, const Flags& f) {
  auto r = ctx.client.Post(ExportPath(ctx, f.id) + "/cancel", json::object());
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintExport(r.value()); });
}

// To --output (resuming a partial file: the bytes it has are asked no more) or stdout.
int ExportDownload(Context& ctx, const Flags& f) {
  std::string path = ExportPath(ctx, f.id) + "/file" + (f.gzip ? "?gzip=true" : "");
  const bool to_stdout = f.file.empty() || f.file == "-";
  std::FILE* out = stdout;
  int64_t offset = 0;
  if (!to_stdout) {
    struct stat st {};
    if (::stat(f.file.c_str(), &st) == 0) offset = static_cast<int64_t>(st.st_size);
    out = std::fopen(f.file.c_str(), "ab");
    if (out == nullptr) return Usage("cannot open " + f.file + " for writing");
  }
  const bool tty = isatty(STDERR_FILENO) != 0 && !ctx.settings.json;
  auto progress = [&](int64_t written, int64_t total) {
    if (!tty) return;
    double done =
        total > 0 ? static_cast<double>(offset + written) / static_cast<double>(total) : 0.0;
    std::fprintf(stderr, "\r%s\x1b[K",
                 Bar(done, std::to_string(offset + written) + " bytes").c_str());
  };
  auto r = ctx.client.Download(path, out, offset, progress);
  if (tty) std::fputc('\n', stderr);
  if (!to_stdout) std::fclose(out);
  if (!r.ok()) {
    // The whole file is there already: the server answers 416 to a range past its end.
    if (r.error().http_status == 416 && offset > 0) {
      std::fprintf(stderr, "%s is complete (%lld bytes)\n", f.file.c_str(),
                   static_cast<long long>(offset));
      return kExitOk;
    }
    return ctx.Fail(r.error());
  }
  if (!to_stdout) {
    std::fprintf(stderr, "%s: %lld bytes%s\n", f.file.c_str(), static_cast<long long>(r.value()),
                 offset > 0 ? (" (resumed at " + std::to_string(offset) + ")").c_str() : "");
  }
  return kExitOk;
}

}  // namespace

void AddExportCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* ex = app.add_subcommand("export", "Export dead letters to an NDJSON file, once");
  ex->require_subcommand(1);
  auto* start = ex->add_subcommand("start", "Start an export job of the tenant's dead letters");
  AddSelectionOptions(start, f);
  start->add_option("--topic", f->topic, "Only dead letters of this topic's subscription");
  start->add_option("--subscription", f->name, "The subscription (with --topic)");
  start->add_flag("--include-exported", f->include_exported, "Also those an earlier export took");
  start->add_flag("--wait", f->wait_job, "Show progress until the export finishes");
  add_leaf(start, true, ExportStart);
  add_leaf(ex->add_subcommand("ls", "List the exports of the last 7 days"), true, ExportList);
  auto with_id = [&](const char* name, const char* help) {
    auto* cmd = ex->add_subcommand(name, help);
    cmd->add_option("ID", f->id, "Export id (exp_...)")->required();
    return cmd;
  };
  add_leaf(with_id("show", "Show an export's state and progress"), true, ExportShow);
  add_leaf(with_id("cancel", "Cancel a processing export (no file, nothing stamped)"), true,
           ExportCancel);
  auto* download = with_id("download", "Download a completed export's file");
  download->add_option("-o,--output", f->file,
                       "Write here (resumes a partial file); default: stdout");
  download->add_flag("--gzip", f->gzip, "The gzip copy");
  add_leaf(download, true, ExportDownload);
}

}  // namespace redrive::cli
