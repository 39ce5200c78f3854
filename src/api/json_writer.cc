#include "api/json_writer.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "common/text.h"

namespace redrive::api {

void JsonWriter::Separate() {
  if (need_comma_) out_ += ',';
}

void JsonWriter::BeginObject() {
  Separate();
  out_ += '{';
  need_comma_ = false;
}

void JsonWriter::EndObject() {
  out_ += '}';
  need_comma_ = true;
}

void JsonWriter::BeginArray() {
  Separate();
  out_ += '[';
  need_comma_ = false;
}

void JsonWriter::EndArray() {
  out_ += ']';
  need_comma_ = true;
}

void JsonWriter::Key(std::string_view key) {
  Separate();
  Escaped(key);
  out_ += ':';
  need_comma_ = false;
}

void JsonWriter::String(std::string_view s) {
  Separate();
  Escaped(s);
  need_comma_ = true;
}

void JsonWriter::Int(int64_t v) {
  Separate();
  out_ += std::to_string(v);
  need_comma_ = true;
}

void JsonWriter::Bool(bool v) {
  Separate();
  out_ += v ? "true" : "false";
  need_comma_ = true;
}

void JsonWriter::Null() {
  Separate();
  out_ += "null";
  need_comma_ = true;
}

namespace {

// Whether any of the eight bytes of `w` needs an escape: below 0x20, '"' or '\\'. The usual
// word-at-a-time tests: a byte is below k when (b - k) borrows into its top bit while b's own
// top bit is clear; a byte equals c when b ^ c is zero.
bool AnyNeedsEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  auto below = [&](uint64_t x, uint8_t k) { return (x - kOnes * k) & ~x & kHigh; };
  return below(w, 0x20) | below(w ^ (kOnes * '"'), 1) | below(w ^ (kOnes * '\\'), 1);
}

}  // namespace

void JsonWriter::Utf8String(std::string_view s) {
  Separate();
  EscapedUtf8(s);
  need_comma_ = true;
}

void JsonWriter::Escaped(std::string_view s) {
  if (!IsValidUtf8(s)) {
    // Rare (bodies that are not UTF-8 go out as base64): nlohmann's replacement rules.
    out_ += nlohmann::json(std::string(s))
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return;
  }
  EscapedUtf8(s);
}

void JsonWriter::EscapedUtf8(std::string_view s) {
  out_ += '"';
  // Runs of bytes that need no escape are appended whole; UTF-8 passes through as it is.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    // Eight bytes at a time while none needs an escape (bodies are mostly such bytes).
    while (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if (AnyNeedsEscape(word)) break;
      i += 8;
    }
    if (i >= s.size()) break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out_.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out_ += "\\\"";
        break;
      case '\\':
        out_ += "\\\\";
        break;
      case '\b':
        out_ += "\\b";
        break;
      case '\f':
        out_ += "\\f";
        break;
      case '\n':
        out_ += "\\n";
        break;
      case '\r':
        out_ += "\\r";
        break;
      case '\t':
        out_ += "\\t";
        break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out_.append(u, sizeof(u));
      }
    }
  }
  out_.append(s.data() + run, s.size() - run);
  out_ += '"';
}

namespace {

void OptTime(JsonWriter& w, TimeMs t) {
  if (t) {
    w.String(FormatTime(t));
  } else {
    w.Null();
  }
}

}  // namespace

std::string ReceiveAnswer(const std::vector<engine::Delivery>& deliveries) {
  std::string out;
  size_t estimate = 32;
  for (const auto& d : deliveries) estimate += d.message.body.size() * 4 / 3 + 512;
  out.reserve(estimate);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("messages");
  w.BeginArray();
  for (const auto& d : deliveries) {
    const auto& m = d.message;
    // Keys in nlohmann's (sorted) order, so the text is what a tree would dump.
    w.BeginObject();
    w.Key("attributes");
    w.BeginObject();
    for (const auto& [k, v] : m.attributes) {
      w.Key(k);
      w.String(v);
    }
    w.EndObject();
    // The body as engine::PutBody encodes it (UTF-8 as it is, otherwise base64); the test
    // compares the two.
    bool utf8 = IsValidUtf8(m.body);
    w.Key("base64");
    w.Bool(!utf8);
    w.Key("body");
    if (utf8) {
      w.Utf8String(m.body);
    } else {
      w.String(Base64Encode(m.body));
    }
    w.Key("deliveryCount");
    w.Int(m.delivery_count);
    w.Key("enqueuedAt");
    w.String(FormatTime(m.enqueued_at));
    w.Key("firstDeliveredAt");
    OptTime(w, m.first_delivered_at);
    w.Key("id");
    w.String(m.id);
    w.Key("idempotencyKey");
    if (m.idempotency_key.empty()) {
      w.Null();
    } else {
      w.String(m.idempotency_key);
    }
    w.Key("leaseExpiresAt");
    w.String(FormatTime(m.visible_at));
    w.Key("publishedAt");
    w.String(FormatTime(m.published_at));
    w.Key("receipt");
    w.String(d.receipt);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

std::string PublishAnswer(const std::vector<store::PublishOutcome>& outcomes) {
  std::string out;
  out.reserve(32 + outcomes.size() * 56);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("messages");
  w.BeginArray();
  for (const auto& o : outcomes) {
    w.BeginObject();
    w.Key("duplicate");
    w.Bool(o.duplicate);
    w.Key("id");
    w.String(o.id);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

}  // namespace redrive::api
