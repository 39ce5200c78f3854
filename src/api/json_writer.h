// JsonWriter: appends JSON text to a string as it goes, without building a tree. For the
// answers of the message routes (receive, publish), where building an nlohmann tree, copying
// every body into it and escaping it a byte at a time was a large share of the server's CPU
// (docs/benchmarks.md, where the time goes). The text is the same, byte for byte, as
// nlohmann's dump(-1, ' ', false, error_handler_t::replace) of the same document with its keys
// in the same (sorted) order: json_writer_test.cc checks it. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"

namespace redrive::api {

class JsonWriter {
 public:
  // Appends to *out, which must outlive the writer.
  explicit JsonWriter(std::string* out) : out_(*out) {}

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // The key of the next member. REQUIRES: inside an object, keys in the order wanted.
  void Key(std::string_view key);
  // A string; invalid UTF-8 is replaced with U+FFFD as nlohmann's replace handler does.
  void String(std::string_view s);
  // The same for a string already known to be valid UTF-8 (checked once, not twice).
  // REQUIRES: IsValidUtf8(s).
  void Utf8String(std::string_view s);
  void Int(int64_t v);
  void Bool(bool v);
  void Null();

 private:
  void Separate();
  void Escaped(std::string_view s);
  void EscapedUtf8(std::string_view s);

  std::string& out_;
  bool need_comma_ = false;
};

// The answer of a receive: {"messages": [delivery, ...]}, each delivery with its id, receipt,
// body (UTF-8 as it is, otherwise base64), attributes, idempotency key, counts and times.
std::string ReceiveAnswer(const std::vector<engine::Delivery>& deliveries);

// The answer of a publish: {"messages": [{"duplicate": bool, "id": "..."}, ...]}.
std::string PublishAnswer(const std::vector<store::PublishOutcome>& outcomes);

}  // namespace redrive::api
