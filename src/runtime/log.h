// The runtime's two kinds of output on stderr, both one line per call and
// both written with a single write(2) so that lines of concurrent writers do
// not interleave:
//  - the debug trace (CLOISTER_LOG=debug): one line per start-up step with
//    the milliseconds elapsed since the runtime took control. Callers never
//    pass secrets to it.
//  - the failure line: "cloister-runtime: " and why the program may not
//    start, then _exit(kFailClosedStatus) before main runs.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cloister::runtime {

// The exit status of a start the runtime refused (EX_SOFTWARE in
// sysexits.h terms: "something went wrong that is not the program's fault").
inline constexpr int kFailClosedStatus = 70;

// Starts the clock of the debug trace and switches the trace on or off.
void StartDebugLog(bool enabled);
bool DebugLogEnabled();

// Appends one trace line (printf format) if the trace is on.
void DebugLog(const char* format, ...) __attribute__((format(printf, 1, 2)));

// One line on stderr, always: errors the program cannot see otherwise.
void Log(std::string_view message);

// Prints "cloister-runtime: MESSAGE" as one line (control characters in
// MESSAGE become spaces, so text taken from a peer cannot forge a second
// line) and ends the process with kFailClosedStatus, without running exit
// handlers or flushing stdio buffers the program might own.
[[noreturn]] void FailClosed(std::string_view message);

// `text` with control characters replaced by spaces, cut to at most `max`
// bytes (with "..." appended when cut): for quoting what a peer (the LAS,
// the CAS) said inside a failure line.
std::string PeerText(std::string_view text, size_t max = 300);

}  // namespace cloister::runtime
