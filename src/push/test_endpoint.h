// TestEndpoint: a webhook receiver for the tests of push delivery, on a free port of 127.0.0.1,
// that answers what the test tells it to: any status, with or without Retry-After and other
// headers, after a delay, or not at all (it hangs), or by resetting the connection. It counts
// the connections it accepted and keeps every request it read. Optionally it speaks TLS with a
// certificate made at test time (MakeTestCertificates).
//
// Built into redrive_push_testing, which only tests link.
//
// Thread-safety: thread-safe. One thread accepts, one thread serves each connection (blocking
// Beast reads and writes); Stop, or the destructor, closes everything and joins them all.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace redrive::push::testing {

// A throwaway certificate authority and a server certificate it issued for 127.0.0.1 and
// localhost (ECDSA P-256, valid from an hour ago for two days), all PEM. Each call makes a new
// CA, which trusts nothing made by another call.
struct TestCertificates {
  std::string ca_pem;
  std::string server_cert_pem;
  std::string server_key_pem;
};
TestCertificates MakeTestCertificates();

// Writes `text` to a new file in the temporary directory and returns its path (for
// DeliveryRequest::ca_file). The caller removes it.
std::string WriteTempFile(std::string_view text);

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  int64_t received_us = 0;  // when it was read: steady clock, microseconds
};

class TestEndpoint {
 public:
  // Plain HTTP, or HTTPS with `tls`'s server certificate and key.
  TestEndpoint();
  explicit TestEndpoint(const TestCertificates& tls);
  ~TestEndpoint();
  TestEndpoint(const TestEndpoint&) = delete;
  TestEndpoint& operator=(const TestEndpoint&) = delete;

  // Listens on 127.0.0.1, port 0. False (with the reason in `error`) when it cannot.
  bool Start(std::string* error = nullptr);
  // Closes the listener and every connection (a hanging one too), and joins every thread.
  void Stop();

  int port() const { return port_; }
  // "http://127.0.0.1:PORT/path" (https with TLS).
  std::string url(std::string_view path = "/hook") const;

  // What every request from now on gets; by default 200 with an empty body.
  void Answer(int status, std::string retry_after = "", std::string body = "",
              std::vector<std::pair<std::string, std::string>> headers = {});
  // Waits this long after reading a request before answering it.
  void Delay(DurationMs delay);
  // Reads each request and never answers (until Stop).
  void Hang();
  // Reads each request, then resets the connection (RST, no answer).
  void Reset();

  int connections() const;  // accepted so far
  int requests() const;     // read so far
  std::vector<ReceivedRequest> received() const;

 private:
  enum class Mode { kAnswer, kHang, kReset };
  struct Tls;

  void AcceptLoop();
  template <typename Stream>
  void Serve(Stream& stream);
  void ServeConnection(int fd);

  std::unique_ptr<Tls> tls_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable changed_;                           // notified by Stop
  bool stopping_ = false;                                     // GUARDED_BY(mu_)
  Mode mode_ = Mode::kAnswer;                                 // GUARDED_BY(mu_)
  int status_ = 200;                                          // GUARDED_BY(mu_)
  std::string retry_after_;                                   // GUARDED_BY(mu_)
  std::string body_;                                          // GUARDED_BY(mu_)
  std::vector<std::pair<std::string, std::string>> headers_;  // GUARDED_BY(mu_)
  DurationMs delay_ = 0;                                      // GUARDED_BY(mu_)
  int connections_ = 0;                                       // GUARDED_BY(mu_)
  std::vector<ReceivedRequest> received_;                     // GUARDED_BY(mu_)
  // Sockets of the connections being served; a connection's thread removes its own before it
  // closes it, so Stop never shuts down a number that was reused meanwhile.
  std::set<int> open_fds_;                       // GUARDED_BY(mu_)
  std::vector<std::thread> connection_threads_;  // GUARDED_BY(mu_)
};

}  // namespace redrive::push::testing
