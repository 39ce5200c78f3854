// Field readers of configuration objects (internal/config_fields.h).
#include "engine/internal/config_fields.h"

#include "common/text.h"

namespace redrive::engine::internal {

Status Bad(const std::string& field, const std::string& why) {
  return Status(ErrorCode::kInvalidArgument, "'" + field + "' " + why);
}

Status ReadDuration(const nlohmann::json& v, const std::string& field, DurationMs* out) {
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    // The same ceiling as a string: a larger value would be stored in a form that no longer
    // parses, and the queue could not be loaded again.
    if (v.get<int64_t>() > kMaxDuration) {
      return Status(ErrorCode::kInvalidDuration, "'" + field + "' must be at most 36500d");
    }
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  if (!v.is_string()) return Bad(field, "must be a duration string like \"30s\"");
  auto d = ParseDuration(v.get<std::string>());
  if (!d.ok())
    return Status(ErrorCode::kInvalidDuration, "'" + field + "': " + d.status().message());
  *out = d.value();
  return Status::Ok();
}

Status ReadInt(const nlohmann::json& v, const std::string& field, int64_t lo, int64_t hi,
               int64_t* out) {
  if (!v.is_number_integer()) return Bad(field, "must be an integer");
  int64_t n = v.get<int64_t>();
  if (n < lo || n > hi) {
    return Bad(field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = n;
  return Status::Ok();
}

Status ReadDouble(const nlohmann::json& v, const std::string& field, double lo, double hi,
                  double* out) {
  if (!v.is_number()) return Bad(field, "must be a number");
  double d = v.get<double>();
  if (!(d >= lo && d <= hi)) {
    return Bad(field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = d;
  return Status::Ok();
}

Status ReadBool(const nlohmann::json& v, const std::string& field, bool* out) {
  if (!v.is_boolean()) return Bad(field, "must be true or false");
  *out = v.get<bool>();
  return Status::Ok();
}

Status ReadString(const nlohmann::json& v, const std::string& field, std::string* out) {
  if (!v.is_string()) return Bad(field, "must be a string");
  *out = v.get<std::string>();
  return Status::Ok();
}

Status Unknown(const std::string& field) {
  return Status(ErrorCode::kUnknownField, "unknown field '" + field + "'");
}

}  // namespace redrive::engine::internal
