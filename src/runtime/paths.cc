#include "runtime/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

namespace cloister::runtime {
namespace {

// Appends the components of `p` to `out`, which holds a normal absolute
// path ("/" or "/a/b").
bool AppendComponents(std::string_view p, PathBuffer& out) {
  size_t i = 0;
  while (i < p.size()) {
    while (i < p.size() && p[i] == '/') ++i;
    size_t j = i;
    while (j < p.size() && p[j] != '/') ++j;
    std::string_view c = p.substr(i, j - i);
    i = j;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      // Drop the last component; the root's parent is the root.
      while (out.size > 1 && out.data[out.size - 1] != '/') --out.size;
      if (out.size > 1) --out.size;
      continue;
    }
    size_t need = (out.size > 1 ? 1 : 0) + c.size();
    if (out.size + need >= kMaxPath) return false;  // keep room for a NUL
    if (out.size > 1) out.data[out.size++] = '/';
    memcpy(out.data + out.size, c.data(), c.size());
    out.size += c.size();
  }
  return true;
}

}  // namespace

bool NormalizePath(std::string_view base, std::string_view path, PathBuffer& out) {
  if (path.empty()) return false;
  out.data[0] = '/';
  out.size = 1;
  if (path[0] != '/') {
    if (base.empty() || base[0] != '/') return false;
    if (!AppendComponents(base, out)) return false;
  }
  if (!AppendComponents(path, out)) return false;
  out.data[out.size] = '\0';
  return true;
}

bool ResolvePath(int dirfd, const char* path, PathBuffer& out) {
  if (path == nullptr || path[0] == '\0') return false;
  size_t len = strnlen(path, kMaxPath);
  if (len == kMaxPath || path[len - 1] == '/') return false;
  std::string_view p(path, len);
  // A last component "." or ".." names a directory too.
  size_t last = p.rfind('/');
  std::string_view tail = last == std::string_view::npos ? p : p.substr(last + 1);
  if (tail == "." || tail == "..") return false;
  if (p[0] == '/') return NormalizePath({}, p, out);

  // The base goes straight into `out`, and the components of `path` are
  // appended to it there: one path buffer on the stack, not two (these
  // functions may run on a small signal stack). What getcwd and the
  // /proc/self/fd links return is already in normal form.
  int saved_errno = errno;
  bool known = false;
  if (dirfd == AT_FDCWD) {
    known = ::getcwd(out.data, sizeof(out.data)) != nullptr;
    if (known) out.size = strlen(out.data);
  } else if (dirfd >= 0) {
    char link[32];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
    ssize_t n = ::readlink(link, out.data, sizeof(out.data) - 1);
    if (n > 0 && static_cast<size_t>(n) < sizeof(out.data) - 1) {
      out.size = static_cast<size_t>(n);
      // The kernel marks a removed directory with this suffix; such a
      // directory holds no injected file.
      constexpr std::string_view kDeleted = " (deleted)";
      std::string_view b = out.view();
      known = !(b.size() >= kDeleted.size() && b.substr(b.size() - kDeleted.size()) == kDeleted);
    }
  }
  errno = saved_errno;
  // Anything but an absolute path ("anon_inode:...", "(unreachable)/...")
  // is not a directory an injected file could be in.
  if (!known || out.size == 0 || out.data[0] != '/') return false;
  if (!AppendComponents(p, out)) return false;
  out.data[out.size] = '\0';
  return true;
}

}  // namespace cloister::runtime
