// Every hostile-input limit of the API, just under and just over, against the real binary:
// the request line and headers, the body, JSON nesting, batches, attributes, keys, names,
// filters, page sizes, durations; slow and idle clients; the connection cap. Each "over"
// must get its documented status and error code and store nothing; each "under" must pass
// the limit. docs/api.md#limits lists the same limits.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port, int timeout_ms = 10'000) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads one response (status line, headers, Content-Length body). status 0 when the
// connection closed or timed out before a whole response came.
HttpResult ReadResponse(int fd) {
  std::string in;
  char buf[8192];
  HttpResult r;
  for (;;) {
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t cl = in.find("Content-Length: ");
      size_t length = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
      if (in.size() >= end + 4 + length) {
        r.status = std::stol(in.substr(9, 3));
        r.body = in.substr(end + 4, length);
        return r;
      }
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return r;
    in.append(buf, static_cast<size_t>(n));
  }
}

// One request on a fresh connection, raw bytes as given.
HttpResult RawExchange(int port, const std::string& bytes) {
  int fd = Connect(port);
  if (fd < 0) return {};
  SendAll(fd, bytes);
  HttpResult r = ReadResponse(fd);
  close(fd);
  return r;
}

// A GET whose request line and headers take exactly `total` bytes (with the final CRLF CRLF),
// padded in the target (`in_target`) or in a header.
std::string RequestOfSize(const std::string& path, size_t total, bool in_target) {
  std::string head = "GET " + path;
  std::string tail = " HTTP/1.1\r\nHost: x\r\n";
  std::string end = "\r\n";
  if (in_target) {
    head += "?pad=";
    size_t fixed = head.size() + tail.size() + end.size();
    return head + std::string(total - fixed, 'p') + tail + end;
  }
  std::string name = "X-Pad: ";
  size_t fixed = head.size() + tail.size() + name.size() + 2 + end.size();
  return head + tail + name + std::string(total - fixed, 'p') + "\r\n" + end;
}

std::string UrlEncodeAll(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += UrlEncodeAll(std::string(1, static_cast<char>(c)));
    }
  }
  return out;
}

// A valid filter of exactly `n` bytes.
std::string FilterOfLength(size_t n) {
  std::string head = "/reason eq \"";
  return head + std::string(n - head.size() - 1, 'x') + "\"";
}

// The same comparison `n` times, joined with "and".
std::string FilterWithComparisons(int n) {
  std::string f = "/reason pr";
  for (int i = 1; i < n; ++i) f += " and /reason pr";
  return f;
}

json Messages(int n, const json& extra = json::object()) {
  json batch = json::array();
  for (int i = 0; i < n; ++i) {
    json m = {{"body", "m" + std::to_string(i)}};
    m.update(extra);
    batch.push_back(m);
  }
  return {{"messages", batch}};
}

json Attributes(int n) {
  json a = json::object();
  for (int i = 0; i < n; ++i) a["k" + std::to_string(i)] = "v";
  return a;
}

json FakeReceipts(int n) {
  json r = json::array();
  for (int i = 0; i < n; ++i) r.push_back(std::to_string(i + 1) + ".aaaaaaaaaaaaaaaaaaaaaaaa");
  return r;
}

struct LimitCase {
  std::string limit;
  std::function<HttpResult()> under;
  long under_status;
  std::string under_code;  // "" for a success
  std::function<HttpResult()> over;
  long over_status;
  std::string over_code;
};

// Starts a server (optionally with a config file) with tenant "lim", a token with every scope
// and the queues the cases use.
class LimitsServer {
 public:
  explicit LimitsServer(const std::string& config = "") {
    std::vector<std::string> args;
    if (!config.empty()) {
      config_dir_ = MakeTempDir();
      std::ofstream(config_dir_ + "/redrive.toml") << config;
      args = {"--config", config_dir_ + "/redrive.toml"};
    }
    server_ = std::make_unique<ServerProcess>("", args);
    std::string error;
    if (!server_->Start(&error)) throw std::runtime_error(error);
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    CreateTenant(*op_, "lim");
    app_token_ = CreateToken(*op_, "lim", "app");
    app_ = std::make_unique<HttpClient>(server_->url(), app_token_);
    CreateQueue(*op_, "lim", "q");
    CreateQueue(*op_, "lim", "small", {{"maxMessageSize", 16}});
  }
  ~LimitsServer() {
    server_.reset();
    if (!config_dir_.empty()) std::filesystem::remove_all(config_dir_);
  }

  // What a refused request must not change.
  json Digest() {
    json d;
    d["tenants"] = op_->Get("/v1/tenants").Json();
    d["queues"] = op_->Get("/v1/tenants/lim/queues").Json();
    d["deadLetters"] = op_->Get("/v1/tenants/lim/dead-letter-stats").Json()["total"];
    json labels = json::array();
    const json tokens = op_->Get("/v1/tenants/lim/tokens").Json()["tokens"];
    for (const auto& t : tokens) {
      labels.push_back(t["label"]);
    }
    d["tokens"] = labels;
    return d;
  }

  void Run(const std::vector<LimitCase>& cases) {
    for (const auto& c : cases) {
      SCOPED_TRACE(c.limit);
      json before = Digest();
      HttpResult over = c.over();
      EXPECT_EQ(over.status, c.over_status) << "just over: " << over.body;
      EXPECT_EQ(over.ErrorCode(), c.over_code) << "just over: " << over.body;
      json err = over.Json();
      EXPECT_TRUE(err.is_object() && err["error"].is_object() &&
                  !err["error"].value("message", "").empty())
          << over.body;
      EXPECT_EQ(Digest(), before) << "a request over the limit stored something";
      HttpResult under = c.under();
      EXPECT_EQ(under.status, c.under_status) << "just under: " << under.body;
      EXPECT_EQ(under.ErrorCode(), c.under_code) << "just under: " << under.body;
    }
  }

  // New clients: the old ones' keep-alive connections close.
  void ResetClients() {
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    app_ = std::make_unique<HttpClient>(server_->url(), app_token_);
  }

  int port() const { return server_->port(); }
  HttpClient& op() { return *op_; }
  HttpClient& app() { return *app_; }

 private:
  std::string config_dir_;
  std::string app_token_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_, app_;
};

std::string Q(const std::string& queue, const std::string& tail = "") {
  return "/v1/tenants/lim/queues/" + queue + tail;
}

class LimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new LimitsServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static LimitsServer* server_;
};
LimitsServer* LimitsTest::server_ = nullptr;

TEST_F(LimitsTest, HttpFramingLimits) {
  LimitsServer& s = *server_;
  int port = s.port();
  const size_t kHeaders = 16 * 1024;
  const size_t kBody = 24 * 1024 * 1024;
  s.Run({
      {"request line and headers: 16 KiB (padding in a header)",
       [&] { return RawExchange(port, RequestOfSize("/healthz", kHeaders, false)); }, 200, "",
       [&] { return RawExchange(port, RequestOfSize("/healthz", kHeaders + 1, false)); }, 431,
       "headers-too-large"},
      {"request line and headers: 16 KiB (padding in the target)",
       [&] { return RawExchange(port, RequestOfSize("/v1/nothing", kHeaders, true)); }, 404,
       "not-found",
       [&] { return RawExchange(port, RequestOfSize("/v1/nothing", kHeaders + 1, true)); }, 431,
       "headers-too-large"},
      {"request body: 24 MiB",
       [&] {
         std::string body = Messages(1).dump();
         body.insert(1, std::string(kBody - body.size(), ' '));
         return s.app().Send("POST", Q("q", "/messages"), body);
       },
       201, "",
       [&] {
         // The declared length is enough: the server answers before the body is sent.
         return RawExchange(port, "POST " + Q("q", "/messages") +
                                      " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                      "Content-Length: " +
                                      std::to_string(kBody + 1) + "\r\n\r\n{");
       },
       413, "request-too-large"},
  });
}

TEST_F(LimitsTest, JsonAndMessageLimits) {
  LimitsServer& s = *server_;
  HttpClient& app = s.app();
  auto nested = [](int arrays) {
    // The object is level 1; each array one more.
    return std::string(R"({"messages":)") + std::string(arrays, '[') + std::string(arrays, ']') +
           "}";
  };
  auto publish = [&](const std::string& queue, const json& body) {
    return app.Post(Q(queue, "/messages"), body);
  };
  s.Run({
      {"JSON nesting: 32 levels", [&] { return app.Send("POST", Q("q", "/messages"), nested(31)); },
       400, "invalid-argument", [&] { return app.Send("POST", Q("q", "/messages"), nested(32)); },
       400, "json-too-deep"},
      {"messages per publish: 1000", [&] { return publish("q", Messages(1000)); }, 201, "",
       [&] { return publish("q", Messages(1001)); }, 400, "batch-too-large"},
      {"attributes per message: 32",
       [&] {
         return publish("q", Messages(1, {{"attributes", Attributes(32)}}));
       },
       201, "",
       [&] {
         return publish("q", Messages(1, {{"attributes", Attributes(33)}}));
       },
       400, "too-many-attributes"},
      {"attribute name: 128 bytes",
       [&] {
         return publish("q", Messages(1, {{"attributes", {{std::string(128, 'n'), "v"}}}}));
       },
       201, "",
       [&] {
         return publish("q", Messages(1, {{"attributes", {{std::string(129, 'n'), "v"}}}}));
       },
       400, "attribute-too-large"},
      {"attribute name: not empty",
       [&] {
         return publish("q", Messages(1, {{"attributes", {{"n", "v"}}}}));
       },
       201, "",
       [&] {
         return publish("q", Messages(1, {{"attributes", {{"", "v"}}}}));
       },
       400, "attribute-too-large"},
      {"attribute value: 4096 bytes",
       [&] {
         return publish("q", Messages(1, {{"attributes", {{"n", std::string(4096, 'v')}}}}));
       },
       201, "",
       [&] {
         return publish("q", Messages(1, {{"attributes", {{"n", std::string(4097, 'v')}}}}));
       },
       400, "attribute-too-large"},
      {"idempotency key: 256 bytes",
       [&] {
         return publish("q", Messages(1, {{"idempotencyKey", std::string(256, 'k')}}));
       },
       201, "",
       [&] {
         return publish("q", Messages(1, {{"idempotencyKey", std::string(257, 'k')}}));
       },
       400, "invalid-argument"},
      {"message body: the queue's maxMessageSize",
       [&] {
         return publish("small", {{"messages", {{{"body", std::string(16, 'b')}}}}});
       },
       201, "",
       [&] {
         return publish("small", {{"messages", {{{"body", std::string(17, 'b')}}}}});
       },
       413, "message-too-large"},
      {"maxMessageSize: at most 16 MiB",
       [&] {
         return s.op().Post("/v1/tenants/lim/queues",
                            {{"name", "huge"}, {"attributes", {{"maxMessageSize", 16 << 20}}}});
       },
       201, "",
       [&] {
         return s.op().Post(
             "/v1/tenants/lim/queues",
             {{"name", "too-huge"}, {"attributes", {{"maxMessageSize", (16 << 20) + 1}}}});
       },
       400, "invalid-argument"},
      {"message delay: at most 7d",
       [&] {
         return publish("q", Messages(1, {{"delay", "7d"}}));
       },
       201, "",
       [&] {
         return publish("q", Messages(1, {{"delay", 7 * 86'400'000LL + 1}}));
       },
       400, "invalid-argument"},
  });
}

TEST_F(LimitsTest, ConsumerLimits) {
  LimitsServer& s = *server_;
  HttpClient& app = s.app();
  ASSERT_EQ(s.op().Post("/v1/tenants/lim/queues", {{"name", "c"}}).status, 201);
  auto receive = [&](const json& body) { return app.Post(Q("c", "/receive"), body); };
  auto publish_one = [&] { EXPECT_EQ(app.Post(Q("c", "/messages"), Messages(1)).status, 201); };
  s.Run({
      {"messages per receive: 1000",
       [&] {
         return receive({{"maxMessages", 1000}});
       },
       200, "",
       [&] {
         return receive({{"maxMessages", 1001}});
       },
       400, "invalid-argument"},
      {"long-poll wait: 20s",
       [&] {
         publish_one();  // answers at once, not after 20s
         return receive({{"wait", "20s"}});
       },
       200, "",
       [&] {
         return receive({{"wait", "20001ms"}});
       },
       400, "invalid-argument"},
      {"visibility timeout: at most 12h",
       [&] {
         return receive({{"visibilityTimeout", "12h"}});
       },
       200, "",
       [&] {
         return receive({{"visibilityTimeout", 12 * 3'600'000 + 1}});
       },
       400, "invalid-argument"},
      {"visibility timeout: at least 1s",
       [&] {
         return receive({{"visibilityTimeout", "1s"}});
       },
       200, "",
       [&] {
         return receive({{"visibilityTimeout", "999ms"}});
       },
       400, "invalid-argument"},
      {"consumer: 256 bytes",
       [&] {
         return receive({{"consumer", std::string(256, 'c')}});
       },
       200, "",
       [&] {
         return receive({{"consumer", std::string(257, 'c')}});
       },
       400, "invalid-argument"},
      {"receipts per ack: 1000",
       [&] {
         return app.Post(Q("c", "/ack"), {{"receipts", FakeReceipts(1000)}});
       },
       200, "",
       [&] {
         return app.Post(Q("c", "/ack"), {{"receipts", FakeReceipts(1001)}});
       },
       400, "batch-too-large"},
      {"receipts per extend: 1000",
       [&] {
         return app.Post(Q("c", "/extend"),
                         {{"receipts", FakeReceipts(1000)}, {"visibilityTimeout", "1m"}});
       },
       200, "",
       [&] {
         return app.Post(Q("c", "/extend"),
                         {{"receipts", FakeReceipts(1001)}, {"visibilityTimeout", "1m"}});
       },
       400, "batch-too-large"},
      {"receipts per nack: 1000",
       [&] {
         json nacks = json::array();
         for (const auto& r : FakeReceipts(1000)) nacks.push_back({{"receipt", r}});
         return app.Post(Q("c", "/nack"), {{"nacks", nacks}});
       },
       200, "",
       [&] {
         json nacks = json::array();
         for (const auto& r : FakeReceipts(1001)) nacks.push_back({{"receipt", r}});
         return app.Post(Q("c", "/nack"), {{"nacks", nacks}});
       },
       400, "batch-too-large"},
      {"nack reason: 256 bytes",
       [&] {
         return app.Post(
             Q("c", "/nack"),
             {{"nacks", {{{"receipt", FakeReceipts(1)[0]}, {"reason", std::string(256, 'r')}}}}});
       },
       200, "",
       [&] {
         return app.Post(
             Q("c", "/nack"),
             {{"nacks", {{{"receipt", FakeReceipts(1)[0]}, {"reason", std::string(257, 'r')}}}}});
       },
       400, "invalid-argument"},
  });
}

TEST_F(LimitsTest, NameLimits) {
  LimitsServer& s = *server_;
  std::string n80(80, 'n'), n81(81, 'n');
  s.Run({
      {"tenant name: 80 characters",
       [&] {
         return s.op().Post("/v1/tenants", {{"name", "t" + n80.substr(1)}});
       },
       201, "",
       [&] {
         return s.op().Post("/v1/tenants", {{"name", "t" + n81.substr(1)}});
       },
       400, "invalid-name"},
      {"queue name: 80 characters",
       [&] {
         return s.op().Post("/v1/tenants/lim/queues", {{"name", n80}});
       },
       201, "",
       [&] {
         return s.op().Post("/v1/tenants/lim/queues", {{"name", n81}});
       },
       400, "invalid-name"},
      {"token label: 80 characters",
       [&] {
         return s.op().Post("/v1/tenants/lim/tokens", {{"label", n80}});
       },
       201, "",
       [&] {
         return s.op().Post("/v1/tenants/lim/tokens", {{"label", n81}});
       },
       400, "invalid-name"},
  });
}

TEST_F(LimitsTest, QueryLimits) {
  LimitsServer& s = *server_;
  HttpClient& app = s.app();
  const std::string dl = "/v1/tenants/lim/dead-letters";
  auto query = [&](const std::string& params) { return app.Get(dl + "?" + params); };
  auto filter = [&](const std::string& f) { return query("_queryFilter=" + UrlEncode(f)); };
  auto fields = [](int n) {
    std::string f = "/attributes/k0";
    for (int i = 1; i < n; ++i) f += ",/attributes/k" + std::to_string(i);
    return f;
  };
  auto ids = [](int n) {
    json a = json::array();
    for (int i = 0; i < n; ++i) a.push_back("01NOTADEADLETTER" + std::to_string(100000 + i));
    return a;
  };
  s.Run({
      {"_queryFilter: 4096 bytes", [&] { return filter(FilterOfLength(4096)); }, 200, "",
       [&] { return filter(FilterOfLength(4097)); }, 400, "invalid-query"},
      {"_queryFilter: 32 levels of '('",
       [&] { return filter(std::string(32, '(') + "/reason pr" + std::string(32, ')')); }, 200, "",
       [&] { return filter(std::string(33, '(') + "/reason pr" + std::string(33, ')')); }, 400,
       "invalid-query"},
      {"_queryFilter: 256 comparisons", [&] { return filter(FilterWithComparisons(256)); }, 200, "",
       [&] { return filter(FilterWithComparisons(257)); }, 400, "invalid-query"},
      {"filter in an action body: 4096 bytes",
       [&] {
         return app.Post(dl + "/restore", {{"filter", FilterOfLength(4096)}});
       },
       200, "",
       [&] {
         return app.Post(dl + "/restore", {{"filter", FilterOfLength(4097)}});
       },
       400, "invalid-query"},
      {"_pageSize: 1000", [&] { return query("_pageSize=1000"); }, 200, "",
       [&] { return query("_pageSize=1001"); }, 400, "invalid-query"},
      {"_pageSize: at least 1", [&] { return query("_pageSize=1"); }, 200, "",
       [&] { return query("_pageSize=0"); }, 400, "invalid-query"},
      {"audit _pageSize: 1000", [&] { return app.Get("/v1/tenants/lim/audit?_pageSize=1000"); },
       200, "", [&] { return app.Get("/v1/tenants/lim/audit?_pageSize=1001"); }, 400,
       "invalid-query"},
      {"_fields: 64 entries", [&] { return query("_fields=" + UrlEncode(fields(64))); }, 200, "",
       [&] { return query("_fields=" + UrlEncode(fields(65))); }, 400, "invalid-query"},
      {"_sortKeys: 8 entries", [&] { return query("_sortKeys=" + UrlEncode(fields(8))); }, 200, "",
       [&] { return query("_sortKeys=" + UrlEncode(fields(9))); }, 400, "invalid-query"},
      {"ids per dead-letter action: 10000",
       [&] {
         return app.Post(dl + "/delete", {{"ids", ids(10'000)}});
       },
       200, "",
       [&] {
         return app.Post(dl + "/delete", {{"ids", ids(10'001)}});
       },
       400, "batch-too-large"},
      {"redrive job rate: 10,000,000 per second",
       [&] {
         return app.Post("/v1/tenants/lim/redrive-jobs", {{"rate", 10'000'000}, {"dryRun", true}});
       },
       200, "",
       [&] {
         return app.Post("/v1/tenants/lim/redrive-jobs", {{"rate", 10'000'001}, {"dryRun", true}});
       },
       400, "invalid-argument"},
      {"redrive job canary.count: 100,000",
       [&] {
         return app.Post("/v1/tenants/lim/redrive-jobs",
                         {{"canary", {{"count", 100'000}}}, {"dryRun", true}});
       },
       200, "",
       [&] {
         return app.Post("/v1/tenants/lim/redrive-jobs",
                         {{"canary", {{"count", 100'001}}}, {"dryRun", true}});
       },
       400, "invalid-argument"},
      {"redrive job canary.count: at least 1",
       [&] {
         return app.Post("/v1/tenants/lim/redrive-jobs",
                         {{"canary", {{"count", 1}}}, {"dryRun", true}});
       },
       200, "",
       [&] {
         return app.Post("/v1/tenants/lim/redrive-jobs",
                         {{"canary", {{"count", 0}}}, {"dryRun", true}});
       },
       400, "invalid-argument"},
  });
}

// A filter at its 4096-byte limit still fits the 16 KiB request line when every byte of it is
// percent-encoded (three bytes each): the request-line limit never cuts a valid query short.
TEST_F(LimitsTest, AMaximalFilterFullyPercentEncodedFitsTheRequestLine) {
  std::string encoded = UrlEncodeAll(FilterOfLength(4096));
  ASSERT_GT(encoded.size(), 12'000u);
  auto r = server_->app().Get("/v1/tenants/lim/dead-letters?_queryFilter=" + encoded +
                              "&_pageSize=1000&_totalPagedResultsPolicy=EXACT");
  EXPECT_EQ(r.status, 200) << r.body;
}

// The nack error text is cut at 8192 bytes, never refused: a consumer's stack trace must not
// turn a nack into a failure.
TEST_F(LimitsTest, NackErrorIsCutNotRefused) {
  LimitsServer& s = *server_;
  ASSERT_EQ(s.op().Post("/v1/tenants/lim/queues", {{"name", "cut"}}).status, 201);
  ASSERT_EQ(s.app().Post(Q("cut", "/messages"), Messages(1)).status, 201);
  auto got = s.app().Post(Q("cut", "/receive"), json::object()).Json()["messages"];
  ASSERT_EQ(got.size(), 1u);
  auto nack = s.app().Post(Q("cut", "/nack"), {{"nacks",
                                                {{{"receipt", got[0]["receipt"]},
                                                  {"deadLetter", true},
                                                  {"error", std::string(9000, 'e')}}}}});
  ASSERT_EQ(nack.status, 200) << nack.body;
  EXPECT_EQ(nack.Json()["succeeded"], 1);
  auto d = s.app().Get("/v1/tenants/lim/dead-letters/" + got[0]["id"].get<std::string>());
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.Json()["cause"].get<std::string>(), std::string(8192, 'e'));
}

// The server settings move the limits: the same checks against small configured values, and
// the limits that take time (slow and idle clients) with short timeouts.
class ConfiguredLimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new LimitsServer(
        "[server]\nrequest_timeout = \"1s\"\nidle_timeout = \"1s\"\nmax_connections = 6\n"
        "max_body_bytes = 2048\nmax_header_bytes = 2048\n\n"
        "[limits]\nmax_batch = 5\nmax_receive = 5\nmax_attributes = 2\n");
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static LimitsServer* server_;
};
LimitsServer* ConfiguredLimitsTest::server_ = nullptr;

TEST_F(ConfiguredLimitsTest, ConfiguredValuesAreTheLimits) {
  LimitsServer& s = *server_;
  int port = s.port();
  HttpClient& app = s.app();
  auto padded = [](size_t size) {
    std::string body = Messages(1).dump();
    body.insert(1, std::string(size - body.size(), ' '));
    return body;
  };
  s.Run({
      {"server.max_header_bytes",
       [&] { return RawExchange(port, RequestOfSize("/healthz", 2048, false)); }, 200, "",
       [&] { return RawExchange(port, RequestOfSize("/healthz", 2049, false)); }, 431,
       "headers-too-large"},
      {"server.max_body_bytes", [&] { return app.Send("POST", Q("q", "/messages"), padded(2048)); },
       201, "", [&] { return app.Send("POST", Q("q", "/messages"), padded(2049)); }, 413,
       "request-too-large"},
      {"limits.max_batch", [&] { return app.Post(Q("q", "/messages"), Messages(5)); }, 201, "",
       [&] { return app.Post(Q("q", "/messages"), Messages(6)); }, 400, "batch-too-large"},
      {"limits.max_batch (receipts)",
       [&] {
         return app.Post(Q("q", "/ack"), {{"receipts", FakeReceipts(5)}});
       },
       200, "",
       [&] {
         return app.Post(Q("q", "/ack"), {{"receipts", FakeReceipts(6)}});
       },
       400, "batch-too-large"},
      {"limits.max_receive",
       [&] {
         return app.Post(Q("q", "/receive"), {{"maxMessages", 5}});
       },
       200, "",
       [&] {
         return app.Post(Q("q", "/receive"), {{"maxMessages", 6}});
       },
       400, "invalid-argument"},
      {"limits.max_attributes",
       [&] {
         return app.Post(Q("q", "/messages"), Messages(1, {{"attributes", Attributes(2)}}));
       },
       201, "",
       [&] {
         return app.Post(Q("q", "/messages"), Messages(1, {{"attributes", Attributes(3)}}));
       },
       400, "too-many-attributes"},
  });
}

// A request must arrive whole within request_timeout from its first byte, however steadily
// its bytes trickle in (slowloris); one that makes it in time is served.
TEST_F(ConfiguredLimitsTest, SlowClientsAreTimedOut) {
  int port = server_->port();
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

  // Under: the request in two parts 300ms apart.
  int fd = Connect(port);
  ASSERT_GE(fd, 0);
  SendAll(fd, request.substr(0, 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  SendAll(fd, request.substr(10));
  EXPECT_EQ(ReadResponse(fd).status, 200);
  close(fd);

  // Over: one byte every 100ms, never finishing the headers.
  fd = Connect(port);
  ASSERT_GE(fd, 0);
  auto start = Clock::now();
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    std::string endless = "GET /healthz HTTP/1.1\r\nX-Slow: " + std::string(1000, 's');
    for (size_t i = 0; i < endless.size() && !stop; ++i) {
      if (send(fd, &endless[i], 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  HttpResult r = ReadResponse(fd);
  auto took = Clock::now() - start;
  stop = true;
  drip.join();
  close(fd);
  EXPECT_EQ(r.status, 408) << r.body;
  EXPECT_EQ(r.ErrorCode(), "request-timeout");
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::milliseconds(3000));
}

// A keep-alive connection that stays idle past idle_timeout is closed without an answer; one
// used again in time is served.
TEST_F(ConfiguredLimitsTest, IdleKeepAliveConnectionsAreClosed) {
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  SendAll(fd, request);
  ASSERT_EQ(ReadResponse(fd).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  SendAll(fd, request);
  ASSERT_EQ(ReadResponse(fd).status, 200) << "used again within idle_timeout";
  auto start = Clock::now();
  char c;
  ssize_t n = recv(fd, &c, 1, 0);  // blocks until the server closes (or 10s pass)
  auto took = Clock::now() - start;
  close(fd);
  EXPECT_EQ(n, 0) << "the server closes the idle connection, sending nothing";
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::milliseconds(3000));
}

// Connections beyond max_connections are refused at once with 503, before any byte of a
// request is read; the last one within the limit is served.
TEST_F(ConfiguredLimitsTest, ConnectionsBeyondTheCapAreRefusedEarly) {
  const int kCap = 6;
  int port = server_->port();
  server_->ResetClients();  // their keep-alive connections would count against the cap
  // Hold kCap connections, each in the middle of a request. The server may still be closing
  // the clients' old connections: until it has, one of ours is refused; try again.
  std::vector<int> held;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    for (int i = 0; i < kCap; ++i) {
      int fd = Connect(port);
      ASSERT_GE(fd, 0);
      SendAll(fd, "G");
      held.push_back(fd);
    }
    std::vector<pollfd> fds;
    for (int fd : held) fds.push_back(pollfd{fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 150) == 0) break;  // none refused
    for (int fd : held) close(fd);
    held.clear();
    ASSERT_LT(Clock::now(), deadline) << "the server never accepted " << kCap << " connections";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Over: one more is refused without sending anything.
  int extra = Connect(port);
  ASSERT_GE(extra, 0);
  HttpResult r = ReadResponse(extra);
  close(extra);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.ErrorCode(), "server-busy");
  // Under: the last connection within the cap finishes its request and is served.
  SendAll(held.back(), "ET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ReadResponse(held.back()).status, 200);
  for (int fd : held) close(fd);
}

}  // namespace
}  // namespace redrive::testing
