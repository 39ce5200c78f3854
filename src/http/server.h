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
// Thread-safety: Start/Stop from one thread; the handler is called from many threads at once.
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
};

using Handler = std::function<Response(Request&)>;

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();

  // Binds and starts accepting. Errors: kInternal when the address cannot be bound.
  Status Start();
  // The bound port (useful with port 0).
  int port() const { return port_; }
  // Stops accepting new connections; connections finish the request they are in.
  void StopAccepting();
  // Waits up to `timeout_ms` for every connection to finish, then shuts down the sockets of
  // what is left and waits a little more. Returns false if some handler is still running, in
  // which case the caller must not destroy what handlers use.
  bool Drain(int timeout_ms);

 private:
  void AcceptLoop();
  void Serve(int fd, std::string remote);

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
};

}  // namespace redrive::http
