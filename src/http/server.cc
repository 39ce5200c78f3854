#include "http/server.h"

#include <algorithm>
#include <array>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>
#include <condition_variable>
#include <future>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/errors.h"
#include "http/request_parser.h"

namespace redrive::http {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

const char* Reason(int status) {
  return bhttp::obsolete_reason(static_cast<bhttp::status>(status)).data();
}

// The status line and headers of `r`, for a body of `content_length` bytes. A 304 has no body,
// and no Content-Type or Content-Length either: those would describe the 200 it stands for
// (RFC 9110 §15.4.5, §8.6).
std::string SerializeHead(const Response& r, bool keep_alive, uint64_t content_length) {
  std::string out;
  out.reserve(256);
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += Reason(r.status);
  if (r.status != 304) {
    out += "\r\nContent-Type: ";
    out += r.content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(content_length);
  }
  for (const auto& [k, v] : r.headers) {
    out += "\r\n";
    out += k;
    out += ": ";
    out += v;
  }
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  return out;
}

// A whole answer whose body is in memory.
std::string Serialize(const Response& r, bool keep_alive) {
  if (r.status == 304) return SerializeHead(r, keep_alive, 0);
  std::string out = SerializeHead(r, keep_alive, r.body.size());
  out += r.body;
  return out;
}

Response Error(ErrorCode code, std::string_view message) {
  const auto& info = GetErrorInfo(code);
  return ErrorResponse(info.http_status, info.wire_code, message);
}

constexpr int kWriteTimeoutMs = 30'000;  // a write that makes no progress for this long fails
constexpr int kLingerMs = 1000;          // see Session::Linger
constexpr size_t kLingerBytes = 64 * 1024;
constexpr int kMaxRefusing = 16;  // TLS connections over the limit answered 503 at once

class Session;

}  // namespace

// What the sessions share with the Server. Sessions keep it alive (shared_ptr), so a Responder
// called late finds it; after shutdown it drops what is posted to it.
struct Server::Core {
  Core(ServerOptions o, Handler h) : options(std::move(o)), handler(std::move(h)) {}

  const ServerOptions options;
  const Handler handler;
  std::atomic<bool> stopping{false};

  // GUARDED_BY(mu): what a shutdown waits on.
  std::mutex mu;
  std::condition_variable cv;
  int active = 0;    // accepted connections being served
  int refusing = 0;  // connections over the limit being answered 503
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  bool shut_down = false;  // the I/O threads are gone: posts are dropped

  // Owned here, created by Start. `ioc` is destroyed before the members above (declared after).
  std::unique_ptr<asio::thread_pool> workers;
  std::unique_ptr<asio::io_context> ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> io_threads;
  std::unique_ptr<tcp::acceptor> acceptor;  // used on acceptor's own strand
  std::optional<asio::strand<asio::io_context::executor_type>> accept_strand;
  int port = 0;

  mutable std::mutex tls_mu;
  // GUARDED_BY(tls_mu). Shared with the connections that began with it, each holding it until
  // it closes, so a reload never pulls a certificate from under a live connection.
  std::shared_ptr<const TlsContext> tls;
  std::atomic<int64_t> tls_reload_failures{0};
  std::atomic<int64_t> tls_handshake_failures{0};

  std::shared_ptr<const TlsContext> CurrentTls() const {
    std::lock_guard<std::mutex> l(tls_mu);
    return tls;
  }

  void DoAccept(std::shared_ptr<Core> self);
  // The sessions alive now. Taken under `mu`, dropped outside it: the last reference to a
  // session runs its destructor, which locks `mu`.
  std::vector<std::shared_ptr<Session>> LiveSessions();
  void OnAccept(std::shared_ptr<Core> self, tcp::socket socket);
};

namespace {

// One connection: plain or TLS. Every member is used on the connection's strand only (the
// socket's executor), except where a comment says otherwise.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `refuse`: over max_connections; answer 503 (after the handshake, with TLS) and close.
  Session(std::shared_ptr<Server::Core> core, tcp::socket socket, bool refuse)
      : core_(std::move(core)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        refuse_(refuse) {
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
    if (core_->options.tls.enabled()) {
      tls_ctx_ = core_->CurrentTls();
      tls_.emplace(socket_, tls_ctx_->asio_context());
    }
  }

  ~Session() {
    std::lock_guard<std::mutex> l(core_->mu);
    if (refuse_) {
      --core_->refusing;
    } else {
      --core_->active;
      core_->sessions.erase(this);
    }
    core_->cv.notify_all();
  }

  void Start() {
    if (closed_) return;  // the server stopped before this connection began
    if (tls_) {
      phase_ = Phase::kHandshake;
      int ms = refuse_ ? std::min(core_->options.request_timeout_ms, 2000)
                       : core_->options.request_timeout_ms;
      SetTimer(ms);
      // The first bytes decide: a TLS ClientHello, or a plain HTTP request line.
      socket_.async_read_some(
          asio::buffer(chunk_),
          [self = shared_from_this()](error_code ec, size_t n) { self->OnFirstBytes(ec, n); });
      return;
    }
    if (refuse_) {
      keep_alive_ = false;
      Write(Error(ErrorCode::kServerBusy, "too many connections"), /*write_ms=*/100);
      return;
    }
    StartRequest();
  }

  // The server stopped accepting: an idle connection closes now; a busy one after its answer.
  void OnStop() {
    if (phase_ == Phase::kIdle) CloseNow();
  }
  void ForceClose() { CloseNow(); }
  // The connection's strand. Thread-safe: an executor never changes.
  asio::any_io_executor socket_executor() { return socket_.get_executor(); }

 private:
  enum class Phase { kHandshake, kIdle, kReading, kHandling, kWriting, kClosing };

  // ---- reads, through TLS when configured
  template <class Handler>
  void ReadSome(Handler&& h) {
    if (tls_) {
      tls_->async_read_some(asio::buffer(chunk_), std::forward<Handler>(h));
    } else {
      socket_.async_read_some(asio::buffer(chunk_), std::forward<Handler>(h));
    }
  }
  template <class Handler>
  void WriteAll(Handler&& h) {
    if (tls_ && !plain_on_tls_) {
      asio::async_write(*tls_, asio::buffer(out_), std::forward<Handler>(h));
    } else {
      asio::async_write(socket_, asio::buffer(out_), std::forward<Handler>(h));
    }
  }

  // ---- timers: one per connection; a generation number makes a stale expiry harmless
  void SetTimer(int ms) {
    if (closed_) return;
    uint64_t gen = ++timer_gen_;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (!ec && gen == self->timer_gen_) self->OnTimer();
    });
  }
  void CancelTimer() {
    ++timer_gen_;
    timer_.cancel();
  }
  void OnTimer() {
    timed_out_ = true;
    switch (phase_) {
      case Phase::kReading: {
        // The read handler answers 408 once the pending read is cancelled.
        error_code ec;
        socket_.cancel(ec);
        break;
      }
      case Phase::kHandshake:
        if (!core_->stopping) ++core_->tls_handshake_failures;
        CloseNow();
        break;
      case Phase::kHandling:
        break;
      default:
        CloseNow();
    }
  }

  // ---- TLS
  void OnFirstBytes(error_code ec, size_t n) {
    if (ec || n == 0) {
      if (!timed_out_ && !core_->stopping) ++core_->tls_handshake_failures;
      CloseNow();
      return;
    }
    // A TLS record starts with its content type (22 for a handshake); a request line with an
    // upper-case method.
    if (chunk_[0] >= 'A' && chunk_[0] <= 'Z') {
      ++core_->tls_handshake_failures;
      plain_on_tls_ = true;
      keep_alive_ = false;
      linger_after_write_ = true;
      Write(refuse_ ? Error(ErrorCode::kServerBusy, "too many connections")
                    : Error(ErrorCode::kInvalidArgument,
                            "this port speaks HTTPS only: use an https:// URL"),
            kLingerMs);
      return;
    }
    tls_->async_handshake(
        ssl::stream_base::server, asio::buffer(chunk_.data(), n),
        [self = shared_from_this()](error_code ec, size_t) { self->OnHandshake(ec); });
  }

  void OnHandshake(error_code ec) {
    CancelTimer();
    if (ec) {
      if (!timed_out_ && !core_->stopping) ++core_->tls_handshake_failures;
      CloseNow();
      return;
    }
    handshake_done_ = true;
    if (refuse_) {
      keep_alive_ = false;
      linger_after_write_ = true;
      Write(Error(ErrorCode::kServerBusy, "too many connections"), kLingerMs);
      return;
    }
    StartRequest();
  }

  // ---- requests
  void StartRequest() {
    parser_ = std::make_unique<RequestParser>(core_->options.max_header_bytes,
                                              core_->options.max_body_bytes);
    timed_out_ = false;
    if (buf_.empty()) {
      if (core_->stopping) {
        CloseNow();
        return;
      }
      phase_ = Phase::kIdle;
      SetTimer(core_->options.idle_timeout_ms);
    } else {
      // A pipelined request already began.
      phase_ = Phase::kReading;
      SetTimer(core_->options.request_timeout_ms);
    }
    ParseOrRead();
  }

  void ParseOrRead() {
    if (!buf_.empty()) {
      switch (parser_->Feed(&buf_)) {
        case RequestParser::Step::kDone:
          OnRequest();
          return;
        case RequestParser::Step::kFailed:
          CancelTimer();
          keep_alive_ = false;
          Write(parser_->error(), kWriteTimeoutMs);
          return;
        case RequestParser::Step::kNeedMore:
          break;
      }
    }
    ReadSome([self = shared_from_this()](error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(error_code ec, size_t n) {
    if (ec) {
      if (timed_out_ && phase_ == Phase::kReading) {
        keep_alive_ = false;
        Write(Error(ErrorCode::kRequestTimeout, "request was not received in time"),
              kWriteTimeoutMs);
        return;
      }
      CloseNow();  // the peer closed, the connection broke, or it sat idle too long
      return;
    }
    if (phase_ == Phase::kIdle) {
      phase_ = Phase::kReading;
      SetTimer(core_->options.request_timeout_ms);
    }
    buf_.append(chunk_.data(), n);
    ParseOrRead();
  }

  void OnRequest() {
    CancelTimer();
    phase_ = Phase::kHandling;
    Request req;
    Response refused;
    bool keep_alive = false;
    bool ok = parser_->TakeRequest(remote_, &req, &keep_alive, &refused);
    keep_alive_ = keep_alive;
    if (!ok) {
      Write(std::move(refused), kWriteTimeoutMs);
      return;
    }
    auto self = shared_from_this();
    asio::post(*core_->workers, [self, req = std::move(req)]() mutable {
      Responder respond = [self](Response r) { self->Answer(std::move(r)); };
      self->core_->handler(std::move(req), std::move(respond));
    });
  }

  // From any thread: the handler's answer goes back to the connection's strand.
  void Answer(Response r) {
    std::lock_guard<std::mutex> l(core_->mu);
    if (core_->shut_down) return;
    asio::post(socket_.get_executor(), [self = shared_from_this(), r = std::move(r)]() mutable {
      self->Write(std::move(r), kWriteTimeoutMs);
    });
  }

  void Write(Response r, int write_ms) {
    if (closed_) return;
    if (core_->stopping) keep_alive_ = false;
    if (r.file && r.status != 304) {
      // The headers go out with the first chunk; OnWritten sends the rest a chunk at a time.
      out_ = SerializeHead(r, keep_alive_, r.file->length);
      file_ = std::move(r.file);
      file_read_ = 0;
      if (Status st = ReadChunk(); !st.ok()) {
        // Nothing is sent yet: the client can still get an error instead of a short body.
        file_.reset();
        Write(Error(st.code(), st.message()), write_ms);
        return;
      }
    } else {
      out_ = Serialize(r, keep_alive_);
    }
    phase_ = Phase::kWriting;
    SetTimer(write_ms);
    WriteAll([self = shared_from_this()](error_code ec, size_t) { self->OnWritten(ec); });
  }

  // Appends the streamed file's next bytes, up to file_chunk_bytes, to out_. Errors: the
  // read's, and kInternal when the file ends before the length promised (it was truncated).
  Status ReadChunk() {
    size_t chunk = std::max<size_t>(1, core_->options.file_chunk_bytes);
    size_t n = static_cast<size_t>(std::min<uint64_t>(file_->length - file_read_, chunk));
    size_t base = out_.size();
    out_.resize(base + n);
    for (size_t got = 0; got < n;) {
      auto r =
          file_->file->ReadAt(file_->offset + file_read_ + got, out_.data() + base + got, n - got);
      if (!r.ok()) return r.status();
      if (r.value() == 0) {
        return Status(ErrorCode::kInternal, "the file is shorter than when it was opened");
      }
      got += r.value();
    }
    file_read_ += n;
    return Status::Ok();
  }

  void OnWritten(error_code ec) {
    CancelTimer();
    out_.clear();
    if (ec) {
      CloseNow();
      return;
    }
    if (file_) {
      if (file_read_ < file_->length) {
        // Content-Length is promised: a file that cannot be read to it ends the connection.
        if (!ReadChunk().ok()) {
          CloseNow();
          return;
        }
        // The write timeout applies to each chunk: a client that takes none of it for that long
        // is gone.
        SetTimer(kWriteTimeoutMs);
        WriteAll([self = shared_from_this()](error_code ec, size_t) { self->OnWritten(ec); });
        return;
      }
      // Done: close the file now, and give the chunk's buffer back rather than keep it for as
      // long as the connection stays open.
      file_.reset();
      std::string().swap(out_);
    }
    if (keep_alive_) {
      StartRequest();
      return;
    }
    if (linger_after_write_) {
      Linger();
      return;
    }
    CloseGracefully();
  }

  // Sends close_notify (TLS) and closes, without waiting long for the peer.
  void CloseGracefully() {
    if (tls_ && handshake_done_) {
      phase_ = Phase::kClosing;
      SetTimer(250);
      tls_->async_shutdown([self = shared_from_this()](error_code) { self->CloseNow(); });
      return;
    }
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    CloseNow();
  }

  // Before closing a connection the client may still be writing to: stop sending, then discard
  // what arrives for a moment, so that the close does not reset the connection (and the client
  // lose the answer) while its request is still unread.
  void Linger() {
    phase_ = Phase::kClosing;
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    SetTimer(kLingerMs);
    DiscardSome();
  }
  void DiscardSome() {
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->discarded_ += n;
                              if (ec || self->discarded_ >= kLingerBytes) {
                                self->CloseNow();
                              } else {
                                self->DiscardSome();
                              }
                            });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    phase_ = Phase::kClosing;
    CancelTimer();
    file_.reset();  // no read is in flight: reads happen on this strand, between writes
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  std::shared_ptr<Server::Core> core_;
  tcp::socket socket_;
  std::shared_ptr<const TlsContext> tls_ctx_;     // with TLS: kept until the end
  std::optional<ssl::stream<tcp::socket&>> tls_;  // with TLS, over socket_
  asio::steady_timer timer_;
  const bool refuse_;
  std::string remote_;
  Phase phase_ = Phase::kIdle;
  uint64_t timer_gen_ = 0;
  bool timed_out_ = false;
  bool keep_alive_ = false;
  bool closed_ = false;
  bool handshake_done_ = false;
  bool plain_on_tls_ = false;
  bool linger_after_write_ = false;
  size_t discarded_ = 0;
  std::unique_ptr<RequestParser> parser_;
  std::string buf_;               // received, not yet parsed
  std::string out_;               // the answer being written: all of it, or a file's next chunk
  std::optional<FileBody> file_;  // the file being streamed, if any
  uint64_t file_read_ = 0;        // of file_->length, read into out_ so far
  std::array<char, 16 * 1024> chunk_;
};

}  // namespace

std::vector<std::shared_ptr<Session>> Server::Core::LiveSessions() {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard<std::mutex> l(mu);
  for (auto& [ptr, weak] : sessions) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

void Server::Core::DoAccept(std::shared_ptr<Core> self) {
  acceptor->async_accept(
      asio::make_strand(*ioc),
      asio::bind_executor(*accept_strand, [this, self](error_code ec, tcp::socket socket) {
        if (stopping || !acceptor->is_open()) return;
        if (ec) {
          // Out of descriptors and the like: try again shortly rather than spin.
          auto timer =
              std::make_shared<asio::steady_timer>(*accept_strand, std::chrono::milliseconds(50));
          timer->async_wait([this, self, timer](error_code) {
            if (!stopping && acceptor->is_open()) DoAccept(self);
          });
          return;
        }
        OnAccept(self, std::move(socket));
        DoAccept(self);
      }));
}

void Server::Core::OnAccept(std::shared_ptr<Core> self, tcp::socket socket) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  bool refuse = false;
  {
    std::lock_guard<std::mutex> l(mu);
    if (active >= options.max_connections) {
      // Refuse early and cheaply; with TLS the 503 must go through a handshake, so only a few
      // at a time get one, and beyond that a plain close.
      if (options.tls.enabled() && refusing >= kMaxRefusing) {
        socket.close(ec);
        return;
      }
      refuse = true;
      ++refusing;
    } else {
      ++active;
    }
  }
  auto session = std::make_shared<Session>(self, std::move(socket), refuse);
  if (!refuse) {
    std::lock_guard<std::mutex> l(mu);
    sessions[session.get()] = session;
  }
  // Everything a session does runs on its strand, its start included.
  asio::post(session->socket_executor(), [session] { session->Start(); });
}

Server::Server(ServerOptions options, Handler handler)
    : core_(std::make_shared<Core>(std::move(options), std::move(handler))) {}

Server::~Server() {
  StopAccepting();
  Drain(1000);
  Core& c = *core_;
  {
    std::lock_guard<std::mutex> l(c.mu);
    c.shut_down = true;
  }
  // Handlers finish what they are doing (their answers are dropped), then the sockets stop.
  if (c.workers) c.workers->join();
  c.work.reset();
  if (c.ioc) c.ioc->stop();
  for (auto& t : c.io_threads) t.join();
  c.io_threads.clear();
  c.acceptor.reset();
  c.accept_strand.reset();
  // Destroys what is still queued, and with it the last sessions.
  c.ioc.reset();
}

Status Server::Start() {
  Core& c = *core_;
  if (c.options.tls.enabled()) {
    auto loaded = TlsContext::Load(c.options.tls);
    if (!loaded.ok()) return loaded.status();
    std::lock_guard<std::mutex> l(c.tls_mu);
    c.tls = std::move(loaded).value();
  }
  error_code ec;
  auto address = asio::ip::make_address(c.options.host, ec);
  if (ec) {
    return Status(ErrorCode::kInvalidArgument,
                  "listen address '" + c.options.host + "' is not an IPv4 or IPv6 address");
  }
  c.ioc = std::make_unique<asio::io_context>();
  c.accept_strand.emplace(asio::make_strand(*c.ioc));
  c.acceptor = std::make_unique<tcp::acceptor>(*c.accept_strand);
  tcp::endpoint endpoint(address, static_cast<uint16_t>(c.options.port));
  auto fail = [&](const char* what) {
    std::string where = address.is_v6() ? "[" + c.options.host + "]" : c.options.host;
    return Status(ErrorCode::kInternal, std::string(what) + " " + where + ":" +
                                            std::to_string(c.options.port) + ": " + ec.message());
  };
  c.acceptor->open(endpoint.protocol(), ec);
  if (ec) return fail("cannot listen on");
  c.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (address.is_v6()) c.acceptor->set_option(asio::ip::v6_only(true), ec);
  c.acceptor->bind(endpoint, ec);
  if (ec) return fail("cannot listen on");
  c.acceptor->listen(1024, ec);
  if (ec) return fail("cannot listen on");
  c.port = c.acceptor->local_endpoint(ec).port();

  int io = c.options.io_threads;
  if (io <= 0) io = std::clamp<int>(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
  c.workers = std::make_unique<asio::thread_pool>(std::max(1, c.options.handler_threads));
  c.work.emplace(c.ioc->get_executor());
  c.DoAccept(core_);
  for (int i = 0; i < io; ++i) c.io_threads.emplace_back([&c] { c.ioc->run(); });
  return Status::Ok();
}

int Server::port() const { return core_->port; }

void Server::StopAccepting() {
  Core& c = *core_;
  if (c.stopping.exchange(true)) return;
  if (!c.ioc || c.io_threads.empty()) return;
  // Closing the acceptor on its strand; waiting for it means no connection is accepted after.
  std::promise<void> closed;
  asio::post(*c.accept_strand, [&c, &closed] {
    error_code ec;
    c.acceptor->close(ec);
    closed.set_value();
  });
  closed.get_future().wait();
  for (auto& s : c.LiveSessions()) asio::post(s->socket_executor(), [s] { s->OnStop(); });
}

bool Server::Drain(int timeout_ms) {
  Core& c = *core_;
  std::unique_lock<std::mutex> l(c.mu);
  auto done = [&] { return c.active == 0 && c.refusing == 0; };
  if (c.cv.wait_for(l, std::chrono::milliseconds(timeout_ms), done)) return true;
  // Connections that outlived the drain: close them.
  l.unlock();
  for (auto& s : c.LiveSessions()) asio::post(s->socket_executor(), [s] { s->ForceClose(); });
  l.lock();
  return c.cv.wait_for(l, std::chrono::milliseconds(2000), done);
}

int Server::open_connections() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->active;
}

bool Server::tls_enabled() const { return core_->options.tls.enabled(); }

CertificateInfo Server::tls_certificate() const { return core_->CurrentTls()->certificate(); }

int64_t Server::tls_reload_failures() const { return core_->tls_reload_failures; }
int64_t Server::tls_handshake_failures() const { return core_->tls_handshake_failures; }

Result<CertificateInfo> Server::ReloadTls() {
  Core& c = *core_;
  if (!c.options.tls.enabled()) {
    return Status(ErrorCode::kInvalidArgument, "TLS is not configured");
  }
  auto loaded = TlsContext::Load(c.options.tls);
  if (!loaded.ok()) {
    ++c.tls_reload_failures;
    return loaded.status();
  }
  std::shared_ptr<const TlsContext> fresh = std::move(loaded).value();
  CertificateInfo info = fresh->certificate();
  std::lock_guard<std::mutex> l(c.tls_mu);
  c.tls.swap(fresh);
  return info;
}

}  // namespace redrive::http
