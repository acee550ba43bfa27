#include "runtime/shield_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <thread>

#include "base/bytes.h"
#include "base/secret.h"
#include "crypto/crypto.h"
#include "os/env.h"
#include "runtime/log.h"
#include "runtime/shield_exec.h"
#include "runtime/shield_wire.h"
#include "volume/format.h"
#include "volume/sync_log.h"

namespace cloister::runtime::shield {
namespace {

int ErrnoOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kNotFound:
      return ENOENT;
    case StatusCode::kAlreadyExists:
      return EEXIST;
    case StatusCode::kNotADirectory:
      return ENOTDIR;
    case StatusCode::kIsADirectory:
      return EISDIR;
    case StatusCode::kDirectoryNotEmpty:
      return ENOTEMPTY;
    case StatusCode::kPermissionDenied:
      return EACCES;
    case StatusCode::kInvalidArgument:
      return EINVAL;
    case StatusCode::kResourceExhausted:
      return ENOSPC;
    case StatusCode::kUnimplemented:
      return ENOSYS;
    default:
      return EIO;
  }
}

uint8_t TypeOf(volume::FileType t) {
  switch (t) {
    case volume::FileType::kFile:
      return kTypeFile;
    case volume::FileType::kDirectory:
      return kTypeDirectory;
    case volume::FileType::kSymlink:
      return kTypeSymlink;
  }
  return kTypeFile;
}

int64_t MtimeOf(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// A file loaded into memory: its plaintext in `memfd`, the clients' marks
// in `dirty`, and what the volume holds of it.
struct Loaded {
  size_t volume = 0;
  uint64_t ino = 0;
  std::unique_ptr<volume::File> file;
  int memfd = -1;
  uint64_t memfd_ino = 0;  // identifies the memfd a program inherited across an exec
  int dirty_fd = -1;
  DirtyHead* dirty = nullptr;
  uint64_t stored_size = 0;  // the size the volume holds

  ~Loaded() {
    if (dirty != nullptr) ::munmap(dirty, kDirtyMapBytes);
    if (memfd >= 0) ::close(memfd);
    if (dirty_fd >= 0) ::close(dirty_fd);
  }
};

struct Mounted {
  ServerVolume config;
  std::unique_ptr<volume::Volume> vol;
  unsigned shift = 12;
  bool changed = false;  // flushed or changed since the last commit
  // The sync log (docs/runtime.md, "Syncs without a round trip"), for a
  // writable volume: the shared state in a memfd, and the log file.
  volume::SyncLogShared* log = nullptr;
  int log_memfd = -1;
  int log_fd = -1;
  bool fold_armed = false;
  std::chrono::steady_clock::time_point fold_at;
};

// A sync log of 8 MiB, records of up to 256 KiB of chunks: at a few
// hundred syncs of a database's log page per second, the log fills in
// seconds, and it is emptied by a commit within kFoldDelayMs.
constexpr uint64_t kSyncLogBytes = uint64_t{8} << 20;
constexpr uint64_t kSyncRecordMaxData = uint64_t{256} << 10;

class ServerImpl : public Server {
 public:
  Result<Done> OpenAll(std::vector<ServerVolume> volumes);
  void SetCommitListener(CommitListener listener) override { listener_ = std::move(listener); }
  void SetReporting(Reporting reporting) override;
  volume::VolumeInfo Info(size_t v) override { return mounts_[v].vol->Info(); }
  void Serve(int control, int first) override;

 private:
  struct Waiter {
    int conn;
    size_t volume;
    bool reported;  // answer once the CAS recorded the commit
  };
  // A connection made for a program about to be exec'd (shield_exec.h):
  // it serves nothing but the join until the new program has proven that
  // it holds the volume keys.
  struct Ticket {
    JoinDigest digest{};
    std::string cwd;
    bool main_process = false;
    std::string client_nonce, server_nonce;  // set by kJoin
    bool failed = false;
  };

  void Handle(int conn, const Request& req, const char* path, const char* path2);
  void Answer(int conn, Reply& reply, const void* data = nullptr, size_t len = 0, const int* fds = nullptr,
              int nfds = 0);
  void HandleOpen(int conn, const Request& req, const std::string& path);
  void HandleList(int conn, const Request& req, const std::string& path);
  void HandleExec(int conn, const Request& req, const std::string& path, const std::string& path2);
  void HandleAdopt(int conn, const Request& req);
  Result<Loaded*> Load(size_t v, uint64_t ino, const std::string& path, bool write);
  Status Flush(Loaded& f);
  Status FlushVolume(size_t v);
  Status CommitVolume(size_t v);
  Status CommitNow(size_t v);
  void SetUpLog(Mounted& m);
  void FillStat(size_t v, const volume::Stat& st, StatInfo* out);
  void Forget(size_t v, uint64_t ino);

  std::vector<Mounted> mounts_;
  std::map<std::pair<size_t, uint64_t>, std::unique_ptr<Loaded>> loaded_;
  std::vector<Waiter> waiting_;
  CommitListener listener_;
  std::unique_ptr<CommitReporter> reporter_;
  std::vector<uint8_t> chunk_buf_, check_buf_;
  std::vector<std::pair<uint64_t, uint64_t>> marked_;  // Flush's dirty words, kept between flushes
  cloister::SecretBytes join_key_;
  std::map<int, Ticket> tickets_;
  // Sockets through which clients bring the server end of a new
  // connection: the program's, and one for each program joined after an
  // exec.
  std::vector<int> controls_;
};

Result<Done> ServerImpl::OpenAll(std::vector<ServerVolume> volumes) {
  os::Env& env = os::Env::Posix();
  for (ServerVolume& cfg : volumes) {
    cloister::SecretBytes key(cfg.key.data(), cfg.key.size());
    Mounted m;
    volume::OpenOptions o;
    o.read_only = cfg.read_only;
    // The server stays open and commits at every fsync of the program: what
    // a checkpoint frees (a rewritten file's old object) is removed aside.
    o.background_removals = true;
    if (!cfg.tag.empty()) {
      if (cfg.tag.size() != 32) return Fail("volume " + cfg.name + ": the CAS sent a malformed tag");
      volume::Tag t;
      std::copy(cfg.tag.begin(), cfg.tag.end(), t.begin());
      o.expected_tag = t;
      // The CAS may not have heard of the last commits yet (they are
      // reported after they are made): those chain back to its tag.
      o.accept_newer = !cfg.read_only;
    }
    bool fresh = !env.FileExists(cfg.path + "/cloister-volume");
    if (fresh && !cfg.tag.empty()) {
      return Fail("volume " + cfg.name + " at " + cfg.path +
                  " is missing, but the CAS holds a tag for it: refusing to start with an empty volume");
    }
    StatusOr<std::unique_ptr<volume::Volume>> opened = Status();
    if (fresh) {
      if (cfg.read_only) return Fail("volume " + cfg.name + " at " + cfg.path + " does not exist (read-only)");
      opened = volume::Volume::Create(env, cfg.path, key, volume::CreateOptions{}, o);
    } else {
      // A writer that has just exited may still be committing: its lock
      // goes when it is done.
      for (int attempt = 0;; ++attempt) {
        opened = volume::Volume::Open(env, cfg.path, key, o);
        if (opened.ok() || opened.status().code() != StatusCode::kFailedPrecondition || attempt == 50) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    if (!opened.ok()) {
      return Fail("volume " + cfg.name + " at " + cfg.path + ": " + opened.status().message());
    }
    m.vol = std::move(opened).value();
    uint32_t c = m.vol->Info().chunk_size;
    m.shift = 0;
    while ((1u << m.shift) < c) ++m.shift;
    m.config = std::move(cfg);
    DebugLog("shield: volume %s at %s opened at commit %llu", m.config.name.c_str(), m.config.path.c_str(),
             static_cast<unsigned long long>(m.vol->Info().seq));
    mounts_.push_back(std::move(m));
    SetUpLog(mounts_.back());
  }
  std::vector<JoinKeyPart> parts;
  for (const Mounted& m : mounts_) {
    parts.push_back(JoinKeyPart{m.config.name, m.config.path, m.config.key.data(), m.config.key.size()});
  }
  join_key_ = JoinKey(parts);
  if (join_key_.empty()) return Fail("cannot derive the file shield's join key");
  return Done{};
}

void ServerImpl::FillStat(size_t v, const volume::Stat& st, StatInfo* out) {
  out->ino = st.ino;
  out->type = TypeOf(st.type);
  out->mode = st.mode;
  out->size = st.size;
  out->mtime_ns = st.mtime_ns;
  auto it = loaded_.find({v, st.ino});
  if (it != loaded_.end()) {
    struct stat m {};
    if (::fstat(it->second->memfd, &m) == 0) {
      out->size = static_cast<uint64_t>(m.st_size);
      out->mtime_ns = MtimeOf(m);
    }
  }
}

void ServerImpl::Forget(size_t v, uint64_t ino) {
  auto it = loaded_.find({v, ino});
  if (it == loaded_.end()) return;
  // No longer a file of the volume: its syncs stop going to the log before
  // a commit makes the removal durable (and a record naming it would name
  // no file of the next log's base).
  if (it->second->dirty != nullptr) it->second->dirty->in_base.store(0, std::memory_order_release);
  loaded_.erase(it);
}

void ServerImpl::SetUpLog(Mounted& m) {
  if (m.config.read_only) return;
  const size_t bytes = (sizeof(volume::SyncLogShared) + 4095) & ~size_t{4095};
  int fd = ::memfd_create("cloister-sync-log", MFD_CLOEXEC);
  void* map = MAP_FAILED;
  if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
    map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  std::string why;
  if (map == MAP_FAILED) {
    why = std::strerror(errno);
  } else {
    ::madvise(map, bytes, MADV_DONTDUMP);  // it holds the log's key
    auto* sh = new (map) volume::SyncLogShared();
    Status s = volume::SyncLogInitShared(sh, m.vol->Info().chunk_size, kSyncLogBytes, kSyncRecordMaxData);
    if (s.ok()) {
      volume::SyncLogLock lock(sh);
      s = m.vol->StartSyncLog(sh);
    }
    int log_fd = -1;
    if (s.ok()) {
      log_fd = ::open((m.config.path + "/" + volume::format::kSyncLogFile).c_str(), O_RDWR | O_CLOEXEC);
      if (log_fd < 0) s = IoError(std::string("open: ") + std::strerror(errno));
    }
    if (s.ok()) {
      m.log = sh;
      m.log_memfd = fd;
      m.log_fd = log_fd;
      return;
    }
    why = s.message();
    ::munmap(map, bytes);
  }
  if (fd >= 0) ::close(fd);
  Log("shield: volume " + m.config.name + " has no sync log (" + why + "): every fsync is a commit");
}

Result<Loaded*> ServerImpl::Load(size_t v, uint64_t ino, const std::string& path, bool write) {
  auto it = loaded_.find({v, ino});
  if (it != loaded_.end()) return it->second.get();
  Mounted& m = mounts_[v];
  auto l = std::make_unique<Loaded>();
  l->volume = v;
  l->ino = ino;
  volume::OpenFlags flags;
  flags.write = !m.config.read_only;
  StatusOr<std::unique_ptr<volume::File>> file = m.vol->OpenFile(path, flags);
  if (!file.ok()) return Fail(std::to_string(ErrnoOf(file.status())));
  l->file = std::move(file).value();
  StatusOr<volume::Stat> st = l->file->GetStat();
  if (!st.ok()) return Fail(std::to_string(ErrnoOf(st.status())));
  l->stored_size = st->size;
  l->memfd = ::memfd_create("cloister-shield", MFD_CLOEXEC);
  l->dirty_fd = ::memfd_create("cloister-shield-dirty", MFD_CLOEXEC);
  if (l->memfd < 0 || l->dirty_fd < 0 || ::ftruncate(l->dirty_fd, kDirtyMapBytes) != 0 ||
      ::ftruncate(l->memfd, static_cast<off_t>(st->size)) != 0) {
    return Fail(std::to_string(errno));
  }
  void* map = ::mmap(nullptr, kDirtyMapBytes, PROT_READ | PROT_WRITE, MAP_SHARED, l->dirty_fd, 0);
  if (map == MAP_FAILED) return Fail(std::to_string(errno));
  l->dirty = static_cast<DirtyHead*>(map);
  struct stat mst {};
  if (::fstat(l->memfd, &mst) == 0) l->memfd_ino = mst.st_ino;
  l->dirty->magic = kDirtyMagic;
  l->dirty->low_size.store(~uint64_t{0});
  // Authenticated, decrypted chunk by chunk into memory; holes stay holes.
  std::vector<uint8_t> buf(size_t{1} << 20);
  for (uint64_t off = 0; off < st->size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), st->size - off));
    StatusOr<size_t> got = l->file->ReadAt(off, std::span<uint8_t>(buf.data(), want));
    if (!got.ok()) {
      Log("shield: " + m.config.name + path + ": " + got.status().message());
      return Fail(std::to_string(EIO));
    }
    if (*got == 0) break;
    bool zero = std::all_of(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*got), [](uint8_t b) { return b == 0; });
    if (!zero) {
      size_t done = 0;
      while (done < *got) {
        ssize_t n = ::pwrite(l->memfd, buf.data() + done, *got - done, static_cast<off_t>(off + done));
        if (n <= 0) return Fail(std::to_string(n < 0 ? errno : EIO));
        done += static_cast<size_t>(n);
      }
    }
    off += *got;
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  (void)write;
  Loaded* raw = l.get();
  loaded_[{v, ino}] = std::move(l);
  return raw;
}

// Writes what the clients changed in `f` into the volume (not committed).
Status ServerImpl::Flush(Loaded& f) {
  Mounted& m = mounts_[f.volume];
  if (m.config.read_only) return Status();
  const uint64_t C = uint64_t{1} << m.shift;
  // Before the marks are taken: chunks marked from here on count towards
  // the next write-behind.
  f.dirty->unflushed.store(0, std::memory_order_relaxed);
  f.dirty->behind_asked.store(0, std::memory_order_release);
  uint64_t low = f.dirty->low_size.exchange(~uint64_t{0}, std::memory_order_acq_rel);
  bool full = f.dirty->full_scan.exchange(0, std::memory_order_acq_rel) != 0 ||
              f.dirty->shared_mappings.load(std::memory_order_acquire) != 0;
  // The marks first, the size after: a client marks a chunk only once its
  // write is done, so a chunk taken here lies within the size read below
  // (read before, it could miss a write that extended the file meanwhile,
  // and the chunk would be taken but not written).
  std::vector<std::pair<uint64_t, uint64_t>>& marked = marked_;  // word index, bits
  marked.clear();
  auto* words = reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(f.dirty) + kDirtyBitsOffset);
  uint64_t end = f.dirty->marked_end.load(std::memory_order_acquire);
  for (uint64_t w = 0; w * 64 < end; ++w) {
    if (words[w].load(std::memory_order_relaxed) == 0) continue;
    uint64_t bits = words[w].exchange(0, std::memory_order_acq_rel);
    if (bits != 0 && !full) marked.emplace_back(w, bits);  // with `full`, the comparison below covers them
  }
  // The size by lseek, not fstat: on Linux 6.13 and later a stat marks the
  // memfd's times as queried, so the program's next write takes a
  // fine-grained timestamp and moves the clock that every file's
  // modification time reads forward. The journal's next write then changes
  // its mtime, and on ext4 without a journal that costs every commit's
  // fdatasync a second synchronous write (of the journal's inode).
  const off_t end_off = ::lseek(f.memfd, 0, SEEK_END);
  if (end_off < 0) return IoError("the size of a shielded file cannot be read");
  const uint64_t size = static_cast<uint64_t>(end_off);
  bool touched = false;
  if (low < f.stored_size) {
    RETURN_IF_ERROR(f.file->Truncate(low));
    f.stored_size = low;
    touched = true;
  }
  if (size != f.stored_size) {
    RETURN_IF_ERROR(f.file->Truncate(size));
    f.stored_size = size;
    touched = true;
  }
  chunk_buf_.resize(static_cast<size_t>(C) * 64);
  size_t buf_used = 0;  // what to wipe afterwards
  auto copy = [&](uint64_t first, uint64_t count) -> Status {
    uint64_t off = first * C;
    if (off >= size) return Status();
    uint64_t len = std::min(count * C, size - off);
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(f.memfd, chunk_buf_.data() + done, len - done, static_cast<off_t>(off + done));
      if (n < 0) return IoError("read of a shielded file's memory failed");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    touched = true;
    buf_used = std::max(buf_used, done);
    return f.file->WriteAt(off, std::span<const uint8_t>(chunk_buf_.data(), done));
  };
  for (auto [w, bits] : marked) {
    // Runs of consecutive chunks go in one write.
    Status copied;
    ForEachBitRun(bits, [&](unsigned first, unsigned count) {
      if (copied.ok()) copied = copy(w * 64 + first, count);
    });
    RETURN_IF_ERROR(copied);
  }
  if (full) {
    DebugLog("shield: comparing all %llu bytes of file %llu (unmarked writers)", static_cast<unsigned long long>(size),
             static_cast<unsigned long long>(f.ino));
    // Writes the clients could not mark: compare every chunk with what the
    // volume holds and write the ones that differ.
    check_buf_.resize(static_cast<size_t>(C));
    std::vector<uint8_t> mem(static_cast<size_t>(C));
    for (uint64_t off = 0; off < size; off += C) {
      size_t len = static_cast<size_t>(std::min(C, size - off));
      ssize_t n = ::pread(f.memfd, mem.data(), len, static_cast<off_t>(off));
      if (n != static_cast<ssize_t>(len)) return IoError("read of a shielded file's memory failed");
      ASSIGN_OR_RETURN(size_t got, f.file->ReadAt(off, std::span<uint8_t>(check_buf_.data(), len)));
      if (got != len || std::memcmp(mem.data(), check_buf_.data(), len) != 0) {
        RETURN_IF_ERROR(f.file->WriteAt(off, std::span<const uint8_t>(mem.data(), len)));
        touched = true;
      }
    }
    OPENSSL_cleanse(mem.data(), mem.size());
  }
  OPENSSL_cleanse(chunk_buf_.data(), buf_used);
  if (touched) m.changed = true;
  return Status();
}

Status ServerImpl::FlushVolume(size_t v) {
  Status first;
  for (auto& [key, f] : loaded_) {
    if (key.first != v) continue;
    Status s = Flush(*f);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

// Every commit ends the volume's sync log and starts the next on it: with
// the log's lock held, the files that have records in it are written into
// the volume, so that the commit holds all the records carry, and the next
// log starts on the commit before any other record goes in.
Status ServerImpl::CommitVolume(size_t v) {
  Mounted& m = mounts_[v];
  if (m.config.read_only) return Status();
  if (m.log == nullptr) return CommitNow(v);
  m.fold_armed = false;
  volume::SyncLogLock lock(m.log);
  if (!lock.locked()) return InternalError("the sync log's lock cannot be taken");
  Status s;
  for (auto& [key, f] : loaded_) {
    if (key.first != v || f->dirty->logged.exchange(0, std::memory_order_acq_rel) == 0) continue;
    Status flushed = Flush(*f);
    if (!flushed.ok() && s.ok()) s = flushed;
  }
  const bool commit = m.vol->HasUncommittedChanges();
  if (s.ok() && commit) s = CommitNow(v);
  if (!s.ok()) {
    m.log->state = volume::kSyncLogBroken;
    return s;
  }
  // The volume's state is the commit now: every file loaded is in it.
  for (auto& [key, f] : loaded_) {
    if (key.first != v) continue;
    f->dirty->log_size.store(f->stored_size, std::memory_order_release);
    f->dirty->in_base.store(1, std::memory_order_release);
  }
  if (!commit && m.log->state == volume::kSyncLogOpen && m.log->next_index == 0) return Status();
  Status started = m.vol->StartSyncLog(m.log);
  if (!started.ok()) {
    m.log->state = volume::kSyncLogBroken;
    Log("shield: volume " + m.config.name + ": the next sync log cannot start (" + started.message() +
        "): fsyncs are commits from now on");
  }
  return Status();
}

Status ServerImpl::CommitNow(size_t v) {
  Mounted& m = mounts_[v];
  if (!m.vol->HasUncommittedChanges()) return Status();
  StatusOr<volume::Tag> tag = m.vol->Commit();
  if (!tag.ok()) {
    Log("shield: commit of volume " + m.config.name + " failed: " + tag.status().message());
    return tag.status();
  }
  m.changed = false;
  uint64_t seq = m.vol->Info().seq;
  DebugLog("shield: volume %s committed, commit %llu", m.config.name.c_str(), static_cast<unsigned long long>(seq));
  if (listener_) listener_(v, seq, *tag);
  if (reporter_) reporter_->Post(v, seq, *tag);
  return Status();
}

void ServerImpl::SetReporting(Reporting reporting) {
  std::vector<std::string> names;
  std::vector<bool> writable;
  for (const Mounted& m : mounts_) {
    names.push_back(m.config.name);
    writable.push_back(!m.config.read_only);
  }
  reporter_ = std::make_unique<CommitReporter>(std::move(reporting), std::move(names), std::move(writable));
  for (size_t v = 0; v < mounts_.size(); ++v) {
    volume::VolumeInfo info = mounts_[v].vol->Info();
    const std::vector<uint8_t>& known = mounts_[v].config.tag;
    if (known.size() != info.tag.size() || !std::equal(known.begin(), known.end(), info.tag.begin())) {
      reporter_->Post(v, info.seq, info.tag);
    }
  }
}

void ServerImpl::Answer(int conn, Reply& reply, const void* data, size_t len, const int* fds, int nfds) {
  reply.data_len = static_cast<uint32_t>(len);
  if (reply.error != 0) DebugLog("shield: %s", std::strerror(reply.error));
  // A client that went away misses its answer; nothing else to do.
  (void)SendDatagram(conn, &reply, sizeof(reply), data, len, fds, nfds);
}

void ServerImpl::HandleOpen(int conn, const Request& req, const std::string& path) {
  Mounted& m = mounts_[req.volume];
  Reply r{};
  r.chunk_size = 1u << m.shift;
  const int acc = req.flags & O_ACCMODE;
  const bool write = acc != O_RDONLY || (req.flags & O_TRUNC) != 0;
  StatusOr<volume::Stat> st = m.vol->GetStat(path);
  if (st.ok()) {
    if ((req.flags & O_CREAT) != 0 && (req.flags & O_EXCL) != 0) {
      r.error = EEXIST;
    } else if (st->type == volume::FileType::kDirectory) {
      if (write) r.error = EISDIR;
    } else if ((req.flags & O_DIRECTORY) != 0) {
      r.error = ENOTDIR;
    } else if (st->type == volume::FileType::kSymlink) {
      r.error = (req.flags & O_NOFOLLOW) != 0 ? ELOOP : EOPNOTSUPP;
    }
    if (r.error == 0 && write && m.config.read_only) r.error = EROFS;
    if (r.error != 0) return Answer(conn, r);
    if (st->type == volume::FileType::kDirectory) {
      FillStat(req.volume, *st, &r.st);
      return Answer(conn, r);
    }
  } else if (st.status().code() != StatusCode::kNotFound || (req.flags & O_CREAT) == 0) {
    r.error = ErrnoOf(st.status());
    return Answer(conn, r);
  } else {
    if (m.config.read_only) {
      r.error = EROFS;
      return Answer(conn, r);
    }
    volume::OpenFlags create;
    create.create = true;
    create.exclusive = true;
    create.mode = req.mode & 07777;
    StatusOr<std::unique_ptr<volume::File>> made = m.vol->OpenFile(path, create);
    if (!made.ok()) {
      r.error = ErrnoOf(made.status());
      return Answer(conn, r);
    }
    m.changed = true;
    st = (*made)->GetStat();
    if (!st.ok()) {
      r.error = EIO;
      return Answer(conn, r);
    }
  }
  Result<Loaded*> l = Load(req.volume, st->ino, path, write);
  if (!l.ok()) {
    r.error = std::atoi(l.error().c_str());
    if (r.error == 0) r.error = EIO;
    return Answer(conn, r);
  }
  Loaded& f = *l.value();
  if ((req.flags & O_TRUNC) != 0 && acc != O_RDONLY) {
    if (::ftruncate(f.memfd, 0) != 0) {
      r.error = errno;
      return Answer(conn, r);
    }
    MarkShrunk(f.dirty, 0);
  }
  FillStat(req.volume, *st, &r.st);
  r.file_id = (static_cast<uint64_t>(req.volume) << 48) | st->ino;
  // An open file description of the client's own (offset, O_APPEND, access
  // mode), as open(2) would make.
  char proc[40];
  std::snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f.memfd);
  int desc = ::open(proc, (req.flags & (O_ACCMODE | O_APPEND | O_NONBLOCK)) | O_CLOEXEC);
  if (desc < 0) {
    r.error = errno;
    return Answer(conn, r);
  }
  int fds[2] = {desc, f.dirty_fd};
  r.count = 2;
  Answer(conn, r, nullptr, 0, fds, 2);
  ::close(desc);
}

void ServerImpl::HandleList(int conn, const Request& req, const std::string& path) {
  Mounted& m = mounts_[req.volume];
  Reply r{};
  StatusOr<std::vector<volume::DirEntry>> list = m.vol->List(path);
  if (!list.ok()) {
    r.error = ErrnoOf(list.status());
    return Answer(conn, r);
  }
  std::string out;
  size_t i = static_cast<size_t>(req.arg);
  for (; i < list->size(); ++i) {
    const volume::DirEntry& e = (*list)[i];
    if (out.size() + sizeof(ListEntry) + e.name.size() + sizeof(Reply) > kMaxMessage) break;
    ListEntry le{e.ino, TypeOf(e.type), static_cast<uint8_t>(e.name.size())};
    out.append(reinterpret_cast<const char*>(&le), sizeof(le));
    out.append(e.name);
    ++r.count;
  }
  r.more = i < list->size() ? 1 : 0;
  Answer(conn, r, out.data(), out.size());
}

void ServerImpl::HandleExec(int conn, const Request& req, const std::string& path, const std::string& path2) {
  Reply r{};
  auto it = tickets_.find(conn);
  switch (req.op) {
    case Op::kExec: {
      if (it != tickets_.end() || path.size() != sizeof(JoinDigest)) {
        r.error = EINVAL;
        return Answer(conn, r);
      }
      Ticket t;
      std::memcpy(t.digest.data(), path.data(), t.digest.size());
      t.cwd = path2;
      t.main_process = (req.flags & kExecMainProcess) != 0;
      tickets_[conn] = std::move(t);
      DebugLog("shield: exec ticket on connection %d", conn);
      return Answer(conn, r);
    }
    case Op::kJoin: {
      if (it == tickets_.end() || it->second.failed || !it->second.client_nonce.empty() ||
          path.size() != kJoinNonceBytes) {
        r.error = EACCES;
        return Answer(conn, r);
      }
      Ticket& t = it->second;
      t.client_nonce = path;
      t.server_nonce.assign(kJoinNonceBytes, '\0');
      if (!crypto::RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(t.server_nonce.data()),
                                                  t.server_nonce.size()))
               .ok()) {
        t.failed = true;
        r.error = EIO;
        return Answer(conn, r);
      }
      JoinDigest proof = ServerProof(join_key_, t.client_nonce, t.server_nonce, t.digest, t.main_process, t.cwd);
      std::string out = t.server_nonce;
      out.append(reinterpret_cast<const char*>(proof.data()), proof.size());
      out.append(reinterpret_cast<const char*>(t.digest.data()), t.digest.size());
      out.append(t.cwd);
      r.more = t.main_process ? 1 : 0;
      return Answer(conn, r, out.data(), out.size());
    }
    case Op::kJoinProof: {
      if (it == tickets_.end() || it->second.failed || it->second.client_nonce.empty()) {
        r.error = EACCES;
        return Answer(conn, r);
      }
      JoinDigest want = ClientProof(join_key_, it->second.client_nonce, it->second.server_nonce);
      if (path.size() != want.size() ||
          !ConstantTimeEquals(AsBytes(path), std::span<const uint8_t>(want.data(), want.size()))) {
        // One try: a connection whose proof failed serves nothing, ever.
        it->second.failed = true;
        Log("shield: a program exec'd by this program could not prove that it holds the volume keys; "
            "it gets nothing");
        r.error = EACCES;
        return Answer(conn, r);
      }
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        r.error = errno;
        return Answer(conn, r);
      }
      tickets_.erase(it);
      controls_.push_back(pair[0]);
      DebugLog("shield: connection %d joined after an exec", conn);
      r.count = 1;
      Answer(conn, r, nullptr, 0, &pair[1], 1);
      ::close(pair[1]);
      return;
    }
    default:
      r.error = EACCES;
      return Answer(conn, r);
  }
}

void ServerImpl::HandleAdopt(int conn, const Request& req) {
  Reply r{};
  for (auto& [key, l] : loaded_) {
    if (l->memfd_ino != req.arg) continue;
    StatusOr<volume::Stat> st = l->file->GetStat();
    if (!st.ok()) break;
    r.chunk_size = 1u << mounts_[key.first].shift;
    FillStat(key.first, *st, &r.st);
    r.file_id = (static_cast<uint64_t>(key.first) << 48) | key.second;
    r.count = 1;
    return Answer(conn, r, nullptr, 0, &l->dirty_fd, 1);
  }
  r.error = ENOENT;
  Answer(conn, r);
}

void ServerImpl::Handle(int conn, const Request& req, const char* p1, const char* p2) {
  Reply r{};
  if (req.op == Op::kExec || req.op == Op::kJoin || req.op == Op::kJoinProof ||
      tickets_.find(conn) != tickets_.end()) {
    return HandleExec(conn, req, std::string(p1, req.path_len), std::string(p2, req.path2_len));
  }
  if (req.op == Op::kAdopt) return HandleAdopt(conn, req);
  if (req.volume >= mounts_.size()) {
    r.error = EINVAL;
    return Answer(conn, r);
  }
  const size_t v = req.volume;
  Mounted& m = mounts_[v];
  std::string path(p1, req.path_len);
  std::string path2(p2, req.path2_len);
  if (req.op != Op::kSync && req.op != Op::kClose && req.op != Op::kWriteBehind && req.op != Op::kLogged) {
    DebugLog("shield: request %u on %s%s%s flags %#x", static_cast<unsigned>(req.op), path.c_str(),
             path2.empty() ? "" : " -> ", path2.c_str(), static_cast<unsigned>(req.flags));
  }
  auto fail_ro = [&]() {
    if (!m.config.read_only) return false;
    r.error = EROFS;
    Answer(conn, r);
    return true;
  };
  auto done = [&](const Status& s) {
    r.error = ErrnoOf(s);
    if (s.ok()) m.changed = true;
    Answer(conn, r);
  };
  switch (req.op) {
    case Op::kOpen:
      return HandleOpen(conn, req, path);
    case Op::kStat:
    case Op::kLstat: {
      StatusOr<volume::Stat> st = m.vol->GetStat(path);
      if (!st.ok()) {
        r.error = ErrnoOf(st.status());
      } else {
        FillStat(v, *st, &r.st);
      }
      return Answer(conn, r);
    }
    case Op::kMkdir:
      if (fail_ro()) return;
      return done(m.vol->Mkdir(path, req.mode & 07777));
    case Op::kRmdir:
      if (fail_ro()) return;
      return done(m.vol->Rmdir(path));
    case Op::kUnlink: {
      if (fail_ro()) return;
      StatusOr<volume::Stat> st = m.vol->GetStat(path);
      if (st.ok() && st->type == volume::FileType::kDirectory) {
        r.error = EISDIR;
        return Answer(conn, r);
      }
      Status s = m.vol->Remove(path);
      if (s.ok() && st.ok()) Forget(v, st->ino);
      return done(s);
    }
    case Op::kRename: {
      if (fail_ro()) return;
      StatusOr<volume::Stat> target = m.vol->GetStat(path2);
      if (target.ok() && (req.flags & 1) != 0) {  // RENAME_NOREPLACE
        r.error = EEXIST;
        return Answer(conn, r);
      }
      Status s = m.vol->Rename(path, path2);
      if (s.ok() && target.ok()) {
        StatusOr<volume::Stat> now = m.vol->GetStat(path2);
        if (!now.ok() || now->ino != target->ino) Forget(v, target->ino);
      }
      return done(s);
    }
    case Op::kSymlink:
      if (fail_ro()) return;
      return done(m.vol->Symlink(path2, path));
    case Op::kReadlink: {
      StatusOr<std::string> t = m.vol->ReadLink(path);
      if (!t.ok()) {
        r.error = t.status().code() == StatusCode::kInvalidArgument ? EINVAL : ErrnoOf(t.status());
        return Answer(conn, r);
      }
      return Answer(conn, r, t->data(), t->size());
    }
    case Op::kChmod:
      if (fail_ro()) return;
      return done(m.vol->Chmod(path, req.mode & 07777));
    case Op::kSetMtime:
      if (fail_ro()) return;
      return done(m.vol->SetMtime(path, req.time_ns));
    case Op::kTruncate: {
      if (fail_ro()) return;
      StatusOr<volume::Stat> st = m.vol->GetStat(path);
      if (st.ok()) {
        auto it = loaded_.find({v, st->ino});
        if (it != loaded_.end()) {
          // The clients read the memfd: cut it there; the volume follows
          // at the next commit.
          if (::ftruncate(it->second->memfd, static_cast<off_t>(req.arg)) != 0) {
            r.error = errno;
          } else {
            MarkShrunk(it->second->dirty, req.arg);
          }
          return Answer(conn, r);
        }
      }
      return done(m.vol->Truncate(path, req.arg));
    }
    case Op::kList:
      return HandleList(conn, req, path);
    case Op::kSync: {
      uint64_t ino = req.file_id & ((uint64_t{1} << 48) - 1);
      Status s;
      if (req.file_id == 0) {
        s = FlushVolume(v);
      } else if (auto it = loaded_.find({v, ino}); it != loaded_.end()) {
        s = Flush(*it->second);
      }
      if (!s.ok()) {
        Log("shield: writing to volume " + m.config.name + " failed: " + s.message());
        r.error = EIO;
        return Answer(conn, r);
      }
      waiting_.push_back(Waiter{conn, v, (req.flags & kSyncReported) != 0});
      return;
    }
    case Op::kClose: {
      uint64_t ino = req.file_id & ((uint64_t{1} << 48) - 1);
      if (auto it = loaded_.find({v, ino}); it != loaded_.end()) {
        Status s = Flush(*it->second);
        if (!s.ok()) Log("shield: writing to volume " + m.config.name + " failed: " + s.message());
      }
      return;
    }
    case Op::kWriteBehind: {
      // Not a commit: what the program writes next is committed at its
      // fsync or close as before, so the quiet-time commit is not armed.
      uint64_t ino = req.file_id & ((uint64_t{1} << 48) - 1);
      if (auto it = loaded_.find({v, ino}); it != loaded_.end()) {
        const bool changed = m.changed;
        Status s = Flush(*it->second);
        if (!s.ok()) Log("shield: writing to volume " + m.config.name + " failed: " + s.message());
        m.changed = changed || !s.ok();
      }
      return;
    }
    case Op::kSyncLog: {
      if (m.log == nullptr) {
        r.error = ENOSYS;
        return Answer(conn, r);
      }
      int fds[2] = {m.log_memfd, m.log_fd};
      return Answer(conn, r, nullptr, 0, fds, 2);
    }
    case Op::kLogged:
      if (m.log != nullptr && !m.fold_armed) {
        m.fold_armed = true;
        m.fold_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kFoldDelayMs);
      }
      return;
    case Op::kExec:
    case Op::kJoin:
    case Op::kJoinProof:
    case Op::kAdopt:
      break;  // handled before the volume is looked at
  }
  r.error = ENOSYS;
  Answer(conn, r);
}

void ServerImpl::Serve(int control, int first) {
  std::vector<int> conns{first};
  std::vector<uint8_t> buf(kMaxMessage);
  controls_.push_back(control);
  for (;;) {
    if (controls_.empty() && conns.empty()) break;
    std::vector<pollfd> pfds;
    for (int c : controls_) pfds.push_back({c, POLLIN, 0});
    for (int c : conns) pfds.push_back({c, POLLIN, 0});
    // With changes flushed but not committed (a close), commit once the
    // clients have been quiet for a moment.
    bool pending = false;
    for (Mounted& m : mounts_) pending = pending || m.changed;
    int timeout = pending ? 5 : -1;
    // Records in a sync log are committed kFoldDelayMs after the first.
    const auto now = std::chrono::steady_clock::now();
    for (size_t v = 0; v < mounts_.size(); ++v) {
      Mounted& m = mounts_[v];
      if (!m.fold_armed) continue;
      if (m.fold_at <= now) {
        (void)CommitVolume(v);
        continue;
      }
      int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(m.fold_at - now).count());
      if (timeout < 0 || ms < timeout) timeout = ms;
    }
    int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(std::string("shield: poll failed: ") + std::strerror(errno));
      break;
    }
    if (n == 0) {
      for (size_t v = 0; v < mounts_.size(); ++v) {
        if (mounts_[v].changed || mounts_[v].fold_armed) (void)CommitVolume(v);
      }
      continue;
    }
    bool lost_client = false;
    const size_t at = controls_.size();
    std::vector<int> gone_controls;
    for (size_t i = 0; i < at; ++i) {
      short ev = pfds[i].revents;
      if ((ev & POLLIN) != 0) {
        int fds[2];
        int nfds = 0;
        ssize_t got = ReceiveDatagram(pfds[i].fd, buf.data(), buf.size(), fds, &nfds);
        for (int k = 0; k < nfds; ++k) conns.push_back(fds[k]);
        if (got == 0) gone_controls.push_back(pfds[i].fd);
      } else if ((ev & (POLLHUP | POLLERR)) != 0) {
        gone_controls.push_back(pfds[i].fd);
      }
    }
    for (int c : gone_controls) {
      ::close(c);
      controls_.erase(std::remove(controls_.begin(), controls_.end(), c), controls_.end());
    }
    std::vector<int> closed;
    for (size_t i = at; i < pfds.size(); ++i) {
      if (pfds[i].revents == 0) continue;
      int c = pfds[i].fd;
      // Everything that is already there, so that fsyncs arriving together
      // share the commit below.
      for (int k = 0; k < 64; ++k) {
        int fds[2];
        int nfds = 0;
        ssize_t got;
        iovec iov{buf.data(), buf.size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        do {
          got = ::recvmsg(c, &msg, MSG_DONTWAIT);
        } while (got < 0 && errno == EINTR);
        (void)fds;
        (void)nfds;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (got <= 0) {
          closed.push_back(c);
          break;
        }
        if (static_cast<size_t>(got) < sizeof(Request)) continue;
        Request req;
        std::memcpy(&req, buf.data(), sizeof(req));
        if (sizeof(Request) + req.path_len + req.path2_len != static_cast<size_t>(got)) {
          Reply r{};
          r.error = EINVAL;
          Answer(c, r);
          continue;
        }
        const char* p1 = reinterpret_cast<const char*>(buf.data()) + sizeof(Request);
        Handle(c, req, p1, p1 + req.path_len);
        // A process waits for the answer to a sync before it sends again on
        // this connection: no need to ask for more (one system call less on
        // the path of every commit).
        if (req.op == Op::kSync) break;
      }
    }
    for (int c : closed) {
      ::close(c);
      tickets_.erase(c);
      conns.erase(std::remove(conns.begin(), conns.end(), c), conns.end());
      waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), [c](const Waiter& w) { return w.conn == c; }),
                     waiting_.end());
      lost_client = true;
    }
    if (lost_client) {
      // A process ended: whatever it wrote is in memory; keep it.
      for (size_t v = 0; v < mounts_.size(); ++v) {
        Status s = FlushVolume(v);
        if (!s.ok()) Log("shield: writing to volume " + mounts_[v].config.name + " failed: " + s.message());
      }
    }
    if (!waiting_.empty() || lost_client) {
      std::vector<int> results(mounts_.size(), 0);
      for (size_t v = 0; v < mounts_.size(); ++v) {
        bool wanted = lost_client;
        for (const Waiter& w : waiting_) wanted = wanted || w.volume == v;
        if (wanted && !CommitVolume(v).ok()) results[v] = EIO;
      }
      bool drained = false;
      for (const Waiter& w : waiting_) {
        if (w.reported && reporter_ && !drained) {
          (void)reporter_->Drain(10000);
          drained = true;
        }
        Reply r{};
        r.error = results[w.volume];
        Answer(w.conn, r);
      }
      waiting_.clear();
    }
  }
  for (size_t v = 0; v < mounts_.size(); ++v) {
    Status s = FlushVolume(v);
    if (s.ok()) s = CommitVolume(v);
    if (!s.ok()) Log("shield: final commit of volume " + mounts_[v].config.name + " failed: " + s.message());
  }
  if (reporter_ && !reporter_->Drain(10000)) {
    Log("shield: the CAS has not recorded the last commits within 10 s; the next start may find the volume "
        "newer than the CAS knows (which it accepts) or, if these commits are lost, refuse it");
  }
  for (int c : controls_) ::close(c);
  controls_.clear();
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Open(std::vector<ServerVolume> volumes) {
  auto s = std::make_unique<ServerImpl>();
  Result<Done> opened = s->OpenAll(std::move(volumes));
  if (!opened.ok()) return opened.failure();
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace cloister::runtime::shield
