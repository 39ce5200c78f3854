// The helpers api_internal.h declares, shared by the route groups (routes_*.cc).
#include <cctype>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_internal.h"
#include "common/text.h"

namespace redrive::api {

using http::Request;
using http::Response;

namespace {

Result<std::optional<TimeMs>> OptionalTime(const json& body, const char* field) {
  REDRIVE_ASSIGN_OR_RETURN(auto text, GetString(body, field));
  if (!text) return std::optional<TimeMs>();
  auto t = ParseTime(*text);
  if (!t.ok()) {
    return Status(ErrorCode::kInvalidArgument,
                  "'" + std::string(field) + "': " + t.status().message());
  }
  return std::optional<TimeMs>(t.value());
}

}  // namespace

Response Json(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Response NoContent() {
  Response r;
  r.status = 204;
  r.content_type = "application/json";
  return r;
}

Status RequireJsonBody(const Request& req) {
  // The media type before any parameter (";charset=utf-8"), case-insensitively.
  std::string_view ct = req.Header("content-type");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  std::string type(ct);
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type != "application/json") {
    return Status(ErrorCode::kUnsupportedMediaType,
                  "send the body as application/json (Content-Type header)");
  }
  return Status::Ok();
}

Result<json> Body(const Request& req) {
  REDRIVE_RETURN_IF_ERROR(RequireJsonBody(req));
  return ParseObject(req.body);
}

Result<std::string> RequiredString(const json& body, const char* field) {
  REDRIVE_ASSIGN_OR_RETURN(auto v, GetString(body, field));
  if (!v) return Status(ErrorCode::kMissingField, "'" + std::string(field) + "' is required");
  return *v;
}

Result<bool> BoolQuery(const Request& req, const char* name) {
  bool found = false;
  std::string_view v = req.Query(name, &found);
  if (!found || v == "false") return false;
  if (v == "true") return true;
  return Status(ErrorCode::kInvalidQuery, "'" + std::string(name) + "' must be true or false");
}

Result<int> IntQuery(const Request& req, const char* name, int def) {
  bool found = false;
  std::string_view v = req.Query(name, &found);
  if (!found) return def;
  int n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return Status(ErrorCode::kInvalidQuery, "'" + std::string(name) + "' must be an integer");
  }
  return n;
}

Result<engine::DeadLetterTarget> TargetFromJson(const json& body) {
  engine::DeadLetterTarget t;
  if (auto it = body.find("ids"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return Status(ErrorCode::kInvalidArgument, "'ids' must be an array");
    for (const auto& id : *it) {
      if (!id.is_string()) return Status(ErrorCode::kInvalidArgument, "'ids' must hold strings");
      t.ids.push_back(id.get<std::string>());
    }
    if (t.ids.empty()) return Status(ErrorCode::kEmptyBatch, "'ids' is empty");
  }
  REDRIVE_ASSIGN_OR_RETURN(auto filter, GetString(body, "filter"));
  t.filter = filter.value_or("");
  REDRIVE_ASSIGN_OR_RETURN(auto group, GetString(body, "group"));
  t.group = group.value_or("");
  REDRIVE_ASSIGN_OR_RETURN(auto dlq, GetString(body, "deadLetterQueue"));
  t.dlq = dlq.value_or("");
  REDRIVE_ASSIGN_OR_RETURN(t.since, OptionalTime(body, "since"));
  REDRIVE_ASSIGN_OR_RETURN(t.until, OptionalTime(body, "until"));
  REDRIVE_ASSIGN_OR_RETURN(auto allow, GetBool(body, "allowRedacted"));
  t.allow_redacted = allow.value_or(false);
  return t;
}

Result<engine::AuditQuery> AuditQueryOf(const Request& req) {
  engine::AuditQuery q;
  q.filter = std::string(req.Query("_queryFilter"));
  q.cookie = std::string(req.Query("_pagedResultsCookie"));
  REDRIVE_ASSIGN_OR_RETURN(q.page_size, IntQuery(req, "_pageSize", 100));
  return q;
}

Response AuditPage(const engine::AuditQueryResult& r) {
  return Json(
      200, {{"result", r.items},
            {"resultCount", r.items.size()},
            {"pagedResultsCookie", r.next_cookie.empty() ? json(nullptr) : json(r.next_cookie)}});
}

}  // namespace redrive::api
