#include "common/errors.h"

#include "common/status.h"

namespace redrive {
namespace {

constexpr ErrorInfo kErrors[] = {
#define REDRIVE_ERROR_ROW(name, wire, http, desc) {ErrorCode::name, wire, http, desc},
    REDRIVE_ERROR_CODES(REDRIVE_ERROR_ROW)
#undef REDRIVE_ERROR_ROW
};

}  // namespace

const ErrorInfo& GetErrorInfo(ErrorCode code) { return kErrors[static_cast<size_t>(code)]; }

const ErrorInfo* AllErrors(size_t* count) {
  *count = sizeof(kErrors) / sizeof(kErrors[0]);
  return kErrors;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(GetErrorInfo(code_).wire_code) + ": " + message_;
}

}  // namespace redrive
