// Redaction: the privacy rules of a queue or subscription (QueueConfig::redaction) and how they
// are applied to a message's body, attributes and the free text beside them (docs/privacy.md).
//
// A rule names JSON pointers (RFC 6901) into JSON bodies and attribute names. Each value they
// reach is replaced by a marker: "***" (mode mask), or "hmac:" and the first 16 hex digits of
// HMAC-SHA256 under the tenant's key of the value's text (mode hash: a string's own characters,
// anything else its compact JSON), so equal values stay equal and a filter on the hash matches.
// A body that is not JSON (or not UTF-8) cannot be reached by pointers, so when a rule has
// pointers it is replaced whole (fail closed). A value already in a marker's form is left as
// it is, so redacting twice changes nothing (a dead letter stored redacted, shown redacted).
// Free text that may quote a value (a cause, an attempt's reason, error or endpoint response,
// a script's log line) has every literal occurrence of a replaced value of 4 characters or more
// replaced by the same marker.
//
// Thread-safety: the free functions are pure; Redactor is thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "engine/coordination.h"
#include "store/control_store.h"
#include "store/message_store.h"

namespace redrive::engine {

class Queues;
struct CachedQueue;

enum class RedactionMode { kMask, kHash };

inline constexpr char kRedactionMask[] = "***";
inline constexpr char kRedactionHashPrefix[] = "hmac:";
inline constexpr size_t kRedactionHashDigits = 16;
inline constexpr size_t kMaxRedactionRules = 64;      // pointers, and attribute names, each
inline constexpr size_t kMaxRedactionPointer = 1024;  // characters of one pointer
inline constexpr size_t kMinScrubbedLength = 4;       // shorter values are not sought in text

// QueueConfig::redaction. Its JSON form: {"pointers": ["/customer/email"], "attributes":
// ["email"], "mode": "mask" | "hash", "storeRedacted": false}.
struct RedactionRules {
  std::vector<std::string> pointers;    // RFC 6901, each starting with "/"
  std::vector<std::string> attributes;  // attribute names
  RedactionMode mode = RedactionMode::kMask;
  // The values are replaced when a message is dead-lettered, so they never rest in the
  // dead-letter store; such dead letters are marked redacted and a restore, reroute or redrive
  // job refuses them unless asked with allowRedacted.
  bool store_redacted = false;
  bool empty() const { return pointers.empty() && attributes.empty(); }
};

// Applies the JSON form `j` (an object, or null for no rules) to *rules. Errors name the field
// ("redaction.pointers[1]"): kUnknownField, kInvalidArgument (a pointer that is not RFC 6901,
// an empty attribute name, more than kMaxRedactionRules of either, an unknown mode,
// storeRedacted without any pointer or attribute).
Status ApplyRedactionJson(const nlohmann::json& j, RedactionRules* rules);
nlohmann::json RedactionToJson(const RedactionRules& rules);
bool IsRedactedValue(std::string_view v);

// What one redaction replaced: each value's text and the marker that took its place, longest
// first, for ScrubText.
using Replacements = std::vector<std::pair<std::string, std::string>>;

// Redacts `body` and `attributes` in place by `rules`, hashing with `key` (mode hash); returns
// what it replaced. A JSON body it changes is written back compact.
Replacements RedactMessage(const RedactionRules& rules, std::string_view key, std::string* body,
                           store::Attributes* attributes);
// Replaces every occurrence in `text` of a replaced value (kMinScrubbedLength or longer).
void ScrubText(const Replacements& replaced, std::string* text);
void ScrubJournal(const Replacements& replaced, store::Journal* journal);
// A dead letter as a viewer without dlq:read-unredacted sees it: body and attributes redacted,
// and the cause, signature and attempt journal scrubbed.
void RedactDeadLetter(const RedactionRules& rules, std::string_view key,
                      store::DeadLetterRecord* d);

// Applies the rules of each tenant's queues, with the tenant's key. Thread-safe.
class Redactor : public CoordinationListener {
 public:
  Redactor(store::ControlStore& control, Random& random, Queues& queues, Coordinator& coordinator);
  ~Redactor() override;
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;

  // The tenant's hashing key: 32 random bytes made on first use and kept in the store
  // (ControlStore::TenantSecret), so it is the same after a restart and on every node sharing
  // the store; forgotten here when the tenant is invalidated (deleted: its key goes with it).
  // Never shown, logged or exported.
  Result<std::string> KeyOf(const std::string& tenant);
  // Redacts `d` by the rules of its origin (a queue or subscription of d->tenant; none when the
  // origin has none or no longer exists).
  Status RedactDeadLetter(store::DeadLetterRecord* d);
  // A topic event's body and attributes by the rules of every subscription of `topic` at once
  // (the union of their pointers and attribute names; mask when any of them masks).
  Status RedactTopicEvent(const std::string& tenant, const std::string& topic, std::string* body,
                          store::Attributes* attributes);
  // What a dead-lettering from `q` stores instead of the message (DeathInfo::redact): empty
  // unless q's rules say storeRedacted. Never fails: when the key cannot be read, the values
  // are masked rather than hashed (logged), and never stored as they are.
  store::DeadLetterRedaction StoreRedaction(const CachedQueue& q);
  // Whether `origin` (a queue of `tenant`) has redaction rules now.
  bool HasRules(const std::string& tenant, const std::string& origin);
  // The values of `msg` that q's rules redact, to scrub them from log lines and causes; empty
  // when q has none (when the key cannot be read, the markers are masks).
  Replacements ValuesOf(const CachedQueue& q, const store::MessageRecord& msg);

  void OnInvalidate(CacheScope scope, const std::string& key) override;

 private:
  // `rules`, with mask instead of hash when the tenant's key cannot be read; *key set.
  RedactionRules Effective(const RedactionRules& rules, const std::string& tenant,
                           std::string* key);

  store::ControlStore& control_;
  Random& random_;
  Queues& queues_;
  Coordinator& coordinator_;
  std::mutex mu_;
  std::unordered_map<std::string, std::string> keys_;  // by tenant. GUARDED_BY(mu_)
};

}  // namespace redrive::engine
