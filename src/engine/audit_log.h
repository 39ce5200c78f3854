// The audit log: every administrative change and dead-letter action, with who did it (internal
// to the engine; read through Tenancy::QueryServerAudit and DeadLetters::QueryAudit).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "engine/model.h"
#include "store/control_store.h"

namespace redrive::engine {

// Thread-safe.
class AuditLog {
 public:
  AuditLog(store::ControlStore& control, Clock& clock);

  // Appends one entry to the log of `tenant` ("" = server-wide). Best effort: a failure is
  // logged, not returned (the change it records has happened).
  void Write(const std::string& tenant, const std::string& actor, const std::string& action,
             nlohmann::json detail);
  // The log of `tenant` ("" = server-wide), filtered and paged. Errors: kInvalidQuery.
  Result<AuditQueryResult> Read(const std::string& tenant, const AuditQuery& query);

  // Called after each entry is appended (from the writer's thread; it must not block). Set
  // before the log is shared between threads, or cleared (nullptr) once no thread writes.
  void SetObserver(std::function<void(const store::AuditRecord&)> observer) {
    observer_ = std::move(observer);
  }

  // What differs between two JSON objects, by JSON pointer: {"/a/b": {"from": x, "to": y}}.
  static nlohmann::json Changes(const nlohmann::json& before, const nlohmann::json& after);

 private:
  store::ControlStore& control_;
  Clock& clock_;
  std::function<void(const store::AuditRecord&)> observer_;
};

}  // namespace redrive::engine
