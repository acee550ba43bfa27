// Internal types of the volume implementation, shared by volume.cc and its
// tests. Not part of the public API.
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>

#include "os/env.h"
#include "volume/format.h"

namespace cloister::volume::internal {

using format::Id;

struct IdHash {
  size_t operator()(const Id& id) const {
    size_t v;
    std::memcpy(&v, id.data(), sizeof(v));
    return v;
  }
};

// How far into an object's data and node files a committed state reaches.
struct Extent {
  uint64_t data = 0;
  uint64_t node = 0;
};
using ExtentMap = std::unordered_map<Id, Extent, IdHash>;

void MergeExtents(ExtentMap& into, const ExtentMap& from);
ExtentMap ExtentsOf(const format::Manifest& m, uint32_t chunk_size);
// Extents of the files among `records` (the files a delta changes).
ExtentMap ExtentsOf(const std::vector<format::InodeRecord>& records, uint32_t chunk_size);

struct PageKey {
  Id obj;
  format::PageKind kind;
  uint64_t offset;
  bool operator==(const PageKey& o) const {
    return obj == o.obj && kind == o.kind && offset == o.offset;
  }
};
struct PageKeyHash {
  size_t operator()(const PageKey& k) const {
    return IdHash()(k.obj) ^ (k.offset * 0x9e3779b97f4a7c15ull) ^ static_cast<size_t>(k.kind);
  }
};

// A set of chunk indexes, kept as disjoint half-open ranges, so that the
// chunks of a sequential write cost one entry whatever their number.
class ChunkSet {
 public:
  bool Contains(uint64_t c) const {
    auto it = ranges_.upper_bound(c);
    if (it == ranges_.begin()) return false;
    return c < std::prev(it)->second;
  }
  // Adds [begin, end); returns how many of its chunks were not in the set.
  uint64_t Insert(uint64_t begin, uint64_t end) {
    if (begin >= end) return 0;
    uint64_t added = end - begin, lo = begin, hi = end;
    // Every range that overlaps [begin, end) or touches it is merged in.
    auto it = ranges_.upper_bound(begin);
    if (it != ranges_.begin() && std::prev(it)->second >= begin) --it;
    while (it != ranges_.end() && it->first <= end) {
      const uint64_t ob = std::max(it->first, begin), oe = std::min(it->second, end);
      if (oe > ob) added -= oe - ob;
      lo = std::min(lo, it->first);
      hi = std::max(hi, it->second);
      it = ranges_.erase(it);
    }
    ranges_.emplace(lo, hi);
    count_ += added;
    return added;
  }
  // False if `c` was in the set already.
  bool Insert(uint64_t c) { return Insert(c, c + 1) != 0; }
  uint64_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // [start, end) of each range, ascending.
  const std::map<uint64_t, uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;
  uint64_t count_ = 0;
};

// A committed transaction read back from a journal.
struct ScannedTxn {
  uint64_t seq = 0;
  uint64_t end = 0;  // journal offset just past its commit frame
  format::Tag prev_tag{};  // tag of the state this commit follows
  Bytes manifest;    // v1: plaintext manifest of the state it commits; v2: its delta
  std::vector<std::pair<PageKey, uint64_t>> pages;  // page -> offset of its bytes
};

// Reads a journal from the start and calls `on_txn` for every transaction
// whose commit frame authenticates (under `journal_aead`, the key of this
// generation) and whose page frames match the digest in it. Stops at the first frame that is incomplete or does not verify
// (the torn tail of an interrupted commit). `*valid_end` receives the
// offset just past the last good commit, `*file_size` the file's size.
Status ScanJournal(os::File& file, const format::Id& volume_id, uint32_t version,
                   uint64_t generation, uint32_t chunk_size, crypto::Aead& journal_aead,
                   const std::function<Status(ScannedTxn&&)>& on_txn,
                   uint64_t* valid_end, uint64_t* file_size);

// Looks behind the point where a scan stopped (`from`) for commit frames
// that still authenticate, and returns the highest sequence number among
// them (0 if none; all ones if the tail holds implausibly many candidate
// commit frames). A crash leaves at most the one commit that was being
// written behind that point; anything later means the journal was damaged.
// Frames whose seq is at most `above_seq` (the end of the chain so far) are
// passed over unopened and uncounted: a reused journal file holds many of
// an older journal's, and none of them could show a later commit.
StatusOr<uint64_t> ProbeCommitsAfter(os::File& file, const format::Id& volume_id,
                                     uint32_t version, uint64_t generation, uint32_t chunk_size,
                                     crypto::Aead& journal_aead, uint64_t from, uint64_t above_seq);

// Self-check for tests (costs time proportional to the volume's metadata
// per commit): when set, a version-2 writer applies each commit's delta to
// the previous state before writing it and compares the result with its
// whole current state; a difference fails the commit with an internal
// error. Volume tests set it through test_util.h.
bool& VerifyDeltasInTests();

// Object file names: 32 hex digits, plus ".m" for the node file.
std::string ObjectName(const Id& id, format::PageKind kind);
bool ParseObjectName(const std::string& name, Id* id, format::PageKind* kind);

}  // namespace cloister::volume::internal
