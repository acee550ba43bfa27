// The sync log of a protected volume (docs/volume-format.md, section 20):
// where processes that share a volume's writer make their fsync durable
// without a commit. A record holds the chunks of one file that a process
// wants durable, sealed under a key derived from the volume key, the tag of
// the last commit (the log's base) and a fresh random salt. The writer
// folds the records into its next commit and then starts a new log on that
// commit; a writable open applies the records of a log whose base is the
// state it opened, and commits them.
//
// The processes share a SyncLogShared in memory that all of them map
// (MAP_SHARED). The volume's writer sets it up and starts each log
// (Volume::PublishSyncLog); the others append (SyncLogAppend) and make
// their records durable (SyncLogMakeDurable). Nothing here picks a nonce:
// every record is sealed with a fresh random one by crypto::Aead.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cloister/status.h"

namespace cloister::volume {

constexpr uint64_t kSyncLogHeaderSize = 4096;

enum SyncLogState : uint32_t {
  kSyncLogClosed = 0,  // no log started yet
  kSyncLogOpen = 1,    // appends go in
  kSyncLogBroken = 2,  // an appender died holding the lock: no appends until the next start
};

struct SyncLogShared {
  uint64_t magic = 0;
  pthread_mutex_t mu;  // process-shared, robust, error-checking
  // Guarded by mu:
  uint32_t state = kSyncLogClosed;
  uint32_t chunk_size = 0;
  uint64_t generation = 0;  // counts the logs started
  uint64_t next_index = 0;  // records appended to this log
  uint64_t next_offset = 0;
  uint64_t capacity = 0;         // bytes of the log file
  uint64_t max_record_data = 0;  // a record carries at most this many bytes of chunks
  uint8_t base_tag[32] = {};
  uint8_t key[32] = {};
  // (generation << 32) | records of that generation known durable.
  std::atomic<uint64_t> durable{0};
  // The last generation whose first record the writer was told of (by
  // whoever appends; the writer commits a log's records soon after).
  std::atomic<uint64_t> announced{0};
};

// Prepares `sh` (in shared memory, before another process maps it).
Status SyncLogInitShared(SyncLogShared* sh, uint32_t chunk_size, uint64_t capacity, uint64_t max_record_data);

// Holds sh->mu for its lifetime. If a holder died while holding it, the log
// is marked broken (the state it left is not trusted). locked() is false when
// the calling thread already holds it (a signal handler).
class SyncLogLock {
 public:
  explicit SyncLogLock(SyncLogShared* sh);
  ~SyncLogLock();
  SyncLogLock(const SyncLogLock&) = delete;
  SyncLogLock& operator=(const SyncLogLock&) = delete;
  bool locked() const { return locked_; }

 private:
  SyncLogShared* sh_;
  bool locked_ = false;
};

struct SyncRun {
  uint64_t first_chunk = 0;
  uint32_t count = 0;
};

// What one record says of one file: its size, and the contents of some of
// its chunks. Runs ascend and do not overlap; `data` holds each run's bytes
// in order, C bytes per chunk, the last chunk of the file cut at `size`.
struct SyncRecordContent {
  // Set by a fill that finds nothing to record: no record is appended, and
  // the position returned is the end of the log.
  bool skip = false;
  uint64_t ino = 0;
  uint64_t size = 0;
  std::vector<SyncRun> runs;
  std::vector<uint8_t> data;
};

// Calls f(offset, bytes) for each run of `c`: where in the file the run
// starts, and its part of c.data (the file's last chunk cut at c.size).
template <class F>
void ForEachRunData(const SyncRecordContent& c, uint32_t chunk_size, F&& f) {
  size_t at = 0;
  for (const SyncRun& r : c.runs) {
    const uint64_t start = r.first_chunk * chunk_size;
    const uint64_t end = std::min<uint64_t>((r.first_chunk + r.count) * chunk_size, c.size);
    const size_t n = static_cast<size_t>(end - start);
    f(start, std::span<const uint8_t>(c.data.data() + at, n));
    at += n;
  }
}

// Where a record went: records [0, index) of log `generation`.
struct SyncLogPosition {
  uint64_t generation = 0;
  uint64_t index = 0;
};

// Appends a record to the log whose file is `fd`. `fill` runs with the lock
// held, after the record's place in the order is fixed, and reads what the
// record carries (it must read the file's contents then, not before).
// kUnavailable: the log takes no record now (not started, broken, full, or
// the record is larger than max_record_data): make a commit instead.
StatusOr<SyncLogPosition> SyncLogAppend(SyncLogShared* sh, int fd,
                                        const std::function<Status(SyncRecordContent&)>& fill);

// The position after the last record appended so far (kUnavailable when the
// log takes no records).
StatusOr<SyncLogPosition> SyncLogEnd(SyncLogShared* sh);

// Returns once every record up to `pos` is durable: at once if another
// process has made them so, or if a commit has folded them in; otherwise
// after an fdatasync of `fd`.
Status SyncLogMakeDurable(SyncLogShared* sh, int fd, SyncLogPosition pos);

namespace format {
// The log's header (the first 96 of its kSyncLogHeaderSize bytes).
struct SyncLogHeader {
  uint32_t chunk_size = 0;
  uint64_t base_seq = 0;
  std::array<uint8_t, 32> base_tag{};
  std::array<uint8_t, 32> salt{};
};
constexpr size_t kSyncLogHeaderUsed = 96;
std::vector<uint8_t> EncodeSyncLogHeader(const SyncLogHeader& h);
StatusOr<SyncLogHeader> ParseSyncLogHeader(std::span<const uint8_t> bytes);
// Record framing: 16-byte head (magic, plaintext length, index), then the
// sealed body.
constexpr size_t kSyncRecordHead = 16;
constexpr uint32_t kSyncRecordMagic = 0x31524c53;  // "SLR1"
std::vector<uint8_t> EncodeSyncRecordBody(const SyncRecordContent& c, uint32_t chunk_size);
StatusOr<SyncRecordContent> ParseSyncRecordBody(std::span<const uint8_t> body, uint32_t chunk_size);
}  // namespace format

}  // namespace cloister::volume
