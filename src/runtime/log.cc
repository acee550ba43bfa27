#include "runtime/log.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace cloister::runtime {
namespace {

// Set once on the start-up thread before any other thread of the program
// exists (main has not run yet); read-only afterwards.
bool g_debug = false;
timespec g_start{};

void WriteAll(const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(STDERR_FILENO, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone: nobody to tell
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void StartDebugLog(bool enabled) {
  g_debug = enabled;
  ::clock_gettime(CLOCK_MONOTONIC, &g_start);
}

bool DebugLogEnabled() { return g_debug; }

void DebugLog(const char* format, ...) {
  if (!g_debug) return;
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  double ms =
      static_cast<double>(now.tv_sec - g_start.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec - g_start.tv_nsec) / 1e6;
  char line[1024];
  int n = std::snprintf(line, sizeof(line), "cloister-runtime: debug: %7.2f ms: ", ms);
  va_list args;
  va_start(args, format);
  int m = std::vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1, format, args);
  va_end(args);
  size_t size = static_cast<size_t>(n) + static_cast<size_t>(m < 0 ? 0 : m);
  if (size > sizeof(line) - 2) size = sizeof(line) - 2;  // cut, keep the newline
  line[size++] = '\n';
  WriteAll(line, size);
}

std::string PeerText(std::string_view text, size_t max) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  if (text.size() > max) out += "...";
  return out;
}

void Log(std::string_view message) {
  std::string line = "cloister-runtime: ";
  line += PeerText(message, 4000);
  line += '\n';
  WriteAll(line.data(), line.size());
}

void FailClosed(std::string_view message) {
  std::string line = "cloister-runtime: ";
  line += PeerText(message, 4000);
  line += '\n';
  WriteAll(line.data(), line.size());
  ::_exit(kFailClosedStatus);
}

}  // namespace cloister::runtime
