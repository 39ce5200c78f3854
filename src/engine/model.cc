#include "engine/model.h"

#include <algorithm>

namespace redrive::engine {
namespace {

using nlohmann::json;

// Rate and burst are kept well inside what a double counts exactly.
constexpr int64_t kMaxRequestRate = 1'000'000'000;

struct QuotaField {
  const char* name;
  std::optional<int64_t> QuotaOverrides::*override;
  int64_t TenantQuotas::*quota;
};

constexpr QuotaField kQuotaFields[] = {
    {"maxQueues", &QuotaOverrides::max_queues, &TenantQuotas::max_queues},
    {"maxMessages", &QuotaOverrides::max_messages, &TenantQuotas::max_messages},
    {"maxBytes", &QuotaOverrides::max_bytes, &TenantQuotas::max_bytes},
    {"requestRate", &QuotaOverrides::request_rate, &TenantQuotas::request_rate},
    {"requestBurst", &QuotaOverrides::request_burst, &TenantQuotas::request_burst},
};

Status CheckQuotaValue(const char* name, int64_t v) {
  std::string_view n(name);
  int64_t max = (n == "requestRate" || n == "requestBurst") ? kMaxRequestRate : INT64_MAX;
  if (v < 0 || v > max) {
    return Status(ErrorCode::kInvalidArgument, "quota '" + std::string(name) +
                                                   "' must be an integer from 0 (unlimited) to " +
                                                   std::to_string(max));
  }
  return Status::Ok();
}

}  // namespace

const std::vector<std::string>& TenantScopes() {
  static const std::vector<std::string> kScopes = {
      kScopePublish,   kScopeConsume, kScopeDlqRead,          kScopeDlqWrite,
      kScopeDlqExport, kScopeAdmin,   kScopeDlqReadUnredacted};
  return kScopes;
}

const std::vector<std::string>& DefaultTenantScopes() {
  static const std::vector<std::string> kScopes = {kScopePublish,  kScopeConsume,   kScopeDlqRead,
                                                   kScopeDlqWrite, kScopeDlqExport, kScopeAdmin};
  return kScopes;
}

const std::vector<std::string>& DeadLetterReasons() {
  static const std::vector<std::string> kReasons = {
      kReasonMaxDeliveries, kReasonRejected,         kReasonExpired, kReasonOverflow,
      kReasonNoRoute,       kReasonPermanentFailure, kReasonScript};
  return kReasons;
}

bool Principal::HasScope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

void EngineCounters::CountDeadLetter(std::string_view reason) {
  const auto& reasons = DeadLetterReasons();
  for (size_t i = 0; i < reasons.size() && i < dead_lettered.size(); ++i) {
    if (reasons[i] == reason) ++dead_lettered[i];
  }
}

void EngineCounters::CountScriptDecision(std::string_view decision) {
  for (size_t i = 0; i < kScriptDecisions.size(); ++i) {
    if (kScriptDecisions[i] == decision) ++script_decisions[i];
  }
}

Status ValidateQuotaOverrides(const QuotaOverrides& o) {
  for (const auto& f : kQuotaFields) {
    if (const auto& v = o.*f.override) REDRIVE_RETURN_IF_ERROR(CheckQuotaValue(f.name, *v));
  }
  return Status::Ok();
}

TenantQuotas EffectiveQuotas(const TenantQuotas& defaults, const QuotaOverrides& o) {
  TenantQuotas q = defaults;
  for (const auto& f : kQuotaFields) {
    if (const auto& v = o.*f.override) q.*f.quota = *v;
  }
  return q;
}

// ------------------------------------------------------------------ quota JSON

json TenantQuotasToJson(const TenantQuotas& q) {
  json j = json::object();
  for (const auto& f : kQuotaFields) j[f.name] = q.*f.quota;
  return j;
}

json QuotaOverridesToJson(const QuotaOverrides& o) {
  json j = json::object();
  for (const auto& f : kQuotaFields) {
    if (const auto& v = o.*f.override) j[f.name] = *v;
  }
  return j;
}

Status ApplyQuotaOverridesJson(const json& j, QuotaOverrides* o) {
  if (!j.is_object()) return Status(ErrorCode::kInvalidArgument, "'quotas' must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const QuotaField* field = nullptr;
    for (const auto& f : kQuotaFields) {
      if (it.key() == f.name) field = &f;
    }
    if (!field) {
      return Status(ErrorCode::kUnknownField,
                    "unknown quota '" + it.key() +
                        "' (known: maxQueues, maxMessages, maxBytes, requestRate, requestBurst)");
    }
    if (it->is_null()) {
      (o->*field->override).reset();
      continue;
    }
    if (!it->is_number_integer()) {
      return Status(ErrorCode::kInvalidArgument,
                    "quota '" + it.key() + "' must be an integer (0 = unlimited) or null");
    }
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX}
                    ? -1
                    : it->get<int64_t>();
    REDRIVE_RETURN_IF_ERROR(CheckQuotaValue(field->name, v));
    o->*field->override = v;
  }
  return Status::Ok();
}

}  // namespace redrive::engine
