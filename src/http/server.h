// Server: an HTTP/1.1 listener. One thread accepts; each connection gets a thread that parses
// requests (Boost.Beast's parser), calls the handler, and writes the response. Handlers may
// block (long polls, group commits): a thread per connection keeps that simple and lets many
// requests wait on one fsync together.
//
// Limits enforced here, each answered with a JSON error before the handler runs: header and
// request-line size (431), body size (413), a request that takes longer than request_timeout
// to arrive (408, slow clients), idle keep-alive connections (closed), and connections beyond
// max_connections (503 at once, then closed).
//
// With options.tls set the listener speaks TLS only (no plain HTTP on the same port): the
// handshake runs on the connection's thread and must finish within request_timeout, the
// connection counts against max_connections from accept on, and the limits above apply to
// the decrypted requests. A plain HTTP request sent to the TLS port is answered in plain HTTP
// with 400 invalid-argument and closed. ReloadTls (SIGHUP) swaps in a new certificate for new
// connections; connections that already began keep theirs.
//
// Thread-safety: Start/Stop from one thread; the handler is called from many threads at once;
// ReloadTls and the TLS accessors from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/status.h"
#include "http/http.h"
#include "http/tls.h"

namespace redrive::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 picks a free port
  size_t max_header_bytes = 16 * 1024;
  // A 16 MiB message (the largest maxMessageSize) is ~21.4 MiB in base64, plus JSON.
  size_t max_body_bytes = 24 * 1024 * 1024;
  int request_timeout_ms = 30'000;  // whole request, from its first byte
  int idle_timeout_ms = 75'000;     // keep-alive wait for the next request
  int max_connections = 2048;
  TlsOptions tls;  // TLS when tls.enabled()
};

using Handler = std::function<Response(Request&)>;

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();

  // Binds and starts accepting. Errors: kInternal when the address cannot be bound; with TLS,
  // first the errors of TlsContext::Load (kInvalidArgument naming the file).
  Status Start();
  // The bound port (useful with port 0).
  int port() const { return port_; }
  // Stops accepting new connections; connections finish the request they are in.
  void StopAccepting();
  // Waits up to `timeout_ms` for every connection to finish, then shuts down the sockets of
  // what is left and waits a little more. Returns false if some handler is still running, in
  // which case the caller must not destroy what handlers use.
  bool Drain(int timeout_ms);

  bool tls_enabled() const { return options_.tls.enabled(); }
  // Loads options.tls's files again. On success new connections use the new pair (connections
  // already open keep theirs) and the new certificate is returned; on error the current pair
  // stays in use, tls_reload_failures() grows, and the error names the file.
  // REQUIRES: tls_enabled() and Start() succeeded.
  Result<CertificateInfo> ReloadTls();
  // The certificate new connections get. REQUIRES: tls_enabled() and Start() succeeded.
  CertificateInfo tls_certificate() const;
  // Since Start: reloads that failed; TLS handshakes that failed or timed out (plain HTTP on
  // the TLS port included, shutdown excluded).
  int64_t tls_reload_failures() const { return tls_reload_failures_; }
  int64_t tls_handshake_failures() const { return tls_handshake_failures_; }

 private:
  void AcceptLoop();
  void Serve(int fd, std::string remote);
  std::shared_ptr<const TlsContext> CurrentTls() const;
  // Over max_connections with TLS: the 503 must go through a handshake, so it gets a thread of
  // its own, a short deadline, and at most kMaxRefusing run at once (beyond, a plain close).
  void RefuseBusyTls(int fd);
  static constexpr int kMaxRefusing = 16;

  const ServerOptions options_;
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;          // GUARDED_BY(mu_): connection threads alive
  std::set<int> open_fds_;  // GUARDED_BY(mu_): their sockets
  int refusing_ = 0;        // GUARDED_BY(mu_): RefuseBusyTls threads alive

  mutable std::mutex tls_mu_;
  // GUARDED_BY(tls_mu_). Shared with the connections that began with it, each holding it until
  // it closes, so a reload never pulls a certificate from under a live connection.
  std::shared_ptr<const TlsContext> tls_;
  std::atomic<int64_t> tls_reload_failures_{0};
  std::atomic<int64_t> tls_handshake_failures_{0};
};

}  // namespace redrive::http
