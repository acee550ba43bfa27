// The protected-volume format, versions 1 to 3: pure encoding and decoding of the
// on-disk structures, and the geometry of the per-file hash tree. Nothing
// here performs I/O. docs/volume-format.md is the normative description;
// the constants and layouts below must match it byte for byte.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "crypto/crypto.h"

namespace cloister::volume::format {

constexpr uint32_t kFormatVersion1 = 1;  // every commit carries the whole manifest
constexpr uint32_t kFormatVersion2 = 2;  // commits carry what changed; chained tags
constexpr uint32_t kFormatVersion3 = 3;  // a second location per chunk (alternate data objects)
// What new volumes get.
constexpr uint32_t kFormatVersion = kFormatVersion3;
// Whether a version stores chunks in two slots (section 19).
constexpr bool HasAlternateSlots(uint32_t version) { return version >= kFormatVersion3; }
constexpr size_t kIdSize = 16;
constexpr size_t kEntrySize = 32;
constexpr uint32_t kMinChunkSize = 512;
constexpr uint32_t kMaxChunkSize = 65536;
constexpr uint32_t kDefaultChunkSize = 4096;
constexpr uint64_t kMaxFileSize = uint64_t{1} << 48;
constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxSymlinkLength = 4095;
// Largest COMMIT frame body (and so the largest manifest) a writer may
// produce and a reader accepts.
constexpr size_t kMaxCommitBody = size_t{256} << 20;
// A journal is rotated after this many commits at the latest, which bounds
// the number of seals under one journal key.
constexpr uint64_t kMaxCommitsPerJournal = uint64_t{1} << 20;

// File names inside a volume directory.
constexpr char kHeaderFile[] = "cloister-volume";
constexpr char kManifestFile[] = "manifest";
constexpr char kObjectsDir[] = "objects";
constexpr char kJournalPrefix[] = "journal.";
// A checkpointed journal kept for reuse as the next journal (section 13.3).
constexpr char kSpareJournalFile[] = "journal.spare";
// The sync log (section 20).
constexpr char kSyncLogFile[] = "synclog";

using Id = std::array<uint8_t, kIdSize>;
using Entry = std::array<uint8_t, kEntrySize>;
using Tag = crypto::Digest;

bool IsZero(std::span<const uint8_t> bytes);

// ---- Header -------------------------------------------------------------

constexpr uint32_t kFlagAuthenticatedOnly = 1;

struct Header {
  uint32_t version = kFormatVersion;
  uint32_t flags = 0;
  uint32_t chunk_size = kDefaultChunkSize;
  Id volume_id{};
};
constexpr size_t kHeaderSize = 8 + 4 + 4 + 4 + 4 + kIdSize + 32;

// Header bytes with their MAC (computed with the header key).
Bytes EncodeHeader(const Header& h, const SecretBytes& header_key);
// Parses the unauthenticated fields, so the keys can be derived; the caller
// then checks the MAC with VerifyHeader.
StatusOr<Header> ParseHeader(std::span<const uint8_t> bytes);
bool VerifyHeader(std::span<const uint8_t> bytes, const SecretBytes& header_key);
Status ValidateChunkSize(uint32_t chunk_size);

// ---- Keys ---------------------------------------------------------------

struct VolumeKeys {
  SecretBytes header;  // HMAC key over the header
  SecretBytes tag;     // HMAC key for volume tags
};
StatusOr<VolumeKeys> DeriveVolumeKeys(const SecretBytes& volume_key, const Id& volume_id);
// AES-256-GCM key of the base manifest written for commit `seq`, and of the
// commit frames of journal generation `gen`: each key seals a bounded
// number of records, whatever the volume's lifetime.
StatusOr<SecretBytes> DeriveManifestKey(const SecretBytes& volume_key, const Id& volume_id,
                                        uint64_t seq);
StatusOr<SecretBytes> DeriveJournalKey(const SecretBytes& volume_key, const Id& volume_id,
                                       uint64_t generation);
// AES-256-GCM key of the records of a sync log (section 20) whose base is
// the commit with tag `base_tag`; `salt` is the log's random salt.
StatusOr<SecretBytes> DeriveSyncLogKey(const SecretBytes& volume_key, const Id& volume_id, const Tag& base_tag,
                                       std::span<const uint8_t> salt);
StatusOr<SecretBytes> DeriveHeaderKey(const SecretBytes& volume_key, const Id& volume_id);
StatusOr<SecretBytes> DeriveObjectKey(const SecretBytes& volume_key,
                                      const Id& volume_id, const Id& object_id);

// ---- Manifest -----------------------------------------------------------

enum class InodeType : uint8_t { kFile = 1, kDirectory = 2, kSymlink = 3 };
constexpr uint64_t kRootIno = 1;

struct InodeRecord {
  uint64_t ino = 0;
  uint64_t parent = 0;
  InodeType type = InodeType::kFile;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  std::string name;
  // Files:
  uint64_t size = 0;
  Id object_id{};
  uint64_t encryptions = 0;
  std::vector<Entry> root;  // root node entries, trailing zero entries trimmed
  // Symlinks:
  std::string target;
};

struct Manifest {
  uint64_t seq = 0;
  uint64_t next_ino = 2;
  std::vector<InodeRecord> inodes;  // sorted by ino
};

Bytes EncodeManifest(const Manifest& m);
// Bytes one inode record takes in a manifest or a delta.
size_t EncodedRecordSize(const InodeRecord& in);
// Decodes and checks structural invariants (unique inodes, a rooted tree,
// valid names, root entries within the fanout). Input is untrusted.
StatusOr<Manifest> DecodeManifest(std::span<const uint8_t> bytes, uint32_t chunk_size);

// Version 2: what one commit changes. The new state is the previous one
// with every record of `records` inserted or replacing the record with its
// inode number, and every inode of `removed` deleted.
struct ManifestDelta {
  uint64_t seq = 0;
  uint64_t next_ino = 2;
  std::vector<InodeRecord> records;  // strictly ascending ino
  std::vector<uint64_t> removed;     // strictly ascending, none in records
};
Bytes EncodeDelta(const ManifestDelta& d);
// Decodes a delta and checks each record on its own; whether it applies to
// a state is decided by ManifestState::Apply. Input is untrusted.
StatusOr<ManifestDelta> DecodeDelta(std::span<const uint8_t> bytes, uint32_t chunk_size);

// A manifest held as indexes, so that a delta is applied and checked in
// time proportional to its size, not the volume's.
class ManifestState {
 public:
  // `m` must come from DecodeManifest (it checks the whole structure).
  static StatusOr<ManifestState> FromManifest(Manifest m);
  // Applies `d` if the result is a valid manifest with seq + 1 (every rule
  // of DecodeManifest). On failure the state must not be used any more.
  Status Apply(const ManifestDelta& d);
  Manifest ToManifest() const;
  uint64_t seq() const { return seq_; }
  // Encoded size of the whole manifest.
  size_t encoded_size() const { return 24 + bytes_; }

 private:
  uint64_t seq_ = 0;
  uint64_t next_ino_ = 2;
  size_t bytes_ = 0;
  std::map<uint64_t, InodeRecord> inodes_;
  std::map<std::pair<uint64_t, std::string>, uint64_t> names_;
  std::map<Id, uint64_t> objects_;
};

// Version 1 tag: HMAC(tag key, label || volume id || seq || SHA-256(manifest)).
Tag ComputeTag(const SecretBytes& tag_key, const Id& volume_id, uint64_t seq,
               std::span<const uint8_t> manifest_bytes);
// Version 2 tag: HMAC(tag key, label || volume id || seq || previous tag ||
// SHA-256(delta)); a new volume's state uses a zero previous tag and its
// manifest in place of a delta.
Tag ComputeTagV2(const SecretBytes& tag_key, const Id& volume_id, uint64_t seq, const Tag& prev_tag,
                 std::span<const uint8_t> change_bytes);

// Base manifest file: magic, version, seq, then the sealed manifest (in
// version 2 the sealed plaintext is the state's tag, then the manifest).
Bytes ManifestAad(const Id& volume_id, uint64_t seq, uint32_t version);
Bytes EncodeManifestFile(uint64_t seq, std::span<const uint8_t> sealed, uint32_t version);
struct ManifestFile {
  uint64_t seq;
  std::span<const uint8_t> sealed;
};
StatusOr<ManifestFile> ParseManifestFile(std::span<const uint8_t> bytes, uint32_t version);

// ---- Hash tree geometry ---------------------------------------------------

// Entries per node.
inline uint32_t Fanout(uint32_t chunk_size) { return chunk_size / kEntrySize; }
inline uint64_t ChunkCount(uint64_t size, uint32_t chunk_size) {
  return (size + chunk_size - 1) / chunk_size;
}
// Tree height for n chunks: 0 for none, else the least h >= 1 with F^h >= n.
uint32_t TreeHeight(uint64_t chunks, uint32_t fanout);
// F^e (saturating at 2^63).
uint64_t Power(uint64_t fanout, uint32_t e);
// Position (in nodes) of interior node (level >= 1, index) in the node
// object: post-order over an unbounded tree, so no node moves when a file
// grows.
uint64_t NodePosition(uint32_t level, uint64_t index, uint32_t fanout);
// Node-object length needed for the non-root nodes of a file with n chunks.
uint64_t NodeExtent(uint64_t chunks, uint32_t chunk_size);

// Node hash, binding the node to its object, level and index.
crypto::Digest NodeHash(const Id& object_id, uint32_t level, uint64_t index,
                        std::span<const uint8_t> node);

// Associated data of a chunk: volume id || object id || chunk index.
constexpr size_t kChunkAadSize = 2 * kIdSize + 8;
void ChunkAad(const Id& volume_id, const Id& object_id, uint64_t index,
              uint8_t out[kChunkAadSize]);

// Leaf entry: nonce (12) || GCM tag (16) || flags (u32, bit 0 = present;
// version 3: bit 1 = stored in the alternate data object).
constexpr uint32_t kLeafPresent = 1;
constexpr uint32_t kLeafAlternate = 2;
Entry MakeLeaf(const crypto::Nonce& nonce, const crypto::AeadTag& tag, bool alternate = false);
// False for a hole or flags the version does not allow.
bool ParseLeaf(const Entry& e, crypto::Nonce& nonce, crypto::AeadTag& tag, uint32_t version);
// Whether a leaf's flags name the alternate data object (no validation).
bool LeafIsAlternate(const Entry& e);

// ---- Journal ----------------------------------------------------------------

enum class FrameType : uint8_t { kPage = 1, kCommit = 2 };
// kAlternate: the alternate data object (version 3 only).
enum class PageKind : uint8_t { kData = 0, kNode = 1, kAlternate = 2 };
constexpr size_t kFrameHeaderSize = 12;
constexpr uint32_t kFrameMagic = 0x464a4c43;  // "CLJF"

std::string JournalName(uint64_t generation);
std::optional<uint64_t> ParseJournalName(const std::string& name);

// PAGE: object id, kind, offset, page bytes.
Bytes EncodePageFrame(const Id& object, PageKind kind, uint64_t offset,
                      std::span<const uint8_t> page);
// Appends the same bytes to `out`.
void AppendPageFrame(Bytes& out, const Id& object, PageKind kind, uint64_t offset,
                     std::span<const uint8_t> page);
constexpr size_t PageFrameSize(uint32_t chunk_size) { return kFrameHeaderSize + kIdSize + 9 + chunk_size; }
// COMMIT: seq and a sealed record of (digest of the txn's page frames ||
// tag of the state it follows || manifest bytes (v1) or delta bytes (v2)).
Bytes EncodeCommitFrame(uint64_t seq, std::span<const uint8_t> sealed);
Bytes CommitAad(const Id& volume_id, uint64_t generation, uint64_t seq, uint32_t version);

struct Frame {
  FrameType type;
  size_t total_size;  // header + body
  // PAGE
  Id object{};
  PageKind kind = PageKind::kData;
  uint64_t offset = 0;
  size_t page_offset_in_frame = 0;  // where the page bytes start
  // COMMIT
  uint64_t seq = 0;
  std::span<const uint8_t> sealed;
};
// Parses one frame from the start of `bytes` (which may hold more).
// nullopt if the bytes do not hold a complete, well-formed frame of a
// journal of this format version.
std::optional<Frame> ParseFrame(std::span<const uint8_t> bytes, uint32_t chunk_size, uint32_t version);
// Length of the body announced by a frame header, if the header is sane.
std::optional<size_t> FrameBodyLength(std::span<const uint8_t> header, uint32_t chunk_size);

}  // namespace cloister::volume::format
