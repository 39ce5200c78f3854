#include "push/delivery_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "push/signature.h"
#include "push/test_endpoint.h"

namespace redrive::push {
namespace {

using testing::TestCertificates;
using testing::TestEndpoint;
using Clock = std::chrono::steady_clock;

// Far beyond anything a passing test needs, so that a loaded machine never fails one; a test
// that waits this long has failed.
constexpr auto kGiveUp = std::chrono::seconds(30);

DurationMs MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Polls `condition` until it holds or kGiveUp passes.
bool Eventually(const std::function<bool()>& condition) {
  auto deadline = Clock::now() + kGiveUp;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

// A result that arrives later, on the io thread.
class Pending {
 public:
  DeliveryClient::Callback callback() {
    return [state = state_](DeliveryResult r) {
      std::lock_guard<std::mutex> lock(state->mu);
      ++state->calls;
      state->result = std::move(r);
      state->done.notify_all();
    };
  }
  bool done() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->calls > 0;
  }
  int calls() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->calls;
  }
  // Waits up to kGiveUp; an error result "not done" if it never came.
  DeliveryResult Wait() {
    std::unique_lock<std::mutex> lock(state_->mu);
    if (!state_->done.wait_for(lock, kGiveUp, [&] { return state_->calls > 0; })) {
      DeliveryResult r;
      r.error = TransportError::kOther;
      r.error_message = "test: no callback within 30 s";
      return r;
    }
    return state_->result;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable done;
    int calls = 0;
    DeliveryResult result;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

class DeliveryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    io_thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    client_.reset();
    work_.reset();
    io_.stop();
    io_thread_.join();
    for (const std::string& f : files_) unlink(f.c_str());
  }

  DeliveryClient& client(DeliveryClientOptions options = {}) {
    if (!client_) client_ = std::make_unique<DeliveryClient>(io_, std::move(options));
    return *client_;
  }

  std::unique_ptr<TestEndpoint> StartEndpoint(const TestCertificates* tls = nullptr) {
    auto endpoint = tls ? std::make_unique<TestEndpoint>(*tls) : std::make_unique<TestEndpoint>();
    std::string error;
    EXPECT_TRUE(endpoint->Start(&error)) << error;
    return endpoint;
  }

  static DeliveryRequest Post(std::string url, DurationMs timeout = 10'000) {
    DeliveryRequest r;
    r.url = std::move(url);
    r.headers = {{"content-type", "application/json"}};
    r.body = R"({"hello":"world"})";
    r.timeout = timeout;
    return r;
  }

  DeliveryResult SendAndWait(DeliveryRequest request) {
    Pending p;
    client().Send(std::move(request), p.callback());
    return p.Wait();
  }

  std::string TempFile(std::string_view text) {
    files_.push_back(testing::WriteTempFile(text));
    return files_.back();
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      boost::asio::make_work_guard(io_)};
  std::thread io_thread_;
  std::unique_ptr<DeliveryClient> client_;
  std::vector<std::string> files_;
};

TEST_F(DeliveryClientTest, A2xxIsDeliveredWithTheRequestsHeadersAndBody) {
  auto endpoint = StartEndpoint();
  endpoint->Answer(204);
  DeliveryRequest request = Post(endpoint->url("/orders?x=1"));
  request.headers.push_back({"webhook-id", "msg_1"});
  request.headers.push_back({"webhook-timestamp", "1700000000"});
  request.headers.push_back({"webhook-signature", Sign("msg_1", 1'700'000'000, request.body,
                                                       {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
                                                      .value()});
  DeliveryResult r = SendAndWait(request);
  EXPECT_EQ(r.error, TransportError::kNone) << r.error_message;
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(Classify(r, 0).verdict, Verdict::kSuccess);
  EXPECT_GE(r.duration, 0);
  auto received = endpoint->received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "POST");
  EXPECT_EQ(received[0].target, "/orders?x=1");
  EXPECT_EQ(received[0].body, request.body);
  EXPECT_EQ(received[0].headers["content-type"], "application/json");
  EXPECT_EQ(received[0].headers["webhook-id"], "msg_1");
  EXPECT_EQ(received[0].headers["webhook-signature"], request.headers[3].second);
  EXPECT_EQ(received[0].headers["user-agent"], "redrive-push");
  EXPECT_EQ(received[0].headers.count("expect"), 0u);
}

TEST_F(DeliveryClientTest, A503WithRetryAfterIsRetriedAfterTheAskedDelay) {
  auto endpoint = StartEndpoint();
  endpoint->Answer(503, "120", "busy, come back later");
  DeliveryResult r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.error, TransportError::kNone) << r.error_message;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.retry_after, "120");
  EXPECT_EQ(r.body_snippet, "busy, come back later");
  Outcome o = Classify(r, 0);
  EXPECT_EQ(o.verdict, Verdict::kRetry);
  EXPECT_EQ(o.retry_after, 120'000);
  EXPECT_EQ(o.cause, "http 503");

  endpoint->Answer(429, "Mon, 07 Dec 2026 10:01:30 GMT");
  r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after, "Mon, 07 Dec 2026 10:01:30 GMT");
  EXPECT_EQ(Classify(r, 1'796'637'600'000).retry_after, 90'000);

  // The next answer has none: nothing is carried over from the previous one on the connection.
  endpoint->Answer(500);
  r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.retry_after, "");
}

TEST_F(DeliveryClientTest, OnlyTheFirstKibOfTheBodyIsKept) {
  auto endpoint = StartEndpoint();
  std::string body;
  for (int i = 0; body.size() < 5000; ++i) body += std::to_string(i) + ",";
  endpoint->Answer(400, "", body);
  DeliveryResult r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body_snippet, body.substr(0, 1024));
}

TEST_F(DeliveryClientTest, AHugeResponseIsCutOffAndItsStatusStands) {
  auto endpoint = StartEndpoint();
  endpoint->Answer(200, "", std::string(4 << 20, 'z'));
  DeliveryClientOptions options;
  options.max_response_bytes = 64 << 10;
  client(options);
  DeliveryResult r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.error, TransportError::kNone) << r.error_message;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_snippet, std::string(1024, 'z'));
}

TEST_F(DeliveryClientTest, AHangingEndpointTimesOutAtTheRequestsTimeout) {
  auto endpoint = StartEndpoint();
  endpoint->Hang();
  auto start = Clock::now();
  DeliveryResult r = SendAndWait(Post(endpoint->url(), /*timeout=*/300));
  DurationMs waited = MsSince(start);
  EXPECT_EQ(r.error, TransportError::kTimeout) << r.error_message;
  EXPECT_EQ(Classify(r, 0).verdict, Verdict::kRetry);
  EXPECT_GE(r.duration, 290);
  EXPECT_GE(waited, 290);
  EXPECT_LT(waited, 10'000);
  EXPECT_EQ(endpoint->requests(), 1);
}

TEST_F(DeliveryClientTest, SlowEndpointsNeverDelayTheRequestsToOthers) {
  auto slow = StartEndpoint();
  slow->Hang();
  auto fast = StartEndpoint();
  fast->Answer(200);
  // Three requests hang on the slow endpoint for 8 s each ...
  std::vector<Pending> hanging(3);
  auto start = Clock::now();
  for (Pending& p : hanging) client().Send(Post(slow->url(), /*timeout=*/8'000), p.callback());
  ASSERT_TRUE(Eventually([&] { return slow->requests() == 3; }));
  // ... while twenty to the fast one, one after the other, are all answered meanwhile.
  for (int i = 0; i < 20; ++i) {
    DeliveryResult r = SendAndWait(Post(fast->url()));
    ASSERT_EQ(r.status, 200) << i << ": " << r.error_message;
  }
  DurationMs fast_done = MsSince(start);
  EXPECT_LT(fast_done, 8'000);
  for (Pending& p : hanging) EXPECT_FALSE(p.done()) << "a hanging request finished early";
  for (Pending& p : hanging) {
    DeliveryResult r = p.Wait();
    EXPECT_EQ(r.error, TransportError::kTimeout) << r.error_message;
    EXPECT_GE(r.duration, 7'900);
  }
  EXPECT_EQ(fast->requests(), 20);
}

TEST_F(DeliveryClientTest, AResetConnectionIsAConnectionError) {
  auto endpoint = StartEndpoint();
  endpoint->Reset();
  DeliveryResult r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.error, TransportError::kConnection) << r.error_message;
  EXPECT_FALSE(r.error_message.empty());
  EXPECT_EQ(Classify(r, 0).verdict, Verdict::kRetry);
  EXPECT_GE(endpoint->requests(), 1);
}

TEST_F(DeliveryClientTest, NobodyListeningIsAConnectionError) {
  auto endpoint = StartEndpoint();
  std::string url = endpoint->url();
  endpoint->Stop();
  DeliveryResult r = SendAndWait(Post(url));
  EXPECT_EQ(r.error, TransportError::kConnection) << r.error_message;
}

TEST_F(DeliveryClientTest, RedirectsAreNotFollowed) {
  auto target = StartEndpoint();
  auto endpoint = StartEndpoint();
  for (int status : {301, 302, 307, 308}) {
    endpoint->Answer(status, "", "", {{"Location", target->url("/elsewhere")}});
    DeliveryResult r = SendAndWait(Post(endpoint->url()));
    EXPECT_EQ(r.error, TransportError::kNone) << r.error_message;
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(Classify(r, 0).verdict, Verdict::kPermanent);
  }
  EXPECT_EQ(target->requests(), 0);
  EXPECT_EQ(target->connections(), 0);
}

TEST_F(DeliveryClientTest, SequentialRequestsToOneEndpointReuseOneConnection) {
  auto endpoint = StartEndpoint();
  for (int i = 0; i < 10; ++i) {
    DeliveryResult r = SendAndWait(Post(endpoint->url()));
    ASSERT_EQ(r.status, 200) << r.error_message;
  }
  EXPECT_EQ(endpoint->requests(), 10);
  EXPECT_EQ(endpoint->connections(), 1);
}

// A burst of 16, a quiet moment with one request, another burst: the 16 connections of the
// first burst serve the second (libcurl's default pool keeps 4 per request in flight, and so
// closed 12 of them in the quiet moment).
TEST_F(DeliveryClientTest, ConnectionsOfABurstAreKeptForTheNextOne) {
  auto endpoint = StartEndpoint();
  endpoint->Delay(50);  // so that the 16 overlap, each on a connection of its own
  auto burst = [&] {
    std::vector<Pending> pending(16);
    for (Pending& p : pending) client().Send(Post(endpoint->url()), p.callback());
    for (Pending& p : pending) EXPECT_EQ(p.Wait().status, 200);
  };
  burst();
  int opened = endpoint->connections();
  EXPECT_GT(opened, 1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(SendAndWait(Post(endpoint->url())).status, 200);
  burst();
  EXPECT_EQ(endpoint->connections(), opened);
}

TEST_F(DeliveryClientTest, TotalConnectionsStayWithinTheConfiguredCap) {
  auto endpoint = StartEndpoint();
  endpoint->Delay(100);
  DeliveryClientOptions options;
  options.max_total_connections = 2;
  client(options);
  std::vector<Pending> pending(6);
  for (Pending& p : pending) client().Send(Post(endpoint->url()), p.callback());
  for (Pending& p : pending) {
    DeliveryResult r = p.Wait();
    EXPECT_EQ(r.status, 200) << r.error_message;
  }
  EXPECT_EQ(endpoint->requests(), 6);
  EXPECT_LE(endpoint->connections(), 2);
}

TEST_F(DeliveryClientTest, TlsToAnUnknownCaFailsAndSucceedsWithThatCaFile) {
  TestCertificates certs = testing::MakeTestCertificates();
  auto endpoint = StartEndpoint(&certs);
  endpoint->Answer(200, "", "secure");

  // The system store does not know the throwaway CA.
  DeliveryResult r = SendAndWait(Post(endpoint->url()));
  EXPECT_EQ(r.error, TransportError::kTls) << r.error_message;
  EXPECT_EQ(Classify(r, 0).verdict, Verdict::kRetry);

  // Nor does another CA's file.
  DeliveryRequest other = Post(endpoint->url());
  other.ca_file = TempFile(testing::MakeTestCertificates().ca_pem);
  r = SendAndWait(other);
  EXPECT_EQ(r.error, TransportError::kTls) << r.error_message;

  DeliveryRequest trusted = Post(endpoint->url());
  trusted.ca_file = TempFile(certs.ca_pem);
  r = SendAndWait(trusted);
  EXPECT_EQ(r.error, TransportError::kNone) << r.error_message;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_snippet, "secure");
  EXPECT_EQ(endpoint->requests(), 1);
}

TEST_F(DeliveryClientTest, InvalidUrlsAndOtherSchemesFailPermanently) {
  for (const char* url : {"ftp://127.0.0.1:1/x", "file:///etc/passwd", "gopher://127.0.0.1/",
                          "http://", "not a url"}) {
    DeliveryResult r = SendAndWait(Post(url));
    EXPECT_EQ(r.error, TransportError::kInvalidUrl) << url << ": " << r.error_message;
    EXPECT_EQ(Classify(r, 0).verdict, Verdict::kPermanent) << url;
  }
}

TEST_F(DeliveryClientTest, ShutdownCallsBackTheRequestsInFlightBeforeReturning) {
  auto endpoint = StartEndpoint();
  endpoint->Hang();
  Pending in_flight;
  client().Send(Post(endpoint->url(), /*timeout=*/60'000), in_flight.callback());
  ASSERT_TRUE(Eventually([&] { return endpoint->requests() == 1; }));
  EXPECT_EQ(client().in_flight(), 1u);
  auto start = Clock::now();
  client().Shutdown();
  EXPECT_LT(MsSince(start), 5'000);
  ASSERT_TRUE(in_flight.done());
  DeliveryResult r = in_flight.Wait();
  EXPECT_EQ(r.error, TransportError::kShutdown);
  EXPECT_EQ(r.error_message, "shutdown");
  EXPECT_EQ(in_flight.calls(), 1);
  EXPECT_EQ(client().in_flight(), 0u);

  // Later requests are answered at once; a second Shutdown is harmless.
  Pending late;
  client().Send(Post(endpoint->url()), late.callback());
  ASSERT_TRUE(late.done());
  EXPECT_EQ(late.Wait().error, TransportError::kShutdown);
  client().Shutdown();
  EXPECT_EQ(in_flight.calls(), 1);
  EXPECT_EQ(endpoint->requests(), 1);
}

TEST_F(DeliveryClientTest, DestroyingTheClientWithRequestsInFlightCallsThemBack) {
  auto endpoint = StartEndpoint();
  endpoint->Hang();
  std::vector<Pending> pending(4);
  for (Pending& p : pending) client().Send(Post(endpoint->url(), 60'000), p.callback());
  ASSERT_TRUE(Eventually([&] { return endpoint->requests() == 4; }));
  client_.reset();
  for (Pending& p : pending) {
    ASSERT_TRUE(p.done());
    EXPECT_EQ(p.Wait().error, TransportError::kShutdown);
  }
}

TEST_F(DeliveryClientTest, ShutdownWorksAfterTheLoopHasStopped) {
  auto endpoint = StartEndpoint();
  endpoint->Hang();
  Pending p;
  client().Send(Post(endpoint->url(), 60'000), p.callback());
  ASSERT_TRUE(Eventually([&] { return endpoint->requests() == 1; }));
  io_.stop();
  io_thread_.join();
  client().Shutdown();
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.Wait().error, TransportError::kShutdown);
  io_thread_ = std::thread([] {});  // for TearDown
}

TEST_F(DeliveryClientTest, ACallbackMaySendTheNextRequest) {
  auto endpoint = StartEndpoint();
  std::promise<int> all_done;
  std::atomic<int> count{0};
  std::function<void(DeliveryResult)> next = [&](DeliveryResult r) {
    if (r.status != 200 || ++count == 5) {
      all_done.set_value(count.load());
      return;
    }
    client().Send(Post(endpoint->url()), next);
  };
  client().Send(Post(endpoint->url()), next);
  auto future = all_done.get_future();
  ASSERT_EQ(future.wait_for(kGiveUp), std::future_status::ready);
  EXPECT_EQ(future.get(), 5);
  EXPECT_EQ(endpoint->requests(), 5);
}

}  // namespace
}  // namespace redrive::push
