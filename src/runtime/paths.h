// Path resolution for the interposed file functions: which absolute path a
// call names, so it can be compared with the injected files.
//
// Resolution is lexical: "//", "/./" and "/../" are folded without asking
// the file system, and symbolic links are not followed. The functions here
// allocate nothing and take no locks (they run inside open(2) and stat(2)
// shims, which a program may call from a signal handler or after fork in a
// multi-threaded process); the result goes into a caller-provided buffer.
#pragma once

#include <cstddef>
#include <string_view>

namespace cloister::runtime {

// Longest path handled (PATH_MAX). Longer names are never injected, so a
// call with one is simply passed on to libc.
inline constexpr size_t kMaxPath = 4096;

struct PathBuffer {
  char data[kMaxPath];
  size_t size = 0;
  std::string_view view() const { return std::string_view(data, size); }
};

// Writes the normal form of `path` into `out`: absolute, single slashes, no
// "." or ".." components, no trailing slash (except the root "/" itself);
// ".." at the root stays at the root. A relative `path` is taken relative
// to `base`, which must be absolute (it is ignored for absolute paths).
// False if `path` is empty, `base` is needed but not absolute, or the
// result does not fit.
bool NormalizePath(std::string_view base, std::string_view path, PathBuffer& out);

// Resolves `path` as an *at() call with `dirfd` would: absolute paths as
// they are, relative ones against the current directory (AT_FDCWD) or
// against the directory `dirfd` is open on (read from /proc/self/fd).
// False when the answer is not known or cannot be an injected file: a null
// or empty path, a path ending in "/", "/." or "/.." (it names a
// directory), an unreadable or deleted directory. The caller then passes
// the call on unchanged. Preserves errno.
bool ResolvePath(int dirfd, const char* path, PathBuffer& out);

}  // namespace cloister::runtime
