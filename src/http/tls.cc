#include "http/tls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace redrive::http {
namespace {

using SteadyClock = std::chrono::steady_clock;

Status Invalid(std::string message) {
  return Status(ErrorCode::kInvalidArgument, std::move(message));
}

// OpenSSL's queued reasons for this thread, joined, and the queue cleared.
std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    char buf[256];
    if (!reason) {
      ERR_error_string_n(e, buf, sizeof(buf));
      reason = buf;
    }
    if (!out.empty()) out += "; ";
    out += reason;
  }
  return out;
}

Result<std::string> ReadWholeFile(const std::string& path, const char* what) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Invalid(std::string("cannot read ") + what + " " + path + ": " + strerror(errno));
  std::string data;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  bool failed = std::ferror(f) != 0;
  int err = errno;
  std::fclose(f);
  if (failed)
    return Invalid(std::string("cannot read ") + what + " " + path + ": " + strerror(err));
  return data;
}

// Called by OpenSSL when a key is encrypted: refuse rather than prompt on the terminal.
int RefusePassphrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::string NameText(X509_NAME* name) {
  BioPtr b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(b.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : "";
}

CertificateInfo Describe(X509* cert) {
  CertificateInfo info;
  info.subject = NameText(X509_get_subject_name(cert));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
    info.not_after_unix = static_cast<int64_t>(timegm(&tm));
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    info.not_after = buf;
  }
  return info;
}

int64_t MsUntil(SteadyClock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now())
      .count();
}

}  // namespace

Result<std::shared_ptr<const TlsContext>> TlsContext::Load(const TlsOptions& options) {
  int min_version;
  if (options.min_version == "1.2") {
    min_version = TLS1_2_VERSION;
  } else if (options.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    return Invalid("TLS min_version must be \"1.2\" or \"1.3\", not \"" + options.min_version +
                   "\"");
  }
  REDRIVE_ASSIGN_OR_RETURN(std::string cert_pem,
                           ReadWholeFile(options.cert_file, "certificate file"));
  REDRIVE_ASSIGN_OR_RETURN(std::string key_pem, ReadWholeFile(options.key_file, "key file"));

  ERR_clear_error();
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Status(ErrorCode::kInternal, "SSL_CTX_new: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), min_version);
  // Client-initiated renegotiation only costs the server CPU.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Writes on a non-blocking socket return what fit; idle connections give their buffers back.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);

  // The certificate, then any chain after it (fullchain.pem), as
  // SSL_CTX_use_certificate_chain_file reads them, but from the bytes already read.
  BioPtr cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, X509Free> leaf(
      PEM_read_bio_X509_AUX(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) {
    std::string why = OpenSslError();
    if (cert_pem.find("CERTIFICATE-----") == std::string::npos) {
      return Invalid("certificate file " + options.cert_file +
                     " holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)");
    }
    return Invalid("certificate file " + options.cert_file +
                   " holds a certificate that cannot be read: " + why);
  }
  if (SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) {
    return Invalid("certificate file " + options.cert_file + ": " + OpenSslError());
  }
  for (;;) {
    X509* ca = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
    if (!ca) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the end of the file
        break;
      }
      return Invalid("certificate file " + options.cert_file +
                     ": a chain certificate is malformed: " + OpenSslError());
    }
    if (SSL_CTX_add0_chain_cert(ctx.get(), ca) != 1) {
      X509_free(ca);
      return Invalid("certificate file " + options.cert_file + ": " + OpenSslError());
    }
  }

  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  bool asked_passphrase = false;
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, RefusePassphrase, &asked_passphrase));
  if (!key) {
    std::string why = OpenSslError();
    if (asked_passphrase) {
      return Invalid("key file " + options.key_file +
                     " is encrypted; redrive needs an unencrypted key (decrypt it with `openssl "
                     "pkey -in ENCRYPTED -out PLAIN`, and keep PLAIN mode 0600)");
    }
    if (key_pem.find("PRIVATE KEY-----") == std::string::npos) {
      return Invalid("key file " + options.key_file +
                     " holds no PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" line)");
    }
    return Invalid("key file " + options.key_file +
                   " holds a private key that cannot be read: " + why);
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return Invalid("key file " + options.key_file + " does not match the certificate in " +
                   options.cert_file + " (" + OpenSslError() + ")");
  }
  std::shared_ptr<const TlsContext> loaded(new TlsContext(ctx.release(), Describe(leaf.get())));
  return loaded;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsConnection::TlsConnection(std::shared_ptr<const TlsContext> context, int fd)
    : context_(std::move(context)), fd_(fd), ssl_(SSL_new(context_->native())) {
  if (ssl_) {
    SSL_set_fd(ssl_, fd_);
    SSL_set_accept_state(ssl_);
  }
}

TlsConnection::~TlsConnection() {
  if (!ssl_) return;
  // close_notify, without waiting for the peer's: the socket is closed right after.
  if (established_) SSL_shutdown(ssl_);
  ERR_clear_error();
  SSL_free(ssl_);
}

TlsConnection::HandshakeResult TlsConnection::Handshake(SteadyClock::time_point deadline,
                                                        const std::atomic<bool>& stop) {
  if (!ssl_) {
    error_ = "SSL_new: " + OpenSslError();
    return HandshakeResult::kFailed;
  }
  // 1 when the socket is ready for `events`, 0 at the deadline or on stop, -1 on error.
  auto wait = [&](short events) {
    for (;;) {
      int64_t left = MsUntil(deadline);
      if (stop || left <= 0) return 0;
      pollfd p{fd_, events, 0};
      int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 250)));
      if (r > 0) return 1;
      if (r < 0 && errno != EINTR) return -1;
    }
  };
  // The first byte tells a ClientHello (a handshake record, 0x16) from a plain request line.
  for (;;) {
    unsigned char first = 0;
    ssize_t n = recv(fd_, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 1) {
      if (first >= 'A' && first <= 'Z') return HandshakeResult::kPlainHttp;
      break;
    }
    if (n == 0) {
      error_ = "closed by the client";
      return HandshakeResult::kFailed;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      error_ = strerror(errno);
      return HandshakeResult::kFailed;
    }
    int w = wait(POLLIN);
    if (w == 0) return HandshakeResult::kTimedOut;
    if (w < 0) return HandshakeResult::kFailed;
  }
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      established_ = true;
      return HandshakeResult::kOk;
    }
    int err = SSL_get_error(ssl_, r);
    short events;
    if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      error_ = OpenSslError();
      if (error_.empty()) error_ = "closed by the client";
      return HandshakeResult::kFailed;
    }
    int w = wait(events);
    if (w == 0) return HandshakeResult::kTimedOut;
    if (w < 0) return HandshakeResult::kFailed;
  }
}

ssize_t TlsConnection::Read(char* buf, size_t len, int wait_ms) {
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    // SSL_read first: it may hold decrypted bytes the socket no longer signals.
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT_MAX)));
    if (n > 0) return n;
    int err = SSL_get_error(ssl_, n);
    short events;
    if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      // close_notify may be answered; after any other error OpenSSL forbids SSL_shutdown.
      if (err != SSL_ERROR_ZERO_RETURN) established_ = false;
      ERR_clear_error();
      return -1;
    }
    int64_t left = MsUntil(deadline);
    if (left <= 0) return 0;
    pollfd p{fd_, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return -1;
    if (r == 0) return 0;
  }
}

bool TlsConnection::WriteAll(const std::string& data, int timeout_ms) {
  size_t off = 0;
  while (off < data.size()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, data.data() + off,
                      static_cast<int>(std::min<size_t>(data.size() - off, INT_MAX)));
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    short events;
    if (err == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else if (err == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else {
      established_ = false;
      ERR_clear_error();
      return false;
    }
    pollfd p{fd_, events, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      established_ = false;  // a write is half done: no close_notify after it
      return false;
    }
  }
  return true;
}

}  // namespace redrive::http
