// A redrive job's state and phase, and their one text form: the same words in the store's
// `jobs.state` column, the job's progress, the API's JSON, the CLI and the audit log
// ("job.completed"). Defined once here; nothing else spells them. Thread-safe (constants).
#pragma once

#include <array>
#include <ostream>
#include <string_view>
#include <utility>

namespace redrive::store {

// running -> completed | cancelling -> cancelled | halted (canary) -> running | cancelled;
// failed when a step fails. Running, cancelling and halted are active (IsActive).
enum class JobState { kRunning, kCompleted, kCancelling, kCancelled, kHalted, kFailed };

// Where a running job is: moving the canary, waiting to judge it, moving the rest, or done.
// Kept by the engine in the job's progress.
enum class JobPhase { kCanary, kCanaryWait, kBulk, kDone };

inline constexpr std::array<std::pair<JobState, std::string_view>, 6> kJobStateNames = {{
    {JobState::kRunning, "running"},
    {JobState::kCompleted, "completed"},
    {JobState::kCancelling, "cancelling"},
    {JobState::kCancelled, "cancelled"},
    {JobState::kHalted, "halted"},
    {JobState::kFailed, "failed"},
}};

inline constexpr std::array<std::pair<JobPhase, std::string_view>, 4> kJobPhaseNames = {{
    {JobPhase::kCanary, "canary"},
    {JobPhase::kCanaryWait, "canary-wait"},
    {JobPhase::kBulk, "bulk"},
    {JobPhase::kDone, "done"},
}};

inline std::string_view ToString(JobState state) {
  for (const auto& [value, name] : kJobStateNames) {
    if (value == state) return name;
  }
  return "unknown";
}

inline std::string_view ToString(JobPhase phase) {
  for (const auto& [value, name] : kJobPhaseNames) {
    if (value == phase) return name;
  }
  return "unknown";
}

// False, and *out unchanged, for a word that names no state (phase).
inline bool FromString(std::string_view text, JobState* out) {
  for (const auto& [value, name] : kJobStateNames) {
    if (name == text) {
      *out = value;
      return true;
    }
  }
  return false;
}

inline bool FromString(std::string_view text, JobPhase* out) {
  for (const auto& [value, name] : kJobPhaseNames) {
    if (name == text) {
      *out = value;
      return true;
    }
  }
  return false;
}

// Running, cancelling or halted: the states of which a (tenant, scope) has at most one job.
inline bool IsActive(JobState state) {
  return state == JobState::kRunning || state == JobState::kCancelling ||
         state == JobState::kHalted;
}

// The words, for test messages and logs.
inline std::ostream& operator<<(std::ostream& os, JobState state) { return os << ToString(state); }
inline std::ostream& operator<<(std::ostream& os, JobPhase phase) { return os << ToString(phase); }

}  // namespace redrive::store
