// The protected-volume implementation. The format is described normatively
// in docs/volume-format.md; this file explains why the code does what it
// does where that is not obvious.
//
// Shape of the implementation:
//  - The namespace (inodes, names, sizes, per-file hash-tree roots) lives in
//    memory and is written whole, encrypted, with every commit.
//  - Each file's data lives in its own object file, one chunk per slot; the
//    interior nodes of its hash tree live in a second object file.
//  - Writes to a location that some retained committed state still refers
//    to go to the journal (redo log) instead of overwriting it; writes to
//    fresh locations go straight to the object. A commit is durable once its
//    commit frame is synced. Checkpoints copy journaled pages into place.
#include "cloister/volume.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>

#include "base/parallel.h"
#include "base/secret.h"
#include "crypto/crypto.h"
#include "os/env.h"
#include "volume/format.h"
#include "volume/sync_log.h"
#include "volume/volume_internal.h"

namespace cloister::volume {

std::string TagToHex(const Tag& tag) { return HexEncode(tag); }

StatusOr<Tag> TagFromHex(std::string_view hex) {
  auto bytes = HexDecode(hex);
  if (!bytes || bytes->size() != 32) {
    return InvalidArgument("a volume tag is 64 hexadecimal digits");
  }
  Tag t;
  std::copy(bytes->begin(), bytes->end(), t.begin());
  return t;
}

namespace {

using format::Entry;
using format::Id;
using format::InodeType;
using format::PageKind;
using internal::Extent;
using internal::ExtentMap;
using internal::IdHash;
using internal::PageKey;
using internal::PageKeyHash;

constexpr size_t kBatchChunks = 256;

// The base manifest file (section 8.3; version 2: the state's tag, then
// the manifest), sealed with `manifest_aead`, keyed with K_manifest(seq).
StatusOr<Bytes> EncodeBaseFile(crypto::Aead& manifest_aead, const Id& volume_id, uint32_t version, uint64_t seq,
                               const Tag& tag, std::span<const uint8_t> manifest) {
  Bytes plain;
  if (version != format::kFormatVersion1) {
    plain.reserve(tag.size() + manifest.size());
    PutBytes(plain, tag);
  }
  PutBytes(plain, manifest);
  ASSIGN_OR_RETURN(Bytes sealed, manifest_aead.SealRecord(format::ManifestAad(volume_id, seq, version), plain));
  return format::EncodeManifestFile(seq, sealed, version);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct NodeKey {
  Id obj;
  uint32_t level;
  uint64_t index;
  bool operator==(const NodeKey& o) const {
    return obj == o.obj && level == o.level && index == o.index;
  }
};
struct NodeKeyHash {
  size_t operator()(const NodeKey& k) const {
    return IdHash()(k.obj) ^ (k.index * 0x9e3779b97f4a7c15ull) ^ (size_t{k.level} << 56);
  }
};

struct Inode {
  format::InodeRecord rec;  // for files, rec.root always holds F entries
  uint32_t height = 0;      // tree height for the current size
  std::map<std::string, uint64_t> children;
  int open_count = 0;
  bool linked = true;
  // Encoded size of this inode's record in the committed state; 0 if the
  // committed state does not hold it (every record has at least 33 bytes).
  size_t committed_bytes = 0;
};

struct CachedNode {
  Bytes data;
  bool dirty = false;
  std::list<NodeKey>::iterator lru;
};

// Version 2: a full journal's last state, taken when this writer filled
// the journal, so that its checkpoint need not read the journal back.
struct JournalEnd {
  uint64_t seq = 0;
  Tag tag{};
  Bytes manifest;  // the state's whole manifest, encoded
  ExtentMap extents;
};

struct Journal {
  uint64_t gen = 0;
  std::unique_ptr<os::File> file;
  uint64_t size = 0;
  uint64_t commits = 0;
  uint64_t allocated = 0;  // the file's size: `size` and zeros after it
  bool grown = true;       // the file's size changed since its last sync
  // Created by this writer: every page it holds is in `pages` (where its
  // newest copy lies), and `end` is set once the journal is full.
  bool own = false;
  std::unordered_map<PageKey, uint64_t, PageKeyHash> pages;
  std::optional<JournalEnd> end;
  // Version 3: the chunks this writer's commits in this journal relocated
  // (section 19), and how many. A journal found at open is judged by the
  // files its commits changed instead (every chunk of them counts).
  std::unordered_map<Id, internal::ChunkSet, IdHash> relocated;
  uint64_t relocated_chunks = 0;
};

struct JournalLoc {
  uint64_t gen;
  uint64_t offset;
};

FileType ToFileType(InodeType t) {
  switch (t) {
    case InodeType::kFile: return FileType::kFile;
    case InodeType::kDirectory: return FileType::kDirectory;
    case InodeType::kSymlink: return FileType::kSymlink;
  }
  return FileType::kFile;
}

StatusOr<std::vector<std::string>> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (part == "..") return InvalidArgument(std::string(path) + ": '..' is not allowed in volume paths");
    if (!part.empty() && part != ".") {
      if (part.size() > format::kMaxNameLength) return InvalidArgument(std::string(path) + ": file name too long");
      if (part.find('\0') != std::string_view::npos) return InvalidArgument("NUL in path");
      parts.emplace_back(part);
    }
    i = j + 1;
  }
  return parts;
}

class VolumeImpl;

class FileImpl final : public File {
 public:
  FileImpl(VolumeImpl* v, uint64_t ino, bool writable) : v_(v), ino_(ino), writable_(writable) {}
  ~FileImpl() override;
  StatusOr<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Truncate(uint64_t size) override;
  StatusOr<Stat> GetStat() override;

 private:
  VolumeImpl* v_;
  uint64_t ino_;
  bool writable_;
};

class VolumeImpl final : public Volume {
 public:
  VolumeImpl(os::Env& env, std::string dir, const OpenOptions& opts)
      : env_(env), dir_(std::move(dir)), objects_dir_(os::JoinPath(dir_, format::kObjectsDir)),
        opts_(opts) {}
  ~VolumeImpl() override {
    // Objects no retained state refers to go before the volume closes: a
    // file created and removed within one transaction (a program's
    // temporary file) left its object on disk, and only a checkpoint would
    // otherwise collect it. Files of the writer are closed by now, so
    // nothing reads them.
    if (opened_ && !read_only_ && broken_.ok() && ::getpid() == owner_) {
      CollectGarbage(/*trim=*/false, /*queue=*/false).ok();
    }
    // What is queued for removal is removed before the volume closes.
    if (remover_.joinable()) {
      {
        std::lock_guard<std::mutex> l(remove_mu_);
        remove_stop_ = true;
      }
      remove_cv_.notify_all();
      if (::getpid() == owner_) remover_.join();
      else remover_.detach();
    }
    // A writer that closes leaves no preallocated zeros behind (nor the
    // frames of a reused journal), in the newest journal or a full one.
    if (!read_only_) {
      for (Journal& j : journals_) {
        if (j.allocated > j.size) j.file->Truncate(j.size).ok();
      }
    }
    // Nor a spare journal.
    if (spare_bytes_ != 0) env_.RemoveFile(os::JoinPath(dir_, format::kSpareJournalFile)).ok();
  }

  Status Init(const SecretBytes& key);
  // Init succeeded: the state in memory is the volume's, and the
  // destructor may collect what it does not refer to.
  void MarkOpened() { opened_ = true; }

  // ---- Volume API ----
  StatusOr<Stat> GetStat(std::string_view path) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    return StatOf(inodes_.at(ino));
  }

  StatusOr<std::vector<DirEntry>> List(std::string_view path) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    const Inode& d = inodes_.at(ino);
    if (d.rec.type != InodeType::kDirectory) return NotADirectory(std::string(path) + ": not a directory");
    std::vector<DirEntry> out;
    for (const auto& [name, child] : d.children) {
      out.push_back({name, ToFileType(inodes_.at(child).rec.type), child});
    }
    return out;
  }

  Status Mkdir(std::string_view path, uint32_t mode) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
    if (inodes_.at(pn.first).children.count(pn.second)) return AlreadyExists(std::string(path) + ": already exists");
    NewInode(pn.first, pn.second, InodeType::kDirectory, mode);
    return Status::Ok();
  }

  Status Rmdir(std::string_view path) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    Inode& d = inodes_.at(ino);
    if (d.rec.type != InodeType::kDirectory) return NotADirectory(std::string(path) + ": not a directory");
    if (ino == format::kRootIno) return PermissionDenied("cannot remove the volume's root");
    if (!d.children.empty()) return DirectoryNotEmpty(std::string(path) + ": directory not empty");
    Unlink(ino);
    return Status::Ok();
  }

  Status Remove(std::string_view path) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    if (inodes_.at(ino).rec.type == InodeType::kDirectory) return IsADirectory(std::string(path) + ": is a directory");
    Unlink(ino);
    return Status::Ok();
  }

  Status Rename(std::string_view from, std::string_view to) override;

  Status Symlink(std::string_view target, std::string_view path) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    if (target.empty() || target.size() > format::kMaxSymlinkLength) {
      return InvalidArgument("invalid symlink target");
    }
    ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
    if (inodes_.at(pn.first).children.count(pn.second)) return AlreadyExists(std::string(path) + ": already exists");
    Inode& in = NewInode(pn.first, pn.second, InodeType::kSymlink, 0777);
    in.rec.target = std::string(target);
    return Status::Ok();
  }

  StatusOr<std::string> ReadLink(std::string_view path) override {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    const Inode& in = inodes_.at(ino);
    if (in.rec.type != InodeType::kSymlink) return InvalidArgument(std::string(path) + " is not a symlink");
    return in.rec.target;
  }

  Status Chmod(std::string_view path, uint32_t mode) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    inodes_.at(ino).rec.mode = mode & 07777;
    Changed(inodes_.at(ino));
    return Status::Ok();
  }

  Status SetMtime(std::string_view path, int64_t ns) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    inodes_.at(ino).rec.mtime_ns = ns;
    Changed(inodes_.at(ino));
    return Status::Ok();
  }

  Status Truncate(std::string_view path, uint64_t size) override {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(CheckWritable());
    ASSIGN_OR_RETURN(uint64_t ino, Resolve(path));
    Inode& f = inodes_.at(ino);
    if (f.rec.type == InodeType::kDirectory) return IsADirectory(std::string(path) + ": is a directory");
    if (f.rec.type != InodeType::kFile) return InvalidArgument(std::string(path) + " is not a file");
    return Guard(TruncateInode(f, size));
  }

  StatusOr<std::unique_ptr<File>> OpenFile(std::string_view path, const OpenFlags& flags) override;
  StatusOr<Tag> Commit() override;
  bool HasUncommittedChanges() override {
    std::lock_guard<std::mutex> l(mu_);
    return Dirty();
  }
  VolumeInfo Info() override {
    std::lock_guard<std::mutex> l(mu_);
    return VolumeInfo{
        (header_.flags & format::kFlagAuthenticatedOnly) ? Protection::kAuthenticatedOnly
                                                          : Protection::kEncrypted,
        C_, seq_, tag_, HexEncode(header_.volume_id), version_, sync_log_records_};
  }
  StatusOr<VerifyReport> Verify() override;
  Status StartSyncLog(SyncLogShared* sh) override;
  // Applies (writable) or counts (read-only) the records of a sync log based
  // on the state opened; Open commits what was applied.
  Status ReadSyncLog();
  // Reads the sync log's header before Init reads the journals: a writer
  // that commits meanwhile starts a new log, and a header read after the
  // journals could name a commit newer than the state they gave (the log
  // would then be ignored, and the records it held, which that newer
  // commit holds, missing from what this open reads).
  void PeekSyncLog();

  // ---- used by FileImpl ----
  StatusOr<size_t> FileRead(uint64_t ino, uint64_t off, std::span<uint8_t> buf);
  // Reads [off, off + buf.size()) of what `f` stores, as if it were `size`
  // bytes long (at most its size).
  StatusOr<size_t> ReadStored(Inode& f, uint64_t off, std::span<uint8_t> buf, uint64_t size);
  Status FileWrite(uint64_t ino, uint64_t off, std::span<const uint8_t> data);
  Status FileTruncate(uint64_t ino, uint64_t size);
  StatusOr<Stat> FileStat(uint64_t ino) {
    std::lock_guard<std::mutex> l(mu_);
    return StatOf(inodes_.at(ino));
  }
  void FileClosed(uint64_t ino);

 private:

  // ---- namespace ----
  StatusOr<uint64_t> Resolve(std::string_view path);
  StatusOr<std::pair<uint64_t, std::string>> ResolveParent(std::string_view path);
  Inode& NewInode(uint64_t parent, const std::string& name, InodeType type, uint32_t mode);
  void Unlink(uint64_t ino);
  void FreeInode(uint64_t ino);
  std::string PathOf(uint64_t ino);
  Stat StatOf(const Inode& in) {
    Stat s;
    s.ino = in.rec.ino;
    s.type = ToFileType(in.rec.type);
    s.mode = in.rec.mode;
    s.size = in.rec.type == InodeType::kFile      ? in.rec.size
             : in.rec.type == InodeType::kSymlink ? in.rec.target.size()
                                                  : 0;
    s.mtime_ns = in.rec.mtime_ns;
    if (auto ov = log_overlay_.find(in.rec.ino); ov != log_overlay_.end()) s.size = ov->second.size;
    return s;
  }
  Status CheckWritable() {
    if (read_only_) return PermissionDenied("the volume is open read-only");
    return broken_;
  }
  bool Dirty() const { return meta_dirty_ || !dirty_by_obj_.empty() || !txn_inplace_.empty() || txn_pages_; }
  // An I/O failure in the middle of a write leaves memory and disk out of
  // step; from then on the volume refuses further changes (the disk still
  // holds the last commit).
  Status Guard(Status s) {
    if (!s.ok() && s.code() != StatusCode::kIntegrity && s.code() != StatusCode::kInvalidArgument &&
        broken_.ok()) {
      broken_ = FailedPrecondition("an earlier write failed (" + s.message() +
                                   "); reopen the volume to continue from its last commit");
    }
    return s;
  }
  format::Manifest BuildManifest(uint64_t seq);
  // The manifest record of a linked inode, with its root trimmed.
  format::InodeRecord RecordOf(Inode& in);
  Status LoadManifest(const format::Manifest& m);
  // Version 2: the next commit must carry this inode's record.
  void Changed(Inode& in) {
    meta_dirty_ = true;
    if (in.linked) changed_.insert(in.rec.ino);
  }
  format::ManifestDelta BuildDelta(uint64_t seq);
  // Version 2 base manifest file: plaintext is the state's tag, then the
  // manifest.
  struct Base {
    uint64_t seq = 0;
    Tag tag{};
    Bytes manifest;
  };
  StatusOr<Base> ReadBase();
  Status WriteBase(uint64_t seq, const Tag& tag, std::span<const uint8_t> manifest);

  // ---- hash tree ----
  uint64_t Pow(uint32_t e) const { return pow_[e]; }
  StatusOr<uint8_t*> GetNode(const Id& obj, uint32_t level, uint64_t index, const uint8_t* expected);
  StatusOr<uint8_t*> LeafEntry(Inode& f, uint64_t chunk, bool for_write);
  void MarkDirty(const Id& obj, uint32_t level, uint64_t index);
  void DropNodes(const Id& obj, const std::function<bool(uint32_t, uint64_t)>& pred);
  Status FlushNodes(Inode& f);
  Status FlushAll();
  Status MaybeEvict();
  void GrowTree(Inode& f, uint64_t chunks);
  Status TruncateInode(Inode& f, uint64_t size);
  Status Rekey(Inode& f);

  // ---- chunks ----
  StatusOr<crypto::Aead*> AeadFor(const Id& obj, size_t slot);
  // Chunks per parallel task: at least 512 KiB, so that handing work to
  // another thread costs much less than the work. Waking a thread and
  // waiting for it costs tens of microseconds on a virtual machine, about
  // what sealing 64 KiB takes; with 64 KiB tasks the file shield's server,
  // which writes 256 KiB at a time, wrote 10% less than on one thread.
  size_t ParallelGrain() const { return std::max<size_t>(16, (size_t{512} << 10) / C_); }
  void ForgetAead(const Id& obj) {
    for (auto& m : aeads_) m.erase(obj);
  }
  Status ReadChunks(Inode& f, uint64_t first, uint64_t count, uint8_t* out);
  // Encrypts `count` plaintext chunks from `plain` into `out` (which may be
  // the same buffer) and stores them.
  Status WriteChunks(Inode& f, uint64_t first, uint64_t count, const uint8_t* plain, uint8_t* out);
  Status WriteRange(Inode& f, uint64_t off, std::span<const uint8_t> data);

  StatusOr<crypto::Aead*> JournalAead(uint64_t gen) {
    auto it = journal_aeads_.find(gen);
    if (it != journal_aeads_.end()) return it->second.get();
    ASSIGN_OR_RETURN(SecretBytes k, format::DeriveJournalKey(key_, header_.volume_id, gen));
    ASSIGN_OR_RETURN(auto a, crypto::Aead::New(k));
    return (journal_aeads_[gen] = std::move(a)).get();
  }
  StatusOr<std::unique_ptr<crypto::Aead>> ManifestAead(uint64_t seq) {
    ASSIGN_OR_RETURN(SecretBytes k, format::DeriveManifestKey(key_, header_.volume_id, seq));
    return crypto::Aead::New(k);
  }
  // Re-keys `f` first if writing `chunks` more would exceed its key's budget.
  Status EnsureKeyBudget(Inode& f, uint64_t chunks) {
    if (f.rec.encryptions + chunks + 1 > opts_.max_encryptions_per_key) return Rekey(f);
    return Status::Ok();
  }
  // Largest file whose re-encryption uses at most a quarter of a key's budget.
  uint64_t MaxFileSize() const {
    return std::min<uint64_t>(format::kMaxFileSize, opts_.max_encryptions_per_key / 4 * C_);
  }

  // ---- pages, objects, journal ----
  StatusOr<os::File*> ObjectFile(const Id& obj, PageKind kind, bool for_write);
  Status ReadPage(const PageKey& key, std::span<uint8_t> out, size_t* got);
  // `in_place`: the pages go into the object whatever the extents say (a
  // relocated chunk rewritten in the transaction that relocated it).
  Status WritePages(const Id& obj, PageKind kind, uint64_t offset, std::span<const uint8_t> pages,
                    bool in_place = false);
  Status EnsureJournal();
  Status Append(std::span<const uint8_t> frame, uint64_t* at);
  Status Checkpoint();
  // Copies journal pages (their page's offset in `journal`) into their
  // objects; `copies` sorted by object, kind and offset.
  Status CopyPages(os::File& journal, const std::vector<std::pair<PageKey, uint64_t>>& copies);
  Status Rotate();
  // `trim`: also cut objects back to their committed end (at a writable
  // open). `queue`: leave removals to the remover thread where there is one.
  Status CollectGarbage(bool trim, bool queue = true);
  // Hands an unreferenced object file to the remover thread
  // (OpenOptions::background_removals); false if it must be removed here.
  bool QueueRemoval(std::string path);
  void RemoveQueued();
  // Extents of every retained state (and, for a read-only open at an older
  // tag, of the newer commits it leaves alone): nothing may overwrite them
  // in place, and an object longer than them holds leftovers.
  void RecomputeProtected() {
    protected_ = base_ext_;
    for (auto& [g, e] : journal_ext_) internal::MergeExtents(protected_, e);
    internal::MergeExtents(protected_, later_ext_);
  }
  uint64_t ProtectedLimit(const Id& obj, PageKind kind) {
    const Extent& e = protected_[obj];
    return kind == PageKind::kNode ? e.node : e.data;  // both data objects: the data extent
  }
  // Version 3: the chunks of `obj` that retained commits relocated
  // (section 19), one set per journal; `*unknown` if a journal found at
  // open changed the file, which counts as every chunk relocated. A chunk
  // in none of them is settled: every retained state has it in one slot
  // or as a hole.
  std::vector<const internal::ChunkSet*> RetainedRelocations(const Id& obj, bool* unknown) {
    std::vector<const internal::ChunkSet*> sets;
    *unknown = false;
    for (const Journal& j : journals_) {
      if (!j.own) {
        auto e = journal_ext_.find(j.gen);
        if (e != journal_ext_.end() && e->second.count(obj)) *unknown = true;
      }
      auto r = j.relocated.find(obj);
      if (r != j.relocated.end()) sets.push_back(&r->second);
    }
    return sets;
  }
  std::set<Id> Referenced() {
    std::set<Id> refs;
    for (auto& [id, e] : base_ext_) refs.insert(id);
    for (auto& [g, m] : journal_ext_)
      for (auto& [id, e] : m) refs.insert(id);
    for (auto& [id, e] : later_ext_) refs.insert(id);
    for (auto& [ino, in] : inodes_)
      if (in.rec.type == InodeType::kFile) refs.insert(in.rec.object_id);
    return refs;
  }

  os::Env& env_;
  std::string dir_;
  std::string objects_dir_;
  OpenOptions opts_;
  std::mutex mu_;
  std::unique_ptr<os::FileLock> lock_;  // one writer per volume
  Status broken_;

  SecretBytes key_;
  format::Header header_;
  format::VolumeKeys keys_;
  std::map<uint64_t, std::unique_ptr<crypto::Aead>> journal_aeads_;
  uint32_t C_ = 0;
  uint32_t F_ = 0;
  bool auth_only_ = false;
  bool read_only_ = false;
  uint64_t pow_[64] = {};

  uint64_t seq_ = 0;
  Tag tag_{};
  std::unique_ptr<os::File> sync_log_;  // the sync log, once StartSyncLog made it
  std::optional<Bytes> sync_log_head_;   // its header, as PeekSyncLog found it
  uint64_t sync_log_records_ = 0;
  // Read-only: what the sync log's records say of a file, over what it
  // stores (a writable open applies the records instead).
  struct LogOverlay {
    uint64_t size = 0;
    uint64_t low = 0;  // the lowest size the records gave it: stored bytes from here on read as zeros
    std::map<uint64_t, Bytes> chunks;
    ~LogOverlay() {
      for (auto& [k, b] : chunks) OPENSSL_cleanse(b.data(), b.size());
    }
  };
  std::map<uint64_t, LogOverlay> log_overlay_;
  uint64_t base_seq_ = 0;

  std::unordered_map<uint64_t, Inode> inodes_;
  std::unordered_map<Id, uint64_t, IdHash> obj_to_ino_;
  uint64_t next_ino_ = 2;
  bool meta_dirty_ = false;
  uint32_t version_ = format::kFormatVersion;
  // Version 2: inodes whose records changed since the last commit, and
  // committed inodes that were removed since (with their encoded sizes).
  std::set<uint64_t> changed_;
  std::map<uint64_t, size_t> removed_;
  size_t manifest_bytes_ = 0;  // encoded size of the committed manifest
  std::optional<format::ManifestState> shadow_;  // internal::VerifyDeltasInTests()

  std::unordered_map<NodeKey, CachedNode, NodeKeyHash> cache_;
  std::list<NodeKey> lru_;
  std::unordered_map<Id, std::set<std::pair<uint32_t, uint64_t>>, IdHash> cached_by_obj_;
  std::unordered_map<Id, std::set<std::pair<uint32_t, uint64_t>>, IdHash> dirty_by_obj_;

  struct ObjectFiles {
    std::unique_ptr<os::File> f[3];  // by PageKind: data, node, alternate data
    bool writable[3] = {false, false, false};
  };
  std::unordered_map<Id, ObjectFiles, IdHash> objects_;
  // Chunk ciphers per object, one map per parallel slot (an Aead object is
  // not safe for concurrent use).
  ParallelFor pool_{ParallelFor::DefaultThreads()};
  std::vector<std::unordered_map<Id, std::unique_ptr<crypto::Aead>, IdHash>> aeads_ =
      std::vector<std::unordered_map<Id, std::unique_ptr<crypto::Aead>, IdHash>>(pool_.threads());

  std::vector<Journal> journals_;
  bool need_new_journal_ = false;
  uint64_t next_gen_ = 1;
  uint64_t journal_tail_bytes_ = 0;
  std::unordered_map<PageKey, JournalLoc, PageKeyHash> overlay_;
  ExtentMap base_ext_;
  std::map<uint64_t, ExtentMap> journal_ext_;
  ExtentMap later_ext_;  // read-only opens: commits newer than the one opened
  ExtentMap protected_;

  crypto::Sha256Hasher txn_hash_;
  // Length of the checkpointed journal kept at kSpareJournalFile for the
  // next journal (0: none).
  uint64_t spare_bytes_ = 0;
  // Unreferenced object files waiting for the remover thread.
  const pid_t owner_ = ::getpid();
  bool opened_ = false;  // MarkOpened
  std::mutex remove_mu_;
  std::condition_variable remove_cv_;
  std::vector<std::string> to_remove_;
  bool remove_stop_ = false;
  std::thread remover_;
  Bytes frames_;  // PAGE frames on their way to the journal
  bool txn_pages_ = false;
  std::set<std::pair<Id, int>> txn_inplace_;
  // Version 3: chunks of this transaction that count as relocated
  // (section 19): moved, by the slot they were written into in place
  // (the one their committed state does not use, so they may be rewritten
  // there), or filled, holes given a journaled page.
  std::unordered_map<Id, std::array<internal::ChunkSet, 2>, IdHash> txn_moved_;
  std::unordered_map<Id, internal::ChunkSet, IdHash> txn_filled_;
  bool alternate_ = false;  // the version has two slots per chunk
  bool txn_created_objects_ = false;
  bool txn_created_journal_ = false;
};

// ======================================================================
// Opening

Status VolumeImpl::Init(const SecretBytes& key) {
  if (key.size() != kVolumeKeySize) return InvalidArgument("a volume key is 32 bytes");
  key_ = key;
  read_only_ = opts_.read_only;
  if (!read_only_ && env_.FileExists(os::JoinPath(dir_, format::kHeaderFile))) {
    auto lock = env_.LockFile(os::JoinPath(dir_, format::kHeaderFile));
    if (!lock.ok()) {
      if (lock.status().code() == StatusCode::kFailedPrecondition) {
        return FailedPrecondition("the volume is open for writing elsewhere");
      }
      return lock.status();
    }
    lock_ = std::move(lock).value();
  }
  auto header_bytes = env_.ReadWholeFile(os::JoinPath(dir_, format::kHeaderFile), 4096);
  if (!header_bytes.ok()) {
    if (header_bytes.status().code() == StatusCode::kNotFound) {
      return NotFound("not a Cloister volume (no " + std::string(format::kHeaderFile) + " file)");
    }
    return header_bytes.status();
  }
  ASSIGN_OR_RETURN(header_, format::ParseHeader(*header_bytes));
  ASSIGN_OR_RETURN(keys_, format::DeriveVolumeKeys(key_, header_.volume_id));
  if (!format::VerifyHeader(*header_bytes, keys_.header)) {
    return IntegrityError("the volume header does not authenticate: wrong key, or the header was modified");
  }
  C_ = header_.chunk_size;
  F_ = format::Fanout(C_);
  auth_only_ = (header_.flags & format::kFlagAuthenticatedOnly) != 0;
  for (uint32_t i = 0; i < 64; ++i) pow_[i] = format::Power(F_, i);

  version_ = header_.version;
  alternate_ = format::HasAlternateSlots(version_);
  const bool v1 = version_ == format::kFormatVersion1;

  // Base manifest (the last checkpoint).
  ASSIGN_OR_RETURN(Base base_file, ReadBase());
  ASSIGN_OR_RETURN(format::Manifest base, format::DecodeManifest(base_file.manifest, C_));
  if (base.seq != base_file.seq) return IntegrityError("the manifest's sequence number does not match");
  base_seq_ = base.seq;
  const Tag base_tag = base_file.tag;
  base_ext_ = internal::ExtentsOf(base, C_);
  // Version 2: commits are deltas, applied in order to the base state.
  std::optional<format::ManifestState> base_state, state;
  if (!v1) {
    ASSIGN_OR_RETURN(auto bs, format::ManifestState::FromManifest(base));
    base_state = std::move(bs);
    state = base_state;
  }

  // Journals, oldest first.
  ASSIGN_OR_RETURN(auto names, env_.ListDir(dir_));
  std::vector<uint64_t> gens;
  for (const auto& n : names) {
    if (auto g = format::ParseJournalName(n)) gens.push_back(*g);
  }
  std::sort(gens.begin(), gens.end());
  next_gen_ = gens.empty() ? 1 : gens.back() + 1;

  // Pass 1: find every committed state and pick the one to open.
  struct StateRef {
    uint64_t seq;
    Tag tag;
  };
  std::vector<StateRef> states{{base.seq, base_tag}};
  std::vector<std::unique_ptr<os::File>> files;
  std::vector<uint64_t> valid_ends, sizes;
  // Commits accepted into the chain, by (journal index, end offset). Each
  // must follow the previous state exactly: next seq and that state's tag.
  std::set<std::pair<size_t, uint64_t>> accepted;
  bool broken_chain = false;
  // Highest authentic commit that had to be left out of the chain. A crash
  // can only leave out the one commit it interrupted (seq = last + 1).
  uint64_t left_out_seq = 0;
  for (uint64_t g : gens) {
    ASSIGN_OR_RETURN(auto file, env_.OpenFile(os::JoinPath(dir_, format::JournalName(g)),
                                              read_only_ ? os::OpenMode::kReadOnly : os::OpenMode::kReadWrite));
    uint64_t valid_end = 0, size = 0;
    ASSIGN_OR_RETURN(crypto::Aead * jaead, JournalAead(g));
    const size_t k = files.size();
    RETURN_IF_ERROR(internal::ScanJournal(
        *file, header_.volume_id, version_, g, C_, *jaead,
        [&](internal::ScannedTxn&& t) -> Status {
          if (t.seq <= base.seq) return Status::Ok();
          if (broken_chain) {
            left_out_seq = std::max(left_out_seq, t.seq);
            return Status::Ok();
          }
          bool follows = t.seq == states.back().seq + 1 && ConstantTimeEquals(t.prev_tag, states.back().tag);
          if (follows && v1) {
            auto m = format::DecodeManifest(t.manifest, C_);
            follows = m.ok() && m->seq == t.seq;
          } else if (follows) {
            auto d = format::DecodeDelta(t.manifest, C_);
            follows = d.ok() && d->seq == t.seq && state->Apply(*d).ok();
          }
          if (!follows) {
            broken_chain = true;
            left_out_seq = std::max(left_out_seq, t.seq);
            return Status::Ok();
          }
          states.push_back({t.seq, v1 ? format::ComputeTag(keys_.tag, header_.volume_id, t.seq, t.manifest)
                                      : format::ComputeTagV2(keys_.tag, header_.volume_id, t.seq,
                                                             states.back().tag, t.manifest)});
          accepted.insert({k, t.end});
          return Status::Ok();
        },
        &valid_end, &size));
    if (valid_end < size) {
      ASSIGN_OR_RETURN(uint64_t probed,
                       internal::ProbeCommitsAfter(*file, header_.volume_id, version_, g, C_, *jaead, valid_end,
                                                   states.back().seq));
      left_out_seq = std::max(left_out_seq, probed);
    }
    files.push_back(std::move(file));
    valid_ends.push_back(valid_end);
    sizes.push_back(size);
  }

  if (left_out_seq > states.back().seq + 1 && (!opts_.expected_tag || opts_.accept_newer)) {
    // Not the trace of a crash: a commit that authenticates survives behind
    // one that does not. Choosing the last readable state would silently
    // throw committed data away, so only an expected tag may choose.
    return IntegrityError("the journal is damaged: " +
                          (left_out_seq == ~uint64_t{0} ? std::string("later commits exist")
                                                        : "commit " + std::to_string(left_out_seq) + " exists") +
                          " but the chain breaks after commit " + std::to_string(states.back().seq) +
                          "; open with the expected tag to choose a state");
  }
  size_t chosen = states.size() - 1;
  if (opts_.expected_tag) {
    bool found = false;
    for (size_t i = states.size(); i-- > 0;) {
      if (ConstantTimeEquals(states[i].tag, *opts_.expected_tag)) {
        chosen = opts_.accept_newer ? states.size() - 1 : i;
        found = true;
        break;
      }
    }
    if (!found) {
      return StaleError("the volume is at commit " + std::to_string(states.back().seq) + " (tag " +
                        TagToHex(states.back().tag).substr(0, 16) +
                        "...), not in the expected state: it was rolled back, replaced, or never "
                        "received that commit");
    }
  }
  const uint64_t chosen_seq = states[chosen].seq;
  seq_ = chosen_seq;
  tag_ = states[chosen].tag;

  // Pass 2: overlay, extents and the chosen manifest.
  Bytes chosen_manifest = chosen_seq == base.seq && v1 ? std::move(base_file.manifest) : Bytes();
  state = std::move(base_state);
  std::vector<bool> retained(gens.size(), false);
  std::vector<uint64_t> truncate_at(gens.size(), 0);
  std::vector<uint64_t> commits(gens.size(), 0);
  std::vector<uint64_t> last_end(gens.size(), 0);
  for (size_t k = 0; k < gens.size(); ++k) {
    uint64_t dummy_end = 0, dummy_size = 0;
    ASSIGN_OR_RETURN(crypto::Aead * jaead, JournalAead(gens[k]));
    RETURN_IF_ERROR(internal::ScanJournal(
        *files[k], header_.volume_id, version_, gens[k], C_, *jaead,
        [&](internal::ScannedTxn&& t) -> Status {
          if (!accepted.count({k, t.end})) return Status::Ok();
          last_end[k] = t.end;
          // The files a commit changed reach as far as it does; the others
          // reach as far as in an earlier state.
          auto extents = [&]() -> StatusOr<ExtentMap> {
            if (v1) {
              ASSIGN_OR_RETURN(auto m, format::DecodeManifest(t.manifest, C_));
              return internal::ExtentsOf(m, C_);
            }
            ASSIGN_OR_RETURN(auto d, format::DecodeDelta(t.manifest, C_));
            if (t.seq <= chosen_seq) RETURN_IF_ERROR(state->Apply(d));
            return internal::ExtentsOf(d.records, C_);
          };
          if (t.seq > chosen_seq) {
            // A newer commit than the one asked for. A writable open drops
            // it; a read-only one must not call its objects leftovers.
            if (read_only_) {
              ASSIGN_OR_RETURN(ExtentMap e, extents());
              internal::MergeExtents(later_ext_, e);
            }
            return Status::Ok();
          }
          retained[k] = true;
          truncate_at[k] = t.end;
          commits[k]++;
          for (auto& [key, at] : t.pages) overlay_[key] = JournalLoc{gens[k], at};
          ASSIGN_OR_RETURN(ExtentMap e, extents());
          internal::MergeExtents(journal_ext_[gens[k]], e);
          if (t.seq == chosen_seq && v1) chosen_manifest = std::move(t.manifest);
          return Status::Ok();
        },
        &dummy_end, &dummy_size));
  }
  // Version 2: the chosen state is the base with the deltas up to it
  // applied (each checked as it was applied).
  format::Manifest current;
  if (!v1) {
    current = state->ToManifest();
  } else {
    ASSIGN_OR_RETURN(current, format::DecodeManifest(chosen_manifest, C_));
  }
  RETURN_IF_ERROR(LoadManifest(current));
  if (!v1 && internal::VerifyDeltasInTests()) {
    ASSIGN_OR_RETURN(auto shadow, format::ManifestState::FromManifest(current));
    shadow_ = std::move(shadow);
  }
  RecomputeProtected();

  for (size_t k = 0; k < gens.size(); ++k) {
    journal_tail_bytes_ += sizes[k] - last_end[k];
    if (retained[k]) {
      journals_.push_back(Journal{gens[k], std::move(files[k]), truncate_at[k], commits[k]});
    }
  }
  if (read_only_) {
    // Keep the non-retained journals out of the picture entirely.
    return Status::Ok();
  }

  // Writable: discard everything after the chosen state, then clean up.
  // Later journals go first (durably), then the retained one is cut: a
  // crash in between leaves a consistent chain, never a gap.
  bool changed = false;
  for (size_t k = gens.size(); k-- > 0;) {  // newest first: a crash never leaves a gap
    if (!retained[k]) {
      files[k].reset();
      RETURN_IF_ERROR(env_.RemoveFile(os::JoinPath(dir_, format::JournalName(gens[k]))));
      changed = true;
    }
  }
  if (changed) RETURN_IF_ERROR(env_.SyncDir(dir_));
  for (Journal& j : journals_) {
    ASSIGN_OR_RETURN(uint64_t size, j.file->Size());
    if (size != j.size) {
      RETURN_IF_ERROR(j.file->Truncate(j.size));
      RETURN_IF_ERROR(j.file->Sync());
    }
    j.allocated = j.size;
    j.grown = false;
  }
  journal_tail_bytes_ = 0;
  env_.RemoveFile(os::JoinPath(dir_, std::string(format::kManifestFile) + ".tmp")).ok();
  env_.RemoveFile(os::JoinPath(dir_, format::kSpareJournalFile)).ok();
  RETURN_IF_ERROR(CollectGarbage(/*trim=*/true));
  // A rotation that was due when the last writer stopped is due now.
  RETURN_IF_ERROR(Rotate());
  // Objects and journals that an interrupted transaction created may exist
  // without durable names. Later commits write into existing objects
  // without creating them, so make every surviving name durable now.
  RETURN_IF_ERROR(env_.SyncDir(objects_dir_));
  RETURN_IF_ERROR(env_.SyncDir(dir_));
  return Status::Ok();
}

Status VolumeImpl::LoadManifest(const format::Manifest& m) {
  inodes_.clear();
  obj_to_ino_.clear();
  next_ino_ = m.next_ino;
  changed_.clear();
  removed_.clear();
  manifest_bytes_ = 24;
  for (const auto& rec : m.inodes) {
    Inode in;
    in.rec = rec;
    in.committed_bytes = format::EncodedRecordSize(rec);
    manifest_bytes_ += in.committed_bytes;
    if (rec.type == InodeType::kFile) {
      in.rec.root.resize(F_, Entry{});
      in.height = format::TreeHeight(format::ChunkCount(rec.size, C_), F_);
      obj_to_ino_[rec.object_id] = rec.ino;
    }
    inodes_.emplace(rec.ino, std::move(in));
  }
  for (auto& [ino, in] : inodes_) {
    if (ino != format::kRootIno) inodes_.at(in.rec.parent).children[in.rec.name] = ino;
  }
  return Status::Ok();
}

format::InodeRecord VolumeImpl::RecordOf(Inode& in) {
  constexpr Entry kZeroEntry{};
  // A file's root holds a whole block of entries, mostly unused: only the
  // used prefix is copied.
  size_t used = in.rec.root.size();
  if (in.rec.type == InodeType::kFile) {
    // Entries right of the one that leads to the last chunk are zero
    // (Truncate clears them; only chunks past the end could use them):
    // look for trailing zero entries from there.
    const uint64_t n = format::ChunkCount(in.rec.size, C_);
    const uint64_t reach = n == 0 || in.height == 0 ? 0 : (n - 1) / Pow(in.height - 1) + 1;
    used = static_cast<size_t>(std::min<uint64_t>(used, reach));
    while (used > 0 && in.rec.root[used - 1] == kZeroEntry) --used;
  }
  std::vector<Entry> root = std::move(in.rec.root);
  format::InodeRecord rec = in.rec;
  rec.root.assign(root.begin(), root.begin() + static_cast<ptrdiff_t>(used));
  in.rec.root = std::move(root);
  return rec;
}

format::Manifest VolumeImpl::BuildManifest(uint64_t seq) {
  format::Manifest m;
  m.seq = seq;
  m.next_ino = next_ino_;
  m.inodes.reserve(inodes_.size());
  for (auto& [ino, in] : inodes_) {
    if (in.linked) m.inodes.push_back(RecordOf(in));
  }
  std::sort(m.inodes.begin(), m.inodes.end(),
            [](const format::InodeRecord& a, const format::InodeRecord& b) { return a.ino < b.ino; });
  return m;
}

format::ManifestDelta VolumeImpl::BuildDelta(uint64_t seq) {
  format::ManifestDelta d;
  d.seq = seq;
  d.next_ino = next_ino_;
  for (uint64_t ino : changed_) {
    auto it = inodes_.find(ino);
    if (it == inodes_.end() || !it->second.linked) continue;
    d.records.push_back(RecordOf(it->second));
  }
  for (const auto& [ino, bytes] : removed_) d.removed.push_back(ino);
  return d;
}

StatusOr<VolumeImpl::Base> VolumeImpl::ReadBase() {
  auto mf_bytes = env_.ReadWholeFile(os::JoinPath(dir_, format::kManifestFile), format::kMaxCommitBody + 64);
  if (!mf_bytes.ok()) {
    if (mf_bytes.status().code() == StatusCode::kNotFound) {
      return IntegrityError("the manifest is missing");
    }
    return mf_bytes.status();
  }
  ASSIGN_OR_RETURN(auto mf, format::ParseManifestFile(*mf_bytes, version_));
  ASSIGN_OR_RETURN(auto manifest_aead, ManifestAead(mf.seq));
  auto plain = manifest_aead->OpenRecord(format::ManifestAad(header_.volume_id, mf.seq, version_), mf.sealed);
  if (!plain.ok()) return IntegrityError("the manifest does not authenticate");
  Base b;
  b.seq = mf.seq;
  if (version_ == format::kFormatVersion1) {
    b.manifest = std::move(*plain);
    b.tag = format::ComputeTag(keys_.tag, header_.volume_id, b.seq, b.manifest);
  } else {
    if (plain->size() < b.tag.size()) return IntegrityError("the manifest is truncated");
    std::copy(plain->begin(), plain->begin() + 32, b.tag.begin());
    b.manifest.assign(plain->begin() + 32, plain->end());
  }
  return b;
}

Status VolumeImpl::WriteBase(uint64_t seq, const Tag& tag, std::span<const uint8_t> manifest) {
  ASSIGN_OR_RETURN(auto maead, ManifestAead(seq));
  ASSIGN_OR_RETURN(Bytes file, EncodeBaseFile(*maead, header_.volume_id, version_, seq, tag, manifest));
  return env_.WriteFileAtomically(os::JoinPath(dir_, format::kManifestFile), file);
}

// ======================================================================
// Namespace

StatusOr<uint64_t> VolumeImpl::Resolve(std::string_view path) {
  ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  uint64_t cur = format::kRootIno;
  for (const auto& p : parts) {
    const Inode& d = inodes_.at(cur);
    if (d.rec.type != InodeType::kDirectory) return NotADirectory(std::string(path) + ": not a directory");
    auto it = d.children.find(p);
    if (it == d.children.end()) return NotFound(std::string(path) + ": no such file or directory");
    cur = it->second;
  }
  return cur;
}

StatusOr<std::pair<uint64_t, std::string>> VolumeImpl::ResolveParent(std::string_view path) {
  ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  if (parts.empty()) return InvalidArgument("the volume's root has no parent");
  std::string leaf = parts.back();
  parts.pop_back();
  uint64_t cur = format::kRootIno;
  for (const auto& p : parts) {
    const Inode& d = inodes_.at(cur);
    auto it = d.children.find(p);
    if (it == d.children.end()) return NotFound(std::string(path) + ": no such file or directory");
    cur = it->second;
    if (inodes_.at(cur).rec.type != InodeType::kDirectory) return NotADirectory(std::string(path) + ": not a directory");
  }
  return std::make_pair(cur, leaf);
}

Inode& VolumeImpl::NewInode(uint64_t parent, const std::string& name, InodeType type,
                            uint32_t mode) {
  Inode in;
  in.rec.ino = next_ino_++;
  in.rec.parent = parent;
  in.rec.type = type;
  in.rec.mode = mode & 07777;
  in.rec.mtime_ns = NowNs();
  in.rec.name = name;
  if (type == InodeType::kFile) {
    // A fresh random object id: object names reveal nothing about paths,
    // and a re-created file never shares keys or locations with the old one.
    if (!crypto::RandomBytes(in.rec.object_id).ok()) std::abort();
    in.rec.root.assign(F_, Entry{});
    obj_to_ino_[in.rec.object_id] = in.rec.ino;
  }
  uint64_t ino = in.rec.ino;
  inodes_.at(parent).children[name] = ino;
  inodes_.at(parent).rec.mtime_ns = in.rec.mtime_ns;
  Changed(inodes_.at(parent));
  Inode& created = inodes_.emplace(ino, std::move(in)).first->second;
  Changed(created);
  return created;
}

void VolumeImpl::Unlink(uint64_t ino) {
  Inode& in = inodes_.at(ino);
  Inode& parent = inodes_.at(in.rec.parent);
  parent.children.erase(in.rec.name);
  parent.rec.mtime_ns = NowNs();
  Changed(parent);
  changed_.erase(ino);
  if (in.committed_bytes > 0) removed_[ino] = in.committed_bytes;
  in.committed_bytes = 0;
  if (in.open_count > 0) {
    in.linked = false;
  } else {
    FreeInode(ino);
  }
}

void VolumeImpl::FreeInode(uint64_t ino) {
  Inode& in = inodes_.at(ino);
  if (in.rec.type == InodeType::kFile) {
    Id obj = in.rec.object_id;
    DropNodes(obj, [](uint32_t, uint64_t) { return true; });
    obj_to_ino_.erase(obj);
    ForgetAead(obj);
  }
  inodes_.erase(ino);
}

std::string VolumeImpl::PathOf(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return "(unknown)";
  if (!it->second.linked) return "(deleted file)";
  std::string path;
  while (ino != format::kRootIno) {
    const Inode& in = inodes_.at(ino);
    path = "/" + in.rec.name + path;
    ino = in.rec.parent;
  }
  return path.empty() ? "/" : path;
}

Status VolumeImpl::Rename(std::string_view from, std::string_view to) {
  std::lock_guard<std::mutex> l(mu_);
  RETURN_IF_ERROR(CheckWritable());
  ASSIGN_OR_RETURN(uint64_t src, Resolve(from));
  if (src == format::kRootIno) return InvalidArgument("cannot rename the volume's root");
  ASSIGN_OR_RETURN(auto pn, ResolveParent(to));
  Inode& s = inodes_.at(src);
  // Moving a directory below itself would detach it from the tree.
  for (uint64_t p = pn.first; p != 0; p = inodes_.at(p).rec.parent) {
    if (p == src) return InvalidArgument("cannot move a directory into itself");
    if (p == format::kRootIno) break;
  }
  Inode& dst_dir = inodes_.at(pn.first);
  auto existing = dst_dir.children.find(pn.second);
  if (existing != dst_dir.children.end()) {
    uint64_t victim = existing->second;
    if (victim == src) return Status::Ok();
    Inode& v = inodes_.at(victim);
    if (s.rec.type == InodeType::kDirectory) {
      if (v.rec.type != InodeType::kDirectory) return NotADirectory(std::string(to) + ": not a directory");
      if (!v.children.empty()) return DirectoryNotEmpty(std::string(to) + ": directory not empty");
    } else if (v.rec.type == InodeType::kDirectory) {
      return IsADirectory(std::string(to) + ": is a directory");
    }
    Unlink(victim);
  }
  Inode& old_parent = inodes_.at(s.rec.parent);
  old_parent.children.erase(s.rec.name);
  int64_t now = NowNs();
  old_parent.rec.mtime_ns = now;
  s.rec.parent = pn.first;
  s.rec.name = pn.second;
  inodes_.at(pn.first).children[pn.second] = src;
  inodes_.at(pn.first).rec.mtime_ns = now;
  Changed(old_parent);
  Changed(s);
  Changed(inodes_.at(pn.first));
  return Status::Ok();
}

StatusOr<std::unique_ptr<File>> VolumeImpl::OpenFile(std::string_view path, const OpenFlags& flags) {
  std::lock_guard<std::mutex> l(mu_);
  bool write = flags.write || flags.create || flags.truncate;
  if (write) RETURN_IF_ERROR(CheckWritable());
  ASSIGN_OR_RETURN(auto parts, SplitPath(path));
  if (parts.empty()) return IsADirectory("/: is a directory");
  ASSIGN_OR_RETURN(auto pn, ResolveParent(path));
  Inode& parent = inodes_.at(pn.first);
  auto it = parent.children.find(pn.second);
  uint64_t ino;
  if (it != parent.children.end()) {
    if (flags.create && flags.exclusive) return AlreadyExists(std::string(path) + ": already exists");
    ino = it->second;
    Inode& in = inodes_.at(ino);
    if (in.rec.type == InodeType::kDirectory) return IsADirectory(std::string(path) + ": is a directory");
    if (in.rec.type == InodeType::kSymlink) {
      return InvalidArgument(std::string(path) + " is a symbolic link");
    }
    if (flags.truncate && in.rec.size != 0) RETURN_IF_ERROR(Guard(TruncateInode(in, 0)));
  } else if (flags.create) {
    ino = NewInode(pn.first, pn.second, InodeType::kFile, flags.mode).rec.ino;
  } else {
    return NotFound(std::string(path) + ": no such file or directory");
  }
  inodes_.at(ino).open_count++;
  return std::unique_ptr<File>(new FileImpl(this, ino, write));
}

void VolumeImpl::FileClosed(uint64_t ino) {
  std::lock_guard<std::mutex> l(mu_);
  Inode& in = inodes_.at(ino);
  if (--in.open_count == 0 && !in.linked) FreeInode(ino);
}

// ======================================================================
// Hash tree

StatusOr<uint8_t*> VolumeImpl::GetNode(const Id& obj, uint32_t level, uint64_t index,
                                       const uint8_t* expected) {
  NodeKey key{obj, level, index};
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.data.data();
  }
  Bytes data(C_, 0);
  if (!format::IsZero(std::span<const uint8_t>(expected, format::kEntrySize))) {
    size_t got = 0;
    uint64_t pos = format::NodePosition(level, index, F_) * C_;
    RETURN_IF_ERROR(ReadPage(PageKey{obj, PageKind::kNode, pos}, data, &got));
    crypto::Digest h = format::NodeHash(obj, level, index, data);
    if (got != C_ || !ConstantTimeEquals(h, std::span<const uint8_t>(expected, 32))) {
      auto ino = obj_to_ino_.find(obj);
      return IntegrityError("file " + (ino == obj_to_ino_.end() ? "?" : PathOf(ino->second)) +
                            ": hash-tree node " + std::to_string(level) + "/" + std::to_string(index) +
                            (got != C_ ? " is missing" : " does not authenticate"));
    }
  }
  lru_.push_front(key);
  CachedNode& n = cache_[key];
  n.data = std::move(data);
  n.lru = lru_.begin();
  cached_by_obj_[obj].insert({level, index});
  return n.data.data();
}

void VolumeImpl::MarkDirty(const Id& obj, uint32_t level, uint64_t index) {
  // Called for every chunk written; a node already dirty is already listed.
  CachedNode& n = cache_.at(NodeKey{obj, level, index});
  if (n.dirty) return;
  n.dirty = true;
  dirty_by_obj_[obj].insert({level, index});
}

void VolumeImpl::DropNodes(const Id& obj, const std::function<bool(uint32_t, uint64_t)>& pred) {
  auto c = cached_by_obj_.find(obj);
  if (c == cached_by_obj_.end()) return;
  auto d = dirty_by_obj_.find(obj);
  for (auto it = c->second.begin(); it != c->second.end();) {
    if (pred(it->first, it->second)) {
      auto n = cache_.find(NodeKey{obj, it->first, it->second});
      lru_.erase(n->second.lru);
      cache_.erase(n);
      if (d != dirty_by_obj_.end()) d->second.erase(*it);
      it = c->second.erase(it);
    } else {
      ++it;
    }
  }
  if (c->second.empty()) cached_by_obj_.erase(c);
  if (d != dirty_by_obj_.end() && d->second.empty()) dirty_by_obj_.erase(d);
}

StatusOr<uint8_t*> VolumeImpl::LeafEntry(Inode& f, uint64_t chunk, bool for_write) {
  const uint32_t h = f.height;
  if (h == 0 || chunk >= Pow(h)) return InternalError("chunk outside the hash tree");
  uint8_t* entry = f.rec.root[chunk / Pow(h - 1)].data();
  for (uint32_t level = h - 1; level >= 1; --level) {
    uint64_t index = chunk / Pow(level);
    ASSIGN_OR_RETURN(uint8_t * node, GetNode(f.rec.object_id, level, index, entry));
    if (for_write) MarkDirty(f.rec.object_id, level, index);
    entry = node + ((chunk / Pow(level - 1)) % F_) * format::kEntrySize;
  }
  return entry;
}

Status VolumeImpl::FlushNodes(Inode& f) {
  auto d = dirty_by_obj_.find(f.rec.object_id);
  if (d == dirty_by_obj_.end()) return Status::Ok();
  const Id obj = f.rec.object_id;
  // Children before parents: a parent's entries are the children's hashes.
  std::set<std::pair<uint32_t, uint64_t>> dirty = std::move(d->second);
  dirty_by_obj_.erase(d);
  for (auto [level, index] : dirty) {
    CachedNode& n = cache_.at(NodeKey{obj, level, index});
    crypto::Digest h = format::NodeHash(obj, level, index, n.data);
    RETURN_IF_ERROR(WritePages(obj, PageKind::kNode, format::NodePosition(level, index, F_) * C_, n.data));
    n.dirty = false;
    uint8_t* parent_entry;
    if (level + 1 == f.height) {
      parent_entry = f.rec.root[index % F_].data();
    } else {
      auto p = cache_.find(NodeKey{obj, level + 1, index / F_});
      if (p == cache_.end()) return InternalError("dirty node without a cached parent");
      parent_entry = p->second.data.data() + (index % F_) * format::kEntrySize;
    }
    std::copy(h.begin(), h.end(), parent_entry);
  }
  Changed(f);
  return Status::Ok();
}

Status VolumeImpl::FlushAll() {
  while (!dirty_by_obj_.empty()) {
    Id obj = dirty_by_obj_.begin()->first;
    auto ino = obj_to_ino_.find(obj);
    if (ino == obj_to_ino_.end()) return InternalError("dirty nodes of an unknown object");
    RETURN_IF_ERROR(FlushNodes(inodes_.at(ino->second)));
  }
  return Status::Ok();
}

Status VolumeImpl::MaybeEvict() {
  if (cache_.size() * C_ <= opts_.cache_bytes) return Status::Ok();
  if (!dirty_by_obj_.empty()) {
    if (read_only_) return InternalError("dirty nodes in a read-only volume");
    RETURN_IF_ERROR(Guard(FlushAll()));
  }
  size_t target = opts_.cache_bytes / C_ / 2;
  auto it = lru_.end();
  while (cache_.size() > target && it != lru_.begin()) {
    --it;
    NodeKey key = *it;
    auto n = cache_.find(key);
    if (n->second.dirty) continue;
    it = lru_.erase(it);
    cache_.erase(n);
    auto c = cached_by_obj_.find(key.obj);
    c->second.erase({key.level, key.index});
    if (c->second.empty()) cached_by_obj_.erase(c);
  }
  return Status::Ok();
}

void VolumeImpl::GrowTree(Inode& f, uint64_t chunks) {
  uint32_t h2 = format::TreeHeight(chunks, F_);
  if (h2 <= f.height) return;
  const Id& obj = f.rec.object_id;
  if (f.height > 0) {
    // The old root becomes node (h, 0); new nodes above it up to the new
    // root start empty and get their first entry when flushed.
    for (uint32_t level = f.height; level < h2; ++level) {
      NodeKey key{obj, level, 0};
      DropNodes(obj, [&](uint32_t l, uint64_t i) { return l == level && i == 0; });
      Bytes data(C_, 0);
      if (level == f.height) {
        for (uint32_t k = 0; k < F_; ++k) {
          std::copy(f.rec.root[k].begin(), f.rec.root[k].end(), data.begin() + k * format::kEntrySize);
        }
      }
      lru_.push_front(key);
      CachedNode& n = cache_[key];
      n.data = std::move(data);
      n.lru = lru_.begin();
      cached_by_obj_[obj].insert({level, 0});
      MarkDirty(obj, level, 0);
    }
    std::fill(f.rec.root.begin(), f.rec.root.end(), Entry{});
  }
  f.height = h2;
  Changed(f);
}

Status VolumeImpl::TruncateInode(Inode& f, uint64_t size) {
  if (size > MaxFileSize()) {
    return InvalidArgument("file size beyond the maximum (" + std::to_string(MaxFileSize()) + " bytes)");
  }
  if (size == f.rec.size) return Status::Ok();
  f.rec.mtime_ns = NowNs();
  Changed(f);
  if (size > f.rec.size) {
    GrowTree(f, format::ChunkCount(size, C_));
    f.rec.size = size;
    return Status::Ok();
  }
  const uint64_t n2 = format::ChunkCount(size, C_);
  const Id obj = f.rec.object_id;
  // Bytes past the end inside the last chunk must read as zeros if the
  // file grows again, so the chunk is rewritten with its tail cleared.
  if (size % C_ != 0) {
    RETURN_IF_ERROR(EnsureKeyBudget(f, 1));
    Bytes chunk(C_);
    RETURN_IF_ERROR(ReadChunks(f, n2 - 1, 1, chunk.data()));
    std::fill(chunk.begin() + static_cast<ptrdiff_t>(size % C_), chunk.end(), 0);
    RETURN_IF_ERROR(WriteChunks(f, n2 - 1, 1, chunk.data(), chunk.data()));
  }
  if (n2 == 0) {
    DropNodes(obj, [](uint32_t, uint64_t) { return true; });
    std::fill(f.rec.root.begin(), f.rec.root.end(), Entry{});
    f.height = 0;
    f.rec.size = 0;
    return Status::Ok();
  }
  const uint64_t last = n2 - 1;
  const uint32_t h = f.height;
  // Clear every entry right of the path to the new last chunk.
  RETURN_IF_ERROR(LeafEntry(f, last, /*for_write=*/true).status());
  for (uint32_t level = 1; level <= h; ++level) {
    uint8_t* node = level == h ? nullptr : cache_.at(NodeKey{obj, level, last / Pow(level)}).data.data();
    uint64_t slot = (last / Pow(level - 1)) % F_;
    if (level == h) slot = last / Pow(h - 1);
    for (uint64_t k = slot + 1; k < F_; ++k) {
      if (node) {
        std::fill(node + k * format::kEntrySize, node + (k + 1) * format::kEntrySize, 0);
      } else {
        f.rec.root[k] = Entry{};
      }
    }
  }
  const uint32_t h2 = format::TreeHeight(n2, F_);
  DropNodes(obj, [&](uint32_t level, uint64_t index) {
    return level > h2 || (level < h2 && index > last / Pow(level)) || (level == h2 && level < h && index > 0);
  });
  if (h2 < h) {
    // Node (h2, 0) becomes the root.
    NodeKey key{obj, h2, 0};
    CachedNode& n = cache_.at(key);
    for (uint32_t k = 0; k < F_; ++k) {
      std::copy(n.data.begin() + k * format::kEntrySize, n.data.begin() + (k + 1) * format::kEntrySize,
                f.rec.root[k].begin());
    }
    DropNodes(obj, [&](uint32_t level, uint64_t) { return level >= h2; });
    f.height = h2;
  }
  f.rec.size = size;
  return Status::Ok();
}

// ======================================================================
// Chunks

StatusOr<crypto::Aead*> VolumeImpl::AeadFor(const Id& obj, size_t slot) {
  auto& map = aeads_[slot];
  auto it = map.find(obj);
  if (it != map.end()) return it->second.get();
  if (map.size() > 1024) map.clear();
  ASSIGN_OR_RETURN(SecretBytes k, format::DeriveObjectKey(key_, header_.volume_id, obj));
  ASSIGN_OR_RETURN(auto a, crypto::Aead::New(k));
  return (map[obj] = std::move(a)).get();
}

Status VolumeImpl::ReadChunks(Inode& f, uint64_t first, uint64_t count, uint8_t* out) {
  const Id obj = f.rec.object_id;
  std::vector<Entry> entries(count);
  for (uint64_t k = 0; k < count; ++k) {
    ASSIGN_OR_RETURN(uint8_t * e, LeafEntry(f, first + k, false));
    std::copy(e, e + format::kEntrySize, entries[k].begin());
  }
  // Read runs of stored chunks with one call each.
  uint64_t k = 0;
  while (k < count) {
    if (format::IsZero(entries[k])) {
      std::fill(out + k * C_, out + (k + 1) * C_, 0);
      ++k;
      continue;
    }
    uint64_t run = 1;
    // Version 3: the leaf names which of the two data objects holds it.
    auto kind_of = [&](uint64_t i) {
      return alternate_ && format::LeafIsAlternate(entries[i]) ? PageKind::kAlternate : PageKind::kData;
    };
    const PageKind kind = kind_of(k);
    PageKey first_key{obj, kind, (first + k) * C_};
    bool in_overlay = overlay_.count(first_key) > 0;
    if (!in_overlay) {
      while (k + run < count && !format::IsZero(entries[k + run]) && kind_of(k + run) == kind &&
             !overlay_.count(PageKey{obj, kind, (first + k + run) * C_})) {
        ++run;
      }
    }
    // Each of the pool's threads reads its part of the run from the object
    // (or the single journaled page) and authenticates and decrypts it, so
    // copying from the disk cache overlaps with the cipher. Each slot
    // records the first chunk that failed.
    os::File* object = nullptr;
    if (!in_overlay) {
      ASSIGN_OR_RETURN(object, ObjectFile(obj, kind, false));
    }
    std::vector<uint64_t> failed(pool_.threads(), run);
    std::vector<uint64_t> missing_from(pool_.threads(), run);
    Status setup;
    std::mutex setup_mu;
    pool_.Run(run, ParallelGrain(), [&](size_t b, size_t e, size_t slot) {
      auto fail_setup = [&](const Status& s) {
        std::lock_guard<std::mutex> l(setup_mu);
        setup = s;
        failed[slot] = b;
      };
      size_t got = 0;
      Status rs = in_overlay ? ReadPage(first_key, std::span<uint8_t>(out + k * C_, C_), &got)
                  : object == nullptr
                      ? Status::Ok()
                      : object->ReadAt((first + k + b) * C_, std::span<uint8_t>(out + (k + b) * C_, (e - b) * C_), &got);
      if (!rs.ok()) return fail_setup(rs);
      const uint64_t have = b + got / C_;  // chunks [b, have) are complete
      auto aead = AeadFor(obj, slot);
      if (!aead.ok()) return fail_setup(aead.status());
      for (size_t r = b; r < e; ++r) {
        if (r >= have) {
          failed[slot] = missing_from[slot] = r;
          return;
        }
        uint8_t* p = out + (k + r) * C_;
        crypto::Nonce nonce;
        crypto::AeadTag tag;
        uint8_t aad[format::kChunkAadSize];
        format::ChunkAad(header_.volume_id, obj, first + k + r, aad);
        bool ok = format::ParseLeaf(entries[k + r], nonce, tag, version_) &&
                  (auth_only_ ? (*aead)->Verify(aad, std::span<const uint8_t>(p, C_), nonce, tag)
                              : (*aead)->Open(aad, nonce, tag, std::span<const uint8_t>(p, C_),
                                              std::span<uint8_t>(p, C_)))
                      .ok();
        if (!ok) {
          failed[slot] = r;
          return;
        }
      }
    });
    uint64_t bad = *std::min_element(failed.begin(), failed.end());
    if (bad < run) {
      std::fill(out, out + count * C_, 0);  // never hand out unauthenticated bytes
      RETURN_IF_ERROR(setup);
      bool missing = std::find(missing_from.begin(), missing_from.end(), bad) != missing_from.end();
      return IntegrityError("file " + PathOf(f.rec.ino) + ": chunk " + std::to_string(first + k + bad) +
                            (missing ? " is missing from the disk" : " does not authenticate"));
    }
    k += run;
  }
  return Status::Ok();
}

Status VolumeImpl::WriteChunks(Inode& f, uint64_t first, uint64_t count, const uint8_t* plain,
                               uint8_t* buf) {
  const Id obj = f.rec.object_id;
  // Where each chunk goes (section 13.1; version 3, section 19): a chunk
  // that every retained state has in one slot (or as a hole) is written
  // once, in place, into the other slot, instead of into the journal and
  // later into its object. Only for writes large enough that the object
  // sync this adds to the commit costs less than writing twice.
  std::vector<PageKind> kinds(count, PageKind::kData);
  std::vector<uint8_t> in_place(count, 0);
  if (alternate_) {
    const bool relocate = count * C_ >= opts_.relocate_min_bytes;
    auto& moved = txn_moved_[obj];
    internal::ChunkSet& filled = txn_filled_[obj];
    bool unknown = false;
    const auto retained = RetainedRelocations(obj, &unknown);
    auto settled = [&](uint64_t c) {
      if (unknown) return false;
      for (const internal::ChunkSet* set : retained) {
        if (set->Contains(c)) return false;
      }
      return true;
    };
    for (uint64_t k = 0; k < count; ++k) {
      const uint64_t c = first + k;
      ASSIGN_OR_RETURN(uint8_t * e, LeafEntry(f, c, false));
      Entry cur;
      std::copy(e, e + format::kEntrySize, cur.begin());
      const bool hole = format::IsZero(cur);
      const PageKind slot = !hole && format::LeafIsAlternate(cur) ? PageKind::kAlternate : PageKind::kData;
      const PageKind other = slot == PageKind::kData ? PageKind::kAlternate : PageKind::kData;
      const size_t s_idx = slot == PageKind::kData ? 0 : 1;
      if (!hole && moved[s_idx].Contains(c)) {
        kinds[k] = slot;  // moved into this slot earlier in this transaction: rewrite it there
        in_place[k] = 1;
      } else if (relocate && !hole && !moved[1 - s_idx].Contains(c) && !filled.Contains(c) &&
                 settled(c) && !overlay_.count(PageKey{obj, other, c * C_})) {
        kinds[k] = other;
        in_place[k] = 1;
        moved[1 - s_idx].Insert(c);
      } else {
        kinds[k] = slot;
        // A hole filled through the journal takes slot 0, perhaps from
        // states that had the chunk in slot 1: that counts as relocating.
        if (hole && (c * C_ < ProtectedLimit(obj, PageKind::kData) ||
                     overlay_.count(PageKey{obj, PageKind::kData, c * C_}))) {
          filled.Insert(c);
        }
      }
    }
  }
  // Encrypt across the pool's threads, then record the leaves in order.
  std::vector<Entry> leaves(count);
  std::vector<Status> errors(pool_.threads());
  pool_.Run(count, ParallelGrain(), [&](size_t b, size_t e, size_t slot) {
    auto aead = AeadFor(obj, slot);
    if (!aead.ok()) {
      errors[slot] = aead.status();
      return;
    }
    for (size_t k = b; k < e; ++k) {
      const uint8_t* in = plain + k * C_;
      uint8_t* p = buf + k * C_;
      crypto::Nonce nonce;
      crypto::AeadTag tag;
      uint8_t aad[format::kChunkAadSize];
      format::ChunkAad(header_.volume_id, obj, first + k, aad);
      if (auth_only_ && in != p) std::memcpy(p, in, C_);
      Status s = auth_only_ ? (*aead)->Authenticate(aad, std::span<const uint8_t>(p, C_), nonce, tag)
                            : (*aead)->Seal(aad, std::span<const uint8_t>(in, C_), std::span<uint8_t>(p, C_),
                                            nonce, tag);
      if (!s.ok()) {
        errors[slot] = s;
        return;
      }
      leaves[k] = format::MakeLeaf(nonce, tag, kinds[k] == PageKind::kAlternate);
    }
  });
  for (const Status& s : errors) RETURN_IF_ERROR(s);
  for (uint64_t k = 0; k < count; ++k) {
    ASSIGN_OR_RETURN(uint8_t * e, LeafEntry(f, first + k, true));
    std::copy(leaves[k].begin(), leaves[k].end(), e);
  }
  f.rec.encryptions += count;
  Changed(f);
  // One write call per run of chunks going the same way (parallel writes
  // into one file only contend for its lock).
  uint64_t k = 0;
  while (k < count) {
    uint64_t run = 1;
    while (k + run < count && kinds[k + run] == kinds[k] && in_place[k + run] == in_place[k]) ++run;
    RETURN_IF_ERROR(WritePages(obj, kinds[k], (first + k) * C_,
                               std::span<const uint8_t>(buf + k * C_, run * C_), in_place[k] != 0));
    k += run;
  }
  return Status::Ok();
}

Status VolumeImpl::Rekey(Inode& f) {
  // Re-encrypt the file under a new object (and so a new key) written to
  // fresh locations; the old object stays until no retained commit needs it.
  Inode t;
  t.rec = f.rec;
  if (!crypto::RandomBytes(t.rec.object_id).ok()) return InternalError("random failed");
  t.rec.root.assign(F_, Entry{});
  t.rec.encryptions = 0;
  t.rec.size = 0;
  t.height = 0;
  const uint64_t chunks = format::ChunkCount(f.rec.size, C_);
  GrowTree(t, chunks);
  t.rec.size = f.rec.size;
  obj_to_ino_[t.rec.object_id] = f.rec.ino;  // so a flush can find it
  Bytes buf(kBatchChunks * C_);
  for (uint64_t c = 0; c < chunks; c += kBatchChunks) {
    uint64_t n = std::min<uint64_t>(kBatchChunks, chunks - c);
    RETURN_IF_ERROR(ReadChunks(f, c, n, buf.data()));
    RETURN_IF_ERROR(WriteChunks(t, c, n, buf.data(), buf.data()));
  }
  auto d = dirty_by_obj_.find(t.rec.object_id);
  if (d != dirty_by_obj_.end()) RETURN_IF_ERROR(FlushNodes(t));
  obj_to_ino_.erase(f.rec.object_id);
  DropNodes(f.rec.object_id, [](uint32_t, uint64_t) { return true; });
  ForgetAead(f.rec.object_id);
  f.rec.object_id = t.rec.object_id;
  f.rec.root = t.rec.root;
  f.rec.encryptions = t.rec.encryptions;
  f.height = t.height;
  Changed(f);
  return Status::Ok();
}

Status VolumeImpl::WriteRange(Inode& f, uint64_t off, std::span<const uint8_t> data) {
  if (data.empty()) return Status::Ok();
  if (off > MaxFileSize() || data.size() > MaxFileSize() - off) {
    return InvalidArgument("write beyond the maximum file size (" + std::to_string(MaxFileSize()) + " bytes)");
  }
  const uint64_t end = off + data.size();
  const uint64_t first = off / C_;
  const uint64_t last = (end - 1) / C_;
  RETURN_IF_ERROR(EnsureKeyBudget(f, last - first + 1));
  const uint64_t old_chunks = format::ChunkCount(f.rec.size, C_);
  GrowTree(f, std::max(old_chunks, last + 1));
  Bytes buf;
  for (uint64_t c = first; c <= last; c += kBatchChunks) {
    uint64_t n = std::min<uint64_t>(kBatchChunks, last + 1 - c);
    if (buf.size() < n * C_) buf.resize(n * C_);
    uint64_t lo = c * C_, hi = (c + n) * C_;
    if (off <= lo && end >= hi) {
      // Whole chunks: encrypt straight from the caller's data.
      RETURN_IF_ERROR(WriteChunks(f, c, n, data.data() + (lo - off), buf.data()));
      continue;
    }
    // Partial chunks at the edges keep their other bytes: read them first.
    if (off > lo && c < old_chunks) RETURN_IF_ERROR(ReadChunks(f, c, 1, buf.data()));
    else if (off > lo) std::fill(buf.begin(), buf.begin() + C_, 0);
    if (end < hi && (n > 1 || off <= lo)) {
      uint64_t lc = c + n - 1;
      if (lc < old_chunks) RETURN_IF_ERROR(ReadChunks(f, lc, 1, buf.data() + (n - 1) * C_));
      else std::fill(buf.begin() + static_cast<ptrdiff_t>((n - 1) * C_), buf.begin() + static_cast<ptrdiff_t>(n * C_), 0);
    }
    uint64_t copy_from = std::max(off, lo), copy_to = std::min(end, hi);
    std::copy(data.begin() + static_cast<ptrdiff_t>(copy_from - off),
              data.begin() + static_cast<ptrdiff_t>(copy_to - off),
              buf.begin() + static_cast<ptrdiff_t>(copy_from - lo));
    RETURN_IF_ERROR(WriteChunks(f, c, n, buf.data(), buf.data()));
  }
  f.rec.size = std::max(f.rec.size, end);
  f.rec.mtime_ns = NowNs();
  Changed(f);
  return Status::Ok();
}

StatusOr<size_t> VolumeImpl::FileRead(uint64_t ino, uint64_t off, std::span<uint8_t> buf) {
  std::lock_guard<std::mutex> l(mu_);
  RETURN_IF_ERROR(MaybeEvict());
  Inode& f = inodes_.at(ino);
  auto ov = log_overlay_.find(ino);
  if (ov == log_overlay_.end()) return ReadStored(f, off, buf, f.rec.size);
  // Read-only, with records of the sync log for this file: what is stored
  // up to the lowest size the records gave it, zeros after, the records'
  // chunks over both.
  const LogOverlay& o = ov->second;
  if (off >= o.size || buf.empty()) return size_t{0};
  const uint64_t n = std::min<uint64_t>(buf.size(), o.size - off);
  std::fill(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n), uint8_t{0});
  const uint64_t stored = std::min(f.rec.size, o.low);
  if (off < stored) {
    RETURN_IF_ERROR(ReadStored(f, off, buf.first(static_cast<size_t>(std::min(n, stored - off))), stored).status());
  }
  for (auto it = o.chunks.lower_bound(off / C_); it != o.chunks.end() && it->first * C_ < off + n; ++it) {
    const uint64_t lo = std::max(off, it->first * C_);
    const uint64_t hi = std::min(off + n, it->first * C_ + it->second.size());
    if (lo < hi) {
      std::copy(it->second.begin() + static_cast<ptrdiff_t>(lo - it->first * C_),
                it->second.begin() + static_cast<ptrdiff_t>(hi - it->first * C_),
                buf.begin() + static_cast<ptrdiff_t>(lo - off));
    }
  }
  return static_cast<size_t>(n);
}

StatusOr<size_t> VolumeImpl::ReadStored(Inode& f, uint64_t off, std::span<uint8_t> buf, uint64_t size) {
  if (off >= size || buf.empty()) return size_t{0};
  const uint64_t n = std::min<uint64_t>(buf.size(), size - off);
  const uint64_t end = off + n;
  Bytes tmp;
  for (uint64_t c = off / C_; c * C_ < end; c += kBatchChunks) {
    uint64_t count = std::min<uint64_t>(kBatchChunks, (end - 1) / C_ + 1 - c);
    uint64_t lo = c * C_;
    uint64_t from = std::max(off, lo), to = std::min(end, lo + count * C_);
    if (from == lo && to == lo + count * C_) {
      // Whole chunks: decrypt straight into the caller's buffer.
      RETURN_IF_ERROR(ReadChunks(f, c, count, buf.data() + (lo - off)));
    } else {
      tmp.resize(count * C_);
      RETURN_IF_ERROR(ReadChunks(f, c, count, tmp.data()));
      std::copy(tmp.begin() + static_cast<ptrdiff_t>(from - lo), tmp.begin() + static_cast<ptrdiff_t>(to - lo),
                buf.begin() + static_cast<ptrdiff_t>(from - off));
    }
  }
  return static_cast<size_t>(n);
}

Status VolumeImpl::FileWrite(uint64_t ino, uint64_t off, std::span<const uint8_t> data) {
  std::lock_guard<std::mutex> l(mu_);
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(MaybeEvict());
  return Guard(WriteRange(inodes_.at(ino), off, data));
}

Status VolumeImpl::FileTruncate(uint64_t ino, uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(MaybeEvict());
  return Guard(TruncateInode(inodes_.at(ino), size));
}

FileImpl::~FileImpl() { v_->FileClosed(ino_); }
StatusOr<size_t> FileImpl::ReadAt(uint64_t offset, std::span<uint8_t> buf) {
  return v_->FileRead(ino_, offset, buf);
}
Status FileImpl::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (!writable_) return PermissionDenied("file not opened for writing");
  return v_->FileWrite(ino_, offset, data);
}
Status FileImpl::Truncate(uint64_t size) {
  if (!writable_) return PermissionDenied("file not opened for writing");
  return v_->FileTruncate(ino_, size);
}
StatusOr<Stat> FileImpl::GetStat() { return v_->FileStat(ino_); }

// ======================================================================
// Pages, objects and the journal

StatusOr<os::File*> VolumeImpl::ObjectFile(const Id& obj, PageKind kind, bool for_write) {
  int k = static_cast<int>(kind);
  auto it = objects_.find(obj);
  if (it != objects_.end() && it->second.f[k] && (!for_write || it->second.writable[k])) {
    return it->second.f[k].get();
  }
  if (objects_.size() > 256) objects_.clear();  // bound open descriptors
  std::string path = os::JoinPath(objects_dir_, internal::ObjectName(obj, kind));
  ObjectFiles& of = objects_[obj];
  if (for_write) {
    auto f = env_.OpenFile(path, os::OpenMode::kReadWrite);
    if (!f.ok() && f.status().code() == StatusCode::kNotFound) {
      f = env_.OpenFile(path, os::OpenMode::kCreate);
      txn_created_objects_ = true;
    }
    if (!f.ok()) return f.status();
    of.f[k] = std::move(f).value();
    of.writable[k] = true;
  } else {
    auto f = env_.OpenFile(path, read_only_ ? os::OpenMode::kReadOnly : os::OpenMode::kReadWrite);
    if (!f.ok()) {
      if (f.status().code() == StatusCode::kNotFound) return static_cast<os::File*>(nullptr);
      return f.status();
    }
    of.f[k] = std::move(f).value();
    of.writable[k] = !read_only_;
  }
  return of.f[k].get();
}

Status VolumeImpl::ReadPage(const PageKey& key, std::span<uint8_t> out, size_t* got) {
  auto ov = overlay_.find(key);
  if (ov != overlay_.end()) {
    if (out.size() != C_) return InternalError("overlay read spans pages");
    for (Journal& j : journals_) {
      if (j.gen == ov->second.gen) return j.file->ReadAt(ov->second.offset, out, got);
    }
    return InternalError("overlay refers to a missing journal");
  }
  ASSIGN_OR_RETURN(os::File * file, ObjectFile(key.obj, key.kind, false));
  if (file == nullptr) {
    *got = 0;
    return Status::Ok();
  }
  return file->ReadAt(key.offset, out, got);
}

Status VolumeImpl::WritePages(const Id& obj, PageKind kind, uint64_t offset,
                              std::span<const uint8_t> pages, bool in_place) {
  const uint64_t limit = ProtectedLimit(obj, kind);
  uint64_t k = 0;
  const uint64_t count = pages.size() / C_;
  while (k < count) {
    uint64_t off = offset + k * C_;
    PageKey key{obj, kind, off};
    if (in_place || (off >= limit && !overlay_.count(key))) {
      // Fresh location: no retained commit refers to it; write in place.
      uint64_t run = in_place ? count - k : 1;
      while (k + run < count && !overlay_.count(PageKey{obj, kind, off + run * C_})) ++run;
      ASSIGN_OR_RETURN(os::File * file, ObjectFile(obj, kind, true));
      RETURN_IF_ERROR(file->WriteAt(off, pages.subspan(k * C_, run * C_)));
      txn_inplace_.insert({obj, static_cast<int>(kind)});
      k += run;
    } else {
      // A run of pages for the journal: their frames in one write.
      uint64_t run = 1;
      while (k + run < count) {
        const uint64_t o = off + run * C_;
        if (o >= limit && !overlay_.count(PageKey{obj, kind, o})) break;
        ++run;
      }
      frames_.clear();
      frames_.reserve(run * format::PageFrameSize(C_));
      for (uint64_t i = 0; i < run; ++i) {
        format::AppendPageFrame(frames_, obj, kind, off + i * C_, pages.subspan((k + i) * C_, C_));
      }
      uint64_t at = 0;
      RETURN_IF_ERROR(Append(frames_, &at));
      txn_hash_.Update(frames_);
      txn_pages_ = true;
      Journal& j = journals_.back();
      for (uint64_t i = 0; i < run; ++i) {
        const uint64_t page_at = at + i * format::PageFrameSize(C_) + format::kFrameHeaderSize + format::kIdSize + 9;
        const PageKey page{obj, kind, off + i * C_};
        overlay_[page] = JournalLoc{j.gen, page_at};
        if (j.own) j.pages[page] = page_at;
      }
      k += run;
    }
  }
  return Status::Ok();
}

Status VolumeImpl::EnsureJournal() {
  if (!journals_.empty() && !need_new_journal_) return Status::Ok();
  uint64_t gen = next_gen_++;
  const std::string path = os::JoinPath(dir_, format::JournalName(gen));
  // A checkpointed journal kept as the spare (section 13.3) becomes the
  // new one: its blocks are allocated and its size is durable, so commits
  // overwrite them and need only fdatasync. What it held reads as a tail
  // that no commit of this generation can authenticate (section 12.4).
  const uint64_t reused = spare_bytes_;
  spare_bytes_ = 0;
  std::unique_ptr<os::File> file;
  if (reused != 0) {
    RETURN_IF_ERROR(env_.Rename(os::JoinPath(dir_, format::kSpareJournalFile), path));
    ASSIGN_OR_RETURN(file, env_.OpenFile(path, os::OpenMode::kReadWrite));
  } else {
    ASSIGN_OR_RETURN(file, env_.OpenFile(path, os::OpenMode::kCreateNew));
  }
  journals_.push_back(Journal{gen, std::move(file), 0, 0});
  journals_.back().own = true;
  journals_.back().allocated = reused;
  journals_.back().grown = reused == 0;
  need_new_journal_ = false;
  txn_created_journal_ = true;
  return Status::Ok();
}

Status VolumeImpl::Append(std::span<const uint8_t> frame, uint64_t* at) {
  RETURN_IF_ERROR(EnsureJournal());
  Journal& j = journals_.back();
  RETURN_IF_ERROR(j.file->WriteAt(j.size, frame));
  *at = j.size;
  j.size += frame.size();
  if (j.size > j.allocated) {
    // Zeros ahead of the end: the next commits overwrite allocated blocks
    // and their sync needs no metadata update. Zeros are never a frame
    // (section 12.4), so a crash leaves a tail that reads as the end.
    const uint64_t step = opts_.journal_preallocate_bytes;
    uint64_t target = step == 0 ? j.size : (j.size + step - 1) / step * step;
    if (target > j.size) {
      Bytes zeros(static_cast<size_t>(target - j.size), 0);
      RETURN_IF_ERROR(j.file->WriteAt(j.size, zeros));
    }
    j.allocated = target;
    j.grown = true;
  }
  return Status::Ok();
}

StatusOr<Tag> VolumeImpl::Commit() {
  std::lock_guard<std::mutex> l(mu_);
  RETURN_IF_ERROR(CheckWritable());
  if (!Dirty()) return tag_;
  bool too_large = false;
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(FlushAll());
    // 1. Everything the commit refers to must be durable before the commit
    //    frame is: in-place pages, newly created objects. fdatasync
    //    covers what reading them back needs (their size, their blocks);
    //    the modification time it leaves out would cost a metadata write.
    for (const auto& [obj, kind] : txn_inplace_) {
      ASSIGN_OR_RETURN(os::File * file, ObjectFile(obj, static_cast<PageKind>(kind), true));
      RETURN_IF_ERROR(file->DataSync());
    }
    if (txn_created_objects_) RETURN_IF_ERROR(env_.SyncDir(objects_dir_));
    // 2. The commit frame: manifest and the digest of this transaction's
    //    page frames, sealed under the metadata key.
    RETURN_IF_ERROR(EnsureJournal());
    const uint64_t seq = seq_ + 1;
    constexpr size_t kCommitOverhead = 8 + 64 + crypto::kAeadNonceSize + crypto::kAeadTagSize;
    // Version 1 commits the whole manifest, version 2 what changed (the
    // whole manifest must still fit in a base manifest).
    format::ManifestDelta delta;
    ExtentMap ext;
    size_t total = manifest_bytes_;
    Bytes manifest;
    if (version_ == format::kFormatVersion1) {
      format::Manifest m = BuildManifest(seq);
      manifest = format::EncodeManifest(m);
      total = manifest.size();
      ext = internal::ExtentsOf(m, C_);
    } else {
      delta = BuildDelta(seq);
      for (const auto& rec : delta.records) {
        total += format::EncodedRecordSize(rec);
        total -= inodes_.at(rec.ino).committed_bytes;
      }
      for (const auto& [ino, bytes] : removed_) total -= bytes;
      manifest = format::EncodeDelta(delta);
      ext = internal::ExtentsOf(delta.records, C_);
      if (shadow_) {
        Status applied = shadow_->Apply(delta);
        format::Manifest want = BuildManifest(seq);
        if (!applied.ok() || format::EncodeManifest(shadow_->ToManifest()) != format::EncodeManifest(want) ||
            shadow_->encoded_size() != total) {
          too_large = true;  // keep the volume usable: nothing was written
          return InternalError("self-check: commit " + std::to_string(seq) +
                               "'s delta does not match the volume's state (" + applied.ToString() + ")");
        }
      }
    }
    if (std::max(manifest.size(), total) + kCommitOverhead > format::kMaxCommitBody) {
      too_large = true;  // nothing of the commit was written: the volume stays usable
      return ResourceExhausted("the volume's metadata exceeds " +
                               std::to_string(format::kMaxCommitBody >> 20) + " MiB (too many files)");
    }
    crypto::Digest digest = txn_hash_.Finish();
    Bytes plain;
    plain.reserve(64 + manifest.size());
    PutBytes(plain, digest);
    PutBytes(plain, tag_);  // chains the commit to the state it follows
    PutBytes(plain, manifest);
    Journal& j = journals_.back();
    ASSIGN_OR_RETURN(crypto::Aead * jaead, JournalAead(j.gen));
    ASSIGN_OR_RETURN(Bytes sealed,
                     jaead->SealRecord(format::CommitAad(header_.volume_id, j.gen, seq, version_), plain));
    Bytes frame = format::EncodeCommitFrame(seq, sealed);
    uint64_t at = 0;
    RETURN_IF_ERROR(Append(frame, &at));
    RETURN_IF_ERROR(j.grown ? j.file->Sync() : j.file->DataSync());
    j.grown = false;
    if (txn_created_journal_) RETURN_IF_ERROR(env_.SyncDir(dir_));
    // 3. Durable: this is now the volume's state.
    seq_ = seq;
    if (version_ == format::kFormatVersion1) {
      tag_ = format::ComputeTag(keys_.tag, header_.volume_id, seq, manifest);
    } else {
      tag_ = format::ComputeTagV2(keys_.tag, header_.volume_id, seq, tag_, manifest);
      for (const auto& rec : delta.records) inodes_.at(rec.ino).committed_bytes = format::EncodedRecordSize(rec);
    }
    manifest_bytes_ = total;
    changed_.clear();
    removed_.clear();
    internal::MergeExtents(journal_ext_[j.gen], ext);
    internal::MergeExtents(protected_, ext);
    auto record = [&](const Id& obj, const internal::ChunkSet& set) {
      if (set.empty()) return;
      internal::ChunkSet& into = j.relocated[obj];
      for (const auto& [b, e] : set.ranges()) j.relocated_chunks += into.Insert(b, e);
    };
    for (const auto& [obj, sets] : txn_moved_) {
      for (const auto& set : sets) record(obj, set);
    }
    for (const auto& [obj, set] : txn_filled_) record(obj, set);
    txn_moved_.clear();
    txn_filled_.clear();
    txn_pages_ = false;
    txn_inplace_.clear();
    txn_created_objects_ = false;
    txn_created_journal_ = false;
    meta_dirty_ = false;
    j.commits++;
    return Status::Ok();
  }();
  if (!s.ok()) return too_large ? s : Guard(s);
  // The commit is durable; a failure from here on must not hide its tag.
  Status cp = Rotate();
  if (!cp.ok()) Guard(cp).ok();
  return tag_;
}

Status VolumeImpl::Rotate() {
  // Once the newest journal is full the next commit starts a new one; at
  // most two journals are kept, the oldest being applied when a third would
  // begin. The newest commit always stays in a journal.
  if (journals_.empty()) return Status::Ok();
  Journal& j = journals_.back();
  // Version 3: also once its commits relocated enough chunks, so that the
  // journal is checkpointed soon and those chunks can move again.
  if (j.size >= opts_.journal_rotate_bytes || j.commits >= format::kMaxCommitsPerJournal ||
      j.relocated_chunks * C_ >= opts_.journal_rotate_relocated_bytes) {
    need_new_journal_ = true;
    // The state now is the journal's last one (no commit follows in it).
    if (j.own && !j.end && version_ != format::kFormatVersion1 && !Dirty()) {
      format::Manifest m = BuildManifest(seq_);
      j.end = JournalEnd{seq_, tag_, format::EncodeManifest(m), internal::ExtentsOf(m, C_)};
    }
  }
  while (journals_.size() > 2 || (need_new_journal_ && journals_.size() == 2)) {
    RETURN_IF_ERROR(Checkpoint());
  }
  return Status::Ok();
}

Status VolumeImpl::Checkpoint() {
  // Applies the oldest journal: its pages are copied into the objects, its
  // last state becomes the base manifest, and the file is removed. The
  // newer journal (holding at least the latest commit) stays, so the state
  // before the latest commit remains reachable.
  Journal& j = journals_.front();
  Bytes last_manifest;
  uint64_t last_seq = 0;
  std::set<std::pair<Id, int>> touched;
  uint64_t valid_end = 0, size = 0;
  // Version 2: the journal's deltas are applied to the base state, and the
  // tags chained from the base's; or, for a journal this writer filled, its
  // pages and last state are known without reading it back.
  const bool v1 = version_ == format::kFormatVersion1;
  const bool known = !v1 && j.own && j.end.has_value();
  std::optional<format::ManifestState> state;
  Tag last_tag{};
  std::unordered_map<PageKey, uint64_t, PageKeyHash> scanned;
  const auto& newest = known ? j.pages : scanned;
  if (known) {
    last_seq = j.end->seq;
    last_tag = j.end->tag;
  } else if (!v1) {
    ASSIGN_OR_RETURN(Base b, ReadBase());
    ASSIGN_OR_RETURN(format::Manifest m, format::DecodeManifest(b.manifest, C_));
    if (b.seq != base_seq_ || m.seq != b.seq) return IntegrityError("the base manifest changed under the writer");
    ASSIGN_OR_RETURN(auto st, format::ManifestState::FromManifest(std::move(m)));
    state = std::move(st);
    last_tag = b.tag;
  }
  // Only the newest copy of each page is copied: what copying every one in
  // journal order would leave (a database rewrites its log page at every
  // commit, so most copies are superseded).
  if (!known) {
    ASSIGN_OR_RETURN(crypto::Aead * jaead, JournalAead(j.gen));
    RETURN_IF_ERROR(internal::ScanJournal(
        *j.file, header_.volume_id, version_, j.gen, C_, *jaead,
        [&](internal::ScannedTxn&& t) -> Status {
          if (t.seq <= base_seq_) return Status::Ok();
          if (!v1) {
            if (!ConstantTimeEquals(t.prev_tag, last_tag)) {
              return IntegrityError("the journal's commits do not follow the base manifest");
            }
            ASSIGN_OR_RETURN(auto d, format::DecodeDelta(t.manifest, C_));
            RETURN_IF_ERROR(state->Apply(d));
            last_tag = format::ComputeTagV2(keys_.tag, header_.volume_id, t.seq, last_tag, t.manifest);
          }
          for (auto& [key, at] : t.pages) scanned[key] = at;
          last_seq = t.seq;
          last_manifest = std::move(t.manifest);
          return Status::Ok();
        },
        &valid_end, &size));
  }
  std::vector<std::pair<PageKey, uint64_t>> copies(newest.begin(), newest.end());
  std::sort(copies.begin(), copies.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.obj, a.first.kind, a.first.offset) < std::tie(b.first.obj, b.first.kind, b.first.offset);
  });
  RETURN_IF_ERROR(CopyPages(*j.file, copies));
  for (const auto& [key, at] : copies) touched.insert({key.obj, static_cast<int>(key.kind)});
  for (const auto& [obj, kind] : touched) {
    ASSIGN_OR_RETURN(os::File * file, ObjectFile(obj, static_cast<PageKind>(kind), true));
    RETURN_IF_ERROR(file->DataSync());
  }
  if (txn_created_objects_) RETURN_IF_ERROR(env_.SyncDir(objects_dir_));
  ExtentMap new_base_ext;
  if (last_seq > base_seq_) {
    if (v1) {
      RETURN_IF_ERROR(WriteBase(last_seq, last_tag, last_manifest));
    } else if (known) {
      RETURN_IF_ERROR(WriteBase(last_seq, last_tag, j.end->manifest));
      new_base_ext = j.end->extents;
    } else {
      const format::Manifest new_base = state->ToManifest();
      RETURN_IF_ERROR(WriteBase(last_seq, last_tag, format::EncodeManifest(new_base)));
      new_base_ext = internal::ExtentsOf(new_base, C_);
    }
    base_seq_ = last_seq;
  }
  const uint64_t gen = j.gen;
  const uint64_t file_bytes = std::max(j.size, j.allocated);
  base_ext_ = std::move(journal_ext_[gen]);
  // Version 2: the journal's extents cover only the files its commits
  // changed; the new base state's other files reach as far as before.
  if (!v1) internal::MergeExtents(base_ext_, new_base_ext);
  journal_ext_.erase(gen);
  for (auto it = overlay_.begin(); it != overlay_.end();) {
    it = it->second.gen == gen ? overlay_.erase(it) : std::next(it);
  }
  journals_.erase(journals_.begin());
  journal_aeads_.erase(gen);
  const std::string path = os::JoinPath(dir_, format::JournalName(gen));
  if (spare_bytes_ == 0 && opts_.journal_preallocate_bytes != 0 && file_bytes != 0 && !auth_only_) {
    // Kept for the next journal instead of removed: the file system then
    // neither frees its blocks now nor allocates new ones for the next.
    // Not in a volume that stores contents in the clear, where a program's
    // data left in the old frames could be made to look like commits.
    RETURN_IF_ERROR(env_.Rename(path, os::JoinPath(dir_, format::kSpareJournalFile)));
    spare_bytes_ = file_bytes;
  } else {
    RETURN_IF_ERROR(env_.RemoveFile(path));
  }
  RETURN_IF_ERROR(env_.SyncDir(dir_));
  RecomputeProtected();
  return CollectGarbage(/*trim=*/false);
}

Status VolumeImpl::CopyPages(os::File& journal, const std::vector<std::pair<PageKey, uint64_t>>& copies) {
  // Pages that follow each other in an object go in one write, and pages
  // whose frames follow each other in the journal (what a sequential writer
  // leaves) come in one read: a checkpoint of a full journal is then a few
  // hundred system calls instead of two per page.
  const uint64_t frame = format::PageFrameSize(C_);
  Bytes out(kBatchChunks * C_);
  Bytes in(kBatchChunks * frame);
  size_t i = 0;
  while (i < copies.size()) {
    const PageKey& first = copies[i].first;
    size_t n = 1;
    while (i + n < copies.size() && n < kBatchChunks) {
      const PageKey& k = copies[i + n].first;
      if (k.obj != first.obj || k.kind != first.kind || k.offset != first.offset + n * C_) break;
      ++n;
    }
    for (size_t a = 0; a < n;) {
      size_t m = 1;
      const uint64_t at = copies[i + a].second;
      while (a + m < n && copies[i + a + m].second == at + m * frame) ++m;
      const size_t len = static_cast<size_t>((m - 1) * frame + C_);
      size_t got = 0;
      RETURN_IF_ERROR(journal.ReadAt(at, std::span<uint8_t>(in.data(), len), &got));
      if (got != len) return IoError("journal shrank during a checkpoint");
      for (size_t b = 0; b < m; ++b) std::memcpy(out.data() + (a + b) * C_, in.data() + b * frame, C_);
      a += m;
    }
    ASSIGN_OR_RETURN(os::File * file, ObjectFile(first.obj, first.kind, true));
    RETURN_IF_ERROR(file->WriteAt(first.offset, std::span<const uint8_t>(out.data(), n * C_)));
    i += n;
  }
  return Status::Ok();
}

Status VolumeImpl::CollectGarbage(bool trim, bool queue) {
  std::set<Id> refs = Referenced();
  ASSIGN_OR_RETURN(auto names, env_.ListDir(objects_dir_));
  bool removed = false;
  for (const auto& name : names) {
    Id id;
    PageKind kind;
    // Alternate data objects exist only from version 3 on.
    bool known = internal::ParseObjectName(name, &id, &kind) && (kind != PageKind::kAlternate || alternate_);
    if (known && refs.count(id)) {
      if (!trim) continue;
      // Cut off what an interrupted transaction wrote past the end of
      // every retained state.
      const uint64_t limit = ProtectedLimit(id, kind);
      ASSIGN_OR_RETURN(os::File * file, ObjectFile(id, kind, true));
      ASSIGN_OR_RETURN(uint64_t size, file->Size());
      if (size > limit) {
        RETURN_IF_ERROR(file->Truncate(limit));
        RETURN_IF_ERROR(file->Sync());
      }
      continue;
    }
    if (known) objects_.erase(id);
    // A writer that stays open (a checkpoint's collection) lets a thread of
    // its own remove them: removing a file of hundreds of MiB takes the file
    // system tens of milliseconds, which the commit would otherwise wait
    // for. No retained state refers to them, and one left by a crash is
    // removed by the next writable open, like any other.
    if (!trim && queue && QueueRemoval(os::JoinPath(objects_dir_, name))) continue;
    RETURN_IF_ERROR(env_.RemoveFile(os::JoinPath(objects_dir_, name)));
    removed = true;
  }
  if (removed) RETURN_IF_ERROR(env_.SyncDir(objects_dir_));
  return Status::Ok();
}

bool VolumeImpl::QueueRemoval(std::string path) {
  if (!opts_.background_removals || ::getpid() != owner_) return false;
  std::lock_guard<std::mutex> l(remove_mu_);
  if (!remover_.joinable()) {
    try {
      remover_ = std::thread([this] { RemoveQueued(); });
    } catch (const std::system_error&) {
      return false;
    }
  }
  to_remove_.push_back(std::move(path));
  remove_cv_.notify_all();
  return true;
}

void VolumeImpl::RemoveQueued() {
  std::unique_lock<std::mutex> l(remove_mu_);
  for (;;) {
    remove_cv_.wait(l, [this] { return remove_stop_ || !to_remove_.empty(); });
    if (to_remove_.empty()) return;  // stopping, nothing left
    std::vector<std::string> batch;
    batch.swap(to_remove_);
    l.unlock();
    // Gone already if an earlier collection queued it too.
    for (const std::string& path : batch) env_.RemoveFile(path).ok();
    l.lock();
  }
}

// ======================================================================
// Verification

StatusOr<VerifyReport> VolumeImpl::Verify() {
  std::lock_guard<std::mutex> l(mu_);
  VerifyReport report;
  std::vector<uint64_t> inos;
  for (auto& [ino, in] : inodes_) {
    if (in.linked) inos.push_back(ino);
  }
  std::sort(inos.begin(), inos.end());
  Bytes buf(kBatchChunks * C_);
  for (uint64_t ino : inos) {
    Inode& in = inodes_.at(ino);
    switch (in.rec.type) {
      case InodeType::kDirectory: report.directories += ino != format::kRootIno; continue;
      case InodeType::kSymlink: report.symlinks++; continue;
      case InodeType::kFile: break;
    }
    report.files++;
    report.bytes += in.rec.size;
    uint64_t chunks = format::ChunkCount(in.rec.size, C_);
    for (uint64_t c = 0; c < chunks; c += kBatchChunks) {
      RETURN_IF_ERROR(MaybeEvict());
      uint64_t n = std::min<uint64_t>(kBatchChunks, chunks - c);
      RETURN_IF_ERROR(ReadChunks(in, c, n, buf.data()));
      report.chunks += n;
    }
  }
  // Leftovers: anything on disk that no retained state refers to.
  std::set<Id> refs = Referenced();
  ASSIGN_OR_RETURN(auto names, env_.ListDir(objects_dir_));
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    Id id;
    PageKind kind;
    if (!internal::ParseObjectName(name, &id, &kind) || (kind == PageKind::kAlternate && !alternate_)) {
      report.problems.push_back("unexpected file objects/" + name);
      continue;
    }
    if (!refs.count(id)) {
      report.problems.push_back("unreferenced object objects/" + name);
      continue;
    }
    const uint64_t limit = ProtectedLimit(id, kind);
    ASSIGN_OR_RETURN(os::File * file, ObjectFile(id, kind, false));
    if (file == nullptr) continue;
    ASSIGN_OR_RETURN(uint64_t size, file->Size());
    if (size > limit) {
      report.problems.push_back("object objects/" + name + " has " + std::to_string(size - limit) +
                                " bytes beyond its committed end");
    }
  }
  if (journal_tail_bytes_ > 0) {
    report.problems.push_back("the journal holds " + std::to_string(journal_tail_bytes_) +
                              " bytes of an interrupted or discarded commit");
  }
  ASSIGN_OR_RETURN(auto top, env_.ListDir(dir_));
  std::sort(top.begin(), top.end());
  for (const auto& name : top) {
    if (name == format::kHeaderFile || name == format::kManifestFile || name == format::kObjectsDir ||
        format::ParseJournalName(name) || name == format::kSpareJournalFile || name == format::kSyncLogFile) {
      continue;
    }
    report.problems.push_back("unexpected file " + name);
  }
  return report;
}

Status VolumeImpl::StartSyncLog(SyncLogShared* sh) {
  std::lock_guard<std::mutex> l(mu_);
  RETURN_IF_ERROR(CheckWritable());
  if (Dirty()) return FailedPrecondition("a sync log starts on a commit: commit first");
  if (sh->chunk_size != C_) return InvalidArgument("the sync log's chunk size is not the volume's");
  if (sync_log_ == nullptr) {
    const std::string path = os::JoinPath(dir_, format::kSyncLogFile);
    const bool existed = env_.FileExists(path);
    ASSIGN_OR_RETURN(std::unique_ptr<os::File> f, env_.OpenFile(path, os::OpenMode::kCreate));
    // Allocated once, so that an appender's fdatasync writes its record and
    // no metadata of the file system.
    ASSIGN_OR_RETURN(uint64_t size, f->Size());
    if (size < sh->capacity) {
      std::vector<uint8_t> zeros(size_t{1} << 20, 0);
      for (uint64_t off = size; off < sh->capacity;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), sh->capacity - off));
        RETURN_IF_ERROR(f->WriteAt(off, std::span<const uint8_t>(zeros.data(), n)));
        off += n;
      }
      RETURN_IF_ERROR(f->Sync());
    }
    if (!existed) RETURN_IF_ERROR(env_.SyncDir(dir_));
    sync_log_ = std::move(f);
  }
  format::SyncLogHeader h;
  h.chunk_size = C_;
  h.base_seq = seq_;
  h.base_tag = tag_;
  RETURN_IF_ERROR(crypto::RandomBytes(h.salt));
  ASSIGN_OR_RETURN(SecretBytes k, format::DeriveSyncLogKey(key_, header_.volume_id, tag_, h.salt));
  // Not synced here: an appender's fdatasync makes it durable with the
  // first record that needs it. Until then the old header stays, whose base
  // is an older commit, and a reader ignores the log.
  RETURN_IF_ERROR(sync_log_->WriteAt(0, format::EncodeSyncLogHeader(h)));
  sh->generation += 1;
  sh->next_index = 0;
  sh->next_offset = kSyncLogHeaderSize;
  std::memcpy(sh->base_tag, tag_.data(), 32);
  std::memcpy(sh->key, k.UnsafeBytes().data(), 32);
  sh->durable.store(sh->generation << 32, std::memory_order_release);
  sh->state = kSyncLogOpen;
  return Status::Ok();
}

void VolumeImpl::PeekSyncLog() {
  const std::string path = os::JoinPath(dir_, format::kSyncLogFile);
  if (!env_.FileExists(path)) return;
  StatusOr<std::unique_ptr<os::File>> f = env_.OpenFile(path, os::OpenMode::kReadOnly);
  if (!f.ok()) return;
  Bytes head(format::kSyncLogHeaderUsed);
  size_t got = 0;
  if ((*f)->ReadAt(0, head, &got).ok() && got == head.size()) sync_log_head_ = std::move(head);
}

Status VolumeImpl::ReadSyncLog() {
  std::lock_guard<std::mutex> l(mu_);
  if (!sync_log_head_) return Status::Ok();
  const std::string path = os::JoinPath(dir_, format::kSyncLogFile);
  ASSIGN_OR_RETURN(std::unique_ptr<os::File> f, env_.OpenFile(path, os::OpenMode::kReadOnly));
  ASSIGN_OR_RETURN(const uint64_t size, f->Size());
  size_t got = 0;
  StatusOr<format::SyncLogHeader> h = format::ParseSyncLogHeader(*sync_log_head_);
  // A log based on another state (an older commit, or a state this open
  // discarded) holds nothing the state opened lacks: its records were
  // committed before the next log started, or belong to discarded commits.
  if (!h.ok() || h->base_seq != seq_ || h->base_tag != tag_ || h->chunk_size != C_) return Status::Ok();
  ASSIGN_OR_RETURN(SecretBytes k, format::DeriveSyncLogKey(key_, header_.volume_id, tag_, h->salt));
  ASSIGN_OR_RETURN(auto aead, crypto::Aead::New(k));
  // Records follow one another from the end of the header, numbered from 0;
  // the first that is missing, out of place or not authentic ends the log
  // (a crash cuts a log's tail, nothing else).
  uint64_t off = kSyncLogHeaderSize;
  uint64_t index = 0;
  std::vector<uint8_t> buf;
  for (;;) {
    uint8_t rh[format::kSyncRecordHead];
    if (off + sizeof(rh) > size) break;
    RETURN_IF_ERROR(f->ReadAt(off, rh, &got));
    if (got < sizeof(rh)) break;
    const uint32_t len = LoadU32(rh + 4);
    if (LoadU32(rh) != format::kSyncRecordMagic || LoadU64(rh + 8) != index) break;
    const uint64_t sealed = uint64_t{12} + len + 16;
    if (off + sizeof(rh) + sealed > size) break;
    buf.resize(sealed);
    RETURN_IF_ERROR(f->ReadAt(off + sizeof(rh), buf, &got));
    if (got < buf.size()) break;
    uint8_t aad[sizeof(rh) + 32];
    std::memcpy(aad, rh, sizeof(rh));
    std::memcpy(aad + sizeof(rh), tag_.data(), 32);
    crypto::Nonce nonce;
    crypto::AeadTag atag;
    std::memcpy(nonce.data(), buf.data(), 12);
    std::memcpy(atag.data(), buf.data() + 12 + len, 16);
    std::span<uint8_t> body(buf.data() + 12, len);
    if (!aead->Open(aad, nonce, atag, body, body).ok()) break;
    StatusOr<SyncRecordContent> c = format::ParseSyncRecordBody(body, C_);
    OPENSSL_cleanse(buf.data(), buf.size());
    if (!c.ok()) {
      return IntegrityError("sync log record " + std::to_string(index) + " is authentic but malformed: " +
                            c.status().message());
    }
    auto it = inodes_.find(c->ino);
    if (it == inodes_.end() || it->second.rec.type != InodeType::kFile) {
      OPENSSL_cleanse(c->data.data(), c->data.size());
      return IntegrityError("sync log record " + std::to_string(index) + " names inode " + std::to_string(c->ino) +
                            ", which is not a file of the state it is based on");
    }
    if (!read_only_) {
      Status s = [&]() -> Status {
        RETURN_IF_ERROR(MaybeEvict());
        RETURN_IF_ERROR(TruncateInode(it->second, c->size));
        Status written;
        ForEachRunData(*c, C_, [&](uint64_t off, std::span<const uint8_t> bytes) {
          if (written.ok()) written = WriteRange(it->second, off, bytes);
        });
        return written;
      }();
      OPENSSL_cleanse(c->data.data(), c->data.size());
      RETURN_IF_ERROR(Guard(s));
    } else {
      auto [ov, fresh] = log_overlay_.try_emplace(c->ino);
      LogOverlay& o = ov->second;
      if (fresh) o.size = o.low = it->second.rec.size;
      o.size = c->size;
      o.low = std::min(o.low, c->size);
      // Chunks past the new end go; the one it cuts keeps its head.
      const uint64_t kept = (c->size + C_ - 1) / C_;
      for (auto k = o.chunks.lower_bound(kept); k != o.chunks.end();) {
        OPENSSL_cleanse(k->second.data(), k->second.size());
        k = o.chunks.erase(k);
      }
      if (c->size % C_ != 0) {
        if (auto k = o.chunks.find(c->size / C_); k != o.chunks.end()) {
          std::fill(k->second.begin() + static_cast<ptrdiff_t>(c->size % C_), k->second.end(), uint8_t{0});
        }
      }
      ForEachRunData(*c, C_, [&](uint64_t off, std::span<const uint8_t> bytes) {
        for (size_t at = 0; at < bytes.size(); at += C_) {
          Bytes& chunk = o.chunks[(off + at) / C_];
          chunk.assign(C_, 0);
          const size_t len = std::min<size_t>(C_, bytes.size() - at);
          std::copy(bytes.begin() + static_cast<ptrdiff_t>(at), bytes.begin() + static_cast<ptrdiff_t>(at + len),
                    chunk.begin());
        }
      });
      OPENSSL_cleanse(c->data.data(), c->data.size());
    }
    off += sizeof(rh) + sealed;
    ++index;
  }
  sync_log_records_ = index;
  return Status::Ok();
}

}  // namespace

// ======================================================================
// Factory functions

StatusOr<std::unique_ptr<Volume>> Volume::Open(os::Env& env, const std::string& dir,
                                               const SecretBytes& key, const OpenOptions& options) {
  auto v = std::make_unique<VolumeImpl>(env, dir, options);
  v->PeekSyncLog();
  RETURN_IF_ERROR(v->Init(key));
  v->MarkOpened();
  RETURN_IF_ERROR(v->ReadSyncLog());
  if (!options.read_only && v->HasUncommittedChanges()) RETURN_IF_ERROR(v->Commit().status());
  return std::unique_ptr<Volume>(std::move(v));
}

StatusOr<std::unique_ptr<Volume>> Volume::Create(os::Env& env, const std::string& dir,
                                                 const SecretBytes& key, const CreateOptions& options,
                                                 const OpenOptions& open) {
  if (key.size() != kVolumeKeySize) return InvalidArgument("a volume key is 32 bytes");
  RETURN_IF_ERROR(format::ValidateChunkSize(options.chunk_size));
  if (env.DirExists(dir)) {
    ASSIGN_OR_RETURN(auto names, env.ListDir(dir));
    if (!names.empty()) return AlreadyExists(dir + " exists and is not empty");
  } else {
    RETURN_IF_ERROR(env.CreateDir(dir));
  }
  RETURN_IF_ERROR(env.CreateDir(os::JoinPath(dir, format::kObjectsDir)));
  format::Header h;
  h.flags = options.protection == Protection::kAuthenticatedOnly ? format::kFlagAuthenticatedOnly : 0;
  h.chunk_size = options.chunk_size;
  RETURN_IF_ERROR(crypto::RandomBytes(h.volume_id));
  ASSIGN_OR_RETURN(auto keys, format::DeriveVolumeKeys(key, h.volume_id));
  format::Manifest m;
  format::InodeRecord root;
  root.ino = format::kRootIno;
  root.type = InodeType::kDirectory;
  root.mode = 0755;
  root.mtime_ns = NowNs();
  m.inodes.push_back(root);
  ASSIGN_OR_RETURN(SecretBytes mkey, format::DeriveManifestKey(key, h.volume_id, 0));
  // A new volume's tag has a zero previous tag and covers the whole
  // manifest; the base manifest carries it.
  const Bytes manifest = format::EncodeManifest(m);
  const Tag tag = format::ComputeTagV2(keys.tag, h.volume_id, 0, Tag{}, manifest);
  ASSIGN_OR_RETURN(auto maead, crypto::Aead::New(mkey));
  ASSIGN_OR_RETURN(Bytes base, EncodeBaseFile(*maead, h.volume_id, h.version, 0, tag, manifest));
  RETURN_IF_ERROR(env.WriteFileAtomically(os::JoinPath(dir, format::kManifestFile), base));
  // The header goes last: a directory without one is not a volume yet.
  RETURN_IF_ERROR(env.WriteFileAtomically(os::JoinPath(dir, format::kHeaderFile),
                                          format::EncodeHeader(h, keys.header)));
  RETURN_IF_ERROR(env.SyncDir(os::DirName(dir)));
  return Open(env, dir, key, open);
}

}  // namespace cloister::volume
