// libFuzzer target for HTTP requests as the server sees them (scripts/fuzz.sh request_fuzz
// SECONDS). An input is the bytes a client sends on one connection: one request or several
// pipelined. They go through exactly the server's path: http::RequestParser with the server's
// default limits (ServerOptions: headers, body), request by request as Server::Serve does
// (stopping at a refusal or at a request that does not keep the connection alive), then
// RestApi::Handle (path split and percent-decoded by segment, routing, authentication, the
// route's query parameters, the handler) on a fresh copy of the prepared state. Placeholders
// such as $OP (the operator token) are replaced first (see fuzz_fixture.h), so that inputs get
// past authentication.
//
// Checks, beyond "no crash, no sanitizer report":
// - the requests do not depend on how the bytes are split into reads (the same bytes fed whole,
//   a byte at a time, and in odd-sized reads give the same requests; see DescribeAll);
// - every answer is well formed (FuzzServer::CheckResponse: no 5xx, errors from the catalogue);
// - when every request was refused, the state is unchanged (FuzzServer::CheckUnchanged).
// With REDRIVE_FUZZ_TRACE set, each request and its answer are printed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.h"
#include "http/server.h"
#include "server/fuzz_fixture.h"

namespace {

using redrive::http::Request;
using redrive::http::RequestParser;
using redrive::http::Response;
using redrive::server::FuzzServer;

// What the server makes of one request on the connection.
struct Outcome {
  bool parsed = false;  // a request for the handler; otherwise `refusal` is the answer
  Request request;
  Response refusal;
  bool keep_alive = false;
  bool incomplete = false;  // the bytes ended inside a request (the server would time out)

  std::string Describe() const {
    if (incomplete) return "incomplete";
    if (!parsed) return "refused " + std::to_string(refusal.status) + " " + refusal.body;
    std::string out = "request " + request.method + " " + request.target +
                      " keep-alive=" + std::to_string(keep_alive) +
                      " body=" + std::to_string(request.body.size());
    for (const auto& [k, v] : request.headers) out += "\n  " + k + ": " + v;
    out += "\n  body: " + request.body;
    return out;
  }
};

// Server::Serve's loop over one connection's bytes, arriving `read_size` bytes at a time.
std::vector<Outcome> Parse(std::string_view bytes, size_t read_size) {
  const redrive::http::ServerOptions options;
  std::vector<Outcome> out;
  std::string buf;
  size_t next = 0;
  for (;;) {
    RequestParser parser(options.max_header_bytes, options.max_body_bytes);
    bool begun = !buf.empty();
    RequestParser::Step step = parser.Feed(&buf);
    while (step == RequestParser::Step::kNeedMore && next < bytes.size()) {
      size_t n = std::min(read_size, bytes.size() - next);
      buf.append(bytes.substr(next, n));
      next += n;
      begun = true;
      step = parser.Feed(&buf);
    }
    Outcome o;
    if (step == RequestParser::Step::kNeedMore) {
      // Nothing more arrives: a request begun is never answered (the server times out); with
      // none begun the connection just closes.
      if (begun) {
        o.incomplete = true;
        out.push_back(std::move(o));
      }
      return out;
    }
    if (step == RequestParser::Step::kFailed) {
      o.refusal = parser.error();
      out.push_back(std::move(o));
      return out;
    }
    o.parsed = parser.TakeRequest("127.0.0.1", &o.request, &o.keep_alive, &o.refusal);
    bool keep_alive = o.keep_alive;
    out.push_back(std::move(o));
    if (!keep_alive) return out;
  }
}

// What must not depend on how the bytes arrive: the requests handed to the handler, and
// whether the connection ends with a refusal or unanswered. Which of those two it is may differ:
// once Beast has had to wait inside a header it waits for the blank line that ends it before it
// judges the fields, so a malformed header seen whole is refused at once (400) and seen in
// pieces, with no blank line after it, is waited on (and timed out by the server).
std::string DescribeAll(const std::vector<Outcome>& outcomes) {
  std::string out;
  for (const auto& o : outcomes) {
    out += o.parsed ? o.Describe() + "\n" : "refused or unanswered\n";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzServer& server = FuzzServer::Get();
  std::string bytes =
      server.Substitute(std::string_view(reinterpret_cast<const char*>(data), size));

  std::vector<Outcome> whole = Parse(bytes, bytes.size() + 1);
  std::string expected = DescribeAll(whole);
  for (size_t read_size : {bytes.size() <= 4096 ? size_t{1} : size_t{61}, 1 + size % 13}) {
    std::string got = DescribeAll(Parse(bytes, read_size));
    if (got != expected) {
      std::fprintf(stderr,
                   "fuzz check failed: the parse depends on the read size (%zu)\nwhole:\n%s\n"
                   "in reads of %zu:\n%s\n",
                   read_size, expected.c_str(), read_size, got.c_str());
      std::abort();
    }
  }

  FuzzServer::Session* session = nullptr;
  bool all_refused = true;
  std::string why;
  for (auto& o : whole) {
    if (o.incomplete) break;
    Response resp;
    if (o.parsed) {
      if (!session) session = &server.Begin();
      resp = session->api->Handle(o.request);
    } else {
      resp = o.refusal;
    }
    if (std::getenv("REDRIVE_FUZZ_TRACE") != nullptr) {
      std::fprintf(stderr, "%s -> %d %.300s\n", o.Describe().substr(0, 300).c_str(), resp.status,
                   resp.body.c_str());
    }
    FuzzServer::CheckResponse(o.request, resp);
    all_refused = all_refused && resp.status >= 400;
    why += o.Describe() + "\n-> " + std::to_string(resp.status) + " " + resp.body + "\n";
  }
  if (session != nullptr) server.End(all_refused, why);
  return 0;
}
