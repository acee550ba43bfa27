#include "runtime/injected_files.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "runtime/paths.h"

namespace cloister::runtime {
namespace {

// Linux 6.3 added these memfd flags; Debian 12's headers predate them.
// With MFD_NOEXEC_SEAL a file that has no execute bit cannot be made
// executable, and kernels set to vm.memfd_noexec=2 refuse memfds that say
// neither flag.
constexpr unsigned kMfdNoexecSeal = 0x0008U;
constexpr unsigned kMfdExec = 0x0010U;

constexpr uint32_t kAnyExecute = S_IXUSR | S_IXGRP | S_IXOTH;

std::atomic<const InjectedFiles*> g_installed{nullptr};

// memfd names: the prefix, then the file's index in the table. The kernel
// shows them in /proc/PID/fd as "/memfd:NAME (deleted)".
constexpr std::string_view kMemfdPrefix = "cloister-injected:";
constexpr std::string_view kMemfdLinkPrefix = "/memfd:cloister-injected:";

int CreateMemfd(size_t index, uint32_t mode) {
  char name[48];
  snprintf(name, sizeof(name), "%.*s%zu", static_cast<int>(kMemfdPrefix.size()), kMemfdPrefix.data(), index);
  unsigned base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  unsigned wanted = (mode & kAnyExecute) != 0 ? kMfdExec : kMfdNoexecSeal;
  int fd = ::memfd_create(name, base | wanted);
  if (fd < 0 && errno == EINVAL) fd = ::memfd_create(name, base);  // before Linux 6.3
  return fd;
}

bool WriteAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<InjectedFiles>> InjectedFiles::New(std::vector<InjectedFile> files, timespec start) {
  std::unique_ptr<InjectedFiles> t(new InjectedFiles());
  t->start_ = start;
  for (const InjectedFile& f : files) {
    PathBuffer normal;
    if (!NormalizePath({}, f.path, normal) || f.path[0] != '/' || normal.view() != f.path) {
      return Fail("injected file path '" + f.path + "' is not a normal absolute path");
    }
    if (f.mode > 07777)
      return Fail("injected file " + f.path + " has mode " + std::to_string(f.mode) + " (above 07777)");
  }
  t->files_ = std::move(files);
  std::sort(t->files_.begin(), t->files_.end(),
            [](const InjectedFile& a, const InjectedFile& b) { return a.path < b.path; });
  for (size_t i = 1; i < t->files_.size(); ++i) {
    if (t->files_[i].path == t->files_[i - 1].path)
      return Fail("injected file " + t->files_[i].path + " is given twice");
  }
  return t;
}

const InjectedFile* InjectedFiles::Find(std::string_view path) const {
  auto it = std::lower_bound(files_.begin(), files_.end(), path,
                             [](const InjectedFile& f, std::string_view p) { return f.path < p; });
  if (it == files_.end() || it->path != path) return nullptr;
  return &*it;
}

void InjectedFiles::Stat(const InjectedFile& file, struct stat* st) const {
  *st = {};
  st->st_dev = 0;
  st->st_ino = static_cast<ino_t>(&file - files_.data()) + 1;
  st->st_mode = S_IFREG | file.mode;
  st->st_nlink = 1;
  st->st_uid = ::getuid();
  st->st_gid = ::getgid();
  st->st_size = static_cast<off_t>(file.content.size());
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>((file.content.size() + 4095) / 4096 * 8);  // 512-byte units
  st->st_atim = start_;
  st->st_mtim = start_;
  st->st_ctim = start_;
}

void InjectedFiles::Statx(const InjectedFile& file, struct statx* stx) const {
  *stx = {};
  struct stat st;
  Stat(file, &st);
  stx->stx_mask = STATX_BASIC_STATS | STATX_BTIME;
  stx->stx_blksize = static_cast<uint32_t>(st.st_blksize);
  stx->stx_nlink = static_cast<uint32_t>(st.st_nlink);
  stx->stx_uid = st.st_uid;
  stx->stx_gid = st.st_gid;
  stx->stx_mode = static_cast<uint16_t>(st.st_mode);
  stx->stx_ino = st.st_ino;
  stx->stx_size = static_cast<uint64_t>(st.st_size);
  stx->stx_blocks = static_cast<uint64_t>(st.st_blocks);
  struct statx_timestamp t {};
  t.tv_sec = start_.tv_sec;
  t.tv_nsec = static_cast<uint32_t>(start_.tv_nsec);
  stx->stx_atime = t;
  stx->stx_btime = t;
  stx->stx_ctime = t;
  stx->stx_mtime = t;
}

int InjectedFiles::CheckAccess(const InjectedFile& file, int mode, bool effective) {
  if (mode == F_OK) return 0;
  if ((mode & W_OK) != 0) return EACCES;
  bool root = (effective ? ::geteuid() : ::getuid()) == 0;
  if ((mode & R_OK) != 0 && !root && (file.mode & S_IRUSR) == 0) return EACCES;
  if ((mode & X_OK) != 0 && (file.mode & (root ? kAnyExecute : S_IXUSR)) == 0) return EACCES;
  return 0;
}

int InjectedFiles::Open(const InjectedFile& file, int flags) const {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0 || (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
    return -EACCES;
  }
  if ((flags & O_DIRECTORY) != 0) return -ENOTDIR;
  if (CheckAccess(file, R_OK, /*effective=*/true) != 0) return -EACCES;

  int fd = CreateMemfd(static_cast<size_t>(&file - files_.data()), file.mode);
  if (fd < 0) return -errno;
  // The memfd's own mode mirrors the file's, so fstat on the descriptor
  // agrees with stat on the path (a memfd starts as 0777).
  bool ok = ::fchmod(fd, file.mode & 07777) == 0 && WriteAll(fd, file.content.data(), file.content.size()) &&
            ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0 &&
            ::lseek(fd, 0, SEEK_SET) == 0 && ((flags & O_CLOEXEC) != 0 || ::fcntl(fd, F_SETFD, 0) == 0);
  if (!ok) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

const InjectedFile* InjectedFiles::FindDescriptor(int fd) const {
  if (fd < 0) return nullptr;
  int saved_errno = errno;
  char path[32];
  char link[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(path, link, sizeof(link));
  errno = saved_errno;
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(link)) return nullptr;
  std::string_view l(link, static_cast<size_t>(n));
  if (l.substr(0, kMemfdLinkPrefix.size()) != kMemfdLinkPrefix) return nullptr;
  l.remove_prefix(kMemfdLinkPrefix.size());
  size_t index = 0;
  size_t digits = 0;
  while (digits < l.size() && l[digits] >= '0' && l[digits] <= '9' && digits < 9) {
    index = index * 10 + static_cast<size_t>(l[digits] - '0');
    ++digits;
  }
  // Exactly the name Open gives: digits, then the kernel's suffix.
  if (digits == 0 || l.substr(digits) != " (deleted)" || index >= files_.size()) return nullptr;
  return &files_[index];
}

void InstallInjectedFiles(std::unique_ptr<InjectedFiles> table) {
  if (!table || table->size() == 0) return;
  // Released on purpose: the table lives as long as the process.
  const InjectedFiles* expected = nullptr;
  const InjectedFiles* t = table.release();
  if (!g_installed.compare_exchange_strong(expected, t, std::memory_order_acq_rel)) delete t;
}

const InjectedFiles* InstalledInjectedFiles() { return g_installed.load(std::memory_order_acquire); }

}  // namespace cloister::runtime
