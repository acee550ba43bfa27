#include "las/process_measurer.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "las/proc_maps.h"

namespace cloister::las {
namespace {

// An owned descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// The largest maps file we read. A process with this many mappings (tens
// of thousands of lines) is not one we can measure in reasonable time.
constexpr size_t kMaxMapsSize = 32u << 20;

Status Gone(uint32_t pid) { return NotFound("process " + std::to_string(pid) + " is gone"); }

bool IsGoneErrno(int err) { return err == ENOENT || err == ESRCH; }

std::string Reason(int err) {
  std::string s = std::strerror(err);
  if (err == EACCES || err == EPERM) s += " (the LAS must run as root to measure processes of other users)";
  return s;
}

Status ExeError(uint32_t pid, const std::string& why) {
  return IoError("cannot measure the executable of process " + std::to_string(pid) + ": " + why);
}
Status RuntimeError(uint32_t pid, const std::string& why) {
  return IoError("cannot measure the runtime library of process " + std::to_string(pid) + ": " + why);
}

// Reads the whole of `fd` into `out`. Returns 0, an errno value, or EFBIG
// past `max` bytes.
int ReadAll(int fd, size_t max, std::string& out) {
  char buf[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    if (out.size() + static_cast<size_t>(n) > max) return EFBIG;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Opens `path` (absolute, as the process sees it) inside the directory tree
// rooted at `root_fd`: "..", and absolute symbolic links, cannot climb out
// of it. openat2 exists since Linux 5.6; without it, a plain openat relative
// to the root still finds the right file in the common case, and the
// device/inode check that follows refuses anything else.
int OpenInRoot(int root_fd, const std::string& path) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
  if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
  std::string relative = path.substr(path.find_first_not_of('/'));
  return ::openat(root_fd, relative.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

}  // namespace

ProcessMeasurer::ProcessMeasurer(MeasurementCache& cache, Options options)
    : cache_(cache), options_(std::move(options)) {}

StatusOr<ProcessMeasurement> ProcessMeasurer::Measure(uint32_t pid) {
  if (pid == 0) return InvalidArgument("process 0 cannot be measured");
  std::string dir_path = options_.proc_root + "/" + std::to_string(pid);
  Fd dir(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.ok()) {
    if (IsGoneErrno(errno)) return Gone(pid);
    return ExeError(pid, Reason(errno));
  }
  ProcessMeasurement out;
  {
    Fd exe(::openat(dir.get(), "exe", O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!exe.ok()) {
      // A process that has exited (a zombie included) has no exe link.
      if (IsGoneErrno(errno)) return Gone(pid);
      return ExeError(pid, Reason(errno));
    }
    auto m = cache_.Measure(exe.get());
    if (!m.ok()) return ExeError(pid, m.status().message());
    out.executable = *m;
  }
  auto runtime = MeasureRuntime(dir.get(), pid, &out.has_runtime);
  if (!runtime.ok()) return runtime.status();
  out.runtime = *runtime;
  return out;
}

StatusOr<attest::Sha256Value> ProcessMeasurer::MeasureRuntime(int pid_dir, uint32_t pid, bool* found) {
  *found = false;
  Fd maps_fd(::openat(pid_dir, "maps", O_RDONLY | O_CLOEXEC));
  if (!maps_fd.ok()) {
    if (IsGoneErrno(errno)) return Gone(pid);
    return RuntimeError(pid, std::string("cannot read its maps: ") + Reason(errno));
  }
  std::string text;
  if (int err = ReadAll(maps_fd.get(), kMaxMapsSize, text); err != 0) {
    // Reading the maps of a process that exited meanwhile yields ESRCH or
    // nothing at all; both mean the same to the caller.
    if (IsGoneErrno(err)) return Gone(pid);
    return RuntimeError(pid, "cannot read its maps: " + Reason(err));
  }
  if (text.empty()) return Gone(pid);  // a live process always has mappings

  std::vector<MapsEntry> maps = FindMappings(text, kRuntimeBasenamePrefix);
  if (maps.empty()) return attest::Sha256Value{};
  // A library is mapped as several segments of one file; two different
  // files that both look like the runtime leave it unclear which one is in
  // charge, so that is refused.
  const MapsEntry& m = maps.front();
  for (const MapsEntry& other : maps) {
    if (other.dev_major != m.dev_major || other.dev_minor != m.dev_minor || other.inode != m.inode) {
      return RuntimeError(pid, "more than one runtime library is mapped (" + m.path + ", " + other.path + ")");
    }
  }

  Fd file;
  if (options_.use_map_files) {
    char name[64];
    std::snprintf(name, sizeof(name), "map_files/%llx-%llx", static_cast<unsigned long long>(m.start),
                  static_cast<unsigned long long>(m.end));
    file = Fd(::openat(pid_dir, name, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    // EPERM: the LAS lacks the capability map_files needs. Anything else
    // (the mapping went away, say) is left to the path below to decide.
  }
  if (!file.ok()) {
    if (m.deleted) {
      return RuntimeError(pid, m.path + " was deleted or replaced on disk after the process mapped it");
    }
    Fd root(::openat(pid_dir, "root", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.ok()) {
      if (IsGoneErrno(errno)) return Gone(pid);
      return RuntimeError(pid, std::string("cannot open its root directory: ") + Reason(errno));
    }
    file = Fd(OpenInRoot(root.get(), m.path));
    if (!file.ok()) return RuntimeError(pid, m.path + ": " + Reason(errno));
  }
  struct stat st;
  if (::fstat(file.get(), &st) != 0) return RuntimeError(pid, m.path + ": " + Reason(errno));
  if (major(st.st_dev) != m.dev_major || minor(st.st_dev) != m.dev_minor || st.st_ino != m.inode) {
    return RuntimeError(pid, m.path + " is not the file mapped into the process (its device or inode differs)");
  }
  auto v = cache_.Measure(file.get());
  if (!v.ok()) return RuntimeError(pid, m.path + ": " + v.status().message());
  *found = true;
  return *v;
}

}  // namespace cloister::las
