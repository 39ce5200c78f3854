// DeliveryClient: asynchronous HTTP POSTs for push delivery, run on the server's io_context
// (docs/design/outbound-http.md). One libcurl multi handle does the HTTP: connection reuse
// (keep-alive) per host, per-request deadlines, TLS verified against the system trust store
// with host-name checks and SNI, IPv4 and IPv6 with Happy Eyeballs. The io_context watches its
// sockets and its one timer, so a slow or dead endpoint holds no thread and never delays the
// requests to others.
//
// What it does not do: decide (outcome.h classifies a DeliveryResult), sign (signature.h makes
// the header the caller adds), queue or rate-limit per endpoint (the caller's gate does, so that
// one endpoint's backlog never waits inside libcurl ahead of another's).
//
// Every request: method POST, the caller's headers (plus `Expect:` cleared, so that a large
// body does not wait for a 100 Continue), no redirects followed (a 3xx comes back as it is),
// http and https only, no cookies, no proxy from the environment, `CURLOPT_TIMEOUT_MS` from the
// request. The response: its status, its Retry-After header, the first `body_snippet_bytes` of
// its body; the rest of the body is read and dropped up to `max_response_bytes`, beyond which
// the transfer is cut off (the status already received is still the result).
//
// Thread-safety: Send and Shutdown may be called from any thread, including from a callback.
// Callbacks run on the client's strand of the io_context, one at a time, except those of the
// requests Shutdown cuts off, which run on the thread calling Shutdown (possibly while one on
// the strand finishes). They must not block, and should post slow work (writing an outcome to
// the store) elsewhere.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "push/outcome.h"

namespace redrive::push {

struct DeliveryRequest {
  std::string url;  // http:// or https://
  // Sent as given, in order ("content-type", "webhook-id", "webhook-signature", ...).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  DurationMs timeout = 30'000;  // the whole attempt: resolve, connect, TLS, send, answer
  // A PEM file of CA certificates trusted for this request instead of the system store, for an
  // endpoint behind a private CA (and tests). Empty: the system store (ca-certificates).
  std::string ca_file;
};

struct DeliveryClientOptions {
  // CURLMOPT_MAX_TOTAL_CONNECTIONS: open connections at most, over every host; requests beyond
  // wait in libcurl for one to free up (their deadline runs). 0: no limit.
  long max_total_connections = 256;
  // How much of each response body DeliveryResult::body_snippet keeps.
  size_t body_snippet_bytes = 1024;
  // A response body longer than this cuts the transfer off (its connection is not reused).
  size_t max_response_bytes = 1 << 20;
  std::string user_agent = "redrive-push";
};

class DeliveryClient {
 public:
  using Callback = std::function<void(DeliveryResult)>;

  // The client runs on `io`, which the caller runs (and keeps alive longer than the client).
  explicit DeliveryClient(boost::asio::io_context& io, DeliveryClientOptions options = {});
  // Shutdown(), if not done yet.
  ~DeliveryClient();
  DeliveryClient(const DeliveryClient&) = delete;
  DeliveryClient& operator=(const DeliveryClient&) = delete;

  // Starts `request`; `done` is called exactly once with its result: when the answer came, when
  // it failed, or when Shutdown cut it off (TransportError::kShutdown, "shutdown"). After
  // Shutdown, `done` is called at once with kShutdown. A request posted while the io_context no
  // longer runs never starts, and its `done` is destroyed uncalled.
  void Send(DeliveryRequest request, Callback done);

  // Aborts every request in flight (each callback gets kShutdown, "shutdown", before Shutdown
  // returns), closes every connection and frees libcurl's state. Does not wait for the
  // io_context, which may have stopped already. Idempotent.
  void Shutdown();

  // Requests started and not yet finished (for tests and metrics).
  size_t in_flight() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with the io_context's pending handlers
};

}  // namespace redrive::push
