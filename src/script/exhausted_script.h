// ExhaustedScript: an operator's Lua 5.4 script that decides what happens to a message whose
// retries are exhausted (issue 13). The script API is documented for users in docs/scripts.md;
// this header is the C++ contract.
//
// The script is a Lua chunk (text, never bytecode) run once per exhausted message in a fresh
// interpreter. It sees two globals, as ForgeRock's onSyncFailure script sees syncFailure and
// failureCause:
//   failure       a table: id, origin, topic, subscription, attributes (name -> value), body
//                 (the raw bytes), bodyIsText, deliveryCount, attempts (the journal: a list of
//                 {at, atMs, consumer, outcome, reason, error}), attemptsOmitted
//   failureCause  the cause the message would be dead-lettered with (a string)
// and decides by calling exactly one handler: deadLetter(), drop(), reroute(queue) or
// retryIn(delay). The first handler called decides; calling a second is an error. log(...)
// keeps up to kMaxLogLines lines for the caller to log.
//
// The sandbox: the base library without dofile, loadfile, collectgarbage and print (load is
// text-only; setmetatable refuses __gc, since Lua runs finalizers with hooks off), and the string
// (without string.dump), table, math and utf8 libraries. No io, os, package, require, debug or
// coroutine. Each run is bounded by ScriptLimits: Lua instructions
// (a count hook) and bytes the script allocates (a counting allocator; the failure handed to
// the script is not counted).
//
// Any failure of the run -- a runtime error, a handler called wrongly or twice, too many
// instructions, too much memory, or no handler called -- yields kDeadLetter with `error` set:
// the message is dead-lettered with reason kScriptReason and the error as its cause. A run that
// hit a limit fails even if the script caught the error with pcall and then called a handler.
//
// The instruction bound counts Lua instructions, not time inside one library call. The only
// library calls whose time their input and the memory bound do not bound are the string
// library's pattern functions (find, match, gmatch, gsub), which backtrack; they refuse a call
// whose worst case, estimated from the pattern's shape and the subject's length, is too costly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "store/records.h"

namespace redrive::script {

// The dead-letter reason of a message whose script failed.
inline constexpr char kScriptReason[] = "script";
// retryIn accepts 0 to this (the same bound as engine::kMaxDelay).
inline constexpr DurationMs kMaxRetryDelay = 7 * 86'400'000LL;
// ScriptDecision::error is clipped to this many bytes (at a UTF-8 boundary).
inline constexpr size_t kMaxErrorBytes = 1024;
// log(...) keeps this many lines of at most kMaxLogLineBytes each; the rest are counted.
inline constexpr size_t kMaxLogLines = 20;
inline constexpr size_t kMaxLogLineBytes = 1024;

// What the script is told about the failed message.
struct ScriptFailure {
  std::string message_id;
  std::string origin;        // the queue it came from
  std::string topic;         // empty when it was not published to a topic
  std::string subscription;  // empty when it was not delivered by a subscription
  store::Attributes attributes;
  std::string body;  // the raw bytes
  bool body_is_text = true;
  store::Journal journal;
  int64_t delivery_count = 0;
  std::string cause;  // what it would be dead-lettered with
};

struct ScriptDecision {
  enum class Kind { kDeadLetter, kDrop, kReroute, kRetryIn };
  Kind kind = Kind::kDeadLetter;
  std::string queue;     // kReroute: a valid queue name (common/text.h ValidateName)
  DurationMs delay = 0;  // kRetryIn: 0 to kMaxRetryDelay
  // Set when the run failed: kind is kDeadLetter, the reason kScriptReason, this the cause.
  std::string error;
  std::vector<std::string> log;  // what the script logged, in order
  int64_t log_omitted = 0;       // lines beyond kMaxLogLines

  bool failed() const { return !error.empty(); }
};

struct ScriptLimits {
  int64_t max_instructions = 1'000'000;  // Lua VM instructions per run
  size_t max_memory = 8 * 1024 * 1024;   // bytes the script may hold at once
  size_t max_source = 64 * 1024;         // bytes of source
};

// A compiled script. Immutable, so thread-safe: Run may be called from any number of threads at
// once. Shared (shared_ptr) by whoever holds the configuration it came from and the runs in
// flight, so that replacing the script does not pull it from under a run.
class ExhaustedScript {
 public:
  // Checks `source`: at most limits.max_source bytes, Lua text (a binary chunk is refused) that
  // compiles. Errors: kInvalidArgument, with Lua's message and line ("script:3: ...").
  static Result<std::shared_ptr<const ExhaustedScript>> Compile(std::string source,
                                                                ScriptLimits limits = {});

  // Runs the script for `failure` in a fresh interpreter. Never fails: a failed run is a
  // kDeadLetter decision with `error` set (see the top of this file).
  ScriptDecision Run(const ScriptFailure& failure) const;

  const std::string& source() const { return source_; }
  const ScriptLimits& limits() const { return limits_; }

 private:
  ExhaustedScript(std::string source, ScriptLimits limits)
      : source_(std::move(source)), limits_(limits) {}

  std::string source_;
  ScriptLimits limits_;
};

std::string_view DecisionKindName(ScriptDecision::Kind kind);

}  // namespace redrive::script
