#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/server.h"

namespace redrive::http {
namespace {

// The server's limits (ServerOptions defaults), as the server configures its parser.
class RequestParserTest : public ::testing::Test {
 protected:
  ServerOptions options_;
  RequestParser NewParser() {
    return RequestParser(options_.max_header_bytes, options_.max_body_bytes);
  }
  static std::string ErrorCodeOf(const Response& r) {
    return nlohmann::json::parse(r.body)["error"]["code"];
  }
};

TEST_F(RequestParserTest, ReadsRequestLineHeadersBodyAndDecodedQuery) {
  std::string buf =
      "POST /v1/tenants/a%2Fb/queues?x=1&y=a%20b HTTP/1.1\r\nHost: h\r\n"
      "Content-Type: application/json\r\nX-Mixed-Case: V\r\nContent-Length: 2\r\n\r\n{}";
  RequestParser p = NewParser();
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kDone);
  EXPECT_TRUE(buf.empty());
  Request req;
  Response error;
  bool keep_alive = false;
  ASSERT_TRUE(p.TakeRequest("1.2.3.4", &req, &keep_alive, &error));
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/v1/tenants/a%2Fb/queues?x=1&y=a%20b");
  EXPECT_EQ(req.path, "/v1/tenants/a%2Fb/queues");  // segments are decoded by the router
  ASSERT_EQ(req.query.size(), 2u);
  EXPECT_EQ(req.query[1], (std::pair<std::string, std::string>{"y", "a b"}));
  EXPECT_EQ(req.Header("x-mixed-case"), "V");
  EXPECT_EQ(req.body, "{}");
  EXPECT_EQ(req.remote, "1.2.3.4");
  EXPECT_TRUE(keep_alive);
}

TEST_F(RequestParserTest, ByteAtATimeGivesTheSameRequest) {
  const std::string whole =
      "PATCH /q?a=%41 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  RequestParser p = NewParser();
  std::string buf;
  RequestParser::Step step = RequestParser::Step::kNeedMore;
  for (size_t i = 0; i < whole.size(); ++i) {
    ASSERT_EQ(step, RequestParser::Step::kNeedMore) << "finished early at byte " << i;
    buf.push_back(whole[i]);
    step = p.Feed(&buf);
  }
  ASSERT_EQ(step, RequestParser::Step::kDone);
  Request req;
  Response error;
  bool keep_alive = false;
  ASSERT_TRUE(p.TakeRequest("", &req, &keep_alive, &error));
  EXPECT_EQ(req.method, "PATCH");
  EXPECT_EQ(req.body, "abcde");
  EXPECT_EQ(req.Query("a"), "A");
}

TEST_F(RequestParserTest, LeavesThePipelinedNextRequestInTheBuffer) {
  std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string buf = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n" + second;
  RequestParser p = NewParser();
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kDone);
  EXPECT_EQ(buf, second);
}

TEST_F(RequestParserTest, RefusesHeadersOverTheLimitWith431) {
  std::string buf =
      "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(options_.max_header_bytes, 'x') +
      "\r\n\r\n";
  RequestParser p = NewParser();
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kFailed);
  EXPECT_EQ(p.error().status, 431);
  EXPECT_EQ(ErrorCodeOf(p.error()), "headers-too-large");
}

// Regression: Beast alone bounded the request line and the header fields each by the limit, so
// up to twice the limit got through, depending on how the bytes arrived.
TEST_F(RequestParserTest, HeaderLimitIsOnRequestLineAndFieldsTogetherHoweverTheyArrive) {
  const size_t limit = options_.max_header_bytes;
  // A request whose line and headers (with the blank line) are exactly `total` bytes.
  auto request = [](size_t total, bool pad_target) {
    std::string line = "GET /x", fields = "Host: h\r\n";
    size_t fixed = line.size() + std::string(" HTTP/1.1\r\n").size() + fields.size() + 2;
    if (pad_target) {
      line += "?p=" + std::string(total - fixed - 3, 'p');
    } else {
      fields += "X-Pad: " + std::string(total - fixed - 9, 'p') + "\r\n";
    }
    std::string r = line + " HTTP/1.1\r\n" + fields + "\r\n";
    EXPECT_EQ(r.size(), total);
    return r;
  };
  for (bool pad_target : {false, true}) {
    for (size_t total : {limit, limit + 1}) {
      std::string whole = request(total, pad_target);
      size_t line_end = whole.find("\r\n") + 2;
      for (size_t split : {whole.size(), line_end, line_end + 5, whole.size() - 1}) {
        SCOPED_TRACE(std::to_string(total) + " bytes, padded in the " +
                     (pad_target ? "target" : "headers") + ", split at " + std::to_string(split));
        RequestParser p = NewParser();
        std::string buf = whole.substr(0, split);
        RequestParser::Step step = p.Feed(&buf);
        if (step == RequestParser::Step::kNeedMore) {
          buf += whole.substr(split);
          step = p.Feed(&buf);
        }
        if (total <= limit) {
          EXPECT_EQ(step, RequestParser::Step::kDone);
        } else {
          ASSERT_EQ(step, RequestParser::Step::kFailed);
          EXPECT_EQ(ErrorCodeOf(p.error()), "headers-too-large");
        }
      }
    }
  }
}

TEST_F(RequestParserTest, RefusesADeclaredBodyOverTheLimitBeforeReadingIt) {
  std::string buf = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                    std::to_string(options_.max_body_bytes + 1) + "\r\n\r\n";
  RequestParser p = NewParser();
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kFailed);
  EXPECT_EQ(p.error().status, 413);
  EXPECT_EQ(ErrorCodeOf(p.error()), "request-too-large");
}

TEST_F(RequestParserTest, RefusesAChunkedBodyThatGrowsOverTheLimit) {
  RequestParser p(1024, 16);
  std::string buf =
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n";
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kFailed);
  EXPECT_EQ(p.error().status, 413);
}

TEST_F(RequestParserTest, RefusesGarbageWith400) {
  std::string buf = "GET / HTTP/1.1\r\nBad Header\r\n\r\n";
  RequestParser p = NewParser();
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kFailed);
  EXPECT_EQ(p.error().status, 400);
  EXPECT_EQ(ErrorCodeOf(p.error()), "invalid-argument");
}

TEST_F(RequestParserTest, RefusesAMalformedQueryEscapeWithoutRunningTheHandler) {
  std::string buf = "GET /x?a=%zz HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestParser p = NewParser();
  ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kDone);
  Request req;
  Response error;
  bool keep_alive = true;
  EXPECT_FALSE(p.TakeRequest("", &req, &keep_alive, &error));
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(ErrorCodeOf(error), "invalid-argument");
}

TEST_F(RequestParserTest, KeepAliveFollowsTheVersionAndConnectionHeader) {
  struct Case {
    std::string head;
    bool keep_alive;
  };
  for (const Case& c :
       {Case{"GET / HTTP/1.1\r\n", true}, Case{"GET / HTTP/1.1\r\nConnection: close\r\n", false},
        Case{"GET / HTTP/1.0\r\n", false},
        Case{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n", true}}) {
    std::string buf = c.head + "\r\n";
    RequestParser p = NewParser();
    ASSERT_EQ(p.Feed(&buf), RequestParser::Step::kDone) << c.head;
    Request req;
    Response error;
    bool keep_alive = !c.keep_alive;
    ASSERT_TRUE(p.TakeRequest("", &req, &keep_alive, &error));
    EXPECT_EQ(keep_alive, c.keep_alive) << c.head;
  }
}

}  // namespace
}  // namespace redrive::http
