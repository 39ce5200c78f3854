// Test harness: starts the real `redrive serve` binary on a free port with a fresh data
// directory, and talks to it over real HTTP (libcurl). Polls to deadlines; never sleeps blind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace redrive::testing {

using nlohmann::json;

struct HttpResult {
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  // The first header with this lower-case name, or "".
  std::string Header(const std::string& name) const;
  json Json() const;              // parsed body, or null when it is not JSON
  std::string ErrorCode() const;  // body.error.code, or ""
};

// A blocking HTTP client with one keep-alive connection. Thread-compatible.
class HttpClient {
 public:
  explicit HttpClient(std::string base_url, std::string token = "");
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void set_token(std::string token) { token_ = std::move(token); }
  // For https URLs: trust only the CAs in this PEM file (empty: the system's).
  void set_ca_file(std::string path) { ca_file_ = std::move(path); }
  // Connections the last call opened: 0 when it reused the kept-alive one.
  long last_new_connections() const { return last_new_connections_; }
  HttpResult Get(const std::string& path);
  HttpResult Delete(const std::string& path);
  HttpResult Post(const std::string& path, const json& body);
  HttpResult Patch(const std::string& path, const json& body);
  // Full control: any method, raw body and content type, extra headers.
  HttpResult Send(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& content_type = "application/json",
                  const std::vector<std::string>& headers = {});

 private:
  std::string base_;
  std::string token_;
  std::string ca_file_;
  long last_new_connections_ = 0;
  void* curl_;
};

// The path of the redrive binary: $REDRIVE_BINARY (set by CMake for every test).
std::string RedriveBinary();
// True when this run's servers keep their state on PostgreSQL: REDRIVE_TEST_BACKEND=postgres
// (the `postgres/` copies of the integration tests, tests/CMakeLists.txt). Each server then
// gets a database of its own on the test cluster, named after its data directory, so a server
// started again on the same directory finds its state, as with SQLite.
bool OnPostgres();

// A running server process. The destructor stops it (SIGTERM, then SIGKILL).
class ServerProcess {
 public:
  // `data_dir` empty = a fresh temporary directory, removed at destruction.
  explicit ServerProcess(std::string data_dir = "", std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // Starts and waits until /healthz answers. Returns false (with the log in `error`) on failure.
  bool Start(std::string* error = nullptr);
  // SIGTERM and wait for exit; returns the exit status (or -1).
  int Stop(int timeout_ms = 30'000);
  // SIGKILL, no cleanup: the crash in crash tests.
  void Kill();

  // The server speaks TLS (the args configure it): url() is https, and Start() checks
  // /healthz trusting only the CAs in `ca_file`. Call before Start().
  void set_tls_ca_file(std::string ca_file) { tls_ca_file_ = std::move(ca_file); }
  // The exit code when Start() failed because the process exited (-1 otherwise).
  int start_exit_code() const { return start_exit_code_; }

  // Listen on this loopback address instead of 127.0.0.1 ("::1" for IPv6). Call before Start().
  void set_listen_host(std::string host) { host_ = std::move(host); }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url() const {
    std::string host = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
    return (tls_ca_file_.empty() ? "http://" : "https://") + host + ":" + std::to_string(port_);
  }
  const std::string& data_dir() const { return data_dir_; }
  std::string operator_token() const;
  std::string log() const;

 private:
  std::string data_dir_;
  bool own_dir_ = false;
  std::vector<std::string> extra_args_;
  std::string tls_ca_file_;
  std::string host_ = "127.0.0.1";
  int start_exit_code_ = -1;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Creates a unique temporary directory.
std::string MakeTempDir();

// Polls `condition` every few milliseconds until it holds or `timeout` passes, then checks it
// once more; returns whether it held. The way to wait for what the server does in its own time,
// instead of sleeping for a guessed while.
bool Eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Shorthands over an operator client: create a tenant, a queue with attributes, a token.
void CreateTenant(HttpClient& op, const std::string& tenant);
void CreateQueue(HttpClient& op, const std::string& tenant, const std::string& queue,
                 const json& attributes = json::object());
std::string CreateToken(HttpClient& op, const std::string& tenant, const std::string& label,
                        const std::vector<std::string>& scopes = {});

}  // namespace redrive::testing
