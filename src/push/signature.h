// Standard Webhooks signatures (https://www.standardwebhooks.com/): what a push delivery puts in
// its `webhook-signature` header, so that a receiver's stock Standard Webhooks library verifies
// it.
//
// A secret is "whsec_" followed by the standard base64 (with padding) of the key bytes, 24 to 64
// of them. A signature is "v1," followed by the base64 of HMAC-SHA256(key, "{id}.{timestamp}.
// {body}"), where id is the `webhook-id` header (the message id: the same on every retry),
// timestamp the `webhook-timestamp` header (Unix seconds of this attempt) and body the exact
// bytes sent. During a key rotation an endpoint has several secrets and the header carries one
// signature per secret, separated by single spaces; a receiver accepts any one that matches.
//
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace redrive::push {

// The request headers of a signed delivery.
inline constexpr std::string_view kWebhookIdHeader = "webhook-id";
inline constexpr std::string_view kWebhookTimestampHeader = "webhook-timestamp";
inline constexpr std::string_view kWebhookSignatureHeader = "webhook-signature";

inline constexpr std::string_view kSecretPrefix = "whsec_";
inline constexpr size_t kMinSecretBytes = 24;
inline constexpr size_t kMaxSecretBytes = 64;
// How many key bytes NewSecret draws by default.
inline constexpr size_t kNewSecretBytes = 32;

// A fresh secret of `bytes` random key bytes from `random` (which must be a cryptographic
// source in production: SystemRandom).
// REQUIRES: kMinSecretBytes <= bytes <= kMaxSecretBytes.
std::string NewSecret(Random& random, size_t bytes = kNewSecretBytes);

// The key bytes of `secret`. Errors: kInvalidArgument when the prefix is missing, the rest is
// not canonical padded base64, or the key is shorter than kMinSecretBytes or longer than
// kMaxSecretBytes. The message never repeats the secret.
Result<std::string> ParseSecret(std::string_view secret);

// One signature, "v1,<base64>", with the key bytes (not the whsec_ text).
std::string SignWithKey(std::string_view key, std::string_view msg_id, int64_t timestamp_seconds,
                        std::string_view body);

// The `webhook-signature` header value: one signature per secret, in the order given, separated
// by spaces. Errors: kInvalidArgument when `secrets` is empty or one of them does not parse
// (naming its position, not its text).
Result<std::string> Sign(std::string_view msg_id, int64_t timestamp_seconds, std::string_view body,
                         const std::vector<std::string>& secrets);

}  // namespace redrive::push
