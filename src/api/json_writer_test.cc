#include "api/json_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/dead_letter_doc.h"

namespace redrive::api {
namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The receive answer as the handler built it before JsonWriter: an nlohmann tree, with the
// engine's shared encoding of bodies, attributes and times (engine/dead_letter_doc.h), so the
// writer is held to that encoding and not to a copy of it.
json ReferenceDelivery(const engine::Delivery& d) {
  const auto& m = d.message;
  json j = {{"id", m.id}, {"receipt", d.receipt}};
  engine::PutBody(j, m.body);
  j["attributes"] = engine::AttributesJson(m.attributes);
  j["idempotencyKey"] = m.idempotency_key.empty() ? json(nullptr) : json(m.idempotency_key);
  j["deliveryCount"] = m.delivery_count;
  j["publishedAt"] = FormatTime(m.published_at);
  j["enqueuedAt"] = FormatTime(m.enqueued_at);
  j["firstDeliveredAt"] = engine::OptTime(m.first_delivered_at);
  j["leaseExpiresAt"] = FormatTime(m.visible_at);
  return j;
}

engine::Delivery MakeDelivery(std::string body) {
  engine::Delivery d;
  d.message.id = "01M80GMJZWM5MKNBBWFKAGV36P";
  d.message.body = std::move(body);
  d.message.published_at = 1'700'000'000'123;
  d.message.enqueued_at = 1'700'000'000'456;
  d.message.visible_at = 1'700'000'030'456;
  d.message.delivery_count = 2;
  d.receipt = "42.tok";
  return d;
}

void ExpectSameAsTree(const std::vector<engine::Delivery>& deliveries, bool valid_utf8 = true) {
  json items = json::array();
  for (const auto& d : deliveries) items.push_back(ReferenceDelivery(d));
  std::string written = ReceiveAnswer(deliveries);
  EXPECT_EQ(written, Dump(json{{"messages", items}}));
  // And it is JSON that reads back to the same document (where the strings were UTF-8;
  // otherwise they read back with U+FFFD in place of the bad bytes).
  auto parsed = json::parse(written);
  if (valid_utf8) {
    EXPECT_EQ(parsed, (json{{"messages", items}}));
  }
}

TEST(JsonWriterTest, ReceiveAnswerIsTheTextTheTreeWouldDump) {
  auto plain = MakeDelivery(R"({"order": 42, "note": "tab\there, quote \" and \\ slash"})");
  plain.message.attributes = {{"type", "order.created"}, {"a", "first"}, {"Z", "upper"}};
  plain.message.idempotency_key = "order-42";
  plain.message.first_delivered_at = 1'700'000'001'000;
  auto controls =
      MakeDelivery(std::string("nul \0 bell \a esc \x1b del \x7f lf \n cr \r ff \f bs \b", 41));
  auto utf8 = MakeDelivery("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8");
  utf8.message.attributes = {{"city", "Z\xc3\xbcrich"}, {"ctl", "line\nbreak"}};
  auto binary = MakeDelivery(std::string("\xff\xfe\x00\x01 not utf-8", 15));
  auto empty = MakeDelivery("");
  ExpectSameAsTree({plain, controls, utf8, binary, empty});
  ExpectSameAsTree({});
}

TEST(JsonWriterTest, EscapesAtEveryPositionOfALongStringAsTheTreeWould) {
  // The writer scans eight bytes at a time: put each character that needs an escape (and a
  // multi-byte character) at every offset of a long run, and at its ends.
  for (std::string special :
       {std::string("\""), std::string("\\"), std::string("\n"), std::string(1, '\0'),
        std::string("\x1f"), std::string("\x7f"), std::string("\xc3\xa9"), std::string(" ")}) {
    for (size_t at = 0; at <= 24; ++at) {
      std::string body = std::string(at, 'a') + special + std::string(24 - at, 'b');
      std::string out;
      JsonWriter w(&out);
      w.String(body);
      EXPECT_EQ(out, Dump(json(body))) << "at " << at;
    }
  }
}

TEST(JsonWriterTest, InvalidUtf8OutsideTheBodyIsReplacedAsTheTreeWouldReplaceIt) {
  auto d = MakeDelivery("ok");
  d.message.attributes = {{"bad", "a\xc3(b"}, {"k\xff", "v"}};
  d.receipt = "r\x80";
  ExpectSameAsTree({d}, /*valid_utf8=*/false);
  EXPECT_NE(ReceiveAnswer({d}).find("a\xef\xbf\xbd(b"), std::string::npos);
}

TEST(JsonWriterTest, PublishAnswerIsTheTextTheTreeWouldDump) {
  std::vector<store::PublishOutcome> outcomes = {{"01A", false}, {"01B", true}};
  json items = json::array();
  for (const auto& o : outcomes) items.push_back({{"id", o.id}, {"duplicate", o.duplicate}});
  EXPECT_EQ(PublishAnswer(outcomes), Dump(json{{"messages", items}}));
  EXPECT_EQ(PublishAnswer({}), R"({"messages":[]})");
}

TEST(JsonWriterTest, NestsArraysAndObjectsWithCommasInTheRightPlaces) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  w.Int(-1);
  w.BeginObject();
  w.Key("a");
  w.BeginArray();
  w.EndArray();
  w.Key("b");
  w.Null();
  w.EndObject();
  w.Bool(false);
  w.String("x");
  w.EndArray();
  EXPECT_EQ(out, R"([-1,{"a":[],"b":null},false,"x"])");
}

}  // namespace
}  // namespace redrive::api
