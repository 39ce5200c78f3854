// Reading the fields of a configuration object (queue, topic, subscription, endpoint): the
// errors name the field. Shared by queue_config.cc and subscription_config.cc.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace redrive::engine::internal {

// kInvalidArgument: "'<field>' <why>".
Status Bad(const std::string& field, const std::string& why);
// kUnknownField.
Status Unknown(const std::string& field);
// A duration string ("30s") or a non-negative integer of milliseconds, at most 36500d.
Status ReadDuration(const nlohmann::json& v, const std::string& field, DurationMs* out);
Status ReadInt(const nlohmann::json& v, const std::string& field, int64_t lo, int64_t hi,
               int64_t* out);
Status ReadDouble(const nlohmann::json& v, const std::string& field, double lo, double hi,
                  double* out);
Status ReadBool(const nlohmann::json& v, const std::string& field, bool* out);
Status ReadString(const nlohmann::json& v, const std::string& field, std::string* out);

}  // namespace redrive::engine::internal
