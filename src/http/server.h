// Server: an asynchronous HTTP/1.1 server on Boost.Asio and Boost.Beast. A few I/O threads
// (options.io_threads) run every socket: accepting, TLS handshakes, reading and parsing
// requests, writing answers, timers. A parsed request goes to a pool of handler threads
// (options.handler_threads), where the handler may block on the store (a group commit lets many
// requests wait on one fsync together) and answers through its Responder, then or later from
// any thread. A long poll therefore holds no thread while it waits: the handler parks it and
// returns, and the engine calls the Responder when a message arrives or the wait ends.
//
// Limits enforced here, each answered with a JSON error before the handler runs: header and
// request-line size (431), body size (413), a request that takes longer than request_timeout
// to arrive (408, slow clients), idle keep-alive connections (closed), and connections beyond
// max_connections (503 at once, then closed).
//
// A Response with a file (Response::file, see http/file_response.h) is streamed: the headers,
// then the file's bytes read and written file_chunk_bytes at a time on the connection's strand,
// each chunk once the client took the one before, so a download holds one chunk of memory,
// over plain TCP and TLS alike. The reads are pread calls on the I/O thread (as Beast's
// file_body does): from the page cache they take microseconds, from a cold disk they hold that
// thread for one chunk's read. Each chunk has the write timeout (30 s without completing it
// closes the connection). If the file cannot be read before anything was sent, the answer is
// 500 internal instead; once the headers are out, a read error or a file shorter than promised
// (truncated) closes the connection, short of Content-Length, so the client knows. Keep-alive
// works as for any answer: the next request is read when the last byte is written.
//
// With options.tls set the listener speaks TLS only (no plain HTTP on the same port): the
// handshake must finish within request_timeout, the connection counts against max_connections
// from accept on, and the limits above apply to the decrypted requests. A plain HTTP request
// sent to the TLS port is answered in plain HTTP with 400 invalid-argument and closed.
// ReloadTls (SIGHUP) swaps in a new certificate for new connections; connections that already
// began keep theirs.
//
// Listens on one IPv4 or IPv6 address (host "127.0.0.1", "::1", "0.0.0.0", "::").
//
// Thread-safety: Start/StopAccepting/Drain from one thread; the handler is called from many
// threads at once; ReloadTls and the accessors from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "http/http.h"
#include "http/tls.h"

namespace redrive::http {

struct ServerOptions {
  std::string host = "127.0.0.1";  // an IPv4 or IPv6 address, without brackets
  int port = 8080;                 // 0 picks a free port
  size_t max_header_bytes = 16 * 1024;
  // A 16 MiB message (the largest maxMessageSize) is ~21.4 MiB in base64, plus JSON.
  size_t max_body_bytes = 24 * 1024 * 1024;
  int request_timeout_ms = 30'000;  // whole request, from its first byte
  int idle_timeout_ms = 75'000;     // keep-alive wait for the next request
  int max_connections = 2048;
  // A response streamed from a file (Response::file) is read and written this much at a time:
  // what one download holds in memory, whatever the file's size.
  size_t file_chunk_bytes = 64 * 1024;
  int io_threads = 0;        // threads running the sockets; 0 = one per core, at most 4
  int handler_threads = 64;  // threads running handlers (which may wait on the store)
  TlsOptions tls;            // TLS when tls.enabled()
};

// Handles one request: answers through `respond`, exactly once, now or later, from any thread.
// Runs on a handler thread; may block (the store), but a wait for an event belongs in a callback.
using Handler = std::function<void(Request request, Responder respond)>;

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  // Stops accepting, closes every connection, joins every thread (handlers still running are
  // waited for). Responders called after this are ignored.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Errors: kInvalidArgument for a host that is not an IP address;
  // kInternal when the address cannot be bound; with TLS, first the errors of TlsContext::Load
  // (kInvalidArgument naming the file).
  Status Start();
  // The bound port (useful with port 0).
  int port() const;
  // Stops accepting new connections; idle keep-alive connections close; connections finish the
  // request they are in, and answer it with Connection: close.
  void StopAccepting();
  // Waits up to `timeout_ms` for every connection to finish, then closes what is left and waits
  // a little more. Returns false if some connection was still open at the end.
  bool Drain(int timeout_ms);

  // Connections open now (for tests and /metrics).
  int open_connections() const;

  bool tls_enabled() const;
  // Loads options.tls's files again. On success new connections use the new pair (connections
  // already open keep theirs) and the new certificate is returned; on error the current pair
  // stays in use, tls_reload_failures() grows, and the error names the file.
  // REQUIRES: tls_enabled() and Start() succeeded.
  Result<CertificateInfo> ReloadTls();
  // The certificate new connections get. REQUIRES: tls_enabled() and Start() succeeded.
  CertificateInfo tls_certificate() const;
  // Since Start: reloads that failed; TLS handshakes that failed or timed out (plain HTTP on
  // the TLS port included, shutdown excluded).
  int64_t tls_reload_failures() const;
  int64_t tls_handshake_failures() const;

  struct Core;  // the sockets' shared state (server.cc)

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace redrive::http
