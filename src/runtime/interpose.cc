// The libc file functions an unmodified program uses to open, stat and
// check files, interposed so that injected files (see injected_files.h)
// appear at their paths. Every other call goes unchanged to the next
// definition (libc's), found once with dlsym(RTLD_NEXT).
//
// Rules for everything in this file, because it runs inside arbitrary
// programs: no exceptions; no locks; no allocation on the open/stat/access
// paths (they may run in a signal handler or in the child of a
// multi-threaded fork); errno is left as libc would leave it. Until the
// table of injected files is installed (during attestation, when OpenSSL
// and the resolver read files too) and when the session injects none, the
// only cost is one atomic load.
//
// fstat and friends are interposed too, although no injected path reaches
// them: they make a descriptor of an injected file describe itself as stat
// on its path does (see FixDescriptorStat).
//
// Both the plain and the *64 names are interposed: on x86-64 they take the
// same structures, but programs built with _FILE_OFFSET_BITS=64 (Python,
// for one) call the *64 ones. __open_2 and friends are what
// _FORTIFY_SOURCE builds call; __xstat and friends what programs built
// against glibc before 2.33 call. newfstatat is not interposed: glibc does
// not export it (fstatat is the function, newfstatat only the syscall).

// Defining open() and friends needs the plain declarations, not the
// fortified inline wrappers.
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>

#include "runtime/injected_files.h"
#include "runtime/paths.h"

#define CLOISTER_EXPORT extern "C" __attribute__((visibility("default")))

// Declared by glibc's headers only under _FORTIFY_SOURCE, or (the *xstat*
// family) no longer at all; their ABI is stable.
extern "C" {
int __open_2(const char* path, int flags);
int __open64_2(const char* path, int flags);
int __openat_2(int dirfd, const char* path, int flags);
int __openat64_2(int dirfd, const char* path, int flags);
int __xstat(int ver, const char* path, struct stat* buf) noexcept;
int __xstat64(int ver, const char* path, struct stat64* buf) noexcept;
int __lxstat(int ver, const char* path, struct stat* buf) noexcept;
int __lxstat64(int ver, const char* path, struct stat64* buf) noexcept;
int __fxstatat(int ver, int dirfd, const char* path, struct stat* buf, int flags) noexcept;
int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* buf, int flags) noexcept;
int __fxstat(int ver, int fd, struct stat* buf) noexcept;
int __fxstat64(int ver, int fd, struct stat64* buf) noexcept;
}

static_assert(sizeof(struct stat) == sizeof(struct stat64), "x86-64 and aarch64: one stat layout");

namespace cloister::runtime {
namespace {

// One slot per function; the list drives both the slots and the eager
// resolution below.
// clang-format off
#define CLOISTER_REAL_FUNCTIONS(X)                                                                          \
  X(open) X(open64) X(openat) X(openat64) X(__open_2) X(__open64_2) X(__openat_2) X(__openat64_2) X(creat) \
  X(creat64) X(fopen) X(fopen64) X(freopen) X(freopen64) X(stat) X(stat64) X(lstat) X(lstat64) X(fstatat)   \
  X(fstatat64) X(__xstat) X(__xstat64) X(__lxstat) X(__lxstat64) X(__fxstatat) X(__fxstatat64) X(statx)      \
  X(fstat) X(fstat64) X(__fxstat) X(__fxstat64)                                                              \
  X(access) X(faccessat) X(euidaccess) X(eaccess)
// clang-format on

#define CLOISTER_SLOT(name) std::atomic<void*> g_real_##name{nullptr};
CLOISTER_REAL_FUNCTIONS(CLOISTER_SLOT)
#undef CLOISTER_SLOT

// dlsym is thread-safe; two threads racing here store the same address.
void* Resolve(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = ::dlsym(RTLD_NEXT, name);
    if (p != nullptr) slot.store(p, std::memory_order_release);
  }
  return p;
}

#define REAL(name) reinterpret_cast<decltype(&::name)>(Resolve(g_real_##name, #name))

// Resolved when the library loads, before the program's own code runs, so
// that a program whose allocator opens files while it starts up does not
// enter dlsym, which may allocate, from inside that open.
__attribute__((constructor)) void ResolveAll() {
#define CLOISTER_RESOLVE(name) Resolve(g_real_##name, #name);
  CLOISTER_REAL_FUNCTIONS(CLOISTER_RESOLVE)
#undef CLOISTER_RESOLVE
}

// What a shim does when libc lacks the function it stands in for.
int Missing() {
  errno = ENOSYS;
  return -1;
}

struct Hit {
  const InjectedFiles* table = nullptr;
  const InjectedFile* file = nullptr;
  explicit operator bool() const { return file != nullptr; }
};

// Kept out of line so that the common case, no table, does not pay for the
// path buffer on its stack (shims may run on a small signal stack).
__attribute__((noinline)) const InjectedFile* FindInTable(const InjectedFiles& table, int dirfd, const char* path) {
  PathBuffer normal;
  return ResolvePath(dirfd, path, normal) ? table.Find(normal.view()) : nullptr;
}

// The injected file `path` names (relative paths against `dirfd`), if any.
Hit Lookup(int dirfd, const char* path) {
  Hit hit;
  hit.table = InstalledInjectedFiles();
  if (hit.table != nullptr) hit.file = FindInTable(*hit.table, dirfd, path);
  return hit;
}

int OpenInjected(const Hit& hit, int flags) {
  int fd = hit.table->Open(*hit.file, flags);
  if (fd < 0) {
    errno = -fd;
    return -1;
  }
  return fd;
}

int StatInjected(const Hit& hit, struct stat* buf) {
  hit.table->Stat(*hit.file, buf);
  return 0;
}

// fstat on a descriptor of an injected file answers as stat on its path
// does: programs such as cp and tar compare the two to notice a file that
// changed while they opened it. `result` is the real call's; only regular
// files without links (as memfds are) are looked at more closely.
int FixDescriptorStat(int result, int fd, struct stat* buf) {
  if (result != 0 || !S_ISREG(buf->st_mode) || buf->st_nlink != 0) return result;
  const InjectedFiles* table = InstalledInjectedFiles();
  if (table == nullptr) return result;
  if (const InjectedFile* f = table->FindDescriptor(fd)) table->Stat(*f, buf);
  return result;
}

int FixDescriptorStatx(int result, int fd, struct statx* buf) {
  if (result != 0 || !S_ISREG(buf->stx_mode) || buf->stx_nlink != 0) return result;
  const InjectedFiles* table = InstalledInjectedFiles();
  if (table == nullptr) return result;
  if (const InjectedFile* f = table->FindDescriptor(fd)) table->Statx(*f, buf);
  return result;
}

// fstatat and statx with AT_EMPTY_PATH and "" describe `dirfd` itself.
bool DescribesDescriptor(const char* path, int flags) {
  return (flags & AT_EMPTY_PATH) != 0 && path != nullptr && path[0] == '\0';
}

int AccessInjected(const Hit& hit, int mode, bool effective) {
  if ((mode & ~(R_OK | W_OK | X_OK)) != 0) {
    errno = EINVAL;
    return -1;
  }
  int e = InjectedFiles::CheckAccess(*hit.file, mode, effective);
  if (e != 0) {
    errno = e;
    return -1;
  }
  return 0;
}

// The optional third argument of open(2): read only when the flags say one
// was passed, as libc does.
bool NeedsMode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

// fopen(3) modes: "r", "rb", "re", "rm", "r,ccs=UTF-8", ... are reads; a
// '+' or a first letter other than 'r' asks to write. 'e' is O_CLOEXEC.
bool ReadOnlyMode(const char* mode, bool* cloexec) {
  *cloexec = false;
  if (mode == nullptr || mode[0] != 'r') return false;
  for (const char* m = mode + 1; *m != '\0' && *m != ','; ++m) {
    if (*m == '+') return false;
    if (*m == 'e') *cloexec = true;
  }
  return true;
}

FILE* FopenInjected(const Hit& hit, const char* mode) {
  bool cloexec = false;
  if (!ReadOnlyMode(mode, &cloexec)) {
    errno = EACCES;
    return nullptr;
  }
  int fd = OpenInjected(hit, O_RDONLY | (cloexec ? O_CLOEXEC : 0));
  if (fd < 0) return nullptr;
  FILE* f = ::fdopen(fd, "r");
  if (f == nullptr) {
    int e = errno;
    ::close(fd);
    errno = e;
  }
  return f;
}

// freopen(3) keeps the stream and its descriptor number; glibc's own
// freopen does that when given a path, so it is given the new memfd's
// /proc/self/fd path (a fresh open of the same sealed memfd, with its own
// offset at 0).
template <typename Freopen>
FILE* FreopenInjected(Freopen real, const Hit& hit, const char* mode, FILE* stream) {
  bool cloexec = false;
  if (!ReadOnlyMode(mode, &cloexec)) {
    errno = EACCES;
    return nullptr;
  }
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  int fd = OpenInjected(hit, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  char proc_path[32];
  snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
  FILE* f = real(proc_path, mode, stream);
  int e = errno;
  ::close(fd);
  errno = e;
  return f;
}

}  // namespace

// The shims. They are defined in this namespace only to reach the helpers
// above; with C linkage they are the global functions of the same name.

// open(2)'s optional mode argument, read only when the flags say it was
// passed, as libc does.
#define CLOISTER_MODE_ARG(flags, last) \
  mode_t mode = 0;                     \
  if (NeedsMode(flags)) {              \
    va_list ap;                        \
    va_start(ap, last);                \
    mode = va_arg(ap, mode_t);         \
    va_end(ap);                        \
  }

#define CLOISTER_PASS(name, ...) \
  auto real = REAL(name);        \
  return real != nullptr ? real(__VA_ARGS__) : Missing()

CLOISTER_EXPORT int open(const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(open, path, flags, mode);
}

CLOISTER_EXPORT int open64(const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(open64, path, flags, mode);
}

CLOISTER_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(openat, dirfd, path, flags, mode);
}

CLOISTER_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(openat64, dirfd, path, flags, mode);
}

CLOISTER_EXPORT int __open_2(const char* path, int flags) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(__open_2, path, flags);
}

CLOISTER_EXPORT int __open64_2(const char* path, int flags) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(__open64_2, path, flags);
}

CLOISTER_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(__openat_2, dirfd, path, flags);
}

CLOISTER_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_PASS(__openat64_2, dirfd, path, flags);
}

CLOISTER_EXPORT int creat(const char* path, mode_t mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, O_CREAT | O_WRONLY | O_TRUNC);
  CLOISTER_PASS(creat, path, mode);
}

CLOISTER_EXPORT int creat64(const char* path, mode_t mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, O_CREAT | O_WRONLY | O_TRUNC);
  CLOISTER_PASS(creat64, path, mode);
}

// ---- stdio ----

CLOISTER_EXPORT FILE* fopen(const char* path, const char* mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return FopenInjected(h, mode);
  auto real = REAL(fopen);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path, mode);
}

CLOISTER_EXPORT FILE* fopen64(const char* path, const char* mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return FopenInjected(h, mode);
  auto real = REAL(fopen64);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path, mode);
}

CLOISTER_EXPORT FILE* freopen(const char* path, const char* mode, FILE* stream) {
  auto real = REAL(freopen);
  if (path != nullptr) {
    if (Hit h = Lookup(AT_FDCWD, path)) return FreopenInjected(real, h, mode, stream);
  }
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path, mode, stream);
}

CLOISTER_EXPORT FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  auto real = REAL(freopen64);
  if (path != nullptr) {
    if (Hit h = Lookup(AT_FDCWD, path)) return FreopenInjected(real, h, mode, stream);
  }
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path, mode, stream);
}

// ---- stat ----

CLOISTER_EXPORT int stat(const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_PASS(stat, path, buf);
}

CLOISTER_EXPORT int stat64(const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_PASS(stat64, path, buf);
}

// An injected file is a regular file, never a link: lstat answers as stat.
CLOISTER_EXPORT int lstat(const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_PASS(lstat, path, buf);
}

CLOISTER_EXPORT int lstat64(const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_PASS(lstat64, path, buf);
}

CLOISTER_EXPORT int fstatat(int dirfd, const char* path, struct stat* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, buf);
  auto real = REAL(fstatat);
  if (real == nullptr) return Missing();
  int r = real(dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, buf) : r;
}

CLOISTER_EXPORT int fstatat64(int dirfd, const char* path, struct stat64* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  auto real = REAL(fstatat64);
  if (real == nullptr) return Missing();
  int r = real(dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, reinterpret_cast<struct stat*>(buf)) : r;
}

// `ver` selects the structure layout; x86-64 has the one layout of
// struct stat.
CLOISTER_EXPORT int __xstat(int ver, const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_PASS(__xstat, ver, path, buf);
}

CLOISTER_EXPORT int __xstat64(int ver, const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_PASS(__xstat64, ver, path, buf);
}

CLOISTER_EXPORT int __lxstat(int ver, const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_PASS(__lxstat, ver, path, buf);
}

CLOISTER_EXPORT int __lxstat64(int ver, const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_PASS(__lxstat64, ver, path, buf);
}

CLOISTER_EXPORT int __fxstatat(int ver, int dirfd, const char* path, struct stat* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, buf);
  auto real = REAL(__fxstatat);
  if (real == nullptr) return Missing();
  int r = real(ver, dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, buf) : r;
}

CLOISTER_EXPORT int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  auto real = REAL(__fxstatat64);
  if (real == nullptr) return Missing();
  int r = real(ver, dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, reinterpret_cast<struct stat*>(buf)) : r;
}

CLOISTER_EXPORT int statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* buf) noexcept {
  if (Hit h = Lookup(dirfd, path)) {
    h.table->Statx(*h.file, buf);
    return 0;
  }
  auto real = REAL(statx);
  if (real == nullptr) return Missing();
  int r = real(dirfd, path, flags, mask, buf);
  return DescribesDescriptor(path, flags) ? FixDescriptorStatx(r, dirfd, buf) : r;
}

// ---- fstat: see FixDescriptorStat ----

CLOISTER_EXPORT int fstat(int fd, struct stat* buf) noexcept {
  auto real = REAL(fstat);
  return real == nullptr ? Missing() : FixDescriptorStat(real(fd, buf), fd, buf);
}

CLOISTER_EXPORT int fstat64(int fd, struct stat64* buf) noexcept {
  auto real = REAL(fstat64);
  return real == nullptr ? Missing() : FixDescriptorStat(real(fd, buf), fd, reinterpret_cast<struct stat*>(buf));
}

CLOISTER_EXPORT int __fxstat(int ver, int fd, struct stat* buf) noexcept {
  auto real = REAL(__fxstat);
  return real == nullptr ? Missing() : FixDescriptorStat(real(ver, fd, buf), fd, buf);
}

CLOISTER_EXPORT int __fxstat64(int ver, int fd, struct stat64* buf) noexcept {
  auto real = REAL(__fxstat64);
  return real == nullptr ? Missing() : FixDescriptorStat(real(ver, fd, buf), fd, reinterpret_cast<struct stat*>(buf));
}

// ---- access ----

CLOISTER_EXPORT int access(const char* path, int mode) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return AccessInjected(h, mode, /*effective=*/false);
  CLOISTER_PASS(access, path, mode);
}

CLOISTER_EXPORT int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return AccessInjected(h, mode, (flags & AT_EACCESS) != 0);
  CLOISTER_PASS(faccessat, dirfd, path, mode, flags);
}

CLOISTER_EXPORT int euidaccess(const char* path, int mode) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return AccessInjected(h, mode, /*effective=*/true);
  CLOISTER_PASS(euidaccess, path, mode);
}

CLOISTER_EXPORT int eaccess(const char* path, int mode) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return AccessInjected(h, mode, /*effective=*/true);
  CLOISTER_PASS(eaccess, path, mode);
}

}  // namespace cloister::runtime
