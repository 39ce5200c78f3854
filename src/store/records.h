// Records shared by the two store ports (message_store.h, control_store.h) and by the codecs
// every backend uses: a message's attributes, its attempt journal and lineage, and the death
// record with which a message becomes a dead letter. Plain value types; thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace redrive::store {

using Attributes = std::map<std::string, std::string>;

// One delivery attempt, as kept in a message's journal.
struct Attempt {
  Attempt() = default;
  Attempt(TimeMs at, std::string consumer, std::string outcome, std::string reason,
          std::string error)
      : at(at),
        consumer(std::move(consumer)),
        outcome(std::move(outcome)),
        reason(std::move(reason)),
        error(std::move(error)) {}

  TimeMs at = 0;
  std::string consumer;
  std::string outcome;  // "nack", "lease-timeout", "rejected", "expired", "overflow", ...
  std::string reason;
  std::string error;
  // A push delivery's: the HTTP status (0 = no answer), how long it took, and the first KiB of
  // the response body.
  int status = 0;
  int64_t duration_ms = 0;
  std::string response;
};

struct Journal {
  std::vector<Attempt> attempts;  // bounded by the engine: the first and the last are kept
  int64_t omitted = 0;            // attempts dropped from the middle
};

// Where a message has been: set when redrive moves a dead letter back into a queue.
struct Lineage {
  int32_t redrive_count = 0;  // times it was restored or rerouted
  TimeMs last_redriven_at = 0;
  std::string last_redriven_by;  // "job:<id>" or "request:<token id>"
  std::string original_queue;    // where it was first published (kept across reroutes)
};

// How a message leaves for the dead-letter queue; the rest comes from the message itself. Made
// by the engine, applied by the message port (SettleFailures, overflow on Publish), read back
// through the control port as a DeadLetterRecord.
struct DeathInfo {
  std::string dlq;     // dead-letter queue name in the same tenant
  std::string reason;  // max-deliveries, rejected, expired, overflow, ...
  std::string cause;   // last error, in the words of whoever failed it
  TimeMs at = 0;
  TimeMs retain_until = 0;  // 0 = forever
  std::string group_id;     // failure group (see engine/failure_group.h)
  std::string signature;
  // Set when the origin keeps no personal data in its dead letters (engine/redaction.h,
  // storeRedacted): the store calls it on the message's body, attributes and journal as it
  // moves them, stores what it leaves and marks the dead letter redacted. The engine's rule;
  // called inside the move's transaction, it neither fails nor blocks.
  std::function<void(std::string& body, Attributes& attributes, Journal& journal)> redact;
};
using DeadLetterRedaction = decltype(DeathInfo::redact);

}  // namespace redrive::store
