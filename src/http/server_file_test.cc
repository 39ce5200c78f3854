// Files streamed by the real Server over real sockets on 127.0.0.1: raw sockets where the test
// must see every byte and the connection's end, libcurl where a real client is the point
// (TLS, resuming a download).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "http/file_response.h"
#include "http/server.h"
#include "push/test_endpoint.h"

namespace redrive::http {
namespace {

using Clock = std::chrono::steady_clock;

// The test files' bytes: a function of the offset that does not repeat with any chunk size, so
// a chunk sent twice, skipped or out of order shows.
uint8_t ByteAt(uint64_t i) {
  uint64_t x = (i / 8) * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<uint8_t>(x >> ((i % 8) * 8));
}
std::string Expected(uint64_t first, uint64_t length) {
  std::string out(length, '\0');
  for (uint64_t i = 0; i < length; ++i) out[i] = static_cast<char>(ByteAt(first + i));
  return out;
}

// ---- a client on a raw socket

struct Reply {
  int status = 0;  // 0: the connection ended (or timed out) before a whole head came
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool complete = false;  // the whole body (Content-Length) arrived
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class RawClient {
 public:
  // `receive_buffer` > 0 shrinks the socket's receive buffer (before connecting), so that a
  // client that stops reading stops the server soon.
  explicit RawClient(int port, int receive_buffer = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    }
    timeval tv{30, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }

  bool Send(const std::string& data) {
    for (size_t off = 0; off < data.size();) {
      ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool SendGet(const std::string& path, const std::string& headers = "") {
    return Send("GET " + path + " HTTP/1.1\r\nHost: test\r\n" + headers + "\r\n");
  }

  // The status line and headers of the next response.
  Reply ReadHead() {
    Reply r;
    size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    std::string head = pending_.substr(0, end);
    pending_.erase(0, end + 4);
    r.status = std::stoi(head.substr(9, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      pos = next;
    }
    return r;
  }
  // Up to `n` body bytes, passed to `sink` as they come; the count received.
  template <class Sink>
  uint64_t ReadBody(uint64_t n, Sink&& sink) {
    uint64_t got = 0;
    while (got < n) {
      if (pending_.empty() && !Fill()) break;
      size_t take = static_cast<size_t>(std::min<uint64_t>(n - got, pending_.size()));
      sink(std::string_view(pending_).substr(0, take));
      pending_.erase(0, take);
      got += take;
    }
    return got;
  }
  // A whole response, its body in memory (no body for a 304).
  Reply Read() {
    Reply r = ReadHead();
    if (r.status == 0) return r;
    uint64_t length = r.status == 304 ? 0 : std::stoull(r.Header("content-length"));
    uint64_t got = ReadBody(length, [&](std::string_view s) { r.body.append(s); });
    r.complete = got == length;
    return r;
  }
  Reply Get(const std::string& path, const std::string& headers = "") {
    if (!SendGet(path, headers)) return {};
    return Read();
  }
  // Reads until the server closes: true when it did (EOF or reset) rather than time out.
  bool ReadsToClose(uint64_t* bytes) {
    *bytes += pending_.size();
    pending_.clear();
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      *bytes += static_cast<uint64_t>(n);
    }
  }

 private:
  bool Fill() {
    char buf[64 * 1024];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;  // received, not yet returned
};

// ---- libcurl

struct CurlReply {
  long status = 0;
  std::string body;
  CURLcode code = CURLE_OK;
  long new_connections = 0;
};

class CurlClient {
 public:
  CurlClient() {
    static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
    (void)init;
    curl_ = curl_easy_init();
  }
  ~CurlClient() { curl_easy_cleanup(curl_); }
  // Trust only the CA in this PEM file (for https).
  void set_ca_file(const std::string& path) { ca_file_ = path; }
  // Called with the body received so far, each time more arrives (from curl_easy_perform).
  void set_on_body(std::function<void(const std::string&)> f) { on_body_ = std::move(f); }
  // Shrinks the receive buffer of the sockets it opens from now on (see RawClient).
  void set_receive_buffer(int bytes) { receive_buffer_ = bytes; }

  // A GET; `resume_from` > 0 asks for the rest of the file from there (a Range).
  CurlReply Get(const std::string& url, curl_off_t resume_from = 0,
                const std::string& header = "") {
    CurlReply r;
    Transfer t{&r.body, this};
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &CurlClient::OnData);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl_, CURLOPT_SOCKOPTFUNCTION, &CurlClient::OnSocket);
    curl_easy_setopt(curl_, CURLOPT_SOCKOPTDATA, this);
    curl_easy_setopt(curl_, CURLOPT_RESUME_FROM_LARGE, resume_from);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    if (!ca_file_.empty()) curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file_.c_str());
    curl_slist* headers = header.empty() ? nullptr : curl_slist_append(nullptr, header.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    r.code = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &r.new_connections);
    return r;
  }

 private:
  struct Transfer {
    std::string* body;
    CurlClient* client;
  };
  static size_t OnData(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    t->body->append(data, size * n);
    if (t->client->on_body_) t->client->on_body_(*t->body);
    return size * n;
  }
  static int OnSocket(void* user, curl_socket_t fd, curlsocktype) {
    int bytes = static_cast<CurlClient*>(user)->receive_buffer_;
    if (bytes > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    return CURL_SOCKOPT_OK;
  }

  CURL* curl_;
  std::string ca_file_;
  std::function<void(const std::string&)> on_body_;
  int receive_buffer_ = 0;
};

// ---- the fixture: a Server whose handler serves the files of a temporary directory

class ServerFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/redrive-serve-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
    for (const auto& f : temp_files_) std::filesystem::remove(f);
  }

  // GET /files/NAME serves dir_/NAME with the ETag "tag-NAME"; GET /small answers a string;
  // GET /past-the-end streams 10 bytes from the end of dir_/short.ndjson.
  void StartServer(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.io_threads = 2;
    options.handler_threads = 4;
    server_ = std::make_unique<Server>(options, [this](Request req, Responder respond) {
      if (req.path == "/small") {
        Response r;
        r.body = "{\"small\":true}";
        respond(std::move(r));
        return;
      }
      if (req.path == "/past-the-end") {
        // A FileBody that promises more than the file has, from its first byte.
        auto file = ReadOnlyFile::Open(dir_ + "/short.ndjson");
        Response r;
        r.content_type = "application/x-ndjson";
        r.file = FileBody{file.value(), file.value()->info().size, 10};
        respond(std::move(r));
        return;
      }
      std::string name = req.path.substr(std::string("/files/").size());
      respond(FileResponse(req, dir_ + "/" + name, "application/x-ndjson", "tag-" + name));
    });
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  void StartTlsServer(ServerOptions options = {}) {
    push::testing::TestCertificates certs = push::testing::MakeTestCertificates();
    options.tls.cert_file = TempFile(certs.server_cert_pem);
    options.tls.key_file = TempFile(certs.server_key_pem);
    ca_file_ = TempFile(certs.ca_pem);
    StartServer(std::move(options));
  }

  std::string TempFile(const std::string& text) {
    temp_files_.push_back(push::testing::WriteTempFile(text));
    return temp_files_.back();
  }

  // Writes dir_/name with `size` bytes of ByteAt, a block at a time.
  std::string WriteFile(const std::string& name, uint64_t size) {
    std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    constexpr uint64_t kBlock = 1 << 20;
    for (uint64_t off = 0; off < size; off += kBlock) {
      out << Expected(off, std::min(kBlock, size - off));
    }
    return path;
  }

  int port() const { return server_->port(); }
  std::string url(const std::string& path, const char* scheme = "http") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port()) + path;
  }

  std::string dir_;
  std::string ca_file_;
  std::vector<std::string> temp_files_;
  std::unique_ptr<Server> server_;
};

// The resident set of this process, in bytes (server and client both live in it).
int64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

TEST_F(ServerFileTest, FullDownloadIsTheFileByteForByte) {
  constexpr uint64_t kSize = 10 * 1024 * 1024 + 123;  // not a multiple of the chunk size
  WriteFile("export.ndjson", kSize);
  StartServer();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  Reply r = c.Get("/files/export.ndjson");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.Header("content-length"), std::to_string(kSize));
  EXPECT_EQ(r.Header("content-type"), "application/x-ndjson");
  EXPECT_EQ(r.Header("accept-ranges"), "bytes");
  EXPECT_EQ(r.Header("etag"), "\"tag-export.ndjson\"");
  EXPECT_FALSE(r.Header("last-modified").empty());
  EXPECT_EQ(r.Header("connection"), "keep-alive");
  EXPECT_TRUE(r.body == Expected(0, kSize)) << "the body differs from the file";
}

TEST_F(ServerFileTest, LargeDownloadHoldsAChunkNotTheFile) {
  constexpr uint64_t kSize = 48 * 1024 * 1024;
  WriteFile("big.ndjson", kSize);
  StartServer();
  RawClient c(port());
  ASSERT_TRUE(c.SendGet("/files/big.ndjson"));
  // The resident set is sampled while the file streams; the client checks each byte as it
  // comes and keeps none, so a growth near the file's size could only be the server's.
  const int64_t before = ResidentBytes();
  std::atomic<bool> done{false};
  std::atomic<int64_t> peak{before};
  std::thread sampler([&] {
    while (!done) {
      int64_t now = ResidentBytes();
      if (now > peak) peak = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  Reply head = c.ReadHead();
  uint64_t offset = 0;
  bool same = true;
  uint64_t got = c.ReadBody(kSize, [&](std::string_view s) {
    for (char ch : s) same = same && static_cast<uint8_t>(ch) == ByteAt(offset++);
  });
  done = true;
  sampler.join();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(got, kSize);
  EXPECT_TRUE(same) << "the body differs from the file";
  EXPECT_LT(peak - before, static_cast<int64_t>(kSize / 4))
      << "the process grew by " << (peak - before) << " bytes while streaming a " << kSize
      << "-byte file";
}

TEST_F(ServerFileTest, ChunkBoundariesDoNotShowInTheBytes) {
  constexpr uint64_t kSize = 1'000'003;
  WriteFile("odd.ndjson", kSize);
  ServerOptions options;
  options.file_chunk_bytes = 4099;  // a prime: no chunk starts at a round offset
  StartServer(options);
  RawClient c(port());
  Reply whole = c.Get("/files/odd.ndjson");
  ASSERT_TRUE(whole.complete);
  EXPECT_TRUE(whole.body == Expected(0, kSize));
  Reply part = c.Get("/files/odd.ndjson", "Range: bytes=5000-500000\r\n");
  ASSERT_EQ(part.status, 206);
  EXPECT_TRUE(part.body == Expected(5000, 495001));
}

TEST_F(ServerFileTest, EachRangeFormServesItsBytesOnOneConnection) {
  constexpr uint64_t kSize = 300'000;
  WriteFile("r.ndjson", kSize);
  StartServer();
  RawClient c(port());
  struct Case {
    std::string range;
    uint64_t first, last;
  };
  for (const Case& k : std::vector<Case>{{"bytes=0-0", 0, 0},
                                         {"bytes=100-199", 100, 199},
                                         {"bytes=250000-", 250000, kSize - 1},
                                         {"bytes=-1000", kSize - 1000, kSize - 1},
                                         {"bytes=299000-999999", 299000, kSize - 1},
                                         {"bytes=-999999", 0, kSize - 1}}) {
    Reply r = c.Get("/files/r.ndjson", "Range: " + k.range + "\r\n");
    ASSERT_EQ(r.status, 206) << k.range;
    ASSERT_TRUE(r.complete) << k.range;
    EXPECT_EQ(r.Header("content-range"), "bytes " + std::to_string(k.first) + "-" +
                                             std::to_string(k.last) + "/" + std::to_string(kSize))
        << k.range;
    EXPECT_EQ(r.Header("content-length"), std::to_string(k.last - k.first + 1)) << k.range;
    EXPECT_TRUE(r.body == Expected(k.first, k.last - k.first + 1)) << k.range;
  }
}

TEST_F(ServerFileTest, UnsatisfiableRangeIs416AndTheConnectionGoesOn) {
  WriteFile("r.ndjson", 1000);
  StartServer();
  RawClient c(port());
  Reply r = c.Get("/files/r.ndjson", "Range: bytes=1000-\r\n");
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.Header("content-range"), "bytes */1000");
  EXPECT_NE(r.body.find("range-not-satisfiable"), std::string::npos) << r.body;
  Reply next = c.Get("/files/r.ndjson");
  EXPECT_EQ(next.status, 200);
  EXPECT_TRUE(next.body == Expected(0, 1000));
}

TEST_F(ServerFileTest, InvalidAndMultipleRangesGetTheWholeFile) {
  WriteFile("r.ndjson", 1000);
  StartServer();
  RawClient c(port());
  for (const char* range : {"bytes=500-100", "bytes=abc", "lines=1-2", "bytes=0-1,5-6"}) {
    Reply r = c.Get("/files/r.ndjson", std::string("Range: ") + range + "\r\n");
    EXPECT_EQ(r.status, 200) << range;
    EXPECT_EQ(r.Header("content-range"), "") << range;
    EXPECT_TRUE(r.body == Expected(0, 1000)) << range;
  }
}

TEST_F(ServerFileTest, IfRangeAppliesTheRangeOnlyToTheSameFile) {
  WriteFile("r.ndjson", 1000);
  StartServer();
  RawClient c(port());
  Reply same = c.Get("/files/r.ndjson", "Range: bytes=900-\r\nIf-Range: \"tag-r.ndjson\"\r\n");
  EXPECT_EQ(same.status, 206);
  EXPECT_TRUE(same.body == Expected(900, 100));
  Reply other = c.Get("/files/r.ndjson", "Range: bytes=900-\r\nIf-Range: \"tag-old\"\r\n");
  EXPECT_EQ(other.status, 200);
  EXPECT_TRUE(other.body == Expected(0, 1000));
  Reply weak = c.Get("/files/r.ndjson", "Range: bytes=900-\r\nIf-Range: W/\"tag-r.ndjson\"\r\n");
  EXPECT_EQ(weak.status, 200);
}

TEST_F(ServerFileTest, IfNoneMatchIs304WithNoBodyAndTheConnectionGoesOn) {
  WriteFile("r.ndjson", 1000);
  StartServer();
  RawClient c(port());
  ASSERT_TRUE(c.SendGet("/files/r.ndjson", "If-None-Match: \"x\", \"tag-r.ndjson\"\r\n"));
  Reply r = c.ReadHead();
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.Header("etag"), "\"tag-r.ndjson\"");
  EXPECT_EQ(r.Header("content-length"), "");  // RFC 9110 §8.6: not the 200's length, so none
  // If a body had followed the 304, it would be read here as the next response's head.
  Reply next = c.Get("/small");
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.body, "{\"small\":true}");
  Reply changed = c.Get("/files/r.ndjson", "If-None-Match: \"tag-old\"\r\n");
  EXPECT_EQ(changed.status, 200);
  EXPECT_EQ(changed.body.size(), 1000u);
}

TEST_F(ServerFileTest, KeepAliveServesTheNextRequestAfterAStreamedFile) {
  constexpr uint64_t kSize = 2 * 1024 * 1024 + 1;
  WriteFile("a.ndjson", kSize);
  WriteFile("empty.ndjson", 0);
  StartServer();
  RawClient c(port());
  Reply first = c.Get("/files/a.ndjson");
  ASSERT_TRUE(first.complete);
  EXPECT_TRUE(first.body == Expected(0, kSize));
  Reply second = c.Get("/files/a.ndjson", "Range: bytes=-10\r\n");
  EXPECT_EQ(second.status, 206);
  EXPECT_TRUE(second.body == Expected(kSize - 10, 10));
  Reply empty = c.Get("/files/empty.ndjson");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.Header("content-length"), "0");
  Reply small = c.Get("/small");
  EXPECT_EQ(small.body, "{\"small\":true}");
  // Two requests sent at once (pipelined) are answered in order.
  ASSERT_TRUE(
      c.Send("GET /files/a.ndjson HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n"
             "GET /files/a.ndjson HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\nConnection: "
             "close\r\n\r\n"));
  Reply p1 = c.Read();
  Reply p2 = c.Read();
  EXPECT_TRUE(p1.body == Expected(0, 10));
  EXPECT_TRUE(p2.body == Expected(10, 10));
  EXPECT_EQ(p2.Header("connection"), "close");
  uint64_t extra = 0;
  EXPECT_TRUE(c.ReadsToClose(&extra));
  EXPECT_EQ(extra, 0u);
}

TEST_F(ServerFileTest, MissingFileIs404AndTheConnectionGoesOn) {
  StartServer();
  RawClient c(port());
  Reply r = c.Get("/files/gone.ndjson");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("file-not-found"), std::string::npos) << r.body;
  EXPECT_EQ(c.Get("/small").status, 200);
}

TEST_F(ServerFileTest, FileUnreadableBeforeAnyByteIsSentIs500) {
  WriteFile("short.ndjson", 100);
  StartServer();
  RawClient c(port());
  Reply r = c.Get("/past-the-end");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("\"internal\""), std::string::npos) << r.body;
  EXPECT_EQ(c.Get("/small").status, 200);
}

TEST_F(ServerFileTest, FileTruncatedWhileStreamingClosesTheConnectionShort) {
  constexpr uint64_t kSize = 32 * 1024 * 1024;
  std::string path = WriteFile("t.ndjson", kSize);
  StartServer();
  {
    RawClient c(port(), /*receive_buffer=*/64 * 1024);
    ASSERT_TRUE(c.SendGet("/files/t.ndjson"));
    Reply head = c.ReadHead();
    ASSERT_EQ(head.status, 200);
    ASSERT_EQ(head.Header("content-length"), std::to_string(kSize));
    std::string start;
    ASSERT_EQ(c.ReadBody(256 * 1024, [&](std::string_view s) { start.append(s); }), 256 * 1024u);
    EXPECT_TRUE(start == Expected(0, 256 * 1024));
    // The server is held back by the client's window, far from the end: cut the file there.
    std::filesystem::resize_file(path, 1024 * 1024);
    uint64_t rest = 0;
    EXPECT_TRUE(c.ReadsToClose(&rest)) << "the connection should close, not hang";
    EXPECT_LT(256 * 1024 + rest, kSize) << "a truncated file cannot give Content-Length bytes";
  }
  // The server goes on serving.
  RawClient next(port());
  Reply r = next.Get("/files/t.ndjson");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == Expected(0, 1024 * 1024));
}

TEST_F(ServerFileTest, FileDeletedWhileStreamingIsStillServedWhole) {
  constexpr uint64_t kSize = 16 * 1024 * 1024;
  std::string path = WriteFile("d.ndjson", kSize);
  StartServer();
  RawClient c(port(), /*receive_buffer=*/64 * 1024);
  ASSERT_TRUE(c.SendGet("/files/d.ndjson"));
  Reply head = c.ReadHead();
  ASSERT_EQ(head.status, 200);
  std::string body;
  ASSERT_EQ(c.ReadBody(64 * 1024, [&](std::string_view s) { body.append(s); }), 64 * 1024u);
  ASSERT_TRUE(std::filesystem::remove(path));
  c.ReadBody(kSize - body.size(), [&](std::string_view s) { body.append(s); });
  // The server reads the descriptor it opened, not the name.
  EXPECT_TRUE(body == Expected(0, kSize));
  EXPECT_EQ(c.Get("/files/d.ndjson").status, 404);
}

TEST_F(ServerFileTest, ServerStoppedDuringADownloadClosesIt) {
  constexpr uint64_t kSize = 16 * 1024 * 1024;
  WriteFile("s.ndjson", kSize);
  StartServer();
  RawClient c(port(), /*receive_buffer=*/64 * 1024);
  ASSERT_TRUE(c.SendGet("/files/s.ndjson"));
  ASSERT_EQ(c.ReadHead().status, 200);
  // The client stalls; the server's shutdown waits a little (Drain), then closes it.
  auto start = Clock::now();
  server_.reset();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  uint64_t got = 0;
  EXPECT_TRUE(c.ReadsToClose(&got));
  EXPECT_LT(got, kSize);
}

TEST_F(ServerFileTest, CurlResumesABrokenDownload) {
  constexpr uint64_t kSize = 3 * 1024 * 1024 + 7;
  WriteFile("c.ndjson", kSize);
  StartServer();
  CurlClient curl;
  // The first attempt broke after 1,000,000 bytes; the client asks for the rest.
  CurlReply rest = curl.Get(url("/files/c.ndjson"), 1'000'000);
  ASSERT_EQ(rest.code, CURLE_OK) << curl_easy_strerror(rest.code);
  EXPECT_EQ(rest.status, 206);
  EXPECT_TRUE(Expected(0, 1'000'000) + rest.body == Expected(0, kSize));
  CurlReply whole = curl.Get(url("/files/c.ndjson"));
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.new_connections, 0) << "the kept-alive connection should be reused";
  EXPECT_TRUE(whole.body == Expected(0, kSize));
}

TEST_F(ServerFileTest, TlsDownloadIsTheFileByteForByte) {
  constexpr uint64_t kSize = 10 * 1024 * 1024 + 5;
  WriteFile("tls.ndjson", kSize);
  ServerOptions options;
  options.file_chunk_bytes = 100'000;  // not a multiple of a TLS record
  StartTlsServer(options);
  CurlClient curl;
  curl.set_ca_file(ca_file_);
  CurlReply whole = curl.Get(url("/files/tls.ndjson", "https"));
  ASSERT_EQ(whole.code, CURLE_OK) << curl_easy_strerror(whole.code);
  EXPECT_EQ(whole.status, 200);
  EXPECT_TRUE(whole.body == Expected(0, kSize)) << "the body differs from the file";
  CurlReply part = curl.Get(url("/files/tls.ndjson", "https"), 0, "Range: bytes=5000000-5999999");
  ASSERT_EQ(part.code, CURLE_OK) << curl_easy_strerror(part.code);
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.new_connections, 0) << "the kept-alive TLS connection should be reused";
  EXPECT_TRUE(part.body == Expected(5'000'000, 1'000'000));
  CurlReply small = curl.Get(url("/small", "https"));
  EXPECT_EQ(small.body, "{\"small\":true}");
  EXPECT_EQ(small.new_connections, 0);
}

TEST_F(ServerFileTest, TlsFileTruncatedWhileStreamingFailsTheDownload) {
  constexpr uint64_t kSize = 32 * 1024 * 1024;
  std::string path = WriteFile("t.ndjson", kSize);
  StartTlsServer();
  CurlClient curl;
  curl.set_ca_file(ca_file_);
  curl.set_receive_buffer(64 * 1024);
  // As soon as the body begins, while the server is held back by the client's window far from
  // the end, the file is cut.
  bool cut = false;
  curl.set_on_body([&](const std::string& body) {
    if (cut) return;
    cut = true;
    std::filesystem::resize_file(path, 0);
  });
  CurlReply r = curl.Get(url("/files/t.ndjson", "https"));
  ASSERT_TRUE(cut);
  EXPECT_EQ(r.status, 200);
  // The connection ends without close_notify, short of Content-Length: libcurl says so.
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_LT(r.body.size(), kSize);
  EXPECT_TRUE(r.body == Expected(0, r.body.size()));
  curl.set_on_body(nullptr);
  CurlReply after = curl.Get(url("/small", "https"));
  EXPECT_EQ(after.code, CURLE_OK) << curl_easy_strerror(after.code);
  EXPECT_EQ(after.status, 200);
}

}  // namespace
}  // namespace redrive::http
