// RestApi::AddAuditRoutes: a tenant's audit log. (The server's, GET /v1/audit, is registered
// with the tenancy routes, where it sits in the route table.)
#include "api/api.h"
#include "api/api_internal.h"

namespace redrive::api {

using engine::Principal;
using http::Request;
using http::Response;

void RestApi::AddAuditRoutes() {
  using namespace engine;  // NOLINT: scope names
  Add("GET", "/v1/tenants/{tenant}/audit", "audit_query", {kScopeAdmin, kScopeDlqRead},
      [this](Request& req, const PathParams& p, const Principal&) -> Result<Response> {
        REDRIVE_ASSIGN_OR_RETURN(auto q, AuditQueryOf(req));
        REDRIVE_ASSIGN_OR_RETURN(auto r, engine_.dead_letters().QueryAudit(p.Get("tenant"), q));
        return AuditPage(r);
      },
      {"_queryFilter", "_pageSize", "_pagedResultsCookie"});
}

}  // namespace redrive::api
