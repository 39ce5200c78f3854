// RestApi::AddTenancyRoutes: tenants and their quotas, the server's audit log, operator tokens,
// tenant tokens (creation, rotation, revocation), and the JSON forms of tenants and tokens.
#include <optional>
#include <utility>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/json_io.h"
#include "common/text.h"
#include "engine/dead_letter_doc.h"

namespace redrive::api {
namespace {

using engine::OptTime;
using engine::Principal;
using http::Request;
using http::Response;

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

}  // namespace

void RestApi::AddTenancyRoutes() {
  using namespace engine;  // NOLINT: scope names
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
}

}  // namespace redrive::api
