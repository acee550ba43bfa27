#include "las/proc_maps.h"

#include <charconv>

namespace cloister::las {
namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

// Takes the next field, ending at a space (or the end), and skips the run
// of spaces after it.
std::string_view NextField(std::string_view& rest) {
  size_t end = rest.find(' ');
  std::string_view field = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  size_t skip = rest.find_first_not_of(' ');
  rest.remove_prefix(skip == std::string_view::npos ? rest.size() : skip);
  return field;
}

template <typename T>
bool ParseNumber(std::string_view s, int base, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

// "a-b" or "a:b", both hex.
template <typename T>
bool ParsePair(std::string_view s, char sep, T& a, T& b) {
  size_t at = s.find(sep);
  if (at == std::string_view::npos) return false;
  return ParseNumber(s.substr(0, at), 16, a) && ParseNumber(s.substr(at + 1), 16, b);
}

}  // namespace

std::optional<MapsEntry> ParseMapsLine(std::string_view line) {
  MapsEntry e;
  std::string_view rest = line;
  std::string_view range = NextField(rest);
  std::string_view perms = NextField(rest);
  std::string_view offset = NextField(rest);
  std::string_view dev = NextField(rest);
  // The inode is the last field we split on spaces: everything after it and
  // its padding is the path, spaces included.
  size_t end = rest.find(' ');
  std::string_view inode = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  size_t skip = path.find_first_not_of(' ');
  path.remove_prefix(skip == std::string_view::npos ? path.size() : skip);

  if (!ParsePair(range, '-', e.start, e.end) || e.end < e.start) return std::nullopt;
  if (perms.size() != 4) return std::nullopt;
  if (!ParseNumber(offset, 16, e.offset)) return std::nullopt;
  if (!ParsePair(dev, ':', e.dev_major, e.dev_minor)) return std::nullopt;
  if (!ParseNumber(inode, 10, e.inode)) return std::nullopt;
  e.perms = std::string(perms);
  if (path.size() > kDeletedSuffix.size() && path.ends_with(kDeletedSuffix)) {
    // A file whose real name ends in " (deleted)" reads the same; the LAS
    // never trusts the path anyway (it checks device and inode).
    path.remove_suffix(kDeletedSuffix.size());
    e.deleted = true;
  }
  e.path = std::string(path);
  return e;
}

std::vector<MapsEntry> FindMappings(std::string_view maps_text, std::string_view basename_prefix) {
  std::vector<MapsEntry> out;
  while (!maps_text.empty()) {
    size_t nl = maps_text.find('\n');
    std::string_view line = maps_text.substr(0, nl);
    maps_text.remove_prefix(nl == std::string_view::npos ? maps_text.size() : nl + 1);
    auto e = ParseMapsLine(line);
    if (!e || e->inode == 0 || e->path.empty() || e->path[0] != '/') continue;
    std::string_view base = e->path;
    base.remove_prefix(base.rfind('/') + 1);
    if (base.starts_with(basename_prefix)) out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace cloister::las
