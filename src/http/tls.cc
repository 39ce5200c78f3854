#include "http/tls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace redrive::http {
namespace {

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
  // boost::asio::ssl::context takes ownership of the SSL_CTX.
  auto asio_ctx = std::make_unique<boost::asio::ssl::context>(ctx.release());
  std::shared_ptr<const TlsContext> loaded(
      new TlsContext(std::move(asio_ctx), Describe(leaf.get())));
  return loaded;
}

TlsContext::~TlsContext() = default;

}  // namespace redrive::http
