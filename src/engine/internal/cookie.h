// Paging cookies of dead-letter and audit queries (internal to the engine).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/text.h"

namespace redrive::engine {

// "<kind>:<a>:<b>", and ":<tail>" when `tail` is not empty (a snapshot's `visible` part, which
// may hold colons itself), base64-encoded.
inline std::string EncodeCookie(const std::string& kind, int64_t a, int64_t b,
                                const std::string& tail = "") {
  std::string text = kind + ":" + std::to_string(a) + ":" + std::to_string(b);
  if (!tail.empty()) text += ":" + tail;
  return Base64Encode(text);
}

inline bool DecodeCookie(const std::string& cookie, const std::string& kind, int64_t* a, int64_t* b,
                         std::string* tail = nullptr) {
  auto text = Base64Decode(cookie);
  if (!text.ok() || text->rfind(kind + ":", 0) != 0) return false;
  std::string_view rest(text.value());
  rest.remove_prefix(kind.size() + 1);
  auto colon = rest.find(':');
  if (colon == std::string_view::npos) return false;
  auto second = rest.find(':', colon + 1);
  std::string_view b_text = rest.substr(
      colon + 1, second == std::string_view::npos ? std::string_view::npos : second - colon - 1);
  if (second != std::string_view::npos) {
    if (tail == nullptr || second + 1 == rest.size()) return false;
    *tail = std::string(rest.substr(second + 1));
  }
  auto r1 = std::from_chars(rest.data(), rest.data() + colon, *a);
  auto r2 = std::from_chars(b_text.data(), b_text.data() + b_text.size(), *b);
  return r1.ec == std::errc() && r1.ptr == rest.data() + colon && r2.ec == std::errc() &&
         r2.ptr == b_text.data() + b_text.size() && *a >= 0 && *b >= 0;
}

inline Status BadCookie() {
  return Status(ErrorCode::kInvalidQuery,
                "_pagedResultsCookie is not one this server issued for this query");
}

}  // namespace redrive::engine
