// Plain HTTP request/response values shared by the server and the handlers, so that handlers
// never see the HTTP library. Value types; thread-compatible.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redrive::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // path as sent (still percent-encoded), without the query
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote;  // peer address

  // The first header with this lower-case name, or "".
  std::string_view Header(std::string_view name) const;
  // The first query parameter with this name; `found` tells whether it was present.
  std::string_view Query(std::string_view name, bool* found = nullptr) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Completes a request: called exactly once with the answer, from any thread, at any time
// (a long poll answers when a message arrives or its wait ends). Copyable; thread-safe.
using Responder = std::function<void(Response)>;

// Splits and percent-decodes "a=1&b=x%20y". False when an escape is malformed.
bool ParseQuery(std::string_view text, std::vector<std::pair<std::string, std::string>>* out);
bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space);

// A JSON error body {"error":{"code":..., "message":...}} for a catalogue code.
Response ErrorResponse(int http_status, std::string_view code, std::string_view message);

}  // namespace redrive::http
