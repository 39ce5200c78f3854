// Redrive jobs: bulk restore or reroute in the background, with a rate, a canary and a
// snapshot that bounds what they move (dead_letters.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/text.h"
#include "engine/audit_log.h"
#include "engine/dead_letters.h"
#include "engine/internal/selector.h"
#include "engine/tenancy.h"

namespace redrive::engine {
namespace {

using nlohmann::json;
using store::DeadLetterRecord;

// How long a node holds a job between passes of its runner.
constexpr DurationMs kJobClaimTtl = 6'000;

json SpecJson(const JobSpec& s) {
  json j = {{"deadLetterQueue", s.dlq},
            {"filter", s.filter},
            {"group", s.group},
            {"ticket", s.ticket},
            {"destination", s.destination},
            {"rate", s.rate},
            {"canary", s.canary.value_or(0)},
            {"canaryWait", s.canary_wait},
            {"canaryMaxFailure", s.canary_max_failure},
            {"allowRedacted", s.allow_redacted},
            {"unredacted", s.unredacted}};
  j["since"] = s.since ? json(*s.since) : json(nullptr);
  j["until"] = s.until ? json(*s.until) : json(nullptr);
  return j;
}

JobSpec SpecFromJson(const json& j) {
  JobSpec s;
  s.dlq = j.value("deadLetterQueue", std::string(kDefaultDeadLetterQueue));
  s.filter = j.value("filter", "");
  s.group = j.value("group", "");
  s.ticket = j.value("ticket", "");
  s.destination = j.value("destination", "");
  s.rate = j.value("rate", 0.0);
  if (int64_t canary = j.value("canary", int64_t{0}); canary > 0) s.canary = canary;
  s.canary_wait = j.value("canaryWait", DurationMs{30'000});
  s.canary_max_failure = j.value("canaryMaxFailure", 0.1);
  s.allow_redacted = j.value("allowRedacted", false);
  s.unredacted = j.value("unredacted", false);
  if (j.contains("since") && j["since"].is_number()) s.since = j["since"].get<TimeMs>();
  if (j.contains("until") && j["until"].is_number()) s.until = j["until"].get<TimeMs>();
  return s;
}

DeadLetterTarget TargetOf(const JobSpec& s) {
  DeadLetterTarget t;
  t.filter = s.filter;
  t.group = s.group;
  t.ticket = s.ticket;
  t.dlq = s.dlq;
  t.since = s.since;
  t.until = s.until;
  t.allow_redacted = s.allow_redacted;
  return t;
}

// A phase in a job's progress JSON, as the words of job_state.h.
std::string PhaseText(JobPhase phase) { return std::string(store::ToString(phase)); }

JobPhase PhaseOf(const json& progress, JobPhase otherwise) {
  JobPhase phase = otherwise;
  if (progress.contains("phase") && progress["phase"].is_string()) {
    (void)store::FromString(progress["phase"].get<std::string>(), &phase);
  }
  return phase;
}

}  // namespace

// ------------------------------------------------------------------ jobs

namespace {

Status ValidateSpec(const JobSpec& s) {
  if (s.rate < 0 || s.rate > 1e7) {
    return Status(ErrorCode::kInvalidArgument, "'rate' must be between 0 and 10000000");
  }
  if (s.canary && (*s.canary < 1 || *s.canary > kMaxCanary)) {
    return Status(ErrorCode::kInvalidArgument,
                  "'canary.count' must be between 1 and " + std::to_string(kMaxCanary));
  }
  if (s.canary_wait < 0 || s.canary_wait > 86'400'000) {
    return Status(ErrorCode::kInvalidArgument, "'canaryWait' must be between 0s and 1d");
  }
  if (!(s.canary_max_failure >= 0 && s.canary_max_failure <= 1)) {
    return Status(ErrorCode::kInvalidArgument, "'canaryMaxFailure' must be between 0 and 1");
  }
  if (s.since && s.until && *s.until <= *s.since) {
    return Status(ErrorCode::kInvalidArgument, "'until' must be after 'since'");
  }
  return Status::Ok();
}

}  // namespace

Result<DryRunResult> DeadLetters::DryRunJob(const std::string& tenant, const JobSpec& spec) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_RETURN_IF_ERROR(ValidateSpec(spec));
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, TargetOf(spec), !spec.unredacted));
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  return DryRun(*sel, snapshot, spec);
}

Result<DryRunResult> DeadLetters::DryRun(const Selector& sel,
                                         const store::DeadLetterSnapshot& snapshot,
                                         const JobSpec& spec) {
  DryRunResult r;
  int64_t cursor = 0;
  bool exhausted = false;
  while (!exhausted) {
    REDRIVE_ASSIGN_OR_RETURN(auto batch, NextMatches(sel, snapshot, 1000, &cursor, &exhausted));
    for (const auto& d : batch) {
      ++r.to_move;
      ++r.destinations[spec.destination.empty() ? d.origin : spec.destination];
      if (r.sample.size() < 10) r.sample.push_back(d.id);
    }
  }
  return r;
}

namespace {

JobInfo InfoOf(const store::JobRecord& j) {
  JobInfo info;
  info.id = j.id;
  info.tenant = j.tenant;
  info.state = j.state;
  json spec = json::parse(j.spec_json, nullptr, false);
  if (spec.is_object()) info.spec = SpecFromJson(spec);
  json p = json::parse(j.progress_json, nullptr, false);
  if (p.is_object()) {
    info.phase = PhaseOf(p, JobPhase::kBulk);
    info.to_move = p.value("toMove", int64_t{0});
    info.moved = p.value("moved", int64_t{0});
    info.skipped = p.value("skipped", int64_t{0});
    info.halt_reason = p.value("haltReason", "");
    info.error = p.value("error", "");
    info.created_by = p.value("createdBy", "");
  }
  info.created_at = j.created_at;
  info.updated_at = j.updated_at;
  info.finished_at = j.finished_at;
  return info;
}

}  // namespace

Result<JobInfo> DeadLetters::StartJob(const Principal& actor, const std::string& tenant,
                                      const JobSpec& requested) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  JobSpec spec = requested;
  spec.unredacted = SeesUnredacted(actor);
  REDRIVE_RETURN_IF_ERROR(ValidateSpec(spec));
  if (spec.ticket.empty() || !spec.dlq.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto dlq, control_.GetQueue(tenant, spec.dlq));
    if (!dlq || dlq->kind != store::QueueKind::kDeadLetter) {
      return Status(ErrorCode::kQueueNotFound, "dead-letter queue '" + spec.dlq + "' not found");
    }
  }
  if (!spec.destination.empty()) {
    REDRIVE_ASSIGN_OR_RETURN(auto q, queues_.Lookup(tenant, spec.destination));
    if (q->record.kind != store::QueueKind::kStandard) {
      return Status(ErrorCode::kDeadLetterQueueReadOnly,
                    "'" + spec.destination + "' is a dead-letter queue");
    }
  }
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(tenant, TargetOf(spec), !spec.unredacted));
  // What the job covers: the dead letters of this snapshot that match, found in seq order
  // behind a cursor, and nothing else (control_store.h, SnapshotDeadLetters). toMove counts
  // the same set.
  REDRIVE_ASSIGN_OR_RETURN(auto snapshot, control_.SnapshotDeadLetters(tenant));
  if (!spec.allow_redacted) REDRIVE_RETURN_IF_ERROR(RefuseRedacted(*sel, snapshot));
  store::DeadLetterScan count_scan = sel->scan;
  count_scan.snapshot = snapshot;
  int64_t to_move = 0;
  if (sel->covered) {
    REDRIVE_ASSIGN_OR_RETURN(to_move, control_.CountDeadLetters(count_scan));
  } else {
    REDRIVE_ASSIGN_OR_RETURN(auto dry, DryRun(*sel, snapshot, spec));
    to_move = dry.to_move;
  }
  TimeMs now = clock_.Now();
  store::JobRecord rec;
  rec.id = "job_" + NewUlid(now, random_);
  rec.tenant = tenant;
  rec.scope = spec.ticket.empty() ? spec.dlq : "ticket:" + spec.ticket;
  rec.state = JobState::kRunning;
  rec.spec_json = SpecJson(spec).dump();
  rec.progress_json = json{
      {"phase", PhaseText(spec.canary ? JobPhase::kCanary : JobPhase::kBulk)},
      {"toMove", to_move},
      {"moved", 0},
      {"skipped", 0},
      {"cursor", 0},
      {"maxSeq", snapshot.max_seq},
      {"canaryIds", json::array()},
      {"createdBy",
       actor.token_id}}.dump();
  if (!snapshot.visible.empty()) {
    json p = json::parse(rec.progress_json);
    p["snapshot"] = snapshot.visible;
    rec.progress_json = p.dump();
  }
  rec.created_at = rec.updated_at = now;
  Status st = control_.CreateJob(rec);
  if (st.code() == ErrorCode::kAlreadyExists) {
    return Status(ErrorCode::kJobActive, "a redrive job is already active on '" + spec.dlq + "'");
  }
  REDRIVE_RETURN_IF_ERROR(st);
  json detail = {{"job", rec.id}, {"spec", SpecJson(spec)}, {"toMove", to_move}};
  audit_.Write(tenant, actor.token_id, "job.start", std::move(detail));
  WakeRunner();
  return InfoOf(rec);
}

Result<JobInfo> DeadLetters::GetJob(const std::string& tenant, const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetJob(tenant, id));
  if (!rec) return Status(ErrorCode::kJobNotFound, "job '" + id + "' not found");
  JobInfo info = InfoOf(*rec);
  store::DeadLetterScan scan;
  scan.tenant = tenant;
  scan.redriven_by = "job:" + id;
  REDRIVE_ASSIGN_OR_RETURN(info.failed_again, control_.CountDeadLetters(scan));
  return info;
}

Result<std::vector<JobInfo>> DeadLetters::ListJobs(const std::string& tenant) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto recs, control_.ListJobs(tenant));
  std::vector<JobInfo> out;
  for (const auto& r : recs) out.push_back(InfoOf(r));
  return out;
}

Result<JobInfo> DeadLetters::CancelJob(const Principal& actor, const std::string& tenant,
                                       const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetJob(tenant, id));
  if (!rec) return Status(ErrorCode::kJobNotFound, "job '" + id + "' not found");
  if (!store::IsActive(rec->state)) {
    return Status(ErrorCode::kJobStateConflict,
                  "job '" + id + "' is " + std::string(store::ToString(rec->state)));
  }
  TimeMs now = clock_.Now();
  // A halted job is not moving anything: it is cancelled at once. A running one stops at the
  // end of the chunk it is in.
  const JobState was = rec->state;
  rec->state = was == JobState::kHalted ? JobState::kCancelled : JobState::kCancelling;
  if (rec->state == JobState::kCancelled) rec->finished_at = now;
  rec->updated_at = now;
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateJob(*rec, was));
  if (!saved) {
    return Status(ErrorCode::kJobStateConflict,
                  "job '" + id + "' changed state meanwhile; look at it again");
  }
  audit_.Write(tenant, actor.token_id, "job.cancel", json{{"job", id}});
  WakeRunner();
  return InfoOf(*rec);
}

Result<JobInfo> DeadLetters::ResumeJob(const Principal& actor, const std::string& tenant,
                                       const std::string& id) {
  REDRIVE_RETURN_IF_ERROR(tenancy_.EnsureTenant(tenant));
  REDRIVE_ASSIGN_OR_RETURN(auto rec, control_.GetJob(tenant, id));
  if (!rec) return Status(ErrorCode::kJobNotFound, "job '" + id + "' not found");
  if (rec->state != JobState::kHalted) {
    return Status(ErrorCode::kJobStateConflict, "only a halted job can be resumed; job '" + id +
                                                    "' is " +
                                                    std::string(store::ToString(rec->state)));
  }
  json p = json::parse(rec->progress_json, nullptr, false);
  p["phase"] = PhaseText(JobPhase::kBulk);
  p["haltReason"] = "";
  rec->progress_json = p.dump();
  rec->state = JobState::kRunning;
  rec->updated_at = clock_.Now();
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateJob(*rec, JobState::kHalted));
  if (!saved) {
    return Status(ErrorCode::kJobStateConflict,
                  "job '" + id + "' changed state meanwhile; look at it again");
  }
  audit_.Write(tenant, actor.token_id, "job.resume", json{{"job", id}});
  WakeRunner();
  return InfoOf(*rec);
}

Result<bool> DeadLetters::SaveJob(store::JobRecord& job, JobState expected) {
  REDRIVE_ASSIGN_OR_RETURN(bool saved, control_.UpdateJob(job, expected));
  if (saved) return true;
  // Someone changed the state meanwhile (a cancel): keep the progress this step made, under
  // the state they set.
  REDRIVE_ASSIGN_OR_RETURN(auto now_stored, control_.GetJob(job.tenant, job.id));
  if (!now_stored || now_stored->state != JobState::kCancelling) return false;
  job.state = now_stored->state;
  job.finished_at = 0;
  REDRIVE_RETURN_IF_ERROR(control_.UpdateJob(job, JobState::kCancelling).status());
  return false;
}

Result<int64_t> DeadLetters::StepJob(store::JobRecord& job, TimeMs now) {
  const JobState entry_state = job.state;
  json p = json::parse(job.progress_json, nullptr, false);
  if (!p.is_object()) p = json::object();
  auto finish = [&](JobState state) -> Status {
    job.state = state;
    job.finished_at = now;
    job.updated_at = now;
    p["phase"] = PhaseText(JobPhase::kDone);
    job.progress_json = p.dump();
    job_tokens_.erase(job.id);
    REDRIVE_ASSIGN_OR_RETURN(bool saved, SaveJob(job, entry_state));
    if (!saved) return Status::Ok();
    spdlog::info("redrive job {} of {} {}: moved {}, skipped {}", job.id, job.tenant,
                 store::ToString(state), p.value("moved", int64_t{0}),
                 p.value("skipped", int64_t{0}));
    audit_.Write(job.tenant, "system", "job." + std::string(store::ToString(state)),
                 json{{"job", job.id},
                      {"moved", p.value("moved", int64_t{0})},
                      {"skipped", p.value("skipped", int64_t{0})}});
    return Status::Ok();
  };
  if (job.state == JobState::kCancelling) {
    REDRIVE_RETURN_IF_ERROR(finish(JobState::kCancelled));
    return 0;
  }
  JobSpec spec = SpecFromJson(json::parse(job.spec_json, nullptr, false));
  JobPhase phase = PhaseOf(p, JobPhase::kBulk);

  if (phase == JobPhase::kCanaryWait) {
    if (now < p.value("canaryUntil", TimeMs{0})) return 0;
    // How many of the canary came back as dead letters?
    int64_t failed = 0, total = 0;
    for (const auto& id : p.value("canaryIds", json::array())) {
      ++total;
      REDRIVE_ASSIGN_OR_RETURN(auto d, control_.GetDeadLetter(job.tenant, id.get<std::string>()));
      if (d && d->lineage.last_redriven_by == "job:" + job.id) ++failed;
    }
    double share = total ? static_cast<double>(failed) / static_cast<double>(total) : 0.0;
    if (share > spec.canary_max_failure) {
      job.state = JobState::kHalted;
      job.updated_at = now;
      p["phase"] = PhaseText(JobPhase::kCanaryWait);
      p["haltReason"] = std::to_string(failed) + " of " + std::to_string(total) +
                        " canary messages failed again (more than " +
                        std::to_string(static_cast<int>(spec.canary_max_failure * 100)) + "%)";
      job.progress_json = p.dump();
      REDRIVE_ASSIGN_OR_RETURN(bool saved, SaveJob(job, entry_state));
      if (!saved) return 0;
      spdlog::warn("redrive job {} of {} halted: {}", job.id, job.tenant,
                   p["haltReason"].get<std::string>());
      audit_.Write(job.tenant, "system", "job.halted",
                   json{{"job", job.id}, {"reason", p["haltReason"]}});
      return 0;
    }
    p["phase"] = PhaseText(JobPhase::kBulk);
    phase = JobPhase::kBulk;
  }

  // How many this step may move: the chunk, the canary, and the rate limit.
  int64_t limit = options_.redrive_chunk;
  if (phase == JobPhase::kCanary) {
    limit = std::min<int64_t>(limit, *spec.canary - p.value("moved", 0));
  }
  if (spec.rate > 0) {
    // The bucket starts empty and holds at most a second's worth (at least one message).
    auto& bucket = job_tokens_.try_emplace(job.id, spec.rate, std::max(spec.rate, 1.0), 0.0, now)
                       .first->second;
    limit = std::min<int64_t>(limit, bucket.Available(now));
    if (limit <= 0) return 0;
  }

  DeadLetterTarget target = TargetOf(spec);
  REDRIVE_ASSIGN_OR_RETURN(auto sel, Compile(job.tenant, target, !spec.unredacted));
  int64_t cursor = p.value("cursor", int64_t{0});
  store::DeadLetterSnapshot snapshot{p.value("maxSeq", int64_t{0}), p.value("snapshot", "")};
  bool exhausted = false;
  REDRIVE_ASSIGN_OR_RETURN(
      auto batch, NextMatches(*sel, snapshot, static_cast<int>(std::max<int64_t>(limit, 1)),
                              &cursor, &exhausted));
  ActionResult r;
  REDRIVE_RETURN_IF_ERROR(
      MoveBatch(job.tenant, batch, spec.destination, "job:" + job.id, spec.allow_redacted, &r));
  if (spec.rate > 0) job_tokens_.at(job.id).Take(static_cast<double>(r.matched));
  p["cursor"] = cursor;
  p["moved"] = p.value("moved", int64_t{0}) + r.done;
  p["skipped"] = p.value("skipped", int64_t{0}) + r.skipped;
  if (phase == JobPhase::kCanary) {
    json ids = p.value("canaryIds", json::array());
    for (const auto& d : batch) {
      if (d.seq != 0) ids.push_back(d.id);
    }
    p["canaryIds"] = ids;
    if (p["moved"].get<int64_t>() >= *spec.canary || exhausted) {
      p["phase"] = PhaseText(JobPhase::kCanaryWait);
      p["canaryUntil"] = now + spec.canary_wait;
      exhausted = false;  // the check comes before completion
    }
  }
  job.updated_at = now;
  job.progress_json = p.dump();
  if (exhausted) {
    REDRIVE_RETURN_IF_ERROR(finish(JobState::kCompleted));
  } else {
    REDRIVE_RETURN_IF_ERROR(SaveJob(job, entry_state).status());
  }
  return r.done;
}

Result<int64_t> DeadLetters::RunJobsOnce() {
  std::lock_guard<std::mutex> l(jobs_mu_);
  REDRIVE_ASSIGN_OR_RETURN(auto jobs, control_.ListJobs(""));
  int64_t moved = 0;
  TimeMs now = clock_.Now();
  for (auto& job : jobs) {
    if (job.state != JobState::kRunning && job.state != JobState::kCancelling) continue;
    // One runner per job across nodes: the claim is renewed on every pass, so another node
    // takes the job over kJobClaimTtl after this one stops.
    const std::string claim = "job/" + job.id;
    if (!coordinator_.Claim(claim, coordinator_.node_id(), kJobClaimTtl)) continue;
    const JobState entry_state = job.state;
    auto r = StepJob(job, now);
    if (!r.ok() || job.finished_at != 0) coordinator_.Release(claim, coordinator_.node_id());
    if (!r.ok()) {
      spdlog::error("redrive job {} failed: {}", job.id, r.status().ToString());
      json p = json::parse(job.progress_json, nullptr, false);
      if (!p.is_object()) p = json::object();
      p["error"] = r.status().ToString();
      job.progress_json = p.dump();
      job.state = JobState::kFailed;
      job.finished_at = job.updated_at = now;
      (void)control_.UpdateJob(job, entry_state);
      audit_.Write(job.tenant, "system", "job.failed",
                   json{{"job", job.id}, {"error", p["error"]}});
      continue;
    }
    moved += r.value();
  }
  return moved;
}

}  // namespace redrive::engine
