// redrive_loadgen: drives a running redrive server's REST API with concurrent producers and
// consumers and accounts for every message it published.
//
// Scenarios:
//   publish      producers only; checks that the queue's ready depth grew by what was published.
//   end-to-end   producers and consumers at once; every message received is acked; checks
//                published == acked. Reports publish-to-receive latency.
//   dead-letter  like end-to-end, but a deterministic share (--fail-share) of the messages is
//                nacked on every delivery until the retry policy dead-letters it; checks
//                acked + dead-lettered == published (dead-lettered read from the queue's
//                depth.deadLettered) and that exactly the failing messages were dead-lettered.
//   latency      producers publish at a fixed --rate; consumers ack; reports publish-to-receive
//                latency percentiles. Each message carries its *intended* send time, so a
//                producer that falls behind does not hide the delay (no coordinated omission).
//
// --max-backlog N makes producers wait while N published messages are unsettled, so end-to-end
// and dead-letter runs measure what the server sustains rather than how fast a backlog grows.
//
// Each worker thread owns one libcurl easy handle, so its connection is kept alive. Messages
// carry two attributes: "n" (a sequence number; decides which messages fail) and "t" (the send
// time in microseconds on this process's steady clock). Receive responses are scanned for those
// fields and the receipts without a full JSON parse: the load generator shares two cores with
// the server and must stay cheap.
//
// Only 127.0.0.1 / localhost URLs are accepted; every run is bounded by --timeout.
#include <curl/curl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

const SteadyClock::time_point kEpoch = SteadyClock::now();

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - kEpoch).count();
}

void SleepUntilMicros(int64_t t) {
  int64_t now = NowMicros();
  if (t > now) std::this_thread::sleep_for(std::chrono::microseconds(t - now));
}

struct Options {
  std::string url = "http://127.0.0.1:8080";
  std::string token;
  std::string token_file;
  std::string tenant = "bench";
  std::string queue = "bench";
  int producers = 4;
  int consumers = 4;
  int batch = 100;
  int receive_batch = 0;  // 0: same as batch
  int body_size = 1024;
  int64_t messages = 0;
  double seconds = 0;
  std::string scenario = "end-to-end";
  double rate = 10'000;
  double fail_share = 0.1;
  double timeout = 0;       // 0: derived from the run's size
  int64_t max_backlog = 0;  // 0: unbounded
  bool create = false;
  bool json_output = false;
};

// ------------------------------------------------------------------ HTTP

size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// One keep-alive connection (a libcurl easy handle). Thread-compatible.
class Http {
 public:
  Http(const std::string& token) {
    h_ = curl_easy_init();
    headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + token).c_str());
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, &Collect);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &body_);
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, 60'000L);
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, 5'000L);
    body_.reserve(1 << 20);
  }
  ~Http() {
    curl_easy_cleanup(h_);
    curl_slist_free_all(headers_);
  }
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // Returns the HTTP status, or 0 when the request failed at the transport level.
  long Post(const std::string& url, const std::string& payload) {
    curl_easy_setopt(h_, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(h_, CURLOPT_POST, 1L);
    curl_easy_setopt(h_, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    return Perform(url);
  }
  long Get(const std::string& url) {
    curl_easy_setopt(h_, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(h_, CURLOPT_HTTPGET, 1L);
    return Perform(url);
  }
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  long Perform(const std::string& url) {
    body_.clear();
    error_.clear();
    curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
    CURLcode rc = curl_easy_perform(h_);
    if (rc != CURLE_OK) {
      error_ = curl_easy_strerror(rc);
      return 0;
    }
    long status = 0;
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

  CURL* h_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::string body_;
  std::string error_;
};

// ------------------------------------------------------------------ response scanning

// Reads the decimal integer that starts at `pos`.
int64_t ParseInt(std::string_view s, size_t pos) {
  int64_t v = 0;
  bool neg = pos < s.size() && s[pos] == '-';
  if (neg) ++pos;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') v = v * 10 + (s[pos++] - '0');
  return neg ? -v : v;
}

// The integer value of `"key":N` or `"key":"N"` inside [from, to); -1 when absent.
int64_t FieldInt(std::string_view s, std::string_view key, size_t from, size_t to) {
  size_t p = s.substr(0, to).find(key, from);
  if (p == std::string_view::npos) return -1;
  p += key.size();
  if (p < s.size() && s[p] == '"') ++p;
  return ParseInt(s, p);
}

struct Received {
  std::string receipt;
  int64_t n = -1;
  int64_t sent_us = -1;
  int64_t delivery_count = 0;
};

// Extracts the deliveries of a receive response. The server writes each message object with
// its keys in sorted order ("attributes" ... "deliveryCount" ... "receipt"), and the bodies this
// tool publishes hold only 'x', so plain substring search is exact.
void ScanDeliveries(std::string_view s, std::vector<Received>* out) {
  out->clear();
  size_t pos = 0;
  for (;;) {
    size_t a = s.find("\"attributes\":{", pos);
    if (a == std::string_view::npos) return;
    size_t close = s.find('}', a);
    size_t r = s.find("\"receipt\":\"", close);
    if (close == std::string_view::npos || r == std::string_view::npos) return;
    Received m;
    m.n = FieldInt(s, "\"n\":", a, close);
    m.sent_us = FieldInt(s, "\"t\":", a, close);
    m.delivery_count = FieldInt(s, "\"deliveryCount\":", close, r);
    r += 11;
    size_t end = s.find('"', r);
    if (end == std::string_view::npos) return;
    m.receipt.assign(s.substr(r, end - r));
    out->push_back(std::move(m));
    pos = end;
  }
}

int64_t CountOccurrences(std::string_view s, std::string_view needle) {
  int64_t n = 0;
  for (size_t p = s.find(needle); p != std::string_view::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

// ------------------------------------------------------------------ the run

// Message n fails (is nacked on every delivery) when it crosses a multiple of 1/share: exactly
// floor(N * share) of the first N messages fail, spread evenly.
bool Fails(int64_t n, double share) {
  if (share <= 0) return false;
  return std::floor(static_cast<double>(n + 1) * share) >
         std::floor(static_cast<double>(n) * share);
}

struct Stats {
  std::atomic<int64_t> published{0};
  std::atomic<int64_t> published_fails{0};  // how many published messages are set to fail
  std::atomic<int64_t> publish_requests{0};
  std::atomic<int64_t> receive_requests{0};
  std::atomic<int64_t> empty_receives{0};
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> redelivered{0};
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> ack_lost{0};
  std::atomic<int64_t> nacked{0};
  std::atomic<int64_t> final_nacks{0};  // nacks of a last allowed delivery: dead-lettered
  std::atomic<int64_t> errors{0};
  std::atomic<int64_t> last_publish_us{0};
  std::atomic<int64_t> last_settle_us{0};  // last ack or nack that succeeded
  std::atomic<int64_t> behind_us{0};       // latency scenario: worst lag behind schedule

  std::mutex mu;
  std::vector<uint32_t> latencies_us;  // GUARDED_BY(mu)
  std::string first_error;             // GUARDED_BY(mu)
};

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load();
  while (v > cur && !a.compare_exchange_weak(cur, v)) {
  }
}

void RecordError(Stats& st, const std::string& what, long status, const Http& http) {
  ++st.errors;
  std::lock_guard<std::mutex> l(st.mu);
  if (st.first_error.empty()) {
    st.first_error =
        what + ": " +
        (status == 0 ? http.error()
                     : "HTTP " + std::to_string(status) + " " + http.body().substr(0, 300));
  }
}

class Run {
 public:
  explicit Run(const Options& o) : o_(o) {
    base_ = o_.url + "/v1/tenants/" + o_.tenant + "/queues/" + o_.queue;
    filler_.assign(static_cast<size_t>(o_.body_size), 'x');
    receive_batch_ = o_.receive_batch > 0 ? o_.receive_batch : o_.batch;
  }

  int Execute();

 private:
  bool Prepare(Http& http);
  std::optional<json> GetQueue(Http& http);
  void Producer(int index);
  void Consumer();
  void WaitForConsumers();
  void Report(double seconds, bool accounted, const std::string& verdict);

  bool Timed() const { return o_.seconds > 0; }
  bool HasConsumers() const { return o_.scenario != "publish"; }

  const Options& o_;
  std::string base_;
  std::string filler_;
  int receive_batch_ = 0;
  int64_t deadline_us_ = 0;  // hard stop for everything
  int64_t publish_end_us_ = 0;
  int64_t start_us_ = 0;
  int max_deliveries_ = 0;
  int64_t baseline_ready_ = 0;
  int64_t baseline_dead_ = 0;
  int64_t final_dead_ = 0;

  std::atomic<int64_t> next_n_{0};
  std::atomic<bool> stop_consumers_{false};
  Stats st_;
};

std::optional<json> Run::GetQueue(Http& http) {
  long status = http.Get(base_);
  if (status != 200) {
    RecordError(st_, "GET queue", status, http);
    return std::nullopt;
  }
  json q = json::parse(http.body(), nullptr, false);
  if (q.is_discarded()) return std::nullopt;
  return q;
}

bool Run::Prepare(Http& http) {
  if (o_.create) {
    json t = {{"name", o_.tenant}};
    long s = http.Post(o_.url + "/v1/tenants", t.dump());
    if (s != 201 && s != 409) {
      RecordError(st_, "create tenant", s, http);
      return false;
    }
    json attrs = json::object();
    if (o_.scenario == "dead-letter") {
      attrs["retryPolicy"] = {{"maxDeliveries", 3},
                              {"backoff", {{"initial", "0s"}, {"jitter", 0}}}};
    }
    json q = {{"name", o_.queue}, {"attributes", attrs}};
    s = http.Post(o_.url + "/v1/tenants/" + o_.tenant + "/queues", q.dump());
    if (s != 201 && s != 409) {
      RecordError(st_, "create queue", s, http);
      return false;
    }
  }
  auto q = GetQueue(http);
  if (!q) return false;
  const json& d = (*q)["depth"];
  baseline_ready_ = d.value("ready", int64_t{0});
  baseline_dead_ = d.value("deadLettered", int64_t{0});
  int64_t in_flight =
      baseline_ready_ + d.value("leased", int64_t{0}) + d.value("delayed", int64_t{0});
  if (HasConsumers() && in_flight != 0) {
    std::fprintf(stderr,
                 "redrive_loadgen: queue %s/%s holds %lld messages; the %s scenario needs an "
                 "empty queue to account for every message\n",
                 o_.tenant.c_str(), o_.queue.c_str(), static_cast<long long>(in_flight),
                 o_.scenario.c_str());
    return false;
  }
  max_deliveries_ = (*q)["attributes"]["retryPolicy"].value("maxDeliveries", 0);
  if (o_.scenario == "dead-letter" && max_deliveries_ <= 0) {
    std::fprintf(stderr,
                 "redrive_loadgen: queue %s/%s has retryPolicy.maxDeliveries=%d; the dead-letter "
                 "scenario needs a positive limit (e.g. 3)\n",
                 o_.tenant.c_str(), o_.queue.c_str(), max_deliveries_);
    return false;
  }
  return true;
}

void Run::Producer(int index) {
  Http http(o_.token);
  const std::string url = base_ + "/messages";
  std::string payload;
  payload.reserve(static_cast<size_t>(o_.batch) * (filler_.size() + 80) + 32);
  const bool paced = o_.scenario == "latency";
  // Paced producers share the rate: each sends one batch every `interval`, staggered.
  const double interval_us =
      paced ? 1e6 * static_cast<double>(o_.batch) * o_.producers / o_.rate : 0;
  double next_us = static_cast<double>(start_us_) + interval_us * index / o_.producers;
  const double fail_share = o_.scenario == "dead-letter" ? o_.fail_share : 0;

  for (;;) {
    int64_t now = NowMicros();
    if (now >= deadline_us_ || (Timed() && now >= publish_end_us_)) break;
    int64_t sent_us = now;
    if (paced) {
      if (Timed() && next_us >= static_cast<double>(publish_end_us_)) break;
      SleepUntilMicros(static_cast<int64_t>(next_us));
      sent_us = static_cast<int64_t>(next_us);  // the intended time, even when late
      AtomicMax(st_.behind_us, NowMicros() - sent_us);
      next_us += interval_us;
    }
    // With --max-backlog, producers wait while too many published messages are not yet settled,
    // so end-to-end runs measure what the server sustains rather than how fast a backlog grows.
    while (o_.max_backlog > 0 && NowMicros() < deadline_us_ &&
           st_.published - st_.acked - st_.final_nacks >= o_.max_backlog) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (Timed() && NowMicros() >= publish_end_us_) break;
    if (!paced) sent_us = NowMicros();
    int64_t count = o_.batch;
    int64_t first = next_n_.fetch_add(count);
    if (!Timed()) {
      if (first >= o_.messages) break;
      count = std::min<int64_t>(count, o_.messages - first);
    }
    payload.clear();
    payload += "{\"messages\":[";
    int64_t fails = 0;
    for (int64_t i = 0; i < count; ++i) {
      int64_t n = first + i;
      fails += Fails(n, fail_share) ? 1 : 0;
      if (i) payload += ',';
      payload += "{\"body\":\"";
      payload += filler_;
      payload += "\",\"attributes\":{\"n\":\"";
      payload += std::to_string(n);
      payload += "\",\"t\":\"";
      payload += std::to_string(sent_us);
      payload += "\"}}";
    }
    payload += "]}";
    long status = http.Post(url, payload);
    ++st_.publish_requests;
    int64_t ids = status == 201 ? CountOccurrences(http.body(), "\"id\":") : 0;
    if (status != 201 || ids != count) {
      // A failed publish is not retried: its messages are not counted as published, and the run
      // reports the error.
      RecordError(st_, "publish", status, http);
      continue;
    }
    st_.published += count;
    st_.published_fails += fails;
    AtomicMax(st_.last_publish_us, NowMicros());
  }
}

void Run::Consumer() {
  Http http(o_.token);
  const std::string receive_url = base_ + "/receive";
  const std::string ack_url = base_ + "/ack";
  const std::string nack_url = base_ + "/nack";
  const std::string receive_body =
      "{\"maxMessages\":" + std::to_string(receive_batch_) + ",\"wait\":\"1s\"}";
  const bool measure = o_.scenario == "end-to-end" || o_.scenario == "latency";
  const double fail_share = o_.scenario == "dead-letter" ? o_.fail_share : 0;
  std::vector<Received> got;
  std::vector<uint32_t> latencies;
  std::string acks, nacks;

  while (!stop_consumers_ && NowMicros() < deadline_us_) {
    long status = http.Post(receive_url, receive_body);
    ++st_.receive_requests;
    if (status != 200) {
      RecordError(st_, "receive", status, http);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    int64_t now = NowMicros();
    ScanDeliveries(http.body(), &got);
    if (got.empty()) {
      ++st_.empty_receives;
      continue;
    }
    st_.received += static_cast<int64_t>(got.size());
    acks = "{\"receipts\":[";
    nacks = "{\"nacks\":[";
    int64_t n_acks = 0, n_nacks = 0, n_final = 0;
    for (const auto& m : got) {
      if (m.delivery_count > 1) ++st_.redelivered;
      if (measure && m.delivery_count == 1 && m.sent_us >= 0) {
        latencies.push_back(
            static_cast<uint32_t>(std::clamp<int64_t>(now - m.sent_us, 0, UINT32_MAX)));
      }
      if (Fails(m.n, fail_share)) {
        if (m.delivery_count >= max_deliveries_) ++n_final;
        if (n_nacks++) nacks += ',';
        nacks += "{\"receipt\":\"" + m.receipt +
                 "\",\"reason\":\"bench-failure\",\"error\":\"simulated failure (loadgen)\","
                 "\"delay\":\"0s\"}";
      } else {
        if (n_acks++) acks += ',';
        acks += '"';
        acks += m.receipt;
        acks += '"';
      }
    }
    if (n_acks) {
      acks += "]}";
      status = http.Post(ack_url, acks);
      if (status != 200) {
        RecordError(st_, "ack", status, http);
      } else {
        int64_t ok = FieldInt(http.body(), "\"succeeded\":", 0, http.body().size());
        st_.acked += ok;
        st_.ack_lost += n_acks - ok;
        AtomicMax(st_.last_settle_us, NowMicros());
      }
    }
    if (n_nacks) {
      nacks += "]}";
      status = http.Post(nack_url, nacks);
      if (status != 200) {
        RecordError(st_, "nack", status, http);
      } else {
        int64_t ok = FieldInt(http.body(), "\"succeeded\":", 0, http.body().size());
        st_.nacked += ok;
        if (ok == n_nacks) st_.final_nacks += n_final;
        AtomicMax(st_.last_settle_us, NowMicros());
      }
    }
  }
  std::lock_guard<std::mutex> l(st_.mu);
  st_.latencies_us.insert(st_.latencies_us.end(), latencies.begin(), latencies.end());
}

// Called once the producers are done: lets the consumers drain what was published.
void Run::WaitForConsumers() {
  if (o_.scenario == "dead-letter") {
    // Dead letters are only visible in the queue's depth: poll it.
    Http http(o_.token);
    while (NowMicros() < deadline_us_) {
      auto q = GetQueue(http);
      if (q) {
        const json& d = (*q)["depth"];
        final_dead_ = d.value("deadLettered", int64_t{0}) - baseline_dead_;
        if (st_.acked + final_dead_ >= st_.published) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } else {
    while (NowMicros() < deadline_us_ && st_.acked < st_.published) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  stop_consumers_ = true;
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;
}

int Run::Execute() {
  Http control(o_.token);
  if (!Prepare(control)) {
    if (!st_.first_error.empty())
      std::fprintf(stderr, "redrive_loadgen: %s\n", st_.first_error.c_str());
    return 2;
  }
  double timeout = o_.timeout > 0 ? o_.timeout : (Timed() ? o_.seconds + 120 : 600);
  start_us_ = NowMicros();
  deadline_us_ = start_us_ + static_cast<int64_t>(timeout * 1e6);
  publish_end_us_ = Timed() ? start_us_ + static_cast<int64_t>(o_.seconds * 1e6) : deadline_us_;

  std::vector<std::thread> consumers;
  if (HasConsumers()) {
    for (int i = 0; i < o_.consumers; ++i) consumers.emplace_back([this] { Consumer(); });
  }
  std::vector<std::thread> producers;
  for (int i = 0; i < o_.producers; ++i) producers.emplace_back([this, i] { Producer(i); });
  for (auto& t : producers) t.join();
  if (HasConsumers()) {
    WaitForConsumers();
    for (auto& t : consumers) t.join();
  }

  // Accounting.
  bool accounted = false;
  std::string verdict;
  int64_t published = st_.published;
  double seconds = 0;
  if (o_.scenario == "publish") {
    seconds = (st_.last_publish_us - start_us_) / 1e6;
    auto q = GetQueue(control);
    int64_t ready = q ? (*q)["depth"].value("ready", int64_t{0}) - baseline_ready_ : -1;
    accounted = ready == published;
    verdict = "queue ready depth grew by " + std::to_string(ready) + ", published " +
              std::to_string(published);
  } else if (o_.scenario == "dead-letter") {
    seconds = (st_.last_settle_us - start_us_) / 1e6;
    int64_t expect_dead = st_.published_fails;
    accounted = st_.acked + final_dead_ == published && final_dead_ == expect_dead &&
                st_.nacked == expect_dead * max_deliveries_;
    verdict = "acked " + std::to_string(st_.acked) + " + dead-lettered " +
              std::to_string(final_dead_) + " = " + std::to_string(st_.acked + final_dead_) +
              ", published " + std::to_string(published) + " (expected " +
              std::to_string(expect_dead) + " dead letters after " +
              std::to_string(expect_dead * max_deliveries_) + " nacks, saw " +
              std::to_string(st_.nacked.load()) + " nacks)";
  } else {
    seconds = (st_.last_settle_us - start_us_) / 1e6;
    accounted = st_.acked == published;
    verdict = "acked " + std::to_string(st_.acked) + ", published " + std::to_string(published);
  }
  if (st_.errors > 0) accounted = false;
  Report(seconds, accounted, verdict);
  return accounted ? 0 : 1;
}

void Run::Report(double seconds, bool accounted, const std::string& verdict) {
  std::vector<uint32_t> lat;
  {
    std::lock_guard<std::mutex> l(st_.mu);
    lat = std::move(st_.latencies_us);
  }
  std::sort(lat.begin(), lat.end());
  int64_t published = st_.published;
  int64_t messages = o_.scenario == "end-to-end" || o_.scenario == "latency"
                         ? st_.acked.load()
                         : published;  // publish: stored; dead-letter: settled either way
  double rate = seconds > 0 ? static_cast<double>(messages) / seconds : 0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6;
  bool has_latency = !lat.empty();
  double achieved_publish_rate =
      seconds > 0 ? static_cast<double>(published) / ((st_.last_publish_us - start_us_) / 1e6) : 0;

  if (o_.json_output) {
    json j = {{"scenario", o_.scenario},
              {"messages", messages},
              {"seconds", std::round(seconds * 1000) / 1000},
              {"messagesPerSecond", std::round(rate)},
              {"published", published},
              {"acked", st_.acked.load()},
              {"nacked", st_.nacked.load()},
              {"deadLettered", final_dead_},
              {"received", st_.received.load()},
              {"redelivered", st_.redelivered.load()},
              {"ackLost", st_.ack_lost.load()},
              {"publishRequests", st_.publish_requests.load()},
              {"receiveRequests", st_.receive_requests.load()},
              {"emptyReceives", st_.empty_receives.load()},
              {"errors", st_.errors.load()},
              {"producers", o_.producers},
              {"consumers", HasConsumers() ? o_.consumers : 0},
              {"batch", o_.batch},
              {"receiveBatch", receive_batch_},
              {"bodySize", o_.body_size},
              {"maxBacklog", o_.max_backlog},
              {"loadgenCpuSeconds", std::round(cpu * 100) / 100},
              {"accounted", accounted},
              {"verdict", verdict}};
    if (o_.scenario == "dead-letter") j["failShare"] = o_.fail_share;
    if (o_.scenario == "latency") {
      j["targetRate"] = o_.rate;
      j["publishRate"] = std::round(achieved_publish_rate);
      j["maxBehindMs"] = st_.behind_us / 1000.0;
    }
    if (has_latency) {
      j["p50Ms"] = Percentile(lat, 0.50);
      j["p90Ms"] = Percentile(lat, 0.90);
      j["p99Ms"] = Percentile(lat, 0.99);
      j["p999Ms"] = Percentile(lat, 0.999);
      j["maxMs"] = lat.back() / 1000.0;
    }
    if (!st_.first_error.empty()) j["firstError"] = st_.first_error;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("scenario            %s\n", o_.scenario.c_str());
    std::printf("messages            %lld\n", static_cast<long long>(messages));
    std::printf("seconds             %.3f\n", seconds);
    std::printf("messages/second     %.0f\n", rate);
    if (has_latency) {
      std::printf("latency ms          p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
                  Percentile(lat, 0.50), Percentile(lat, 0.90), Percentile(lat, 0.99),
                  Percentile(lat, 0.999), lat.back() / 1000.0);
    }
    if (o_.scenario == "latency") {
      std::printf(
          "publish rate        %.0f msg/s (target %.0f), worst lag behind schedule %.1f ms\n",
          achieved_publish_rate, o_.rate, st_.behind_us / 1000.0);
    }
    std::printf(
        "parameters          producers %d, consumers %d, batch %d, receive batch %d, "
        "body %d bytes\n",
        o_.producers, HasConsumers() ? o_.consumers : 0, o_.batch, receive_batch_, o_.body_size);
    std::printf(
        "requests            publish %lld, receive %lld (empty %lld), redelivered %lld, "
        "errors %lld\n",
        static_cast<long long>(st_.publish_requests.load()),
        static_cast<long long>(st_.receive_requests.load()),
        static_cast<long long>(st_.empty_receives.load()),
        static_cast<long long>(st_.redelivered.load()), static_cast<long long>(st_.errors.load()));
    std::printf("loadgen cpu         %.2f s\n", cpu);
    std::printf("accounted           %s: %s\n", accounted ? "yes" : "NO", verdict.c_str());
    if (!st_.first_error.empty()) std::printf("first error         %s\n", st_.first_error.c_str());
  }
  std::fflush(stdout);
}

bool LocalUrl(const std::string& url) {
  for (const char* prefix : {"http://127.0.0.1", "http://localhost"}) {
    size_t n = std::strlen(prefix);
    if (url.compare(0, n, prefix) == 0 && (url.size() == n || url[n] == ':' || url[n] == '/')) {
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"redrive_loadgen: a load generator for redrive's REST API (127.0.0.1 only)"};
  app.add_option("--url", o.url, "Server base URL (127.0.0.1 or localhost only)")
      ->capture_default_str();
  auto* token = app.add_option("--token", o.token, "Bearer token");
  app.add_option("--token-file", o.token_file, "Read the bearer token from this file")
      ->excludes(token);
  app.add_option("--tenant", o.tenant, "Tenant")->capture_default_str();
  app.add_option("--queue", o.queue, "Queue")->capture_default_str();
  app.add_option("--producers", o.producers, "Producer threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--consumers", o.consumers, "Consumer threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "Messages per publish (and maxMessages per receive)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--receive-batch", o.receive_batch, "maxMessages per receive (default --batch)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--body-size", o.body_size, "Body bytes per message")
      ->check(CLI::Range(1, 256 * 1024))
      ->capture_default_str();
  auto* messages = app.add_option("--messages", o.messages, "Messages to publish in total")
                       ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  app.add_option("--seconds", o.seconds, "Publish for this long instead of --messages")
      ->check(CLI::Range(0.1, 3600.0))
      ->excludes(messages);
  app.add_option("--scenario", o.scenario, "publish | end-to-end | dead-letter | latency")
      ->check(CLI::IsMember({"publish", "end-to-end", "dead-letter", "latency"}))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "Latency scenario: messages/second to publish")
      ->check(CLI::Range(1.0, 10'000'000.0))
      ->capture_default_str();
  app.add_option("--fail-share", o.fail_share,
                 "Dead-letter scenario: share of messages nacked on every delivery")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--timeout", o.timeout,
                 "Give up after this many seconds (default: --seconds + 120, or 600)")
      ->check(CLI::Range(1.0, 7200.0));
  app.add_option("--max-backlog", o.max_backlog,
                 "Producers pause while this many published messages are unsettled (0: no limit)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}));
  app.add_flag("--create", o.create,
               "Create the tenant and queue when missing (needs an operator token)");
  app.add_flag("--json", o.json_output, "Print one JSON object instead of text");
  CLI11_PARSE(app, argc, argv);

  if (!LocalUrl(o.url)) {
    std::fprintf(stderr, "redrive_loadgen: --url must be http://127.0.0.1[:port] or localhost\n");
    return 2;
  }
  while (!o.url.empty() && o.url.back() == '/') o.url.pop_back();
  if (!o.token_file.empty()) {
    std::ifstream f(o.token_file);
    std::getline(f, o.token);
  }
  if (o.token.empty()) {
    std::fprintf(stderr, "redrive_loadgen: --token or --token-file is required\n");
    return 2;
  }
  if (o.messages == 0 && o.seconds == 0) o.messages = 100'000;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc;
  {
    Run run(o);
    rc = run.Execute();
  }
  curl_global_cleanup();
  return rc;
}
