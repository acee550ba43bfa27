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
  if (h.version != kFormatVersion) {
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

StatusOr<SecretBytes> DeriveObjectKey(const SecretBytes& k, const Id& id,
                                      const Id& object_id) {
  return Derive(k, id, "object", object_id);
}

// ---- Manifest ---------------------------------------------------------------

Bytes EncodeManifest(const Manifest& m) {
  Bytes out;
  PutU32(out, kManifestMagic);
  PutU64(out, m.seq);
  PutU64(out, m.next_ino);
  PutU32(out, static_cast<uint32_t>(m.inodes.size()));
  for (const InodeRecord& in : m.inodes) {
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
  const uint32_t fanout = Fanout(chunk_size);
  std::unordered_map<uint64_t, size_t> by_ino;
  for (uint32_t i = 0; i < count; ++i) {
    InodeRecord in;
    in.ino = r.U64();
    in.parent = r.U64();
    uint8_t type = r.U8();
    in.mode = r.U32();
    in.mtime_ns = static_cast<int64_t>(r.U64());
    auto name = r.LengthPrefixed(kMaxNameLength);
    in.name.assign(name.begin(), name.end());
    if (!r.ok()) return bad("truncated inode");
    if (type < 1 || type > 3) return bad("unknown inode type");
    in.type = static_cast<InodeType>(type);
    if ((in.mode & ~07777u) != 0) return bad("invalid mode");
    if (in.type == InodeType::kFile) {
      in.size = r.U64();
      auto oid = r.Take(kIdSize);
      if (r.ok()) std::copy(oid.begin(), oid.end(), in.object_id.begin());
      in.encryptions = r.U64();
      uint32_t n = r.U32();
      if (!r.ok()) return bad("truncated file inode");
      if (n > fanout) return bad("root node wider than the fanout");
      if (in.size > kMaxFileSize) return bad("file size out of range");
      uint64_t chunks = ChunkCount(in.size, chunk_size);
      uint32_t height = TreeHeight(chunks, fanout);
      uint64_t used = height == 0 ? 0 : (chunks + Power(fanout, height - 1) - 1) / Power(fanout, height - 1);
      if (n > used) return bad("root node has entries beyond the file size");
      in.root.resize(n);
      for (uint32_t k = 0; k < n; ++k) {
        auto e = r.Take(kEntrySize);
        if (!r.ok()) return bad("truncated root node");
        std::copy(e.begin(), e.end(), in.root[k].begin());
      }
    } else if (in.type == InodeType::kSymlink) {
      auto t = r.LengthPrefixed(kMaxSymlinkLength);
      if (!r.ok() || t.empty()) return bad("bad symlink target");
      in.target.assign(t.begin(), t.end());
    }
    if (in.ino == kRootIno) {
      if (in.type != InodeType::kDirectory || in.parent != 0 || !in.name.empty()) {
        return bad("invalid root directory");
      }
    } else if (in.ino == 0 || in.ino >= m.next_ino || !ValidName(in.name)) {
      return bad("invalid inode number or name");
    }
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

Tag ComputeTag(const SecretBytes& tag_key, const Id& volume_id, uint64_t seq,
               std::span<const uint8_t> manifest_bytes) {
  uint8_t seq_le[8];
  StoreU64(seq_le, seq);
  crypto::Digest h = crypto::Sha256(manifest_bytes);
  return crypto::HmacSha256(tag_key, {AsBytes(kTagLabel), volume_id, seq_le, h});
}

Bytes ManifestAad(const Id& volume_id, uint64_t seq) {
  Bytes aad;
  PutBytes(aad, AsBytes(kManifestLabel));
  PutBytes(aad, volume_id);
  PutU64(aad, seq);
  return aad;
}

Bytes EncodeManifestFile(uint64_t seq, std::span<const uint8_t> sealed) {
  Bytes out;
  PutU32(out, kManifestFileMagic);
  PutU32(out, kFormatVersion);
  PutU64(out, seq);
  PutBytes(out, sealed);
  return out;
}

StatusOr<ManifestFile> ParseManifestFile(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  uint32_t magic = r.U32();
  uint32_t version = r.U32();
  uint64_t seq = r.U64();
  if (!r.ok() || magic != kManifestFileMagic || version != kFormatVersion) {
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

Entry MakeLeaf(const crypto::Nonce& nonce, const crypto::AeadTag& tag) {
  Entry e{};
  std::memcpy(e.data(), nonce.data(), nonce.size());
  std::memcpy(e.data() + nonce.size(), tag.data(), tag.size());
  StoreU32(e.data() + 28, 1);
  return e;
}

bool ParseLeaf(const Entry& e, crypto::Nonce& nonce, crypto::AeadTag& tag) {
  if (LoadU32(e.data() + 28) != 1) return false;
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

Bytes EncodePageFrame(const Id& object, PageKind kind, uint64_t offset,
                      std::span<const uint8_t> page) {
  Bytes out;
  out.reserve(kFrameHeaderSize + kIdSize + 9 + page.size());
  PutFrameHeader(out, FrameType::kPage, kIdSize + 9 + page.size());
  PutBytes(out, object);
  PutU8(out, static_cast<uint8_t>(kind));
  PutU64(out, offset);
  PutBytes(out, page);
  return out;
}

Bytes EncodeCommitFrame(uint64_t seq, std::span<const uint8_t> sealed) {
  Bytes out;
  PutFrameHeader(out, FrameType::kCommit, 8 + sealed.size());
  PutU64(out, seq);
  PutBytes(out, sealed);
  return out;
}

Bytes CommitAad(const Id& volume_id, uint64_t generation, uint64_t seq) {
  Bytes aad;
  PutBytes(aad, AsBytes(kCommitLabel));
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

std::optional<Frame> ParseFrame(std::span<const uint8_t> bytes, uint32_t chunk_size) {
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
    if (kind > 1) return std::nullopt;
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
