// redrive_fill: set-up for the redrive-1m scenario of bench/compare.sh, not a measurement. Puts N
// dead letters of one origin queue into a system, as fast as the system takes them, so that the
// scenario can then time moving them back.
//
//   redrive           in process, through the engine and the real SQLite store (fsync on), into
//                     a fresh data directory that a server is started on afterwards. The origin
//                     queue is created with maxLength 1000 and overflow dead-letter-oldest, so
//                     each published batch dead-letters as many of the oldest in the same
//                     transaction (reason `overflow`); --connections threads publish at once.
//                     Then the limit is lifted and the last 1000, still queued, are received and
//                     acked. What remains: exactly N dead letters in `dead-letters` whose origin
//                     is an empty queue (whose retryPolicy.maxDeliveries is --max-deliveries).
//   rabbitmq-classic  the load generator's driver declares the queue, its dead-letter exchange
//   rabbitmq-quorum   and its dead-letter queue "<queue>.dlq" (bench/driver_rabbitmq.cc), then
//                     N persistent messages are published straight into "<queue>.dlq" over
//                     --connections connections with publisher confirms.
//   postgres-queue    the driver creates "<queue>" and "<queue>_dead" (bench/driver_postgres.cc),
//                     then one INSERT ... SELECT FROM generate_series fills "<queue>_dead", ids
//                     taken from the queue's own sequence as a real dead letter's would be.
//
// Bodies are --body-size bytes of 'x'; each message carries the load generator's "n" and "t".
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "driver.h"
#include "engine/engine.h"

using namespace redrive;

namespace {

struct Options {
  std::string system = "redrive";
  std::string data_dir;
  std::string tenant = "bench";
  std::string queue = "redrive-1m";
  int64_t dead_letters = 1'000'000;
  int batch = 0;  // 0: 100 for redrive (smaller transactions evict faster), 1000 for RabbitMQ
  int body_size = 1024;
  int connections = 4;
  int max_deliveries = 3;
  bench::DriverOptions driver;
};

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "redrive_fill: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

int FillRedrive(const Options& o) {
  if (o.data_dir.empty()) {
    std::fprintf(stderr, "redrive_fill: --data-dir is required for --system redrive\n");
    return 2;
  }
  if (std::filesystem::exists(o.data_dir)) {
    std::fprintf(stderr, "redrive_fill: %s exists; give a fresh directory\n", o.data_dir.c_str());
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  std::filesystem::create_directories(o.data_dir);
  auto store = Must(store::OpenStore("sqlite:" + o.data_dir + "/redrive.db"), "open store");
  SystemClock clock;
  SystemRandom random;
  engine::Engine eng(*store, clock, random);
  Must(eng.tenancy().CreateTenant(o.tenant), "create tenant");
  // The queue holds at most kQueued messages; publishing more dead-letters the oldest.
  constexpr int64_t kQueued = 1000;
  engine::QueueConfig limited;
  limited.max_length = kQueued;
  limited.overflow = engine::OverflowPolicy::kDeadLetterOldest;
  Must(eng.queues().CreateQueue(o.tenant, o.queue, limited), "create queue");

  // N dead letters need N + kQueued publishes. Several threads publish at once so that their
  // batches share group commits: alone, one thread mostly waits for fsync.
  const int64_t total = o.dead_letters + kQueued;
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o.connections); ++t) {
    threads.emplace_back([&] {
      std::vector<engine::NewMessage> messages;
      const std::string body(static_cast<size_t>(o.body_size), 'x');
      for (;;) {
        int64_t n = next.fetch_add(o.batch);
        if (n >= total) break;
        const int64_t count = std::min<int64_t>(o.batch, total - n);
        messages.resize(static_cast<size_t>(count));
        for (auto& m : messages) {
          m.body = body;
          m.attributes = {{"n", std::to_string(n)}, {"t", "0"}};
          ++n;
        }
        Must(eng.messages().Publish(o.tenant, o.queue, messages), "publish");
      }
    });
  }
  for (auto& t : threads) t.join();
  // The origin ends with default attributes but the dead-letter scenario's delivery limit, as
  // the peers' origin queues have.
  engine::QueueConfig open;
  open.retry.max_deliveries = o.max_deliveries;
  Must(eng.queues().UpdateQueue(o.tenant, o.queue, open), "lift the limit");
  for (;;) {
    engine::ReceiveOptions ro;
    ro.max_messages = 1000;
    auto got = Must(eng.messages().Receive(o.tenant, o.queue, ro), "receive");
    if (got.empty()) break;
    std::vector<std::string> receipts;
    for (const auto& d : got) receipts.push_back(d.receipt);
    Must(eng.messages().Ack(o.tenant, o.queue, receipts), "ack");
  }
  auto info = Must(eng.queues().GetQueue(o.tenant, o.queue), "get queue");
  const auto& d = info.depth;
  if (d.ready + d.leased + d.delayed != 0 || d.dead_lettered != o.dead_letters) {
    std::fprintf(stderr, "redrive_fill: expected an empty queue and %lld dead letters, got %s\n",
                 static_cast<long long>(o.dead_letters),
                 nlohmann::json{{"ready", d.ready},
                                {"leased", d.leased},
                                {"delayed", d.delayed},
                                {"deadLettered", d.dead_lettered}}
                     .dump()
                     .c_str());
    return 1;
  }
  return 0;
}

// ------------------------------------------------------------------ RabbitMQ

std::string AmqpError(amqp_rpc_reply_t r, const char* what) {
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    return std::string(what) + ": " + amqp_error_string2(r.library_error);
  }
  return std::string(what) + ": broker error (reply type " + std::to_string(r.reply_type) + ")";
}

// Publishes messages [first, first + count) to `queue` through the default exchange, batch by
// batch, each batch confirmed before the next. Returns an error message, empty on success.
std::string PublishRange(const Options& o, const std::string& queue, int64_t first, int64_t count) {
  amqp_connection_state_t c = amqp_new_connection();
  struct Closer {
    amqp_connection_state_t c;
    ~Closer() { amqp_destroy_connection(c); }
  } closer{c};
  amqp_socket_t* socket = amqp_tcp_socket_new(c);
  timeval connect_timeout{5, 0};
  int rc = amqp_socket_open_noblock(socket, o.driver.amqp_host.c_str(), o.driver.amqp_port,
                                    &connect_timeout);
  if (rc != AMQP_STATUS_OK) return std::string("connect: ") + amqp_error_string2(rc);
  timeval rpc_timeout{60, 0};
  amqp_set_rpc_timeout(c, &rpc_timeout);
  amqp_rpc_reply_t r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return AmqpError(r, "login");
  amqp_channel_open(c, 1);
  r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return AmqpError(r, "channel.open");
  amqp_confirm_select(c, 1);
  r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return AmqpError(r, "confirm.select");

  const std::string body(static_cast<size_t>(o.body_size), 'x');
  amqp_bytes_t routing_key{queue.size(), const_cast<char*>(queue.data())};
  amqp_bytes_t payload{body.size(), const_cast<char*>(body.data())};
  uint64_t published = 0;  // delivery tags are 1..published
  uint64_t confirmed = 0;  // every tag <= confirmed is confirmed
  std::vector<bool> acked;
  for (int64_t done = 0; done < count;) {
    const int64_t n = std::min<int64_t>(o.batch, count - done);
    const uint64_t base = published;
    for (int64_t i = 0; i < n; ++i) {
      amqp_table_entry_t entries[2];
      entries[0].key = amqp_cstring_bytes("n");
      entries[0].value.kind = AMQP_FIELD_KIND_I64;
      entries[0].value.value.i64 = first + done + i;
      entries[1].key = amqp_cstring_bytes("t");
      entries[1].value.kind = AMQP_FIELD_KIND_I64;
      entries[1].value.value.i64 = 0;
      amqp_basic_properties_t props;
      std::memset(&props, 0, sizeof(props));
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
      props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
      props.headers = amqp_table_t{2, entries};
      rc = amqp_basic_publish(c, 1, amqp_empty_bytes, routing_key, /*mandatory=*/1, 0, &props,
                              payload);
      if (rc != AMQP_STATUS_OK) return std::string("publish: ") + amqp_error_string2(rc);
      ++published;
    }
    acked.assign(static_cast<size_t>(n), false);
    while (confirmed < published) {
      amqp_frame_t frame;
      timeval wait{60, 0};
      rc = amqp_simple_wait_frame_noblock(c, &frame, &wait);
      if (rc != AMQP_STATUS_OK) return std::string("await confirms: ") + amqp_error_string2(rc);
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
          auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
          for (uint64_t t = ack->multiple ? confirmed + 1 : ack->delivery_tag;
               t <= ack->delivery_tag; ++t) {
            if (t > base) acked[t - base - 1] = true;
          }
          while (confirmed < published && (confirmed < base || acked[confirmed - base])) {
            ++confirmed;
          }
          break;
        }
        case AMQP_BASIC_NACK_METHOD:
          return "the broker refused a message (basic.nack)";
        case AMQP_BASIC_RETURN_METHOD:
          return "queue '" + queue + "' does not exist (basic.return)";
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
          return "the broker closed the channel";
        default:
          break;
      }
    }
    amqp_maybe_release_buffers(c);
    done += n;
  }
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  return "";
}

int FillRabbitMq(const Options& o) {
  const std::string dlq = o.queue + ".dlq";  // the driver's name for it
  const int threads = std::max(1, o.connections);
  std::vector<std::string> errors(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  int64_t first = 0;
  for (int i = 0; i < threads; ++i) {
    int64_t share = o.dead_letters / threads + (i < o.dead_letters % threads ? 1 : 0);
    workers.emplace_back(
        [&o, &dlq, &errors, i, first, share] { errors[i] = PublishRange(o, dlq, first, share); });
    first += share;
  }
  for (auto& t : workers) t.join();
  for (const auto& e : errors) {
    if (!e.empty()) {
      std::fprintf(stderr, "redrive_fill: rabbitmq: %s\n", e.c_str());
      return 1;
    }
  }
  return 0;
}

// ------------------------------------------------------------------ PostgreSQL

int FillPostgres(const Options& o) {
  PGconn* conn = PQconnectdb(o.driver.pg_conninfo.c_str());
  struct Finisher {
    PGconn* c;
    ~Finisher() { PQfinish(c); }
  } finisher{conn};
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "redrive_fill: postgres: %s", PQerrorMessage(conn));
    return 1;
  }
  auto quote = [conn](const std::string& name) {
    char* q = PQescapeIdentifier(conn, name.data(), name.size());
    std::string s = q;
    PQfreemem(q);
    return s;
  };
  auto literal = [conn](const std::string& value) {
    char* q = PQescapeLiteral(conn, value.data(), value.size());
    std::string s = q;
    PQfreemem(q);
    return s;
  };
  // The driver's tables: "<queue>" (id bigserial) and "<queue>_dead".
  const std::string sql = "INSERT INTO " + quote(o.queue + "_dead") +
                          " (id, body, n, sent_us, deliveries, enqueued_at)"
                          " SELECT nextval(pg_get_serial_sequence(" +
                          literal(quote(o.queue)) + ", 'id')), repeat('x', " +
                          std::to_string(o.body_size) + "), g, 0, " +
                          std::to_string(o.max_deliveries) + ", now() FROM generate_series(0, " +
                          std::to_string(o.dead_letters - 1) + ") AS g";
  PGresult* r = PQexec(conn, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) std::fprintf(stderr, "redrive_fill: postgres: %s", PQerrorMessage(conn));
  PQclear(r);
  return ok ? 0 : 1;
}

int FillPeer(const Options& o) {
  std::string error;
  auto driver = bench::MakeDriver(o.driver, &error);
  if (driver == nullptr) {
    std::fprintf(stderr, "redrive_fill: %s\n", error.c_str());
    return 2;
  }
  bench::QueueSpec spec;
  spec.name = o.queue;
  spec.max_deliveries = o.max_deliveries;
  spec.fresh = true;
  if (!driver->Prepare(spec)) {
    std::fprintf(stderr, "redrive_fill: prepare: %s\n", driver->error().c_str());
    return 1;
  }
  int rc = o.driver.system == "postgres-queue" ? FillPostgres(o) : FillRabbitMq(o);
  if (rc != 0) return rc;
  bench::Depth d;
  if (!driver->GetDepth(&d)) {
    std::fprintf(stderr, "redrive_fill: depth: %s\n", driver->error().c_str());
    return 1;
  }
  if (d.ready + d.in_flight != 0 || d.dead_lettered != o.dead_letters) {
    std::fprintf(stderr,
                 "redrive_fill: expected an empty queue and %lld dead letters, got ready %lld, "
                 "in flight %lld, dead-lettered %lld\n",
                 static_cast<long long>(o.dead_letters), static_cast<long long>(d.ready),
                 static_cast<long long>(d.in_flight), static_cast<long long>(d.dead_lettered));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"redrive_fill: put N dead letters of one queue into a system (benchmark set-up)"};
  app.add_option("--system", o.driver.system,
                 "redrive, rabbitmq-classic, rabbitmq-quorum or postgres-queue")
      ->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "redrive: a data directory that does not exist yet");
  app.add_option("--tenant", o.tenant, "redrive: tenant")->capture_default_str();
  app.add_option("--amqp-port", o.driver.amqp_port, "RabbitMQ: AMQP port on 127.0.0.1");
  app.add_option("--pg-conninfo", o.driver.pg_conninfo, "PostgreSQL: libpq connection string");
  app.add_option("--queue", o.queue, "The origin queue")->capture_default_str();
  app.add_option("--dead-letters", o.dead_letters)->capture_default_str();
  app.add_option("--batch", o.batch,
                 "Messages per publish / confirmed batch, 1 to 1000 (default 100 for redrive, "
                 "1000 for RabbitMQ)");
  app.add_option("--body-size", o.body_size)->capture_default_str();
  app.add_option("--connections", o.connections,
                 "Publishing threads (redrive) or connections (RabbitMQ)")
      ->capture_default_str();
  app.add_option("--max-deliveries", o.max_deliveries,
                 "The origin queue's delivery limit (as the dead-letter scenario sets it)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.driver.body_size = o.body_size;
  o.driver.tenant = o.tenant;
  if (o.batch == 0) o.batch = o.driver.system == "redrive" ? 100 : 1000;
  if (o.dead_letters < 1 || o.batch < 1 || o.batch > 1000 || o.body_size < 0) {
    std::fprintf(stderr, "redrive_fill: --dead-letters >= 1 and --batch in 1..1000\n");
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  int rc = o.driver.system == "redrive" ? FillRedrive(o) : FillPeer(o);
  if (rc != 0) return rc;
  std::printf("redrive_fill: %lld dead letters from %s in %s in %.1f s\n",
              static_cast<long long>(o.dead_letters), o.queue.c_str(), o.driver.system.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}
