// A cache of file measurements, so that a program started a thousand times
// is hashed once (docs/protocol.md, section 1: a LAS may reuse a
// measurement while the file's device, inode, size, modification time and
// change time are all unchanged).
//
// The caller hands over an open descriptor. The cache takes the file's
// identity from fstat on that descriptor *before* anything is hashed, looks
// it up, and on a miss hashes through the same descriptor, so the identity
// and the bytes always belong to one file even if a path is replaced
// meanwhile. Thread-safe. When several threads miss on the same identity at
// once (many copies of one program starting together), one of them hashes
// and the others wait for its result.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "attest/evidence.h"
#include "attest/measure.h"
#include "cloister/status.h"

namespace cloister::las {

// What a cached measurement is valid for.
struct FileIdentity {
  uint64_t device = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  auto Tie() const { return std::tie(device, inode, size, mtime_ns, ctime_ns); }
  bool operator<(const FileIdentity& o) const { return Tie() < o.Tie(); }
  bool operator==(const FileIdentity& o) const { return Tie() == o.Tie(); }
};

// fstat(fd) as a FileIdentity; refuses anything but a regular file.
StatusOr<FileIdentity> IdentityOfFd(int fd);

class MeasurementCache {
 public:
  // Hashes the file open at `fd` (from its start, without moving the
  // caller's offset) and reports the identity it saw. The default reopens
  // the descriptor through /proc/self/fd and calls attest::MeasureFile, so
  // the LAS computes exactly what `cloister measure` computes. Tests inject
  // one that counts.
  using HashFn = std::function<StatusOr<attest::FileMeasurement>(int fd)>;
  // Nanoseconds since the UNIX epoch.
  using ClockFn = std::function<int64_t()>;

  struct Options {
    size_t max_entries = 4096;
    // A file changed within this long before it was hashed is measured
    // again next time instead of cached: file times have the resolution of
    // the kernel's clock tick, so a write landing in the same tick as an
    // earlier one can leave mtime and ctime unchanged. (Git calls such
    // index entries "racily clean".)
    int64_t racy_window_ns = 2'000'000'000;
    HashFn hash;    // empty: the default above
    ClockFn clock;  // empty: the real-time clock
  };

  MeasurementCache() : MeasurementCache(Options()) {}
  explicit MeasurementCache(Options options);
  MeasurementCache(const MeasurementCache&) = delete;
  MeasurementCache& operator=(const MeasurementCache&) = delete;

  // The measurement of the regular file open at `fd`. Fails if it is not a
  // regular file, cannot be read, or changed while it was being hashed.
  StatusOr<attest::Sha256Value> Measure(int fd);

  size_t size() const;

 private:
  using Result = StatusOr<attest::Sha256Value>;
  StatusOr<attest::Sha256Value> HashAndCheck(int fd, const FileIdentity& before);

  const Options options_;
  mutable std::mutex mu_;
  std::map<FileIdentity, attest::Sha256Value> done_;                 // guarded by mu_
  std::map<FileIdentity, std::shared_future<Result>> in_flight_;  // guarded by mu_
};

}  // namespace cloister::las
