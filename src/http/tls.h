// TLS for the HTTP server: a certificate and key loaded from PEM files (OpenSSL) into an
// immutable context, which the server's Boost.Asio ssl_streams use for their connections.
//
// A TlsContext never changes once loaded; a reload (SIGHUP) loads a new one and the server
// swaps it in, so connections that began with the old one keep it to their end.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

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
  // For a new ssl_stream. Streams only read it (SSL_new); nothing changes it after Load.
  boost::asio::ssl::context& asio_context() const { return *ctx_; }

 private:
  TlsContext(std::unique_ptr<boost::asio::ssl::context> ctx, CertificateInfo info)
      : ctx_(std::move(ctx)), info_(std::move(info)) {}
  std::unique_ptr<boost::asio::ssl::context> ctx_;
  CertificateInfo info_;
};

}  // namespace redrive::http
