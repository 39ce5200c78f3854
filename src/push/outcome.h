// What one push attempt did (DeliveryResult, filled by DeliveryClient) and what it means for the
// message (Classify): delivered, retry later, or failed for good. The retry schedule itself
// belongs to the engine's retry policy; this only sorts attempts and reads Retry-After.
//
// The rules, in order:
//   transport error       timeout, connection failure or reset, TLS failure, other, shutdown:
//                         retry (an endpoint that is down or misconfigured may come back; the
//                         retry policy bounds how long we wait for it). An invalid URL or a
//                         scheme other than http/https: permanent (no retry can fix it).
//   2xx                   success.
//   3xx                   permanent: redirects are never followed, by policy (a receiver that
//                         moved must be reconfigured, not chased).
//   the permanent set     permanent (default 400 401 403 404 405 410 413 422: the request or
//                         the endpoint is wrong, and sending it again gives the same answer);
//                         410 Gone also asks to disable the endpoint.
//   anything else         retry: 408, 429, every 5xx, the 4xx outside the set (a receiver's
//                         odd code is not a reason to drop a message), 1xx as a final answer,
//                         and a status outside 100-599.
// Codes in the permanent set that are 2xx are ignored (a success is a success).
//
// Thread-safety: values and pure functions.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace redrive::push {

// Why an attempt got no HTTP answer.
enum class TransportError {
  kNone,        // an HTTP status was received
  kTimeout,     // the request's deadline passed (connecting, sending or waiting for the answer)
  kConnection,  // could not resolve or connect, or the connection broke (reset, closed early)
  kTls,         // the TLS handshake or the peer's certificate failed
  kInvalidUrl,  // malformed URL, or a scheme other than http and https
  kShutdown,    // the client shut down with the request in flight
  kOther,       // anything else libcurl reports
};
std::string_view ToString(TransportError error);

// One attempt as the client saw it.
struct DeliveryResult {
  TransportError error = TransportError::kNone;
  std::string error_message;  // libcurl's text when error != kNone
  long status = 0;            // the HTTP status when error == kNone
  std::string retry_after;    // the Retry-After header's value, as received ("" when absent)
  std::string body_snippet;   // the first bytes of the response body (DeliveryClient: 1 KiB)
  DurationMs duration = 0;    // from the start of the transfer to its end
};

enum class Verdict { kSuccess, kRetry, kPermanent };
std::string_view ToString(Verdict verdict);

struct Outcome {
  Verdict verdict = Verdict::kRetry;
  bool disable_endpoint = false;  // 410 Gone: the receiver says the endpoint is no more
  // Only with kRetry: how long the endpoint asked us to wait (Retry-After), at least 0, at most
  // kMaxDuration. The retry policy decides what to do with it (e.g. a floor for the backoff).
  std::optional<DurationMs> retry_after;
  // A short, stable description for the attempt journal and failure groups: "http 503",
  // "timeout", "connection", "tls", "invalid-url", "shutdown", "transport"; "" on success.
  std::string cause;
};

// The default permanent-failure codes: 400 401 403 404 405 410 413 422.
const std::set<int>& DefaultPermanentCodes();

// Classifies `result` (see the rules above). `now` is for a Retry-After given as an HTTP date.
Outcome Classify(const DeliveryResult& result, TimeMs now,
                 const std::set<int>& permanent_codes = DefaultPermanentCodes());

// Parses a Retry-After value: delta-seconds (1*DIGIT) or an HTTP-date in any of the three forms
// RFC 9110 section 5.6.7 says a recipient must accept (IMF-fixdate "Sun, 06 Nov 1994 08:49:37
// GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"),
// surrounding spaces allowed. A date is taken relative to `now`; a date in the past gives 0.
// The result is clamped to [0, kMaxDuration]. nullopt when the value is empty or malformed.
std::optional<DurationMs> ParseRetryAfter(std::string_view value, TimeMs now);

}  // namespace redrive::push
