// Wall-clock time in the forms the project writes it: UNIX seconds and
// nanoseconds, and RFC 3339 UTC text. Code that must be testable with a
// fixed clock takes "now" as a parameter instead of calling these.
#pragma once

#include <cstdint>
#include <string>

namespace cloister {

int64_t UnixNow();    // seconds since the UNIX epoch
int64_t UnixNowNs();  // nanoseconds since the UNIX epoch

// "2026-11-22T07:31:00Z"
std::string Rfc3339(int64_t unix_seconds);

}  // namespace cloister
