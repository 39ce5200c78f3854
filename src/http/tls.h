// TLS for the HTTP server, on OpenSSL (libssl): a certificate and key loaded from PEM files
// into an immutable context, and the server side of one TLS connection over a non-blocking
// socket, every wait bounded.
//
// A TlsContext never changes once loaded; a reload (SIGHUP) loads a new one and the server
// swaps it in, so connections that began with the old one keep it to their end.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace redrive::http {

struct TlsOptions {
  std::string cert_file;            // PEM: the server certificate, optionally followed by its chain
  std::string key_file;             // PEM: its private key, unencrypted
  std::string min_version = "1.2";  // "1.2" or "1.3"

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// What the logs say about a loaded certificate.
struct CertificateInfo {
  std::string subject;         // RFC 2253, e.g. "CN=queues.example.com,O=Example"
  std::string serial;          // hex
  std::string not_after;       // RFC 3339 UTC, e.g. "2027-03-01T12:00:00Z"
  int64_t not_after_unix = 0;  // seconds since the epoch
};

// A server certificate and key, checked against each other. Immutable; thread-safe.
class TlsContext {
 public:
  // Reads both files. Errors (kInvalidArgument, the message naming the file): a file that
  // cannot be read, holds no PEM certificate or key, an encrypted key, a key that does not
  // match the certificate, a certificate OpenSSL refuses (e.g. a key too small);
  // min_version other than "1.2" or "1.3".
  static Result<std::shared_ptr<const TlsContext>> Load(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  const CertificateInfo& certificate() const { return info_; }
  SSL_CTX* native() const { return ctx_; }

 private:
  TlsContext(SSL_CTX* ctx, CertificateInfo info) : ctx_(ctx), info_(std::move(info)) {}
  SSL_CTX* ctx_;  // owned
  CertificateInfo info_;
};

// The server side of one TLS connection on a socket it does not own (the caller closes the
// fd after destroying this). Not thread-safe: one connection thread uses it.
class TlsConnection {
 public:
  // `context` is shared with the server and every connection that began with it.
  // REQUIRES: `fd` is non-blocking; SIGPIPE is ignored (OpenSSL writes with write(2), so a
  // peer gone mid-write would otherwise kill the process).
  TlsConnection(std::shared_ptr<const TlsContext> context, int fd);
  ~TlsConnection();  // sends close_notify (best effort, never waits) once the handshake is done
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  enum class HandshakeResult {
    kOk,
    kPlainHttp,  // the client sent plain HTTP (a request line) instead of a TLS ClientHello
    kTimedOut,   // not finished by the deadline, or `stop` was set
    kFailed,     // closed by the client, or not TLS, or a TLS error (see error())
  };
  // Completes the handshake by `deadline`, checking `stop` every 250 ms.
  HandshakeResult Handshake(std::chrono::steady_clock::time_point deadline,
                            const std::atomic<bool>& stop);
  // After a failed handshake: OpenSSL's reason, for debugging.
  const std::string& error() const { return error_; }

  // Reads decrypted bytes, waiting up to `wait_ms` for them. Returns the count (> 0), 0 when
  // nothing arrived in time, -1 when the connection is closed or broken.
  ssize_t Read(char* buf, size_t len, int wait_ms);
  // Writes everything, or gives up after `timeout_ms` without progress.
  bool WriteAll(const std::string& data, int timeout_ms);

 private:
  std::shared_ptr<const TlsContext> context_;
  int fd_;
  SSL* ssl_;  // owned
  bool established_ = false;
  std::string error_;
};

}  // namespace redrive::http
