#include "http/http.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace redrive::http {
namespace {

TEST(QueryTest, DecodesPairsInOrder) {
  std::vector<std::pair<std::string, std::string>> q;
  ASSERT_TRUE(ParseQuery("a=1&b=x%20y&c=&d&e=a+b", &q));
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ(q[1].second, "x y");
  EXPECT_EQ(q[2].second, "");
  EXPECT_EQ(q[3].first, "d");
  EXPECT_EQ(q[4].second, "a b");
}

TEST(QueryTest, RejectsMalformedEscapes) {
  std::vector<std::pair<std::string, std::string>> q;
  EXPECT_FALSE(ParseQuery("a=%zz", &q));
  EXPECT_FALSE(ParseQuery("a=%2", &q));
  EXPECT_FALSE(ParseQuery("a=%", &q));
}

TEST(ErrorResponseTest, HasTheDocumentedShape) {
  Response r = ErrorResponse(404, "queue-not-found", "queue 'x' not found");
  EXPECT_EQ(r.status, 404);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "queue-not-found");
  EXPECT_EQ(j["error"]["message"], "queue 'x' not found");
}

TEST(RequestTest, FindsHeadersAndQueryParameters) {
  Request req;
  req.headers = {{"content-type", "application/json"}};
  req.query = {{"limit", "5"}};
  EXPECT_EQ(req.Header("content-type"), "application/json");
  EXPECT_EQ(req.Header("authorization"), "");
  bool found = false;
  EXPECT_EQ(req.Query("limit", &found), "5");
  EXPECT_TRUE(found);
  req.Query("cursor", &found);
  EXPECT_FALSE(found);
}

}  // namespace
}  // namespace redrive::http
