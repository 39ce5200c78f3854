// Decoding of a publish request's body ({"messages": [...]}) into the engine's NewMessage list.
//
// Publish bodies are the largest and most frequent bodies the server reads (a batch of 100
// messages of 1 KiB is ~110 KB), and parsing them into an nlohmann tree, one character at a
// time, was the largest share of the connection threads' CPU (docs/benchmarks.md). So the
// plain shape of a publish is decoded with simdjson, and every other body (a parse error, an
// unknown, null or repeated field, a delay, a base64 body, an oversized body) with the general
// decoder, which gives the errors. The fast path decides speed only: where it returns a
// result, the general decoder returns the same one (publish_decoder_test.cc checks it).
//
// Thread-safe: the simdjson parsers come from a small pool.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "api/json_io.h"
#include "common/status.h"
#include "engine/engine.h"

namespace redrive::api {

// Bodies up to this size may take the fast path; larger ones (rare: a batch of 1,000 messages
// of 1 KiB is ~1.1 MB) take the general decoder, so no pooled parser grows past it.
inline constexpr size_t kFastPublishMaxBytes = 4 * 1024 * 1024;

// The body's messages, or the error the API answers with: kInvalidJson, kJsonTooDeep,
// kUnknownField, kMissingField, kInvalidArgument (naming messages[i].field), kInvalidDuration,
// and Base64Decode's errors.
Result<std::vector<engine::NewMessage>> DecodePublish(std::string_view body);

// The two paths, for tests. The fast path returns std::nullopt for every body it does not
// take: only objects whose one member is a non-empty "messages" array of objects with "body"
// (a string), and optionally "attributes" (an object of strings), "idempotencyKey" (a string)
// and "base64": false, each once, every string valid UTF-8.
std::optional<std::vector<engine::NewMessage>> DecodePublishFast(std::string_view body);
// The general decoder moves the strings out of `body`.
Result<std::vector<engine::NewMessage>> DecodePublishGeneral(json& body);

}  // namespace redrive::api
