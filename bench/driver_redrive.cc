// The redrive driver: redrive's REST API over HTTP/1.1 keep-alive, one libcurl easy handle per
// Session (so each keeps one connection alive). With several base URLs (nodes on one
// PostgreSQL store), Sessions take them round-robin in the order they are connected.
//
// Messages carry two attributes: "n" and "t" (Outgoing::n and ::sent_us). Receive responses are
// scanned for those fields, the delivery counts and the receipts without a full JSON parse: the
// load generator shares two cores with the server and must stay cheap. Only Prepare and
// GetDepth, which run once or a few times a second, parse JSON.
#include <curl/curl.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "driver.h"

namespace bench {
namespace {

using json = nlohmann::json;

size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// One keep-alive connection (a libcurl easy handle). Thread-compatible.
class Http {
 public:
  explicit Http(const std::string& token) {
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
  long Delete(const std::string& url) {
    curl_easy_setopt(h_, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h_, CURLOPT_CUSTOMREQUEST, "DELETE");
    return Perform(url);
  }
  const std::string& body() const { return body_; }

  // "what: HTTP 400 {...}" or "what: <transport error>", for Session::error().
  std::string Describe(const std::string& what, long status) const {
    return what + ": " +
           (status == 0 ? error_ : "HTTP " + std::to_string(status) + " " + body_.substr(0, 300));
  }

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

// Extracts the deliveries of a receive response. The server writes each message object with
// its keys in sorted order ("attributes" ... "deliveryCount" ... "receipt"), and the bodies this
// tool publishes hold only 'x', so plain substring search is exact.
void ScanDeliveries(std::string_view s, std::vector<Delivery>* out) {
  size_t pos = 0;
  for (;;) {
    size_t a = s.find("\"attributes\":{", pos);
    if (a == std::string_view::npos) return;
    size_t close = s.find('}', a);
    size_t r = s.find("\"receipt\":\"", close);
    if (close == std::string_view::npos || r == std::string_view::npos) return;
    Delivery m;
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

// ------------------------------------------------------------------ driver

class RedriveSession : public Session {
 public:
  RedriveSession(const DriverOptions& o, const std::string& queue_url)
      : http_(o.token),
        publish_url_(queue_url + "/messages"),
        receive_url_(queue_url + "/receive"),
        ack_url_(queue_url + "/ack"),
        nack_url_(queue_url + "/nack"),
        filler_(static_cast<size_t>(o.body_size), 'x') {}

  bool Publish(const std::vector<Outgoing>& batch) override {
    payload_.clear();
    payload_ += "{\"messages\":[";
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i) payload_ += ',';
      payload_ += "{\"body\":\"";
      payload_ += filler_;
      payload_ += "\",\"attributes\":{\"n\":\"";
      payload_ += std::to_string(batch[i].n);
      payload_ += "\",\"t\":\"";
      payload_ += std::to_string(batch[i].sent_us);
      payload_ += "\"}}";
    }
    payload_ += "]}";
    long status = http_.Post(publish_url_, payload_);
    if (status != 201) return Fail("publish", status);
    int64_t ids = CountOccurrences(http_.body(), "\"id\":");
    if (ids != static_cast<int64_t>(batch.size())) {
      error_ = "publish: " + std::to_string(batch.size()) + " messages sent, " +
               std::to_string(ids) + " ids in the answer";
      return false;
    }
    return true;
  }

  bool Receive(int max, int wait_ms, std::vector<Delivery>* out) override {
    out->clear();
    payload_ = "{\"maxMessages\":" + std::to_string(max) + ",\"wait\":\"" +
               std::to_string(wait_ms) + "ms\"}";
    long status = http_.Post(receive_url_, payload_);
    if (status != 200) return Fail("receive", status);
    ScanDeliveries(http_.body(), out);
    return true;
  }

  bool Ack(const std::vector<Delivery>& deliveries, int64_t* settled) override {
    payload_ = "{\"receipts\":[";
    for (size_t i = 0; i < deliveries.size(); ++i) {
      if (i) payload_ += ',';
      payload_ += '"';
      payload_ += deliveries[i].receipt;
      payload_ += '"';
    }
    payload_ += "]}";
    return Settle("ack", ack_url_, settled);
  }

  bool Nack(const std::vector<Delivery>& deliveries, int64_t* settled) override {
    // delay 0s: redelivered at once, like the peers (the queue's backoff is not measured).
    payload_ = "{\"nacks\":[";
    for (size_t i = 0; i < deliveries.size(); ++i) {
      if (i) payload_ += ',';
      payload_ += "{\"receipt\":\"";
      payload_ += deliveries[i].receipt;
      payload_ +=
          "\",\"reason\":\"bench-failure\",\"error\":\"simulated failure (loadgen)\","
          "\"delay\":\"0s\"}";
    }
    payload_ += "]}";
    return Settle("nack", nack_url_, settled);
  }

 private:
  bool Fail(const std::string& what, long status) {
    error_ = http_.Describe(what, status);
    return false;
  }

  bool Settle(const char* what, const std::string& url, int64_t* settled) {
    long status = http_.Post(url, payload_);
    if (status != 200) return Fail(what, status);
    *settled = FieldInt(http_.body(), "\"succeeded\":", 0, http_.body().size());
    if (*settled < 0) {
      error_ =
          std::string(what) + ": no \"succeeded\" in the answer: " + http_.body().substr(0, 300);
      return false;
    }
    return true;
  }

  Http http_;
  const std::string publish_url_, receive_url_, ack_url_, nack_url_;
  const std::string filler_;
  std::string payload_;
};

class RedriveDriver : public Driver {
 public:
  explicit RedriveDriver(const DriverOptions& o) : o_(o), control_(o.token) {
    for (std::string url : SplitUrls(o_.url)) {
      while (!url.empty() && url.back() == '/') url.pop_back();
      bases_.push_back(url);
    }
    // MakeDriver refuses an empty list; the control connection uses the first node.
    tenants_url_ = bases_.front() + "/v1/tenants";
  }

  bool Prepare(const QueueSpec& spec) override {
    spec_ = spec;
    queues_url_ = tenants_url_ + "/" + o_.tenant + "/queues";
    queue_url_ = queues_url_ + "/" + spec.name;
    if (spec.fresh) {
      long s = control_.Delete(queue_url_);
      if (s != 204 && s != 200 && s != 404) return Fail("delete queue", s);
    }
    if (spec.fresh || o_.create) {
      long s = control_.Post(tenants_url_, json{{"name", o_.tenant}}.dump());
      if (s != 201 && s != 409) return Fail("create tenant", s);
      json attrs = json::object();
      if (spec.max_deliveries > 0) {
        attrs["retryPolicy"] = {{"maxDeliveries", spec.max_deliveries},
                                {"backoff", {{"initial", "0s"}, {"jitter", 0}}}};
      }
      s = control_.Post(queues_url_, json{{"name", spec.name}, {"attributes", attrs}}.dump());
      if (s != 201 && s != 409) return Fail("create queue", s);
    }
    json q;
    if (!GetQueue(&q)) return false;
    max_deliveries_ = q["attributes"]["retryPolicy"].value("maxDeliveries", 0);
    if (spec.max_deliveries > 0 && max_deliveries_ != spec.max_deliveries) {
      error_ = "queue " + o_.tenant + "/" + spec.name +
               " has retryPolicy.maxDeliveries=" + std::to_string(max_deliveries_) +
               "; this run needs " + std::to_string(spec.max_deliveries);
      return false;
    }
    return true;
  }

  std::unique_ptr<Session> Connect() override {
    // The queue's path is the same on every node; only the base differs.
    const std::string& base = bases_[sessions_++ % bases_.size()];
    return std::make_unique<RedriveSession>(o_, base + queue_url_.substr(bases_.front().size()));
  }

  bool GetDepth(Depth* depth) override {
    json q;
    if (!GetQueue(&q)) return false;
    const json& d = q["depth"];
    depth->ready = d.value("ready", int64_t{0});
    depth->in_flight = d.value("leased", int64_t{0}) + d.value("delayed", int64_t{0});
    depth->dead_lettered = d.value("deadLettered", int64_t{0});
    return true;
  }

  std::string Describe() const override {
    std::string s =
        "REST API over HTTP/1.1 keep-alive (libcurl); 201 after the SQLite WAL commit with "
        "synchronous=FULL (fsync); lease + ack/nack receipts";
    if (bases_.size() > 1) {
      s += "; " + std::to_string(bases_.size()) + " nodes, connections spread round-robin";
    }
    if (spec_.max_deliveries > 0) {
      s += "; retryPolicy.maxDeliveries " + std::to_string(max_deliveries_) + ", nack delay 0s";
    }
    return s;
  }

 private:
  bool Fail(const std::string& what, long status) {
    error_ = control_.Describe(what, status);
    return false;
  }

  bool GetQueue(json* q) {
    long s = control_.Get(queue_url_);
    if (s != 200) return Fail("GET queue " + o_.tenant + "/" + spec_.name, s);
    *q = json::parse(control_.body(), nullptr, false);
    if (q->is_discarded()) {
      error_ = "GET queue: the answer is not JSON: " + control_.body().substr(0, 300);
      return false;
    }
    return true;
  }

  const DriverOptions o_;
  Http control_;                    // Prepare and GetDepth only (the loadgen's main thread)
  std::vector<std::string> bases_;  // the base URLs, without a trailing '/'
  size_t sessions_ = 0;             // Sessions connected so far
  std::string tenants_url_, queues_url_, queue_url_;
  QueueSpec spec_;
  int max_deliveries_ = 0;
};

}  // namespace

std::unique_ptr<Driver> MakeRedriveDriver(const DriverOptions& options) {
  // Once, before any Session's thread starts (libcurl's global state is not thread-safe).
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)curl_ready;
  return std::make_unique<RedriveDriver>(options);
}

}  // namespace bench
