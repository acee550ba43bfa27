// The file shield's messages between a protected process (the client) and
// its volume server (docs/runtime.md, "The file shield").
//
// The server is a child the runtime forks before main, so both ends run
// the same build of the library: the messages are plain structures, not a
// stable format. Each travels as one SOCK_SEQPACKET datagram, a fixed part
// followed by variable bytes (paths in a request; a link target or
// directory entries in a reply); descriptors travel as SCM_RIGHTS.
//
// Shared dirty map: a file's plaintext lives in a memfd that every process
// maps or reads and writes directly; next to it, a second memfd holds a
// DirtyMap, where the clients mark the chunks they wrote and the server
// finds them when it commits.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cloister::runtime::shield {

inline constexpr size_t kMaxMessage = 64 * 1024;
inline constexpr size_t kMaxPathBytes = 4096;

enum class Op : uint32_t {
  kOpen = 1,   // path, flags, mode -> stat (+ memfd and dirty map for files)
  kStat,       // path (symbolic links followed)
  kLstat,      // path
  kMkdir,      // path, mode
  kRmdir,      // path
  kUnlink,     // path
  kRename,     // path -> path2; flags: RENAME_NOREPLACE
  kSymlink,    // target (path2) at path
  kReadlink,   // path -> target
  kChmod,      // path, mode
  kSetMtime,   // path, time_ns
  kTruncate,   // path, arg = size
  kList,       // path, arg = index of the first entry wanted
  kSync,       // file_id (0: the whole volume): write it out and commit; flags kSyncReported:
               // answer once the CAS has recorded the commit too (or 10 s passed)
  kClose,      // file_id: the process closed its last descriptor; no reply
  // A program is about to be exec'd (shield_exec.h). Sent on a connection
  // made for it: path = the ticket's digest, path2 = the working directory
  // if on a volume; flags kExecMainProcess. From then on the connection
  // serves kJoin and kJoinProof only.
  kExec,
  kJoin,       // path = the new program's nonce -> data = server nonce, server proof, ticket digest, cwd;
               // more = 1 if the new program takes the main process's place
  kJoinProof,  // path = the new program's proof -> one descriptor: a control socket of its own
  kAdopt,      // arg = inode of an inherited memfd -> as kOpen of its file, with the dirty map only
  // file_id: enough of the file was written since the server last took its
  // marks (DirtyHead::unflushed) that the server should write it into the
  // volume now, while the program goes on writing; not a commit; no reply.
  kWriteBehind,
  // The volume's sync log (docs/runtime.md, "Syncs without a round trip"):
  // -> two descriptors, the shared state (volume::SyncLogShared) and the
  // log file; ENOSYS when the volume has none.
  kSyncLog,
  // The first record of the volume's current log was appended: the server
  // folds the log into a commit within kFoldDelayMs. No reply.
  kLogged,
};

struct Request {
  Op op;
  uint32_t volume;   // index into the mounts
  int32_t flags;
  uint32_t mode;
  uint64_t file_id;
  uint64_t arg;
  int64_t time_ns;
  uint16_t path_len;   // bytes of the path, after the fixed part
  uint16_t path2_len;  // bytes of the second path, after the first
};

enum : uint8_t { kTypeFile = 1, kTypeDirectory = 2, kTypeSymlink = 3 };
inline constexpr int32_t kSyncReported = 1;
inline constexpr int32_t kExecMainProcess = 1;

struct StatInfo {
  uint64_t ino;
  uint64_t size;
  int64_t mtime_ns;
  uint32_t mode;  // permission bits
  uint8_t type;
};

struct Reply {
  int32_t error;  // 0, or the errno of the failure
  uint32_t chunk_size;
  uint64_t file_id;
  StatInfo st;
  uint32_t count;     // kList: entries in this reply; kOpen: descriptors sent
  uint32_t more;      // kList: 1 if entries follow after these
  uint32_t data_len;  // bytes after the fixed part
};

// kList entries, packed one after the other.
struct ListEntry {
  uint64_t ino;
  uint8_t type;
  uint8_t name_len;  // names are 1..255 bytes
};

// The head of a file's dirty map; the bit map follows at kDirtyBitsOffset,
// one bit per chunk, up to kDirtyMaxChunks chunks. Chunks past that (or
// writes the client cannot see, such as a shared writable mapping) are
// covered by a full comparison at commit time instead.
struct DirtyHead {
  uint64_t magic;
  // Set by a client that gave up on precise marks for this file: the
  // server then compares every chunk at the next commit.
  std::atomic<uint32_t> full_scan;
  // Set while some process holds a shared mapping of the file: every
  // commit compares every chunk.
  std::atomic<uint32_t> shared_mappings;
  // The lowest size the file had since the last commit (~0: no shrink).
  std::atomic<uint64_t> low_size;
  // One more than the highest chunk ever marked.
  std::atomic<uint64_t> marked_end;
  // Chunks newly marked since the server last took the marks, and whether
  // a client has asked for a write-behind since (see Op::kWriteBehind).
  std::atomic<uint64_t> unflushed;
  std::atomic<uint32_t> behind_asked;
  // Set by the server when the file exists in the volume's last commit
  // (the base of its sync log); only then may its syncs go to the log.
  std::atomic<uint32_t> in_base;
  // Set, with the log's lock held, by a client that appended a record of
  // this file: the server's next commit flushes it.
  std::atomic<uint32_t> logged;
  // The size the file has in the last commit or in its last record (~0:
  // not known): a sync with no chunk to record and this size appends
  // nothing.
  std::atomic<uint64_t> log_size;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the dirty map is shared between processes");

inline constexpr uint64_t kDirtyMagic = 0x434c4f4953544452ull;
inline constexpr size_t kDirtyBitsOffset = 4096;
inline constexpr uint64_t kDirtyMaxChunks = uint64_t{1} << 24;  // 64 GiB at 4 KiB chunks
// A second bit map, the same size, marks the chunks written since a client
// last took them for a record of the sync log.
inline constexpr size_t kLogBitsOffset = kDirtyBitsOffset + kDirtyMaxChunks / 8;
inline constexpr size_t kDirtyMapBytes = kLogBitsOffset + kDirtyMaxChunks / 8;
// How long records may wait in a sync log before the server commits them.
inline constexpr int kFoldDelayMs = 50;

// Calls f(first, count) for each run of consecutive set bits of `bits`,
// lowest first: the chunks 64 * word + first .. + count - 1 of a bit map word.
template <class F>
void ForEachBitRun(uint64_t bits, F&& f) {
  while (bits != 0) {
    unsigned lo = static_cast<unsigned>(__builtin_ctzll(bits));
    unsigned hi = lo;
    while (hi + 1 < 64 && (bits >> (hi + 1) & 1) != 0) ++hi;
    f(lo, hi - lo + 1);
    bits &= (hi == 63) ? 0 : ~uint64_t{0} << (hi + 1);
  }
}

// Marks [offset, offset + length) of a file with chunks of 2^shift bytes
// as written. Lock-free and async-signal-safe. Returns how many chunks were
// marked since the server last took the marks (counting only chunks that
// were not marked yet).
uint64_t MarkDirty(DirtyHead* head, unsigned shift, uint64_t offset, uint64_t length);

// How many newly written bytes make a client ask for a write-behind.
inline constexpr uint64_t kWriteBehindBytes = 256 * 1024;
// Records that the file was cut to `size`.
void MarkShrunk(DirtyHead* head, uint64_t size);

// Sends one datagram (`head` then `data`) with up to 2 descriptors. False
// with errno set on failure.
bool SendDatagram(int sock, const void* head, size_t head_len, const void* data, size_t data_len, const int* fds,
                  int nfds);
// Receives one datagram into `buf`; descriptors (at most 2) into `fds`.
// Returns the bytes received, 0 at end of stream, -1 with errno set.
ssize_t ReceiveDatagram(int sock, void* buf, size_t cap, int* fds, int* nfds);

}  // namespace cloister::runtime::shield
