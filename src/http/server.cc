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
#include "http/request_parser.h"
#include "http/tls.h"

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

// Waits up to `wait_ms` for bytes and reads what is there. Returns the count (> 0), 0 when
// nothing arrived in time, -1 when the peer closed or the socket broke.
ssize_t ReadSome(int fd, char* buf, size_t len, int wait_ms) {
  pollfd p{fd, POLLIN, 0};
  int r = poll(&p, 1, wait_ms);
  if (r < 0 && errno != EINTR) return -1;
  if (r <= 0) return 0;
  ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
  if (n == 0) return -1;  // peer closed
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
  return n;
}

bool Write(int fd, TlsConnection* tls, const std::string& data, int timeout_ms) {
  return tls ? tls->WriteAll(data, timeout_ms) : WriteAll(fd, data, timeout_ms);
}

// Before closing a connection the client may still be writing to: stop sending, then discard
// what arrives for a moment, so that the close does not reset the connection (and the client
// lose the answer) while the client's request is still unread.
void Linger(int fd, int timeout_ms) {
  shutdown(fd, SHUT_WR);
  auto start = SteadyClock::now();
  char buf[4096];
  size_t discarded = 0;
  while (discarded < 64 * 1024) {
    int64_t left = timeout_ms - MsSince(start);
    if (left <= 0) return;
    ssize_t n = ReadSome(fd, buf, sizeof(buf), static_cast<int>(left));
    if (n < 0) return;
    discarded += static_cast<size_t>(n);
  }
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
  if (options_.tls.enabled()) {
    auto loaded = TlsContext::Load(options_.tls);
    if (!loaded.ok()) return loaded.status();
    std::lock_guard<std::mutex> l(tls_mu_);
    tls_ = std::move(loaded).value();
  }
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
    int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char ip[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
    {
      std::lock_guard<std::mutex> l(mu_);
      if (active_ >= options_.max_connections) {
        if (options_.tls.enabled() && refusing_ < kMaxRefusing) {
          ++refusing_;
          std::thread([this, fd] {
            RefuseBusyTls(fd);
            std::lock_guard<std::mutex> l(mu_);
            close(fd);
            --refusing_;
            cv_.notify_all();
          }).detach();
          continue;
        }
        // Refuse early and cheaply: no thread, no parsing.
        if (!options_.tls.enabled()) {
          WriteAll(fd, Serialize(Error(ErrorCode::kServerBusy, "too many connections"), false),
                   100);
        }
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
  std::unique_ptr<TlsConnection> tls;
  if (options_.tls.enabled()) {
    tls = std::make_unique<TlsConnection>(CurrentTls(), fd);
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
    switch (tls->Handshake(deadline, stopping_)) {
      case TlsConnection::HandshakeResult::kOk:
        break;
      case TlsConnection::HandshakeResult::kPlainHttp:
        ++tls_handshake_failures_;
        WriteAll(fd,
                 Serialize(Error(ErrorCode::kInvalidArgument,
                                 "this port speaks HTTPS only: use an https:// URL"),
                           false),
                 1000);
        Linger(fd, 1000);
        return;
      default:
        if (!stopping_) ++tls_handshake_failures_;
        return;
    }
  }
  std::string buf;
  char chunk[16 * 1024];
  for (;;) {
    RequestParser parser(options_.max_header_bytes, options_.max_body_bytes);
    auto idle_since = SteadyClock::now();
    std::optional<SteadyClock::time_point> started;
    if (!buf.empty()) started = SteadyClock::now();
    Response early;
    bool failed = false;

    for (;;) {
      if (!buf.empty()) {
        RequestParser::Step step = parser.Feed(&buf);
        if (step == RequestParser::Step::kDone) break;
        if (step == RequestParser::Step::kFailed) {
          early = parser.error();
          failed = true;
          break;
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
      ssize_t n = tls ? tls->Read(chunk, sizeof(chunk), wait_ms)
                      : ReadSome(fd, chunk, sizeof(chunk), wait_ms);
      if (n < 0) return;     // peer closed, or the connection broke
      if (n == 0) continue;  // nothing yet
      if (!started) started = SteadyClock::now();
      buf.append(chunk, static_cast<size_t>(n));
    }

    if (failed) {
      Write(fd, tls.get(), Serialize(early, false), 5000);
      return;
    }

    Request req;
    Response resp;
    bool keep_alive = false;
    if (parser.TakeRequest(remote, &req, &keep_alive, &resp)) resp = handler_(req);
    if (stopping_) keep_alive = false;
    if (!Write(fd, tls.get(), Serialize(resp, keep_alive), 30'000)) return;
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
  auto done = [&] { return active_ == 0 && refusing_ == 0; };
  if (cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), done)) return true;
  // Connections that outlived the drain: unblock their reads and writes.
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  return cv_.wait_for(l, std::chrono::milliseconds(2000), done);
}

std::shared_ptr<const TlsContext> Server::CurrentTls() const {
  std::lock_guard<std::mutex> l(tls_mu_);
  return tls_;
}

CertificateInfo Server::tls_certificate() const { return CurrentTls()->certificate(); }

Result<CertificateInfo> Server::ReloadTls() {
  if (!options_.tls.enabled()) {
    return Status(ErrorCode::kInvalidArgument, "TLS is not configured");
  }
  auto loaded = TlsContext::Load(options_.tls);
  if (!loaded.ok()) {
    ++tls_reload_failures_;
    return loaded.status();
  }
  std::shared_ptr<const TlsContext> fresh = std::move(loaded).value();
  CertificateInfo info = fresh->certificate();
  std::lock_guard<std::mutex> l(tls_mu_);
  tls_.swap(fresh);
  return info;
}

void Server::RefuseBusyTls(int fd) {
  {
    TlsConnection tls(CurrentTls(), fd);
    auto deadline =
        SteadyClock::now() + std::chrono::milliseconds(std::min(options_.request_timeout_ms, 2000));
    auto busy = Serialize(Error(ErrorCode::kServerBusy, "too many connections"), false);
    switch (tls.Handshake(deadline, stopping_)) {
      case TlsConnection::HandshakeResult::kOk:
        tls.WriteAll(busy, 1000);
        break;
      case TlsConnection::HandshakeResult::kPlainHttp:
        WriteAll(fd, busy, 1000);
        break;
      default:
        return;
    }
  }  // close_notify goes out before the linger
  Linger(fd, 1000);
}

}  // namespace redrive::http
