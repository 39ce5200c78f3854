// RequestParser: the bytes of one HTTP/1.1 request to a Request, with the server's limits.
// It is the whole parsing path of Server, which adds only sockets and deadlines: Boost.Beast's
// parser with the header and body limits, the request line, headers (names lower-cased), the
// body, and the query string split and percent-decoded. Kept apart from the sockets so that
// tests and the request_fuzz target run exactly the code the server runs.
//
// Errors, each as the JSON error response the server sends before closing the connection:
// request line and headers over max_header_bytes (431 headers-too-large), a body (declared or
// sent) over max_body_bytes (413 request-too-large), anything else Beast refuses (400
// invalid-argument "malformed HTTP request: ..."), and a malformed escape in the query
// (400 invalid-argument).
//
// Thread-compatible: one parser per request on one connection.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "http/http.h"

namespace redrive::http {

class RequestParser {
 public:
  enum class Step {
    kNeedMore,  // every byte given was consumed and the request is not complete
    kDone,      // a whole request was read: call TakeRequest
    kFailed,    // the request is refused: answer error() and close the connection
  };

  RequestParser(size_t max_header_bytes, size_t max_body_bytes);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses from the front of `*buffer` and erases what it consumed. Bytes after the end of the
  // request stay in `*buffer` (the next pipelined request). REQUIRES: no earlier kDone/kFailed.
  Step Feed(std::string* buffer);

  // The refusal after Feed returned kFailed.
  const Response& error() const { return error_; }

  // Moves the request out. REQUIRES: Feed returned kDone. Returns false, with `*error` set,
  // when the query string has a malformed escape (the handler must not run). `*keep_alive`
  // says whether the client keeps the connection open after the answer.
  bool TakeRequest(std::string remote, Request* request, bool* keep_alive, Response* error);

 private:
  struct Impl;  // Beast's parser, kept out of this header
  std::unique_ptr<Impl> impl_;
  bool OverHeaderLimit(std::string_view buffer) const;

  size_t max_header_bytes_;
  size_t max_body_bytes_;
  size_t header_bytes_ = 0;  // of the request line and headers, consumed by Beast so far
  Response error_;
};

}  // namespace redrive::http
