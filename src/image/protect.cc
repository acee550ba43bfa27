#include "image/protect.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "attest/measure.h"
#include "base/bytes.h"
#include "base/parallel.h"
#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "image/archive_util.h"
#include "os/env.h"
#include "policy/policy.h"

namespace cloister::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr size_t kIoSize = size_t{1} << 20;
// How much of each executable is kept: enough for an ELF program's headers.
constexpr size_t kHeadSize = 4096;

using ReadArchive = std::unique_ptr<struct archive, ArchiveReadDeleter>;

// A layer read through libarchive from its blob, optionally hashing the
// blob's bytes on the way so that no separate pass checks its digest.
class LayerReader {
 public:
  ~LayerReader() {
    a_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const Blob& layer, const std::string& what, bool check_digest) {
    blob_ = layer;
    what_ = what;
    hash_ = check_digest;
    fd_ = ::open(layer.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return ErrnoStatus("open " + layer.path, errno);
    buf_.resize(kIoSize);
    // gzip, the usual layer compression, is inflated here with ISA-L (about
    // twice zlib's speed on text and binaries); libarchive then reads a
    // plain tar. Other compressions are libarchive's.
    uint8_t magic[2] = {0, 0};
    if (::pread(fd_, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
      gzip_ = true;
      out_.resize(kIoSize);
      isal_inflate_init(&inflate_);
      inflate_.crc_flag = ISAL_GZIP;
    }
    a_.reset(archive_read_new());
    archive_read_support_filter_all(a_.get());
    archive_read_support_format_tar(a_.get());
    if (archive_read_open2(a_.get(), this, nullptr, &LayerReader::ReadCb, nullptr, nullptr) != ARCHIVE_OK) {
      return Fail();
    }
    return Status::Ok();
  }
  struct archive* get() { return a_.get(); }
  // A read that failed: a blob that does not match its digest says so
  // first (a damaged archive is the symptom, not the cause).
  Status Fail() {
    if (hash_) RETURN_IF_ERROR(Finish());
    return err_.ok() ? ArchiveError(a_.get(), what_) : err_;
  }
  // At the archive's end: the rest of the blob (padding after the tar's
  // end), then its size and digest against the descriptor.
  Status Finish() {
    if (!hash_) return Status::Ok();
    while (true) {
      ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("read " + blob_.path, errno);
      if (n == 0) break;
      h_.Update(std::span<const uint8_t>(buf_.data(), static_cast<size_t>(n)));
      size_ += static_cast<uint64_t>(n);
    }
    if (size_ != blob_.size || DigestString(h_.Finish()) != blob_.digest) {
      return IntegrityError(what_ + ": blob " + blob_.digest + " does not match its digest or size");
    }
    return Status::Ok();
  }

 private:
  // The blob's next bytes into buf_ (hashed); 0 at its end, -1 on error.
  ssize_t ReadBlob() {
    while (true) {
      ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err_ = ErrnoStatus("read " + blob_.path, errno);
        return -1;
      }
      if (hash_) h_.Update(std::span<const uint8_t>(buf_.data(), static_cast<size_t>(n)));
      size_ += static_cast<uint64_t>(n);
      return n;
    }
  }
  static la_ssize_t ReadCb(struct archive*, void* self_v, const void** out) {
    auto* self = static_cast<LayerReader*>(self_v);
    if (!self->gzip_) {
      ssize_t n = self->ReadBlob();
      *out = self->buf_.data();
      return n;
    }
    return self->Inflate(out);
  }
  // More compressed input once the last is used up; false on a read error.
  bool Refill() {
    if (inflate_.avail_in != 0 || blob_end_) return true;
    ssize_t n = ReadBlob();
    if (n < 0) return false;
    blob_end_ = n == 0;
    inflate_.next_in = buf_.data();
    inflate_.avail_in = static_cast<uint32_t>(n);
    return true;
  }
  la_ssize_t Inflate(const void** out) {
    while (!inflated_all_) {
      if (!Refill()) return -1;
      inflate_.next_out = out_.data();
      inflate_.avail_out = static_cast<uint32_t>(out_.size());
      if (isal_inflate(&inflate_) != ISAL_DECOMP_OK) {
        err_ = IntegrityError(what_ + ": the gzip stream is damaged");
        return -1;
      }
      const size_t produced = out_.size() - inflate_.avail_out;
      if (inflate_.block_state == ISAL_BLOCK_FINISH) {
        // Another gzip member may follow (concatenated streams are one).
        if (!Refill()) return -1;
        if (inflate_.avail_in >= 2 && inflate_.next_in[0] == 0x1f && inflate_.next_in[1] == 0x8b) {
          uint8_t* next = inflate_.next_in;
          const uint32_t avail = inflate_.avail_in;
          isal_inflate_init(&inflate_);
          inflate_.crc_flag = ISAL_GZIP;
          inflate_.next_in = next;
          inflate_.avail_in = avail;
        } else {
          inflated_all_ = true;
        }
      } else if (produced == 0 && inflate_.avail_in == 0 && blob_end_) {
        err_ = IntegrityError(what_ + ": the gzip stream ends early");
        return -1;
      }
      if (produced > 0) {
        *out = out_.data();
        return static_cast<la_ssize_t>(produced);
      }
    }
    return 0;
  }

  Blob blob_;
  std::string what_;
  bool hash_ = false;
  bool gzip_ = false, blob_end_ = false, inflated_all_ = false;
  struct inflate_state inflate_;
  std::vector<uint8_t> out_;
  int fd_ = -1;
  std::vector<uint8_t> buf_;
  crypto::Sha256Hasher h_;
  uint64_t size_ = 0;
  Status err_;
  ReadArchive a_;
};

// "./a/b/", "a/b", "/a/b" -> "/a/b"; "." or "" -> "/". Refuses "..".
StatusOr<std::string> Normalise(std::string_view name) {
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view part = name.substr(i, j - i);
    if (part == "..") return InvalidArgument("layer entry " + std::string(name) + " contains ..");
    if (!part.empty() && part != ".") {
      out += '/';
      out += part;
    }
    i = j + 1;
  }
  return out.empty() ? std::string("/") : out;
}

// True if `path` is `dir` or below it.
bool AtOrBelow(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir && path[dir.size()] == '/');
}
bool StrictlyBelow(std::string_view path, std::string_view dir) { return path != dir && AtOrBelow(path, dir); }

std::string Parent(const std::string& p) {
  size_t s = p.rfind('/');
  return s == 0 ? std::string("/") : p.substr(0, s);
}
std::string Base(const std::string& p) { return p.substr(p.rfind('/') + 1); }

// What a layer entry is, in the merged view of the image.
struct Node {
  char type = 'f';   // f file, d directory, l symlink, h hard link, o other
  std::string link;  // symlink target, or hard link target (normalised)
  size_t layer = 0;
  uint32_t mode = 0;
  int64_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;
};

char TypeOf(struct archive_entry* e) {
  if (archive_entry_hardlink(e) != nullptr) return 'h';
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: return 'f';
    case AE_IFDIR: return 'd';
    case AE_IFLNK: return 'l';
    default: return 'o';
  }
}

int64_t MtimeNs(struct archive_entry* e) {
  return static_cast<int64_t>(archive_entry_mtime(e)) * 1000000000 + archive_entry_mtime_nsec(e);
}

// What the scan learned about one layer.
struct LayerScan {
  std::vector<std::string> whiteouts;  // paths a `.wh.` entry removes from lower layers
  std::vector<std::string> opaque;     // directories whose lower content is hidden
  std::vector<std::string> replaced;   // non-directories that hide a lower tree at their path
  bool drops = false;                  // holds entries at or below a protected directory
  std::vector<std::pair<std::string, Node>> entries;  // everything else, in order
  // SHA-256 (hex) and first kHeadSize bytes of the executable files outside the
  // protected directories: the program to measure is one of them.
  std::map<std::string, std::pair<std::string, std::string>> executables;
  uint64_t protected_bytes = 0;        // content at or below protected directories
  Status status;
};

bool InAny(const std::string& path, const std::vector<std::string>& dirs) {
  for (const std::string& d : dirs) {
    if (AtOrBelow(path, d)) return true;
  }
  return false;
}

int WhiteoutKind(const std::string& path, std::string* target);

// Reads one layer's entries into `scan`.
Status ScanLayer(const Blob& layer, size_t li, const std::string& what, const std::vector<std::string>& dirs,
                 LayerScan& scan, std::atomic<uint64_t>& bytes, std::atomic<uint64_t>& files) {
  LayerReader in;
  RETURN_IF_ERROR(in.Open(layer, what, /*check_digest=*/true));
  std::vector<uint8_t> buf(kIoSize);
  struct archive_entry* e = nullptr;
  while (true) {
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) return in.Fail();
    files++;
    ASSIGN_OR_RETURN(std::string path, Normalise(archive_entry_pathname(e)));
    std::string target;
    const int wk = WhiteoutKind(path, &target);
    const bool inside = InAny(path, dirs);
    if (inside) scan.drops = true;
    if (wk == 1) {
      scan.whiteouts.push_back(target);
      continue;
    }
    if (wk == 2) {
      scan.opaque.push_back(target);
      continue;
    }
    Node n;
    n.type = TypeOf(e);
    n.layer = li;
    n.mode = archive_entry_perm(e) & 07777;
    n.uid = archive_entry_uid(e);
    n.gid = archive_entry_gid(e);
    n.mtime_ns = MtimeNs(e);
    if (n.type == 'l') n.link = archive_entry_symlink(e);
    if (n.type == 'h') {
      ASSIGN_OR_RETURN(n.link, Normalise(archive_entry_hardlink(e)));
      for (const std::string& d : dirs) {
        if (AtOrBelow(n.link, d) != AtOrBelow(path, d)) {
          return InvalidArgument(what + ": hard link " + path + " -> " + n.link + " crosses the boundary of " + d +
                                 "; protected directories cannot share files with the rest of the image");
        }
      }
      auto x = scan.executables.find(n.link);
      if (x != scan.executables.end()) scan.executables[path] = x->second;
    }
    if (n.type != 'd') {
      for (const std::string& d : dirs) {
        if (StrictlyBelow(d, path)) scan.replaced.push_back(path);
      }
    }
    if (inside) {
      if (n.type == 'f') scan.protected_bytes += static_cast<uint64_t>(archive_entry_size(e));
    } else if (n.type == 'f' && (n.mode & 0111) != 0) {
      crypto::Sha256Hasher h;
      std::string head;
      while (true) {
        la_ssize_t got = archive_read_data(in.get(), buf.data(), buf.size());
        if (got < 0) return in.Fail();
        if (got == 0) break;
        if (head.size() < kHeadSize) {
          head.append(reinterpret_cast<const char*>(buf.data()), std::min<size_t>(got, kHeadSize - head.size()));
        }
        h.Update(std::span<const uint8_t>(buf.data(), static_cast<size_t>(got)));
        bytes += static_cast<uint64_t>(got);
      }
      scan.executables[path] = {HexEncode(h.Finish()), head};
    }
    const bool hashed = !inside && n.type == 'f' && (n.mode & 0111) != 0;
    scan.entries.emplace_back(path, std::move(n));
    if (!hashed && archive_entry_size(e) > 0) bytes += static_cast<uint64_t>(archive_entry_size(e));
  }
  return in.Finish();
}

// The merged file system view: every path's final entry.
class Index {
 public:
  void Remove(const std::string& path) {
    nodes_.erase(path);
    RemoveBelow(path);
  }
  void RemoveBelow(const std::string& dir) {
    const std::string prefix = dir == "/" ? "/" : dir + "/";
    auto it = nodes_.lower_bound(prefix);
    while (it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0) it = nodes_.erase(it);
  }
  void Put(const std::string& path, Node n) { nodes_[path] = std::move(n); }
  // Calls fn(path, node) for every path strictly below `dir`, in order.
  template <typename Fn>
  void ForEachBelow(const std::string& dir, Fn fn) const {
    const std::string prefix = dir + "/";
    for (auto it = nodes_.lower_bound(prefix); it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
         ++it) {
      fn(it->first, it->second);
    }
  }
  const Node* Find(const std::string& path) const {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  // Follows symbolic links (in every component; in the last one too if
  // `follow_last`), inside the image's root.
  StatusOr<std::string> Resolve(const std::string& path, bool follow_last) const {
    std::vector<std::string> todo;
    auto push_parts = [&](std::string_view p) {
      std::vector<std::string> parts;
      size_t i = 0;
      while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string_view::npos) j = p.size();
        if (j > i) parts.emplace_back(p.substr(i, j - i));
        i = j + 1;
      }
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
    };
    push_parts(path);
    std::string cur = "/";
    int links = 0;
    while (!todo.empty()) {
      std::string part = std::move(todo.back());
      todo.pop_back();
      if (part == ".") continue;
      if (part == "..") {
        cur = Parent(cur);
        continue;
      }
      std::string next = cur == "/" ? "/" + part : cur + "/" + part;
      const Node* n = Find(next);
      if (n == nullptr) return NotFound(path + " is not in the image");
      if (n->type == 'l' && (follow_last || !todo.empty())) {
        if (++links > 40) return InvalidArgument(path + ": too many levels of symbolic links in the image");
        if (!n->link.empty() && n->link[0] == '/') cur = "/";
        push_parts(n->link);
        continue;
      }
      cur = next;
    }
    return cur;
  }

 private:
  std::map<std::string, Node> nodes_;
};

// A tar layer being written: libarchive produces the tar; this hashes it
// (the diff ID), compresses it with gzip if asked, and hashes and writes
// what goes to disk (the digest).
class LayerWriter {
 public:
  ~LayerWriter() {
    discard_ = true;  // an unfinished layer: whatever libarchive still flushes is dropped
    a_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const std::string& path, bool gzip) {
    path_ = path;
    gzip_ = gzip;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoStatus("create " + path, errno);
    if (gzip_) {
      // ISA-L at level 1: layers are rewritten at about disk speed.
      isal_deflate_init(&deflate_);
      level_buf_.resize(ISAL_DEF_LVL1_DEFAULT);
      deflate_.level = 1;
      deflate_.level_buf = level_buf_.data();
      deflate_.level_buf_size = static_cast<uint32_t>(level_buf_.size());
      deflate_.gzip_flag = IGZIP_GZIP;
      zout_.resize(kIoSize);
    }
    a_.reset(archive_write_new());
    archive_write_set_format_pax_restricted(a_.get());
    archive_write_set_bytes_in_last_block(a_.get(), 1);
    if (archive_write_open2(a_.get(), this, nullptr, &LayerWriter::WriteCb, nullptr, nullptr) != ARCHIVE_OK) {
      return ArchiveError(a_.get(), path);
    }
    return Status::Ok();
  }
  struct archive* get() { return a_.get(); }
  Status Fail(const std::string& what) { return err_.ok() ? ArchiveError(a_.get(), what) : err_; }

  StatusOr<Blob> Close(std::string* diff_id) {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return Fail(path_);
    RETURN_IF_ERROR(err_);
    if (gzip_) RETURN_IF_ERROR(Deflate(nullptr, 0, /*finish=*/true));
    if (::fsync(fd_) != 0) return ErrnoStatus("write " + path_, errno);
    ::close(fd_);
    fd_ = -1;
    *diff_id = DigestString(diff_.Finish());
    Blob b;
    b.media_type = std::string(gzip_ ? kOciLayerGzip : kOciLayerTar);
    b.digest = DigestString(digest_.Finish());
    b.size = size_;
    b.path = path_;
    return b;
  }

 private:
  static la_ssize_t WriteCb(struct archive*, void* self_v, const void* buf, size_t n) {
    auto* self = static_cast<LayerWriter*>(self_v);
    if (self->discard_) return static_cast<la_ssize_t>(n);
    self->diff_.Update(std::span<const uint8_t>(static_cast<const uint8_t*>(buf), n));
    Status s = self->gzip_ ? self->Deflate(buf, n, /*finish=*/false) : self->Out(buf, n);
    if (!s.ok()) {
      self->err_ = s;
      return -1;
    }
    return static_cast<la_ssize_t>(n);
  }
  Status Out(const void* buf, size_t n) {
    digest_.Update(std::span<const uint8_t>(static_cast<const uint8_t*>(buf), n));
    size_ += n;
    const char* p = static_cast<const char*>(buf);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write " + path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return Status::Ok();
  }
  Status Deflate(const void* buf, size_t n, bool finish) {
    deflate_.next_in = static_cast<uint8_t*>(const_cast<void*>(buf));
    deflate_.avail_in = static_cast<uint32_t>(n);
    deflate_.end_of_stream = finish ? 1 : 0;
    deflate_.flush = NO_FLUSH;
    while (true) {
      deflate_.next_out = zout_.data();
      deflate_.avail_out = static_cast<uint32_t>(zout_.size());
      if (isal_deflate(&deflate_) != COMP_OK) return InternalError("ISA-L: deflate failed");
      RETURN_IF_ERROR(Out(zout_.data(), zout_.size() - deflate_.avail_out));
      const bool done = finish ? deflate_.internal_state.state == ZSTATE_END : deflate_.avail_in == 0;
      if (done) break;
    }
    return Status::Ok();
  }

  std::unique_ptr<struct archive, ArchiveWriteDeleter> a_;
  std::string path_;
  int fd_ = -1;
  bool gzip_ = false;
  bool discard_ = false;
  struct isal_zstream deflate_;
  std::vector<uint8_t> level_buf_, zout_;
  crypto::Sha256Hasher diff_, digest_;
  uint64_t size_ = 0;
  Status err_;
};

// A directory removed, with what it holds, when this goes away.
struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    if (path.empty()) return;
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct Target {
  ProtectDir dir;
  std::string name;
  std::string volume_dir;
  SecretBytes key;
  std::unique_ptr<volume::Volume> v;
  Node root;  // the directory's own entry in the image
  uint64_t files = 0, bytes = 0;
};

// The path of `image_path` inside its volume ("" for the root).
std::string Inner(const Target& t, const std::string& image_path) {
  return image_path.substr(t.dir.path.size());
}

Status RemoveTree(volume::Volume& v, const std::string& path) {
  auto st = v.GetStat(path);
  if (!st.ok()) return st.status().code() == StatusCode::kNotFound ? Status::Ok() : st.status();
  if (st->type != volume::FileType::kDirectory) return v.Remove(path);
  ASSIGN_OR_RETURN(auto entries, v.List(path));
  for (const auto& e : entries) RETURN_IF_ERROR(RemoveTree(v, path + "/" + e.name));
  return path.empty() || path == "/" ? Status::Ok() : v.Rmdir(path);
}

Status ClearDir(volume::Volume& v, const std::string& dir) {
  auto st = v.GetStat(dir.empty() ? "/" : dir);
  if (!st.ok() || st->type != volume::FileType::kDirectory) return Status::Ok();
  ASSIGN_OR_RETURN(auto entries, v.List(dir.empty() ? "/" : dir));
  for (const auto& e : entries) RETURN_IF_ERROR(RemoveTree(v, dir + "/" + e.name));
  return Status::Ok();
}

// Files (and symbolic links) and their plaintext bytes below `dir`.
Status CountFiles(volume::Volume& v, const std::string& dir, uint64_t* files, uint64_t* bytes) {
  ASSIGN_OR_RETURN(auto entries, v.List(dir.empty() ? "/" : dir));
  for (const auto& e : entries) {
    const std::string p = dir + "/" + e.name;
    if (e.type == volume::FileType::kDirectory) {
      RETURN_IF_ERROR(CountFiles(v, p, files, bytes));
      continue;
    }
    ASSIGN_OR_RETURN(volume::Stat st, v.GetStat(p));
    ++*files;
    if (e.type == volume::FileType::kFile) *bytes += st.size;
  }
  return Status::Ok();
}

// Creates the missing directories above `path` in the volume (a layer
// need not list its parents).
Status EnsureParents(volume::Volume& v, const std::string& path) {
  std::string p;
  size_t i = 1;
  while (true) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) return Status::Ok();
    p = path.substr(0, j);
    auto st = v.GetStat(p);
    if (!st.ok()) {
      if (st.status().code() != StatusCode::kNotFound) return st.status();
      RETURN_IF_ERROR(v.Mkdir(p, 0755));
    } else if (st->type != volume::FileType::kDirectory) {
      RETURN_IF_ERROR(v.Remove(p));
      RETURN_IF_ERROR(v.Mkdir(p, 0755));
    }
    i = j + 1;
  }
}

// Puts one layer entry (at or below the target's directory) into the volume.
Status Apply(Target& t, const std::string& image_path, struct archive_entry* e, struct archive* in,
             std::vector<uint8_t>& buf, const ProgressFn& progress) {
  volume::Volume& v = *t.v;
  const std::string inner = Inner(t, image_path);
  const char type = TypeOf(e);
  const uint32_t mode = archive_entry_perm(e) & 07777;
  if (inner.empty()) {
    if (type != 'd') return ClearDir(v, "");  // not a directory here: hides what was below
    RETURN_IF_ERROR(v.Chmod("/", mode));
    return v.SetMtime("/", MtimeNs(e));
  }
  RETURN_IF_ERROR(EnsureParents(v, inner));
  auto existing = v.GetStat(inner);
  if (existing.ok() && !(type == 'd' && existing->type == volume::FileType::kDirectory)) {
    RETURN_IF_ERROR(RemoveTree(v, inner));
  }
  switch (type) {
    case 'd':
      if (!existing.ok() || existing->type != volume::FileType::kDirectory) RETURN_IF_ERROR(v.Mkdir(inner, mode));
      RETURN_IF_ERROR(v.Chmod(inner, mode));
      break;
    case 'l':
      RETURN_IF_ERROR(v.Symlink(archive_entry_symlink(e), inner));
      return Status::Ok();
    case 'h': {
      ASSIGN_OR_RETURN(std::string target, Normalise(archive_entry_hardlink(e)));
      if (!StrictlyBelow(target, t.dir.path)) {
        return InvalidArgument("hard link " + image_path + " -> " + target + " crosses the boundary of " +
                               t.dir.path + "; protected directories cannot share files with the rest of the image");
      }
      // The volume keeps no hard links: a copy of the target's content.
      volume::OpenFlags rf;
      ASSIGN_OR_RETURN(auto src, v.OpenFile(Inner(t, target), rf));
      ASSIGN_OR_RETURN(volume::Stat sst, src->GetStat());
      volume::OpenFlags wf;
      wf.create = wf.exclusive = true;
      wf.mode = sst.mode;
      ASSIGN_OR_RETURN(auto dst, v.OpenFile(inner, wf));
      uint64_t off = 0;
      while (true) {
        ASSIGN_OR_RETURN(size_t n, src->ReadAt(off, std::span<uint8_t>(buf.data(), buf.size())));
        if (n == 0) break;
        RETURN_IF_ERROR(dst->WriteAt(off, std::span<const uint8_t>(buf.data(), n)));
        off += n;
      }
      t.files++;
      t.bytes += off;
      RETURN_IF_ERROR(v.SetMtime(inner, sst.mtime_ns));
      return Status::Ok();
    }
    case 'f': {
      volume::OpenFlags wf;
      wf.create = wf.exclusive = true;
      wf.mode = mode;
      ASSIGN_OR_RETURN(auto f, v.OpenFile(inner, wf));
      uint64_t off = 0;
      while (true) {
        la_ssize_t n = archive_read_data(in, buf.data(), buf.size());
        if (n < 0) return ArchiveError(in, image_path);
        if (n == 0) break;
        RETURN_IF_ERROR(f->WriteAt(off, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n))));
        off += static_cast<uint64_t>(n);
        progress(static_cast<uint64_t>(n), 0);
      }
      t.files++;
      t.bytes += off;
      break;
    }
    default:
      return InvalidArgument(image_path + " is a device, socket or pipe; a protected directory holds only "
                             "files, directories and symbolic links");
  }
  return v.SetMtime(inner, MtimeNs(e));
}

// Applies, before a layer's own entries, what it hides of lower layers.
Status ApplyHiding(Target& t, const LayerScan& scan) {
  const std::string& p = t.dir.path;
  auto clear_all = [&]() { return ClearDir(*t.v, ""); };
  for (const std::string& w : scan.whiteouts) {
    if (AtOrBelow(p, w)) {
      RETURN_IF_ERROR(clear_all());
    } else if (StrictlyBelow(w, p)) {
      RETURN_IF_ERROR(RemoveTree(*t.v, Inner(t, w)));
    }
  }
  for (const std::string& d : scan.opaque) {
    if (AtOrBelow(p, d)) {
      RETURN_IF_ERROR(clear_all());
    } else if (StrictlyBelow(d, p)) {
      RETURN_IF_ERROR(ClearDir(*t.v, Inner(t, d)));
    }
  }
  for (const std::string& r : scan.replaced) {
    if (StrictlyBelow(p, r)) RETURN_IF_ERROR(clear_all());
  }
  return Status::Ok();
}

// The whiteout an entry name stands for: kind 0 none, 1 `.wh.NAME`, 2 opaque.
int WhiteoutKind(const std::string& path, std::string* target) {
  const std::string base = Base(path);
  if (base == kOpaqueMarker) {
    *target = Parent(path);
    return 2;
  }
  if (base.size() > kWhiteoutPrefix.size() && base.compare(0, kWhiteoutPrefix.size(), kWhiteoutPrefix) == 0) {
    if (base.compare(0, 8, ".wh..wh.") == 0) return 0;  // other AUFS metadata: kept as it is
    const std::string parent = Parent(path);
    *target = (parent == "/" ? "" : parent) + "/" + base.substr(kWhiteoutPrefix.size());
    return 1;
  }
  return 0;
}

// The program interpreter (PT_INTERP) of a 64-bit little-endian ELF file
// from its first bytes: "" if it has none (statically linked), nullopt if
// the headers are not all in `head` or do not parse.
std::optional<std::string> ElfInterpreter(std::string_view head) {
  auto u16 = [&](size_t at) -> uint64_t {
    return static_cast<uint8_t>(head[at]) | static_cast<uint64_t>(static_cast<uint8_t>(head[at + 1])) << 8;
  };
  auto u64 = [&](size_t at) -> uint64_t {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(head[at + i]);
    return v;
  };
  if (head.size() < 64 || head[4] != 2 || head[5] != 1) return std::nullopt;  // ELFCLASS64, little-endian
  const uint64_t phoff = u64(32), phentsize = u16(54), phnum = u16(56);
  if (phentsize < 56 || phoff > head.size() || phnum > (head.size() - phoff) / phentsize) return std::nullopt;
  for (uint64_t i = 0; i < phnum; ++i) {
    const size_t ph = static_cast<size_t>(phoff + i * phentsize);
    const uint32_t type = static_cast<uint32_t>(u16(ph) | u16(ph + 2) << 16);
    if (type != 3) continue;  // PT_INTERP
    const uint64_t off = u64(ph + 8), size = u64(ph + 32);
    if (size == 0 || off > head.size() || size > head.size() - off) return std::nullopt;
    std::string interp(head.substr(static_cast<size_t>(off), static_cast<size_t>(size)));
    while (!interp.empty() && interp.back() == '\0') interp.pop_back();
    return interp;
  }
  return std::string();
}

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// SHA-256 of the file `path` of a layer (following a hard link inside it),
// and its first bytes.
StatusOr<std::string> HashLayerFile(const Blob& layer, const std::string& path, std::string* head, int depth = 0) {
  if (depth > 4) return InvalidArgument(path + ": hard links in a loop");
  LayerReader in;
  RETURN_IF_ERROR(in.Open(layer, layer.digest, /*check_digest=*/false));
  struct archive_entry* e = nullptr;
  std::vector<uint8_t> buf(kIoSize);
  while (true) {
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) return in.Fail();
    ASSIGN_OR_RETURN(std::string name, Normalise(archive_entry_pathname(e)));
    if (name != path) continue;
    if (archive_entry_hardlink(e) != nullptr) {
      ASSIGN_OR_RETURN(std::string target, Normalise(archive_entry_hardlink(e)));
      return HashLayerFile(layer, target, head, depth + 1);
    }
    crypto::Sha256Hasher h;
    while (true) {
      la_ssize_t n = archive_read_data(in.get(), buf.data(), buf.size());
      if (n < 0) return ArchiveError(in.get(), path);
      if (n == 0) break;
      if (head->size() < kHeadSize) {
        head->append(reinterpret_cast<const char*>(buf.data()), std::min<size_t>(n, kHeadSize - head->size()));
      }
      h.Update(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    }
    return HexEncode(h.Finish());
  }
  return NotFound(path + " is not in layer " + layer.digest);
}

std::string Quote(std::string_view s) { return json(std::string(s)).dump(); }

// Splits "K=V" environment entries of the image configuration.
std::vector<std::pair<std::string, std::string>> ImageEnv(const json& cfg) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : cfg.value("Env", json::array())) {
    if (!e.is_string()) continue;
    std::string s = e.get<std::string>();
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

void SetEnv(std::vector<std::pair<std::string, std::string>>& env, const std::string& k, const std::string& v) {
  for (auto& [key, value] : env) {
    if (key == k) {
      value = v;
      return;
    }
  }
  env.emplace_back(k, v);
}

bool RuntimeVariable(const std::string& k) { return k == "LD_PRELOAD" || k.rfind("CLOISTER_", 0) == 0; }

struct SessionVolume {
  std::string name, path;
  bool encrypt = true;
  const SecretBytes* key = nullptr;  // null: zeros (a check of the document's shape)
  std::string tag = std::string(64, '0');
};
struct SessionInputs {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string workdir, binary;
  std::string binary_sha256 = std::string(64, '0'), runtime_sha256 = std::string(63, '0') + "1";
  std::vector<SessionVolume> volumes;
};

// The session document, checked with the CAS's rules. Strings are written
// as JSON strings, which YAML reads as double-quoted scalars.
StatusOr<SecretBytes> BuildSession(const ProtectOptions& o, const SessionInputs& in) {
  std::string doc;
  std::vector<std::pair<size_t, size_t>> key_slots;  // (offset in doc, target index)
  doc += "# Written by `cloister image protect` for " + ImageRefToString(o.to) +
         ".\n# It holds the volumes' keys: keep it as secret as they are.\n";
  doc += "name: " + Quote(o.session) + "\nservices:\n  - name: " + Quote(o.service) + "\n";
  doc += "    measurements:\n      - " + Quote(in.binary_sha256) + "  # " + in.binary + "\n      - " +
         Quote(in.runtime_sha256) + "  # the runtime\n";
  if (!in.argv.empty()) {
    doc += "    command:\n";
    for (const std::string& a : in.argv) doc += "      - " + Quote(a) + "\n";
  }
  if (!in.env.empty()) {
    doc += "    environment:\n";
    for (const auto& [k, v] : in.env) doc += "      " + Quote(k) + ": " + Quote(v) + "\n";
  }
  doc += "    pwd: " + Quote(in.workdir) + "\n    mounts:\n";
  for (const auto& v : in.volumes) doc += "      - volume: " + Quote(v.name) + "\n        path: " + Quote(v.path) + "\n";
  doc += "volumes:\n";
  for (size_t i = 0; i < in.volumes.size(); ++i) {
    const SessionVolume& v = in.volumes[i];
    doc += "  - name: " + Quote(v.name) + "  # " + (v.encrypt ? "encrypted" : "authenticated") + ", at " + v.path +
           "\n    key: \"";
    key_slots.emplace_back(doc.size(), i);
    doc += "\"\n    tag: " + Quote(v.tag) + "\n";
  }
  if (!o.secrets.empty()) {
    doc += "secrets:\n";
    for (const auto& [name, kind] : o.secrets) doc += "  - name: " + Quote(name) + "\n    kind: " + Quote(kind) + "\n";
  }
  if (!o.allow.empty() || !o.tolerate.empty()) {
    doc += "security:\n  attestation:\n";
    if (!o.allow.empty()) {
      doc += "    allowed: [";
      for (size_t i = 0; i < o.allow.size(); ++i) doc += (i ? ", " : "") + Quote(o.allow[i]);
      doc += "]\n";
    }
    if (!o.tolerate.empty()) {
      doc += "    tolerate: [";
      for (size_t i = 0; i < o.tolerate.size(); ++i) doc += (i ? ", " : "") + Quote(o.tolerate[i]);
      doc += "]\n";
    }
  }
  // The keys go straight into a buffer that is wiped when it is freed.
  SecretBytes full(doc.size() + key_slots.size() * 64);
  uint8_t* out = full.UnsafeMutableBytes().data();
  size_t from = 0;
  for (const auto& [at, ti] : key_slots) {
    std::memcpy(out, doc.data() + from, at - from);
    out += at - from;
    static const char kHex[] = "0123456789abcdef";
    const SecretBytes* key = in.volumes[ti].key;
    for (size_t k = 0; k < 32; ++k) {
      const uint8_t b = key != nullptr && key->size() == 32 ? key->UnsafeBytes()[k] : 0;
      *out++ = static_cast<uint8_t>(kHex[b >> 4]);
      *out++ = static_cast<uint8_t>(kHex[b & 15]);
    }
    from = at;
  }
  std::memcpy(out, doc.data() + from, doc.size() - from);
  policy::ParseResult parsed = policy::Parse(
      std::string_view(reinterpret_cast<const char*>(full.UnsafeBytes().data()), full.size()));
  if (!parsed.errors.empty()) {
    const auto& e = parsed.errors.front();
    return InvalidArgument("the session for this image is not valid: " + e.path + ": " + e.message +
                           (e.message.find("does not define") != std::string::npos
                                ? " (define it with --secret NAME:KIND)"
                                : ""));
  }
  return full;
}

}  // namespace

std::string VolumeNameFor(std::string_view path) {
  std::string out;
  for (char c : path.substr(path.empty() || path[0] != '/' ? 0 : 1)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out += ok ? c : '_';
  }
  if (out.empty()) out = "root";
  if (out.size() > 64) out.resize(64);
  return out;
}

StatusOr<ProtectResult> Protect(const ProtectOptions& o, const ProgressFn& progress) {
  ProtectResult result;
  if (o.dirs.empty()) return InvalidArgument("nothing to protect: give --encrypt DIR or --authenticate DIR");

  // --- the directories to protect ---
  std::vector<Target> targets;
  std::set<std::string> names;
  for (const ProtectDir& d : o.dirs) {
    if (d.path.empty() || d.path[0] != '/') return InvalidArgument(d.path + ": a directory in the image is an absolute path");
    ASSIGN_OR_RETURN(std::string p, Normalise(d.path));
    if (p == "/") return InvalidArgument("the whole image cannot be one volume: name directories below /");
    if (AtOrBelow(std::string(kRuntimeInImage), p)) {
      return InvalidArgument(p + " would hold the runtime library, which must stay outside volumes");
    }
    for (const Target& t : targets) {
      if (AtOrBelow(p, t.dir.path) || AtOrBelow(t.dir.path, p)) {
        return InvalidArgument(p + " and " + t.dir.path + " overlap; protected directories must be disjoint");
      }
    }
    Target t;
    t.dir = {p, d.encrypt};
    t.name = VolumeNameFor(p);
    for (int i = 2; names.count(t.name); ++i) t.name = VolumeNameFor(p).substr(0, 60) + "_" + std::to_string(i);
    names.insert(t.name);
    targets.push_back(std::move(t));
  }

  // The layers are checked against their digests as they are scanned.
  ASSIGN_OR_RETURN(Image img, ReadImage(o.from, o.work_dir, /*check_layers=*/false));
  const std::string src_name = ImageRefToString(o.from);
  result.layers = img.layers.size();

  // --- the service: command, environment, working directory ---
  const json cfg = img.config.value("config", json::object());
  std::vector<std::string> argv;
  if (o.command) {
    ASSIGN_OR_RETURN(argv, policy::SplitCommand(*o.command));
  } else {
    for (const char* k : {"Entrypoint", "Cmd"}) {
      for (const auto& a : cfg.value(k, json::array())) {
        if (a.is_string()) argv.push_back(a.get<std::string>());
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> env;
  for (auto& [k, v] : ImageEnv(cfg)) {
    if (!RuntimeVariable(k)) env.emplace_back(k, v);
  }
  for (const auto& [k, v] : o.env) {
    if (RuntimeVariable(k)) return InvalidArgument("--env " + k + ": the runtime's variables are set by protect itself");
    SetEnv(env, k, v);
  }
  std::string workdir = o.workdir ? *o.workdir : cfg.value("WorkingDir", "");
  if (workdir.empty()) workdir = "/";
  SessionInputs session;
  session.argv = argv;
  session.env = env;
  session.workdir = workdir;
  for (const Target& t : targets) session.volumes.push_back({t.name, t.dir.path, t.dir.encrypt, nullptr});
  // The document's shape is checked now, before any work: a placeholder
  // without its secret, say, stops here rather than after the layers.
  RETURN_IF_ERROR(BuildSession(o, session).status());

  // --- pass 1: every layer's entries (layers side by side, each checked
  // against its digest as it is read); then the merged view, in order ---
  std::vector<LayerScan> scans(img.layers.size());
  std::vector<std::string> dirs;
  for (const Target& t : targets) dirs.push_back(t.dir.path);
  {
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> bytes{0}, files{0};
    auto work = [&]() {
      for (size_t li = next++; li < img.layers.size(); li = next++) {
        scans[li].status = ScanLayer(img.layers[li], li, src_name + " layer " + std::to_string(li), dirs,
                                     scans[li], bytes, files);
      }
    };
    const size_t threads = std::min(img.layers.size(), ParallelFor::DefaultThreads());
    std::atomic<size_t> running{threads};
    std::vector<std::thread> pool;
    for (size_t i = 0; i < threads; ++i) {
      pool.emplace_back([&]() {
        work();
        running--;
      });
    }
    uint64_t shown_bytes = 0, shown_files = 0;
    while (true) {
      const bool last = running.load() == 0;
      const uint64_t b = bytes.load(), f = files.load();
      progress(b - shown_bytes, f - shown_files);
      shown_bytes = b;
      shown_files = f;
      if (last) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (auto& t : pool) t.join();
  }
  Index index;
  for (size_t li = 0; li < img.layers.size(); ++li) {
    LayerScan& scan = scans[li];
    RETURN_IF_ERROR(scan.status);
    // Whiteouts and opaque directories hide lower layers only.
    for (const std::string& w : scan.whiteouts) index.Remove(w);
    for (const std::string& d : scan.opaque) index.RemoveBelow(d);
    for (auto& [path, n] : scan.entries) {
      if (n.type != 'd') index.RemoveBelow(path);
      index.Put(path, std::move(n));
    }
    scan.entries.clear();
    scan.entries.shrink_to_fit();
  }
  for (Target& t : targets) {
    auto resolved = index.Resolve(t.dir.path, false);
    if (!resolved.ok()) return NotFound(t.dir.path + " is not in the image");
    const std::string real = *resolved;
    const Node* n = index.Find(real);
    if (n != nullptr && n->type == 'l') {
      return InvalidArgument(t.dir.path + " is a symbolic link in the image (to " + n->link +
                             "); name the directory it points to");
    }
    if (real != t.dir.path || n == nullptr) {
      return InvalidArgument(t.dir.path + " is reached through a symbolic link in the image (it is " + real +
                             "); name the directory itself");
    }
    if (n->type != 'd') return NotADirectory(t.dir.path + " is not a directory in the image");
    t.root = *n;
  }

  // --- the program to measure ---
  std::string program = o.binary;
  if (program.empty()) {
    if (argv.empty()) return InvalidArgument(src_name + " has no ENTRYPOINT or CMD; give --command or --binary");
    program = argv[0];
    if (program.find('/') == std::string::npos) {
      std::string path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
      for (const auto& [k, v] : env) {
        if (k == "PATH") path_var = v;
      }
      std::string found;
      size_t i = 0;
      while (found.empty() && i <= path_var.size()) {
        size_t j = path_var.find(':', i);
        if (j == std::string::npos) j = path_var.size();
        std::string cand = path_var.substr(i, j - i) + "/" + program;
        auto r = index.Resolve(cand[0] == '/' ? cand : workdir + "/" + cand, true);
        if (r.ok()) {
          const Node* n = index.Find(*r);
          if (n != nullptr && n->type != 'd' && (n->mode & 0111)) found = cand;
        }
        i = j + 1;
      }
      if (found.empty()) return NotFound(program + " is not on the image's PATH (" + path_var + "); give --binary");
      program = found;
    } else if (program[0] != '/') {
      program = (workdir == "/" ? "" : workdir) + "/" + program;
    }
  }
  ASSIGN_OR_RETURN(std::string binary, index.Resolve(program, true));
  const Node* bnode = index.Find(binary);
  if (bnode == nullptr || (bnode->type != 'f' && bnode->type != 'h')) {
    return InvalidArgument(program + " is not a regular file in the image");
  }
  for (const Target& t : targets) {
    if (AtOrBelow(binary, t.dir.path)) {
      return InvalidArgument("the program " + binary + " is inside the protected directory " + t.dir.path +
                             "; the kernel must read programs from the image, so keep them outside");
    }
  }
  std::string head;
  auto known = scans[bnode->layer].executables.find(binary);
  if (known != scans[bnode->layer].executables.end()) {
    result.binary_sha256 = known->second.first;
    head = known->second.second;
  } else {
    ASSIGN_OR_RETURN(result.binary_sha256, HashLayerFile(img.layers[bnode->layer], binary, &head));
  }
  if (head.compare(0, 2, "#!") == 0) {
    return InvalidArgument(binary + " is a script; the program that runs (and is measured) is its interpreter: "
                           "give --binary INTERPRETER and a --command that runs the script with it");
  }
  // The runtime is loaded by glibc's dynamic loader: a program that has no
  // loader, or another one, would run without it (unattested, though with
  // nothing from the session). Refused here rather than at every start.
  if (head.compare(0, 4, "\x7f" "ELF") != 0) {
    return InvalidArgument(binary + " is not an ELF program; give --binary with the program that runs");
  }
  if (auto interp = ElfInterpreter(head)) {
    if (interp->empty()) {
      return InvalidArgument(binary + " is statically linked: the runtime cannot be preloaded into it "
                             "(a dynamically linked glibc program is needed)");
    }
    if (interp->find("musl") != std::string::npos) {
      return InvalidArgument(binary + " is built for musl libc (loader " + *interp +
                             "); the runtime needs a glibc program and image");
    }
    auto loader = index.Resolve(*interp, true);
    if (!loader.ok() || index.Find(*loader) == nullptr) {
      return NotFound(binary + " needs the loader " + *interp + ", which is not in the image");
    }
  }
  result.binary = binary;
  session.binary = binary;
  // The runtime's measurement, as the LAS computes it at every start.
  ASSIGN_OR_RETURN(attest::FileMeasurement rt, attest::MeasureFile(o.runtime_file));
  result.runtime_sha256 = rt.sha256;
  session.runtime_sha256 = result.runtime_sha256;

  // --- the volumes: built in memory (tmpfs) when they fit there, since
  // they become a layer at once and need no durable copy of their own ---
  uint64_t protected_bytes = 0;
  for (const LayerScan& scan : scans) protected_bytes += scan.protected_bytes;
  std::string volume_parent = o.work_dir;
  RemoveOnExit memory_dir;
  if (!o.memory_dir.empty()) {
    struct statvfs sv;
    const uint64_t need = protected_bytes + protected_bytes / 8 + (uint64_t{64} << 20);
    if (::statvfs(o.memory_dir.c_str(), &sv) == 0 && uint64_t{sv.f_bavail} * sv.f_frsize >= need) {
      std::string tmpl = o.memory_dir + "/cloister-image-XXXXXX";
      if (::mkdtemp(tmpl.data()) != nullptr) {
        memory_dir.path = tmpl;
        volume_parent = tmpl;
      }
    }
  }
  for (Target& t : targets) {
    ASSIGN_OR_RETURN(t.key, crypto::RandomSecret(32));
    t.volume_dir = volume_parent + "/volume-" + t.name;
    volume::CreateOptions co;
    co.protection = t.dir.encrypt ? volume::Protection::kEncrypted : volume::Protection::kAuthenticatedOnly;
    ASSIGN_OR_RETURN(t.v, volume::Volume::Create(os::Env::Posix(), t.volume_dir, t.key, co));
  }

  // --- pass 2: rewrite the layers that held protected entries; copy the others ---
  ASSIGN_OR_RETURN(ImageWriter writer, ImageWriter::Begin(o.to, o.work_dir));
  std::vector<Blob> out_layers;
  json diff_ids = json::array();
  const json old_diff_ids = img.config.contains("rootfs") ? img.config["rootfs"].value("diff_ids", json::array())
                                                          : json::array();
  if (old_diff_ids.size() != img.layers.size()) {
    return InvalidArgument(src_name + ": the config lists " + std::to_string(old_diff_ids.size()) +
                           " layers, the manifest " + std::to_string(img.layers.size()));
  }
  std::vector<uint8_t> buf(kIoSize);
  for (size_t li = 0; li < img.layers.size(); ++li) {
    const LayerScan& scan = scans[li];
    for (Target& t : targets) RETURN_IF_ERROR(ApplyHiding(t, scan));
    if (!scan.drops) {
      ASSIGN_OR_RETURN(Blob b, writer.Adopt(img.layers[li], /*copy=*/true));
      out_layers.push_back(b);
      diff_ids.push_back(old_diff_ids[li]);
      continue;
    }
    const std::string what = src_name + " layer " + std::to_string(li);
    LayerReader in;
    RETURN_IF_ERROR(in.Open(img.layers[li], what, /*check_digest=*/true));
    LayerWriter lw;
    RETURN_IF_ERROR(lw.Open(writer.TempBlobPath(), /*gzip=*/true));
    struct archive_entry* e = nullptr;
    while (true) {
      int r = archive_read_next_header(in.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK) return in.Fail();
      ASSIGN_OR_RETURN(std::string path, Normalise(archive_entry_pathname(e)));
      Target* owner = nullptr;
      for (Target& t : targets) {
        if (AtOrBelow(path, t.dir.path)) owner = &t;
      }
      progress(0, 1);
      std::string wt;
      if (owner != nullptr) {
        if (WhiteoutKind(path, &wt) == 0) RETURN_IF_ERROR(Apply(*owner, path, e, in.get(), buf, progress));
        continue;  // nothing of it stays in the layer, whiteouts included
      }
      archive_entry_sparse_clear(e);
      if (archive_write_header(lw.get(), e) != ARCHIVE_OK) return lw.Fail(what);
      if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 && archive_entry_hardlink(e) == nullptr) {
        while (true) {
          la_ssize_t n = archive_read_data(in.get(), buf.data(), buf.size());
          if (n < 0) return ArchiveError(in.get(), what);
          if (n == 0) break;
          if (archive_write_data(lw.get(), buf.data(), static_cast<size_t>(n)) != n) return lw.Fail(what);
          progress(static_cast<uint64_t>(n), 0);
          result.bytes_read += static_cast<uint64_t>(n);
        }
      }
    }
    // The blob read is the one scanned: same digest, or nothing is written.
    RETURN_IF_ERROR(in.Finish());
    std::string diff_id;
    ASSIGN_OR_RETURN(Blob nb, lw.Close(&diff_id));
    ASSIGN_OR_RETURN(nb, writer.Adopt(nb, /*copy=*/false));
    out_layers.push_back(nb);
    diff_ids.push_back(diff_id);
    result.layers_rewritten++;
  }

  // --- the volumes' first commits, and the new top layer ---
  LayerWriter top;
  RETURN_IF_ERROR(top.Open(writer.TempBlobPath(), /*gzip=*/false));
  auto add_dir = [&](const std::string& name, const Node& like) -> Status {
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), like.mode);
    archive_entry_set_uid(e.get(), like.uid);
    archive_entry_set_gid(e.get(), like.gid);
    archive_entry_set_mtime(e.get(), like.mtime_ns / 1000000000, like.mtime_ns % 1000000000);
    if (archive_write_header(top.get(), e.get()) != ARCHIVE_OK) return top.Fail("the new layer");
    return Status::Ok();
  };
  auto add_file = [&](const std::string& name, const std::string& src, uint32_t mode, int64_t uid,
                      int64_t gid) -> Status {
    int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open " + src, errno);
    struct stat st;
    ::fstat(fd, &st);
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), mode);
    archive_entry_set_uid(e.get(), uid);
    archive_entry_set_gid(e.get(), gid);
    archive_entry_set_size(e.get(), st.st_size);
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    Status s;
    if (archive_write_header(top.get(), e.get()) != ARCHIVE_OK) s = top.Fail("the new layer");
    while (s.ok()) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) s = ErrnoStatus("read " + src, errno);
      if (n <= 0) break;
      if (archive_write_data(top.get(), buf.data(), static_cast<size_t>(n)) != n) s = top.Fail("the new layer");
    }
    ::close(fd);
    return s;
  };
  for (Target& t : targets) {
    // Directories' times as in the image (adding their entries moved them).
    Status times;
    index.ForEachBelow(t.dir.path, [&](const std::string& path, const Node& n) {
      if (times.ok() && n.type == 'd') times = t.v->SetMtime(Inner(t, path), n.mtime_ns);
    });
    RETURN_IF_ERROR(times);
    RETURN_IF_ERROR(t.v->SetMtime("/", t.root.mtime_ns));
    ASSIGN_OR_RETURN(volume::Tag tag, t.v->Commit());
    t.v.reset();  // closing removes the objects of files the layers replaced
    // Open it again as the runtime will, at its tag (its metadata
    // authenticates), and count what it holds.
    volume::OpenOptions ro;
    ro.read_only = true;
    ro.expected_tag = tag;
    ASSIGN_OR_RETURN(auto check, volume::Volume::Open(os::Env::Posix(), t.volume_dir, t.key, ro));
    uint64_t files = 0, bytes = 0;
    RETURN_IF_ERROR(CountFiles(*check, "", &files, &bytes));
    check.reset();
    ProtectedVolume pv{t.name, t.dir.path, t.dir.encrypt, volume::TagToHex(tag), files, bytes};
    result.volumes.push_back(pv);
    // The volume's own files, owned like the directory they replace.
    const std::string base = t.dir.path.substr(1);
    RETURN_IF_ERROR(add_dir(base, t.root));
    std::vector<std::string> rels;
    for (auto it = fs::recursive_directory_iterator(t.volume_dir); it != fs::recursive_directory_iterator(); ++it) {
      rels.push_back(fs::relative(it->path(), t.volume_dir).string());
    }
    std::sort(rels.begin(), rels.end());
    for (const std::string& rel : rels) {
      const std::string src = t.volume_dir + "/" + rel;
      struct stat st;
      if (::lstat(src.c_str(), &st) != 0) return ErrnoStatus("stat " + src, errno);
      if (S_ISDIR(st.st_mode)) {
        Node like = t.root;
        like.mode = st.st_mode & 07777;
        like.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        RETURN_IF_ERROR(add_dir(base + "/" + rel, like));
      } else if (S_ISREG(st.st_mode)) {
        RETURN_IF_ERROR(add_file(base + "/" + rel, src, st.st_mode & 07777, t.root.uid, t.root.gid));
      } else {
        return InternalError(src + ": a volume holds only files and directories");
      }
    }
  }
  {
    // The runtime library, and the directories above it the image lacks.
    Node dir;
    dir.type = 'd';
    dir.mode = 0755;
    dir.mtime_ns = static_cast<int64_t>(std::time(nullptr)) * 1000000000;
    const std::string lib(kRuntimeInImage);
    std::vector<std::string> parents;
    for (std::string p = Parent(lib); p != "/"; p = Parent(p)) parents.push_back(p);
    for (auto it = parents.rbegin(); it != parents.rend(); ++it) {
      if (index.Find(*it) == nullptr) RETURN_IF_ERROR(add_dir(it->substr(1), dir));
    }
    RETURN_IF_ERROR(add_file(lib.substr(1), o.runtime_file, 0755, 0, 0));
  }
  std::string top_diff;
  ASSIGN_OR_RETURN(Blob tb, top.Close(&top_diff));
  ASSIGN_OR_RETURN(tb, writer.Adopt(tb, /*copy=*/false));
  out_layers.push_back(tb);
  diff_ids.push_back(top_diff);

  // --- the configuration ---
  json config = img.config;
  config["rootfs"] = {{"type", "layers"}, {"diff_ids", diff_ids}};
  json& c = config["config"];
  if (!c.is_object()) c = json::object();
  std::vector<std::pair<std::string, std::string>> image_env = ImageEnv(c);
  std::erase_if(image_env, [](const auto& kv) { return RuntimeVariable(kv.first); });
  image_env.emplace_back("LD_PRELOAD", std::string(kRuntimeInImage));
  image_env.emplace_back("CLOISTER_CONFIG_ID", o.session + "/" + o.service);
  image_env.emplace_back("CLOISTER_CAS_KEY", o.cas_key);
  image_env.emplace_back("CLOISTER_LAS_SOCKET", o.las_socket);
  c["Env"] = json::array();
  for (const auto& [k, v] : image_env) c["Env"].push_back(k + "=" + v);
  const std::string now = NowRfc3339();
  config["created"] = now;
  if (config.contains("history") && config["history"].is_array()) {
    std::string dirs;
    for (const Target& t : targets) dirs += (dirs.empty() ? "" : ", ") + t.dir.path;
    config["history"].push_back({{"created", now},
                                 {"created_by", "cloister image protect"},
                                 {"comment", "protected volumes at " + dirs + "; the Cloister runtime"}});
  }
  // --- the session (before the image is written: an image that no valid
  // session admits is not written at all) ---
  for (size_t i = 0; i < targets.size(); ++i) {
    session.volumes[i].tag = result.volumes[i].tag;
    session.volumes[i].key = &targets[i].key;
  }
  session.binary_sha256 = result.binary_sha256;
  ASSIGN_OR_RETURN(result.session_yaml, BuildSession(o, session));
  ASSIGN_OR_RETURN(result.manifest_digest, writer.Finish(config, out_layers, img.manifest_annotations));
  return result;
}

}  // namespace cloister::image
