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
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "runtime/injected_files.h"
#include "runtime/paths.h"
#include "runtime/shield_client.h"

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
char* __realpath_chk(const char* path, char* resolved, size_t resolvedlen) noexcept;
char* __getcwd_chk(char* buf, size_t size, size_t buflen) noexcept;
ssize_t __readlink_chk(const char* path, char* buf, size_t size, size_t buflen) noexcept;
ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t size, size_t buflen) noexcept;
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
  X(access) X(faccessat) X(euidaccess) X(eaccess)                                                           \
  X(write) X(pwrite) X(pwrite64) X(writev) X(pwritev) X(pwritev64) X(pwritev2) X(pwritev64v2)               \
  X(ftruncate) X(ftruncate64) X(truncate) X(truncate64) X(fallocate) X(fallocate64)                          \
  X(fsync) X(fdatasync) X(sync_file_range) X(syncfs) X(sync) X(close) X(dup) X(dup2) X(dup3) X(fcntl)         \
  X(fcntl64) X(mkdir) X(mkdirat) X(rmdir) X(unlink) X(unlinkat) X(rename) X(renameat) X(renameat2)            \
  X(link) X(linkat) X(readlink) X(readlinkat) X(symlink) X(symlinkat) X(chmod) X(fchmod) X(fchmodat)          \
  X(utimensat) X(futimens) X(opendir) X(fdopendir) X(readdir) X(readdir64) X(closedir) X(dirfd)              \
  X(rewinddir) X(getdents64) X(chdir) X(fchdir) X(getcwd) X(mmap) X(mmap64) X(fdopen)                          \
  X(sendfile) X(sendfile64) X(copy_file_range) X(splice) X(realpath) X(canonicalize_file_name)                 \
  X(get_current_dir_name) X(__realpath_chk) X(__getcwd_chk) X(__readlink_chk) X(__readlinkat_chk)
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

// fopen(3) of a shielded file: the shield's descriptor under a stdio
// stream. stdio writes through libc's internal write, which no shim sees,
// so a stream that may write has the file compared in full at commits.
FILE* FopenShielded(const shield::Target& t, const char* mode) {
  if (mode == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  int flags;
  switch (mode[0]) {
    case 'r':
      flags = 0;
      break;
    case 'w':
      flags = O_CREAT | O_TRUNC;
      break;
    case 'a':
      flags = O_CREAT | O_APPEND;
      break;
    default:
      errno = EINVAL;
      return nullptr;
  }
  bool plus = false;
  for (const char* m = mode + 1; *m != '\0' && *m != ','; ++m) {
    if (*m == '+') plus = true;
    if (*m == 'x') flags |= O_EXCL;
    if (*m == 'e') flags |= O_CLOEXEC;
  }
  flags |= plus ? O_RDWR : mode[0] == 'r' ? O_RDONLY : O_WRONLY;
  int fd = shield::Open(t, flags, 0666);
  if (fd < 0) return nullptr;
  if ((flags & O_ACCMODE) != O_RDONLY) shield::WritesUnseen(fd, false);
  auto real = REAL(fdopen);
  FILE* f = real != nullptr ? real(fd, mode) : nullptr;
  if (f == nullptr) {
    int e = errno;
    shield::Closing(fd);
    ::close(fd);
    errno = e;
  }
  return f;
}

// The offset of `fd`, or -1.
int64_t Offset(int fd) { return static_cast<int64_t>(::lseek(fd, 0, SEEK_CUR)); }

// After a write at the descriptor's own offset.
ssize_t AfterWrite(int fd, int64_t before, ssize_t r) {
  if (r > 0) {
    int e = errno;
    shield::WroteAppend(fd, before, Offset(fd), static_cast<uint64_t>(r));
    errno = e;
  }
  return r;
}

ssize_t AfterPositionalWrite(int fd, off_t at, ssize_t r) {
  if (r > 0) {
    int e = errno;
    shield::Wrote(fd, at, static_cast<uint64_t>(r));
    errno = e;
  }
  return r;
}

int Refused(int e) {
  errno = e;
  return -1;
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

// A path on a protected volume goes to the file shield.
#define CLOISTER_SHIELD_OPEN(dirfd, flags, mode)                                 \
  if (shield::Active()) {                                                        \
    shield::Target t;                                                            \
    if (shield::Route(dirfd, path, &t)) return shield::Open(t, flags, mode);      \
  }

#define CLOISTER_SHIELD_PATH(dirfd, call)         \
  if (shield::Active()) {                         \
    shield::Target t;                             \
    if (shield::Route(dirfd, path, &t)) return call; \
  }

#define CLOISTER_PASS(name, ...) \
  auto real = REAL(name);        \
  return real != nullptr ? real(__VA_ARGS__) : Missing()

CLOISTER_EXPORT int open(const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(AT_FDCWD, flags, mode);
  CLOISTER_PASS(open, path, flags, mode);
}

CLOISTER_EXPORT int open64(const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(AT_FDCWD, flags, mode);
  CLOISTER_PASS(open64, path, flags, mode);
}

CLOISTER_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(dirfd, flags, mode);
  CLOISTER_PASS(openat, dirfd, path, flags, mode);
}

CLOISTER_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  CLOISTER_MODE_ARG(flags, flags);
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(dirfd, flags, mode);
  CLOISTER_PASS(openat64, dirfd, path, flags, mode);
}

CLOISTER_EXPORT int __open_2(const char* path, int flags) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(AT_FDCWD, flags, 0);
  CLOISTER_PASS(__open_2, path, flags);
}

CLOISTER_EXPORT int __open64_2(const char* path, int flags) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(AT_FDCWD, flags, 0);
  CLOISTER_PASS(__open64_2, path, flags);
}

CLOISTER_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(dirfd, flags, 0);
  CLOISTER_PASS(__openat_2, dirfd, path, flags);
}

CLOISTER_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  if (Hit h = Lookup(dirfd, path)) return OpenInjected(h, flags);
  CLOISTER_SHIELD_OPEN(dirfd, flags, 0);
  CLOISTER_PASS(__openat64_2, dirfd, path, flags);
}

CLOISTER_EXPORT int creat(const char* path, mode_t mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, O_CREAT | O_WRONLY | O_TRUNC);
  CLOISTER_SHIELD_OPEN(AT_FDCWD, O_CREAT | O_WRONLY | O_TRUNC, mode);
  CLOISTER_PASS(creat, path, mode);
}

CLOISTER_EXPORT int creat64(const char* path, mode_t mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return OpenInjected(h, O_CREAT | O_WRONLY | O_TRUNC);
  CLOISTER_SHIELD_OPEN(AT_FDCWD, O_CREAT | O_WRONLY | O_TRUNC, mode);
  CLOISTER_PASS(creat64, path, mode);
}

// ---- stdio ----

CLOISTER_EXPORT FILE* fopen(const char* path, const char* mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return FopenInjected(h, mode);
  CLOISTER_SHIELD_PATH(AT_FDCWD, FopenShielded(t, mode));
  auto real = REAL(fopen);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path, mode);
}

CLOISTER_EXPORT FILE* fopen64(const char* path, const char* mode) {
  if (Hit h = Lookup(AT_FDCWD, path)) return FopenInjected(h, mode);
  CLOISTER_SHIELD_PATH(AT_FDCWD, FopenShielded(t, mode));
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
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, buf, true));
  CLOISTER_PASS(stat, path, buf);
}

CLOISTER_EXPORT int stat64(const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, reinterpret_cast<struct stat*>(buf), true));
  CLOISTER_PASS(stat64, path, buf);
}

// An injected file is a regular file, never a link: lstat answers as stat.
CLOISTER_EXPORT int lstat(const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, buf, false));
  CLOISTER_PASS(lstat, path, buf);
}

CLOISTER_EXPORT int lstat64(const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, reinterpret_cast<struct stat*>(buf), false));
  CLOISTER_PASS(lstat64, path, buf);
}

CLOISTER_EXPORT int fstatat(int dirfd, const char* path, struct stat* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, buf);
  if (shield::Active() && DescribesDescriptor(path, flags) && shield::IsShielded(dirfd)) return shield::Fstat(dirfd, buf);
  CLOISTER_SHIELD_PATH(dirfd, shield::Stat(t, buf, (flags & AT_SYMLINK_NOFOLLOW) == 0));
  auto real = REAL(fstatat);
  if (real == nullptr) return Missing();
  int r = real(dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, buf) : r;
}

CLOISTER_EXPORT int fstatat64(int dirfd, const char* path, struct stat64* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  if (shield::Active() && DescribesDescriptor(path, flags) && shield::IsShielded(dirfd)) return shield::Fstat(dirfd, reinterpret_cast<struct stat*>(buf));
  CLOISTER_SHIELD_PATH(dirfd, shield::Stat(t, reinterpret_cast<struct stat*>(buf), (flags & AT_SYMLINK_NOFOLLOW) == 0));
  auto real = REAL(fstatat64);
  if (real == nullptr) return Missing();
  int r = real(dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, reinterpret_cast<struct stat*>(buf)) : r;
}

// `ver` selects the structure layout; x86-64 has the one layout of
// struct stat.
CLOISTER_EXPORT int __xstat(int ver, const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, buf, true));
  CLOISTER_PASS(__xstat, ver, path, buf);
}

CLOISTER_EXPORT int __xstat64(int ver, const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, reinterpret_cast<struct stat*>(buf), true));
  CLOISTER_PASS(__xstat64, ver, path, buf);
}

CLOISTER_EXPORT int __lxstat(int ver, const char* path, struct stat* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, buf);
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, buf, false));
  CLOISTER_PASS(__lxstat, ver, path, buf);
}

CLOISTER_EXPORT int __lxstat64(int ver, const char* path, struct stat64* buf) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Stat(t, reinterpret_cast<struct stat*>(buf), false));
  CLOISTER_PASS(__lxstat64, ver, path, buf);
}

CLOISTER_EXPORT int __fxstatat(int ver, int dirfd, const char* path, struct stat* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, buf);
  if (shield::Active() && DescribesDescriptor(path, flags) && shield::IsShielded(dirfd)) return shield::Fstat(dirfd, buf);
  CLOISTER_SHIELD_PATH(dirfd, shield::Stat(t, buf, (flags & AT_SYMLINK_NOFOLLOW) == 0));
  auto real = REAL(__fxstatat);
  if (real == nullptr) return Missing();
  int r = real(ver, dirfd, path, buf, flags);
  return DescribesDescriptor(path, flags) ? FixDescriptorStat(r, dirfd, buf) : r;
}

CLOISTER_EXPORT int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* buf, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return StatInjected(h, reinterpret_cast<struct stat*>(buf));
  if (shield::Active() && DescribesDescriptor(path, flags) && shield::IsShielded(dirfd)) return shield::Fstat(dirfd, reinterpret_cast<struct stat*>(buf));
  CLOISTER_SHIELD_PATH(dirfd, shield::Stat(t, reinterpret_cast<struct stat*>(buf), (flags & AT_SYMLINK_NOFOLLOW) == 0));
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
  if (shield::Active() && DescribesDescriptor(path, flags) && shield::IsShielded(dirfd)) {
    return shield::Fstatx(dirfd, buf);
  }
  CLOISTER_SHIELD_PATH(dirfd, shield::Statx(t, buf, (flags & AT_SYMLINK_NOFOLLOW) == 0));
  auto real = REAL(statx);
  if (real == nullptr) return Missing();
  int r = real(dirfd, path, flags, mask, buf);
  return DescribesDescriptor(path, flags) ? FixDescriptorStatx(r, dirfd, buf) : r;
}

// ---- fstat: see FixDescriptorStat ----

CLOISTER_EXPORT int fstat(int fd, struct stat* buf) noexcept {
  if (shield::IsShielded(fd)) return shield::Fstat(fd, buf);
  auto real = REAL(fstat);
  return real == nullptr ? Missing() : FixDescriptorStat(real(fd, buf), fd, buf);
}

CLOISTER_EXPORT int fstat64(int fd, struct stat64* buf) noexcept {
  if (shield::IsShielded(fd)) return shield::Fstat(fd, reinterpret_cast<struct stat*>(buf));
  auto real = REAL(fstat64);
  return real == nullptr ? Missing() : FixDescriptorStat(real(fd, buf), fd, reinterpret_cast<struct stat*>(buf));
}

CLOISTER_EXPORT int __fxstat(int ver, int fd, struct stat* buf) noexcept {
  if (shield::IsShielded(fd)) return shield::Fstat(fd, buf);
  auto real = REAL(__fxstat);
  return real == nullptr ? Missing() : FixDescriptorStat(real(ver, fd, buf), fd, buf);
}

CLOISTER_EXPORT int __fxstat64(int ver, int fd, struct stat64* buf) noexcept {
  if (shield::IsShielded(fd)) return shield::Fstat(fd, reinterpret_cast<struct stat*>(buf));
  auto real = REAL(__fxstat64);
  return real == nullptr ? Missing() : FixDescriptorStat(real(ver, fd, buf), fd, reinterpret_cast<struct stat*>(buf));
}

// ---- access ----

CLOISTER_EXPORT int access(const char* path, int mode) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return AccessInjected(h, mode, /*effective=*/false);
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Access(t, mode));
  CLOISTER_PASS(access, path, mode);
}

CLOISTER_EXPORT int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  if (Hit h = Lookup(dirfd, path)) return AccessInjected(h, mode, (flags & AT_EACCESS) != 0);
  CLOISTER_SHIELD_PATH(dirfd, shield::Access(t, mode));
  CLOISTER_PASS(faccessat, dirfd, path, mode, flags);
}

CLOISTER_EXPORT int euidaccess(const char* path, int mode) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return AccessInjected(h, mode, /*effective=*/true);
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Access(t, mode));
  CLOISTER_PASS(euidaccess, path, mode);
}

CLOISTER_EXPORT int eaccess(const char* path, int mode) noexcept {
  if (Hit h = Lookup(AT_FDCWD, path)) return AccessInjected(h, mode, /*effective=*/true);
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Access(t, mode));
  CLOISTER_PASS(eaccess, path, mode);
}

// ---- the file shield: writes, sync and descriptors ----
// For a descriptor that is not shielded each of these costs one load
// before the real call.

CLOISTER_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  auto real = REAL(write);
  if (real == nullptr) return Missing();
  if (!shield::IsShielded(fd)) return real(fd, buf, n);
  int64_t before = Offset(fd);
  return AfterWrite(fd, before, real(fd, buf, n));
}

CLOISTER_EXPORT ssize_t writev(int fd, const struct iovec* iov, int count) {
  auto real = REAL(writev);
  if (real == nullptr) return Missing();
  if (!shield::IsShielded(fd)) return real(fd, iov, count);
  int64_t before = Offset(fd);
  return AfterWrite(fd, before, real(fd, iov, count));
}

CLOISTER_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
  auto real = REAL(pwrite);
  if (real == nullptr) return Missing();
  return AfterPositionalWrite(fd, at, real(fd, buf, n, at));
}

CLOISTER_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t at) {
  auto real = REAL(pwrite64);
  if (real == nullptr) return Missing();
  return AfterPositionalWrite(fd, at, real(fd, buf, n, at));
}

CLOISTER_EXPORT ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t at) {
  auto real = REAL(pwritev);
  if (real == nullptr) return Missing();
  return AfterPositionalWrite(fd, at, real(fd, iov, count, at));
}

CLOISTER_EXPORT ssize_t pwritev64(int fd, const struct iovec* iov, int count, off64_t at) {
  auto real = REAL(pwritev64);
  if (real == nullptr) return Missing();
  return AfterPositionalWrite(fd, at, real(fd, iov, count, at));
}

// Offset -1 writes at (and moves) the descriptor's offset.
CLOISTER_EXPORT ssize_t pwritev2(int fd, const struct iovec* iov, int count, off_t at, int flags) {
  auto real = REAL(pwritev2);
  if (real == nullptr) return Missing();
  if (!shield::IsShielded(fd)) return real(fd, iov, count, at, flags);
  if (at != -1) return AfterPositionalWrite(fd, at, real(fd, iov, count, at, flags));
  int64_t before = Offset(fd);
  return AfterWrite(fd, before, real(fd, iov, count, at, flags));
}

CLOISTER_EXPORT ssize_t pwritev64v2(int fd, const struct iovec* iov, int count, off64_t at, int flags) {
  auto real = REAL(pwritev64v2);
  if (real == nullptr) return Missing();
  if (!shield::IsShielded(fd)) return real(fd, iov, count, at, flags);
  if (at != -1) return AfterPositionalWrite(fd, at, real(fd, iov, count, at, flags));
  int64_t before = Offset(fd);
  return AfterWrite(fd, before, real(fd, iov, count, at, flags));
}

CLOISTER_EXPORT int ftruncate(int fd, off_t size) noexcept {
  auto real = REAL(ftruncate);
  if (real == nullptr) return Missing();
  int r = real(fd, size);
  if (r == 0 && shield::IsShielded(fd)) shield::Shrunk(fd, static_cast<uint64_t>(size));
  return r;
}

CLOISTER_EXPORT int ftruncate64(int fd, off64_t size) noexcept {
  auto real = REAL(ftruncate64);
  if (real == nullptr) return Missing();
  int r = real(fd, size);
  if (r == 0 && shield::IsShielded(fd)) shield::Shrunk(fd, static_cast<uint64_t>(size));
  return r;
}

CLOISTER_EXPORT int truncate(const char* path, off_t size) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Truncate(t, size));
  CLOISTER_PASS(truncate, path, size);
}

CLOISTER_EXPORT int truncate64(const char* path, off64_t size) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Truncate(t, size));
  CLOISTER_PASS(truncate64, path, size);
}

// Punching a hole writes zeros; growing the file is seen at commit.
CLOISTER_EXPORT int fallocate(int fd, int mode, off_t at, off_t len) {
  auto real = REAL(fallocate);
  if (real == nullptr) return Missing();
  int r = real(fd, mode, at, len);
  if (r == 0 && mode != 0 && (mode & ~FALLOC_FL_KEEP_SIZE) != 0) AfterPositionalWrite(fd, at, len);
  return r;
}

CLOISTER_EXPORT int fallocate64(int fd, int mode, off64_t at, off64_t len) {
  auto real = REAL(fallocate64);
  if (real == nullptr) return Missing();
  int r = real(fd, mode, at, len);
  if (r == 0 && mode != 0 && (mode & ~FALLOC_FL_KEEP_SIZE) != 0) AfterPositionalWrite(fd, at, len);
  return r;
}

CLOISTER_EXPORT int fsync(int fd) {
  if (shield::IsShielded(fd)) return shield::Sync(fd);
  CLOISTER_PASS(fsync, fd);
}

CLOISTER_EXPORT int fdatasync(int fd) {
  if (shield::IsShielded(fd)) return shield::Sync(fd);
  CLOISTER_PASS(fdatasync, fd);
}

// A hint to start writing back, with no promise of durability: a shielded
// file's data is in memory until the next commit anyway.
CLOISTER_EXPORT int sync_file_range(int fd, off64_t at, off64_t len, unsigned int flags) {
  if (shield::IsShielded(fd)) return 0;
  CLOISTER_PASS(sync_file_range, fd, at, len, flags);
}

CLOISTER_EXPORT int syncfs(int fd) noexcept {
  if (shield::IsShielded(fd)) return shield::SyncAll();
  CLOISTER_PASS(syncfs, fd);
}

CLOISTER_EXPORT void sync() noexcept {
  (void)shield::SyncAll();
  auto real = REAL(sync);
  if (real != nullptr) real();
}

CLOISTER_EXPORT int close(int fd) {
  if (shield::IsInternal(fd)) return Refused(EBADF);
  shield::Closing(fd);
  CLOISTER_PASS(close, fd);
}

CLOISTER_EXPORT int dup(int fd) noexcept {
  auto real = REAL(dup);
  if (real == nullptr) return Missing();
  int r = real(fd);
  if (r >= 0 && shield::Active()) shield::Duplicated(fd, r);
  return r;
}

CLOISTER_EXPORT int dup2(int fd, int to) noexcept {
  if (shield::IsInternal(to)) return Refused(EBADF);
  auto real = REAL(dup2);
  if (real == nullptr) return Missing();
  int r = real(fd, to);
  if (r >= 0 && shield::Active()) shield::Duplicated(fd, r);
  return r;
}

CLOISTER_EXPORT int dup3(int fd, int to, int flags) noexcept {
  if (shield::IsInternal(to)) return Refused(EBADF);
  auto real = REAL(dup3);
  if (real == nullptr) return Missing();
  int r = real(fd, to, flags);
  if (r >= 0 && shield::Active()) shield::Duplicated(fd, r);
  return r;
}

namespace {

// fcntl's argument, for every command, is an int or a pointer; x86-64 and
// aarch64 pass both in one register, so it is carried as a pointer.
template <typename Fcntl>
int FcntlShim(Fcntl real, int fd, int cmd, void* arg) {
  if (real == nullptr) return Missing();
  if (shield::IsShielded(fd) && cmd == F_SETFL) {
    // O_DIRECT asks to bypass a page cache the memfd does not have.
    arg = reinterpret_cast<void*>(reinterpret_cast<intptr_t>(arg) & ~static_cast<intptr_t>(O_DIRECT));
  }
  int r = real(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && shield::Active()) shield::Duplicated(fd, r);
  return r;
}

}  // namespace

CLOISTER_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return FcntlShim(REAL(fcntl), fd, cmd, arg);
}

CLOISTER_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return FcntlShim(REAL(fcntl64), fd, cmd, arg);
}

// A shared mapping may be written without any call the shims see: the
// file is compared in full at every commit from then on.
CLOISTER_EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept {
  auto real = REAL(mmap);
  if (real == nullptr) {
    errno = ENOSYS;
    return MAP_FAILED;
  }
  void* p = real(addr, len, prot, flags, fd, off);
  // Only a mapping that exists can be written (MAP_SHARED_VALIDATE with
  // MAP_SYNC, say, is refused on a memfd).
  if (p != MAP_FAILED && (flags & MAP_SHARED) != 0 && shield::IsShielded(fd)) shield::WritesUnseen(fd, true);
  return p;
}

static_assert(sizeof(off64_t) == sizeof(off_t), "64-bit targets: mmap64 is mmap");
CLOISTER_EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) noexcept {
  return mmap(addr, len, prot, flags, fd, off);
}

CLOISTER_EXPORT FILE* fdopen(int fd, const char* mode) noexcept {
  if (shield::IsShielded(fd) && mode != nullptr && (mode[0] != 'r' || std::strchr(mode, '+') != nullptr)) {
    shield::WritesUnseen(fd, false);
  }
  auto real = REAL(fdopen);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(fd, mode);
}

// The kernel copies into the memfd itself: the whole file is compared at
// the next commit.
CLOISTER_EXPORT ssize_t sendfile(int out, int in, off_t* at, size_t n) noexcept {
  auto real = REAL(sendfile);
  if (real == nullptr) return Missing();
  ssize_t r = real(out, in, at, n);
  if (r > 0) shield::CopiedInto(out);
  return r;
}

CLOISTER_EXPORT ssize_t sendfile64(int out, int in, off64_t* at, size_t n) noexcept {
  auto real = REAL(sendfile64);
  if (real == nullptr) return Missing();
  ssize_t r = real(out, in, at, n);
  if (r > 0) shield::CopiedInto(out);
  return r;
}

CLOISTER_EXPORT ssize_t copy_file_range(int in, off64_t* in_at, int out, off64_t* out_at, size_t n,
                                        unsigned int flags) {
  auto real = REAL(copy_file_range);
  if (real == nullptr) return Missing();
  ssize_t r = real(in, in_at, out, out_at, n, flags);
  if (r > 0) shield::CopiedInto(out);
  return r;
}

CLOISTER_EXPORT ssize_t splice(int in, off64_t* in_at, int out, off64_t* out_at, size_t n, unsigned int flags) {
  auto real = REAL(splice);
  if (real == nullptr) return Missing();
  ssize_t r = real(in, in_at, out, out_at, n, flags);
  if (r > 0) shield::CopiedInto(out);
  return r;
}

// glibc's realpath asks the kernel for the working directory and for each
// component: on a volume it would find neither.
CLOISTER_EXPORT char* realpath(const char* path, char* resolved) noexcept {
  if (shield::Active() && path != nullptr) {
    shield::Target t;
    if (shield::Route(AT_FDCWD, path, &t)) return shield::Realpath(t, resolved);
    PathBuffer abs;
    if (shield::AbsoluteFromVirtualCwd(path, &abs)) {
      auto real = REAL(realpath);
      return real != nullptr ? real(abs.data, resolved) : nullptr;
    }
  }
  auto real = REAL(realpath);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path, resolved);
}

CLOISTER_EXPORT char* canonicalize_file_name(const char* path) noexcept { return realpath(path, nullptr); }

CLOISTER_EXPORT char* get_current_dir_name() noexcept {
  bool handled = false;
  char* r = shield::Getcwd(nullptr, 0, &handled);
  if (handled) return r;
  auto real = REAL(get_current_dir_name);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real();
}

// ---- the file shield: names ----

CLOISTER_EXPORT int mkdir(const char* path, mode_t mode) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Mkdir(t, mode));
  CLOISTER_PASS(mkdir, path, mode);
}

CLOISTER_EXPORT int mkdirat(int dirfd, const char* path, mode_t mode) noexcept {
  CLOISTER_SHIELD_PATH(dirfd, shield::Mkdir(t, mode));
  CLOISTER_PASS(mkdirat, dirfd, path, mode);
}

CLOISTER_EXPORT int rmdir(const char* path) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Rmdir(t));
  CLOISTER_PASS(rmdir, path);
}

CLOISTER_EXPORT int unlink(const char* path) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Unlink(t));
  CLOISTER_PASS(unlink, path);
}

CLOISTER_EXPORT int unlinkat(int dirfd, const char* path, int flags) noexcept {
  CLOISTER_SHIELD_PATH(dirfd, (flags & AT_REMOVEDIR) != 0 ? shield::Rmdir(t) : shield::Unlink(t));
  CLOISTER_PASS(unlinkat, dirfd, path, flags);
}

namespace {

// rename(2) and friends: both names on one volume go to the shield; one on
// a volume and one elsewhere cross devices, as between two file systems.
template <typename Real>
int RenameShim(int from_dir, const char* from, int to_dir, const char* to, unsigned flags, Real real) {
  if (shield::Active()) {
    shield::Target a, b;
    bool in_a = shield::Route(from_dir, from, &a);
    bool in_b = shield::Route(to_dir, to, &b);
    if (in_a && in_b) return shield::Rename(a, b, flags);
    if (in_a || in_b) return Refused(EXDEV);
  }
  return real();
}

// Hard links are not part of the volume format.
int LinkShim(int from_dir, const char* from, int to_dir, const char* to) {
  if (shield::Active()) {
    shield::Target a, b;
    if (shield::Route(from_dir, from, &a) || shield::Route(to_dir, to, &b)) return Refused(EPERM);
  }
  return 1;
}

}  // namespace

CLOISTER_EXPORT int rename(const char* from, const char* to) noexcept {
  return RenameShim(AT_FDCWD, from, AT_FDCWD, to, 0, [&] {
    auto real = REAL(rename);
    return real != nullptr ? real(from, to) : Missing();
  });
}

CLOISTER_EXPORT int renameat(int from_dir, const char* from, int to_dir, const char* to) noexcept {
  return RenameShim(from_dir, from, to_dir, to, 0, [&] {
    auto real = REAL(renameat);
    return real != nullptr ? real(from_dir, from, to_dir, to) : Missing();
  });
}

CLOISTER_EXPORT int renameat2(int from_dir, const char* from, int to_dir, const char* to, unsigned int flags) noexcept {
  return RenameShim(from_dir, from, to_dir, to, flags, [&] {
    auto real = REAL(renameat2);
    return real != nullptr ? real(from_dir, from, to_dir, to, flags) : Missing();
  });
}

CLOISTER_EXPORT int link(const char* from, const char* to) noexcept {
  if (LinkShim(AT_FDCWD, from, AT_FDCWD, to) < 0) return -1;
  CLOISTER_PASS(link, from, to);
}

CLOISTER_EXPORT int linkat(int from_dir, const char* from, int to_dir, const char* to, int flags) noexcept {
  if (LinkShim(from_dir, from, to_dir, to) < 0) return -1;
  CLOISTER_PASS(linkat, from_dir, from, to_dir, to, flags);
}

CLOISTER_EXPORT int symlink(const char* target, const char* path) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Symlink(target, t));
  CLOISTER_PASS(symlink, target, path);
}

CLOISTER_EXPORT int symlinkat(const char* target, int dirfd, const char* path) noexcept {
  CLOISTER_SHIELD_PATH(dirfd, shield::Symlink(target, t));
  CLOISTER_PASS(symlinkat, target, dirfd, path);
}

CLOISTER_EXPORT ssize_t readlink(const char* path, char* buf, size_t size) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Readlink(t, buf, size));
  auto real = REAL(readlink);
  return real != nullptr ? real(path, buf, size) : Missing();
}

CLOISTER_EXPORT ssize_t readlinkat(int dirfd, const char* path, char* buf, size_t size) noexcept {
  CLOISTER_SHIELD_PATH(dirfd, shield::Readlink(t, buf, size));
  auto real = REAL(readlinkat);
  return real != nullptr ? real(dirfd, path, buf, size) : Missing();
}

CLOISTER_EXPORT int chmod(const char* path, mode_t mode) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Chmod(t, mode));
  CLOISTER_PASS(chmod, path, mode);
}

CLOISTER_EXPORT int fchmodat(int dirfd, const char* path, mode_t mode, int flags) noexcept {
  CLOISTER_SHIELD_PATH(dirfd, shield::Chmod(t, mode));
  CLOISTER_PASS(fchmodat, dirfd, path, mode, flags);
}

CLOISTER_EXPORT int fchmod(int fd, mode_t mode) noexcept {
  if (shield::IsShielded(fd)) return shield::Fchmod(fd, mode);
  CLOISTER_PASS(fchmod, fd, mode);
}

CLOISTER_EXPORT int utimensat(int dirfd, const char* path, const struct timespec times[2], int flags) noexcept {
  if (path == nullptr && shield::IsShielded(dirfd)) return shield::Futimens(dirfd, times);
  CLOISTER_SHIELD_PATH(dirfd, shield::SetTimes(t, times));
  CLOISTER_PASS(utimensat, dirfd, path, times, flags);
}

CLOISTER_EXPORT int futimens(int fd, const struct timespec times[2]) noexcept {
  if (shield::IsShielded(fd)) return shield::Futimens(fd, times);
  CLOISTER_PASS(futimens, fd, times);
}

// ---- the file shield: directories and the working directory ----

CLOISTER_EXPORT DIR* opendir(const char* path) {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::OpenDir(t));
  auto real = REAL(opendir);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(path);
}

CLOISTER_EXPORT DIR* fdopendir(int fd) {
  if (shield::IsShielded(fd)) return shield::FdOpenDir(fd);
  auto real = REAL(fdopendir);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(fd);
}

CLOISTER_EXPORT struct dirent* readdir(DIR* d) {
  if (shield::IsShieldDir(d)) return reinterpret_cast<struct dirent*>(shield::ReadDir(d));
  auto real = REAL(readdir);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(d);
}

CLOISTER_EXPORT struct dirent64* readdir64(DIR* d) {
  if (shield::IsShieldDir(d)) return shield::ReadDir(d);
  auto real = REAL(readdir64);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(d);
}

CLOISTER_EXPORT int closedir(DIR* d) {
  if (shield::IsShieldDir(d)) return shield::CloseDir(d);
  CLOISTER_PASS(closedir, d);
}

CLOISTER_EXPORT int dirfd(DIR* d) noexcept {
  if (shield::IsShieldDir(d)) return shield::DirFd(d);
  CLOISTER_PASS(dirfd, d);
}

CLOISTER_EXPORT void rewinddir(DIR* d) noexcept {
  if (shield::IsShieldDir(d)) return shield::RewindDir(d);
  auto real = REAL(rewinddir);
  if (real != nullptr) real(d);
}

CLOISTER_EXPORT ssize_t getdents64(int fd, void* buf, size_t size) noexcept {
  if (shield::IsShieldedDirectory(fd)) return shield::Getdents(fd, buf, size);
  auto real = REAL(getdents64);
  return real != nullptr ? real(fd, buf, size) : Missing();
}

CLOISTER_EXPORT int chdir(const char* path) noexcept {
  CLOISTER_SHIELD_PATH(AT_FDCWD, shield::Chdir(t));
  auto real = REAL(chdir);
  if (real == nullptr) return Missing();
  int r = real(path);
  if (r == 0) shield::LeftVolumeCwd();
  return r;
}

CLOISTER_EXPORT int fchdir(int fd) noexcept {
  if (shield::IsShieldedDirectory(fd)) return shield::Fchdir(fd);
  auto real = REAL(fchdir);
  if (real == nullptr) return Missing();
  int r = real(fd);
  if (r == 0) shield::LeftVolumeCwd();
  return r;
}

CLOISTER_EXPORT char* getcwd(char* buf, size_t size) noexcept {
  bool handled = false;
  char* r = shield::Getcwd(buf, size, &handled);
  if (handled) return r;
  auto real = REAL(getcwd);
  if (real == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return real(buf, size);
}

// The _FORTIFY_SOURCE forms: the same, with the buffer's size checked.
CLOISTER_EXPORT char* __realpath_chk(const char* path, char* resolved, size_t resolvedlen) noexcept {
  if (resolved != nullptr && resolvedlen < PATH_MAX) {
    auto real = REAL(__realpath_chk);
    return real != nullptr ? real(path, resolved, resolvedlen) : nullptr;
  }
  return realpath(path, resolved);
}

CLOISTER_EXPORT char* __getcwd_chk(char* buf, size_t size, size_t buflen) noexcept {
  if (size > buflen) {
    auto real = REAL(__getcwd_chk);
    return real != nullptr ? real(buf, size, buflen) : nullptr;
  }
  return getcwd(buf, size);
}

CLOISTER_EXPORT ssize_t __readlink_chk(const char* path, char* buf, size_t size, size_t buflen) noexcept {
  if (size > buflen) {
    auto real = REAL(__readlink_chk);
    return real != nullptr ? real(path, buf, size, buflen) : Missing();
  }
  return readlink(path, buf, size);
}

CLOISTER_EXPORT ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t size, size_t buflen) noexcept {
  if (size > buflen) {
    auto real = REAL(__readlinkat_chk);
    return real != nullptr ? real(dirfd, path, buf, size, buflen) : Missing();
  }
  return readlinkat(dirfd, path, buf, size);
}

}  // namespace cloister::runtime
