#include "push/test_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>

namespace redrive::push::testing {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

// Certificate making fails only when OpenSSL itself is broken: a test cannot go on.
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "test certificates: %s failed\n", what);
    std::abort();
  }
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using CertPtr = std::unique_ptr<X509, X509Free>;

std::string ToPem(const std::function<int(BIO*)>& write) {
  BIO* bio = BIO_new(BIO_s_mem());
  Check(write(bio) == 1, "PEM_write");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

// A certificate signed by `issuer` (self-signed when null): a CA, or a server reachable as
// 127.0.0.1 and localhost.
CertPtr MakeCertificate(EVP_PKEY* key, const std::string& cn, long serial, X509* issuer,
                        EVP_PKEY* issuer_key, bool ca) {
  CertPtr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 2 * 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    Check(e != nullptr, value);
    X509_add_ext(x.get(), e, -1);
    X509_EXTENSION_free(e);
  };
  add(NID_subject_key_identifier, "hash");
  if (ca) {
    add(NID_basic_constraints, "critical,CA:TRUE");
    add(NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add(NID_basic_constraints, "critical,CA:FALSE");
    add(NID_key_usage, "critical,digitalSignature");
    add(NID_ext_key_usage, "serverAuth");
    add(NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    add(NID_authority_key_identifier, "keyid:always");
  }
  Check(X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return x;
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

TestCertificates MakeTestCertificates() {
  KeyPtr ca_key(EVP_EC_gen("P-256"));
  Check(ca_key != nullptr, "EVP_EC_gen");
  CertPtr ca = MakeCertificate(ca_key.get(), "redrive push test CA", 1, nullptr, nullptr, true);
  KeyPtr key(EVP_EC_gen("P-256"));
  Check(key != nullptr, "EVP_EC_gen");
  CertPtr cert = MakeCertificate(key.get(), "127.0.0.1", 2, ca.get(), ca_key.get(), false);
  TestCertificates out;
  out.ca_pem = ToPem([&](BIO* b) { return PEM_write_bio_X509(b, ca.get()); });
  out.server_cert_pem = ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
  out.server_key_pem = ToPem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  return out;
}

std::string WriteTempFile(std::string_view text) {
  const char* dir = std::getenv("TMPDIR");
  std::string path =
      std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/redrive-push-XXXXXX";
  int fd = mkstemp(path.data());
  Check(fd >= 0, "mkstemp");
  Check(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()), "write");
  close(fd);
  return path;
}

struct TestEndpoint::Tls {
  asio::ssl::context context{asio::ssl::context::tls_server};
};

TestEndpoint::TestEndpoint() = default;

TestEndpoint::TestEndpoint(const TestCertificates& tls) : tls_(std::make_unique<Tls>()) {
  tls_->context.use_certificate_chain(asio::buffer(tls.server_cert_pem));
  tls_->context.use_private_key(asio::buffer(tls.server_key_pem), asio::ssl::context::pem);
}

TestEndpoint::~TestEndpoint() { Stop(); }

bool TestEndpoint::Start(std::string* error) {
  auto fail = [&](const char* what) {
    if (error != nullptr) *error = std::string(what) + ": " + std::strerror(errno);
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    return false;
  };
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail("bind");
  }
  if (listen(listen_fd_, 128) != 0) return fail("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return fail("getsockname");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void TestEndpoint::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // Wakes the blocked accept and every blocked read; the threads then close their sockets.
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  changed_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(connection_threads_);
  }
  for (std::thread& t : threads) t.join();
}

std::string TestEndpoint::url(std::string_view path) const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) +
         std::string(path);
}

void TestEndpoint::Answer(int status, std::string retry_after, std::string body,
                          std::vector<std::pair<std::string, std::string>> headers) {
  std::lock_guard<std::mutex> lock(mu_);
  mode_ = Mode::kAnswer;
  status_ = status;
  retry_after_ = std::move(retry_after);
  body_ = std::move(body);
  headers_ = std::move(headers);
}

void TestEndpoint::Delay(DurationMs delay) {
  std::lock_guard<std::mutex> lock(mu_);
  delay_ = delay;
}

void TestEndpoint::Hang() {
  std::lock_guard<std::mutex> lock(mu_);
  mode_ = Mode::kHang;
}

void TestEndpoint::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  mode_ = Mode::kReset;
}

int TestEndpoint::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

int TestEndpoint::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(received_.size());
}

std::vector<ReceivedRequest> TestEndpoint::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

void TestEndpoint::AcceptLoop() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (fd >= 0) close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    ++connections_;
    open_fds_.insert(fd);
    connection_threads_.emplace_back([this, fd] { ServeConnection(fd); });
  }
}

void TestEndpoint::ServeConnection(int fd) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.assign(asio::ip::tcp::v4(), fd, ec);
  bool owned = !ec;
  if (owned) {
    if (tls_) {
      asio::ssl::stream<asio::ip::tcp::socket&> stream(socket, tls_->context);
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (!ec) Serve(stream);
    } else {
      Serve(socket);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(fd);
  }
  if (owned) {
    socket.close(ec);
  } else {
    close(fd);
  }
}

template <typename Stream>
void TestEndpoint::Serve(Stream& stream) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> request;
    boost::system::error_code ec;
    http::read(stream, buffer, request, ec);
    if (ec) return;
    ReceivedRequest seen;
    seen.method = std::string(request.method_string());
    seen.target = std::string(request.target());
    for (const auto& field : request) {
      seen.headers[Lower(std::string(field.name_string()))] = std::string(field.value());
    }
    seen.body = request.body();
    seen.received_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count();
    http::response<http::string_body> response;
    {
      std::unique_lock<std::mutex> lock(mu_);
      received_.push_back(std::move(seen));
      if (delay_ > 0) {
        changed_.wait_for(lock, std::chrono::milliseconds(delay_), [&] { return stopping_; });
      }
      if (stopping_) return;
      if (mode_ == Mode::kHang) {
        changed_.wait(lock, [&] { return stopping_; });
        return;
      }
      if (mode_ == Mode::kReset) {
        // SO_LINGER with a zero timeout: the close in ServeConnection sends RST, not FIN.
        boost::beast::get_lowest_layer(stream).set_option(asio::socket_base::linger(true, 0), ec);
        return;
      }
      response.result(static_cast<unsigned>(status_));
      if (!retry_after_.empty()) response.set(http::field::retry_after, retry_after_);
      for (const auto& [name, value] : headers_) response.set(name, value);
      response.body() = body_;
    }
    response.version(11);
    response.keep_alive(request.keep_alive());
    response.prepare_payload();
    http::write(stream, response, ec);
    if (ec || !request.keep_alive()) return;
  }
}

}  // namespace redrive::push::testing
