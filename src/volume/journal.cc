// Journal scanning and the small helpers shared by the volume code.
#include <algorithm>

#include "volume/volume_internal.h"

namespace cloister::volume::internal {

void MergeExtents(ExtentMap& into, const ExtentMap& from) {
  for (const auto& [id, e] : from) {
    Extent& x = into[id];
    x.data = std::max(x.data, e.data);
    x.node = std::max(x.node, e.node);
  }
}

ExtentMap ExtentsOf(const format::Manifest& m, uint32_t chunk_size) {
  return ExtentsOf(m.inodes, chunk_size);
}

ExtentMap ExtentsOf(const std::vector<format::InodeRecord>& records, uint32_t chunk_size) {
  ExtentMap out;
  for (const auto& in : records) {
    if (in.type != format::InodeType::kFile) continue;
    uint64_t chunks = format::ChunkCount(in.size, chunk_size);
    out[in.object_id] = Extent{chunks * chunk_size, format::NodeExtent(chunks, chunk_size)};
  }
  return out;
}

bool& VerifyDeltasInTests() {
  static bool on = false;
  return on;
}

std::string ObjectName(const Id& id, format::PageKind kind) {
  std::string name = HexEncode(id);
  if (kind == format::PageKind::kNode) name += ".m";
  if (kind == format::PageKind::kAlternate) name += ".b";
  return name;
}

bool ParseObjectName(const std::string& name, Id* id, format::PageKind* kind) {
  std::string hex = name;
  *kind = format::PageKind::kData;
  if (hex.size() == 34 && hex.compare(32, 2, ".m") == 0) {
    hex.resize(32);
    *kind = format::PageKind::kNode;
  } else if (hex.size() == 34 && hex.compare(32, 2, ".b") == 0) {
    hex.resize(32);
    *kind = format::PageKind::kAlternate;
  }
  if (hex.size() != 32) return false;
  auto bytes = HexDecode(hex);
  if (!bytes || HexEncode(*bytes) != hex) return false;
  std::copy(bytes->begin(), bytes->end(), id->begin());
  return true;
}

StatusOr<uint64_t> ProbeCommitsAfter(os::File& file, const format::Id& volume_id,
                                     uint32_t version, uint64_t generation, uint32_t chunk_size,
                                     crypto::Aead& journal_aead, uint64_t from, uint64_t above_seq) {
  ASSIGN_OR_RETURN(uint64_t size, file.Size());
  uint64_t max_seq = 0;
  // A torn tail holds at most the one commit frame that was being written,
  // besides frames of an older journal whose file this one reuses (their
  // seqs are below the chain's end): many candidates above the chain's end
  // prove damage at once and bound the work on a hostile tail.
  constexpr int kMaxCandidates = 16;
  int candidates = 0;
  // Read in windows; a frame that starts in one window is read whole.
  constexpr size_t kWindow = 1 << 20;
  Bytes buf;
  for (uint64_t base = from; base + format::kFrameHeaderSize <= size; base += kWindow) {
    buf.resize(std::min<uint64_t>(kWindow + format::kFrameHeaderSize + 8, size - base));
    size_t got = 0;
    RETURN_IF_ERROR(file.ReadAt(base, buf, &got));
    buf.resize(got);
    for (size_t i = 0; i + format::kFrameHeaderSize <= buf.size() && i < kWindow; ++i) {
      if (LoadU32(buf.data() + i) != format::kFrameMagic || buf[i + 4] != static_cast<uint8_t>(format::FrameType::kCommit)) {
        continue;
      }
      auto body = format::FrameBodyLength(std::span<const uint8_t>(buf).subspan(i), chunk_size);
      if (!body || base + i + format::kFrameHeaderSize + *body > size) continue;
      // The seq leads the body (section 12.3); a commit at or below the
      // chain's end cannot show a later one, whether it opens or not.
      if (i + format::kFrameHeaderSize + 8 <= buf.size() &&
          LoadU64(buf.data() + i + format::kFrameHeaderSize) <= above_seq) {
        continue;
      }
      if (++candidates > kMaxCandidates) return ~uint64_t{0};
      Bytes frame(format::kFrameHeaderSize + *body);
      RETURN_IF_ERROR(file.ReadAt(base + i, frame, &got));
      if (got != frame.size()) continue;
      auto f = format::ParseFrame(frame, chunk_size, version);
      if (!f || f->type != format::FrameType::kCommit) continue;
      if (journal_aead.OpenRecord(format::CommitAad(volume_id, generation, f->seq, version), f->sealed).ok()) {
        max_seq = std::max(max_seq, f->seq);
      }
    }
  }
  return max_seq;
}

Status ScanJournal(os::File& file, const format::Id& volume_id, uint32_t version,
                   uint64_t generation, uint32_t chunk_size, crypto::Aead& journal_aead,
                   const std::function<Status(ScannedTxn&&)>& on_txn,
                   uint64_t* valid_end, uint64_t* file_size) {
  ASSIGN_OR_RETURN(uint64_t size, file.Size());
  *file_size = size;
  *valid_end = 0;
  uint64_t off = 0;
  crypto::Sha256Hasher hasher;
  ScannedTxn txn;
  // The journal is read in windows of 1 MiB (a frame is usually a few KiB).
  constexpr uint64_t kWindow = uint64_t{1} << 20;
  Bytes window;
  uint64_t window_off = 0;
  auto bytes_at = [&](uint64_t at, uint64_t n, std::span<const uint8_t>* out) -> StatusOr<bool> {
    if (at < window_off || at + n > window_off + window.size()) {
      window.resize(static_cast<size_t>(std::min(size - at, std::max(n, kWindow))));
      size_t got = 0;
      RETURN_IF_ERROR(file.ReadAt(at, window, &got));
      window.resize(got);
      window_off = at;
      if (got < n) return false;
    }
    *out = std::span<const uint8_t>(window).subspan(static_cast<size_t>(at - window_off), static_cast<size_t>(n));
    return true;
  };
  while (off + format::kFrameHeaderSize <= size) {
    std::span<const uint8_t> frame;
    ASSIGN_OR_RETURN(bool complete, bytes_at(off, format::kFrameHeaderSize, &frame));
    if (!complete) break;
    auto body = format::FrameBodyLength(frame, chunk_size);
    if (!body || off + format::kFrameHeaderSize + *body > size) break;
    ASSIGN_OR_RETURN(complete, bytes_at(off, format::kFrameHeaderSize + *body, &frame));
    if (!complete) break;
    auto f = format::ParseFrame(frame, chunk_size, version);
    if (!f) break;
    if (f->type == format::FrameType::kPage) {
      hasher.Update(frame);
      txn.pages.push_back({PageKey{f->object, f->kind, f->offset}, off + f->page_offset_in_frame});
    } else {
      crypto::Digest digest = hasher.Finish();
      auto plain = journal_aead.OpenRecord(format::CommitAad(volume_id, generation, f->seq, version),
                                           f->sealed);
      if (!plain.ok() || plain->size() < 64 ||
          !ConstantTimeEquals(std::span<const uint8_t>(plain->data(), 32), digest)) {
        break;
      }
      txn.seq = f->seq;
      txn.end = off + f->total_size;
      std::copy(plain->begin() + 32, plain->begin() + 64, txn.prev_tag.begin());
      txn.manifest.assign(plain->begin() + 64, plain->end());
      *valid_end = txn.end;
      RETURN_IF_ERROR(on_txn(std::move(txn)));
      txn = ScannedTxn();
    }
    off += f->total_size;
  }
  return Status::Ok();
}

}  // namespace cloister::volume::internal
