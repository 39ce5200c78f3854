#include "api/json_io.h"

#include <algorithm>
#include <cstring>

#include "common/text.h"

namespace redrive::api {

int JsonDepth(std::string_view text) {
  int depth = 0, max_depth = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    char c = *p++;
    if (c == '"') {
      // Skip the string to its closing quote: memchr for the quote, and a quote after an odd
      // run of backslashes is escaped. Strings (message bodies) are most of a body's bytes.
      for (;;) {
        const auto* q = static_cast<const char*>(std::memchr(p, '"', end - p));
        if (q == nullptr) return max_depth;
        const char* b = q;
        while (b > p && b[-1] == '\\') --b;
        p = q + 1;
        if ((q - b) % 2 == 0) break;
      }
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

Result<json> ParseObject(std::string_view body) {
  if (JsonDepth(body) > kMaxJsonDepth) {
    return Status(ErrorCode::kJsonTooDeep,
                  "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    return Status(ErrorCode::kInvalidJson,
                  "invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const json::exception& e) {
    // Not only parse_error: a number too large for a double (1e400) is out_of_range.
    return Status(ErrorCode::kInvalidJson, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) return Status(ErrorCode::kInvalidJson, "the body must be a JSON object");
  return j;
}

Status OnlyFields(const json& obj, std::initializer_list<std::string_view> allowed,
                  std::string_view where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool known = false;
    for (auto a : allowed) known = known || it.key() == a;
    if (!known) {
      return Status(ErrorCode::kUnknownField,
                    "unknown field '" + std::string(where) + it.key() + "'");
    }
  }
  return Status::Ok();
}

namespace {
Status WrongType(const char* field, const char* type) {
  return Status(ErrorCode::kInvalidArgument, "'" + std::string(field) + "' must be " + type);
}
}  // namespace

Result<std::optional<std::string>> GetString(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return WrongType(field, "a string");
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<int64_t>> GetInt(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer()) return WrongType(field, "an integer");
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<std::optional<bool>> GetBool(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return WrongType(field, "true or false");
  return std::optional<bool>(it->get<bool>());
}

Result<std::optional<DurationMs>> GetDuration(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::optional<DurationMs>();
  if (it->is_number_integer() && it->get<int64_t>() >= 0) {
    if (it->get<int64_t>() > kMaxDuration) {
      return Status(ErrorCode::kInvalidDuration,
                    "'" + std::string(field) + "' must be at most 36500d");
    }
    return std::optional<DurationMs>(it->get<int64_t>());
  }
  if (!it->is_string()) return WrongType(field, "a duration like \"30s\"");
  auto d = ParseDuration(it->get<std::string>());
  if (!d.ok()) {
    return Status(ErrorCode::kInvalidDuration,
                  "'" + std::string(field) + "': " + d.status().message());
  }
  return std::optional<DurationMs>(d.value());
}

}  // namespace redrive::api
