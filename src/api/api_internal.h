// What the route groups of RestApi (routes_<group>.cc) share: answer builders, request and
// body readers, and the JSON conversions more than one group uses. Internal to the api module
// (INTERNAL_HEADERS in CMakeLists.txt): no other module can include it. Helpers only one group
// uses stay in that group's file. Defined in api_common.cc.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "api/json_io.h"
#include "common/status.h"
#include "engine/engine.h"
#include "http/http.h"

namespace redrive::api {

// ------------------------------------------------------------------ answers

// `body` as the JSON answer, with status `status`.
http::Response Json(int status, const json& body);
// 204, no body.
http::Response NoContent();
// A queue (a subscription's too) as the API shows it (routes_queues.cc).
json QueueJson(const engine::QueueInfo& q);

// ------------------------------------------------------------------ requests

// kUnsupportedMediaType unless the Content-Type is application/json (any parameters allowed).
Status RequireJsonBody(const http::Request& req);
// The request body as a JSON object: RequireJsonBody, then ParseObject.
Result<json> Body(const http::Request& req);
// A string field that must be present: kMissingField otherwise.
Result<std::string> RequiredString(const json& body, const char* field);
// Query parameters: absent is false (or `def`); anything but true/false (an integer) is
// kInvalidQuery.
Result<bool> BoolQuery(const http::Request& req, const char* name);
Result<int> IntQuery(const http::Request& req, const char* name, int def);

// ------------------------------------------------------------------ dead letters and audit

// The dead letters a bulk action or a redrive job works on: "ids", "filter", "group",
// "deadLetterQueue", "since", "until", "allowRedacted" of a body (the caller refuses the fields
// it does not take).
Result<engine::DeadLetterTarget> TargetFromJson(const json& body);
// An audit log query (_queryFilter, _pageSize, _pagedResultsCookie) and the page it answers:
// the server's log and a tenant's.
Result<engine::AuditQuery> AuditQueryOf(const http::Request& req);
http::Response AuditPage(const engine::AuditQueryResult& r);

}  // namespace redrive::api
