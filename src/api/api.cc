#include "api/api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <future>
#include <sstream>

#include "api/json_io.h"
#include "api/json_writer.h"
#include "api/publish_decoder.h"
#include "common/text.h"
#include "engine/dead_letter_doc.h"

namespace redrive::api {
namespace {

using engine::Principal;
using http::Request;
using http::Response;

// Splits a raw (still percent-encoded) path at '/', then decodes each segment, so an encoded
// slash stays inside its segment. False when an escape is malformed.
bool SplitPath(std::string_view path, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string segment;
    if (!http::PercentDecode(path.substr(i, j - i), &segment, false)) return false;
    out->push_back(std::move(segment));
    i = j;
  }
  return true;
}

Response Json(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// An answer written by JsonWriter (the message routes).
Response JsonText(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
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

// Rejects query parameters the route does not take.
Status OnlyQuery(const Request& req, const std::vector<std::string>& allowed) {
  for (const auto& [k, v] : req.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return Status(ErrorCode::kUnknownField, "unknown query parameter '" + k + "'");
    }
  }
  return Status::Ok();
}

using engine::OptTime;

json ActionResultJson(const engine::ActionResult& r) {
  json skipped = json::array();
  for (const auto& s : r.skipped_items) {
    skipped.push_back({{"id", s.id}, {"reason", s.reason}, {"detail", s.detail}});
  }
  return {
      {"matched", r.matched}, {"done", r.done}, {"skipped", r.skipped}, {"skippedItems", skipped}};
}

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
  return t;
}

Result<engine::JobSpec> JobSpecFromJson(const json& body) {
  engine::JobSpec s;
  // A job's source is a target without ids (the route refuses an "ids" field).
  REDRIVE_ASSIGN_OR_RETURN(auto target, TargetFromJson(body));
  if (!target.dlq.empty()) s.dlq = target.dlq;
  s.filter = target.filter;
  s.group = target.group;
  s.since = target.since;
  s.until = target.until;
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
    s.canary = *count;  // the engine checks the range
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
      {"deadLetterQueue", j.spec.dlq},
      {"filter", j.spec.filter.empty() ? json(nullptr) : json(j.spec.filter)},
      {"group", j.spec.group.empty() ? json(nullptr) : json(j.spec.group)},
      {"since", j.spec.since ? json(FormatTime(*j.spec.since)) : json(nullptr)},
      {"until", j.spec.until ? json(FormatTime(*j.spec.until)) : json(nullptr)},
      {"destination", j.spec.destination.empty() ? json(nullptr) : json(j.spec.destination)},
      {"rate", j.spec.rate}};
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

json QueueJson(const engine::QueueInfo& q) {
  bool dlq = q.kind == store::QueueKind::kDeadLetter;
  json j = {{"name", q.name},
            {"kind", dlq ? "dead-letter" : "standard"},
            {"depth",
             {{"ready", q.depth.ready},
              {"delayed", q.depth.delayed},
              {"leased", q.depth.leased},
              {"deadLettered", q.depth.dead_lettered}}},
            {"createdAt", FormatTime(q.created_at)},
            {"updatedAt", FormatTime(q.updated_at)}};
  j["attributes"] = dlq ? json(nullptr) : engine::QueueConfigToJson(q.config);
  return j;
}

// Never the secret nor its hash: only a creation or rotation answer adds "token".
json TokenJson(const engine::TokenInfo& t) {
  return {{"id", t.id},
          {"tenant", t.tenant.empty() ? json(nullptr) : json(t.tenant)},
          {"label", t.label},
          {"scopes", t.scopes},
          {"state", t.state},
          {"createdAt", FormatTime(t.created_at)},
          {"expiresAt", OptTime(t.expires_at)},
          {"revokedAt", OptTime(t.revoked_at)},
          {"lastUsedAt", OptTime(t.last_used_at)},
          {"replacedBy", t.replaced_by.empty() ? json(nullptr) : json(t.replaced_by)}};
}

json NewTokenJson(const engine::NewToken& t) {
  json j = TokenJson(t.info);
  j["token"] = t.secret;
  if (!t.replaces.empty()) {
    j["replaces"] = {{"id", t.replaces}, {"expiresAt", FormatTime(t.replaces_until)}};
  }
  return j;
}

// The list form; `detailed` (GET of one tenant) adds the effective quotas and the usage.
json TenantJson(const engine::TenantInfo& t, bool detailed = false) {
  json j = {{"name", t.name},
            {"state", t.deleting ? "deleting" : "active"},
            {"createdAt", FormatTime(t.created_at)},
            {"quotaOverrides", engine::QuotaOverridesToJson(t.overrides)}};
  if (detailed) {
    j["quotas"] = engine::TenantQuotasToJson(t.quotas);
    j["usage"] = {
        {"queues", t.usage.queues}, {"messages", t.usage.messages}, {"bytes", t.usage.bytes}};
  }
  return j;
}

// Reads "quotas" of a body into *o (merged over what it holds). Absent: nothing changes.
Status QuotasFromJson(const json& body, engine::QuotaOverrides* o) {
  auto it = body.find("quotas");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return Status(ErrorCode::kInvalidArgument, "'quotas' must be an object");
  return engine::ApplyQuotaOverridesJson(*it, o);
}

// A token body's optional "expiresIn" duration.
Result<std::optional<DurationMs>> ExpiresIn(const json& body) {
  return GetDuration(body, "expiresIn");
}

// A rotation body: {"overlap": "1h", "expiresIn": "90d"}, both optional; the body itself is
// optional too (no body = the default overlap).
Result<std::pair<DurationMs, std::optional<DurationMs>>> RotationFromRequest(const Request& req) {
  std::pair<DurationMs, std::optional<DurationMs>> out{engine::kDefaultRotationOverlap,
                                                       std::nullopt};
  if (req.body.empty()) return out;
  REDRIVE_RETURN_IF_ERROR(RequireJsonBody(req));
  REDRIVE_ASSIGN_OR_RETURN(json body, ParseObject(req.body));
  REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"overlap", "expiresIn"}));
  REDRIVE_ASSIGN_OR_RETURN(auto overlap, GetDuration(body, "overlap"));
  if (overlap) out.first = *overlap;
  REDRIVE_ASSIGN_OR_RETURN(out.second, ExpiresIn(body));
  return out;
}

Result<bool> BoolQuery(const Request& req, const char* name) {
  bool found = false;
  std::string_view v = req.Query(name, &found);
  if (!found || v == "false") return false;
  if (v == "true") return true;
  return Status(ErrorCode::kInvalidQuery, "'" + std::string(name) + "' must be true or false");
}

Response AuditPage(const engine::AuditQueryResult& r) {
  return Json(
      200, {{"result", r.items},
            {"resultCount", r.items.size()},
            {"pagedResultsCookie", r.next_cookie.empty() ? json(nullptr) : json(r.next_cookie)}});
}

// Per-item results of a batch call: HTTP 200 with each item's outcome.
json ItemResults(const std::vector<std::string>& receipts, const std::vector<Status>& results) {
  json items = json::array();
  int64_t ok = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    json item = {{"receipt", receipts[i]}};
    if (results[i].ok()) {
      item["status"] = "ok";
      ++ok;
    } else {
      item["status"] = "error";
      item["error"] = {{"code", GetErrorInfo(results[i].code()).wire_code},
                       {"message", results[i].message()}};
    }
    items.push_back(std::move(item));
  }
  return {
      {"succeeded", ok}, {"failed", static_cast<int64_t>(results.size()) - ok}, {"results", items}};
}

Result<std::vector<std::string>> ReceiptList(const json& body) {
  auto it = body.find("receipts");
  if (it == body.end()) return Status(ErrorCode::kMissingField, "'receipts' is required");
  if (!it->is_array()) return Status(ErrorCode::kInvalidArgument, "'receipts' must be an array");
  std::vector<std::string> out;
  for (const auto& r : *it) {
    if (!r.is_string()) {
      return Status(ErrorCode::kInvalidArgument, "'receipts' must hold strings");
    }
    out.push_back(r.get<std::string>());
  }
  return out;
}

Result<std::string> RequiredString(const json& body, const char* field) {
  REDRIVE_ASSIGN_OR_RETURN(auto v, GetString(body, field));
  if (!v) return Status(ErrorCode::kMissingField, "'" + std::string(field) + "' is required");
  return *v;
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

Result<engine::AuditQuery> AuditQueryOf(const Request& req) {
  engine::AuditQuery q;
  q.filter = std::string(req.Query("_queryFilter"));
  q.cookie = std::string(req.Query("_pagedResultsCookie"));
  REDRIVE_ASSIGN_OR_RETURN(q.page_size, IntQuery(req, "_pageSize", 100));
  return q;
}

}  // namespace

const std::string& PathParams::Get(std::string_view name) const {
  static const std::string kEmpty;
  for (const auto& [k, v] : values) {
    if (k == name) return v;
  }
  return kEmpty;
}

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++buckets_[i];
  ++count_;
  sum_micros_ += static_cast<int64_t>(seconds * 1e6);
}

void LatencyHistogram::Render(const std::string& labels, std::string* out) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i];
    std::ostringstream le;
    le << kBounds[i];
    *out += "redrive_http_request_duration_seconds_bucket{" + labels + ",le=\"" + le.str() +
            "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += buckets_[kBounds.size()];
  *out += "redrive_http_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
          std::to_string(cumulative) + "\n";
  std::ostringstream sum;
  sum << static_cast<double>(sum_micros_) / 1e6;
  *out += "redrive_http_request_duration_seconds_sum{" + labels + "} " + sum.str() + "\n";
  *out += "redrive_http_request_duration_seconds_count{" + labels + "} " + std::to_string(count_) +
          "\n";
}

Response StatusResponse(const Status& status) {
  const auto& info = GetErrorInfo(status.code());
  if (status.code() == ErrorCode::kInternal || status.code() == ErrorCode::kStoreFailed) {
    spdlog::error("request failed: {}", status.ToString());
  }
  return http::ErrorResponse(info.http_status, info.wire_code, status.message());
}

void RestApi::Add(std::string method, std::string pattern, std::string name,
                  std::vector<std::string> scopes, RouteHandler handler,
                  std::vector<std::string> query) {
  Route r;
  SplitPath(pattern, &r.segments);
  r.info = RouteInfo{std::move(method), std::move(pattern), std::move(name), std::move(scopes),
                     std::move(query)};
  r.handler = std::move(handler);
  r.latency = std::make_unique<LatencyHistogram>();
  routes_.push_back(std::move(r));
}

void RestApi::AddAsync(std::string method, std::string pattern, std::string name,
                       std::vector<std::string> scopes, AsyncRouteHandler handler,
                       std::vector<std::string> query) {
  Add(std::move(method), std::move(pattern), std::move(name), std::move(scopes), nullptr,
      std::move(query));
  routes_.back().async_handler = std::move(handler);
}

std::vector<RouteInfo> RestApi::Routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back(r.info);
  return out;
}

RestApi::RestApi(engine::Engine& engine) : engine_(engine) {
  using namespace engine;  // NOLINT: scope names
  const std::vector<std::string> kQueueReaders = {kScopeAdmin, kScopePublish, kScopeConsume,
                                                  kScopeDlqRead};

  // ---- probes and metrics
  Add("GET", "/healthz", "healthz", {}, [](Request&, const PathParams&, const Principal&) {
    return Result<Response>(Json(200, {{"status", "ok"}}));
  });
  Add("GET", "/readyz", "readyz", {}, [this](Request&, const PathParams&, const Principal&) {
    if (!ready_) {
      return Result<Response>(StatusResponse(Status(ErrorCode::kShuttingDown, "draining")));
    }
    return Result<Response>(Json(200, {{"status", "ready"}}));
  });
  Add("GET", "/metrics", "metrics", {kScopeOperator},
      [this](Request&, const PathParams&, const Principal&) -> Result<Response> {
        Response r;
        r.content_type = "text/plain; version=0.0.4";
        r.body = RenderMetrics();
        return r;
      });

  // ---- tenants (operator)
  Add("POST", "/v1/tenants", "tenant_create", {kScopeOperator},
      [this](Request& req, const PathParams&, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"name", "quotas"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "name"));
        engine::QuotaOverrides quotas;
        REDRIVE_RETURN_IF_ERROR(QuotasFromJson(body, &quotas));
        REDRIVE_ASSIGN_OR_RETURN(auto t, engine_.tenancy().CreateTenant(who, name, quotas));
        return Json(201, TenantJson(t));
      });
  Add("GET", "/v1/tenants", "tenant_list", {kScopeOperator},
      [this](Request& req, const PathParams&, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.tenancy().ListTenants());
        json items = json::array();
        for (const auto& t : list) items.push_back(TenantJson(t));
        return Json(200, {{"tenants", items}});
      });
  Add("GET", "/v1/tenants/{tenant}", "tenant_get", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto t, engine_.tenancy().GetTenant(p.Get("tenant")));
        return Json(200, TenantJson(t, true));
      });
  Add("PATCH", "/v1/tenants/{tenant}", "tenant_update", {kScopeOperator},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"quotas"}));
        REDRIVE_ASSIGN_OR_RETURN(auto current, engine_.tenancy().GetTenant(p.Get("tenant")));
        // A merge: named quotas change, null removes an override, the others stay.
        engine::QuotaOverrides quotas = current.overrides;
        REDRIVE_RETURN_IF_ERROR(QuotasFromJson(body, &quotas));
        REDRIVE_ASSIGN_OR_RETURN(auto t,
                                 engine_.tenancy().SetTenantQuotas(who, p.Get("tenant"), quotas));
        return Json(200, TenantJson(t, true));
      });
  Add("DELETE", "/v1/tenants/{tenant}", "tenant_delete", {kScopeOperator},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(bool force, BoolQuery(req, "force"));
        REDRIVE_RETURN_IF_ERROR(engine_.tenancy().DeleteTenant(who, p.Get("tenant"), force));
        return NoContent();
      },
      {"force"});
  Add("GET", "/v1/audit", "server_audit_query", {kScopeOperator},
      [this](Request& req, const PathParams&, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto q, AuditQueryOf(req));
        REDRIVE_ASSIGN_OR_RETURN(auto r, engine_.tenancy().QueryServerAudit(q));
        return AuditPage(r);
      },
      {"_queryFilter", "_pageSize", "_pagedResultsCookie"});

  // ---- operator tokens
  Add("POST", "/v1/operator-tokens", "operator_token_create", {kScopeOperator},
      [this](Request& req, const PathParams&, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"label", "expiresIn"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string label, RequiredString(body, "label"));
        REDRIVE_ASSIGN_OR_RETURN(auto expires_in, ExpiresIn(body));
        REDRIVE_ASSIGN_OR_RETURN(auto t,
                                 engine_.tenancy().CreateOperatorToken(who, label, expires_in));
        return Json(201, NewTokenJson(t));
      });
  Add("GET", "/v1/operator-tokens", "operator_token_list", {kScopeOperator},
      [this](Request&, const PathParams&, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.tenancy().ListOperatorTokens());
        json items = json::array();
        for (const auto& t : list) items.push_back(TokenJson(t));
        return Json(200, {{"tokens", items}});
      });
  Add("DELETE", "/v1/operator-tokens/{token}", "operator_token_revoke", {kScopeOperator},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(engine_.tenancy().RevokeOperatorToken(who, p.Get("token")));
        return NoContent();
      });
  Add("POST", "/v1/operator-tokens/{token}/rotate", "operator_token_rotate", {kScopeOperator},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto rotation, RotationFromRequest(req));
        REDRIVE_ASSIGN_OR_RETURN(auto t, engine_.tenancy().RotateOperatorToken(
                                             who, p.Get("token"), rotation.first, rotation.second));
        return Json(201, NewTokenJson(t));
      });

  // ---- tokens
  Add("POST", "/v1/tenants/{tenant}/tokens", "token_create", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"label", "scopes", "expiresIn"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string label, RequiredString(body, "label"));
        std::vector<std::string> scopes;
        if (auto it = body.find("scopes"); it != body.end()) {
          if (!it->is_array()) {
            return Status(ErrorCode::kInvalidArgument, "'scopes' must be an array of strings");
          }
          for (const auto& s : *it) {
            if (!s.is_string()) {
              return Status(ErrorCode::kInvalidArgument, "'scopes' must be an array of strings");
            }
            scopes.push_back(s.get<std::string>());
          }
          if (scopes.empty()) {
            return Status(ErrorCode::kInvalidArgument, "'scopes' must not be empty");
          }
        }
        REDRIVE_ASSIGN_OR_RETURN(auto expires_in, ExpiresIn(body));
        REDRIVE_ASSIGN_OR_RETURN(
            auto t, engine_.tenancy().CreateToken(who, p.Get("tenant"), label, scopes, expires_in));
        return Json(201, NewTokenJson(t));
      });
  Add("GET", "/v1/tenants/{tenant}/tokens", "token_list", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.tenancy().ListTokens(p.Get("tenant")));
        json items = json::array();
        for (const auto& t : list) items.push_back(TokenJson(t));
        return Json(200, {{"tokens", items}});
      });
  Add("DELETE", "/v1/tenants/{tenant}/tokens/{token}", "token_revoke", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(
            engine_.tenancy().RevokeToken(who, p.Get("tenant"), p.Get("token")));
        return NoContent();
      });
  Add("POST", "/v1/tenants/{tenant}/tokens/{token}/rotate", "token_rotate", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto rotation, RotationFromRequest(req));
        REDRIVE_ASSIGN_OR_RETURN(auto t,
                                 engine_.tenancy().RotateToken(who, p.Get("tenant"), p.Get("token"),
                                                               rotation.first, rotation.second));
        return Json(201, NewTokenJson(t));
      });

  // ---- queues
  Add("POST", "/v1/tenants/{tenant}/queues", "queue_create", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"name", "attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "name"));
        engine::QueueConfig config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyQueueConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(auto q,
                                 engine_.queues().CreateQueue(who, p.Get("tenant"), name, config));
        return Json(201, QueueJson(q));
      });
  Add("GET", "/v1/tenants/{tenant}/queues", "queue_list", kQueueReaders,
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto list, engine_.queues().ListQueues(p.Get("tenant")));
        json items = json::array();
        for (const auto& q : list) items.push_back(QueueJson(q));
        return Json(200, {{"queues", items}});
      });
  Add("GET", "/v1/tenants/{tenant}/queues/{queue}", "queue_get", kQueueReaders,
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto q,
                                 engine_.queues().GetQueue(p.Get("tenant"), p.Get("queue")));
        return Json(200, QueueJson(q));
      });
  Add("PATCH", "/v1/tenants/{tenant}/queues/{queue}", "queue_update", {kScopeAdmin},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"attributes"}));
        REDRIVE_ASSIGN_OR_RETURN(auto current,
                                 engine_.queues().GetQueue(p.Get("tenant"), p.Get("queue")));
        engine::QueueConfig config = current.config;
        if (auto it = body.find("attributes"); it != body.end()) {
          REDRIVE_RETURN_IF_ERROR(engine::ApplyQueueConfigJson(*it, &config));
        }
        REDRIVE_ASSIGN_OR_RETURN(
            auto q, engine_.queues().UpdateQueue(who, p.Get("tenant"), p.Get("queue"), config));
        return Json(200, QueueJson(q));
      });
  Add("DELETE", "/v1/tenants/{tenant}/queues/{queue}", "queue_delete", {kScopeAdmin},
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(engine_.queues().DeleteQueue(who, p.Get("tenant"), p.Get("queue")));
        return NoContent();
      });

  // ---- messages
  Add("POST", "/v1/tenants/{tenant}/queues/{queue}/messages", "publish", {kScopePublish},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_RETURN_IF_ERROR(RequireJsonBody(req));
        REDRIVE_ASSIGN_OR_RETURN(auto messages, DecodePublish(req.body));
        REDRIVE_ASSIGN_OR_RETURN(
            auto outcomes,
            engine_.messages().Publish(p.Get("tenant"), p.Get("queue"), std::move(messages)));
        return JsonText(201, PublishAnswer(outcomes));
      });
  AddAsync("POST", "/v1/tenants/{tenant}/queues/{queue}/receive", "receive", {kScopeConsume},
           [this](Request& req, const PathParams& p, const Principal& who, Done done) {
             auto options = [&]() -> Result<engine::ReceiveOptions> {
               REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
               REDRIVE_RETURN_IF_ERROR(
                   OnlyFields(body, {"maxMessages", "wait", "visibilityTimeout", "consumer"}));
               engine::ReceiveOptions opt;
               REDRIVE_ASSIGN_OR_RETURN(auto max, GetInt(body, "maxMessages"));
               if (max) opt.max_messages = *max;
               REDRIVE_ASSIGN_OR_RETURN(auto wait, GetDuration(body, "wait"));
               opt.wait = wait.value_or(0);
               REDRIVE_ASSIGN_OR_RETURN(opt.visibility_timeout,
                                        GetDuration(body, "visibilityTimeout"));
               REDRIVE_ASSIGN_OR_RETURN(auto consumer, GetString(body, "consumer"));
               opt.consumer = consumer.value_or("");
               opt.caller = who.token_id;
               return opt;
             }();
             if (!options.ok()) {
               done(options.status());
               return;
             }
             engine_.messages().ReceiveAsync(
                 p.Get("tenant"), p.Get("queue"), options.value(),
                 [done = std::move(done)](Result<std::vector<engine::Delivery>> r) {
                   if (!r.ok()) {
                     done(r.status());
                     return;
                   }
                   done(JsonText(200, ReceiveAnswer(r.value())));
                 });
           });
  Add("POST", "/v1/tenants/{tenant}/queues/{queue}/ack", "ack", {kScopeConsume},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"receipts"}));
        REDRIVE_ASSIGN_OR_RETURN(auto receipts, ReceiptList(body));
        REDRIVE_ASSIGN_OR_RETURN(auto results,
                                 engine_.messages().Ack(p.Get("tenant"), p.Get("queue"), receipts));
        return Json(200, ItemResults(receipts, results));
      });
  Add("POST", "/v1/tenants/{tenant}/queues/{queue}/nack", "nack", {kScopeConsume},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"nacks"}));
        auto it = body.find("nacks");
        if (it == body.end()) return Status(ErrorCode::kMissingField, "'nacks' is required");
        if (!it->is_array()) return Status(ErrorCode::kInvalidArgument, "'nacks' must be an array");
        std::vector<engine::NackRequest> nacks;
        std::vector<std::string> receipts;
        size_t i = 0;
        for (const auto& n : *it) {
          std::string where = "nacks[" + std::to_string(i++) + "].";
          if (!n.is_object()) {
            return Status(ErrorCode::kInvalidArgument, where + " must be an object");
          }
          REDRIVE_RETURN_IF_ERROR(OnlyFields(
              n, {"receipt", "reason", "error", "delay", "deadLetter", "consumer"}, where));
          engine::NackRequest nr;
          REDRIVE_ASSIGN_OR_RETURN(nr.receipt, RequiredString(n, "receipt"));
          REDRIVE_ASSIGN_OR_RETURN(auto reason, GetString(n, "reason"));
          nr.reason = reason.value_or("");
          REDRIVE_ASSIGN_OR_RETURN(auto error, GetString(n, "error"));
          nr.error = error.value_or("");
          REDRIVE_ASSIGN_OR_RETURN(nr.delay, GetDuration(n, "delay"));
          REDRIVE_ASSIGN_OR_RETURN(auto dl, GetBool(n, "deadLetter"));
          nr.dead_letter = dl.value_or(false);
          REDRIVE_ASSIGN_OR_RETURN(auto consumer, GetString(n, "consumer"));
          nr.consumer = consumer.value_or("");
          nr.caller = who.token_id;
          receipts.push_back(nr.receipt);
          nacks.push_back(std::move(nr));
        }
        REDRIVE_ASSIGN_OR_RETURN(auto results,
                                 engine_.messages().Nack(p.Get("tenant"), p.Get("queue"), nacks));
        return Json(200, ItemResults(receipts, results));
      });
  Add("POST", "/v1/tenants/{tenant}/queues/{queue}/extend", "extend", {kScopeConsume},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"receipts", "visibilityTimeout"}));
        REDRIVE_ASSIGN_OR_RETURN(auto receipts, ReceiptList(body));
        REDRIVE_ASSIGN_OR_RETURN(auto vt, GetDuration(body, "visibilityTimeout"));
        if (!vt) return Status(ErrorCode::kMissingField, "'visibilityTimeout' is required");
        REDRIVE_ASSIGN_OR_RETURN(auto results, engine_.messages().ExtendLeases(
                                                   p.Get("tenant"), p.Get("queue"), receipts, *vt));
        return Json(200, ItemResults(receipts, results));
      });

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
                               const Principal&) -> Result<Response> {
      engine::DeadLetterQuery q;
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
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto d, engine_.dead_letters().GetDeadLetter(p.Get("tenant"), p.Get("id")));
        return Json(200, engine::DeadLetterDocument(d));
      });
  Add("GET", "/v1/tenants/{tenant}/failure-groups", "failure_groups", {kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(
            auto groups, engine_.dead_letters().ListFailureGroups(p.Get("tenant"),
                                                                  std::string(req.Query("queue"))));
        json items = json::array();
        for (const auto& g : groups) {
          items.push_back({{"id", g.group_id},
                           {"signature", g.signature},
                           {"origin", g.origin},
                           {"reason", g.reason},
                           {"count", g.count},
                           {"firstSeen", FormatTime(g.first_seen)},
                           {"lastSeen", FormatTime(g.last_seen)},
                           {"origins", json::array({g.origin})},
                           {"sampleIds", g.sample_ids}});
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
      [this](Request&, const PathParams& p, const Principal& who) -> Result<Response> {
        engine::DeadLetterTarget t;
        t.ids = {p.Get("id")};
        REDRIVE_ASSIGN_OR_RETURN(
            auto r, engine_.dead_letters().RestoreDeadLetters(who, p.Get("tenant"), t));
        return Json(200, ActionResultJson(r));
      });
  Add("POST", "/v1/tenants/{tenant}/dead-letters/{id}/reroute", "dead_letter_reroute_one",
      {kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(OnlyFields(body, {"destination"}));
        REDRIVE_ASSIGN_OR_RETURN(std::string dest, RequiredString(body, "destination"));
        engine::DeadLetterTarget t;
        t.ids = {p.Get("id")};
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
        REDRIVE_RETURN_IF_ERROR(OnlyFields(
            body, {"ids", "filter", "group", "deadLetterQueue", "since", "until", "destination"}));
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

  // ---- redrive jobs
  Add("POST", "/v1/tenants/{tenant}/redrive-jobs", "job_start", {kScopeDlqWrite},
      [this](Request& req, const PathParams& p, const Principal& who) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(json body, Body(req));
        REDRIVE_RETURN_IF_ERROR(
            OnlyFields(body, {"deadLetterQueue", "filter", "group", "since", "until", "destination",
                              "rate", "canary", "dryRun"}));
        REDRIVE_ASSIGN_OR_RETURN(auto spec, JobSpecFromJson(body));
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

  // ---- audit
  Add("GET", "/v1/tenants/{tenant}/audit", "audit_query", {kScopeAdmin, kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto q, AuditQueryOf(req));
        REDRIVE_ASSIGN_OR_RETURN(auto r, engine_.dead_letters().QueryAudit(p.Get("tenant"), q));
        return AuditPage(r);
      },
      {"_queryFilter", "_pageSize", "_pagedResultsCookie"});
}

Response RestApi::Handle(Request& req) {
  std::promise<Response> answer;
  auto future = answer.get_future();
  HandleAsync(req, [&answer](Response r) { answer.set_value(std::move(r)); });
  return future.get();
}

void RestApi::HandleAsync(Request req, http::Responder respond) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> segments;
  if (!SplitPath(req.path, &segments)) {
    respond(
        StatusResponse(Status(ErrorCode::kInvalidArgument, "malformed percent-encoding in URL")));
    return;
  }
  Route* match = nullptr;
  bool path_matched = false;
  PathParams params;
  for (auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    PathParams candidate;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const std::string& s = r.segments[i];
      if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
        candidate.values.emplace_back(s.substr(1, s.size() - 2), segments[i]);
      } else {
        ok = s == segments[i];
      }
    }
    if (!ok) continue;
    path_matched = true;
    if (r.info.method == req.method) {
      match = &r;
      params = std::move(candidate);
      break;
    }
  }
  if (!match) {
    respond(path_matched ? StatusResponse(Status(ErrorCode::kMethodNotAllowed,
                                                 req.method + " is not allowed on " + req.path))
                         : StatusResponse(Status(ErrorCode::kNotFound, "no route " + req.path)));
    return;
  }

  engine::Principal principal;
  Status auth;
  if (!match->info.scopes.empty()) {
    std::string_view header = req.Header("authorization");
    std::string_view token;
    if (header.substr(0, 7) == "Bearer ") token = header.substr(7);
    auto who = engine_.tenancy().Authenticate(token);
    if (!who.ok()) {
      auth = who.status();
    } else {
      principal = std::move(who).value();
      const std::string& tenant = params.Get("tenant");
      auth = Status(ErrorCode::kForbidden, "");
      for (const auto& scope : match->info.scopes) {
        auth = engine_.tenancy().Authorize(principal, tenant, scope);
        if (auth.ok() || auth.code() != ErrorCode::kForbidden) break;
      }
    }
  }
  // The tenant's request rate counts every request a tenant token is let in for.
  DurationMs retry_after = 0;
  if (auth.ok() && !match->info.scopes.empty()) {
    auth = engine_.tenancy().AdmitRequest(principal, params.Get("tenant"), &retry_after);
  }
  if (!auth.ok()) {
    Response resp = StatusResponse(auth);
    if (auth.code() == ErrorCode::kUnauthenticated) {
      resp.headers.emplace_back("WWW-Authenticate", "Bearer");
    }
    Finish(*match, start, std::move(resp), retry_after, respond);
    return;
  }
  if (Status q = OnlyQuery(req, match->info.query); !q.ok()) {
    Finish(*match, start, q, retry_after, respond);
    return;
  }
  if (match->async_handler) {
    match->async_handler(req, params, principal,
                         [this, match, start, retry_after, respond](Result<Response> r) {
                           Finish(*match, start, std::move(r), retry_after, respond);
                         });
    return;
  }
  Finish(*match, start, match->handler(req, params, principal), retry_after, respond);
}

void RestApi::Finish(const Route& route, std::chrono::steady_clock::time_point start,
                     Result<Response> result, DurationMs retry_after,
                     const http::Responder& respond) {
  Response resp = result.ok() ? std::move(result).value() : StatusResponse(result.status());
  if (!result.ok() && result.status().code() == ErrorCode::kQuotaExceeded) {
    retry_after = engine_.tenancy().quota_retry_after();
  }
  if (resp.status == 429) {
    // Whole seconds (RFC 9110), rounded up so a client never comes back too early.
    resp.headers.emplace_back("Retry-After",
                              std::to_string(std::max<DurationMs>(1, (retry_after + 999) / 1000)));
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  route.latency->Observe(secs);
  respond(std::move(resp));
}

std::string RestApi::RenderMetrics() {
  const auto& c = engine_.counters();
  std::string out;
  auto counter = [&](const char* name, const char* help, int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  counter("redrive_messages_published_total", "Messages stored by publish.", c.published);
  counter("redrive_messages_duplicate_total", "Publishes answered from the idempotency window.",
          c.duplicates);
  counter("redrive_messages_delivered_total", "Deliveries handed to consumers.", c.delivered);
  counter("redrive_messages_acked_total", "Messages acked.", c.acked);
  counter("redrive_messages_nacked_total", "Nacks received.", c.nacked);
  counter("redrive_lease_timeouts_total", "Leases that ended without ack or nack.",
          c.lease_timeouts);
  counter("redrive_messages_dropped_total", "Messages dropped (exhausted action drop, retention).",
          c.dropped);
  counter("redrive_messages_retention_deleted_total",
          "Messages deleted because they outlived their queue's retention (included in dropped).",
          c.retention_deleted);
  out +=
      "# HELP redrive_messages_dead_lettered_total Messages dead-lettered, by reason.\n"
      "# TYPE redrive_messages_dead_lettered_total counter\n";
  const auto& reasons = engine::DeadLetterReasons();
  for (size_t i = 0; i < reasons.size(); ++i) {
    out += "redrive_messages_dead_lettered_total{reason=\"" + reasons[i] + "\"} " +
           std::to_string(c.dead_lettered[i].load()) + "\n";
  }
  out +=
      "# HELP redrive_long_polls_waiting Receives parked until a message or the end of their "
      "wait.\n# TYPE redrive_long_polls_waiting gauge\nredrive_long_polls_waiting " +
      std::to_string(engine_.messages().parked_receives()) + "\n";
  auto depths = engine_.messages().AllDepths();
  if (depths.ok()) {
    out +=
        "# HELP redrive_queue_depth Messages in a queue, by state.\n"
        "# TYPE redrive_queue_depth gauge\n";
    for (const auto& row : depths.value()) {
      std::string l = "tenant=\"" + row.tenant + "\",queue=\"" + row.queue + "\"";
      out += "redrive_queue_depth{" + l + ",state=\"ready\"} " + std::to_string(row.depth.ready) +
             "\n";
      out += "redrive_queue_depth{" + l + ",state=\"delayed\"} " +
             std::to_string(row.depth.delayed) + "\n";
      out += "redrive_queue_depth{" + l + ",state=\"leased\"} " + std::to_string(row.depth.leased) +
             "\n";
      out += "redrive_queue_depth{" + l + ",state=\"dead_lettered\"} " +
             std::to_string(row.depth.dead_lettered) + "\n";
    }
  }
  out +=
      "# HELP redrive_http_request_duration_seconds Request latency by route.\n"
      "# TYPE redrive_http_request_duration_seconds histogram\n";
  for (const auto& r : routes_) r.latency->Render("route=\"" + r.info.name + "\"", &out);
  for (const auto& render : extra_metrics_) out += render();
  return out;
}

}  // namespace redrive::api
