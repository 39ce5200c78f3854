// Small text codecs shared by every module: durations, names, base64, UTF-8, hex, SHA-256, ids.
// All functions are pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace redrive {

// The longest duration anywhere: a century. ParseDuration refuses more, and so must every
// reader of integer milliseconds, so that whatever is accepted prints (FormatDuration) to a
// text that parses again.
inline constexpr DurationMs kMaxDuration = 100LL * 365 * 86'400'000;

// Parses "250ms", "30s", "5m", "2h", "7d" (an unsigned integer and a unit) or a bare integer
// of milliseconds, at most kMaxDuration. Errors: kInvalidDuration.
Result<DurationMs> ParseDuration(std::string_view text);
// The shortest exact rendering in the largest unit that divides it: 90000 -> "90s".
std::string FormatDuration(DurationMs d);

// Tenant, queue and token-label names: 1-80 characters of [A-Za-z0-9._-], not starting with
// '.' or '-'. Errors: kInvalidName, naming `what`.
Status ValidateName(std::string_view name, std::string_view what);

bool IsValidUtf8(std::string_view s);
std::string Base64Encode(std::string_view bytes);
// Errors: kInvalidBase64.
Result<std::string> Base64Decode(std::string_view text);
std::string HexEncode(std::string_view bytes);
// SHA-256 of `data` as lowercase hex.
std::string Sha256Hex(std::string_view data);
// HMAC-SHA256 of `data` under `key` (OpenSSL), as lowercase hex (64 digits).
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// A 26-character ULID (Crockford base32): 48 bits of time then 80 random bits. Sorts by time.
std::string NewUlid(TimeMs now, Random& random);

// RFC 3339 UTC with milliseconds, e.g. "2026-11-22T10:00:00.123Z".
std::string FormatTime(TimeMs t);
// Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (UTC). Errors: kInvalidArgument.
Result<TimeMs> ParseTime(std::string_view text);

}  // namespace redrive
