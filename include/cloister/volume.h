// Protected volumes: a directory tree stored on an untrusted disk so that
// file contents, names and directory structure are confidential (unless the
// volume is authenticated-only), every byte read is authenticated, and the
// whole state is summarised by a tag that changes with every commit.
//
// Guarantees (see docs/volume-format.md for the format and threat model):
//  - A read never returns bytes the key holder did not write at that place
//    in that file: any change, reordering, swap, truncation or extension on
//    disk makes the read fail with kIntegrity.
//  - Open with an expected tag fails with kStale unless the volume on disk
//    is exactly in that committed state (or can be brought back to it, see
//    below), so whole-volume and single-file rollback are refused.
//  - Crash consistency: only Commit() makes changes durable. After a crash
//    the volume opens in the state of the last Commit() that returned, or,
//    if a commit was interrupted after it reached the disk, of that newer
//    commit. Opening with the expected tag of the commit *before* the last
//    one also succeeds (as does any older commit still in the journal), so
//    a caller that reports tags to a remote party after committing can
//    always agree with it after a crash. A writable open at an older state
//    discards the commits after it.
//  - A journal damaged in the middle (an authentic commit behind one that
//    does not authenticate) is refused with kIntegrity unless an expected
//    tag chooses the state: a crash never produces that.
//  - Random access: reading or writing n bytes costs O(n + chunk + log(size))
//    (a file is re-encrypted once per key budget, see OpenOptions). A commit
//    additionally re-encrypts the namespace: O(number of files).
//
// Thread safety: a Volume and its Files may be used from several threads;
// operations are serialised by one lock per volume. A File must not outlive
// its Volume. Uncommitted changes are discarded when a Volume is destroyed.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cloister/status.h"

namespace cloister {
class SecretBytes;
namespace os {
class Env;
}
}  // namespace cloister

namespace cloister::volume {

struct SyncLogShared;  // volume/sync_log.h

// A volume key is 32 random bytes.
constexpr size_t kVolumeKeySize = 32;

using Tag = std::array<uint8_t, 32>;
std::string TagToHex(const Tag& tag);
StatusOr<Tag> TagFromHex(std::string_view hex);

enum class Protection {
  kEncrypted,          // contents and names confidential and authenticated
  kAuthenticatedOnly,  // contents stored in the clear, authenticated; names still encrypted
};

struct CreateOptions {
  Protection protection = Protection::kEncrypted;
  uint32_t chunk_size = 4096;  // power of two, 512..65536
};

struct OpenOptions {
  // Refuse to open unless the volume is in (or can return to) this state.
  std::optional<Tag> expected_tag;
  // With expected_tag: open the newest state instead, if the expected one
  // is a retained state it descends from. For a writer that reports its
  // tags to a remote party after each commit, so that the party may lag
  // behind: every newer state chains back to the expected one, so it was
  // written by a key holder that had the expected state open. A journal
  // damaged after the expected state is refused as without a tag.
  bool accept_newer = false;
  bool read_only = false;
  // Budget for cached hash-tree nodes.
  size_t cache_bytes = size_t{16} << 20;
  // A journal that reaches this size is closed; the next commit starts a new
  // one, and the older of two journals is then checkpointed into the objects.
  uint64_t journal_rotate_bytes = uint64_t{64} << 20;
  // The journal is extended with zeros this far ahead of its end (0: not
  // at all), so that most commits overwrite allocated space and need only
  // fdatasync, not a metadata update of the file system. A zero tail reads
  // as the end of the journal; a writer's close cuts it off. Unless 0, a
  // checkpointed journal is also kept (as journal.spare) to become the next
  // journal, with its blocks allocated (encrypted volumes only).
  uint64_t journal_preallocate_bytes = uint64_t{1} << 20;
  // Object files that a checkpoint finds unreferenced are removed by a
  // thread of the volume's own instead of in the commit that checkpointed
  // (a writer that stays open, such as the file shield's volume server; a
  // crash leaves them for the next writable open to remove).
  bool background_removals = false;
  // Version 3 (docs/volume-format.md, section 19): a write of at least this
  // many bytes stores the committed chunks it rewrites once, in place, in
  // their second location, instead of journaling them and copying them at
  // a checkpoint. Smaller writes are journaled: relocating adds a sync of
  // the object file to the commit, which costs a small transaction (a
  // database's log page) more than writing its pages twice.
  uint64_t relocate_min_bytes = uint64_t{64} << 10;
  // Version 3: the journal is also closed once its commits relocated this
  // many bytes of chunks, so that it is checkpointed soon and those chunks
  // may be relocated again (a file rewritten over and over is then written
  // once per pass).
  uint64_t journal_rotate_relocated_bytes = uint64_t{64} << 20;
  // A file's data key is replaced (the file re-encrypted under a new one)
  // before it has been used for this many chunk encryptions, which keeps
  // the probability of a random-nonce collision below 2^-32.
  uint64_t max_encryptions_per_key = uint64_t{1} << 31;
};

enum class FileType { kFile, kDirectory, kSymlink };

struct Stat {
  uint64_t ino = 0;
  FileType type = FileType::kFile;
  uint32_t mode = 0;  // permission bits only
  uint64_t size = 0;  // plaintext size (symlinks: target length)
  int64_t mtime_ns = 0;
};

struct DirEntry {
  std::string name;
  FileType type;
  uint64_t ino;
};

struct OpenFlags {
  bool write = false;
  bool create = false;     // create if missing (implies write)
  bool exclusive = false;  // with create: fail if it exists
  bool truncate = false;   // truncate to 0 (implies write)
  uint32_t mode = 0644;    // for created files
};

struct VolumeInfo {
  Protection protection;
  uint32_t chunk_size;
  uint64_t seq;          // number of the last commit
  Tag tag;               // tag of the last commit
  std::string volume_id; // hex
  uint32_t format_version = 0;  // docs/volume-format.md: 1, 2 or 3
  // Records of the sync log (docs/volume-format.md, section 20) based on
  // the state opened: a writable open applied and committed them, a
  // read-only one found them and left them out of what it reads.
  uint64_t sync_log_records = 0;
};

struct VerifyReport {
  uint64_t files = 0;
  uint64_t directories = 0;  // not counting the root
  uint64_t symlinks = 0;
  uint64_t chunks = 0;       // data chunks checked (stored ones authenticated, holes included)
  uint64_t bytes = 0;        // plaintext bytes covered
  // Things that are not part of any committed state (left by an interrupted
  // write, or added by someone else). They are never read, but a clean
  // volume has none; Volume::Open for writing removes them.
  std::vector<std::string> problems;
};

class Volume;

// An open file of a volume.
class File {
 public:
  virtual ~File() = default;
  // Reads up to buf.size() bytes; fewer only at end of file.
  virtual StatusOr<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) = 0;
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual StatusOr<Stat> GetStat() = 0;
};

class Volume {
 public:
  // Creates a new, empty volume in `dir` (which must not exist or be empty)
  // and commits it (seq 0).
  // `open` is how the new volume is then opened.
  static StatusOr<std::unique_ptr<Volume>> Create(os::Env& env, const std::string& dir,
                                                  const SecretBytes& key,
                                                  const CreateOptions& options,
                                                  const OpenOptions& open = OpenOptions());
  // Opens a volume, recovering from an interrupted commit if needed.
  static StatusOr<std::unique_ptr<Volume>> Open(os::Env& env, const std::string& dir,
                                                const SecretBytes& key,
                                                const OpenOptions& options);
  virtual ~Volume() = default;

  // Paths are inside the volume, '/'-separated, absolute or relative to
  // its root; "." components are ignored and ".." is refused.
  virtual StatusOr<Stat> GetStat(std::string_view path) = 0;
  virtual StatusOr<std::vector<DirEntry>> List(std::string_view path) = 0;
  virtual Status Mkdir(std::string_view path, uint32_t mode) = 0;
  virtual Status Rmdir(std::string_view path) = 0;
  // Removes a file or symlink. Open handles keep working until closed.
  virtual Status Remove(std::string_view path) = 0;
  // POSIX rename: replaces a file, or an empty directory by a directory.
  virtual Status Rename(std::string_view from, std::string_view to) = 0;
  virtual Status Symlink(std::string_view target, std::string_view path) = 0;
  virtual StatusOr<std::string> ReadLink(std::string_view path) = 0;
  virtual Status Chmod(std::string_view path, uint32_t mode) = 0;
  virtual Status SetMtime(std::string_view path, int64_t mtime_ns) = 0;
  virtual Status Truncate(std::string_view path, uint64_t size) = 0;
  virtual StatusOr<std::unique_ptr<File>> OpenFile(std::string_view path,
                                                   const OpenFlags& flags) = 0;

  // Makes all changes durable and returns the new tag. Without changes,
  // returns the current tag and writes nothing.
  virtual StatusOr<Tag> Commit() = 0;
  virtual bool HasUncommittedChanges() = 0;
  // Starts a new sync log (docs/volume-format.md, section 20) based on the
  // last commit: a fresh salt and key, the header written, `sh` open and
  // empty. The caller holds SyncLogLock(sh), has no uncommitted changes,
  // and has committed everything the records of the previous log carry.
  // The first call creates the log file with sh->capacity bytes of zeros.
  virtual Status StartSyncLog(SyncLogShared* sh) = 0;
  virtual VolumeInfo Info() = 0;

  // Reads and authenticates every reachable byte and hash-tree node, and
  // lists leftovers. Authentication failures are returned as errors.
  virtual StatusOr<VerifyReport> Verify() = 0;
};

}  // namespace cloister::volume
