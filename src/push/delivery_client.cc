#include "push/delivery_client.h"

#include <curl/curl.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <mutex>
#include <unordered_map>

namespace redrive::push {
namespace {

namespace asio = boost::asio;
using SteadyTime = std::chrono::steady_clock::time_point;

// libcurl 7.84 and later initialise thread-safely, but the CLI's client and this one may both
// run in one process: curl_global_init counts its calls, so each user calls it once.
void InitCurlOnce() {
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)init;
}

TransportError ErrorKind(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_INTERFACE_FAILED:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TransportError::kConnection;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return TransportError::kTls;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return TransportError::kInvalidUrl;
    default:
      return TransportError::kOther;
  }
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

std::string_view TrimHeaderValue(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

// Everything libcurl and Asio touch. Shared (shared_from_this) with the handlers pending on the
// io_context, which may run after the DeliveryClient is gone: they find it shut down and return.
//
// Locking: every use of the multi handle, the descriptors and the timer is on the strand (so
// handlers never wait for each other) and under mu_. The mutex is what lets Shutdown, and so the
// destructor, run from any thread at any time, even when the io_context has stopped and would
// never run a handler posted to the strand. libcurl's callbacks (OnSocket, OnTimer, OnBody,
// OnHeader) run inside curl calls made under mu_, so they do not take it. Completion callbacks
// are called after mu_ is released, so that they may call Send or Shutdown.
class DeliveryClient::Impl : public std::enable_shared_from_this<DeliveryClient::Impl> {
 public:
  Impl(asio::io_context& io, DeliveryClientOptions options)
      : io_(io), strand_(asio::make_strand(io)), options_(std::move(options)), timer_(io) {}

  ~Impl() {
    // Shutdown already ran (DeliveryClient's destructor), so there is nothing left to free;
    // the check covers an Impl that Start never finished.
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }

  bool Start() {
    InitCurlOnce();
    multi_ = curl_multi_init();
    if (multi_ == nullptr) return false;
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, options_.max_total_connections);
    // The pool of idle connections kept for reuse. libcurl's default is 4 per easy handle in the
    // multi handle, so after a moment with few requests in flight it closed connections that the
    // next burst opened again (measured: connects and closes all through a steady push load).
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      options_.max_total_connections > 0 ? options_.max_total_connections : 256L);
    return true;
  }

  void Send(DeliveryRequest request, Callback done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!shut_down_) {
        asio::post(strand_, [self = shared_from_this(), request = std::move(request),
                             done = std::move(done)]() mutable {
          self->StartTransfer(std::move(request), std::move(done));
        });
        return;
      }
    }
    done(ShutdownResult(0));
  }

  void Shutdown() {
    std::vector<Finished> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) return;
      shut_down_ = true;
      timer_.cancel();
      // Out of the reactor before libcurl closes the sockets: a descriptor number closed while
      // still registered could be reused by another socket of the process and unregistered
      // under it.
      for (auto& [fd, watch] : watches_) watch->descriptor.release();
      watches_.clear();
      SteadyTime now = std::chrono::steady_clock::now();
      for (auto& [easy, transfer] : transfers_) {
        curl_multi_remove_handle(multi_, easy);
        finished.push_back(
            {std::move(transfer->done), ShutdownResult(Since(transfer->start, now))});
        // The transfer's destructor frees the easy handle and its header list.
      }
      transfers_.clear();
      if (multi_ != nullptr) curl_multi_cleanup(multi_);
      multi_ = nullptr;
    }
    Finish(finished);
  }

  size_t in_flight() {
    std::lock_guard<std::mutex> lock(mu_);
    return transfers_.size();
  }

 private:
  // One request in flight: the easy handle and what its callbacks fill.
  struct Transfer {
    ~Transfer() {
      if (easy != nullptr) curl_easy_cleanup(easy);
      if (headers != nullptr) curl_slist_free_all(headers);
    }
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string body;  // libcurl reads it in place (CURLOPT_POSTFIELDS does not copy)
    Callback done;
    SteadyTime start;
    size_t snippet_limit = 0;
    size_t max_bytes = 0;
    size_t received = 0;
    bool cut_off = false;  // the body passed max_bytes and the write callback refused it
    std::string snippet;
    std::string retry_after;
    char error[CURL_ERROR_SIZE] = {};
  };

  // A socket libcurl asked us to watch. The descriptor does not own the socket: libcurl closes
  // it, after telling us CURL_POLL_REMOVE, when we release it.
  struct Watch {
    Watch(asio::io_context& io, uint64_t gen) : descriptor(io), generation(gen) {}
    asio::posix::stream_descriptor descriptor;
    uint64_t generation;   // tells a wait on this watch from one on a socket with a reused number
    int want = 0;          // CURL_POLL_IN / _OUT / _INOUT
    bool reading = false;  // a read wait is pending
    bool writing = false;  // a write wait is pending
  };

  struct Finished {
    Callback done;
    DeliveryResult result;
  };

  static DurationMs Since(SteadyTime start, SteadyTime now) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
  }

  static DeliveryResult ShutdownResult(DurationMs duration) {
    DeliveryResult r;
    r.error = TransportError::kShutdown;
    r.error_message = "shutdown";
    r.duration = duration;
    return r;
  }

  static void Finish(std::vector<Finished>& finished) {
    for (Finished& f : finished) f.done(std::move(f.result));
  }

  static DeliveryResult Failure(TransportError error, std::string message) {
    DeliveryResult r;
    r.error = error;
    r.error_message = std::move(message);
    return r;
  }

  // On the strand.
  void StartTransfer(DeliveryRequest request, Callback done) {
    std::vector<Finished> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) {
        finished.push_back({std::move(done), ShutdownResult(0)});
      } else if (!AddTransfer(std::move(request), done)) {
        finished.push_back(
            {std::move(done), Failure(TransportError::kOther, "libcurl refused the request")});
      } else {
        // libcurl may have finished it already (a URL it cannot parse).
        Collect(&finished);
      }
    }
    Finish(finished);
  }

  // REQUIRES: mu_ held. Moves `done` into the transfer only when it returns true.
  bool AddTransfer(DeliveryRequest request, Callback& done) {
    auto t = std::make_unique<Transfer>();
    t->easy = curl_easy_init();
    if (t->easy == nullptr) return false;
    t->body = std::move(request.body);
    t->snippet_limit = options_.body_snippet_bytes;
    t->max_bytes = options_.max_response_bytes;
    for (const auto& [name, value] : request.headers) {
      // "Name;" is libcurl's spelling of a header sent with an empty value.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      t->headers = curl_slist_append(t->headers, line.c_str());
    }
    t->headers = curl_slist_append(t->headers, "Expect:");
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<DurationMs>(1, request.timeout)));
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // no proxy from the environment
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!request.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, request.ca_file.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    t->start = std::chrono::steady_clock::now();
    t->done = std::move(done);
    Transfer* raw = t.get();
    transfers_.emplace(e, std::move(t));
    if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
      done = std::move(raw->done);
      transfers_.erase(e);
      return false;
    }
    return true;
  }

  // REQUIRES: mu_ held. Moves every finished transfer's callback and result to `finished`.
  void Collect(std::vector<Finished>* finished) {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* easy = m->easy_handle;
      CURLcode code = m->data.result;  // m is invalid once the handle is removed
      auto it = transfers_.find(easy);
      if (it == transfers_.end()) continue;
      Transfer& t = *it->second;
      DeliveryResult r;
      r.duration = Since(t.start, std::chrono::steady_clock::now());
      if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && t.cut_off)) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.retry_after = std::move(t.retry_after);
      } else {
        r.error = ErrorKind(code);
        r.error_message = t.error[0] != '\0' ? t.error : curl_easy_strerror(code);
      }
      r.body_snippet = std::move(t.snippet);
      curl_multi_remove_handle(multi_, easy);
      finished->push_back({std::move(t.done), std::move(r)});
      transfers_.erase(it);
    }
  }

  // REQUIRES: mu_ held.
  void Arm(curl_socket_t fd, Watch& watch, bool write) {
    (write ? watch.writing : watch.reading) = true;
    watch.descriptor.async_wait(
        write ? asio::posix::stream_descriptor::wait_write
              : asio::posix::stream_descriptor::wait_read,
        asio::bind_executor(strand_, [self = shared_from_this(), fd, gen = watch.generation,
                                      write](const boost::system::error_code& ec) {
          self->OnReady(fd, gen, write, ec);
        }));
  }

  // On the strand: the socket `fd` is readable (or writable).
  void OnReady(curl_socket_t fd, uint64_t generation, bool write,
               const boost::system::error_code& ec) {
    std::vector<Finished> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) return;
      Watch* watch = Find(fd, generation);
      if (watch == nullptr) return;  // released since, maybe replaced by a socket of that number
      (write ? watch->writing : watch->reading) = false;
      if (ec == asio::error::operation_aborted) return;
      int flag = write ? CURL_POLL_OUT : CURL_POLL_IN;
      if ((watch->want & flag) == 0) return;  // libcurl stopped wanting this direction
      int mask = ec ? CURL_CSELECT_ERR : (write ? CURL_CSELECT_OUT : CURL_CSELECT_IN);
      int running = 0;
      curl_multi_socket_action(multi_, fd, mask, &running);
      Collect(&finished);
      // libcurl may have removed the socket, or changed what it wants, meanwhile.
      watch = Find(fd, generation);
      if (watch != nullptr && (watch->want & flag) != 0 &&
          !(write ? watch->writing : watch->reading)) {
        Arm(fd, *watch, write);
      }
    }
    Finish(finished);
  }

  // On the strand: libcurl's timer expired.
  void OnTimeout(uint64_t generation, const boost::system::error_code& ec) {
    std::vector<Finished> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_ || ec == asio::error::operation_aborted || generation != timer_generation_) {
        return;
      }
      int running = 0;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      Collect(&finished);
    }
    Finish(finished);
  }

  Watch* Find(curl_socket_t fd, uint64_t generation) {
    auto it = watches_.find(fd);
    if (it == watches_.end() || it->second->generation != generation) return nullptr;
    return it->second.get();
  }

  // CURLMOPT_SOCKETFUNCTION, inside a curl call made under mu_.
  static int OnSocket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<Impl*>(userp);
    if (self->shut_down_) return 0;
    if (what == CURL_POLL_REMOVE) {
      auto it = self->watches_.find(fd);
      if (it != self->watches_.end()) {
        it->second->descriptor.release();  // cancels its waits; libcurl closes the socket
        self->watches_.erase(it);
      }
      return 0;
    }
    std::unique_ptr<Watch>& watch = self->watches_[fd];
    if (!watch) {
      watch = std::make_unique<Watch>(self->io_, self->next_generation_++);
      boost::system::error_code ec;
      watch->descriptor.assign(fd, ec);
      if (ec) {
        // Unwatchable: the transfer ends at its deadline, through the timer.
        self->watches_.erase(fd);
        return 0;
      }
    }
    watch->want = what;
    if ((what & CURL_POLL_IN) != 0 && !watch->reading) self->Arm(fd, *watch, false);
    if ((what & CURL_POLL_OUT) != 0 && !watch->writing) self->Arm(fd, *watch, true);
    return 0;
  }

  // CURLMOPT_TIMERFUNCTION, inside a curl call made under mu_. libcurl must not be called from
  // here, so even a 0 ms timeout goes through the timer.
  static int OnTimer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (self->shut_down_) return 0;
    uint64_t generation = ++self->timer_generation_;
    if (timeout_ms < 0) {
      self->timer_.cancel();
      return 0;
    }
    if (timeout_ms == 0) {
      // "Act now" (libcurl asks it for every new transfer): a post, not a timer, saves a
      // timerfd_settime per request. A wait still armed has an older generation: ignored.
      asio::post(self->strand_, [s = self->shared_from_this(), generation] {
        s->OnTimeout(generation, boost::system::error_code());
      });
      return 0;
    }
    self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    self->timer_.async_wait(asio::bind_executor(
        self->strand_, [s = self->shared_from_this(), generation](
                           const boost::system::error_code& ec) { s->OnTimeout(generation, ec); }));
    return 0;
  }

  // CURLOPT_WRITEFUNCTION: keeps the snippet, counts the rest, cuts off past max_bytes.
  static size_t OnBody(char* data, size_t size, size_t count, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t n = size * count;
    t->received += n;
    if (t->snippet.size() < t->snippet_limit) {
      t->snippet.append(data, std::min(n, t->snippet_limit - t->snippet.size()));
    }
    if (t->received > t->max_bytes) {
      t->cut_off = true;
      return 0;  // CURLE_WRITE_ERROR, which Collect reads as "the status stands"
    }
    return n;
  }

  // CURLOPT_HEADERFUNCTION: keeps Retry-After of the final response (a status line starts a
  // response; an interim 1xx one does not leave its headers behind).
  static size_t OnHeader(char* data, size_t size, size_t count, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    size_t n = size * count;
    std::string_view line(data, n);
    if (StartsWithNoCase(line, "http/")) {
      t->retry_after.clear();
    } else if (StartsWithNoCase(line, "retry-after:")) {
      t->retry_after = std::string(TrimHeaderValue(line.substr(12)));
    }
    return n;
  }

  asio::io_context& io_;
  asio::strand<asio::io_context::executor_type> strand_;
  const DeliveryClientOptions options_;
  std::mutex mu_;
  CURLM* multi_ = nullptr;         // GUARDED_BY(mu_)
  bool shut_down_ = false;         // GUARDED_BY(mu_)
  asio::steady_timer timer_;       // GUARDED_BY(mu_)
  uint64_t timer_generation_ = 0;  // GUARDED_BY(mu_); tells the current wait from stale ones
  uint64_t next_generation_ = 1;   // GUARDED_BY(mu_)
  std::unordered_map<curl_socket_t, std::unique_ptr<Watch>> watches_;  // GUARDED_BY(mu_)
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers_;     // GUARDED_BY(mu_)
};

DeliveryClient::DeliveryClient(asio::io_context& io, DeliveryClientOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {
  if (!impl_->Start()) impl_->Shutdown();  // every Send then answers kShutdown
}

DeliveryClient::~DeliveryClient() { impl_->Shutdown(); }

void DeliveryClient::Send(DeliveryRequest request, Callback done) {
  impl_->Send(std::move(request), std::move(done));
}

void DeliveryClient::Shutdown() { impl_->Shutdown(); }

size_t DeliveryClient::in_flight() const { return impl_->in_flight(); }

}  // namespace redrive::push
