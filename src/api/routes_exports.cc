// RestApi::AddExportRoutes: export jobs of dead letters (start, list, show, cancel, download).
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "common/text.h"
#include "http/file_response.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

json ExportJson(const engine::ExportInfo& e) {
  const std::string self = "/v1/tenants/" + e.tenant + "/exports/" + e.id;
  auto time_or_null = [](TimeMs t) { return t ? json(FormatTime(t)) : json(nullptr); };
  json spec = {{"filter", e.spec.filter.empty() ? json(nullptr) : json(e.spec.filter)},
               {"group", e.spec.group.empty() ? json(nullptr) : json(e.spec.group)},
               {"deadLetterQueue", e.spec.dlq.empty() ? json(nullptr) : json(e.spec.dlq)},
               {"origin", e.spec.origin.empty() ? json(nullptr) : json(e.spec.origin)},
               {"since", e.spec.since ? json(FormatTime(*e.spec.since)) : json(nullptr)},
               {"until", e.spec.until ? json(FormatTime(*e.spec.until)) : json(nullptr)},
               {"includeExported", e.spec.include_exported}};
  // Whether the file shows values as a token without dlq:read-unredacted sees them.
  json redacted = e.spec.redacted;
  json progress = nullptr;
  if (e.state == "completed") {
    progress = 1.0;
  } else if (e.total > 0) {
    progress = std::min(1.0, static_cast<double>(e.count) / static_cast<double>(e.total));
  } else if (e.total == 0) {
    progress = 1.0;
  }
  return {{"id", e.id},
          {"state", e.state},
          {"spec", spec},
          {"redacted", redacted},
          {"count", e.count},
          {"total", e.total < 0 ? json(nullptr) : json(e.total)},
          {"progress", progress},
          {"bytes", e.bytes},
          {"gzipBytes", e.state == "completed" ? json(e.gzip_bytes) : json(nullptr)},
          {"error", e.error.empty() ? json(nullptr) : json(e.error)},
          {"createdBy", e.created_by},
          {"createdAt", FormatTime(e.created_at)},
          {"updatedAt", FormatTime(e.updated_at)},
          {"finishedAt", time_or_null(e.finished_at)},
          {"_links", {{"self", self}, {"download", self + "/file"}}}};
}

Result<engine::ExportSpec> SpecFromJson(const json& body) {
  REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"filter", "group", "deadLetterQueue", "origin", "topic",
                                            "subscription", "since", "until", "includeExported"}));
  REDRIVE_ASSIGN_OR_RETURN(engine::DeadLetterTarget t, TargetFromJson(body));
  engine::ExportSpec s;
  s.filter = t.filter;
  s.group = t.group;
  s.dlq = t.dlq;
  s.since = t.since;
  s.until = t.until;
  REDRIVE_ASSIGN_OR_RETURN(auto origin, GetString(body, "origin"));
  REDRIVE_ASSIGN_OR_RETURN(auto topic, GetString(body, "topic"));
  REDRIVE_ASSIGN_OR_RETURN(auto subscription, GetString(body, "subscription"));
  if (subscription && !topic) {
    return Status(ErrorCode::kInvalidArgument, "'subscription' needs its 'topic'");
  }
  if (topic && origin) {
    return Status(ErrorCode::kInvalidArgument, "give 'origin', or 'topic' and 'subscription'");
  }
  if (topic && !subscription) {
    // The topic's own dead letters: those no subscription took (no-route).
    s.origin = *topic;
  } else if (topic) {
    s.origin = *topic + ":" + *subscription;
  } else if (origin) {
    s.origin = *origin;
  }
  REDRIVE_ASSIGN_OR_RETURN(auto include, GetBool(body, "includeExported"));
  s.include_exported = include.value_or(false);
  return s;
}

// Whether Accept-Encoding takes gzip (not "gzip;q=0").
bool AcceptsGzip(const Request& req) {
  std::string v(req.Header("accept-encoding"));
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = v.find("gzip");
  if (at == std::string::npos) return false;
  size_t end = v.find(',', at);
  std::string item = v.substr(at, end == std::string::npos ? std::string::npos : end - at);
  item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
  return item.find("q=0") == std::string::npos || item.find("q=0.") != std::string::npos;
}

}  // namespace

void RestApi::AddExportRoutes() {
  using namespace engine;  // NOLINT: scope names
  const std::string kExports = "/v1/tenants/{tenant}/exports";
  Add("POST", kExports, "export_start", {kScopeDlqExport},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_ASSIGN_OR_RETURN(auto spec, SpecFromJson(body));
        REDRIVE_ASSIGN_OR_RETURN(auto e,
                                 engine_.dead_letters().StartExport(who, p.Get("tenant"), spec));
        return Json(202, ExportJson(e));
      });
  Add("GET", kExports, "export_list", {kScopeDlqExport, kScopeDlqRead},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.dead_letters().ListExports(p.Get("tenant")));
        json items = json::array();
        for (const auto& e : list) items.push_back(ExportJson(e));
        return Json(200, {{"exports", items}});
      });
  Add("GET", kExports + "/{export}", "export_get", {kScopeDlqExport, kScopeDlqRead},
      [this](Request&, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto e, engine_.dead_letters().GetExport(p.Get("tenant"), p.Get("export")));
        return Json(200, ExportJson(e));
      });
  // The file: NDJSON; the stored gzip copy with ?gzip=true (as a .gz file) or with
  // Accept-Encoding: gzip (as Content-Encoding); ranges, ETag and Content-Length either way.
  Add("GET", kExports + "/{export}/file", "export_download", {kScopeDlqExport},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(bool gz_file, BoolQuery(req, "gzip"));
        bool encoded = !gz_file && AcceptsGzip(req);
        const std::string id = p.Get("export");
        REDRIVE_ASSIGN_OR_RETURN(auto f, engine_.dead_letters().GetExportFile(
                                             who, p.Get("tenant"), id, gz_file || encoded));
        std::vector<std::pair<std::string, std::string>> headers = {
            {"content-disposition",
             "attachment; filename=\"" + id + (gz_file ? ".ndjson.gz\"" : ".ndjson\"")},
            {"vary", "Accept-Encoding"}};
        if (encoded) headers.emplace_back("content-encoding", "gzip");
        return http::FileResponse(req, f.path,
                                  gz_file ? "application/gzip" : "application/x-ndjson", f.etag,
                                  std::move(headers));
      },
      {"gzip"});
  Add("POST", kExports + "/{export}/cancel", "export_cancel", {kScopeDlqExport},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {}));
        REDRIVE_ASSIGN_OR_RETURN(
            auto e, engine_.dead_letters().CancelExport(who, p.Get("tenant"), p.Get("export")));
        return Json(200, ExportJson(e));
      });
}

}  // namespace redrive::api
