// The messaging system under test, as redrive_loadgen sees it. One Driver per run; one Session
// per producer or consumer thread. The scenarios (bench/loadgen.cc) are written once against
// this interface, so redrive and its peers run exactly the same workload:
//
//   redrive            redrive's REST API over HTTP/1.1 keep-alive (driver_redrive.cc)
//   rabbitmq-classic   RabbitMQ, durable classic queue (driver_rabbitmq.cc, librabbitmq)
//   rabbitmq-quorum    RabbitMQ, quorum queue (driver_rabbitmq.cc)
//   postgres-queue     PostgreSQL table used as a queue with FOR UPDATE SKIP LOCKED
//                      (driver_postgres.cc, libpq)
//
// Every driver must be durable in the same sense: Publish returns only once the system has
// acknowledged every message of the batch after making it durable (redrive: fsync before the
// 201; RabbitMQ: persistent messages + publisher confirms; PostgreSQL: COMMIT with
// synchronous_commit=on).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

// One message to publish. The body is `body_size` bytes of filler; `n` (a run-wide sequence
// number: decides which messages fail) and `sent_us` (send time, microseconds on the loadgen's
// steady clock) travel with the message as attributes / headers / columns.
struct Outgoing {
  int64_t n = 0;
  int64_t sent_us = 0;
};

// One message handed to a consumer.
struct Delivery {
  int64_t n = -1;
  int64_t sent_us = -1;
  int64_t delivery_count = 1;  // 1 on the first delivery, 2 on the first redelivery, ...
  std::string receipt;         // what the driver needs to settle it (redrive receipt)
  uint64_t tag = 0;            // AMQP delivery tag; PostgreSQL row id
};

struct Depth {
  int64_t ready = 0;          // waiting to be received
  int64_t in_flight = 0;      // received, not yet settled (leased / unacked), or delayed
  int64_t dead_lettered = 0;  // in the queue's dead-letter queue
};

// What a run needs from the system.
struct QueueSpec {
  std::string name;        // e.g. "end-to-end"; drivers may prefix it
  int max_deliveries = 0;  // > 0: a message nacked on its max_deliveries-th delivery is
                           // dead-lettered; 0: retried forever
  bool fresh = true;       // delete and recreate the queue (and its dead-letter queue)
};

// A connection used by one thread. Not thread-safe. Every method returns false on failure and
// sets error().
class Session {
 public:
  virtual ~Session() = default;
  // Publishes the whole batch durably (see the file comment); returns once every message is
  // acknowledged by the system. A false return means none of the batch may be counted.
  virtual bool Publish(const std::vector<Outgoing>& batch) = 0;
  // Appends up to `max` deliveries to `out` (cleared first), waiting up to `wait_ms` for the
  // first one. An empty result after the wait is a success.
  virtual bool Receive(int max, int wait_ms, std::vector<Delivery>* out) = 0;
  // Acknowledges (deletes) the deliveries; `*settled` gets how many the system accepted.
  virtual bool Ack(const std::vector<Delivery>& deliveries, int64_t* settled) = 0;
  // Reports a processing failure: the system redelivers each one at once, or dead-letters it
  // when this was its max_deliveries-th delivery. `*settled` as for Ack.
  virtual bool Nack(const std::vector<Delivery>& deliveries, int64_t* settled) = 0;
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

struct DriverOptions {
  std::string system = "redrive";  // one of the four names above
  int body_size = 1024;
  // redrive: one base URL, or several separated by commas (nodes sharing one PostgreSQL store).
  // With several, the k-th Session connected (producers first, then consumers: the loadgen's
  // thread index) uses URL k mod n; Prepare and GetDepth use the first.
  std::string url = "http://127.0.0.1:8080";
  std::string token;
  std::string tenant = "bench";
  bool create = false;  // Prepare with fresh=false creates the tenant and queue when missing
  // RabbitMQ (AMQP 0-9-1, guest/guest on 127.0.0.1)
  std::string amqp_host = "127.0.0.1";
  int amqp_port = 5672;
  // PostgreSQL (a libpq connection string; host must be 127.0.0.1, localhost or a socket dir)
  std::string pg_conninfo = "host=127.0.0.1 port=5432 dbname=postgres";
};

class Driver {
 public:
  virtual ~Driver() = default;
  // Creates (fresh: deletes first) the queue, its dead-letter queue and whatever routing the
  // system needs for QueueSpec. Called once, before any Session.
  virtual bool Prepare(const QueueSpec& spec) = 0;
  virtual std::unique_ptr<Session> Connect() = 0;
  virtual bool GetDepth(Depth* depth) = 0;
  // How the system is configured for durability, for the report (e.g. "persistent messages,
  // publisher confirms, manual acks; x-delivery-limit 2").
  virtual std::string Describe() const = 0;
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

// The base URLs of a comma-separated --url list, in order (empty items dropped).
std::vector<std::string> SplitUrls(const std::string& urls);

// The driver named by options.system, or nullptr (with *error set) for an unknown name.
std::unique_ptr<Driver> MakeDriver(const DriverOptions& options, std::string* error);

// Implemented in driver_redrive.cc, driver_rabbitmq.cc, driver_postgres.cc.
std::unique_ptr<Driver> MakeRedriveDriver(const DriverOptions& options);
std::unique_ptr<Driver> MakeRabbitMqDriver(const DriverOptions& options, bool quorum);
std::unique_ptr<Driver> MakePostgresDriver(const DriverOptions& options);

}  // namespace bench
