#include "runtime/shield_client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "crypto/crypto.h"
#include "runtime/log.h"
#include "runtime/shield_exec.h"
#include "runtime/shield_server.h"
#include "runtime/shield_wire.h"
#include "volume/sync_log.h"

namespace cloister::runtime::shield {
namespace {

constexpr int kMaxFds = 1 << 16;
// The shield's own descriptors go above this, out of the way of programs
// that expect the lowest free numbers.
constexpr int kHighFd = 900;

struct Mount {
  std::string path;
  dev_t dev = 0;
  ino_t root_ino = 1;  // what the volume's root (its inode 1) reports
  uid_t uid = 0;
  gid_t gid = 0;
  bool read_only = false;
};

struct Entry {
  uint64_t ino;
  uint8_t type;
  std::string name;
};

struct Slot {
  std::atomic<int> refs{1};
  uint32_t volume = 0;
  uint64_t file_id = 0;
  uint8_t type = kTypeFile;
  unsigned shift = 12;
  bool sync_writes = false;
  DirtyHead* dirty = nullptr;
  uint64_t dirty_ino = 0;  // the dirty map's memfd: its key in g_dirty_maps
  std::string inner;  // the path inside the volume when opened
  StatInfo st{};
  std::mutex mu;      // directories: the listing below
  bool listed = false;
  size_t pos = 0;
  std::vector<Entry> entries;
};

std::atomic<bool> g_active{false};
std::vector<Mount>* g_mounts = nullptr;
std::atomic<Slot*>* g_fds = nullptr;
int g_control = -1;
pthread_mutex_t g_conn_mu = PTHREAD_MUTEX_INITIALIZER;
int g_conn = -1;
pid_t g_conn_pid = 0;
pthread_mutex_t g_cwd_mu = PTHREAD_MUTEX_INITIALIZER;
// The volumes' sync logs, once asked for (inherited across fork; an exec'd
// program asks again).
struct LogHandle {
  volume::SyncLogShared* sh = nullptr;
  int fd = -1;
  bool none = false;  // the volume has no sync log
};
pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
std::vector<LogHandle>* g_logs = nullptr;
std::string* g_cwd = nullptr;  // absolute, when on a volume

pid_t g_root_pid = 0;  // the program's main process (0 in a program exec'd by another of its processes)
// What a program this one execs needs in its environment to attest as the
// same service ("NAME=value").
std::vector<std::string>* g_exec_vars = nullptr;

// The dirty maps this process has mapped, by the inode of their memfd, so
// that every descriptor of a file shares one mapping. A mapped memfd stays
// alive, so its inode number cannot be reused while it is in here.
struct DirtyMapping {
  DirtyHead* head;
  int refs;
};
pthread_mutex_t g_dirty_mu = PTHREAD_MUTEX_INITIALIZER;
std::map<uint64_t, DirtyMapping>* g_dirty_maps = nullptr;

void ChildAfterFork() {
  pthread_mutex_init(&g_dirty_mu, nullptr);
  pthread_mutex_init(&g_conn_mu, nullptr);
  pthread_mutex_init(&g_cwd_mu, nullptr);
  pthread_mutex_init(&g_log_mu, nullptr);
  // The parent's connection is the parent's: the server must see it close
  // when the parent ends. This process connects anew when it needs to.
  if (g_conn >= 0) ::close(g_conn);
  g_conn = -1;
  g_conn_pid = 0;
}

int MoveHigh(int fd) {
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, kHighFd);
  if (high < 0) return fd;
  ::close(fd);
  return high;
}

int RealFstat(int fd, struct stat* st) { return static_cast<int>(::syscall(SYS_fstat, fd, st)); }

// The mapping of the dirty map the server sent as `fd` (which this takes),
// shared with the other descriptors of the same file. Null on failure.
DirtyHead* MapDirty(int fd, uint64_t* key) {
  struct stat st {};
  if (RealFstat(fd, &st) != 0) {
    ::close(fd);
    return nullptr;
  }
  *key = st.st_ino;
  pthread_mutex_lock(&g_dirty_mu);
  if (g_dirty_maps == nullptr) g_dirty_maps = new std::map<uint64_t, DirtyMapping>;
  DirtyHead* head = nullptr;
  auto it = g_dirty_maps->find(st.st_ino);
  if (it != g_dirty_maps->end()) {
    ++it->second.refs;
    head = it->second.head;
  } else {
    void* map = ::mmap(nullptr, kDirtyMapBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      head = static_cast<DirtyHead*>(map);
      (*g_dirty_maps)[st.st_ino] = DirtyMapping{head, 1};
    }
  }
  pthread_mutex_unlock(&g_dirty_mu);
  int e = errno;
  ::close(fd);
  errno = e;
  return head;
}

void UnmapDirty(uint64_t key) {
  pthread_mutex_lock(&g_dirty_mu);
  if (g_dirty_maps != nullptr) {
    auto it = g_dirty_maps->find(key);
    if (it != g_dirty_maps->end() && --it->second.refs == 0) {
      ::munmap(it->second.head, kDirtyMapBytes);
      g_dirty_maps->erase(it);
    }
  }
  pthread_mutex_unlock(&g_dirty_mu);
}

// log2 of a chunk size the server sent (a power of two).
unsigned ShiftOf(uint32_t chunk_size) {
  unsigned shift = 0;
  while ((1u << shift) < chunk_size) ++shift;
  return shift;
}

// Must hold g_conn_mu.
bool Connected() {
  pid_t me = ::getpid();
  if (g_conn >= 0 && g_conn_pid == me) return true;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return false;
  char hello = 'c';
  if (!SendDatagram(g_control, &hello, 1, nullptr, 0, &pair[1], 1)) {
    ::close(pair[0]);
    ::close(pair[1]);
    return false;
  }
  ::close(pair[1]);
  g_conn = MoveHigh(pair[0]);
  g_conn_pid = me;
  return true;
}

// One request on `sock` and its answer, received into `buf` (kMaxMessage
// bytes). `data`/`fds` receive what comes with the answer. False when the
// server cannot be reached or answers nonsense.
bool Exchange(int sock, char* buf, const Request& req, const char* p1, const char* p2, Reply* reply,
              std::string* data, int* fds, int* nfds, bool wait) {
  char msg[sizeof(Request) + 2 * kMaxPathBytes];
  std::memcpy(msg, &req, sizeof(req));
  std::memcpy(msg + sizeof(req), p1, req.path_len);
  std::memcpy(msg + sizeof(req) + req.path_len, p2, req.path2_len);
  bool ok = SendDatagram(sock, msg, sizeof(req) + req.path_len + req.path2_len, nullptr, 0, nullptr, 0);
  if (ok && wait) {
    int got_fds[2];
    int n_got = 0;
    ssize_t n = ReceiveDatagram(sock, buf, kMaxMessage, got_fds, &n_got);
    ok = n >= static_cast<ssize_t>(sizeof(Reply));
    if (ok) {
      std::memcpy(reply, buf, sizeof(Reply));
      ok = sizeof(Reply) + reply->data_len == static_cast<size_t>(n);
      if (ok && data != nullptr) data->assign(buf + sizeof(Reply), reply->data_len);
    }
    for (int i = 0; i < n_got; ++i) {
      if (ok && fds != nullptr) {
        fds[i] = got_fds[i];
      } else {
        ::close(got_fds[i]);
      }
    }
    if (nfds != nullptr) *nfds = ok && fds != nullptr ? n_got : 0;
  }
  return ok;
}

// One request and its answer on this process's connection. Returns false
// (errno EIO) when the server cannot be reached.
bool Call(const Request& req, const char* p1, const char* p2, Reply* reply, std::string* data = nullptr,
          int* fds = nullptr, int* nfds = nullptr, bool wait = true) {
  int saved = errno;
  pthread_mutex_lock(&g_conn_mu);
  // Guarded by g_conn_mu. Not thread_local: exit runs the thread-local
  // destructors before the exit handler that commits (CommitAtExit).
  static char buf[kMaxMessage];
  bool ok = Connected() && Exchange(g_conn, buf, req, p1, p2, reply, data, fds, nfds, wait);
  pthread_mutex_unlock(&g_conn_mu);
  if (!ok) {
    static std::atomic<bool> told{false};
    if (!told.exchange(true)) Log("the file shield's volume server cannot be reached: file operations fail with EIO");
    errno = EIO;
    return false;
  }
  errno = saved;
  return true;
}

// The program's exit (after its own exit handlers): its writes committed
// and the commit recorded by the CAS before the exit status is known, so
// that a start right after finds the CAS up to date. A forked child's exit,
// a crash or _exit leave that to the server.
void CommitAtExit() {
  if (!g_active.load(std::memory_order_acquire) || ::getpid() != g_root_pid) return;
  for (size_t v = 0; v < g_mounts->size(); ++v) {
    if ((*g_mounts)[v].read_only) continue;
    Request req{};
    req.op = Op::kSync;
    req.volume = static_cast<uint32_t>(v);
    req.flags = kSyncReported;
    Reply r{};
    (void)Call(req, "", "", &r);
  }
}

Request MakeRequest(Op op, const Target& t) {
  Request r{};
  r.op = op;
  r.volume = static_cast<uint32_t>(t.volume);
  r.path_len = static_cast<uint16_t>(t.inner.size);
  return r;
}

// A request on one path; its answer's error set as errno. -1 or 0.
int Simple(Request req, const Target& t, Reply* reply = nullptr, std::string* data = nullptr) {
  Reply r{};
  if (!Call(req, t.inner.data, "", &r, data)) return -1;
  if (reply != nullptr) *reply = r;
  if (r.error != 0) {
    errno = r.error;
    return -1;
  }
  return 0;
}

const Mount& MountOf(uint32_t v) { return (*g_mounts)[v]; }

void FillStat(const Mount& m, const StatInfo& si, struct stat* buf) {
  std::memset(buf, 0, sizeof(*buf));
  buf->st_dev = m.dev;
  buf->st_ino = si.ino == 1 ? m.root_ino : si.ino;
  buf->st_mode = si.mode | (si.type == kTypeDirectory ? S_IFDIR : si.type == kTypeSymlink ? S_IFLNK : S_IFREG);
  buf->st_nlink = si.type == kTypeDirectory ? 2 : 1;
  buf->st_uid = m.uid;
  buf->st_gid = m.gid;
  buf->st_size = static_cast<off_t>(si.size);
  buf->st_blksize = 4096;
  buf->st_blocks = static_cast<blkcnt_t>((si.size + 511) / 512);
  timespec ts{static_cast<time_t>(si.mtime_ns / 1000000000), static_cast<long>(si.mtime_ns % 1000000000)};
  buf->st_mtim = ts;
  buf->st_atim = ts;
  buf->st_ctim = ts;
}

void ToStatx(const struct stat& s, struct statx* x) {
  std::memset(x, 0, sizeof(*x));
  x->stx_mask = STATX_BASIC_STATS;
  x->stx_blksize = static_cast<uint32_t>(s.st_blksize);
  x->stx_nlink = static_cast<uint32_t>(s.st_nlink);
  x->stx_uid = s.st_uid;
  x->stx_gid = s.st_gid;
  x->stx_mode = static_cast<uint16_t>(s.st_mode);
  x->stx_ino = s.st_ino;
  x->stx_size = static_cast<uint64_t>(s.st_size);
  x->stx_blocks = static_cast<uint64_t>(s.st_blocks);
  auto ts = [](const timespec& t) {
    struct statx_timestamp r {};
    r.tv_sec = t.tv_sec;
    r.tv_nsec = static_cast<uint32_t>(t.tv_nsec);
    return r;
  };
  x->stx_atime = ts(s.st_atim);
  x->stx_mtime = ts(s.st_mtim);
  x->stx_ctime = ts(s.st_ctim);
  x->stx_dev_major = major(s.st_dev);
  x->stx_dev_minor = minor(s.st_dev);
}

// The path `s` was opened under (good unless it was renamed since).
Target TargetOf(const Slot& s) {
  Target t;
  t.volume = static_cast<int>(s.volume);
  std::memcpy(t.inner.data, s.inner.data(), s.inner.size());
  t.inner.size = s.inner.size();
  t.inner.data[t.inner.size] = '\0';
  return t;
}

Slot* SlotOf(int fd) {
  if (fd < 0 || fd >= kMaxFds || g_fds == nullptr) return nullptr;
  return g_fds[fd].load(std::memory_order_acquire);
}

void Release(Slot* s) {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (s->type == kTypeFile) {
    Request req{};
    req.op = Op::kClose;
    req.volume = s->volume;
    req.file_id = s->file_id;
    Reply r{};
    (void)Call(req, "", "", &r, nullptr, nullptr, nullptr, /*wait=*/false);
    if (s->dirty != nullptr) UnmapDirty(s->dirty_ino);
  }
  delete s;
}

bool InstallSlot(int fd, Slot* s) {
  if (fd >= kMaxFds) return false;
  Slot* old = g_fds[fd].exchange(s, std::memory_order_acq_rel);
  if (old != nullptr) Release(old);
  return true;
}

// The base against which a relative path of an *at() call is resolved.
bool BaseOf(int dirfd, PathBuffer& base) {
  if (dirfd == AT_FDCWD) {
    pthread_mutex_lock(&g_cwd_mu);
    bool virt = g_cwd != nullptr && g_cwd->size() < kMaxPath;
    if (virt) {
      std::memcpy(base.data, g_cwd->data(), g_cwd->size());
      base.size = g_cwd->size();
    }
    pthread_mutex_unlock(&g_cwd_mu);
    if (virt) return true;
    if (::getcwd(base.data, sizeof(base.data)) == nullptr) return false;
    base.size = std::strlen(base.data);
    return true;
  }
  if (Slot* s = SlotOf(dirfd); s != nullptr && s->type == kTypeDirectory) {
    const std::string& mp = MountOf(s->volume).path;
    if (mp.size() + s->inner.size() + 1 >= kMaxPath) return false;
    std::memcpy(base.data, mp.data(), mp.size());
    base.size = mp.size();
    if (s->inner != "/") {
      std::memcpy(base.data + base.size, s->inner.data(), s->inner.size());
      base.size += s->inner.size();
    }
    return true;
  }
  char link[32];
  std::snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
  ssize_t n = ::readlink(link, base.data, sizeof(base.data) - 1);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(base.data) - 1) return false;
  base.size = static_cast<size_t>(n);
  return base.data[0] == '/';
}

}  // namespace

bool Active() { return g_active.load(std::memory_order_acquire); }

bool Route(int dirfd, const char* path, Target* out) {
  if (!Active() || path == nullptr || path[0] == '\0') return false;
  size_t len = strnlen(path, kMaxPath);
  if (len == kMaxPath) return false;
  int saved = errno;
  PathBuffer base;
  bool ok = path[0] == '/' || BaseOf(dirfd, base);
  errno = saved;
  if (!ok) return false;
  PathBuffer full;
  if (!NormalizePath(path[0] == '/' ? std::string_view() : base.view(), std::string_view(path, len), full)) {
    return false;
  }
  std::string_view f = full.view();
  for (size_t v = 0; v < g_mounts->size(); ++v) {
    const std::string& mp = (*g_mounts)[v].path;
    if (f.size() < mp.size() || f.compare(0, mp.size(), mp) != 0) continue;
    if (f.size() > mp.size() && f[mp.size()] != '/') continue;
    std::string_view rest = f.substr(mp.size());
    if (rest.empty()) rest = "/";
    if (rest.size() >= kMaxPathBytes) return false;
    out->volume = static_cast<int>(v);
    std::memcpy(out->inner.data, rest.data(), rest.size());
    out->inner.size = rest.size();
    out->inner.data[rest.size()] = '\0';
    return true;
  }
  return false;
}

// ---- paths ----

int Open(const Target& t, int flags, mode_t mode) {
  // The answer brings two descriptors. Without room for them, fail as open
  // does, before the server creates or truncates anything: a program that
  // closes something and tries again (PostgreSQL does) must find the file
  // as it was.
  int spare[2] = {::fcntl(g_control, F_DUPFD_CLOEXEC, 0), ::fcntl(g_control, F_DUPFD_CLOEXEC, 0)};
  const bool room = spare[0] >= 0 && spare[1] >= 0;
  for (int fd : spare) {
    if (fd >= 0) ::close(fd);
  }
  if (!room) {
    errno = EMFILE;
    return -1;
  }
  Request req = MakeRequest(Op::kOpen, t);
  req.flags = flags;
  req.mode = mode;
  Reply r{};
  int fds[2] = {-1, -1};
  int nfds = 0;
  if (!Call(req, t.inner.data, "", &r, nullptr, fds, &nfds)) return -1;
  if (r.error != 0) {
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    errno = r.error;
    return -1;
  }
  auto* s = new Slot;
  s->volume = req.volume;
  s->file_id = r.file_id;
  s->st = r.st;
  s->inner.assign(t.inner.data, t.inner.size);
  int fd;
  if (r.st.type == kTypeDirectory) {
    // A placeholder the shims answer for.
    fd = ::memfd_create("cloister-shield-directory", (flags & O_CLOEXEC) != 0 ? MFD_CLOEXEC : 0);
    s->type = kTypeDirectory;
  } else {
    if (nfds != 2) {
      for (int i = 0; i < nfds; ++i) ::close(fds[i]);
      delete s;
      errno = EIO;
      return -1;
    }
    s->dirty = MapDirty(fds[1], &s->dirty_ino);
    if (s->dirty == nullptr) {
      int e = errno;
      ::close(fds[0]);
      delete s;
      errno = e;
      return -1;
    }
    s->shift = ShiftOf(r.chunk_size);
    s->sync_writes = (flags & (O_SYNC | O_DSYNC)) != 0;
    // The server opened an open file description of its own for this open
    // (offset, O_APPEND, access mode); it arrives close-on-exec.
    fd = fds[0];
    if ((flags & O_CLOEXEC) == 0) ::fcntl(fd, F_SETFD, 0);
  }
  if (fd < 0) {
    delete s;
    return -1;
  }
  if (!InstallSlot(fd, s)) {
    ::close(fd);
    delete s;
    errno = EMFILE;
    return -1;
  }
  return fd;
}

int Stat(const Target& t, struct stat* buf, bool follow) {
  Reply r{};
  if (Simple(MakeRequest(follow ? Op::kStat : Op::kLstat, t), t, &r) != 0) return -1;
  FillStat(MountOf(static_cast<uint32_t>(t.volume)), r.st, buf);
  return 0;
}

int Statx(const Target& t, struct statx* buf, bool follow) {
  struct stat s;
  if (Stat(t, &s, follow) != 0) return -1;
  ToStatx(s, buf);
  return 0;
}

int Access(const Target& t, int mode) {
  Reply r{};
  if (Simple(MakeRequest(Op::kStat, t), t, &r) != 0) return -1;
  if ((mode & W_OK) != 0 && MountOf(static_cast<uint32_t>(t.volume)).read_only) {
    errno = EROFS;
    return -1;
  }
  return 0;
}

int Mkdir(const Target& t, mode_t mode) {
  Request req = MakeRequest(Op::kMkdir, t);
  req.mode = mode;
  return Simple(req, t);
}

int Rmdir(const Target& t) { return Simple(MakeRequest(Op::kRmdir, t), t); }
int Unlink(const Target& t) { return Simple(MakeRequest(Op::kUnlink, t), t); }

int Rename(const Target& from, const Target& to, unsigned flags) {
  if (from.volume != to.volume) {
    errno = EXDEV;
    return -1;
  }
  if ((flags & ~1u) != 0) {  // only RENAME_NOREPLACE
    errno = EINVAL;
    return -1;
  }
  Request req = MakeRequest(Op::kRename, from);
  req.flags = static_cast<int32_t>(flags);
  req.path2_len = static_cast<uint16_t>(to.inner.size);
  Reply r{};
  if (!Call(req, from.inner.data, to.inner.data, &r)) return -1;
  if (r.error != 0) {
    errno = r.error;
    return -1;
  }
  return 0;
}

int Symlink(const char* target, const Target& at) {
  size_t len = strnlen(target, kMaxPathBytes);
  if (len == 0 || len >= kMaxPathBytes) {
    errno = len == 0 ? ENOENT : ENAMETOOLONG;
    return -1;
  }
  Request req = MakeRequest(Op::kSymlink, at);
  req.path2_len = static_cast<uint16_t>(len);
  Reply r{};
  if (!Call(req, at.inner.data, target, &r)) return -1;
  if (r.error != 0) {
    errno = r.error;
    return -1;
  }
  return 0;
}

ssize_t Readlink(const Target& t, char* buf, size_t size) {
  std::string data;
  if (Simple(MakeRequest(Op::kReadlink, t), t, nullptr, &data) != 0) return -1;
  size_t n = std::min(size, data.size());
  std::memcpy(buf, data.data(), n);
  return static_cast<ssize_t>(n);
}

int Chmod(const Target& t, mode_t mode) {
  Request req = MakeRequest(Op::kChmod, t);
  req.mode = mode;
  return Simple(req, t);
}

int SetTimes(const Target& t, const struct timespec times[2]) {
  Request req = MakeRequest(Op::kSetMtime, t);
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  timespec m = times == nullptr ? now : times[1];
  if (times != nullptr && m.tv_nsec == UTIME_OMIT) return 0;
  if (times != nullptr && m.tv_nsec == UTIME_NOW) m = now;
  req.time_ns = static_cast<int64_t>(m.tv_sec) * 1000000000 + m.tv_nsec;
  return Simple(req, t);
}

int Truncate(const Target& t, off_t size) {
  if (size < 0) {
    errno = EINVAL;
    return -1;
  }
  Request req = MakeRequest(Op::kTruncate, t);
  req.arg = static_cast<uint64_t>(size);
  return Simple(req, t);
}

int Chdir(const Target& t) {
  Reply r{};
  if (Simple(MakeRequest(Op::kStat, t), t, &r) != 0) return -1;
  if (r.st.type != kTypeDirectory) {
    errno = ENOTDIR;
    return -1;
  }
  std::string abs = MountOf(static_cast<uint32_t>(t.volume)).path;
  if (t.inner.view() != "/") abs.append(t.inner.view());
  // The real working directory becomes an empty directory that no longer
  // exists: a relative path that reaches the kernel without passing the
  // shield (from inside libc, say) then fails instead of touching the
  // volume's encrypted files.
  char dead[] = "/tmp/cloister-cwd-XXXXXX";
  if (::mkdtemp(dead) != nullptr) {
    if (::chdir(dead) == 0) ::rmdir(dead);
  }
  pthread_mutex_lock(&g_cwd_mu);
  std::string* old = g_cwd;
  g_cwd = new std::string(std::move(abs));
  pthread_mutex_unlock(&g_cwd_mu);
  delete old;
  return 0;
}

char* Realpath(const Target& t, char* resolved) {
  struct stat st;
  if (Stat(t, &st, true) != 0) return nullptr;
  std::string abs = MountOf(static_cast<uint32_t>(t.volume)).path;
  if (t.inner.view() != "/") abs.append(t.inner.view());
  if (abs.size() >= PATH_MAX) {
    errno = ENAMETOOLONG;
    return nullptr;
  }
  if (resolved == nullptr) {
    resolved = static_cast<char*>(std::malloc(PATH_MAX));
    if (resolved == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
  }
  std::memcpy(resolved, abs.c_str(), abs.size() + 1);
  return resolved;
}

bool AbsoluteFromVirtualCwd(const char* path, PathBuffer* out) {
  if (!Active() || path[0] == '/' || path[0] == '\0') return false;
  pthread_mutex_lock(&g_cwd_mu);
  std::string cwd = g_cwd != nullptr ? *g_cwd : std::string();
  pthread_mutex_unlock(&g_cwd_mu);
  return !cwd.empty() && NormalizePath(cwd, path, *out);
}

void LeftVolumeCwd() {
  if (!Active()) return;
  pthread_mutex_lock(&g_cwd_mu);
  std::string* old = g_cwd;
  g_cwd = nullptr;
  pthread_mutex_unlock(&g_cwd_mu);
  delete old;
}

char* Getcwd(char* buf, size_t size, bool* handled) {
  *handled = false;
  if (!Active()) return nullptr;
  pthread_mutex_lock(&g_cwd_mu);
  std::string cwd = g_cwd != nullptr ? *g_cwd : std::string();
  pthread_mutex_unlock(&g_cwd_mu);
  if (cwd.empty()) return nullptr;
  *handled = true;
  if (buf == nullptr) {
    size_t n = std::max(size, cwd.size() + 1);
    buf = static_cast<char*>(std::malloc(n));
    if (buf == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    size = n;
  }
  if (size < cwd.size() + 1) {
    errno = size == 0 ? EINVAL : ERANGE;
    return nullptr;
  }
  std::memcpy(buf, cwd.c_str(), cwd.size() + 1);
  return buf;
}

// ---- descriptors ----

bool IsShielded(int fd) { return SlotOf(fd) != nullptr; }

bool IsShieldedDirectory(int fd) {
  Slot* s = SlotOf(fd);
  return s != nullptr && s->type == kTypeDirectory;
}

// Asks the server to write the file into the volume while the program goes
// on writing, once enough of it was written since the server last looked:
// the encryption then overlaps the program's writes instead of all of it
// waiting for the next fsync. Never blocks on another thread (a write from a
// signal handler may come here): if the connection is busy, the next write
// asks again.
void AskWriteBehind(Slot* s, uint64_t unflushed) {
  if (s->sync_writes || unflushed < (kWriteBehindBytes >> s->shift)) return;
  if (s->dirty->behind_asked.exchange(1, std::memory_order_acq_rel) != 0) return;
  int saved = errno;
  bool sent = false;
  if (pthread_mutex_trylock(&g_conn_mu) == 0) {
    if (g_conn >= 0 && g_conn_pid == ::getpid()) {
      Request req{};
      req.op = Op::kWriteBehind;
      req.volume = s->volume;
      req.file_id = s->file_id;
      sent = SendDatagram(g_conn, &req, sizeof(req), nullptr, 0, nullptr, 0);
    }
    pthread_mutex_unlock(&g_conn_mu);
  }
  if (!sent) s->dirty->behind_asked.store(0, std::memory_order_release);
  errno = saved;
}

void Wrote(int fd, int64_t at, uint64_t written) {
  Slot* s = SlotOf(fd);
  if (s == nullptr || s->type != kTypeFile || at < 0) return;
  AskWriteBehind(s, MarkDirty(s->dirty, s->shift, static_cast<uint64_t>(at), written));
  if (s->sync_writes) (void)Sync(fd);
}

void WroteAppend(int fd, int64_t before, int64_t after, uint64_t written) {
  Slot* s = SlotOf(fd);
  if (s == nullptr || s->type != kTypeFile) return;
  if (before < 0 || after < 0) {
    s->dirty->full_scan.store(1, std::memory_order_release);
  } else {
    // Another thread may have moved the shared offset meanwhile: cover
    // everything between where it was and where it is.
    int64_t start = std::min(before, after - static_cast<int64_t>(written));
    if (start < 0) start = 0;
    AskWriteBehind(s, MarkDirty(s->dirty, s->shift, static_cast<uint64_t>(start),
                                static_cast<uint64_t>(after - start)));
  }
  if (s->sync_writes) (void)Sync(fd);
}

void Shrunk(int fd, uint64_t size) {
  Slot* s = SlotOf(fd);
  if (s != nullptr && s->type == kTypeFile) MarkShrunk(s->dirty, size);
}

void WritesUnseen(int fd, bool mapping) {
  Slot* s = SlotOf(fd);
  if (s == nullptr || s->type != kTypeFile) return;
  if (mapping) {
    s->dirty->shared_mappings.store(1, std::memory_order_release);
  } else {
    // stdio writes whenever its buffer fills: every commit must look.
    s->dirty->shared_mappings.store(1, std::memory_order_release);
  }
}

void CopiedInto(int fd) {
  Slot* s = SlotOf(fd);
  if (s != nullptr && s->type == kTypeFile) s->dirty->full_scan.store(1, std::memory_order_release);
}

// The sync log of volume `v`, asked for at the first use. Null when there
// is none.
LogHandle* LogOf(uint32_t v) {
  pthread_mutex_lock(&g_log_mu);
  if (g_logs == nullptr) g_logs = new std::vector<LogHandle>(g_mounts->size());
  LogHandle* h = v < g_logs->size() ? &(*g_logs)[v] : nullptr;
  if (h != nullptr && h->sh == nullptr && !h->none) {
    Request req{};
    req.op = Op::kSyncLog;
    req.volume = v;
    Reply r{};
    int fds[2] = {-1, -1};
    int nfds = 0;
    if (!Call(req, "", "", &r, nullptr, fds, &nfds) || r.error != 0 || nfds != 2) {
      for (int k = 0; k < nfds; ++k) ::close(fds[k]);
      h->none = true;
    } else {
      void* map = ::mmap(nullptr, sizeof(volume::SyncLogShared), PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
      ::close(fds[0]);
      if (map == MAP_FAILED) {
        ::close(fds[1]);
        h->none = true;
      } else {
        ::madvise(map, sizeof(volume::SyncLogShared), MADV_DONTDUMP);  // it holds the log's key
        h->sh = static_cast<volume::SyncLogShared*>(map);
        h->fd = MoveHigh(fds[1]);
      }
    }
  }
  if (h != nullptr && h->none) h = nullptr;
  pthread_mutex_unlock(&g_log_mu);
  return h;
}

constexpr int kLogFallBack = 1;

// fsync of a file through the volume's sync log (docs/runtime.md, "Syncs
// without a round trip"): the chunks written since the last record, sealed
// into a record that this process appends and makes durable itself.
// kLogFallBack when the log cannot take it (a commit does it then).
int LogSync(Slot* s, int fd) {
  DirtyHead* d = s->dirty;
  if (d == nullptr || d->in_base.load(std::memory_order_acquire) == 0 ||
      d->full_scan.load(std::memory_order_acquire) != 0 || d->shared_mappings.load(std::memory_order_acquire) != 0 ||
      d->low_size.load(std::memory_order_acquire) != ~uint64_t{0}) {
    return kLogFallBack;
  }
  LogHandle* h = LogOf(s->volume);
  if (h == nullptr) return kLogFallBack;
  const uint64_t C = uint64_t{1} << s->shift;
  StatusOr<volume::SyncLogPosition> pos = volume::SyncLogAppend(h->sh, h->fd, [&](volume::SyncRecordContent& c) {
    // Under the log's lock: the server sets in_base and commits under it.
    if (d->in_base.load(std::memory_order_acquire) == 0) return Unavailable("not in the log's base");
    // The size without a stat: a stat of the memfd would mark its times as
    // queried (see the server's Flush); statx for the size alone does not.
    struct statx sx {};
    if (::syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx) != 0) return IoError("statx failed");
    c.ino = s->file_id & ((uint64_t{1} << 48) - 1);
    c.size = sx.stx_size;
    const uint64_t chunks = (c.size + C - 1) / C;
    // The chunks written since the last record (taken: if this record does
    // not go in, the commit made instead covers them).
    auto* words = reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(d) + kLogBitsOffset);
    const uint64_t end = std::min(d->marked_end.load(std::memory_order_acquire), chunks);
    uint64_t total = 0;
    for (uint64_t w = 0; w * 64 < end; ++w) {
      if (words[w].load(std::memory_order_relaxed) == 0) continue;
      // Only chunks within the size read above: a chunk past it belongs to
      // a write that extended the file since, whose own sync records it.
      const uint64_t mask = end - w * 64 >= 64 ? ~uint64_t{0} : (uint64_t{1} << (end - w * 64)) - 1;
      const uint64_t bits = words[w].fetch_and(~mask, std::memory_order_acq_rel) & mask;
      ForEachBitRun(bits, [&](unsigned lo, unsigned count) {
        const uint64_t first = w * 64 + lo;
        if (!c.runs.empty() && c.runs.back().first_chunk + c.runs.back().count == first) {
          c.runs.back().count += count;
        } else {
          c.runs.push_back({first, count});
        }
        total += count * C;
      });
    }
    if (total > h->sh->max_record_data + C) return Unavailable("too much for one record");
    if (c.runs.empty() && c.size == d->log_size.load(std::memory_order_acquire)) {
      // Nothing new: only the records before (of other processes too)
      // must be durable.
      c.skip = true;
      return Status::Ok();
    }
    d->log_size.store(c.size, std::memory_order_release);
    for (const volume::SyncRun& r : c.runs) {
      const uint64_t off = r.first_chunk * C;
      const uint64_t len = std::min(uint64_t{r.count} * C, c.size - off);
      const size_t at = c.data.size();
      c.data.resize(at + len);
      for (size_t done = 0; done < len;) {
        long n = ::syscall(SYS_pread64, fd, c.data.data() + at + done, len - done, off + done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return IoError("read of a shielded file's memory failed");
        done += static_cast<size_t>(n);
      }
    }
    d->logged.store(1, std::memory_order_release);
    return Status::Ok();
  });
  if (!pos.ok()) {
    d->log_size.store(~uint64_t{0}, std::memory_order_release);  // whatever fill saw is not recorded
    if (pos.status().code() == StatusCode::kUnavailable) return kLogFallBack;
    Log("shield: sync of a file under " + (*g_mounts)[s->volume].path + ": " + pos.status().message());
    errno = EIO;
    return -1;
  }
  if (pos->index > 0 && h->sh->announced.load(std::memory_order_acquire) < pos->generation) {
    // The log's first record (or the first this process could announce):
    // the server commits the log within kFoldDelayMs.
    Request req{};
    req.op = Op::kLogged;
    req.volume = s->volume;
    pthread_mutex_lock(&g_conn_mu);
    if (Connected() && SendDatagram(g_conn, &req, sizeof(req), nullptr, 0, nullptr, 0)) {
      uint64_t cur = h->sh->announced.load(std::memory_order_acquire);
      while (cur < pos->generation &&
             !h->sh->announced.compare_exchange_weak(cur, pos->generation, std::memory_order_acq_rel)) {
      }
    }
    pthread_mutex_unlock(&g_conn_mu);
  }
  Status durable = volume::SyncLogMakeDurable(h->sh, h->fd, *pos);
  if (!durable.ok()) {
    Log("shield: sync of a file under " + (*g_mounts)[s->volume].path + ": " + durable.message());
    errno = EIO;
    return -1;
  }
  return 0;
}

int Sync(int fd) {
  Slot* s = SlotOf(fd);
  if (s == nullptr) return 0;
  if (s->type == kTypeFile) {
    int saved = errno;
    int r = LogSync(s, fd);
    if (r != kLogFallBack) return r;
    errno = saved;
  }
  Request req{};
  req.op = Op::kSync;
  req.volume = s->volume;
  req.file_id = s->type == kTypeFile ? s->file_id : 0;
  Reply r{};
  if (!Call(req, "", "", &r)) return -1;
  if (r.error != 0) {
    errno = r.error;
    return -1;
  }
  return 0;
}

int SyncAll() {
  if (!Active()) return 0;
  int result = 0;
  for (size_t v = 0; v < g_mounts->size(); ++v) {
    Request req{};
    req.op = Op::kSync;
    req.volume = static_cast<uint32_t>(v);
    Reply r{};
    if (!Call(req, "", "", &r) || r.error != 0) result = -1;
  }
  return result;
}

void Closing(int fd) {
  if (fd < 0 || fd >= kMaxFds || g_fds == nullptr) return;
  Slot* s = g_fds[fd].exchange(nullptr, std::memory_order_acq_rel);
  if (s != nullptr) Release(s);
}

void Duplicated(int from, int to) {
  Slot* s = SlotOf(from);
  if (s == nullptr) {
    Closing(to);  // a shielded descriptor replaced by an unshielded one
    return;
  }
  if (from == to) return;
  s->refs.fetch_add(1, std::memory_order_acq_rel);
  if (!InstallSlot(to, s)) Release(s);
}

int Fstat(int fd, struct stat* buf) {
  Slot* s = SlotOf(fd);
  const Mount& m = MountOf(s->volume);
  if (s->type == kTypeDirectory) {
    FillStat(m, s->st, buf);
    return 0;
  }
  if (RealFstat(fd, buf) != 0) return -1;
  buf->st_dev = m.dev;
  buf->st_ino = s->st.ino;
  buf->st_mode = S_IFREG | (buf->st_mode & 07777);
  buf->st_nlink = 1;
  buf->st_uid = m.uid;
  buf->st_gid = m.gid;
  return 0;
}

int Fstatx(int fd, struct statx* buf) {
  struct stat s;
  if (Fstat(fd, &s) != 0) return -1;
  ToStatx(s, buf);
  return 0;
}

namespace {

// Fills the directory listing of `s` (under s->mu).
bool List(Slot* s) {
  if (s->listed) return true;
  s->entries.clear();
  s->entries.push_back({s->st.ino, kTypeDirectory, "."});
  s->entries.push_back({s->st.ino, kTypeDirectory, ".."});
  Target t = TargetOf(*s);
  for (uint64_t index = 0;;) {
    Request req = MakeRequest(Op::kList, t);
    req.arg = index;
    std::string data;
    Reply r{};
    if (Simple(req, t, &r, &data) != 0) return false;
    size_t at = 0;
    for (uint32_t i = 0; i < r.count; ++i) {
      ListEntry le;
      if (at + sizeof(le) > data.size()) break;
      std::memcpy(&le, data.data() + at, sizeof(le));
      at += sizeof(le);
      if (at + le.name_len > data.size()) break;
      s->entries.push_back({le.ino, le.type, data.substr(at, le.name_len)});
      at += le.name_len;
    }
    index += r.count;
    if (r.more == 0 || r.count == 0) break;
  }
  s->listed = true;
  return true;
}

unsigned char DirentType(uint8_t t) { return t == kTypeDirectory ? DT_DIR : t == kTypeSymlink ? DT_LNK : DT_REG; }

}  // namespace

ssize_t Getdents(int fd, void* buf, size_t size) {
  Slot* s = SlotOf(fd);
  std::lock_guard<std::mutex> l(s->mu);
  if (!List(s)) return -1;
  size_t used = 0;
  auto* out = static_cast<char*>(buf);
  while (s->pos < s->entries.size()) {
    const Entry& e = s->entries[s->pos];
    size_t reclen = (offsetof(struct dirent64, d_name) + e.name.size() + 1 + 7) & ~size_t{7};
    if (used + reclen > size) break;
    auto* d = reinterpret_cast<struct dirent64*>(out + used);
    d->d_ino = e.ino;
    d->d_off = static_cast<off64_t>(s->pos + 1);
    d->d_reclen = static_cast<unsigned short>(reclen);
    d->d_type = DirentType(e.type);
    std::memcpy(d->d_name, e.name.c_str(), e.name.size() + 1);
    used += reclen;
    ++s->pos;
  }
  if (used == 0 && s->pos < s->entries.size()) {
    errno = EINVAL;
    return -1;
  }
  return static_cast<ssize_t>(used);
}

int Fchdir(int fd) {
  Slot* s = SlotOf(fd);
  Target t = TargetOf(*s);
  return Chdir(t);
}

int Fchmod(int fd, mode_t mode) {
  Slot* s = SlotOf(fd);
  Target t = TargetOf(*s);
  int r = Chmod(t, mode);
  if (r == 0 && s->type == kTypeFile) (void)::syscall(SYS_fchmod, fd, mode & 07777);
  return r;
}

int Futimens(int fd, const struct timespec times[2]) {
  Slot* s = SlotOf(fd);
  Target t = TargetOf(*s);
  return SetTimes(t, times);
}

// ---- directory streams ----

namespace {

constexpr uint32_t kDirMagic = 0x434c4453;

// Starts as glibc's DIR does with its descriptor, which is never -2: that
// tells the two apart.
struct ShieldDir {
  int32_t marker = -2;
  uint32_t magic = kDirMagic;
  int fd = -1;
  alignas(8) char ent[sizeof(struct dirent64) + 8];
};

}  // namespace

DIR* FdOpenDir(int fd) {
  Slot* s = SlotOf(fd);
  if (s == nullptr || s->type != kTypeDirectory) {
    errno = ENOTDIR;
    return nullptr;
  }
  auto* d = new ShieldDir;
  d->fd = fd;
  return reinterpret_cast<DIR*>(d);
}

DIR* OpenDir(const Target& t) {
  int fd = Open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  DIR* d = FdOpenDir(fd);
  if (d == nullptr) {
    Closing(fd);
    ::close(fd);
  }
  return d;
}

bool IsShieldDir(DIR* d) {
  if (!Active() || d == nullptr) return false;
  auto* p = reinterpret_cast<const ShieldDir*>(d);
  return p->marker == -2 && p->magic == kDirMagic;
}

struct dirent64* ReadDir(DIR* dir) {
  auto* d = reinterpret_cast<ShieldDir*>(dir);
  Slot* s = SlotOf(d->fd);
  if (s == nullptr) {
    errno = EBADF;
    return nullptr;
  }
  std::lock_guard<std::mutex> l(s->mu);
  int saved = errno;
  if (!List(s)) return nullptr;
  errno = saved;
  if (s->pos >= s->entries.size()) return nullptr;
  const Entry& e = s->entries[s->pos];
  auto* out = reinterpret_cast<struct dirent64*>(d->ent);
  out->d_ino = e.ino;
  out->d_off = static_cast<off64_t>(s->pos + 1);
  out->d_reclen = sizeof(struct dirent64);
  out->d_type = DirentType(e.type);
  size_t n = std::min(e.name.size(), sizeof(out->d_name) - 1);
  std::memcpy(out->d_name, e.name.data(), n);
  out->d_name[n] = '\0';
  ++s->pos;
  return out;
}

int CloseDir(DIR* dir) {
  auto* d = reinterpret_cast<ShieldDir*>(dir);
  int fd = d->fd;
  delete d;
  Closing(fd);
  return ::close(fd);
}

int DirFd(DIR* dir) { return reinterpret_cast<ShieldDir*>(dir)->fd; }

void RewindDir(DIR* dir) {
  Slot* s = SlotOf(reinterpret_cast<ShieldDir*>(dir)->fd);
  if (s == nullptr) return;
  std::lock_guard<std::mutex> l(s->mu);
  s->listed = false;
  s->pos = 0;
}

// ---- start ----

Result<Done> Start(const std::vector<VolumeMount>& mounts, Reporting reporting) {
  struct KeyFree {
    EVP_PKEY*& key;
    ~KeyFree() {
      EVP_PKEY_free(key);
      key = nullptr;
    }
  } free_key{reporting.key};
  if (mounts.empty()) return Done{};
  int control[2], conn[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) != 0 ||
      ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, conn) != 0) {
    return Fail(std::string("cannot create the file shield's sockets: ") + std::strerror(errno));
  }
  pid_t pid = ::fork();
  if (pid < 0) return Fail(std::string("cannot start the file shield's volume server: ") + std::strerror(errno));
  if (pid == 0) {
    // The volume server. It outlives the program's own processes to commit
    // what they wrote, so the signals that end a program politely do not
    // end it; it ends when the last of them has gone.
    ::close(control[0]);
    ::close(conn[0]);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) ::signal(sig, SIG_IGN);
    // Two descriptors per file the program has opened (its plaintext and
    // its dirty map) plus the volume's own: as many as the hard limit
    // allows, which the program's soft limit does not reflect.
    // Commits build and seal buffers of a few hundred KiB each time: keep
    // them in the heap, rather than mapping fresh (zeroed, faulted-in)
    // memory and giving it back for every commit.
    (void)::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)::mallopt(M_TRIM_THRESHOLD, 256 << 20);
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
      files.rlim_cur = files.rlim_max;
      (void)::setrlimit(RLIMIT_NOFILE, &files);
    }
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
    }
    std::vector<ServerVolume> config;
    for (const VolumeMount& m : mounts) {
      ServerVolume v;
      v.name = m.name;
      v.path = m.path;
      v.key = m.key;
      v.tag = m.tag;
      v.read_only = m.update_policy == "read-only";
      config.push_back(std::move(v));
    }
    Result<std::unique_ptr<Server>> server = Server::Open(std::move(config));
    Reply r{};
    if (!server.ok()) {
      r.error = EIO;
      (void)SendDatagram(conn[1], &r, sizeof(r), server.error().data(), std::min<size_t>(server.error().size(), 4000),
                         nullptr, 0);
      ::_exit(1);
    }
    (void)SendDatagram(conn[1], &r, sizeof(r), nullptr, 0, nullptr, 0);
    server.value()->SetReporting(std::move(reporting));
    reporting.key = nullptr;  // the reporter's now
    server.value()->Serve(control[1], conn[1]);
    ::_exit(0);
  }
  ::close(control[1]);
  ::close(conn[1]);
  std::string why(4096 + sizeof(Reply), '\0');
  int fds[2];
  int nfds = 0;
  ssize_t n = ReceiveDatagram(conn[0], why.data(), why.size(), fds, &nfds);
  for (int i = 0; i < nfds; ++i) ::close(fds[i]);
  if (n < static_cast<ssize_t>(sizeof(Reply))) {
    return Fail("the file shield's volume server ended before it opened the volumes");
  }
  Reply r;
  std::memcpy(&r, why.data(), sizeof(r));
  if (r.error != 0) return Fail(why.substr(sizeof(Reply), static_cast<size_t>(n) - sizeof(Reply)));
  return Install(mounts, control[0], conn[0]);
}

namespace {

// A device number of the volume's own, as a file system of its own has:
// the volume's inode numbers (small, from 1) then never pair with the
// host's device into the identity of some host file, which tools compare
// by (device, inode). Major 0 is where the kernel numbers the devices of
// file systems without a disk; the minor comes from the mount path, so it
// is the same at every start.
dev_t VolumeDevice(const std::string& path) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : path) {
    h ^= c;
    h *= 16777619u;
  }
  return makedev(0, 0x80000u | (h & 0x7ffffu));
}

Result<Done> InstallAs(const std::vector<VolumeMount>& mounts, int control, int conn, bool main_process) {
  auto* list = new std::vector<Mount>;
  for (const VolumeMount& vm : mounts) {
    Mount m;
    m.path = vm.path;
    m.read_only = vm.update_policy == "read-only";
    struct stat st {};
    m.dev = VolumeDevice(vm.path);
    if (::stat(vm.path.c_str(), &st) == 0) {
      // The root is the mount directory: its inode keeps two volumes'
      // roots apart (PostgreSQL keys its shared memory by it).
      m.root_ino = st.st_ino;
      m.uid = st.st_uid;
      m.gid = st.st_gid;
    }
    list->push_back(std::move(m));
  }
  g_mounts = list;
  g_fds = static_cast<std::atomic<Slot*>*>(std::calloc(kMaxFds, sizeof(std::atomic<Slot*>)));
  if (g_fds == nullptr) return Fail("out of memory");
  g_control = MoveHigh(control);
  g_conn = MoveHigh(conn);
  g_conn_pid = ::getpid();
  ::pthread_atfork(nullptr, nullptr, ChildAfterFork);
  g_root_pid = main_process ? ::getpid() : 0;
  std::atexit(CommitAtExit);
  g_active.store(true, std::memory_order_release);
  return Done{};
}

// A shielded file this program inherited across the exec: a memfd the
// server knows. Its slot is made again, as Open makes it.
void Adopt(int fd, uint64_t ino) {
  Request req{};
  req.op = Op::kAdopt;
  req.arg = ino;
  Reply r{};
  int fds[2] = {-1, -1};
  int nfds = 0;
  if (!Call(req, "", "", &r, nullptr, fds, &nfds)) return;
  if (r.error != 0 || nfds != 1) {
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    return;
  }
  uint64_t key = 0;
  DirtyHead* head = MapDirty(fds[0], &key);
  if (head == nullptr) return;
  auto* s = new Slot;
  s->volume = static_cast<uint32_t>(r.file_id >> 48);
  s->file_id = r.file_id;
  s->st = r.st;
  s->dirty = head;
  s->dirty_ino = key;
  s->shift = ShiftOf(r.chunk_size);
  int fl = static_cast<int>(::syscall(SYS_fcntl, fd, F_GETFL));
  s->sync_writes = fl >= 0 && (fl & (O_SYNC | O_DSYNC)) != 0;
  if (!InstallSlot(fd, s)) {
    UnmapDirty(key);
    delete s;
  }
}

void AdoptInherited() {
  std::vector<std::pair<int, uint64_t>> found;
  int dir = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return;
  alignas(8) char buf[4096];
  for (;;) {
    long n = ::syscall(SYS_getdents64, dir, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      auto* e = reinterpret_cast<struct dirent64*>(buf + off);
      off += e->d_reclen;
      char* end = nullptr;
      long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || fd == dir || fd >= kMaxFds || IsInternal(static_cast<int>(fd))) continue;
      struct stat st {};
      // A memfd: a regular file with no name anywhere.
      if (RealFstat(static_cast<int>(fd), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0) continue;
      found.emplace_back(static_cast<int>(fd), st.st_ino);
    }
  }
  ::syscall(SYS_close, dir);
  for (auto [fd, ino] : found) Adopt(fd, ino);
}

}  // namespace

Result<Done> Install(const std::vector<VolumeMount>& mounts, int control, int conn) {
  return InstallAs(mounts, control, conn, true);
}

// ---- exec ----

void SetExecVariables(std::vector<std::string> variables) {
  delete g_exec_vars;
  g_exec_vars = new std::vector<std::string>(std::move(variables));
}

int PrepareExec(char* const argv[], char* const envp[], bool in_place, ExecPlan* plan) {
  if (!Active() || g_exec_vars == nullptr) return 0;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return -1;
  char hello = 'c';
  bool sent = SendDatagram(g_control, &hello, 1, nullptr, 0, &pair[1], 1);
  int e = errno;
  ::close(pair[1]);
  if (!sent) {
    ::close(pair[0]);
    errno = e == 0 ? EIO : e;
    return -1;
  }
  // The one shield descriptor the new program inherits.
  int conn = ::fcntl(pair[0], F_DUPFD, kHighFd);
  ::close(pair[0]);
  if (conn < 0) return -1;
  plan->conn = conn;
  plan->variables = *g_exec_vars;
  plan->variables.push_back(std::string(kShieldVariable) + "=" + std::to_string(conn));
  plan->env = ExecEnvironment(const_cast<const char* const*>(envp), plan->variables);
  JoinDigest digest = ExecDigest(const_cast<const char* const*>(argv), plan->env.data());
  pthread_mutex_lock(&g_cwd_mu);
  std::string cwd = g_cwd != nullptr ? *g_cwd : std::string();
  pthread_mutex_unlock(&g_cwd_mu);
  Request req{};
  req.op = Op::kExec;
  req.flags = in_place && ::getpid() == g_root_pid ? kExecMainProcess : 0;
  req.path_len = static_cast<uint16_t>(digest.size());
  req.path2_len = static_cast<uint16_t>(cwd.size());
  std::vector<char> buf(kMaxMessage);
  Reply r{};
  if (!Exchange(conn, buf.data(), req, reinterpret_cast<const char*>(digest.data()), cwd.data(), &r, nullptr, nullptr,
                nullptr, true) ||
      r.error != 0) {
    EndExec(plan);
    errno = EIO;
    return -1;
  }
  plan->envp = const_cast<char**>(plan->env.data());
  return 0;
}

void EndExec(ExecPlan* plan) {
  int saved = errno;
  if (plan->conn >= 0) ::close(plan->conn);
  plan->conn = -1;
  plan->envp = nullptr;
  errno = saved;
}

Result<Done> Join(const std::vector<VolumeMount>& mounts, int conn, const JoinDigest& digest) {
  std::vector<char> buf(kMaxMessage);
  std::string client_nonce(kJoinNonceBytes, '\0');
  if (!crypto::RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(client_nonce.data()), client_nonce.size()))
           .ok()) {
    return Fail("cannot draw a random nonce");
  }
  const std::string broken = "the file shield of the program that exec'd this one cannot be reached";
  Request req{};
  req.op = Op::kJoin;
  req.path_len = static_cast<uint16_t>(client_nonce.size());
  Reply r{};
  std::string data;
  if (!Exchange(conn, buf.data(), req, client_nonce.data(), "", &r, &data, nullptr, nullptr, true)) return Fail(broken);
  constexpr size_t kFixed = kJoinNonceBytes + 2 * sizeof(JoinDigest);
  if (r.error != 0 || data.size() < kFixed) {
    return Fail("the program that exec'd this one left no ticket for it in the file shield");
  }
  std::string server_nonce = data.substr(0, kJoinNonceBytes);
  JoinDigest proof, ticket;
  std::memcpy(proof.data(), data.data() + kJoinNonceBytes, proof.size());
  std::memcpy(ticket.data(), data.data() + kJoinNonceBytes + proof.size(), ticket.size());
  std::string cwd = data.substr(kFixed);
  const bool main_process = r.more != 0;
  std::vector<JoinKeyPart> parts;
  for (const VolumeMount& m : mounts) parts.push_back(JoinKeyPart{m.name, m.path, m.key.data(), m.key.size()});
  cloister::SecretBytes key = JoinKey(parts);
  JoinDigest want = ServerProof(key, client_nonce, server_nonce, ticket, main_process, cwd);
  if (key.empty() || !ConstantTimeEquals(proof, want)) {
    return Fail("the file shield handed down by the program that exec'd this one did not prove that it holds this "
                "service's volume keys");
  }
  if (!ConstantTimeEquals(ticket, digest)) {
    return Fail("the arguments or the environment this program received are not those the program that exec'd it "
                "asked for");
  }
  JoinDigest mine = ClientProof(key, client_nonce, server_nonce);
  Request proof_req{};
  proof_req.op = Op::kJoinProof;
  proof_req.path_len = static_cast<uint16_t>(mine.size());
  int fds[2] = {-1, -1};
  int nfds = 0;
  if (!Exchange(conn, buf.data(), proof_req, reinterpret_cast<const char*>(mine.data()), "", &r, nullptr, fds, &nfds,
                true)) {
    return Fail(broken);
  }
  if (r.error != 0 || nfds != 1) {
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    return Fail("the file shield refused this program's proof of the volume keys");
  }
  Result<Done> installed = InstallAs(mounts, fds[0], conn, main_process);
  if (!installed.ok()) return installed;
  if (!cwd.empty()) {
    pthread_mutex_lock(&g_cwd_mu);
    g_cwd = new std::string(std::move(cwd));
    pthread_mutex_unlock(&g_cwd_mu);
  }
  AdoptInherited();
  return Done{};
}

bool IsInternal(int fd) { return Active() && (fd == g_control || fd == g_conn); }

}  // namespace cloister::runtime::shield
