// libFuzzer target for every JSON request body decoder (scripts/fuzz.sh json_fuzz SECONDS).
//
// It is driven by the route table (RestApi::Routes()), so a new route that takes a body is
// fuzzed without touching this file. An input is a route's name (RouteInfo::name, such as
// "publish"), a newline, and the body; a first line that names no route taking a body picks one
// by its hash, so that every input reaches some decoder. Path parameters are filled with the
// prepared tenant, queues, dead letter, group, job and token, and the body's placeholders ($DL,
// $RCPT, ...) with their ids (see fuzz_fixture.h). The request goes through RestApi::Handle with
// the operator token, on a fresh copy of the prepared state.
//
// Checks, beyond "no crash, no sanitizer report": the response is well formed
// (FuzzServer::CheckResponse: no 5xx, errors from the catalogue), and a refused request
// changed nothing (FuzzServer::CheckUnchanged). With REDRIVE_FUZZ_TRACE set, each request and
// its answer are printed, to see where seeds get.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "api/publish_decoder.h"
#include "server/fuzz_fixture.h"

namespace {

using redrive::server::FuzzServer;

struct BodyRoute {
  std::string name;
  std::string method;
  std::string target;
};

// The value a path parameter takes: the prepared resource of that kind.
std::string ParamValue(const std::string& pattern, const std::string& param) {
  if (param == "tenant") return "t";
  if (param == "queue") {
    return pattern.find("dead-letter-queues/") != std::string::npos ? "dead-letters" : "q";
  }
  if (param == "id") return "$DL";
  if (param == "group") return "$GRP";
  if (param == "job") return "$JOB";
  if (param == "token") return "$TOK";
  if (param == "topic") return "tp";
  if (param == "subscription") {
    return pattern.find("/endpoint") != std::string::npos ? "hook" : "sb";
  }
  return "x";
}

const std::vector<BodyRoute>& BodyRoutes() {
  static const std::vector<BodyRoute> routes = [] {
    FuzzServer& server = FuzzServer::Get();
    std::vector<redrive::api::RouteInfo> all = server.Begin().api->Routes();
    server.End(true, "listing the routes");
    std::vector<BodyRoute> out;
    for (const auto& r : all) {
      if (r.method != "POST" && r.method != "PATCH" && r.method != "PUT") continue;
      std::string target;
      size_t i = 0;
      while (i < r.pattern.size()) {
        if (r.pattern[i] == '{') {
          size_t end = r.pattern.find('}', i);
          target += ParamValue(r.pattern, r.pattern.substr(i + 1, end - i - 1));
          i = end + 1;
        } else {
          target.push_back(r.pattern[i++]);
        }
      }
      out.push_back(BodyRoute{r.name, r.method, FuzzServer::Get().Substitute(target)});
    }
    std::sort(out.begin(), out.end(),
              [](const BodyRoute& a, const BodyRoute& b) { return a.name < b.name; });
    return out;
  }();
  return routes;
}

// The publish decoder's fast path (simdjson) must decode whatever it takes exactly as the
// general decoder (nlohmann) does: same messages, or it must leave the body to the general one.
void CheckPublishDecoders(std::string_view body) {
  auto fast = redrive::api::DecodePublishFast(body);
  if (!fast) return;
  auto parsed = redrive::api::ParseObject(body);
  auto general = parsed.ok()
                     ? redrive::api::DecodePublishGeneral(parsed.value())
                     : redrive::Result<std::vector<redrive::engine::NewMessage>>(parsed.status());
  bool same = general.ok() && general.value().size() == fast->size();
  for (size_t i = 0; same && i < fast->size(); ++i) {
    const auto& a = (*fast)[i];
    const auto& b = general.value()[i];
    same = a.body == b.body && a.attributes == b.attributes &&
           a.idempotency_key == b.idempotency_key && a.delay == b.delay;
  }
  if (!same) {
    std::fprintf(stderr, "publish decoders disagree on: %.*s\n", static_cast<int>(body.size()),
                 body.data());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzServer& server = FuzzServer::Get();
  const auto& routes = BodyRoutes();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t newline = input.find('\n');
  std::string_view name = input.substr(0, newline);
  std::string_view body = newline == std::string_view::npos ? "" : input.substr(newline + 1);

  const BodyRoute* route = nullptr;
  for (const auto& r : routes) {
    if (r.name == name) route = &r;
  }
  if (route == nullptr) {
    uint32_t hash = 2166136261u;  // FNV-1a: the same pick with any compiler
    for (char c : name) hash = (hash ^ static_cast<uint8_t>(c)) * 16777619u;
    route = &routes[hash % routes.size()];
  }

  if (route->name == "publish") CheckPublishDecoders(server.Substitute(body));

  FuzzServer::Session& session = server.Begin();
  redrive::http::Request req =
      server.MakeRequest(route->method, route->target, server.Substitute(body));
  redrive::http::Response resp = session.api->Handle(req);
  if (std::getenv("REDRIVE_FUZZ_TRACE") != nullptr) {
    std::fprintf(stderr, "%s %s -> %d %.300s\n", route->method.c_str(), route->target.c_str(),
                 resp.status, resp.body.c_str());
  }
  FuzzServer::CheckResponse(req, resp);
  server.End(resp.status >= 400, route->name + " answered " + std::to_string(resp.status) + ": " +
                                     resp.body + "\nbody: " + req.body);
  return 0;
}
