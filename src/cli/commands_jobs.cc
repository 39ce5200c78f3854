// jobs: start redrive jobs (or dry-run them), list, show, cancel, resume and watch them.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli/commands_common.h"

namespace redrive::cli {
namespace {

std::string JobPath(const Context& ctx, const std::string& id) {
  return ctx.TenantPath() + "/redrive-jobs/" + UrlEscape(id);
}

bool IsFinished(const std::string& state) {
  return state == "completed" || state == "cancelled" || state == "failed" || state == "halted";
}

// "moved M of T, skipped S" from a job's progress.
std::string ProgressText(const json& job) {
  const json& p = At(job, "progress");
  return "moved " + IntText(p, "moved") + " of " + IntText(p, "toMove") + ", skipped " +
         IntText(p, "skipped");
}

// "45s", "3m05s", "2h10m".
std::string ShortDuration(double seconds) {
  long long s = std::llround(std::max(0.0, seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

void PrintJob(const json& j) {
  Details d;
  d.Add("id", Text(j, "id"));
  d.Add("state", Text(j, "state"));
  d.Add("phase", Text(j, "phase"));
  const json& spec = At(j, "spec");
  d.Add("dead-letter queue", Text(spec, "deadLetterQueue", "every one"));
  if (At(spec, "ticket").is_string()) d.Add("ticket", Text(spec, "ticket"));
  d.Add("filter", Text(spec, "filter"));
  d.Add("group", Text(spec, "group"));
  d.Add("since", Text(spec, "since"));
  d.Add("until", Text(spec, "until"));
  d.Add("destination", Text(spec, "destination", "each message's origin"));
  const json& rate = At(spec, "rate");
  d.Add("rate", rate.is_number() && rate.get<double>() > 0 ? Text(rate) + " msg/s" : "unthrottled");
  const json& canary = At(spec, "canary");
  if (canary.is_object()) {
    const json& max_failure = At(canary, "maxFailure");
    char share[32] = "?";
    if (max_failure.is_number()) {
      std::snprintf(share, sizeof(share), "%g%%", max_failure.get<double>() * 100);
    }
    d.Add("canary", Text(canary, "count") + " messages, watched for " + Text(canary, "wait") +
                        "; halt if more than " + share + " fail again");
  } else {
    d.Add("canary", "none");
  }
  const json& p = At(j, "progress");
  d.Add("to move", IntText(p, "toMove"));
  d.Add("moved", IntText(p, "moved"));
  d.Add("skipped", IntText(p, "skipped"));
  d.Add("failed again", IntText(p, "failedAgain"));
  d.AddMultiline("halt reason", Text(j, "haltReason"));
  d.AddMultiline("error", Text(j, "error"));
  d.Add("created by", Text(j, "createdBy"));
  d.Add("created at", Text(j, "createdAt"));
  d.Add("updated at", Text(j, "updatedAt"));
  d.Add("finished at", Text(j, "finishedAt"));
  d.Print(stdout);
}

// The outcome of a finished (or halted) job: a summary line on stdout (the job with --json),
// why it did not complete on stderr. Exit 0 only when it completed.
int ReportJobEnd(Context& ctx, const json& job) {
  std::string id = Printable(Text(job, "id"));
  std::string state = Text(job, "state", "");
  if (ctx.settings.json) {
    ctx.PrintJson(job);
  } else {
    std::printf("%s %s: %s, failed again %s\n", id.c_str(), Printable(state).c_str(),
                ProgressText(job).c_str(), IntText(At(job, "progress"), "failedAgain").c_str());
  }
  if (state == "completed") return kExitOk;
  if (state == "halted") {
    std::fprintf(stderr, "error: job %s halted: %s\n", id.c_str(),
                 Printable(Text(job, "haltReason")).c_str());
    std::fprintf(stderr,
                 "hint: 'redrive jobs resume %s' moves the rest; 'redrive jobs cancel %s' stops "
                 "it\n",
                 id.c_str(), id.c_str());
  } else if (state == "failed") {
    std::fprintf(stderr, "error: job %s failed: %s\n", id.c_str(),
                 Printable(Text(job, "error")).c_str());
  } else {
    std::fprintf(stderr, "error: job %s was %s\n", id.c_str(), Printable(state).c_str());
  }
  return kExitServerError;
}

constexpr auto kPollInterval = std::chrono::milliseconds(500);

// Ctrl-C while a bar is drawn: end its line, then die of SIGINT as usual. Only watching stops;
// the job runs on in the server.
extern "C" void EndBarOnInterrupt(int sig) {
  ssize_t ignored = write(STDERR_FILENO, "\n", 1);
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Polls the job until it is finished or halted. Progress goes to stderr: a bar redrawn in place
// when stderr is a terminal, else a line each time the state, phase or counts change.
int WatchJob(Context& ctx, const std::string& id) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) std::signal(SIGINT, EndBarOnInterrupt);
  const auto started = std::chrono::steady_clock::now();
  int64_t first_moved = -1;
  std::string last_line;
  bool bar_drawn = false;
  json job;
  for (;;) {
    auto r = ctx.client.Get(JobPath(ctx, id));
    if (!r.ok()) {
      if (bar_drawn) std::fputc('\n', stderr);
      return ctx.Fail(r.error());
    }
    job = std::move(r).value();
    std::string state = Printable(Text(job, "state", ""));
    std::string phase = Printable(Text(job, "phase", ""));
    const json& p = At(job, "progress");
    int64_t to_move = Int(p, "toMove"), moved = Int(p, "moved"), skipped = Int(p, "skipped");
    if (first_moved < 0) first_moved = moved;
    if (tty) {
      constexpr int kWidth = 30;
      double done =
          to_move > 0
              ? std::min(1.0, static_cast<double>(moved + skipped) / static_cast<double>(to_move))
              : (state == "completed" ? 1.0 : 0.0);
      int filled = static_cast<int>(done * kWidth);
      std::string line = "[" + std::string(static_cast<size_t>(filled), '#') +
                         std::string(static_cast<size_t>(kWidth - filled), '-') + "] " +
                         std::to_string(moved) + "/" + std::to_string(to_move) + " " +
                         std::to_string(static_cast<int>(done * 100)) + "%";
      if (skipped > 0) line += "  skipped " + std::to_string(skipped);
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (elapsed >= 1.0 && !IsFinished(state)) {
        double rate = static_cast<double>(moved - first_moved) / elapsed;
        char buf[64];
        std::snprintf(buf, sizeof(buf), "  %.1f msg/s", rate);
        line += buf;
        int64_t left = to_move - moved - skipped;
        if (rate > 0 && left > 0) {
          line += "  eta " + ShortDuration(static_cast<double>(left) / rate);
        }
      }
      line += "  " + state + (phase.empty() || phase == "done" ? "" : " (" + phase + ")");
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
      std::fflush(stderr);
      bar_drawn = true;
    } else {
      std::string line = Printable(id) + " " + state +
                         (phase.empty() || phase == "done" ? "" : " (" + phase + ")") + ": " +
                         ProgressText(job);
      if (line != last_line) {
        std::fprintf(stderr, "%s\n", line.c_str());
        std::fflush(stderr);
        last_line = line;
      }
    }
    if (IsFinished(state)) break;
    std::this_thread::sleep_for(kPollInterval);
  }
  if (bar_drawn) std::fputc('\n', stderr);
  return ReportJobEnd(ctx, job);
}

int JobStart(Context& ctx, const Flags& f) {
  json body = json::object();
  AddSelection(f, &body);
  if (!f.to.empty()) body["destination"] = f.to;
  if (f.rate >= 0) body["rate"] = f.rate;
  if (f.canary > 0) {
    json canary = {{"count", f.canary}};
    if (!f.canary_wait.empty()) canary["wait"] = f.canary_wait;
    if (f.canary_max_failure >= 0) canary["maxFailure"] = f.canary_max_failure;
    body["canary"] = canary;
  }
  if (f.dry_run) body["dryRun"] = true;
  auto r = ctx.client.Post(ctx.TenantPath() + "/redrive-jobs", body);
  if (!r.ok()) {
    int rc = ctx.Fail(r.error());
    if (r.error().code == "job-active") {
      std::fprintf(stderr,
                   "hint: 'redrive jobs ls' shows it; wait for it or 'redrive jobs cancel' it\n");
    }
    return rc;
  }
  const json& answer = r.value();
  if (f.dry_run) {
    if (ctx.settings.json) {
      ctx.PrintJson(answer);
      return kExitOk;
    }
    std::printf("would move: %s\n", IntText(answer, "toMove").c_str());
    const json& destinations = At(answer, "destinations");
    if (destinations.is_object() && !destinations.empty()) {
      Table t({"destination", "count"});
      for (auto it = destinations.begin(); it != destinations.end(); ++it) {
        t.AddRow({it.key(), Text(*it)});
      }
      std::printf("\n");
      t.Print(stdout);
    }
    const json& sample = Items(answer, "sample");
    if (!sample.empty()) {
      Table t({"sample"});
      for (const auto& id : sample) t.AddRow({Text(id)});
      std::printf("\n");
      t.Print(stdout);
    }
    std::fprintf(stderr, "dry run: nothing was moved\n");
    return kExitOk;
  }
  std::string id = Text(answer, "id", "");
  if (!f.wait_job) {
    return ctx.Answer(answer, [&] { std::printf("%s\n", Printable(id).c_str()); });
  }
  if (!ctx.settings.json) std::printf("%s\n", Printable(id).c_str());
  std::fflush(stdout);
  return WatchJob(ctx, id);
}

int JobList(Context& ctx, const Flags&) {
  auto r = ctx.client.Get(ctx.TenantPath() + "/redrive-jobs");
  if (!r.ok()) return ctx.Fail(r.error());
  if (ctx.settings.json) {
    ctx.PrintJson(r.value());
    return kExitOk;
  }
  Table t({"id", "state", "phase", "dead-letter queue", "moved", "skipped", "destination",
           "created at"});
  for (const auto& j : Items(r.value(), "jobs")) {
    const json& p = At(j, "progress");
    const json& spec = At(j, "spec");
    // A ticket's retry takes from every dead-letter queue: the ticket stands for them.
    std::string from = At(spec, "ticket").is_string() ? "ticket " + Text(spec, "ticket")
                                                      : Text(spec, "deadLetterQueue");
    t.AddRow({Text(j, "id"), Text(j, "state"), Text(j, "phase"), from,
              IntText(p, "moved") + "/" + IntText(p, "toMove"), IntText(p, "skipped"),
              Text(spec, "destination", "(origin)"), Text(j, "createdAt")});
  }
  if (t.rows() == 0) {
    std::fprintf(stderr, "no redrive jobs\n");
  } else {
    t.Print(stdout);
  }
  return kExitOk;
}

int JobShow(Context& ctx, const Flags& f) {
  auto r = ctx.client.Get(JobPath(ctx, f.id));
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] { PrintJob(r.value()); });
}

int JobTransition(Context& ctx, const Flags& f, const char* action) {
  auto r = ctx.client.Post(JobPath(ctx, f.id) + "/" + action, json::object());
  if (!r.ok()) return ctx.Fail(r.error());
  return ctx.Answer(r.value(), [&] {
    std::printf("job %s is %s\n", Printable(Text(r.value(), "id")).c_str(),
                Printable(Text(r.value(), "state")).c_str());
  });
}

int JobCancel(Context& ctx, const Flags& f) { return JobTransition(ctx, f, "cancel"); }
int JobResume(Context& ctx, const Flags& f) { return JobTransition(ctx, f, "resume"); }
int JobWatch(Context& ctx, const Flags& f) { return WatchJob(ctx, f.id); }

}  // namespace

void AddJobCommands(CLI::App& app, Flags* f, const AddLeafFn& add_leaf) {
  auto* jobs = app.add_subcommand("jobs", "Redrive jobs: move dead letters back in the background");
  jobs->require_subcommand(1);
  auto* jobs_start = jobs->add_subcommand("start", "Start a redrive job (or --dry-run it)");
  AddSelectionOptions(jobs_start, f);
  jobs_start->add_option("--to", f->to, "Move them here (default: each one's origin queue)");
  jobs_start->add_option("--rate", f->rate, "Most messages per second (0 = unthrottled)")
      ->check(CLI::NonNegativeNumber);
  auto* canary = jobs_start
                     ->add_option("--canary", f->canary,
                                  "Move this many first, wait, and halt if too many fail again")
                     ->check(CLI::Range(1, 100000));
  jobs_start->add_option("--canary-wait", f->canary_wait, "How long to watch the canary (30s)")
      ->check(DurationCheck())
      ->needs(canary);
  jobs_start
      ->add_option("--canary-max-failure", f->canary_max_failure,
                   "Halt when a larger share of the canary fails again (0.1)")
      ->check(CLI::Range(0.0, 1.0))
      ->needs(canary);
  auto* dry_run = jobs_start->add_flag("--dry-run", f->dry_run,
                                       "Count what would move, and where; move nothing");
  jobs_start->add_flag("--wait", f->wait_job, "Show progress until the job finishes or halts")
      ->excludes(dry_run);
  add_leaf(jobs_start, true, JobStart);
  add_leaf(jobs->add_subcommand("ls", "List redrive jobs"), true, JobList);
  auto add_job = [&](const char* name, const char* help, int (*fn)(Context&, const Flags&)) {
    auto* cmd = jobs->add_subcommand(name, help);
    cmd->add_option("ID", f->id, "Job id (job_...)")->required();
    add_leaf(cmd, true, fn);
  };
  add_job("show", "Show a job's spec and progress", JobShow);
  add_job("cancel", "Cancel a running or halted job", JobCancel);
  add_job("resume", "Resume a halted job", JobResume);
  add_job("watch", "Show a job's progress until it finishes or halts", JobWatch);
}

}  // namespace redrive::cli
