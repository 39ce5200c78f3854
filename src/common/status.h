// Status and Result<T>: the way every fallible call in redrive reports failure.
//
// A Status is an error code from the catalogue in errors.h plus a human message. No exception
// crosses a module boundary; third-party throwers are wrapped where they are called.
// Thread-safety: value types, safe to copy between threads.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "common/errors.h"

namespace redrive {

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok(). Calling value() on an error aborts with the status: a programming error.
  T& value() & { return Checked(); }
  const T& value() const& { return const_cast<Result*>(this)->Checked(); }
  // By value, so that `for (auto& x : F().value())` does not dangle into a dead temporary.
  T value() && { return std::move(Checked()); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  T& Checked() {
    if (!value_) {
      std::fprintf(stderr, "Result::value() on an error: %s\n", status_.ToString().c_str());
      std::abort();
    }
    return *value_;
  }

  Status status_;
  std::optional<T> value_;
};

#define REDRIVE_RETURN_IF_ERROR(expr) \
  do {                                \
    ::redrive::Status _st = (expr);   \
    if (!_st.ok()) return _st;        \
  } while (0)

#define REDRIVE_CONCAT_INNER(a, b) a##b
#define REDRIVE_CONCAT(a, b) REDRIVE_CONCAT_INNER(a, b)
#define REDRIVE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
#define REDRIVE_ASSIGN_OR_RETURN(lhs, expr) \
  REDRIVE_ASSIGN_OR_RETURN_IMPL(REDRIVE_CONCAT(_res_, __LINE__), lhs, expr)

}  // namespace redrive
