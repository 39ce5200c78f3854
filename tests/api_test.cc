// Drives the real `redrive serve` binary over HTTP: the behaviour a user of the REST API sees.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <sstream>

#include "tests/harness.h"

namespace redrive::testing {
namespace {

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Boot(); }
  void Boot(std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>("", std::move(args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    op_ = std::make_unique<HttpClient>(server_->url(), server_->operator_token());
    CreateTenant(*op_, "acme");
    token_ = CreateToken(*op_, "acme", "app");
    app_ = std::make_unique<HttpClient>(server_->url(), token_);
  }
  std::string Q(const std::string& queue, const std::string& tail = "") {
    return "/v1/tenants/acme/queues/" + queue + tail;
  }
  json Receive(const std::string& queue, int max = 10, const std::string& wait = "0s") {
    auto r = app_->Post(Q(queue, "/receive"), {{"maxMessages", max}, {"wait", wait}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json()["messages"];
  }
  // Whether the token labelled `label` has been used: the server sets a token's lastUsedAt as
  // it authenticates a request, after reading the whole request and before handling it.
  bool TokenUsed(const std::string& label) {
    json answer = app_->Get("/v1/tenants/acme/tokens").Json();
    if (!answer.is_object() || !answer["tokens"].is_array()) return false;
    for (const auto& t : answer["tokens"]) {
      if (t.value("label", "") == label) {
        return t.contains("lastUsedAt") && !t.at("lastUsedAt").is_null();
      }
    }
    return false;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> op_, app_;
  std::string token_;
};

TEST_F(ApiTest, ProbesAnswerWithoutAToken) {
  HttpClient anon(server_->url());
  EXPECT_EQ(anon.Get("/healthz").status, 200);
  EXPECT_EQ(anon.Get("/readyz").status, 200);
  EXPECT_EQ(anon.Get("/metrics").status, 401);
  EXPECT_EQ(app_->Get("/metrics").status, 403);
}

TEST_F(ApiTest, PublishReceiveAckRoundTripInBatches) {
  CreateQueue(*op_, "acme", "orders");
  json batch = json::array();
  for (int i = 0; i < 100; ++i) {
    batch.push_back(
        {{"body", "message " + std::to_string(i)}, {"attributes", {{"n", std::to_string(i)}}}});
  }
  auto pub = app_->Post(Q("orders", "/messages"), {{"messages", batch}});
  ASSERT_EQ(pub.status, 201) << pub.body;
  ASSERT_EQ(pub.Json()["messages"].size(), 100u);
  auto q = app_->Get(Q("orders")).Json();
  EXPECT_EQ(q["depth"]["ready"], 100);

  auto got = Receive("orders", 100);
  ASSERT_EQ(got.size(), 100u);
  EXPECT_EQ(got[0]["body"], "message 0");
  EXPECT_EQ(got[0]["attributes"]["n"], "0");
  EXPECT_EQ(got[0]["deliveryCount"], 1);
  EXPECT_EQ(got[0]["id"], pub.Json()["messages"][0]["id"]);
  json receipts = json::array();
  for (const auto& m : got) receipts.push_back(m["receipt"]);
  auto ack = app_->Post(Q("orders", "/ack"), {{"receipts", receipts}});
  ASSERT_EQ(ack.status, 200) << ack.body;
  EXPECT_EQ(ack.Json()["succeeded"], 100);
  q = app_->Get(Q("orders")).Json();
  EXPECT_EQ(q["depth"]["ready"], 0);
  EXPECT_EQ(q["depth"]["leased"], 0);
}

TEST_F(ApiTest, BinaryBodiesTravelAsBase64AndComeBackIdentical) {
  CreateQueue(*op_, "acme", "bin");
  auto pub =
      app_->Post(Q("bin", "/messages"), {{"messages", {{{"body", "AP8Q/w=="}, {"base64", true}}}}});
  ASSERT_EQ(pub.status, 201) << pub.body;
  auto got = Receive("bin");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["base64"], true);
  EXPECT_EQ(got[0]["body"], "AP8Q/w==");
  auto bad = app_->Post(Q("bin", "/messages"),
                        {{"messages", {{{"body", "not base64!"}, {"base64", true}}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorCode(), "invalid-base64");
}

TEST_F(ApiTest, FailingMessageComesBackWithBackoffThenDeadLetters) {
  CreateQueue(*op_, "acme", "hooks",
              {{"retryPolicy",
                {{"maxDeliveries", 3}, {"backoff", {{"initial", "200ms"}, {"jitter", 0}}}}}});
  auto pub =
      app_->Post(Q("hooks", "/messages"),
                 {{"messages", {{{"body", R"({"user":"jdoe"})"}, {"idempotencyKey", "k1"}}}}});
  std::string id = pub.Json()["messages"][0]["id"];
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto got = Receive("hooks", 1, "5s");
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0]["deliveryCount"], attempt);
    auto nack = app_->Post(Q("hooks", "/nack"),
                           {{"nacks",
                             {{{"receipt", got[0]["receipt"]},
                               {"reason", "endpoint-error"},
                               {"error", "HTTP 503 from https://example.invalid/hook"}}}}});
    ASSERT_EQ(nack.status, 200) << nack.body;
    EXPECT_EQ(nack.Json()["succeeded"], 1);
  }
  EXPECT_TRUE(Receive("hooks", 1, "500ms").empty());
  auto dl = app_->Get("/v1/tenants/acme/dead-letters/" + id);
  ASSERT_EQ(dl.status, 200) << dl.body;
  auto d = dl.Json();
  EXPECT_EQ(d["reason"], "max-deliveries");
  EXPECT_EQ(d["origin"], "hooks");
  EXPECT_EQ(d["deadLetterQueue"], "dead-letters");
  EXPECT_EQ(d["cause"], "HTTP 503 from https://example.invalid/hook");
  EXPECT_EQ(d["body"], R"({"user":"jdoe"})");
  EXPECT_EQ(d["idempotencyKey"], "k1");
  EXPECT_EQ(d["deliveryCount"], 3);
  ASSERT_EQ(d["attempts"].size(), 3u);
  EXPECT_EQ(d["attempts"][0]["reason"], "endpoint-error");
  auto list = app_->Get(
      "/v1/tenants/acme/"
      "dead-letters?origin=hooks&_queryFilter=%2Freason%20eq%20%22max-deliveries%22");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.Json()["result"].size(), 1u);
  EXPECT_EQ(list.Json()["totalPagedResults"], 1);
  auto queues = app_->Get("/v1/tenants/acme/queues").Json()["queues"];
  bool saw_dlq = false;
  for (const auto& q : queues) {
    if (q["name"] == "dead-letters") {
      saw_dlq = true;
      EXPECT_EQ(q["kind"], "dead-letter");
      EXPECT_EQ(q["depth"]["ready"], 1);
    }
    if (q["name"] == "hooks") EXPECT_EQ(q["depth"]["deadLettered"], 1);
  }
  EXPECT_TRUE(saw_dlq);
  auto metrics = op_->Get("/metrics");
  EXPECT_NE(metrics.body.find("redrive_messages_dead_lettered_total{reason=\"max-deliveries\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("redrive_queue_depth{tenant=\"acme\",queue=\"hooks\""),
            std::string::npos);
  EXPECT_NE(metrics.body.find("redrive_http_request_duration_seconds_count{route=\"nack\"} 3"),
            std::string::npos);
}

TEST_F(ApiTest, LongPollIsWokenByAPublish) {
  CreateQueue(*op_, "acme", "wake");
  std::string waiter_token = CreateToken(*op_, "acme", "waiter");
  auto waiter = std::async(std::launch::async, [&] {
    HttpClient c(server_->url(), waiter_token);
    auto start = std::chrono::steady_clock::now();
    auto r = c.Post(Q("wake", "/receive"), {{"wait", "20s"}});
    return std::make_pair(r, std::chrono::steady_clock::now() - start);
  });
  // Publish only once the server has the receive, so that the publish wakes it.
  ASSERT_TRUE(Eventually([&] { return TokenUsed("waiter"); })) << "the receive never arrived";
  ASSERT_EQ(app_->Post(Q("wake", "/messages"), {{"messages", {{{"body", "hi"}}}}}).status, 201);
  auto [r, waited] = waiter.get();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["messages"].size(), 1u);
  EXPECT_LT(waited, std::chrono::seconds(3));
}

TEST_F(ApiTest, BadInputGetsAStableErrorAndChangesNothing) {
  CreateQueue(*op_, "acme", "orders", {{"maxMessageSize", 16}});
  struct Case {
    std::string method, path, body, content_type;
    long status;
    std::string code;
  };
  std::string deep(40, '[');
  deep += std::string(40, ']');
  std::vector<Case> cases = {
      {"POST", Q("orders", "/messages"), R"({"messages":[{"body":"x","colour":"red"}]})",
       "application/json", 400, "unknown-field"},
      {"POST", Q("orders", "/messages"), R"({"messages":[{"body":"x"}],)", "application/json", 400,
       "invalid-json"},
      {"POST", Q("orders", "/messages"), R"({"messages":)" + deep + "}", "application/json", 400,
       "json-too-deep"},
      {"POST", Q("orders", "/messages"), R"({"messages":[{"body":"x"}]})", "text/plain", 415,
       "unsupported-media-type"},
      {"POST", Q("orders", "/messages"),
       R"({"messages":[{"body":"ok"},{"body":"this body is too long"}]})", "application/json", 413,
       "message-too-large"},
      {"POST", Q("orders", "/messages"), R"({"messages":[]})", "application/json", 400,
       "empty-batch"},
      {"POST", Q("orders", "/messages"), R"({"messages":[{"body":1}]})", "application/json", 400,
       "missing-field"},
      {"POST", Q("orders", "/messages"), R"({"messages":[{"body":"x","delay":"soon"}]})",
       "application/json", 400, "invalid-duration"},
      {"POST", Q("nope", "/messages"), R"({"messages":[{"body":"x"}]})", "application/json", 404,
       "queue-not-found"},
      {"POST", Q("orders", "/receive"), R"({"maxMessages":0})", "application/json", 400,
       "invalid-argument"},
      {"POST", Q("orders", "/receive"), R"({"wait":"21s"})", "application/json", 400,
       "invalid-argument"},
      {"POST", Q("orders", "/ack"), R"({"receipts":[]})", "application/json", 400, "empty-batch"},
      {"POST", "/v1/tenants/acme/queues", R"({"name":"bad name"})", "application/json", 400,
       "invalid-name"},
      {"POST", "/v1/tenants/acme/queues", R"({"name":"q2","attributes":{"visibility":"1s"}})",
       "application/json", 400, "unknown-field"},
      {"POST", "/v1/tenants/acme/queues", R"({"name":"orders"})", "application/json", 409,
       "already-exists"},
      {"PUT", Q("orders"), "{}", "application/json", 405, "method-not-allowed"},
      {"GET", "/v1/nothing-here", "", "", 404, "not-found"},
      {"GET", "/v1/tenants/acme/dead-letters?colour=red", "", "", 400, "unknown-field"},
      {"GET", "/v1/tenants/acme/dead-letters?_pageSize=abc", "", "", 400, "invalid-query"},
      {"GET", "/v1/tenants/acme/dead-letters?_pagedResultsCookie=abc", "", "", 400,
       "invalid-query"},
      {"GET", "/v1/tenants/acme/dead-letters?_queryFilter=%2Freason%20is%20x", "", "", 400,
       "invalid-query"},
      {"GET", "/v1/tenants/acme/dead-letters/01NOPE", "", "", 404, "dead-letter-not-found"},
      {"POST", Q("dead-letters", "/messages"), R"({"messages":[{"body":"x"}]})", "application/json",
       409, "dead-letter-queue-read-only"},
      {"POST", Q("dead-letters", "/receive"), R"({})", "application/json", 409,
       "dead-letter-queue-read-only"},
      {"POST", Q("orders", "/messages"), R"({"messages":[{"body":"x"}]})", "application/jsonx", 415,
       "unsupported-media-type"},
      // An encoded slash stays inside its segment: a queue name, not two path segments.
      {"GET", Q("a%2Fb"), "", "", 404, "queue-not-found"},
      {"GET", Q("bad%zz"), "", "", 400, "invalid-argument"},
      {"GET", "/v1/tenants/acme?verbose=1", "", "", 400, "unknown-field"},
      {"DELETE", Q("orders") + "?force=1", "", "", 400, "unknown-field"},
      {"POST", Q("orders", "/nack"),
       R"({"nacks":[{"receipt":"1.aaaaaaaaaaaaaaaaaaaaaaaa","consumer":")" + std::string(300, 'c') +
           R"("}]})",
       "application/json", 400, "invalid-argument"},
  };
  for (const auto& c : cases) {
    auto r = op_->Send(c.method, c.path, c.body, c.content_type);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.body << " -> " << r.body;
    EXPECT_EQ(r.ErrorCode(), c.code) << c.method << " " << c.path << " " << c.body;
    EXPECT_FALSE(r.Json()["error"]["message"].get<std::string>().empty());
  }
  auto q = app_->Get(Q("orders")).Json();
  EXPECT_EQ(q["depth"]["ready"], 0) << "a refused batch must store nothing";
  // The media type is matched case-insensitively and may carry parameters.
  auto ok = op_->Send("POST", Q("orders", "/messages"), R"({"messages":[{"body":"x"}]})",
                      "Application/JSON; charset=utf-8");
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(app_->Get(Q("nope")).status, 404) << "a failed publish must not create a queue";
  EXPECT_EQ(app_->Get(Q("q2")).status, 404);
}

TEST_F(ApiTest, TokensAreScopedToTheirTenant) {
  CreateTenant(*op_, "beta");
  CreateQueue(*op_, "beta", "secret");
  CreateQueue(*op_, "acme", "orders");
  HttpClient anon(server_->url());
  auto r = anon.Get(Q("orders"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.ErrorCode(), "unauthenticated");
  // Another tenant's resources look exactly like missing ones.
  r = app_->Get("/v1/tenants/beta/queues/secret");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.ErrorCode(), "tenant-not-found");
  EXPECT_EQ(app_->Get("/v1/tenants/ghost/queues/secret").ErrorCode(), "tenant-not-found");
  EXPECT_EQ(app_->Post("/v1/tenants/beta/queues/secret/messages", {{"messages", {{{"body", "x"}}}}})
                .status,
            404);
  EXPECT_EQ(app_->Get("/v1/tenants").status, 403);
  std::string publisher = CreateToken(*op_, "acme", "producer", {"publish"});
  HttpClient pub(server_->url(), publisher);
  EXPECT_EQ(pub.Post(Q("orders", "/messages"), {{"messages", {{{"body", "x"}}}}}).status, 201);
  r = pub.Post(Q("orders", "/receive"), json::object());
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.ErrorCode(), "forbidden");
  // Revocation takes effect at once.
  auto tokens = app_->Get("/v1/tenants/acme/tokens").Json()["tokens"];
  std::string id;
  for (const auto& t : tokens) {
    EXPECT_FALSE(t.contains("token")) << "secrets are shown once only";
    if (t["label"] == "producer") id = t["id"];
  }
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(app_->Delete("/v1/tenants/acme/tokens/" + id).status, 204);
  EXPECT_EQ(pub.Post(Q("orders", "/messages"), {{"messages", {{{"body", "x"}}}}}).status, 401);
}

TEST_F(ApiTest, QueueAttributesCanBeChangedAndQueuesDeleted) {
  CreateQueue(*op_, "acme", "orders");
  auto r = op_->Patch(Q("orders"), {{"attributes", {{"visibilityTimeout", "2m"}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["visibilityTimeout"], "2m");
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["maxDeliveries"], 10);
  ASSERT_EQ(app_->Post(Q("orders", "/messages"), {{"messages", {{{"body", "x"}}}}}).status, 201);
  EXPECT_EQ(op_->Delete(Q("orders")).status, 204);
  EXPECT_EQ(op_->Get(Q("orders")).status, 404);
  EXPECT_EQ(op_->Delete(Q("orders")).status, 404);
}

TEST_F(ApiTest, DataSurvivesARestart) {
  CreateQueue(*op_, "acme", "orders");
  ASSERT_EQ(app_->Post(Q("orders", "/messages"), {{"messages", {{{"body", "durable"}}}}}).status,
            201);
  std::string dir = server_->data_dir();
  auto restarted = std::make_unique<ServerProcess>(dir);
  EXPECT_EQ(server_->Stop(), 0);
  std::string error;
  ASSERT_TRUE(restarted->Start(&error)) << error;
  HttpClient app(restarted->url(), token_);
  auto r = app.Post(Q("orders", "/receive"), json::object());
  ASSERT_EQ(r.Json()["messages"].size(), 1u) << r.body;
  EXPECT_EQ(r.Json()["messages"][0]["body"], "durable");
  restarted->Stop();
}

TEST_F(ApiTest, SigtermEndsLongPollsAndExitsCleanly) {
  CreateQueue(*op_, "acme", "idle");
  std::string waiter_token = CreateToken(*op_, "acme", "waiter");
  auto waiter = std::async(std::launch::async, [&] {
    HttpClient c(server_->url(), waiter_token);
    return c.Post(Q("idle", "/receive"), {{"wait", "20s"}});
  });
  // SIGTERM only once the server has the long poll in hand.
  ASSERT_TRUE(Eventually([&] { return TokenUsed("waiter"); })) << "the receive never arrived";
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  auto r = waiter.get();
  EXPECT_EQ(r.status, 200) << "the in-flight long poll gets its (empty) answer";
  EXPECT_TRUE(r.Json()["messages"].empty());
}

// Raw sockets, for what an HTTP library would not send.
int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
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

// Connections waiting in the accept queue of the socket listening on `port`, or -1 when there is
// none: for a listening socket, the rx_queue column of /proc/net/tcp (or tcp6) is that count.
int AcceptQueueLength(int port) {
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the column titles
    while (std::getline(in, line)) {
      // "sl local_address rem_address st tx_queue:rx_queue ...", addresses as HEXIP:HEXPORT.
      std::istringstream row(line);
      std::string slot, local, remote, state, queues;
      row >> slot >> local >> remote >> state >> queues;
      constexpr char kListen[] = "0A";
      size_t colon = local.rfind(':'), queue_colon = queues.find(':');
      if (state != kListen || colon == std::string::npos || queue_colon == std::string::npos) {
        continue;
      }
      if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
      return std::stoi(queues.substr(queue_colon + 1), nullptr, 16);
    }
  }
  return -1;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

TEST_F(ApiTest, OversizedHeadersAndBodiesAreRefusedBeforeTheHandler) {
  std::vector<std::string> headers = {"X-Big: " + std::string(20'000, 'a')};
  auto r = op_->Send("GET", "/healthz", "", "", headers);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.ErrorCode(), "headers-too-large");
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  std::string req =
      "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 999999999\r\n\r\n{";
  send(fd, req.data(), req.size(), 0);
  std::string resp = ReadAll(fd);
  close(fd);
  EXPECT_NE(resp.find("413"), std::string::npos) << resp;
  EXPECT_NE(resp.find("request-too-large"), std::string::npos) << resp;
}

class ApiLimitsTest : public ApiTest {
 protected:
  void SetUp() override {
    config_ = MakeTempDir() + "/redrive.toml";
    std::ofstream(config_) << "[server]\nrequest_timeout = \"1s\"\nmax_connections = 4\n\n"
                              "[[tenants]]\nname = \"declared\"\n"
                              "  [[tenants.queues]]\n  name = \"jobs\"\n"
                              "  retryPolicy = { maxDeliveries = 4 }\n";
    Boot({"--config", config_});
  }
  std::string config_;
};

TEST_F(ApiLimitsTest, SlowClientsAreTimedOut) {
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  send(fd, partial.data(), partial.size(), 0);
  auto start = std::chrono::steady_clock::now();
  std::string resp = ReadAll(fd);
  close(fd);
  EXPECT_NE(resp.find("408"), std::string::npos) << resp;
  EXPECT_NE(resp.find("request-timeout"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(ApiLimitsTest, ConnectionsBeyondTheLimitAreRefusedEarly) {
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    int fd = Connect(server_->port());
    ASSERT_GE(fd, 0);
    send(fd, "G", 1, 0);  // a request in progress keeps the connection busy
    held.push_back(fd);
  }
  // The server takes connections in the order they came: once it has taken these off its
  // accept queue, each was counted (or refused), and the next one is over the limit.
  ASSERT_TRUE(Eventually([&] { return AcceptQueueLength(server_->port()) == 0; }))
      << "accept queue: " << AcceptQueueLength(server_->port());
  int extra = Connect(server_->port());
  ASSERT_GE(extra, 0);
  std::string resp = ReadAll(extra);
  close(extra);
  EXPECT_NE(resp.find("503"), std::string::npos) << resp;
  EXPECT_NE(resp.find("server-busy"), std::string::npos) << resp;
  for (int fd : held) close(fd);
}

TEST_F(ApiLimitsTest, TenantsAndQueuesDeclaredInTheConfigExist) {
  auto r = op_->Get("/v1/tenants/declared/queues/jobs");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["maxDeliveries"], 4);
}

}  // namespace
// A retry schedule over HTTP: a preset by name, shown back by name; a list; bad ones refused
// with the field named, and the queue left as it was.
TEST_F(ApiTest, RetrySchedulesAreSetByPresetOrListAndBadOnesChangeNothing) {
  auto r =
      app_->Post("/v1/tenants/acme/queues",
                 {{"name", "hooks"}, {"attributes", {{"retryPolicy", {{"schedule", "akamai"}}}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["schedule"], "akamai");
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["maxDeliveries"], 6);

  r = app_->Patch(Q("hooks"), {{"attributes", {{"retryPolicy", {{"schedule", "weekly"}}}}}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.ErrorCode(), "invalid-argument");
  EXPECT_NE(r.body.find("retryPolicy.schedule"), std::string::npos) << r.body;
  r = app_->Patch(Q("hooks"), {{"attributes", {{"retryPolicy", {{"maxDeliveries", 3}}}}}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(app_->Get(Q("hooks")).Json()["attributes"]["retryPolicy"]["schedule"], "akamai");

  r = app_->Patch(Q("hooks"),
                  {{"attributes", {{"retryPolicy", {{"schedule", {"1s", "10s", "1m"}}}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["schedule"], (json{"1s", "10s", "1m"}));
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["maxDeliveries"], 4);
}

// onExhausted reroute over HTTP: the destination must exist first; then an exhausted message
// arrives there, and the metric counts it.
TEST_F(ApiTest, RerouteSendsExhaustedMessagesToAnotherQueue) {
  json reroute = {
      {"retryPolicy",
       {{"maxDeliveries", 1}, {"onExhausted", "reroute"}, {"rerouteTo", "orders-slow"}}}};
  auto r = app_->Post("/v1/tenants/acme/queues", {{"name", "orders"}, {"attributes", reroute}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.ErrorCode(), "invalid-argument");
  EXPECT_EQ(app_->Get(Q("orders")).status, 404);
  ASSERT_EQ(app_->Post("/v1/tenants/acme/queues", {{"name", "orders-slow"}}).status, 201);
  r = app_->Post("/v1/tenants/acme/queues", {{"name", "orders"}, {"attributes", reroute}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["attributes"]["retryPolicy"]["rerouteTo"], "orders-slow");

  ASSERT_EQ(app_->Post(Q("orders", "/messages"), {{"messages", {{{"body", "x"}}}}}).status, 201);
  json got = Receive("orders");
  ASSERT_EQ(got.size(), 1u);
  r = app_->Post(Q("orders", "/nack"),
                 {{"nacks", {{{"receipt", got[0]["receipt"]}, {"error", "HTTP 503"}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json moved = Receive("orders-slow");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0]["id"], got[0]["id"]);
  std::string metrics = op_->Get("/metrics").body;
  EXPECT_NE(metrics.find("redrive_messages_rerouted_total 1\n"), std::string::npos);
}

TEST_F(ApiTest, FailureGroupsShowTheirDiagnosisWithTheEvidence) {
  json once = {{"retryPolicy", {{"maxDeliveries", 1}}}};
  CreateQueue(*op_, "acme", "orders", once);
  CreateQueue(*op_, "acme", "ledger", once);
  CreateQueue(*op_, "acme", "small", {{"maxLength", 1}, {"overflow", "dead-letter-oldest"}});
  auto publish = [&](const std::string& queue, int n) {
    json messages = json::array();
    for (int i = 0; i < n; ++i) messages.push_back({{"body", "m" + std::to_string(i)}});
    ASSERT_EQ(app_->Post(Q(queue, "/messages"), {{"messages", messages}}).status, 201);
  };
  auto ack = [&](const std::string& queue, const json& deliveries) {
    json receipts = json::array();
    for (const auto& d : deliveries) receipts.push_back(d["receipt"]);
    auto r = app_->Post(Q(queue, "/ack"), {{"receipts", receipts}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["succeeded"], deliveries.size());
  };
  auto nack = [&](const std::string& queue, const json& delivery, const std::string& error) {
    auto r = app_->Post(Q(queue, "/nack"),
                        {{"nacks", {{{"receipt", delivery["receipt"]}, {"error", error}}}}});
    ASSERT_EQ(r.status, 200) << r.body;
  };
  // orders: one message of twenty fails on its data, amid successes (acked before and after
  // it, so within the same minute whatever the clock says).
  publish("orders", 20);
  json got = Receive("orders", 20);
  ASSERT_EQ(got.size(), 20u);
  ack("orders", json(std::vector<json>(got.begin(), got.begin() + 10)));
  nack("orders", got[10], "field 'email' of customer 'c-17' is invalid");
  ack("orders", json(std::vector<json>(got.begin() + 11, got.end())));
  // ledger: the consumer's own HTTPS call fails on a certificate.
  publish("ledger", 2);
  got = Receive("ledger", 2);
  ASSERT_EQ(got.size(), 2u);
  nack("ledger", got[0], "x509: certificate has expired or is not yet valid");
  nack("ledger", got[1], "x509: certificate has expired or is not yet valid");
  // small: an overflow, which is no delivery at all.
  publish("small", 1);
  publish("small", 1);

  auto r = app_->Get("/v1/tenants/acme/failure-groups");
  ASSERT_EQ(r.status, 200) << r.body;
  json body = r.Json();
  std::map<std::string, json> by_origin;
  for (const auto& g : body["groups"]) by_origin[g["origin"].get<std::string>()] = g;
  ASSERT_EQ(by_origin.size(), 3u) << r.body;

  const json& scattered = by_origin["orders"]["diagnosis"];
  ASSERT_TRUE(scattered.is_object()) << r.body;
  EXPECT_EQ(scattered["kind"], "scattered");
  EXPECT_EQ(scattered["failed"], 1);
  EXPECT_EQ(scattered["failingMinutes"], 1);
  // The window is the failure's minute: the nineteen successes, unless the clock passed a
  // minute's end just after the failure (then the ten before it).
  int64_t succeeded = scattered["succeeded"];
  EXPECT_TRUE(succeeded == 19 || succeeded == 10) << scattered;
  EXPECT_EQ(scattered["share"], succeeded == 19 ? 0.05 : 0.0909);
  if (succeeded == 19) {
    EXPECT_NE(scattered["summary"].get<std::string>().find("5.0% of the deliveries from orders"),
              std::string::npos)
        << scattered;
  }
  EXPECT_TRUE(scattered["window"]["from"].is_string());
  EXPECT_TRUE(scattered["window"]["to"].is_string());

  const json& tls = by_origin["ledger"]["diagnosis"];
  ASSERT_TRUE(tls.is_object()) << r.body;
  EXPECT_EQ(tls["kind"], "tls");
  EXPECT_EQ(tls["failed"], 2);
  EXPECT_EQ(tls["succeeded"], 0);
  EXPECT_EQ(tls["since"].get<std::string>().substr(17), "00.000Z");  // a minute's start
  EXPECT_TRUE(tls["recoveredAt"].is_null());

  ASSERT_TRUE(by_origin["small"].contains("diagnosis"));
  EXPECT_EQ(by_origin["small"]["reason"], "overflow");
  EXPECT_TRUE(by_origin["small"]["diagnosis"].is_null());
}

}  // namespace redrive::testing
