#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/errors.h"

namespace redrive::http {
namespace {

namespace bhttp = boost::beast::http;
using SteadyClock = std::chrono::steady_clock;

int64_t MsSince(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count();
}

const char* Reason(int status) {
  return bhttp::obsolete_reason(static_cast<bhttp::status>(status)).data();
}

std::string Serialize(const Response& r, bool keep_alive) {
  std::string out;
  out.reserve(r.body.size() + 256);
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += Reason(r.status);
  out += "\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  for (const auto& [k, v] : r.headers) {
    out += "\r\n";
    out += k;
    out += ": ";
    out += v;
  }
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  out += r.body;
  return out;
}

Response Error(ErrorCode code, std::string_view message) {
  const auto& info = GetErrorInfo(code);
  return ErrorResponse(info.http_status, info.wire_code, message);
}

// Writes everything or gives up after `timeout_ms` without progress.
bool WriteAll(int fd, const std::string& data, int timeout_ms) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace

Server::Server(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

Server::~Server() {
  StopAccepting();
  if (!Drain(1000)) {
    // A handler is still running and uses this object: leaving is the only safe move.
    std::_Exit(0);
  }
}

Status Server::Start() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0)
    return Status(ErrorCode::kInternal, std::string("socket: ") + strerror(errno));
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options_.port));
  if (inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr) != 1) {
    return Status(ErrorCode::kInvalidArgument,
                  "listen address '" + options_.host + "' is not an IPv4 address");
  }
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status(ErrorCode::kInternal, "cannot listen on " + options_.host + ":" +
                                            std::to_string(options_.port) + ": " + strerror(errno));
  }
  if (listen(listen_fd_, 1024) != 0) {
    return Status(ErrorCode::kInternal, std::string("listen: ") + strerror(errno));
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

void Server::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r <= 0) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char ip[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    {
      std::lock_guard<std::mutex> l(mu_);
      if (active_ >= options_.max_connections) {
        // Refuse early and cheaply: no thread, no parsing.
        WriteAll(fd, Serialize(Error(ErrorCode::kServerBusy, "too many connections"), false), 100);
        close(fd);
        continue;
      }
      ++active_;
      open_fds_.insert(fd);
    }
    std::thread([this, fd, remote = std::string(ip)] {
      Serve(fd, remote);
      std::lock_guard<std::mutex> l(mu_);
      open_fds_.erase(fd);
      close(fd);
      --active_;
      cv_.notify_all();
    }).detach();
  }
}

void Server::Serve(int fd, std::string remote) {
  std::string buf;
  char chunk[16 * 1024];
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    parser.body_limit(options_.max_body_bytes);
    parser.eager(true);
    auto idle_since = SteadyClock::now();
    std::optional<SteadyClock::time_point> started;
    if (!buf.empty()) started = SteadyClock::now();
    Response early;
    bool failed = false;

    while (!parser.is_done()) {
      if (!buf.empty()) {
        boost::system::error_code ec;
        size_t n = parser.put(boost::asio::buffer(buf.data(), buf.size()), ec);
        buf.erase(0, n);
        if (ec == bhttp::error::need_more) {
          // fall through to read more
        } else if (ec == bhttp::error::header_limit) {
          early = Error(ErrorCode::kHeadersTooLarge, "request line and headers exceed " +
                                                         std::to_string(options_.max_header_bytes) +
                                                         " bytes");
          failed = true;
          break;
        } else if (ec == bhttp::error::body_limit) {
          early =
              Error(ErrorCode::kRequestTooLarge,
                    "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
          failed = true;
          break;
        } else if (ec) {
          early = Error(ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message());
          failed = true;
          break;
        } else {
          if (parser.is_done()) break;
          if (n > 0) continue;
        }
      }
      // Wait for more bytes, within the deadline that applies now.
      int wait_ms;
      if (started) {
        int64_t left = options_.request_timeout_ms - MsSince(*started);
        if (left <= 0) {
          early = Error(ErrorCode::kRequestTimeout, "request was not received in time");
          failed = true;
          break;
        }
        wait_ms = static_cast<int>(std::min<int64_t>(left, 250));
      } else {
        if (stopping_ || MsSince(idle_since) >= options_.idle_timeout_ms) return;
        wait_ms = 250;
      }
      pollfd p{fd, POLLIN, 0};
      int r = poll(&p, 1, wait_ms);
      if (r < 0 && errno != EINTR) return;
      if (r <= 0) continue;
      ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
      if (n == 0) return;  // peer closed
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        return;
      }
      if (!started) started = SteadyClock::now();
      buf.append(chunk, static_cast<size_t>(n));
    }

    if (failed) {
      WriteAll(fd, Serialize(early, false), 5000);
      return;
    }

    auto msg = parser.release();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.remote = remote;
    std::string_view target = req.target;
    size_t qpos = target.find('?');
    req.path = std::string(target.substr(0, qpos));
    bool ok = qpos == std::string_view::npos || ParseQuery(target.substr(qpos + 1), &req.query);
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(msg.body());
    bool keep_alive = msg.keep_alive() && !stopping_;

    Response resp = ok ? handler_(req)
                       : Error(ErrorCode::kInvalidArgument, "malformed percent-encoding in query");
    if (stopping_) keep_alive = false;
    if (!WriteAll(fd, Serialize(resp, keep_alive), 30'000)) return;
    if (!keep_alive) return;
  }
}

void Server::StopAccepting() {
  if (stopping_.exchange(true)) return;
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

bool Server::Drain(int timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  if (cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return active_ == 0; })) {
    return true;
  }
  // Connections that outlived the drain: unblock their reads and writes.
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  return cv_.wait_for(l, std::chrono::milliseconds(2000), [&] { return active_ == 0; });
}

}  // namespace redrive::http
