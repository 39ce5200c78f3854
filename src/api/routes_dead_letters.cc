// RestApi::AddDeadLetterRoutes: the dead-letter workbench. Browsing (queries, one dead letter,
// failure groups, statistics) and the audited actions (delete, restore, reroute, purge).
#include <string_view>
#include <vector>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "common/text.h"
#include "engine/dead_letter_doc.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

json ActionResultJson(const engine::ActionResult& r) {
  json skipped = json::array();
  for (const auto& s : r.skipped_items) {
    skipped.push_back({{"id", s.id}, {"reason", s.reason}, {"detail", s.detail}});
  }
  return {
      {"matched", r.matched}, {"done", r.done}, {"skipped", r.skipped}, {"skippedItems", skipped}};
}

}  // namespace

void RestApi::AddDeadLetterRoutes() {
  using namespace engine;  // NOLINT: scope names
  // ---- dead letters: browse (never changes anything)
  const std::vector<std::string> kQueryParams = {"_queryFilter",
                                                 "_fields",
                                                 "_sortKeys",
                                                 "_pageSize",
                                                 "_pagedResultsCookie",
                                                 "_totalPagedResultsPolicy",
                                                 "queue",
                                                 "origin"};
  auto query_route = [this](const char* scope_param) {
    return [this, scope_param](Request& req, const PathParams& p,
                               const Principal& who) -> Result<Response> {
      engine::DeadLetterQuery q;
      q.unredacted = engine::SeesUnredacted(who);
      q.filter = std::string(req.Query("_queryFilter"));
      q.fields = std::string(req.Query("_fields"));
      q.sort_keys = std::string(req.Query("_sortKeys"));
      q.cookie = std::string(req.Query("_pagedResultsCookie"));
      q.total_policy = std::string(req.Query("_totalPagedResultsPolicy"));
      REDRIVE_ASSIGN_OR_RETURN(q.page_size, IntQuery(req, "_pageSize", 100));
      q.dlq = std::string(req.Query("queue"));
      q.origin = std::string(req.Query("origin"));
      if (std::string_view(scope_param) == "queue") q.origin = p.Get("queue");
      if (std::string_view(scope_param) == "group") q.group = p.Get("group");
      REDRIVE_ASSIGN_OR_RETURN(auto page,
                               engine_.dead_letters().QueryDeadLetters(p.Get("tenant"), q));
      return Json(200, {{"result", page.items},
                        {"resultCount", page.items.size()},
                        {"pagedResultsCookie",
                         page.next_cookie.empty() ? json(nullptr) : json(page.next_cookie)},
                        {"totalPagedResults", page.total},
                        {"remainingPagedResults", -1}});
    };
  };
  Add("GET", "/v1/tenants/{tenant}/dead-letters", "dead_letter_query", {kScopeDlqRead},
      query_route(""), kQueryParams);
  Add("GET", "/v1/tenants/{tenant}/queues/{queue}/dead-letters", "dead_letter_query_origin",
      {kScopeDlqRead}, query_route("queue"), kQueryParams);
  Add("GET", "/v1/tenants/{tenant}/failure-groups/{group}/dead-letters", "dead_letter_query_group",
      {kScopeDlqRead}, query_route("group"), kQueryParams);
  Add("GET", "/v1/tenants/{tenant}/dead-letters/{id}", "dead_letter_get", {kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto d, engine_.dead_letters().GetDeadLetter(who, p.Get("tenant"), p.Get("id")));
        return Json(200, engine::DeadLetterDocument(d));
      });
  Add("GET", "/v1/tenants/{tenant}/failure-groups", "failure_groups", {kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto groups, engine_.dead_letters().ListFailureGroups(p.Get("tenant"),
                                                                  std::string(req.Query("queue"))));
        json items = json::array();
        for (const auto& [g, diagnosis] : groups) {
          items.push_back(
              {{"id", g.group_id},
               {"signature", g.signature},
               {"origin", g.origin},
               {"reason", g.reason},
               {"count", g.count},
               {"firstSeen", FormatTime(g.first_seen)},
               {"lastSeen", FormatTime(g.last_seen)},
               {"origins", json::array({g.origin})},
               {"sampleIds", g.sample_ids},
               {"diagnosis", diagnosis ? engine::DiagnosisToJson(*diagnosis) : json(nullptr)}});
        }
        return Json(200, {{"groups", items}});
      },
      {"queue"});
  Add("GET", "/v1/tenants/{tenant}/dead-letter-stats", "dead_letter_stats", {kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto st, engine_.dead_letters().GetDeadLetterStats(
                                              p.Get("tenant"), std::string(req.Query("queue"))));
        auto rows = [](const std::vector<store::CountRow>& v, bool hours) {
          json j = json::object();
          for (const auto& r : v) {
            j[hours ? FormatTime(std::stoll(r.key)) : r.key] = r.count;
          }
          return j;
        };
        return Json(200, {{"total", st.total},
                          {"byOrigin", rows(st.by_origin, false)},
                          {"byReason", rows(st.by_reason, false)},
                          {"byGroup", rows(st.by_group, false)},
                          {"byHour", rows(st.by_hour, true)}});
      },
      {"queue"});

  // ---- dead letters: actions (each audited)
  Add("DELETE", "/v1/tenants/{tenant}/dead-letters/{id}", "dead_letter_delete", {kScopeDlqWrite},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        engine::DeadLetterTarget t;
        t.ids = {p.Get("id")};
        REDRIVE_RETURN_IF_ERROR(
            engine_.dead_letters().DeleteDeadLetters(who, p.Get("tenant"), t).status());
        return NoContent();
      });
  Add("POST", "/v1/tenants/{tenant}/dead-letters/{id}/restore", "dead_letter_restore_one",
      {kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        engine::DeadLetterTarget t;
        t.ids = {p.Get("id")};
        // The body is optional: {"allowRedacted": true} at most.
        if (!req.body.empty()) {
          REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
          REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"allowRedacted"}));
          REDRIVE_ASSIGN_OR_RETURN(auto allow, GetBool(body, "allowRedacted"));
          t.allow_redacted = allow.value_or(false);
        }
        REDRIVE_ASSIGN_OR_RETURN(
            auto r, engine_.dead_letters().RestoreDeadLetters(who, p.Get("tenant"), t));
        return Json(200, ActionResultJson(r));
      });
  Add("POST", "/v1/tenants/{tenant}/dead-letters/{id}/reroute", "dead_letter_reroute_one",
      {kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"destination", "allowRedacted"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string dest, RequiredString(body, "destination"));
        engine::DeadLetterTarget t;
        t.ids = {p.Get("id")};
        REDRIVE_ASSIGN_OR_RETURN(auto allow, GetBool(body, "allowRedacted"));
        t.allow_redacted = allow.value_or(false);
        REDRIVE_ASSIGN_OR_RETURN(
            auto r, engine_.dead_letters().RerouteDeadLetters(who, p.Get("tenant"), t, dest));
        return Json(200, ActionResultJson(r));
      });
  auto bulk = [this](const char* action) {
    return [this, action](Request& req, const PathParams& p,
                          const Principal& who) -> Result<Response> {
      REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
      std::string_view a(action);
      if (a == "reroute") {
        REDRIVE_RETURN_IF_ERROR(
            OnlyFields(body, {"ids", "filter", "group", "deadLetterQueue", "since", "until",
                              "destination", "allowRedacted"}));
      } else if (a == "restore") {
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"ids", "filter", "group", "deadLetterQueue",
                                                  "since", "until", "allowRedacted"}));
      } else {
        REDRIVE_RETURN_IF_ERROR(
            OnlyFields(body, {"ids", "filter", "group", "deadLetterQueue", "since", "until"}));
      }
      REDRIVE_ASSIGN_OR_RETURN(auto target, TargetFromJson(body));
      Result<engine::ActionResult> r = Status(ErrorCode::kInternal, "");
      if (a == "delete") {
        r = engine_.dead_letters().DeleteDeadLetters(who, p.Get("tenant"), target);
      } else if (a == "restore") {
        r = engine_.dead_letters().RestoreDeadLetters(who, p.Get("tenant"), target);
      } else {
        REDRIVE_ASSIGN_OR_RETURN(std::string dest, RequiredString(body, "destination"));
        r = engine_.dead_letters().RerouteDeadLetters(who, p.Get("tenant"), target, dest);
      }
      if (!r.ok()) return r.status();
      return Json(200, ActionResultJson(r.value()));
    };
  };
  Add("POST", "/v1/tenants/{tenant}/dead-letters/delete", "dead_letter_delete_bulk",
      {kScopeDlqWrite}, bulk("delete"));
  Add("POST", "/v1/tenants/{tenant}/dead-letters/restore", "dead_letter_restore_bulk",
      {kScopeDlqWrite}, bulk("restore"));
  Add("POST", "/v1/tenants/{tenant}/dead-letters/reroute", "dead_letter_reroute_bulk",
      {kScopeDlqWrite}, bulk("reroute"));
  Add("POST", "/v1/tenants/{tenant}/dead-letter-queues/{queue}/purge", "dead_letter_purge",
      {kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"confirm"}));
        REDRIVE_ASSIGN_OR_RETURN(auto confirm, GetString(body, "confirm"));
        REDRIVE_ASSIGN_OR_RETURN(auto r,
                                 engine_.dead_letters().PurgeDeadLetterQueue(
                                     who, p.Get("tenant"), p.Get("queue"), confirm.value_or("")));
        return Json(200, ActionResultJson(r));
      });
}

}  // namespace redrive::api
