// Parsing /proc/PID/maps, to find the runtime library a process has mapped.
// Pure functions over text; the LAS reads the file and opens what it names.
//
// A maps line is
//   START-END PERMS OFFSET MAJOR:MINOR INODE [PATH]
// with hex addresses, offset and device numbers, a decimal inode, and a path
// that starts after a run of spaces and runs to the end of the line. The
// path may itself contain spaces. The kernel appends " (deleted)" when the
// file was unlinked after it was mapped, and writes a newline inside a path
// as "\012". Anonymous mappings have no path, or a pseudo-path in brackets
// ("[heap]", "[stack]", "[vdso]").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloister/status.h"

namespace cloister::las {

struct MapsEntry {
  uint64_t start = 0, end = 0;
  std::string perms;  // e.g. "r-xp"
  uint64_t offset = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;  // 0 for anonymous mappings
  std::string path;    // as shown, without a " (deleted)" suffix; empty if none
  bool deleted = false;
};

// Parses one line (without its newline). nullopt if the line does not have
// the five leading fields in the format above.
std::optional<MapsEntry> ParseMapsLine(std::string_view line);

// The entries whose file name (the path's last component) starts with
// `basename_prefix` and that map a file (inode != 0). Lines that do not
// parse are skipped: the kernel writes this file, and a line we cannot read
// cannot name the runtime in a way we would accept anyway.
std::vector<MapsEntry> FindMappings(std::string_view maps_text, std::string_view basename_prefix);

// The file name prefix of the Cloister runtime library.
inline constexpr std::string_view kRuntimeBasenamePrefix = "libcloister-runtime";

}  // namespace cloister::las
