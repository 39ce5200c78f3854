// RestApi::AddJobRoutes: redrive jobs (start or dry run, list, get, cancel, resume), the job
// spec read from a body and the JSON form of a job.
#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "common/text.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

Result<engine::JobSpec> JobSpecFromJson(const json& body) {
  engine::JobSpec s;
  // A job's source is a target without ids (the route refuses an "ids" field).
  REDRIVE_ASSIGN_OR_RETURN(auto target, TargetFromJson(body));
  if (!target.dlq.empty()) s.dlq = target.dlq;
  s.filter = target.filter;
  s.group = target.group;
  s.since = target.since;
  s.until = target.until;
  s.allow_redacted = target.allow_redacted;
  REDRIVE_ASSIGN_OR_RETURN(auto dest, GetString(body, "destination"));
  s.destination = dest.value_or("");
  if (auto it = body.find("rate"); it != body.end() && !it->is_null()) {
    if (!it->is_number()) return Status(ErrorCode::kInvalidArgument, "'rate' must be a number");
    s.rate = it->get<double>();
  }
  if (auto it = body.find("canary"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Status(ErrorCode::kInvalidArgument, "'canary' must be an object");
    REDRIVE_RETURN_IF_ERROR(OnlyFields(*it, {"count", "wait", "maxFailure"}, "canary."));
    REDRIVE_ASSIGN_OR_RETURN(auto count, GetInt(*it, "count"));
    if (!count) return Status(ErrorCode::kMissingField, "'canary.count' is required");
    s.canary = *count;  // the engine checks the range (1 to kMaxCanary)
    REDRIVE_ASSIGN_OR_RETURN(auto wait, GetDuration(*it, "wait"));
    if (wait) s.canary_wait = *wait;
    if (auto m = it->find("maxFailure"); m != it->end() && !m->is_null()) {
      if (!m->is_number()) {
        return Status(ErrorCode::kInvalidArgument, "'canary.maxFailure' must be a number");
      }
      s.canary_max_failure = m->get<double>();
    }
  }
  return s;
}

json JobJson(const engine::JobInfo& j) {
  json spec = {
      {"deadLetterQueue", j.spec.dlq.empty() ? json(nullptr) : json(j.spec.dlq)},
      {"ticket", j.spec.ticket.empty() ? json(nullptr) : json(j.spec.ticket)},
      {"filter", j.spec.filter.empty() ? json(nullptr) : json(j.spec.filter)},
      {"group", j.spec.group.empty() ? json(nullptr) : json(j.spec.group)},
      {"since", j.spec.since ? json(FormatTime(*j.spec.since)) : json(nullptr)},
      {"until", j.spec.until ? json(FormatTime(*j.spec.until)) : json(nullptr)},
      {"destination", j.spec.destination.empty() ? json(nullptr) : json(j.spec.destination)},
      {"rate", j.spec.rate},
      {"allowRedacted", j.spec.allow_redacted}};
  spec["canary"] = j.spec.canary ? json{{"count", *j.spec.canary},
                                        {"wait", FormatDuration(j.spec.canary_wait)},
                                        {"maxFailure", j.spec.canary_max_failure}}
                                 : json(nullptr);
  return {{"id", j.id},
          {"state", std::string(store::ToString(j.state))},
          {"phase", std::string(store::ToString(j.phase))},
          {"spec", spec},
          {"progress",
           {{"toMove", j.to_move},
            {"moved", j.moved},
            {"skipped", j.skipped},
            {"failedAgain", j.failed_again}}},
          {"haltReason", j.halt_reason.empty() ? json(nullptr) : json(j.halt_reason)},
          {"error", j.error.empty() ? json(nullptr) : json(j.error)},
          {"createdBy", j.created_by},
          {"createdAt", FormatTime(j.created_at)},
          {"updatedAt", FormatTime(j.updated_at)},
          {"finishedAt", j.finished_at ? json(FormatTime(j.finished_at)) : json(nullptr)}};
}

}  // namespace

void RestApi::AddJobRoutes() {
  using namespace engine;  // NOLINT: scope names
  Add("POST", "/v1/tenants/{tenant}/redrive-jobs", "job_start", {kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(
            OnlyFields(body, {"deadLetterQueue", "filter", "group", "since", "until", "destination",
                              "rate", "canary", "dryRun", "allowRedacted"}));
        REDRIVE_ASSIGN_OR_RETURN(auto spec, JobSpecFromJson(body));
        spec.unredacted = engine::SeesUnredacted(who);
        REDRIVE_ASSIGN_OR_RETURN(auto dry, GetBool(body, "dryRun"));
        if (dry.value_or(false)) {
          REDRIVE_ASSIGN_OR_RETURN(auto r, engine_.dead_letters().DryRunJob(p.Get("tenant"), spec));
          return Json(200, {{"dryRun", true},
                            {"toMove", r.to_move},
                            {"destinations", r.destinations},
                            {"sample", r.sample}});
        }
        REDRIVE_ASSIGN_OR_RETURN(auto job,
                                 engine_.dead_letters().StartJob(who, p.Get("tenant"), spec));
        return Json(201, JobJson(job));
      });
  Add("GET", "/v1/tenants/{tenant}/redrive-jobs", "job_list", {kScopeDlqRead},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto jobs, engine_.dead_letters().ListJobs(p.Get("tenant")));
        json items = json::array();
        for (const auto& j : jobs) items.push_back(JobJson(j));
        return Json(200, {{"jobs", items}});
      });
  Add("GET", "/v1/tenants/{tenant}/redrive-jobs/{job}", "job_get", {kScopeDlqRead},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto job,
                                 engine_.dead_letters().GetJob(p.Get("tenant"), p.Get("job")));
        return Json(200, JobJson(job));
      });
  Add("POST", "/v1/tenants/{tenant}/redrive-jobs/{job}/cancel", "job_cancel", {kScopeDlqWrite},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto job, engine_.dead_letters().CancelJob(who, p.Get("tenant"), p.Get("job")));
        return Json(200, JobJson(job));
      });
  Add("POST", "/v1/tenants/{tenant}/redrive-jobs/{job}/resume", "job_resume", {kScopeDlqWrite},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto job, engine_.dead_letters().ResumeJob(who, p.Get("tenant"), p.Get("job")));
        return Json(200, JobJson(job));
      });
}

}  // namespace redrive::api
