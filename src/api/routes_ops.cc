// RestApi::AddOpsRoutes: the probes (/healthz, /readyz) and the metrics page (/metrics).
#include "api/api.h"
#include "api/api_internal.h"

namespace redrive::api {

using engine::Principal;
using http::Request;
using http::Response;

void RestApi::AddOpsRoutes() {
  using namespace engine;  // NOLINT: scope names
  Add("GET", "/healthz", "healthz", {}, [](Request&, const PathParams&, const Principal&) {
    return Result<Response>(Json(200, {{"status", "ok"}}));
  });
  Add("GET", "/readyz", "readyz", {}, [this](Request&, const PathParams&, const Principal&) {
    if (!ready_) {
      return Result<Response>(StatusResponse(Status(ErrorCode::kShuttingDown, "draining")));
    }
    // Not ready while the store cannot be reached (a database restarting or failing over): a
    // load balancer then sends requests to nodes that can serve them.
    if (Status st = engine_.CheckStore(); !st.ok()) {
      return Result<Response>(StatusResponse(
          Status(ErrorCode::kStoreFailed, "the store cannot be reached: " + st.message())));
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
}

}  // namespace redrive::api
