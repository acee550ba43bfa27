#include "cloister/status.h"

#include <cerrno>
#include <cstring>

namespace cloister {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid-argument";
    case StatusCode::kNotFound: return "not-found";
    case StatusCode::kAlreadyExists: return "already-exists";
    case StatusCode::kNotADirectory: return "not-a-directory";
    case StatusCode::kIsADirectory: return "is-a-directory";
    case StatusCode::kDirectoryNotEmpty: return "directory-not-empty";
    case StatusCode::kPermissionDenied: return "permission-denied";
    case StatusCode::kFailedPrecondition: return "failed-precondition";
    case StatusCode::kIntegrity: return "integrity";
    case StatusCode::kStale: return "stale";
    case StatusCode::kIoError: return "io-error";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kResourceExhausted: return "resource-exhausted";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kUnauthenticated: return "unauthenticated";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  return Status(code_, std::string(prefix) + ": " + message_);
}

Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
Status NotADirectory(std::string m) { return {StatusCode::kNotADirectory, std::move(m)}; }
Status IsADirectory(std::string m) { return {StatusCode::kIsADirectory, std::move(m)}; }
Status DirectoryNotEmpty(std::string m) { return {StatusCode::kDirectoryNotEmpty, std::move(m)}; }
Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
Status IntegrityError(std::string m) { return {StatusCode::kIntegrity, std::move(m)}; }
Status StaleError(std::string m) { return {StatusCode::kStale, std::move(m)}; }
Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
Status Unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }

Status ErrnoStatus(std::string_view what, int err) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  switch (err) {
    case ENOENT: return NotFound(std::move(msg));
    case EEXIST: return AlreadyExists(std::move(msg));
    case ENOTDIR: return NotADirectory(std::move(msg));
    case EISDIR: return IsADirectory(std::move(msg));
    case ENOTEMPTY: return DirectoryNotEmpty(std::move(msg));
    case EACCES:
    case EPERM: return PermissionDenied(std::move(msg));
    case ENOSPC: return ResourceExhausted(std::move(msg));
    default: return IoError(std::move(msg));
  }
}

}  // namespace cloister
