// The RabbitMQ peer of the side-by-side benchmark: AMQP 0-9-1 through librabbitmq (rabbitmq-c),
// durable in the same sense as redrive (see driver.h):
//
//   - durable queues, persistent messages (delivery_mode 2);
//   - publisher confirms: Publish sends the whole batch, then waits until the broker confirmed
//     every message (a basic.nack or a basic.return fails the batch);
//   - manual acks, with basic.qos prefetch = the receive batch;
//   - a fanout dead-letter exchange "<queue>.dlx" bound to the dead-letter queue "<queue>.dlq".
//
// Two queue types, two ways to give up after max_deliveries:
//
//   classic  Classic queues count no deliveries, so the consumer does what teams do in
//            production: a failed delivery below the limit is republished with an "attempt"
//            header one higher (confirmed), then the original is acked; at the limit it is
//            rejected with requeue=false and the queue dead-letters it through the DLX
//            (classic dead-lettering is at-most-once).
//   quorum   The broker counts: x-delivery-limit, and a failed delivery is simply requeued
//            (basic.nack requeue=true). RabbitMQ 3.10 counts *returns* in x-delivery-count and
//            dead-letters a message once that count exceeds the limit, so a message nacked on
//            its max_deliveries-th delivery needs x-delivery-limit = max_deliveries - 1.
//            Dead-lettering is at-least-once (x-dead-letter-strategy at-least-once, which
//            requires x-overflow reject-publish): the quorum queue keeps a dead letter until the
//            dead-letter queue confirmed it, as redrive moves a message to its dead-letter queue
//            in one transaction.
//
// Messages carry "n" and "t" (sent_us) as int64 headers, and "attempt" (classic only) as an
// int32 header; the body is body_size bytes of 'x'.
//
// Each Session is its own TCP connection with one channel in confirm mode. All frames of a
// session are read by one loop (Session::Pump), so confirms and deliveries may interleave: a
// consumer that republishes while messages are being pushed to it buffers those deliveries for
// its next Receive.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "driver.h"

namespace bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr amqp_channel_t kChannel = 1;
constexpr int kFrameMax = 131072;
constexpr int kRpcTimeoutMs = 30'000;      // any synchronous AMQP method
constexpr int kConfirmTimeoutMs = 60'000;  // a whole batch's confirms
constexpr int kContentTimeoutMs = 10'000;  // header/body frames after a basic.deliver

amqp_bytes_t Bytes(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

std::string ToString(amqp_bytes_t b) {
  return std::string(static_cast<const char*>(b.bytes), b.len);
}

timeval Timeval(int64_t ms) {
  if (ms < 0) ms = 0;
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

int64_t MillisUntil(SteadyClock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now())
      .count();
}

// The integer value of a header, whatever width the sender chose; -1 when absent or not an
// integer.
int64_t HeaderInt(const amqp_table_t& headers, const char* key) {
  size_t key_len = std::strlen(key);
  for (int i = 0; i < headers.num_entries; ++i) {
    const amqp_table_entry_t& e = headers.entries[i];
    if (e.key.len != key_len || std::memcmp(e.key.bytes, key, key_len) != 0) continue;
    const amqp_field_value_t& v = e.value;
    switch (v.kind) {
      case AMQP_FIELD_KIND_I8:
        return v.value.i8;
      case AMQP_FIELD_KIND_U8:
        return v.value.u8;
      case AMQP_FIELD_KIND_I16:
        return v.value.i16;
      case AMQP_FIELD_KIND_U16:
        return v.value.u16;
      case AMQP_FIELD_KIND_I32:
        return v.value.i32;
      case AMQP_FIELD_KIND_U32:
        return v.value.u32;
      case AMQP_FIELD_KIND_I64:
        return v.value.i64;
      case AMQP_FIELD_KIND_U64:
        return static_cast<int64_t>(v.value.u64);
      default:
        return -1;
    }
  }
  return -1;
}

// Describes a failed synchronous method.
std::string ReplyError(const amqp_rpc_reply_t& r, const std::string& what) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return what + ": ok";
    case AMQP_RESPONSE_NONE:
      return what + ": missing RPC reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return what + ": " + amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return what + ": channel closed by broker: " + std::to_string(m->reply_code) + " " +
               ToString(m->reply_text);
      }
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return what + ": connection closed by broker: " + std::to_string(m->reply_code) + " " +
               ToString(m->reply_text);
      }
      return what + ": broker error";
  }
  return what + ": unknown reply";
}

// Queue and exchange names and policy, fixed by Driver::Prepare and shared (by value) with
// every Session.
struct Topology {
  bool quorum = false;
  std::string queue;
  std::string dlq;  // "<queue>.dlq"
  std::string dlx;  // "<queue>.dlx", fanout, bound to dlq
  int max_deliveries = 0;
  int body_size = 1024;
};

// One AMQP connection with channel 1 open. Not thread-safe.
class Connection {
 public:
  Connection() = default;
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool Open(const DriverOptions& o, bool confirm, std::string* error) {
    conn_ = amqp_new_connection();
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    if (socket == nullptr) {
      *error = "amqp: cannot create a TCP socket";
      return false;
    }
    timeval connect_timeout = Timeval(5'000);
    int rc = amqp_socket_open_noblock(socket, o.amqp_host.c_str(), o.amqp_port, &connect_timeout);
    if (rc != AMQP_STATUS_OK) {
      *error = "amqp: connect to " + o.amqp_host + ":" + std::to_string(o.amqp_port) + ": " +
               amqp_error_string2(rc) +
               " (is a RabbitMQ node listening there? bench/peers/rabbitmq.sh start DIR prints "
               "its port)";
      return false;
    }
    // Acks and small batches must not wait for Nagle's algorithm.
    int one = 1;
    setsockopt(amqp_socket_get_sockfd(socket), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval rpc_timeout = Timeval(kRpcTimeoutMs);
    amqp_set_rpc_timeout(conn_, &rpc_timeout);
    // No heartbeats: every wait below is bounded, and an idle benchmark connection is fine.
    amqp_rpc_reply_t r =
        amqp_login(conn_, "/", 0, kFrameMax, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      *error = ReplyError(r, "amqp: login as guest");
      return false;
    }
    logged_in_ = true;
    amqp_channel_open(conn_, kChannel);
    r = amqp_get_rpc_reply(conn_);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      *error = ReplyError(r, "amqp: channel.open");
      return false;
    }
    if (confirm) {
      amqp_confirm_select(conn_, kChannel);
      r = amqp_get_rpc_reply(conn_);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *error = ReplyError(r, "amqp: confirm.select");
        return false;
      }
    }
    return true;
  }

  void Close() {
    if (conn_ == nullptr) return;
    if (logged_in_ && !broken_) {
      amqp_channel_close(conn_, kChannel, AMQP_REPLY_SUCCESS);
      amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn_);
    conn_ = nullptr;
  }

  // After a broker-side channel or connection close the connection is unusable: the next use
  // reconnects (Driver) or fails (Session).
  void MarkBroken() { broken_ = true; }
  bool broken() const { return broken_; }
  amqp_connection_state_t get() const { return conn_; }

  // The broker's product and version from connection.start, e.g. "RabbitMQ 3.10.8".
  std::string ServerVersion() const {
    const amqp_table_t* p = amqp_get_server_properties(conn_);
    std::string product, version;
    for (int i = 0; p != nullptr && i < p->num_entries; ++i) {
      const amqp_table_entry_t& e = p->entries[i];
      if (e.value.kind != AMQP_FIELD_KIND_UTF8) continue;
      std::string key = ToString(e.key);
      if (key == "product") product = ToString(e.value.value.bytes);
      if (key == "version") version = ToString(e.value.value.bytes);
    }
    return product.empty() ? "RabbitMQ" : product + " " + version;
  }

 private:
  amqp_connection_state_t conn_ = nullptr;
  bool logged_in_ = false;
  bool broken_ = false;
};

class RabbitSession final : public Session {
 public:
  explicit RabbitSession(Topology topology) : t_(std::move(topology)) {
    filler_.assign(static_cast<size_t>(t_.body_size), 'x');
  }

  bool Open(const DriverOptions& o) { return c_.Open(o, /*confirm=*/true, &error_); }

  bool Publish(const std::vector<Outgoing>& batch) override {
    if (!Usable()) return false;
    for (const Outgoing& m : batch) {
      if (!SendOne(m.n, m.sent_us, /*attempt=*/0, filler_)) return false;
    }
    return AwaitConfirms();
  }

  bool Receive(int max, int wait_ms, std::vector<Delivery>* out) override {
    out->clear();
    if (!Usable()) return false;
    if (max <= 0) {
      error_ = "receive: max must be positive";
      return false;
    }
    if (!StartConsuming(max)) return false;
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(wait_ms);
    for (;;) {
      while (!pending_.empty() && static_cast<int>(out->size()) < max) {
        out->push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      if (static_cast<int>(out->size()) >= max) break;
      // Wait for the first delivery; after it, take only what has already arrived.
      int64_t wait = out->empty() ? MillisUntil(deadline) : 0;
      if (out->empty() && wait <= 0) break;
      int rc = Pump(wait);
      if (rc == AMQP_STATUS_TIMEOUT) break;
      if (rc != AMQP_STATUS_OK) return false;
    }
    amqp_maybe_release_buffers(c_.get());
    return true;
  }

  bool Ack(const std::vector<Delivery>& deliveries, int64_t* settled) override {
    *settled = 0;
    if (!Usable()) return false;
    std::vector<uint64_t> tags;
    tags.reserve(deliveries.size());
    for (const Delivery& d : deliveries) tags.push_back(d.tag);
    return Settle(std::move(tags), Settlement::kAck, settled);
  }

  bool Nack(const std::vector<Delivery>& deliveries, int64_t* settled) override {
    *settled = 0;
    if (!Usable()) return false;
    std::vector<uint64_t> tags;
    tags.reserve(deliveries.size());
    for (const Delivery& d : deliveries) tags.push_back(d.tag);
    if (t_.quorum) return Settle(std::move(tags), Settlement::kRequeue, settled);

    // Classic: republish what may be retried (confirmed), then ack those originals and reject
    // the last deliveries so the queue dead-letters them.
    std::vector<uint64_t> retried, final_tags;
    for (const Delivery& d : deliveries) {
      bool last = t_.max_deliveries > 0 && d.delivery_count >= t_.max_deliveries;
      if (last) {
        final_tags.push_back(d.tag);
        continue;
      }
      auto body = bodies_.find(d.tag);
      if (body == bodies_.end()) {
        error_ = "nack: unknown delivery tag " + std::to_string(d.tag);
        return false;
      }
      if (!SendOne(d.n, d.sent_us, static_cast<int>(d.delivery_count) + 1, body->second)) {
        return false;
      }
      retried.push_back(d.tag);
    }
    if (!retried.empty() && !AwaitConfirms()) {
      // The copies may or may not exist; put the originals back so nothing is lost (a message
      // may then be delivered twice, as with any at-least-once consumer).
      std::string why = error_;
      int64_t ignored = 0;
      Settle(retried, Settlement::kRequeue, &ignored);
      error_ = why;
      return false;
    }
    int64_t a = 0, r = 0;
    bool ok = Settle(std::move(retried), Settlement::kAck, &a) &&
              Settle(std::move(final_tags), Settlement::kDrop, &r);
    *settled = a + r;
    return ok;
  }

 private:
  enum class Settlement { kAck, kRequeue, kDrop };

  bool Usable() {
    if (!c_.broken()) return true;
    if (error_.empty()) error_ = "amqp: connection unusable after an earlier error";
    return false;
  }

  bool Fail(const std::string& why) {
    error_ = why;
    c_.MarkBroken();
    return false;
  }

  bool SendOne(int64_t n, int64_t sent_us, int attempt, const std::string& body) {
    amqp_table_entry_t entries[3];
    entries[0].key = amqp_cstring_bytes("n");
    entries[0].value.kind = AMQP_FIELD_KIND_I64;
    entries[0].value.value.i64 = n;
    entries[1].key = amqp_cstring_bytes("t");
    entries[1].value.kind = AMQP_FIELD_KIND_I64;
    entries[1].value.value.i64 = sent_us;
    entries[2].key = amqp_cstring_bytes("attempt");
    entries[2].value.kind = AMQP_FIELD_KIND_I32;
    entries[2].value.value.i32 = attempt;
    amqp_basic_properties_t props;
    std::memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.headers.num_entries = attempt > 0 ? 3 : 2;
    props.headers.entries = entries;
    // mandatory: a message no queue takes comes back as basic.return instead of vanishing.
    int rc = amqp_basic_publish(c_.get(), kChannel, amqp_empty_bytes, Bytes(t_.queue),
                                /*mandatory=*/1, /*immediate=*/0, &props, Bytes(body));
    if (rc != AMQP_STATUS_OK) return Fail(std::string("publish: ") + amqp_error_string2(rc));
    unconfirmed_.insert(++publish_seq_);
    return true;
  }

  // Waits until every message published so far is confirmed. False when any of them was
  // nacked or returned since the last call.
  bool AwaitConfirms() {
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(kConfirmTimeoutMs);
    while (!unconfirmed_.empty()) {
      int64_t wait = MillisUntil(deadline);
      if (wait <= 0) {
        return Fail("publish: " + std::to_string(unconfirmed_.size()) +
                    " messages not confirmed within " + std::to_string(kConfirmTimeoutMs) + " ms");
      }
      int rc = Pump(wait);
      if (rc == AMQP_STATUS_TIMEOUT) continue;
      if (rc != AMQP_STATUS_OK) return false;
    }
    amqp_maybe_release_buffers(c_.get());
    bool ok = confirm_failures_.empty();
    if (!ok) error_ = "publish: " + confirm_failures_;
    confirm_failures_.clear();
    return ok;
  }

  bool StartConsuming(int max) {
    if (consuming_ && max == prefetch_) return true;
    amqp_basic_qos(c_.get(), kChannel, 0, static_cast<uint16_t>(std::min(max, 65535)), 0);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c_.get());
    if (r.reply_type != AMQP_RESPONSE_NORMAL) return Fail(ReplyError(r, "basic.qos"));
    prefetch_ = max;
    if (consuming_) return true;
    amqp_basic_consume(c_.get(), kChannel, Bytes(t_.queue), amqp_empty_bytes, 0, /*no_ack=*/0, 0,
                       amqp_empty_table);
    r = amqp_get_rpc_reply(c_.get());
    if (r.reply_type != AMQP_RESPONSE_NORMAL) return Fail(ReplyError(r, "basic.consume"));
    consuming_ = true;
    return true;
  }

  // Sends acks / nacks for `tags`. AMQP's `multiple` flag settles every unsettled tag up to the
  // one given, so it is used only for a run of tags that starts at the oldest unsettled one.
  bool Settle(std::vector<uint64_t> tags, Settlement how, int64_t* settled) {
    *settled = 0;
    if (tags.empty()) return true;
    std::sort(tags.begin(), tags.end());
    tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
    size_t prefix = 0;
    for (auto it = unsettled_.begin();
         prefix < tags.size() && it != unsettled_.end() && *it == tags[prefix]; ++it) {
      ++prefix;
    }
    auto send = [&](uint64_t tag, bool multiple) {
      int rc = AMQP_STATUS_OK;
      switch (how) {
        case Settlement::kAck:
          rc = amqp_basic_ack(c_.get(), kChannel, tag, multiple);
          break;
        case Settlement::kRequeue:
          rc = amqp_basic_nack(c_.get(), kChannel, tag, multiple, /*requeue=*/1);
          break;
        case Settlement::kDrop:
          rc = amqp_basic_nack(c_.get(), kChannel, tag, multiple, /*requeue=*/0);
          break;
      }
      if (rc != AMQP_STATUS_OK) return Fail(std::string("settle: ") + amqp_error_string2(rc));
      return true;
    };
    if (prefix >= 2) {
      if (!send(tags[prefix - 1], true)) return false;
    } else {
      prefix = 0;
    }
    for (size_t i = 0; i < tags.size(); ++i) {
      if (i >= prefix) {
        // A tag this session never handed out (or settled already) would close the channel.
        if (unsettled_.count(tags[i]) == 0) continue;
        if (!send(tags[i], false)) return false;
      }
      unsettled_.erase(tags[i]);
      bodies_.erase(tags[i]);
      ++*settled;
    }
    return true;
  }

  // Reads and handles one frame (with its content frames, for a delivery or a return), waiting
  // up to `wait_ms`. Returns AMQP_STATUS_OK, AMQP_STATUS_TIMEOUT, or another status with error()
  // set and the connection marked broken.
  int Pump(int64_t wait_ms) {
    amqp_frame_t frame;
    timeval tv = Timeval(wait_ms);
    int rc = amqp_simple_wait_frame_noblock(c_.get(), &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) return rc;
    if (rc != AMQP_STATUS_OK) {
      Fail(std::string("amqp: ") + amqp_error_string2(rc));
      return rc;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) return AMQP_STATUS_OK;  // stray content
    const amqp_method_t& m = frame.payload.method;
    switch (m.id) {
      case AMQP_BASIC_DELIVER_METHOD: {
        auto* d = static_cast<amqp_basic_deliver_t*>(m.decoded);
        Delivery delivery;
        delivery.tag = d->delivery_tag;
        std::string body;
        if (!ReadContent(frame.channel, &delivery, t_.quorum ? nullptr : &body)) {
          return AMQP_STATUS_UNEXPECTED_STATE;
        }
        unsettled_.insert(delivery.tag);
        if (!t_.quorum) bodies_.emplace(delivery.tag, std::move(body));
        pending_.push_back(std::move(delivery));
        return AMQP_STATUS_OK;
      }
      case AMQP_BASIC_ACK_METHOD: {
        auto* a = static_cast<amqp_basic_ack_t*>(m.decoded);
        Confirmed(a->delivery_tag, a->multiple);
        return AMQP_STATUS_OK;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* n = static_cast<amqp_basic_nack_t*>(m.decoded);
        Confirmed(n->delivery_tag, n->multiple);
        if (confirm_failures_.empty()) confirm_failures_ = "broker nacked a message (basic.nack)";
        return AMQP_STATUS_OK;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        auto* r = static_cast<amqp_basic_return_t*>(m.decoded);
        if (confirm_failures_.empty()) {
          confirm_failures_ = "broker returned a message: " + std::to_string(r->reply_code) + " " +
                              ToString(r->reply_text) + " (does queue '" + t_.queue + "' exist?)";
        }
        Delivery ignored;
        if (!ReadContent(frame.channel, &ignored, nullptr)) return AMQP_STATUS_UNEXPECTED_STATE;
        return AMQP_STATUS_OK;
      }
      case AMQP_BASIC_CANCEL_METHOD:
        Fail("amqp: the broker cancelled the consumer (queue '" + t_.queue + "' deleted?)");
        return AMQP_STATUS_UNEXPECTED_STATE;
      case AMQP_CHANNEL_CLOSE_METHOD: {
        auto* c = static_cast<amqp_channel_close_t*>(m.decoded);
        Fail("amqp: channel closed by broker: " + std::to_string(c->reply_code) + " " +
             ToString(c->reply_text));
        return AMQP_STATUS_UNEXPECTED_STATE;
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        auto* c = static_cast<amqp_connection_close_t*>(m.decoded);
        Fail("amqp: connection closed by broker: " + std::to_string(c->reply_code) + " " +
             ToString(c->reply_text));
        return AMQP_STATUS_UNEXPECTED_STATE;
      }
      default:
        return AMQP_STATUS_OK;
    }
  }

  // Reads the header and body frames that follow a basic.deliver / basic.return.
  bool ReadContent(amqp_channel_t channel, Delivery* d, std::string* body) {
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(kContentTimeoutMs);
    amqp_frame_t frame;
    auto next = [&]() {
      timeval tv = Timeval(MillisUntil(deadline));
      int rc = amqp_simple_wait_frame_noblock(c_.get(), &frame, &tv);
      if (rc != AMQP_STATUS_OK)
        return Fail(std::string("amqp: reading a message: ") + amqp_error_string2(rc));
      if (frame.channel != channel) return Fail("amqp: unexpected frame inside a message");
      return true;
    };
    if (!next()) return false;
    if (frame.frame_type != AMQP_FRAME_HEADER) return Fail("amqp: expected a content header");
    uint64_t size = frame.payload.properties.body_size;
    auto* props = static_cast<amqp_basic_properties_t*>(frame.payload.properties.decoded);
    if (props->_flags & AMQP_BASIC_HEADERS_FLAG) {
      d->n = HeaderInt(props->headers, "n");
      d->sent_us = HeaderInt(props->headers, "t");
      if (t_.quorum) {
        // x-delivery-count counts returns (absent before the first).
        int64_t returns = HeaderInt(props->headers, "x-delivery-count");
        d->delivery_count = (returns < 0 ? 0 : returns) + 1;
      } else {
        int64_t attempt = HeaderInt(props->headers, "attempt");
        d->delivery_count = attempt < 1 ? 1 : attempt;
      }
    }
    if (body != nullptr) body->reserve(size);
    uint64_t got = 0;
    while (got < size) {
      if (!next()) return false;
      if (frame.frame_type != AMQP_FRAME_BODY) return Fail("amqp: expected a body frame");
      got += frame.payload.body_fragment.len;
      if (body != nullptr) {
        body->append(static_cast<const char*>(frame.payload.body_fragment.bytes),
                     frame.payload.body_fragment.len);
      }
    }
    return true;
  }

  void Confirmed(uint64_t tag, bool multiple) {
    if (multiple) {
      unconfirmed_.erase(unconfirmed_.begin(), unconfirmed_.upper_bound(tag));
    } else {
      unconfirmed_.erase(tag);
    }
  }

  const Topology t_;
  Connection c_;
  std::string filler_;
  // Publisher confirms: the channel numbers published messages 1, 2, ...
  uint64_t publish_seq_ = 0;
  std::set<uint64_t> unconfirmed_;
  std::string confirm_failures_;
  // Consuming.
  bool consuming_ = false;
  int prefetch_ = 0;
  std::deque<Delivery> pending_;  // received from the broker, not yet handed out
  std::set<uint64_t> unsettled_;  // delivery tags handed out or pending, not yet settled
  std::unordered_map<uint64_t, std::string> bodies_;  // classic: kept for a republish
};

class RabbitDriver final : public Driver {
 public:
  RabbitDriver(const DriverOptions& options, bool quorum) : o_(options) {
    t_.quorum = quorum;
    t_.body_size = options.body_size;
  }

  bool Prepare(const QueueSpec& spec) override {
    std::lock_guard<std::mutex> l(mu_);
    if (spec.name.empty()) {
      error_ = "prepare: empty queue name";
      return false;
    }
    t_.queue = spec.name;
    t_.dlq = spec.name + ".dlq";
    t_.dlx = spec.name + ".dlx";
    t_.max_deliveries = spec.max_deliveries;
    if (!EnsureAdmin()) return false;
    amqp_connection_state_t c = admin_->get();
    if (spec.fresh) {
      amqp_queue_delete(c, kChannel, Bytes(t_.queue), 0, 0);
      if (!Check("queue.delete " + t_.queue)) return false;
      amqp_queue_delete(c, kChannel, Bytes(t_.dlq), 0, 0);
      if (!Check("queue.delete " + t_.dlq)) return false;
      amqp_exchange_delete(c, kChannel, Bytes(t_.dlx), 0);
      if (!Check("exchange.delete " + t_.dlx)) return false;
    }
    amqp_exchange_declare(c, kChannel, Bytes(t_.dlx), amqp_cstring_bytes("fanout"), 0,
                          /*durable=*/1, 0, 0, amqp_empty_table);
    if (!Check("exchange.declare " + t_.dlx)) return false;

    const char* type = t_.quorum ? "quorum" : "classic";
    amqp_table_entry_t dlq_args[1];
    dlq_args[0] = StringEntry("x-queue-type", type);
    amqp_queue_declare(c, kChannel, Bytes(t_.dlq), 0, /*durable=*/1, 0, 0,
                       amqp_table_t{1, dlq_args});
    if (!Check("queue.declare " + t_.dlq)) return false;
    amqp_queue_bind(c, kChannel, Bytes(t_.dlq), Bytes(t_.dlx), amqp_empty_bytes, amqp_empty_table);
    if (!Check("queue.bind " + t_.dlq)) return false;

    std::vector<amqp_table_entry_t> args;
    args.push_back(StringEntry("x-queue-type", type));
    args.push_back(StringEntry("x-dead-letter-exchange", t_.dlx.c_str()));
    if (t_.quorum) {
      args.push_back(StringEntry("x-dead-letter-strategy", "at-least-once"));
      args.push_back(StringEntry("x-overflow", "reject-publish"));
      if (t_.max_deliveries > 0) {
        amqp_table_entry_t limit;
        limit.key = amqp_cstring_bytes("x-delivery-limit");
        limit.value.kind = AMQP_FIELD_KIND_I64;
        limit.value.value.i64 = t_.max_deliveries - 1;
        args.push_back(limit);
      }
    }
    amqp_queue_declare(c, kChannel, Bytes(t_.queue), 0, /*durable=*/1, 0, 0,
                       amqp_table_t{static_cast<int>(args.size()), args.data()});
    if (!Check("queue.declare " + t_.queue)) {
      if (!spec.fresh) error_ += " (an existing queue with other arguments? run with fresh)";
      return false;
    }
    amqp_maybe_release_buffers(c);
    prepared_ = true;
    return true;
  }

  std::unique_ptr<Session> Connect() override {
    std::lock_guard<std::mutex> l(mu_);
    if (!prepared_) {
      error_ = "connect: Prepare first";
      return nullptr;
    }
    auto s = std::make_unique<RabbitSession>(t_);
    if (!s->Open(o_)) {
      error_ = s->error();
      return nullptr;
    }
    return s;
  }

  bool GetDepth(Depth* depth) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!prepared_) {
      error_ = "depth: Prepare first";
      return false;
    }
    int64_t ready = 0, dead = 0;
    if (!MessageCount(t_.queue, &ready) || !MessageCount(t_.dlq, &dead)) return false;
    depth->ready = ready;
    // AMQP reports only ready messages; unacked ones are visible only through the management
    // plugin, which the benchmark does not load.
    depth->in_flight = 0;
    depth->dead_lettered = dead;
    return true;
  }

  std::string Describe() const override {
    std::lock_guard<std::mutex> l(mu_);
    std::string s = version_.empty() ? "RabbitMQ" : version_;
    s += ", single node; ";
    if (t_.quorum) {
      s += "quorum queue (x-queue-type quorum)";
    } else {
      s += "durable classic queue (x-queue-type classic, queue version 1: the 3.10 default)";
    }
    s += ", persistent messages (delivery_mode 2), publisher confirms (each batch waits for all "
         "its confirms), manual acks with basic.qos prefetch = receive batch; failures: ";
    if (t_.quorum) {
      s += "basic.nack requeue=true, ";
      if (t_.max_deliveries > 0) {
        s += "x-delivery-limit " + std::to_string(t_.max_deliveries - 1) +
             " (3.10 counts returns, so a message is dead-lettered when delivery " +
             std::to_string(t_.max_deliveries) + " fails)";
      } else {
        s += "no delivery limit";
      }
      s += ", x-dead-letter-strategy at-least-once with x-overflow reject-publish";
    } else if (t_.max_deliveries > 0) {
      s += "consumer republishes with header attempt+1 (confirmed) then acks; on delivery " +
           std::to_string(t_.max_deliveries) +
           " basic.nack requeue=false (at-most-once dead-lettering)";
    } else {
      s += "consumer republishes with header attempt+1 (confirmed) then acks, forever";
    }
    s += "; dead letters via fanout exchange " + t_.dlx + " to durable " +
         (t_.quorum ? "quorum" : "classic") + " queue " + t_.dlq;
    return s;
  }

 private:
  static amqp_table_entry_t StringEntry(const char* key, const char* value) {
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
  }

  // Opens the admin connection (no confirms, no consumer) if there is none usable.
  bool EnsureAdmin() {
    if (admin_ != nullptr && !admin_->broken()) return true;
    admin_ = std::make_unique<Connection>();
    if (!admin_->Open(o_, /*confirm=*/false, &error_)) {
      admin_.reset();
      return false;
    }
    version_ = admin_->ServerVersion();
    return true;
  }

  // Checks the reply of the synchronous method just called on the admin connection. A broker
  // error closes the channel, so the connection is then dropped and reopened on next use.
  bool Check(const std::string& what) {
    amqp_rpc_reply_t r = amqp_get_rpc_reply(admin_->get());
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    error_ = ReplyError(r, what);
    admin_->MarkBroken();
    admin_.reset();
    return false;
  }

  bool MessageCount(const std::string& queue, int64_t* count) {
    if (!EnsureAdmin()) return false;
    amqp_queue_declare_ok_t* ok = amqp_queue_declare(admin_->get(), kChannel, Bytes(queue),
                                                     /*passive=*/1, 0, 0, 0, amqp_empty_table);
    if (!Check("queue.declare passive " + queue)) return false;
    *count = ok->message_count;
    amqp_maybe_release_buffers(admin_->get());
    return true;
  }

  const DriverOptions o_;
  mutable std::mutex mu_;
  Topology t_;                         // GUARDED_BY(mu_)
  bool prepared_ = false;              // GUARDED_BY(mu_)
  std::unique_ptr<Connection> admin_;  // GUARDED_BY(mu_): Prepare and GetDepth
  std::string version_;                // GUARDED_BY(mu_)
};

}  // namespace

std::unique_ptr<Driver> MakeRabbitMqDriver(const DriverOptions& options, bool quorum) {
  return std::make_unique<RabbitDriver>(options, quorum);
}

}  // namespace bench
