// Client: the REST client behind every `redrive` subcommand except `serve`.
//
// One libcurl easy handle, reused for every call so the connection is kept alive; each call
// sends `Authorization: Bearer <token>` when a token is set, and JSON bodies as
// `application/json`. Nothing throws: every call returns a CallResult that holds either the
// parsed JSON answer or a CallError saying whether the server answered with an error, could not
// be reached, or answered something that is not the redrive API.
//
// Thread-safety: not thread-safe (one easy handle); use one Client per thread.
#pragma once

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace redrive::cli {

using nlohmann::json;

// Why a call failed. `kind` decides the exit code of the command (see commands.h).
struct CallError {
  enum class Kind {
    kServer,       // the server answered {"error":{"code","message"}}
    kUnreachable,  // no HTTP answer: connection refused, DNS, TLS, timeout
    kBadResponse,  // an HTTP answer that is not the redrive API (not JSON, wrong shape)
    kBadRequest,   // the request could not be built (e.g. a string that is not UTF-8)
  };
  Kind kind = Kind::kServer;
  long http_status = 0;  // 0 unless an HTTP answer arrived
  std::string code;      // the server's stable wire code, e.g. "queue-not-found"
  std::string message;

  // "code: message" for server errors, the message alone otherwise.
  std::string ToString() const;
};

// Either a value or a CallError, in the manner of redrive::Result.
template <typename T>
class [[nodiscard]] CallResult {
 public:
  CallResult(T value) : state_(std::move(value)) {}          // NOLINT: implicit by design
  CallResult(CallError error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(state_); }
  // REQUIRES: !ok()
  const CallError& error() const { return std::get<CallError>(state_); }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }

 private:
  std::variant<T, CallError> state_;
};

// One query parameter; empty values are left out of the URL.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Percent-encodes everything but RFC 3986 unreserved characters, for a path segment or a query
// value ('+', '/' and '=' in base64 cursors included).
std::string UrlEscape(std::string_view text);

class Client {
 public:
  // `base_url` like "http://127.0.0.1:8080" or "https://..." (a trailing '/' is ignored);
  // `token` may be empty, in which case no Authorization header is sent. `ca_file`, when not
  // empty, is a PEM file of the CAs that https servers are checked against, instead of the
  // system's.
  Client(std::string base_url, std::string token, std::string ca_file = "");
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& base_url() const { return base_url_; }

  // Each returns the parsed JSON body of a 2xx answer (null for 204 No Content). `path` starts
  // with '/' and is already escaped (build it with UrlEscape). `timeout_ms` bounds the whole call;
  // long polls pass their wait plus a margin.
  CallResult<json> Get(const std::string& path, const QueryParams& query = {},
                       long timeout_ms = kDefaultTimeoutMs);
  CallResult<json> Post(const std::string& path, const json& body,
                        long timeout_ms = kDefaultTimeoutMs);
  CallResult<json> Patch(const std::string& path, const json& body,
                         long timeout_ms = kDefaultTimeoutMs);
  CallResult<json> Put(const std::string& path, const json& body,
                       long timeout_ms = kDefaultTimeoutMs);
  CallResult<json> Delete(const std::string& path, long timeout_ms = kDefaultTimeoutMs);

  // Streams the body of GET `path` into `out` from byte `offset` on (a Range request when
  // offset > 0: the server answers 206 and the bytes are appended), calling `progress(bytes
  // written so far in this call, total bytes of the file or -1)` as they arrive. Returns the
  // file's total size. Errors as the others; a server that ignores the Range (200) is an error
  // (the caller would otherwise append the file to its own beginning).
  CallResult<int64_t> Download(const std::string& path, std::FILE* out, int64_t offset,
                               const std::function<void(int64_t, int64_t)>& progress);

  static constexpr long kDefaultTimeoutMs = 60'000;
  static constexpr long kConnectTimeoutMs = 10'000;

 private:
  CallResult<json> Call(const char* method, const std::string& path_and_query,
                        const std::optional<json>& body, long timeout_ms);

  std::string base_url_;
  std::string token_;
  std::string ca_file_;
  void* curl_;  // CURL*, owned; kept across calls for connection reuse
};

}  // namespace redrive::cli
