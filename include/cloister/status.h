// Status and StatusOr<T>: how every fallible call in libcloister reports
// failure. Project code never throws; errors cross module boundaries as
// values and are turned into exit codes or errno in exactly one place each
// (the CLI's main and, later, the runtime's shims).
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cloister {

// Codes follow the POSIX errors a file-system caller needs, plus the two
// failures that matter most here: kIntegrity (bytes did not authenticate)
// and kStale (authentic, but not the state the caller expected).
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kNotADirectory,
  kIsADirectory,
  kDirectoryNotEmpty,
  kPermissionDenied,
  kFailedPrecondition,
  kIntegrity,
  kStale,
  kIoError,
  kUnimplemented,
  kResourceExhausted,
  kInternal,
  kUnavailable,       // a service is not ready (sealed, starting, unreachable)
  kUnauthenticated,   // the caller did not say who it is
};

// Name of a code, e.g. "integrity" (stable; for logs and future APIs).
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "integrity: chunk 3 of object ... does not authenticate"
  std::string ToString() const;

  // Returns a status with the same code and "prefix: message".
  Status WithContext(std::string_view prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Convenience constructors, one per code used across the project.
Status InvalidArgument(std::string msg);
Status NotFound(std::string msg);
Status AlreadyExists(std::string msg);
Status NotADirectory(std::string msg);
Status IsADirectory(std::string msg);
Status DirectoryNotEmpty(std::string msg);
Status PermissionDenied(std::string msg);
Status FailedPrecondition(std::string msg);
Status IntegrityError(std::string msg);
Status StaleError(std::string msg);
Status IoError(std::string msg);
Status Unimplemented(std::string msg);
Status ResourceExhausted(std::string msg);
Status InternalError(std::string msg);
Status Unavailable(std::string msg);
Status Unauthenticated(std::string msg);

// Builds an kIoError status from an errno value ("open x: No such file").
Status ErrnoStatus(std::string_view what, int err);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) {  // NOLINT: implicit
    if (status_.ok()) status_ = InternalError("StatusOr built from OK status");
  }
  StatusOr(Status&& status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = InternalError("StatusOr built from OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & { return Check(), *value_; }
  const T& value() const& { return Check(), *value_; }
  T&& value() && { return Check(), std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // On a temporary, hand out the value itself so that range-for over
  // *Function() cannot dangle.
  T operator*() && { return std::move(*this).value(); }

 private:
  void Check() const {
    if (!value_) std::abort();  // using the value of a failed StatusOr is a bug
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace cloister

#define CLOISTER_CONCAT_INNER(a, b) a##b
#define CLOISTER_CONCAT(a, b) CLOISTER_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::cloister::Status _st = (expr);               \
    if (!_st.ok()) return _st;                     \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(CLOISTER_CONCAT(_statusor_, __LINE__), lhs, expr)
