#include "las/measure_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace cloister::las {
namespace {

int64_t Nanos(const struct timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec; }

int64_t RealTimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Reopening /proc/self/fd/N yields a new open file description of the very
// inode `fd` refers to (also when its name was deleted or replaced), so
// attest::MeasureFile hashes exactly that file, from its start, with the
// same code `cloister measure` runs.
StatusOr<attest::FileMeasurement> MeasureThroughProc(int fd) {
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto m = attest::MeasureFile(path);
  if (m.ok()) return m;
  // The descriptor's path means nothing to whoever reads the error.
  std::string msg = m.status().message();
  if (msg.starts_with(path)) msg = "the file" + msg.substr(path.size());
  return Status(m.status().code(), msg);
}

}  // namespace

StatusOr<FileIdentity> IdentityOfFd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("fstat", errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument("not a regular file");
  FileIdentity id;
  id.device = st.st_dev;
  id.inode = st.st_ino;
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = Nanos(st.st_mtim);
  id.ctime_ns = Nanos(st.st_ctim);
  return id;
}

MeasurementCache::MeasurementCache(Options options) : options_([&] {
  Options o = std::move(options);
  if (!o.hash) o.hash = MeasureThroughProc;
  if (!o.clock) o.clock = RealTimeNs;
  if (o.max_entries == 0) o.max_entries = 1;
  return o;
}()) {}

size_t MeasurementCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_.size();
}

StatusOr<attest::Sha256Value> MeasurementCache::HashAndCheck(int fd, const FileIdentity& before) {
  ASSIGN_OR_RETURN(attest::FileMeasurement m, options_.hash(fd));
  FileIdentity hashed{m.device, m.inode, m.size, m.mtime_ns, m.ctime_ns};
  // The identity must hold from our first fstat until after the last byte
  // was read: otherwise the hash may describe bytes that never existed
  // together, and caching it under `before` would be wrong.
  auto after = IdentityOfFd(fd);
  if (!after.ok()) return after.status();
  if (!(hashed == before) || !(*after == before)) return IoError("the file changed while it was being measured");
  auto raw = HexDecode(m.sha256);
  if (!raw || raw->size() != 32) return InternalError("a measurement is not a SHA-256 value");
  attest::Sha256Value v;
  std::memcpy(v.data(), raw->data(), v.size());
  return v;
}

StatusOr<attest::Sha256Value> MeasurementCache::Measure(int fd) {
  ASSIGN_OR_RETURN(FileIdentity id, IdentityOfFd(fd));
  std::promise<Result> promise;
  std::shared_future<Result> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = done_.find(id); it != done_.end()) return it->second;
    if (auto it = in_flight_.find(id); it != in_flight_.end()) {
      pending = it->second;
    } else {
      in_flight_.emplace(id, promise.get_future().share());
    }
  }
  // Another thread is hashing this very file version: wait for its result
  // rather than read the same bytes again.
  if (pending.valid()) return pending.get();

  Result result = HashAndCheck(fd, id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(id);
    bool settled = options_.clock() - std::max(id.mtime_ns, id.ctime_ns) >= options_.racy_window_ns;
    if (result.ok() && settled) {
      if (done_.size() >= options_.max_entries) {
        // Evict the neighbour of the new key: cheap, and it spreads
        // evictions over the key space instead of always hitting one entry.
        auto victim = done_.lower_bound(id);
        if (victim == done_.end()) victim = done_.begin();
        done_.erase(victim);
      }
      done_.emplace(id, *result);
    }
  }
  promise.set_value(result);
  return result;
}

}  // namespace cloister::las
