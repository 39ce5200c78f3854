#include "api/publish_decoder.h"

#include <gtest/gtest.h>

#include <string>

namespace redrive::api {
namespace {

// What the general decoder makes of `body`, as the handler called it before the fast path.
Result<std::vector<engine::NewMessage>> General(const std::string& body) {
  REDRIVE_ASSIGN_OR_RETURN(json parsed, ParseObject(body));
  return DecodePublishGeneral(parsed);
}

void ExpectSame(const std::vector<engine::NewMessage>& a, const std::vector<engine::NewMessage>& b,
                const std::string& body) {
  ASSERT_EQ(a.size(), b.size()) << body;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].body, b[i].body) << body;
    EXPECT_EQ(a[i].attributes, b[i].attributes) << body;
    EXPECT_EQ(a[i].idempotency_key, b[i].idempotency_key) << body;
    EXPECT_EQ(a[i].delay, b[i].delay) << body;
  }
}

TEST(PublishDecoderTest, TheFastPathDecodesPlainBatchesAsTheGeneralDecoderDoes) {
  std::string kib(1024, 'x');
  std::string batch = R"({"messages": [)";
  for (int i = 0; i < 100; ++i) {
    if (i) batch += ',';
    batch += R"({"body": ")" + kib + R"(", "attributes": {"n": ")" + std::to_string(i) +
             R"(", "t": "123"}})";
  }
  batch += "]}";
  for (const std::string& body : {
           batch,
           std::string(R"({"messages": [{"body": ""}]})"),
           std::string(R"({"messages":[{"body":"{\"order\": 42}","attributes":{"type":"a"}}]})"),
           std::string(R"({"messages": [{"attributes": {}, "body": "x", "idempotencyKey": "k"}]})"),
           std::string(R"({"messages": [{"body": "tab\t nl\n quote\" slash\\ \u00e9 \u0000"}]})"),
           std::string(R"({"messages": [{"body": "caf\u00e9 \ud83d\ude00", "base64": false}]})"),
           std::string("{\"messages\": [{\"body\": \"caf\xc3\xa9\"}]}"),
           std::string(R"({"messages": [{"body": "a", "attributes": {"Z": "1", "a": "2"}},
                                        {"body": "b"}]})"),
           std::string(R"({"mess\u0061ges": [{"b\u006fdy": "escaped keys"}]})"),
       }) {
    auto fast = DecodePublishFast(body);
    ASSERT_TRUE(fast.has_value()) << body;
    auto general = General(body);
    ASSERT_TRUE(general.ok()) << body << ": " << general.status().ToString();
    ExpectSame(*fast, general.value(), body);
    auto decoded = DecodePublish(body);
    ASSERT_TRUE(decoded.ok()) << body;
    ExpectSame(decoded.value(), general.value(), body);
  }
}

TEST(PublishDecoderTest, EverythingElseTakesTheGeneralDecoderWithItsAnswer) {
  for (const std::string& body : {
           // Errors, which only the general decoder words.
           std::string(""),
           std::string("{"),
           std::string(R"({"messages": [{"body": "x"}]} trailing)"),
           std::string(R"([{"body": "x"}])"),
           std::string(R"({"messages": []})"),
           std::string(R"({"messages": {}})"),
           std::string(R"({"messages": [{"body": 1}]})"),
           std::string(R"({"messages": [{"attributes": {}}]})"),
           std::string(R"({"messages": [{"body": "x", "attributes": {"a": 1}}]})"),
           std::string(R"({"messages": [{"body": "x", "attributes": []}]})"),
           std::string(R"({"messages": [{"body": "x", "extra": 1}]})"),
           std::string(R"({"messages": [{"body": "x"}], "extra": 1})"),
           std::string(R"({"messages": [1]})"),
           std::string(R"({"messages": [{"body": "x", "base64": "no"}]})"),
           std::string(R"({"messages": [{"body": "lone \udc00 surrogate"}]})"),
           std::string(R"({"messages": [{"body": "lone \ud800 surrogate"}]})"),
           std::string("{\"messages\": [{\"body\": \"bad \xff utf-8\"}]}"),
           std::string(R"({"messages": [{"body": "x", "delay": "forever"}]})"),
           std::string(R"({"messages": [{"body": "x", "idempotencyKey": 7}]})"),
           // Valid, but not the plain shape: nulls, delays, base64, repeated names.
           std::string(R"({"messages": [{"body": "x", "attributes": null}]})"),
           std::string(R"({"messages": [{"body": "x", "idempotencyKey": null}]})"),
           std::string(R"({"messages": [{"body": "x", "delay": "5s"}]})"),
           std::string(R"({"messages": [{"body": "x", "delay": 1500}]})"),
           std::string(R"({"messages": [{"body": "aGVsbG8=", "base64": true}]})"),
           std::string(R"({"messages": [{"body": "x", "attributes": {"a": "1", "a": "2"}}]})"),
           std::string(R"({"messages": [{"body": "first", "body": "second"}]})"),
           std::string(R"({"messages": [{"body": "x"}], "messages": [{"body": "y"}]})"),
       }) {
    EXPECT_FALSE(DecodePublishFast(body).has_value()) << body;
    auto general = General(body);
    auto decoded = DecodePublish(body);
    ASSERT_EQ(decoded.ok(), general.ok()) << body;
    if (general.ok()) {
      ExpectSame(decoded.value(), general.value(), body);
    } else {
      EXPECT_EQ(decoded.status().code(), general.status().code()) << body;
      EXPECT_EQ(decoded.status().message(), general.status().message()) << body;
    }
  }
}

TEST(PublishDecoderTest, RepeatedNamesKeepTheLastValueAsBefore) {
  auto r = DecodePublish(R"({"messages": [{"body": "first", "body": "second",
                                          "attributes": {"a": "1", "a": "2"}}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value()[0].body, "second");
  EXPECT_EQ(r.value()[0].attributes.at("a"), "2");
}

TEST(PublishDecoderTest, BodiesOverTheFastLimitStillDecode) {
  std::string big(kFastPublishMaxBytes, 'y');
  std::string body = R"({"messages": [{"body": ")" + big + R"("}]})";
  EXPECT_FALSE(DecodePublishFast(body).has_value());
  auto r = DecodePublish(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value()[0].body.size(), big.size());
}

}  // namespace
}  // namespace redrive::api
