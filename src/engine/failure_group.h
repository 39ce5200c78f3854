// Failure groups: dead letters whose causes share one normalized signature (plus origin and
// reason). The normalization replaces what varies between occurrences of the same failure:
// quoted values, timestamps, UUIDs, ULIDs, hashes and long numbers. Short numbers (up to three
// digits, such as HTTP status codes) are kept: "HTTP 503" and "HTTP 400" are different failures.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace redrive::engine {

inline constexpr size_t kMaxSignatureCause = 240;

// The cause with its varying parts replaced by <str>, <time>, <uuid>, <id>, <hex>, <n>;
// whitespace collapsed; at most kMaxSignatureCause bytes.
std::string NormalizeCause(std::string_view cause);

struct FailureSignature {
  std::string text;      // "origin | reason | normalized cause"
  std::string group_id;  // 16 hex characters, stable for the same text
};

FailureSignature SignatureOf(std::string_view origin, std::string_view reason,
                             std::string_view cause);

// The normalized cause of a signature made by SignatureOf(origin, reason, ...): the text after
// "origin | reason | ", or the whole signature when it does not start so.
std::string_view CauseOfSignature(std::string_view signature, std::string_view origin,
                                  std::string_view reason);

}  // namespace redrive::engine
