#include "api/api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <sstream>
#include <string>
#include <vector>

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

// Rejects query parameters the route does not take.
Status OnlyQuery(const Request& req, const std::vector<std::string>& allowed) {
  for (const auto& [k, v] : req.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return Status(ErrorCode::kUnknownField, "unknown query parameter '" + k + "'");
    }
  }
  return Status::Ok();
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
  // One group per file (routes_<group>.cc), in this order: the order of the route table.
  AddOpsRoutes();
  AddTenancyRoutes();
  AddQueueRoutes();
  AddTopicRoutes();
  AddMessageRoutes();
  AddDeadLetterRoutes();
  AddJobRoutes();
  AddExportRoutes();
  AddTicketRoutes();
  AddAuditRoutes();
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
  if (!result.ok() && result.status().code() == ErrorCode::kStoreFailed) {
    // The store failed or could not be reached (PostgreSQL restarting or failing over): the
    // node reconnects by itself, so the request may be tried again soon.
    resp.headers.emplace_back("Retry-After", "1");
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

void RestApi::RenderPushMetrics(std::string* out) {
  const auto& p = engine_.push().counters();
  *out +=
      "# HELP redrive_push_deliveries_total Push delivery attempts, by outcome.\n"
      "# TYPE redrive_push_deliveries_total counter\n"
      "redrive_push_deliveries_total{outcome=\"success\"} " +
      std::to_string(p.succeeded.load()) + "\nredrive_push_deliveries_total{outcome=\"retry\"} " +
      std::to_string(p.retried.load()) + "\nredrive_push_deliveries_total{outcome=\"permanent\"} " +
      std::to_string(p.permanent.load()) + "\n";
  *out +=
      "# HELP redrive_push_probes_total Probes sent by open circuits.\n"
      "# TYPE redrive_push_probes_total counter\nredrive_push_probes_total " +
      std::to_string(p.probes.load()) + "\n";
  *out +=
      "# HELP redrive_push_auto_redrives_total Redrive jobs started by endpoints that recovered "
      "(autoRedriveOnRecovery).\n# TYPE redrive_push_auto_redrives_total counter\n"
      "redrive_push_auto_redrives_total " +
      std::to_string(p.auto_redrives.load()) + "\n";
  *out +=
      "# HELP redrive_push_request_duration_seconds Push request latency, send to answer.\n"
      "# TYPE redrive_push_request_duration_seconds histogram\n";
  int64_t cumulative = 0;
  for (size_t i = 0; i < std::size(engine::kPushLatencyBuckets); ++i) {
    cumulative += p.latency[i].load();
    std::ostringstream le;
    le << engine::kPushLatencyBuckets[i];
    *out += "redrive_push_request_duration_seconds_bucket{le=\"" + le.str() + "\"} " +
            std::to_string(cumulative) + "\n";
  }
  cumulative += p.latency[std::size(engine::kPushLatencyBuckets)].load();
  std::ostringstream sum;
  sum << static_cast<double>(p.latency_sum_us.load()) / 1e6;
  *out += "redrive_push_request_duration_seconds_bucket{le=\"+Inf\"} " +
          std::to_string(cumulative) + "\nredrive_push_request_duration_seconds_sum " + sum.str() +
          "\nredrive_push_request_duration_seconds_count " + std::to_string(cumulative) + "\n";
  *out +=
      "# HELP redrive_push_endpoint_in_flight Requests in flight to an endpoint.\n"
      "# TYPE redrive_push_endpoint_in_flight gauge\n"
      "# HELP redrive_push_endpoint_circuit Circuit state of an endpoint: 0 closed, 1 open, 2 "
      "half-open, 3 disabled.\n# TYPE redrive_push_endpoint_circuit gauge\n";
  for (const auto& e : engine_.push().Endpoints()) {
    std::string l = "tenant=\"" + e.tenant + "\",topic=\"" + e.topic + "\",subscription=\"" +
                    e.subscription + "\"";
    int circuit = e.disabled ? 3 : static_cast<int>(e.circuit);
    *out += "redrive_push_endpoint_in_flight{" + l + "} " + std::to_string(e.in_flight) + "\n";
    *out += "redrive_push_endpoint_circuit{" + l + "} " + std::to_string(circuit) + "\n";
  }
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
  counter("redrive_messages_rerouted_total",
          "Messages moved to another queue by the exhausted action reroute.", c.rerouted);
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
  counter("redrive_topic_messages_published_total", "Messages published to topics.",
          c.topic_published);
  counter("redrive_topic_messages_unrouted_total",
          "Messages published to topics that no subscription took (counted, or dead-lettered "
          "no-route).",
          c.topic_unrouted);
  RenderPushMetrics(&out);
  out +=
      "# HELP redrive_script_decisions_total Runs of exhausted scripts, by what they decided.\n"
      "# TYPE redrive_script_decisions_total counter\n";
  for (size_t i = 0; i < engine::kScriptDecisions.size(); ++i) {
    out += "redrive_script_decisions_total{decision=\"" + std::string(engine::kScriptDecisions[i]) +
           "\"} " + std::to_string(c.script_decisions[i].load()) + "\n";
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
