// RestApi: the native REST API under /v1 plus /healthz, /readyz and /metrics. It translates
// HTTP and JSON into Engine calls and Engine results back; it holds no rule of its own.
// Every route is a row of the route table (method, pattern, scopes), which tests walk.
//
// Thread-safety: HandleAsync and Handle are called concurrently from handler threads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "http/http.h"

namespace redrive::api {

// Path parameters captured by a route pattern such as /v1/tenants/{tenant}.
struct PathParams {
  std::vector<std::pair<std::string, std::string>> values;
  const std::string& Get(std::string_view name) const;
};

struct RouteInfo {
  std::string method;
  std::string pattern;
  std::string name;                 // metric label
  std::vector<std::string> scopes;  // any one suffices; empty = no token needed
  std::vector<std::string> query;   // accepted query parameters; others are refused
};

// Request latency, per route, Prometheus-style cumulative buckets. Thread-safe.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  void Observe(double seconds);
  void Render(const std::string& labels, std::string* out) const;

 private:
  std::array<std::atomic<int64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> sum_micros_{0};
};

class RestApi {
 public:
  explicit RestApi(engine::Engine& engine);
  // Answers `request` through `respond`, exactly once: before returning, or later from another
  // thread (a receive that waits answers when a message arrives or its wait ends).
  void HandleAsync(http::Request request, http::Responder respond);
  // HandleAsync, waiting for the answer (tests and fuzz targets).
  http::Response Handle(http::Request& request);
  std::vector<RouteInfo> Routes() const;
  // Readiness: false while draining.
  void SetReady(bool ready) { ready_ = ready; }
  // Adds metrics kept outside the engine (the HTTP server's TLS counters) to /metrics:
  // `render` returns Prometheus text and is called on every scrape, from connection threads.
  // REQUIRES: called before the first request.
  void AddMetrics(std::function<std::string()> render) {
    extra_metrics_.push_back(std::move(render));
  }

 private:
  using RouteHandler = std::function<Result<http::Response>(http::Request&, const PathParams&,
                                                            const engine::Principal&)>;
  // A route that may answer later: it calls `done` once, from any thread.
  using Done = std::function<void(Result<http::Response>)>;
  using AsyncRouteHandler =
      std::function<void(http::Request&, const PathParams&, const engine::Principal&, Done done)>;
  struct Route {
    RouteInfo info;
    std::vector<std::string> segments;
    RouteHandler handler;  // or:
    AsyncRouteHandler async_handler;
    std::unique_ptr<LatencyHistogram> latency;
  };
  void Add(std::string method, std::string pattern, std::string name,
           std::vector<std::string> scopes, RouteHandler handler,
           std::vector<std::string> query = {});
  void AddAsync(std::string method, std::string pattern, std::string name,
                std::vector<std::string> scopes, AsyncRouteHandler handler,
                std::vector<std::string> query = {});
  // The route groups, each in its own file (routes_<group>.cc); the constructor calls them in
  // the order of the route table.
  void AddOpsRoutes();      // /healthz, /readyz, /metrics
  void AddTenancyRoutes();  // tenants, the server's audit log, operator and tenant tokens
  void AddQueueRoutes();    // queues
  void AddTopicRoutes();    // topics, subscriptions, endpoints
  void RenderPushMetrics(std::string* out);
  void AddMessageRoutes();     // publish, receive, ack, nack, extend
  void AddDeadLetterRoutes();  // the dead-letter workbench: browse and actions
  void AddJobRoutes();         // redrive jobs
  void AddExportRoutes();      // export jobs
  void AddTicketRoutes();      // notification settings, the digest, tickets, answer links
  void AddAuditRoutes();       // a tenant's audit log
  // The common end of every routed request: Retry-After, the latency histogram, the answer.
  void Finish(const Route& route, std::chrono::steady_clock::time_point start,
              Result<http::Response> result, DurationMs retry_after,
              const http::Responder& respond);
  std::string RenderMetrics();

  engine::Engine& engine_;
  std::vector<Route> routes_;
  std::atomic<bool> ready_{true};
  std::vector<std::function<std::string()>> extra_metrics_;
};

// Maps an engine Status to the HTTP error response of its catalogue row.
http::Response StatusResponse(const Status& status);

}  // namespace redrive::api
