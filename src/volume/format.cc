#include "volume/format.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace cloister::volume::format {
namespace {

constexpr uint8_t kHeaderMagic[8] = {'C', 'L', 'O', 'I', 'S', 'T', 'R', 'V'};
constexpr uint32_t kManifestMagic = 0x3146534d;      // "MSF1"
constexpr uint32_t kManifestFileMagic = 0x46464d43;  // "CMFF"
constexpr char kKdfLabel[] = "cloister volume v1 ";
constexpr char kTagLabel[] = "cloister volume tag v1";
constexpr char kNodeLabel[] = "cloister node v1";
constexpr char kManifestLabel[] = "cloister manifest v1";
constexpr char kCommitLabel[] = "cloister journal commit v1";

StatusOr<SecretBytes> Derive(const SecretBytes& volume_key, const Id& volume_id,
                             std::string_view label,
                             std::span<const uint8_t> extra = {}) {
  Bytes info;
  PutBytes(info, AsBytes(kKdfLabel));
  PutBytes(info, AsBytes(label));
  PutBytes(info, extra);
  return crypto::HkdfSha256(volume_key, volume_id, info, 32);
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name == "." || name == "..") return false;
  return name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

bool IsZero(std::span<const uint8_t> bytes) {
  uint8_t acc = 0;
  for (uint8_t b : bytes) acc |= b;
  return acc == 0;
}

Status ValidateChunkSize(uint32_t c) {
  if (c < kMinChunkSize || c > kMaxChunkSize || (c & (c - 1)) != 0) {
    return InvalidArgument("chunk size must be a power of two from 512 to 65536");
  }
  return Status::Ok();
}

Bytes EncodeHeader(const Header& h, const SecretBytes& header_key) {
  Bytes out;
  PutBytes(out, kHeaderMagic);
  PutU32(out, h.version);
  PutU32(out, h.flags);
  PutU32(out, h.chunk_size);
  PutU32(out, 0);
  PutBytes(out, h.volume_id);
  crypto::Digest mac = crypto::HmacSha256(header_key, {out});
  PutBytes(out, mac);
  return out;
}

StatusOr<Header> ParseHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() != kHeaderSize) {
    return IntegrityError("volume header has the wrong size (" +
                          std::to_string(bytes.size()) + " bytes)");
  }
  ByteReader r(bytes);
  auto magic = r.Take(8);
  if (std::memcmp(magic.data(), kHeaderMagic, 8) != 0) {
    return IntegrityError("not a Cloister volume (bad magic)");
  }
  Header h;
  h.version = r.U32();
  h.flags = r.U32();
  h.chunk_size = r.U32();
  uint32_t reserved = r.U32();
  auto id = r.Take(kIdSize);
  std::copy(id.begin(), id.end(), h.volume_id.begin());
  if (h.version != kFormatVersion1 && h.version != kFormatVersion2 && h.version != kFormatVersion3) {
    return FailedPrecondition("unsupported volume format version " + std::to_string(h.version));
  }
  if ((h.flags & ~kFlagAuthenticatedOnly) != 0 || reserved != 0) {
    return IntegrityError("volume header has unknown flags");
  }
  if (!ValidateChunkSize(h.chunk_size).ok()) {
    return IntegrityError("volume header has an invalid chunk size");
  }
  return h;
}

bool VerifyHeader(std::span<const uint8_t> bytes, const SecretBytes& header_key) {
  if (bytes.size() != kHeaderSize) return false;
  crypto::Digest mac = crypto::HmacSha256(header_key, {bytes.first(kHeaderSize - 32)});
  return ConstantTimeEquals(mac, bytes.subspan(kHeaderSize - 32));
}

StatusOr<SecretBytes> DeriveHeaderKey(const SecretBytes& k, const Id& id) {
  return Derive(k, id, "header");
}

StatusOr<VolumeKeys> DeriveVolumeKeys(const SecretBytes& k, const Id& id) {
  VolumeKeys keys;
  ASSIGN_OR_RETURN(keys.header, Derive(k, id, "header"));
  ASSIGN_OR_RETURN(keys.tag, Derive(k, id, "tag"));
  return keys;
}

StatusOr<SecretBytes> DeriveManifestKey(const SecretBytes& k, const Id& id, uint64_t seq) {
  uint8_t b[8];
  StoreU64(b, seq);
  return Derive(k, id, "manifest", b);
}

StatusOr<SecretBytes> DeriveJournalKey(const SecretBytes& k, const Id& id, uint64_t gen) {
  uint8_t b[8];
  StoreU64(b, gen);
  return Derive(k, id, "journal", b);
}

StatusOr<SecretBytes> DeriveSyncLogKey(const SecretBytes& k, const Id& id, const Tag& base_tag,
                                       std::span<const uint8_t> salt) {
  Bytes extra(base_tag.begin(), base_tag.end());
  extra.insert(extra.end(), salt.begin(), salt.end());
  return Derive(k, id, "sync log", extra);
}

StatusOr<SecretBytes> DeriveObjectKey(const SecretBytes& k, const Id& id,
                                      const Id& object_id) {
  return Derive(k, id, "object", object_id);
}

// ---- Manifest ---------------------------------------------------------------

namespace {

constexpr uint32_t kDeltaMagic = 0x3244534d;  // "MSD2"
constexpr char kTagLabelV2[] = "cloister volume tag v2";
constexpr char kManifestLabelV2[] = "cloister manifest v2";
constexpr char kCommitLabelV2[] = "cloister journal commit v2";

void EncodeRecord(Bytes& out, const InodeRecord& in) {
  PutU64(out, in.ino);
  PutU64(out, in.parent);
  PutU8(out, static_cast<uint8_t>(in.type));
  PutU32(out, in.mode);
  PutU64(out, static_cast<uint64_t>(in.mtime_ns));
  PutLengthPrefixed(out, AsBytes(in.name));
  if (in.type == InodeType::kFile) {
    PutU64(out, in.size);
    PutBytes(out, in.object_id);
    PutU64(out, in.encryptions);
    PutU32(out, static_cast<uint32_t>(in.root.size()));
    for (const Entry& e : in.root) PutBytes(out, e);
  } else if (in.type == InodeType::kSymlink) {
    PutLengthPrefixed(out, AsBytes(in.target));
  }
}

// Reads one inode record and checks the rules that concern it alone
// (section 8.1): type, mode, name, inode number below next_ino, the root
// directory's shape, a file's size and root entries. Returns an empty
// string on success, else what is wrong.
std::string DecodeRecord(ByteReader& r, uint64_t next_ino, uint32_t chunk_size, InodeRecord& in) {
  in.ino = r.U64();
  in.parent = r.U64();
  uint8_t type = r.U8();
  in.mode = r.U32();
  in.mtime_ns = static_cast<int64_t>(r.U64());
  auto name = r.LengthPrefixed(kMaxNameLength);
  in.name.assign(name.begin(), name.end());
  if (!r.ok()) return "truncated inode";
  if (type < 1 || type > 3) return "unknown inode type";
  in.type = static_cast<InodeType>(type);
  if ((in.mode & ~07777u) != 0) return "invalid mode";
  if (in.type == InodeType::kFile) {
    const uint32_t fanout = Fanout(chunk_size);
    in.size = r.U64();
    auto oid = r.Take(kIdSize);
    if (r.ok()) std::copy(oid.begin(), oid.end(), in.object_id.begin());
    in.encryptions = r.U64();
    uint32_t n = r.U32();
    if (!r.ok()) return "truncated file inode";
    if (n > fanout) return "root node wider than the fanout";
    if (in.size > kMaxFileSize) return "file size out of range";
    uint64_t chunks = ChunkCount(in.size, chunk_size);
    uint32_t height = TreeHeight(chunks, fanout);
    uint64_t used = height == 0 ? 0 : (chunks + Power(fanout, height - 1) - 1) / Power(fanout, height - 1);
    if (n > used) return "root node has entries beyond the file size";
    in.root.resize(n);
    for (uint32_t k = 0; k < n; ++k) {
      auto e = r.Take(kEntrySize);
      if (!r.ok()) return "truncated root node";
      std::copy(e.begin(), e.end(), in.root[k].begin());
    }
  } else if (in.type == InodeType::kSymlink) {
    auto t = r.LengthPrefixed(kMaxSymlinkLength);
    if (!r.ok() || t.empty()) return "bad symlink target";
    in.target.assign(t.begin(), t.end());
  }
  if (in.ino == kRootIno) {
    if (in.type != InodeType::kDirectory || in.parent != 0 || !in.name.empty()) {
      return "invalid root directory";
    }
  } else if (in.ino == 0 || in.ino >= next_ino || !ValidName(in.name)) {
    return "invalid inode number or name";
  }
  return "";
}

}  // namespace

size_t EncodedRecordSize(const InodeRecord& in) {
  size_t n = 33 + in.name.size();
  if (in.type == InodeType::kFile) n += 36 + kEntrySize * in.root.size();
  if (in.type == InodeType::kSymlink) n += 4 + in.target.size();
  return n;
}

Bytes EncodeManifest(const Manifest& m) {
  Bytes out;
  size_t total = 24;
  for (const InodeRecord& in : m.inodes) total += EncodedRecordSize(in);
  out.reserve(total);
  PutU32(out, kManifestMagic);
  PutU64(out, m.seq);
  PutU64(out, m.next_ino);
  PutU32(out, static_cast<uint32_t>(m.inodes.size()));
  for (const InodeRecord& in : m.inodes) EncodeRecord(out, in);
  return out;
}

StatusOr<Manifest> DecodeManifest(std::span<const uint8_t> bytes, uint32_t chunk_size) {
  auto bad = [](const std::string& why) { return IntegrityError("malformed manifest: " + why); };
  ByteReader r(bytes);
  if (r.U32() != kManifestMagic) return bad("bad magic");
  Manifest m;
  m.seq = r.U64();
  m.next_ino = r.U64();
  uint32_t count = r.U32();
  if (!r.ok()) return bad("truncated");
  // Each inode record takes at least 33 bytes (ino, parent, type, mode,
  // mtime, name length); reject counts the input cannot hold.
  if (count > r.remaining() / 33) return bad("inode count exceeds input");
  std::unordered_map<uint64_t, size_t> by_ino;
  for (uint32_t i = 0; i < count; ++i) {
    InodeRecord in;
    std::string why = DecodeRecord(r, m.next_ino, chunk_size, in);
    if (!why.empty()) return bad(why);
    if (!by_ino.emplace(in.ino, m.inodes.size()).second) return bad("duplicate inode");
    m.inodes.push_back(std::move(in));
  }
  if (!r.AtEnd()) return bad("trailing bytes");
  if (!by_ino.count(kRootIno)) return bad("no root directory");
  std::set<std::pair<uint64_t, std::string>> names;
  for (const InodeRecord& in : m.inodes) {
    if (in.ino == kRootIno) continue;
    auto p = by_ino.find(in.parent);
    if (p == by_ino.end() || m.inodes[p->second].type != InodeType::kDirectory) {
      return bad("inode " + std::to_string(in.ino) + " has no directory parent");
    }
    if (!names.emplace(in.parent, in.name).second) return bad("duplicate name in a directory");
  }
  // Every inode must reach the root (no cycles among directories).
  std::unordered_map<uint64_t, int> state;  // 1 = on path, 2 = reaches root
  state[kRootIno] = 2;
  for (const InodeRecord& in : m.inodes) {
    std::vector<uint64_t> path;
    uint64_t cur = in.ino;
    while (state[cur] == 0) {
      state[cur] = 1;
      path.push_back(cur);
      cur = m.inodes[by_ino[cur]].parent;
    }
    if (state[cur] == 1) return bad("directory cycle");
    for (uint64_t p : path) state[p] = 2;
  }
  std::unordered_set<std::string> objects;
  for (const InodeRecord& in : m.inodes) {
    if (in.type == InodeType::kFile &&
        !objects.insert(std::string(in.object_id.begin(), in.object_id.end())).second) {
      return bad("two files share an object");
    }
  }
  std::sort(m.inodes.begin(), m.inodes.end(),
            [](const InodeRecord& a, const InodeRecord& b) { return a.ino < b.ino; });
  return m;
}

// ---- Manifest deltas (version 2) ------------------------------------------------

Bytes EncodeDelta(const ManifestDelta& d) {
  Bytes out;
  size_t total = 28 + 8 * d.removed.size();
  for (const InodeRecord& in : d.records) total += EncodedRecordSize(in);
  out.reserve(total);
  PutU32(out, kDeltaMagic);
  PutU64(out, d.seq);
  PutU64(out, d.next_ino);
  PutU32(out, static_cast<uint32_t>(d.records.size()));
  for (const InodeRecord& in : d.records) EncodeRecord(out, in);
  PutU32(out, static_cast<uint32_t>(d.removed.size()));
  for (uint64_t ino : d.removed) PutU64(out, ino);
  return out;
}

StatusOr<ManifestDelta> DecodeDelta(std::span<const uint8_t> bytes, uint32_t chunk_size) {
  auto bad = [](const std::string& why) { return IntegrityError("malformed manifest delta: " + why); };
  ByteReader r(bytes);
  if (r.U32() != kDeltaMagic) return bad("bad magic");
  ManifestDelta d;
  d.seq = r.U64();
  d.next_ino = r.U64();
  uint32_t count = r.U32();
  if (!r.ok()) return bad("truncated");
  if (count > r.remaining() / 33) return bad("inode count exceeds input");
  d.records.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::string why = DecodeRecord(r, d.next_ino, chunk_size, d.records[i]);
    if (!why.empty()) return bad(why);
    if (i > 0 && d.records[i].ino <= d.records[i - 1].ino) return bad("records out of order");
  }
  uint32_t removed = r.U32();
  if (!r.ok() || removed != r.remaining() / 8 || r.remaining() % 8 != 0) {
    return bad("removed list does not match its count");
  }
  d.removed.resize(removed);
  for (uint32_t i = 0; i < removed; ++i) {
    d.removed[i] = r.U64();
    if (d.removed[i] <= kRootIno) return bad("removes the root or inode 0");
    if (i > 0 && d.removed[i] <= d.removed[i - 1]) return bad("removed inodes out of order");
  }
  // A record and a removal of the same inode would be ambiguous.
  size_t a = 0, b = 0;
  while (a < d.records.size() && b < d.removed.size()) {
    if (d.records[a].ino == d.removed[b]) return bad("an inode is both changed and removed");
    d.records[a].ino < d.removed[b] ? ++a : ++b;
  }
  return d;
}

StatusOr<ManifestState> ManifestState::FromManifest(Manifest m) {
  ManifestState s;
  s.seq_ = m.seq;
  s.next_ino_ = m.next_ino;
  for (InodeRecord& in : m.inodes) {
    s.bytes_ += EncodedRecordSize(in);
    if (in.ino != kRootIno) s.names_.emplace(std::make_pair(in.parent, in.name), in.ino);
    if (in.type == InodeType::kFile) s.objects_.emplace(in.object_id, in.ino);
    const uint64_t ino = in.ino;
    s.inodes_.emplace(ino, std::move(in));
  }
  if (s.names_.size() + 1 != s.inodes_.size() || !s.inodes_.count(kRootIno)) {
    return IntegrityError("malformed manifest: duplicate names or no root");
  }
  return s;
}

Status ManifestState::Apply(const ManifestDelta& d) {
  auto bad = [](const std::string& why) {
    return IntegrityError("manifest delta does not apply: " + why);
  };
  if (d.seq != seq_ + 1) return bad("sequence number " + std::to_string(d.seq) + " does not follow " + std::to_string(seq_));
  if (d.next_ino < next_ino_) return bad("next inode number goes back");
  // Directories that lose their directory status: none may keep children.
  std::vector<uint64_t> vacated;
  auto drop = [&](const InodeRecord& old) {
    if (old.ino != kRootIno) names_.erase(std::make_pair(old.parent, old.name));
    if (old.type == InodeType::kFile) objects_.erase(old.object_id);
    bytes_ -= EncodedRecordSize(old);
  };
  for (uint64_t ino : d.removed) {
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return bad("removes inode " + std::to_string(ino) + ", which does not exist");
    drop(it->second);
    if (it->second.type == InodeType::kDirectory) vacated.push_back(ino);
    inodes_.erase(it);
  }
  for (const InodeRecord& in : d.records) {
    auto it = inodes_.find(in.ino);
    if (it != inodes_.end()) {
      drop(it->second);
      if (it->second.type == InodeType::kDirectory && in.type != InodeType::kDirectory) {
        vacated.push_back(in.ino);
      }
      it->second = in;
    } else {
      inodes_.emplace(in.ino, in);
    }
    bytes_ += EncodedRecordSize(in);
  }
  for (const InodeRecord& in : d.records) {
    if (in.ino != kRootIno && !names_.emplace(std::make_pair(in.parent, in.name), in.ino).second) {
      return bad("duplicate name in a directory");
    }
    if (in.type == InodeType::kFile && !objects_.emplace(in.object_id, in.ino).second) {
      return bad("two files share an object");
    }
  }
  for (uint64_t ino : vacated) {
    auto child = names_.lower_bound(std::make_pair(ino, std::string()));
    if (child != names_.end() && child->first.first == ino) {
      return bad("inode " + std::to_string(child->second) + " has no directory parent");
    }
  }
  // Every changed inode must reach the root through directories. Unchanged
  // ones did before, and their ancestors either are unchanged or reach it.
  for (const InodeRecord& in : d.records) {
    uint64_t cur = in.ino;
    size_t steps = 0;
    while (cur != kRootIno) {
      const InodeRecord& rec = inodes_.at(cur);
      auto p = inodes_.find(rec.parent);
      if (p == inodes_.end() || p->second.type != InodeType::kDirectory) {
        return bad("inode " + std::to_string(cur) + " has no directory parent");
      }
      if (++steps > inodes_.size()) return bad("directory cycle");
      cur = rec.parent;
    }
  }
  seq_ = d.seq;
  next_ino_ = d.next_ino;
  return Status::Ok();
}

Manifest ManifestState::ToManifest() const {
  Manifest m;
  m.seq = seq_;
  m.next_ino = next_ino_;
  m.inodes.reserve(inodes_.size());
  for (const auto& [ino, in] : inodes_) m.inodes.push_back(in);
  return m;
}

Tag ComputeTagV2(const SecretBytes& tag_key, const Id& volume_id, uint64_t seq, const Tag& prev_tag,
                 std::span<const uint8_t> change_bytes) {
  uint8_t seq_le[8];
  StoreU64(seq_le, seq);
  crypto::Digest h = crypto::Sha256(change_bytes);
  return crypto::HmacSha256(tag_key, {AsBytes(kTagLabelV2), volume_id, seq_le, prev_tag, h});
}

Tag ComputeTag(const SecretBytes& tag_key, const Id& volume_id, uint64_t seq,
               std::span<const uint8_t> manifest_bytes) {
  uint8_t seq_le[8];
  StoreU64(seq_le, seq);
  crypto::Digest h = crypto::Sha256(manifest_bytes);
  return crypto::HmacSha256(tag_key, {AsBytes(kTagLabel), volume_id, seq_le, h});
}

Bytes ManifestAad(const Id& volume_id, uint64_t seq, uint32_t version) {
  Bytes aad;
  PutBytes(aad, AsBytes(version == kFormatVersion1 ? kManifestLabel : kManifestLabelV2));
  PutBytes(aad, volume_id);
  PutU64(aad, seq);
  return aad;
}

Bytes EncodeManifestFile(uint64_t seq, std::span<const uint8_t> sealed, uint32_t version) {
  Bytes out;
  PutU32(out, kManifestFileMagic);
  PutU32(out, version);
  PutU64(out, seq);
  PutBytes(out, sealed);
  return out;
}

StatusOr<ManifestFile> ParseManifestFile(std::span<const uint8_t> bytes, uint32_t version) {
  ByteReader r(bytes);
  uint32_t magic = r.U32();
  uint32_t file_version = r.U32();
  uint64_t seq = r.U64();
  if (!r.ok() || magic != kManifestFileMagic || file_version != version) {
    return IntegrityError("manifest file is malformed");
  }
  return ManifestFile{seq, bytes.subspan(16)};
}

// ---- Tree geometry ------------------------------------------------------------

uint64_t Power(uint64_t f, uint32_t e) {
  uint64_t r = 1;
  for (uint32_t i = 0; i < e; ++i) {
    if (r > (uint64_t{1} << 63) / f) return uint64_t{1} << 63;
    r *= f;
  }
  return r;
}

uint32_t TreeHeight(uint64_t chunks, uint32_t fanout) {
  if (chunks == 0) return 0;
  uint32_t h = 1;
  uint64_t cap = fanout;
  while (cap < chunks) {
    cap = cap > (uint64_t{1} << 63) / fanout ? (uint64_t{1} << 63) : cap * fanout;
    ++h;
  }
  return h;
}

uint64_t NodePosition(uint32_t level, uint64_t index, uint32_t fanout) {
  // Nodes of levels 1..level in the subtrees of (level, 0..index), plus the
  // higher nodes that complete before (level, index) in post-order.
  uint64_t per_subtree = 0;
  for (uint32_t m = 1; m <= level; ++m) per_subtree += Power(fanout, level - m);
  uint64_t pos = (index + 1) * per_subtree;
  for (uint64_t div = fanout; index / div > 0; div *= fanout) pos += index / div;
  return pos - 1;
}

uint64_t NodeExtent(uint64_t chunks, uint32_t chunk_size) {
  uint32_t fanout = Fanout(chunk_size);
  uint32_t h = TreeHeight(chunks, fanout);
  uint64_t end = 0;
  for (uint32_t level = 1; level + 1 <= h; ++level) {
    uint64_t last = (chunks - 1) / Power(fanout, level);
    end = std::max(end, NodePosition(level, last, fanout) + 1);
  }
  return end * chunk_size;
}

crypto::Digest NodeHash(const Id& object_id, uint32_t level, uint64_t index,
                        std::span<const uint8_t> node) {
  uint8_t pos[12];
  StoreU32(pos, level);
  StoreU64(pos + 4, index);
  crypto::Sha256Hasher h;
  h.Update(kNodeLabel);
  h.Update(object_id);
  h.Update(std::span<const uint8_t>(pos, sizeof(pos)));
  h.Update(node);
  return h.Finish();
}

void ChunkAad(const Id& volume_id, const Id& object_id, uint64_t index,
              uint8_t out[kChunkAadSize]) {
  std::memcpy(out, volume_id.data(), kIdSize);
  std::memcpy(out + kIdSize, object_id.data(), kIdSize);
  StoreU64(out + 2 * kIdSize, index);
}

Entry MakeLeaf(const crypto::Nonce& nonce, const crypto::AeadTag& tag, bool alternate) {
  Entry e{};
  std::memcpy(e.data(), nonce.data(), nonce.size());
  std::memcpy(e.data() + nonce.size(), tag.data(), tag.size());
  StoreU32(e.data() + 28, alternate ? kLeafPresent | kLeafAlternate : kLeafPresent);
  return e;
}

bool LeafIsAlternate(const Entry& e) { return (LoadU32(e.data() + 28) & kLeafAlternate) != 0; }

bool ParseLeaf(const Entry& e, crypto::Nonce& nonce, crypto::AeadTag& tag, uint32_t version) {
  const uint32_t flags = LoadU32(e.data() + 28);
  if (flags != kLeafPresent && !(HasAlternateSlots(version) && flags == (kLeafPresent | kLeafAlternate))) {
    return false;
  }
  std::memcpy(nonce.data(), e.data(), nonce.size());
  std::memcpy(tag.data(), e.data() + nonce.size(), tag.size());
  return true;
}

// ---- Journal --------------------------------------------------------------------

std::string JournalName(uint64_t generation) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%s%016llx", kJournalPrefix,
                static_cast<unsigned long long>(generation));
  return buf;
}

std::optional<uint64_t> ParseJournalName(const std::string& name) {
  const size_t p = sizeof(kJournalPrefix) - 1;
  if (name.size() != p + 16 || name.compare(0, p, kJournalPrefix) != 0) return std::nullopt;
  auto bytes = HexDecode(name.substr(p));
  if (!bytes || name.substr(p) != HexEncode(*bytes)) return std::nullopt;
  uint64_t g = 0;
  for (uint8_t b : *bytes) g = g << 8 | b;
  return g;
}

static void PutFrameHeader(Bytes& out, FrameType type, size_t body) {
  PutU32(out, kFrameMagic);
  PutU8(out, static_cast<uint8_t>(type));
  PutU8(out, 0);
  PutU16(out, 0);
  PutU32(out, static_cast<uint32_t>(body));
}

void AppendPageFrame(Bytes& out, const Id& object, PageKind kind, uint64_t offset,
                     std::span<const uint8_t> page) {
  PutFrameHeader(out, FrameType::kPage, kIdSize + 9 + page.size());
  PutBytes(out, object);
  PutU8(out, static_cast<uint8_t>(kind));
  PutU64(out, offset);
  PutBytes(out, page);
}

Bytes EncodePageFrame(const Id& object, PageKind kind, uint64_t offset,
                      std::span<const uint8_t> page) {
  Bytes out;
  out.reserve(kFrameHeaderSize + kIdSize + 9 + page.size());
  AppendPageFrame(out, object, kind, offset, page);
  return out;
}

Bytes EncodeCommitFrame(uint64_t seq, std::span<const uint8_t> sealed) {
  Bytes out;
  PutFrameHeader(out, FrameType::kCommit, 8 + sealed.size());
  PutU64(out, seq);
  PutBytes(out, sealed);
  return out;
}

Bytes CommitAad(const Id& volume_id, uint64_t generation, uint64_t seq, uint32_t version) {
  Bytes aad;
  PutBytes(aad, AsBytes(version == kFormatVersion1 ? kCommitLabel : kCommitLabelV2));
  PutBytes(aad, volume_id);
  PutU64(aad, generation);
  PutU64(aad, seq);
  return aad;
}

std::optional<size_t> FrameBodyLength(std::span<const uint8_t> header, uint32_t chunk_size) {
  if (header.size() < kFrameHeaderSize) return std::nullopt;
  ByteReader r(header.first(kFrameHeaderSize));
  if (r.U32() != kFrameMagic) return std::nullopt;
  uint8_t type = r.U8();
  uint8_t z1 = r.U8();
  uint16_t z2 = r.U16();
  uint32_t len = r.U32();
  if (z1 != 0 || z2 != 0) return std::nullopt;
  if (type == static_cast<uint8_t>(FrameType::kPage)) {
    if (len != kIdSize + 9 + chunk_size) return std::nullopt;
  } else if (type == static_cast<uint8_t>(FrameType::kCommit)) {
    if (len < 8 + crypto::kAeadNonceSize + crypto::kAeadTagSize + 64 || len > kMaxCommitBody) {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  return len;
}

std::optional<Frame> ParseFrame(std::span<const uint8_t> bytes, uint32_t chunk_size, uint32_t version) {
  auto len = FrameBodyLength(bytes, chunk_size);
  if (!len || bytes.size() - kFrameHeaderSize < *len) return std::nullopt;
  Frame f;
  f.type = static_cast<FrameType>(bytes[4]);
  f.total_size = kFrameHeaderSize + *len;
  ByteReader r(bytes.subspan(kFrameHeaderSize, *len));
  if (f.type == FrameType::kPage) {
    auto id = r.Take(kIdSize);
    std::copy(id.begin(), id.end(), f.object.begin());
    uint8_t kind = r.U8();
    if (kind > (HasAlternateSlots(version) ? 2 : 1)) return std::nullopt;
    f.kind = static_cast<PageKind>(kind);
    f.offset = r.U64();
    if (f.offset % chunk_size != 0 || f.offset > kMaxFileSize * 2) return std::nullopt;
    f.page_offset_in_frame = kFrameHeaderSize + kIdSize + 9;
  } else {
    f.seq = r.U64();
    f.sealed = bytes.subspan(kFrameHeaderSize + 8, *len - 8);
  }
  return f;
}

}  // namespace cloister::volume::format
