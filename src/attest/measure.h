// Measurements: what a session's `measurements` list holds for a program.
// A measurement is the hex SHA-256 of the program file's bytes, exactly as
// `cloister measure FILE` prints it and as the LAS computes it for the
// executable of a process that asks for evidence.
#pragma once

#include <cstdint>
#include <string>

#include "cloister/status.h"

namespace cloister::attest {

struct FileMeasurement {
  std::string sha256;  // 64 lower-case hex digits
  // What identifies this version of the file, so a cache can reuse the
  // hash while none of these change (the LAS does).
  uint64_t device = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
};

// Hashes a regular file, reading it in 1 MiB pieces through one open
// descriptor (so the identity fields and the bytes belong to the same file,
// even if the path is replaced meanwhile). Refuses anything but a regular
// file.
StatusOr<FileMeasurement> MeasureFile(const std::string& path);

}  // namespace cloister::attest
