// TLS on the listener, against the real binary: a throwaway CA and server certificates made
// here with OpenSSL, https requests through libcurl trusting only that CA, and raw sockets for
// what a client library would not do (connect and say nothing, hold connections, read the
// certificate a connection got). Certificate rotation by SIGHUP, failed reloads, and start-up
// refusals are checked as an operator would see them: answers, log lines, metrics, exit codes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------ certificates

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
  EXPECT_EQ(write(bio), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

// A certificate signed by `issuer` (self-signed when null), for a CA or for a server reachable
// as 127.0.0.1 and localhost.
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
    EXPECT_NE(e, nullptr) << value;
    if (!e) return;
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
  EXPECT_GT(X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()), 0);
  return x;
}

struct Issued {
  std::string cert_pem;
  std::string key_pem;
  std::string encrypted_key_pem;  // the same key, under the passphrase "secret"
};

// A throwaway certificate authority.
class TestCa {
 public:
  explicit TestCa(const std::string& cn)
      : key_(EVP_EC_gen("P-256")),
        cert_(MakeCertificate(key_.get(), cn, 1, nullptr, nullptr, true)) {}

  std::string cert_pem() const {
    return ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert_.get()); });
  }

  Issued IssueServer(const std::string& cn, long serial) const {
    KeyPtr key(EVP_EC_gen("P-256"));
    CertPtr cert = MakeCertificate(key.get(), cn, serial, cert_.get(), key_.get(), false);
    Issued out;
    out.cert_pem = ToPem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
    out.key_pem = ToPem([&](BIO* b) {
      return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    static unsigned char kPass[] = "secret";
    out.encrypted_key_pem = ToPem([&](BIO* b) {
      return PEM_write_bio_PrivateKey(b, key.get(), EVP_aes_256_cbc(), kPass, 6, nullptr, nullptr);
    });
    return out;
  }

 private:
  KeyPtr key_;
  CertPtr cert_;
};

void WriteFile(const std::string& path, const std::string& text) {
  // Written beside and renamed into place, as certbot and most deploy tools do.
  std::string tmp = path + ".new";
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text;
  std::filesystem::rename(tmp, path);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ------------------------------------------------------------------ raw sockets

int ConnectTcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Seconds until the server closes a connection that the test leaves silent, or -1 when it
// stays open for 10 s.
double SecondsUntilClosed(int fd) {
  auto start = Clock::now();
  char buf[256];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) continue;
    if (n == 0 || errno == ECONNRESET) break;
    return -1;  // SO_RCVTIMEO
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A blocking TLS client connection that verifies the server against one CA and 127.0.0.1.
class TlsClient {
 public:
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) close(fd_);
  }

  // nullptr when the connection or the verified handshake fails (`error` says why).
  static std::unique_ptr<TlsClient> Dial(int port, const std::string& ca_file,
                                         std::string* error = nullptr) {
    auto c = std::unique_ptr<TlsClient>(new TlsClient());
    c->fd_ = ConnectTcp(port);
    c->ctx_ = SSL_CTX_new(TLS_client_method());
    if (c->fd_ < 0 || !c->ctx_) return nullptr;
    SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(c->ctx_, ca_file.c_str(), nullptr) != 1) return nullptr;
    c->ssl_ = SSL_new(c->ctx_);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl_), "127.0.0.1");
    SSL_set_fd(c->ssl_, c->fd_);
    if (SSL_connect(c->ssl_) != 1) {
      if (error) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        *error = buf;
      }
      ERR_clear_error();
      return nullptr;
    }
    return c;
  }

  // The common name of the certificate this connection got.
  std::string PeerCommonName() const {
    X509* peer = SSL_get1_peer_certificate(ssl_);
    if (!peer) return "";
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
    X509_free(peer);
    return cn;
  }

  bool Send(const std::string& data) {
    return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }

  // Reads one HTTP answer (headers and a Content-Length body), or until the connection ends.
  std::string ReadAnswer() {
    std::string out;
    char buf[4096];
    for (;;) {
      size_t head = out.find("\r\n\r\n");
      if (head != std::string::npos) {
        size_t cl = out.find("Content-Length: ");
        if (cl != std::string::npos && cl < head) {
          size_t len = std::stoul(out.substr(cl + 16));
          if (out.size() >= head + 4 + len) return out;
        }
      }
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  TlsClient() = default;
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

// ------------------------------------------------------------------ helpers

bool Eventually(const std::function<bool()>& condition, int timeout_ms = 10'000) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return condition();
}

// The value of an unlabelled metric in Prometheus text, or -1 when it is absent.
int64_t Metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stoll(line.substr(name.size() + 1));
  }
  return -1;
}

struct CommandRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `redrive args...` with exactly `env`; kills it after 20 s.
CommandRun RunRedrive(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env, const std::string& out_file) {
  std::vector<std::string> argv_s = {RedriveBinary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  CommandRun run;
  int status = 0;
  bool exited = Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 20'000);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  run.exit_code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.output = ReadText(out_file);
  return run;
}

// ------------------------------------------------------------------ fixture

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : ca_("redrive test CA one"), other_ca_("redrive test CA two") {}

  void SetUp() override {
    dir_ = MakeTempDir();
    ca_file_ = dir_ + "/ca.pem";
    other_ca_file_ = dir_ + "/ca-two.pem";
    cert_file_ = dir_ + "/cert.pem";
    key_file_ = dir_ + "/key.pem";
    WriteFile(ca_file_, ca_.cert_pem());
    WriteFile(other_ca_file_, other_ca_.cert_pem());
    first_ = ca_.IssueServer("server-one", 1001);
    WriteFile(cert_file_, first_.cert_pem);
    WriteFile(key_file_, first_.key_pem);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts the server with TLS from cert_file_ and key_file_ (and `server_toml`, if any).
  void Boot(const std::string& server_toml = "") {
    std::vector<std::string> args = {"--tls-cert", cert_file_, "--tls-key", key_file_};
    if (!server_toml.empty()) {
      std::string config = dir_ + "/redrive.toml";
      std::ofstream(config) << "[server]\n" << server_toml;
      args.push_back("--config");
      args.push_back(config);
    }
    server_ = std::make_unique<ServerProcess>("", args);
    server_->set_tls_ca_file(ca_file_);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
  }

  std::unique_ptr<HttpClient> Client(const std::string& ca_file) {
    auto c = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    c->set_ca_file(ca_file);
    return c;
  }

  std::string Metrics() { return Client(ca_file_)->Get("/metrics").body; }

  TestCa ca_, other_ca_;
  std::string dir_, ca_file_, other_ca_file_, cert_file_, key_file_;
  Issued first_;
  std::unique_ptr<ServerProcess> server_;
};

// ------------------------------------------------------------------ tests

TEST_F(TlsTest, ServesTheApiProbesAndMetricsOverHttps) {
  Boot();
  EXPECT_NE(server_->log().find("redrive listening on https://127.0.0.1:"), std::string::npos)
      << server_->log();
  EXPECT_NE(server_->log().find("subject CN=server-one"), std::string::npos) << server_->log();

  auto op = Client(ca_file_);
  EXPECT_EQ(op->Get("/healthz").status, 200);
  EXPECT_EQ(op->Get("/readyz").status, 200);
  CreateTenant(*op, "acme");
  CreateQueue(*op, "acme", "orders");
  auto pub =
      op->Post("/v1/tenants/acme/queues/orders/messages", {{"messages", {{{"body", "over tls"}}}}});
  ASSERT_EQ(pub.status, 201) << pub.body;
  auto got = op->Post("/v1/tenants/acme/queues/orders/receive", {{"wait", "0s"}});
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Json()["messages"][0]["body"], "over tls");

  auto metrics = op->Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(Metric(metrics.body, "redrive_tls_reload_failures_total"), 0) << metrics.body;
  int64_t expiry = Metric(metrics.body, "redrive_tls_certificate_expiry_timestamp_seconds");
  int64_t now = static_cast<int64_t>(time(nullptr));
  EXPECT_GT(expiry, now + 86400) << "the test certificate is valid for two days";
  EXPECT_LT(expiry, now + 3 * 86400);

  // The certificate is what it should be, and a client that does not trust its CA refuses it.
  auto conn = TlsClient::Dial(server_->port(), ca_file_);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->PeerCommonName(), "server-one");
  EXPECT_EQ(Client(other_ca_file_)->Get("/healthz").status, 0);
}

TEST_F(TlsTest, PlainHttpToTheTlsPortIsRefusedAndServingGoesOn) {
  Boot();
  HttpClient plain("http://127.0.0.1:" + std::to_string(server_->port()));
  auto r = plain.Get("/healthz");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.ErrorCode(), "invalid-argument");
  EXPECT_NE(r.body.find("https://"), std::string::npos) << r.body;
  auto post = plain.Post("/v1/tenants", {{"name", "acme"}});
  EXPECT_EQ(post.status, 400) << post.body;

  auto op = Client(ca_file_);
  EXPECT_EQ(op->Get("/healthz").status, 200);
  EXPECT_EQ(op->Get("/v1/tenants").Json()["tenants"].size(), 0u)
      << "the plain request never reached the API";
  EXPECT_GE(Metric(Metrics(), "redrive_tls_handshake_failures_total"), 2);
}

class TlsLimitsTest : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    Boot("request_timeout = \"1s\"\nidle_timeout = \"60s\"\nmax_connections = 3\n");
  }
};

TEST_F(TlsLimitsTest, AClientThatNeverFinishesTheHandshakeIsCutOffAtTheRequestTimeout) {
  int silent = ConnectTcp(server_->port());
  ASSERT_GE(silent, 0);
  int partial = ConnectTcp(server_->port());
  ASSERT_GE(partial, 0);
  const unsigned char hello_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};  // then nothing
  send(partial, hello_start, sizeof(hello_start), 0);

  double silent_s = SecondsUntilClosed(silent);
  double partial_s = SecondsUntilClosed(partial);
  close(silent);
  close(partial);
  // The request timeout (1s) applies, not the idle timeout (60s).
  EXPECT_GT(silent_s, 0.5);
  EXPECT_LT(silent_s, 4.0);
  EXPECT_GE(partial_s, 0.0);
  EXPECT_LT(partial_s, 4.0);
  EXPECT_EQ(Client(ca_file_)->Get("/healthz").status, 200);
}

TEST_F(TlsLimitsTest, SlowRequestsAndLargeHeadersGetTheSameAnswersAsOverPlainHttp) {
  auto conn = TlsClient::Dial(server_->port(), ca_file_);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));  // and never the end
  std::string answer = conn->ReadAnswer();
  EXPECT_NE(answer.find("HTTP/1.1 408"), std::string::npos) << answer;
  EXPECT_NE(answer.find("request-timeout"), std::string::npos) << answer;

  auto r =
      Client(ca_file_)->Send("GET", "/healthz", "", "", {"X-Big: " + std::string(20'000, 'a')});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.ErrorCode(), "headers-too-large");
}

TEST_F(TlsLimitsTest, TlsConnectionsCountAgainstTheConnectionLimit) {
  std::vector<std::unique_ptr<TlsClient>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(TlsClient::Dial(server_->port(), ca_file_));
    ASSERT_NE(held.back(), nullptr);
  }
  auto client = Client(ca_file_);
  auto r = client->Get("/healthz");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.ErrorCode(), "server-busy") << r.body;

  held.pop_back();
  EXPECT_TRUE(Eventually([&] { return client->Get("/healthz").status == 200; }));
}

TEST_F(TlsTest, SighupServesANewCertificateToNewConnectionsAndKeepsOldOnes) {
  Boot();
  pid_t pid = server_->pid();
  auto before = TlsClient::Dial(server_->port(), ca_file_);
  ASSERT_NE(before, nullptr);
  auto kept_alive = Client(ca_file_);
  ASSERT_EQ(kept_alive->Get("/healthz").status, 200);
  auto trusts_only_two = Client(other_ca_file_);
  ASSERT_EQ(trusts_only_two->Get("/healthz").status, 0) << "not yet: the server has CA one's";

  Issued second = other_ca_.IssueServer("server-two", 2002);
  WriteFile(cert_file_, second.cert_pem);
  WriteFile(key_file_, second.key_pem);
  ASSERT_EQ(kill(pid, SIGHUP), 0);

  EXPECT_TRUE(Eventually([&] { return trusts_only_two->Get("/healthz").status == 200; }))
      << server_->log();
  auto after = TlsClient::Dial(server_->port(), other_ca_file_);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after->PeerCommonName(), "server-two");
  std::string error;
  EXPECT_EQ(TlsClient::Dial(server_->port(), ca_file_, &error), nullptr)
      << "new connections no longer get the old certificate";

  // Connections opened before the reload keep their certificate and keep working.
  EXPECT_EQ(before->PeerCommonName(), "server-one");
  ASSERT_TRUE(before->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(before->ReadAnswer().find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(kept_alive->Get("/healthz").status, 200);
  EXPECT_EQ(kept_alive->last_new_connections(), 0) << "the same kept-alive connection";

  // The same process all along, and the log says what it loaded.
  EXPECT_EQ(server_->pid(), pid);
  EXPECT_EQ(kill(pid, 0), 0);
  std::string log = server_->log();
  EXPECT_NE(log.find("reloaded TLS certificate " + cert_file_ +
                     ": subject CN=server-two, serial "
                     "07D2, notAfter 20"),
            std::string::npos)
      << log;
  EXPECT_EQ(
      Metric(Client(other_ca_file_)->Get("/metrics").body, "redrive_tls_reload_failures_total"), 0);
}

TEST_F(TlsTest, AFailedReloadKeepsTheOldCertificateAndIsCounted) {
  Boot();
  WriteFile(key_file_, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  EXPECT_TRUE(
      Eventually([&] { return Metric(Metrics(), "redrive_tls_reload_failures_total") == 1; }));
  EXPECT_TRUE(Eventually([&] {
    return server_->log().find(
               "TLS reload failed, still serving the previous certificate: key "
               "file " +
               key_file_) != std::string::npos;
  })) << server_->log();
  auto conn = TlsClient::Dial(server_->port(), ca_file_);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->PeerCommonName(), "server-one");

  // A new certificate whose key did not follow (yet): refused as a pair, old one kept.
  Issued second = other_ca_.IssueServer("server-two", 2002);
  WriteFile(cert_file_, second.cert_pem);
  WriteFile(key_file_, first_.key_pem);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  EXPECT_TRUE(
      Eventually([&] { return Metric(Metrics(), "redrive_tls_reload_failures_total") == 2; }));
  EXPECT_NE(server_->log().find("does not match the certificate in " + cert_file_),
            std::string::npos)
      << server_->log();
  EXPECT_EQ(Client(ca_file_)->Get("/healthz").status, 200);

  // Once the key is there, the next SIGHUP takes the pair.
  WriteFile(key_file_, second.key_pem);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  EXPECT_TRUE(Eventually([&] { return Client(other_ca_file_)->Get("/healthz").status == 200; }));
}

TEST_F(TlsTest, StartRefusesAMissingMismatchedOrEncryptedKeyNamingTheFile) {
  auto start = [&](std::vector<std::string> args, int* exit_code) {
    ServerProcess p("", std::move(args));
    std::string error;
    EXPECT_FALSE(p.Start(&error));
    *exit_code = p.start_exit_code();
    EXPECT_FALSE(std::filesystem::exists(p.data_dir() + "/redrive.db")) << "nothing was created";
    return error;
  };
  int code = 0;
  std::string missing = dir_ + "/missing-key.pem";
  std::string log = start({"--tls-cert", cert_file_, "--tls-key", missing}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(log.find("cannot read key file " + missing + ": No such file"), std::string::npos)
      << log;

  std::string other_key = dir_ + "/other-key.pem";
  WriteFile(other_key, ca_.IssueServer("someone-else", 3003).key_pem);
  log = start({"--tls-cert", cert_file_, "--tls-key", other_key}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(log.find("key file " + other_key + " does not match the certificate in " + cert_file_),
            std::string::npos)
      << log;

  std::string encrypted = dir_ + "/encrypted-key.pem";
  WriteFile(encrypted, first_.encrypted_key_pem);
  log = start({"--tls-cert", cert_file_, "--tls-key", encrypted}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(log.find("key file " + encrypted + " is encrypted"), std::string::npos) << log;

  std::string not_a_cert = dir_ + "/not-a-cert.pem";
  WriteFile(not_a_cert, "hello\n");
  log = start({"--tls-cert", not_a_cert, "--tls-key", key_file_}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(log.find("certificate file " + not_a_cert + " holds no PEM certificate"),
            std::string::npos)
      << log;

  log = start({"--tls-cert", cert_file_}, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("tls.key_file' is missing"), std::string::npos) << log;
}

TEST_F(TlsTest, CertificateAndKeyCanComeFromTheConfigFileOrTheEnvironment) {
  std::string config = dir_ + "/redrive.toml";
  std::ofstream(config) << "[tls]\ncert_file = \"" << cert_file_ << "\"\nkey_file = \"" << key_file_
                        << "\"\nmin_version = \"1.3\"\n";
  ServerProcess p("", {"--config", config});
  p.set_tls_ca_file(ca_file_);
  std::string error;
  ASSERT_TRUE(p.Start(&error)) << error;
  auto conn = TlsClient::Dial(p.port(), ca_file_);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->PeerCommonName(), "server-one");
}

TEST_F(TlsTest, SighupWithoutTlsIsLoggedAndIgnored) {
  ServerProcess plain;
  std::string error;
  ASSERT_TRUE(plain.Start(&error)) << error;
  ASSERT_EQ(kill(plain.pid(), SIGHUP), 0);
  EXPECT_TRUE(Eventually([&] {
    return plain.log().find("received SIGHUP; TLS is not configured, nothing to reload") !=
           std::string::npos;
  })) << plain.log();
  HttpClient c(plain.url());
  EXPECT_EQ(c.Get("/healthz").status, 200);
  EXPECT_EQ(plain.Stop(), 0);
}

TEST_F(TlsTest, TheCliTrustsAPrivateCaWithCaFile) {
  Boot();
  std::string token_file = server_->data_dir() + "/operator.token";
  std::map<std::string, std::string> env = {{"HOME", dir_}, {"PATH", "/usr/bin:/bin"}};
  std::string out = dir_ + "/cli.out";
  std::vector<std::string> args = {"tenant",       "ls",           "--url",
                                   server_->url(), "--token-file", token_file};

  CommandRun r = RunRedrive(args, env, out);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("--ca-file"), std::string::npos) << r.output;

  auto with_flag = args;
  with_flag.insert(with_flag.end(), {"--ca-file", ca_file_});
  r = RunRedrive(with_flag, env, out);
  EXPECT_EQ(r.exit_code, 0) << r.output;

  auto with_env = env;
  with_env["REDRIVE_CA_FILE"] = ca_file_;
  r = RunRedrive(args, with_env, out);
  EXPECT_EQ(r.exit_code, 0) << r.output;

  with_env["REDRIVE_CA_FILE"] = other_ca_file_;
  r = RunRedrive(args, with_env, out);
  EXPECT_EQ(r.exit_code, 3) << "a CA that did not sign the server's certificate\n" << r.output;

  with_env["REDRIVE_CA_FILE"] = dir_ + "/nope.pem";
  r = RunRedrive(args, with_env, out);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot read CA file " + dir_ + "/nope.pem"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace redrive::testing
