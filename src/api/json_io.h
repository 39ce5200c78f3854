// Strict JSON request decoding for the REST handlers: size and depth limits, unknown fields
// rejected, typed field readers whose errors name the field. Thread-safe (pure functions).
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace redrive::api {

using nlohmann::json;

inline constexpr int kMaxJsonDepth = 32;

// The nesting depth of `text` (arrays and objects), counted without parsing.
int JsonDepth(std::string_view text);

// Parses a request body that must be a JSON object. Errors: kInvalidJson (with the byte
// offset), kJsonTooDeep.
Result<json> ParseObject(std::string_view body);

// kUnknownField unless every key of `obj` is in `allowed`. `where` prefixes the field name.
Status OnlyFields(const json& obj, std::initializer_list<std::string_view> allowed,
                  std::string_view where = "");

// Field readers: absent -> std::nullopt (or the default); present with the wrong type ->
// kInvalidArgument naming the field.
Result<std::optional<std::string>> GetString(const json& obj, const char* field);
Result<std::optional<int64_t>> GetInt(const json& obj, const char* field);
Result<std::optional<bool>> GetBool(const json& obj, const char* field);
// Accepts "30s"-style strings or integer milliseconds.
Result<std::optional<DurationMs>> GetDuration(const json& obj, const char* field);

}  // namespace redrive::api
