#include "api/json_io.h"

#include <gtest/gtest.h>

#include <string>

namespace redrive::api {
namespace {

// Found by json_fuzz: nlohmann reports a number too large for a double as out_of_range, not
// parse_error; it escaped ParseObject and the connection thread, and ended the server.
TEST(ParseObjectTest, NumberTooLargeForADoubleIsInvalidJsonNotACrash) {
  for (const char* body : {R"({"name": 1e400})", R"({"a": [-1e999]})", R"({"x": 1E+309})"}) {
    auto r = ParseObject(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidJson) << body;
  }
}

TEST(ParseObjectTest, LargeIntegersStillParse) {
  auto r = ParseObject(R"({"big": 18446744073709551615, "bigger": 18446744073709551616})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)["big"].is_number_unsigned());
  EXPECT_TRUE((*r)["bigger"].is_number_float());
}

TEST(ParseObjectTest, DepthLimitRefusesBeforeParsing) {
  std::string at_limit = std::string(kMaxJsonDepth - 1, '[') + std::string(kMaxJsonDepth - 1, ']');
  EXPECT_TRUE(ParseObject("{\"a\": " + at_limit + "}").ok());
  std::string over = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_EQ(ParseObject("{\"a\": " + over + "}").status().code(), ErrorCode::kJsonTooDeep);
  // A million unclosed brackets: refused by the count, with no recursion anywhere.
  EXPECT_EQ(ParseObject(std::string(1'000'000, '[')).status().code(), ErrorCode::kJsonTooDeep);
  // Brackets inside strings do not count.
  EXPECT_TRUE(ParseObject("{\"a\": \"" + std::string(1000, '[') + "\\\"\"}").ok());
}

TEST(JsonDepthTest, QuotesAfterBackslashesEndAStringOnlyWhenTheRunIsEven) {
  EXPECT_EQ(JsonDepth(R"({"a": "\\"})"), 1);       // "\\" then the closing quote
  EXPECT_EQ(JsonDepth(R"({"a": "\\\"[[["})"), 1);  // \\ \" : the quote is escaped
  EXPECT_EQ(JsonDepth(R"({"a": "x\\\\", "b": [[1]]})"), 3);
  EXPECT_EQ(JsonDepth(R"({"a": "\"", "b": [{}]})"), 3);
  EXPECT_EQ(JsonDepth(R"([[[ "unterminated \" [[[[)"), 3);
  EXPECT_EQ(JsonDepth(""), 0);
}

TEST(ParseObjectTest, RefusesWhatIsNotAnObject) {
  for (const char* body : {"", "[]", "1", "\"x\"", "null", "{", "{} {}", "{\"a\": 1,}"}) {
    EXPECT_EQ(ParseObject(body).status().code(), ErrorCode::kInvalidJson) << body;
  }
}

}  // namespace
}  // namespace redrive::api
