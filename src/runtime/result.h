// Result<T>: how the runtime's start-up code reports failure. The runtime is
// built from its own sources only (it is loaded into foreign programs and
// must not drag libcloister's shared dependencies along), so it carries
// this small type instead of cloister::StatusOr.
//
// A failure holds exactly one line of text meant for the person starting
// the program: it names what failed and never holds a secret. The start-up
// code prints it after "cloister-runtime: " and exits with status 70.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace cloister::runtime {

struct Failure {
  std::string message;
};

inline Failure Fail(std::string message) { return Failure{std::move(message)}; }

// The value of a Result<Done>: an operation that yields nothing but may fail.
struct Done {};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit on purpose
  Result(Failure failure) : v_(std::move(failure)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  // Only valid when ok().
  T& value() { return *std::get_if<0>(&v_); }
  const T& value() const { return *std::get_if<0>(&v_); }
  // Only valid when !ok().
  const std::string& error() const { return std::get_if<1>(&v_)->message; }
  Failure failure() const { return *std::get_if<1>(&v_); }

 private:
  std::variant<T, Failure> v_;
};

}  // namespace cloister::runtime
