#include "volume/format.h"

#include <gtest/gtest.h>

#include <set>

namespace cloister::volume::format {
namespace {

TEST(FormatTest, TreeHeight) {
  EXPECT_EQ(TreeHeight(0, 128), 0u);
  EXPECT_EQ(TreeHeight(1, 128), 1u);
  EXPECT_EQ(TreeHeight(128, 128), 1u);
  EXPECT_EQ(TreeHeight(129, 128), 2u);
  EXPECT_EQ(TreeHeight(128 * 128, 128), 2u);
  EXPECT_EQ(TreeHeight(128 * 128 + 1, 128), 3u);
}

TEST(FormatTest, NodePositionsArePostOrderAndStable) {
  // For a full tree of every height, positions of the non-root nodes are
  // exactly 0..count-1 and every parent comes after its children.
  for (uint32_t f : {2u, 3u, 16u}) {
    for (uint32_t h = 2; h <= 5; ++h) {
      std::set<uint64_t> seen;
      for (uint32_t level = 1; level < h; ++level) {
        for (uint64_t j = 0; j < Power(f, h - level); ++j) {
          uint64_t pos = NodePosition(level, j, f);
          EXPECT_TRUE(seen.insert(pos).second) << "duplicate position";
          if (level > 1) {
            for (uint64_t c = j * f; c < (j + 1) * f; ++c) EXPECT_LT(NodePosition(level - 1, c, f), pos);
          }
        }
      }
      EXPECT_EQ(*seen.rbegin() + 1, seen.size()) << "positions are dense";
    }
  }
  EXPECT_EQ(NodePosition(1, 0, 2), 0u);
  EXPECT_EQ(NodePosition(1, 1, 2), 1u);
  EXPECT_EQ(NodePosition(2, 0, 2), 2u);
  EXPECT_EQ(NodePosition(1, 2, 2), 3u);
}

TEST(FormatTest, NodeExtentCoversEveryNonRootNode) {
  const uint32_t c = 512, f = Fanout(c);
  for (uint64_t chunks : {0ull, 1ull, 16ull, 17ull, 256ull, 257ull, 4096ull, 5000ull}) {
    uint32_t h = TreeHeight(chunks, f);
    uint64_t extent = NodeExtent(chunks, c);
    for (uint32_t level = 1; level < h; ++level) {
      uint64_t last = (chunks - 1) / Power(f, level);
      EXPECT_LT(NodePosition(level, last, f) * c, extent);
    }
    if (h <= 1) {
      EXPECT_EQ(extent, 0u);
    }
  }
}

Manifest SampleManifest() {
  Manifest m;
  m.seq = 7;
  m.next_ino = 5;
  InodeRecord root;
  root.ino = kRootIno;
  root.type = InodeType::kDirectory;
  root.mode = 0755;
  InodeRecord dir;
  dir.ino = 2;
  dir.parent = 1;
  dir.type = InodeType::kDirectory;
  dir.mode = 0700;
  dir.name = "etc";
  InodeRecord file;
  file.ino = 3;
  file.parent = 2;
  file.type = InodeType::kFile;
  file.mode = 0600;
  file.name = "secret.conf";
  file.size = 5000;
  file.object_id[0] = 1;
  file.root.resize(2);
  file.root[0][0] = 9;
  file.root[1][1] = 8;
  InodeRecord link;
  link.ino = 4;
  link.parent = 1;
  link.type = InodeType::kSymlink;
  link.mode = 0777;
  link.name = "l";
  link.target = "etc/secret.conf";
  m.inodes = {root, dir, file, link};
  return m;
}

TEST(FormatTest, ManifestRoundTrip) {
  Manifest m = SampleManifest();
  Bytes enc = EncodeManifest(m);
  auto back = DecodeManifest(enc, 4096);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(EncodeManifest(*back), enc);
}

TEST(FormatTest, ManifestRejectsBrokenStructure) {
  auto reject = [](Manifest m, const char* why) {
    auto r = DecodeManifest(EncodeManifest(m), 4096);
    EXPECT_FALSE(r.ok()) << why;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kIntegrity);
    }
  };
  Manifest m = SampleManifest();
  m.inodes[2].parent = 4;  // parent is a symlink
  reject(m, "non-directory parent");
  m = SampleManifest();
  m.inodes[1].parent = 2;  // directory is its own parent
  reject(m, "cycle");
  m = SampleManifest();
  m.inodes[3].name = "etc";  // duplicate name in root
  reject(m, "duplicate name");
  m = SampleManifest();
  m.inodes[3].name = "..";
  reject(m, "dot-dot name");
  m = SampleManifest();
  m.inodes[2].root.resize(3);  // 5000 bytes = 2 chunks of 4096: only 2 root entries
  reject(m, "root wider than the file");
  m = SampleManifest();
  m.inodes[2].ino = 9;  // >= next_ino
  reject(m, "inode number out of range");
  m = SampleManifest();
  m.inodes.erase(m.inodes.begin());
  reject(m, "no root");
  Bytes enc = EncodeManifest(SampleManifest());
  enc.push_back(0);
  EXPECT_FALSE(DecodeManifest(enc, 4096).ok()) << "trailing bytes";
  enc.resize(enc.size() - 10);
  EXPECT_FALSE(DecodeManifest(enc, 4096).ok()) << "truncated";
}

TEST(FormatTest, HeaderAuthenticates) {
  Header h;
  h.volume_id[3] = 42;
  SecretBytes key(32);
  auto hk = DeriveHeaderKey(key, h.volume_id);
  ASSERT_TRUE(hk.ok());
  Bytes enc = EncodeHeader(h, *hk);
  ASSERT_EQ(enc.size(), kHeaderSize);
  auto parsed = ParseHeader(enc);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->volume_id, h.volume_id);
  EXPECT_TRUE(VerifyHeader(enc, *hk));
  enc[12] ^= 1;  // flags
  EXPECT_FALSE(VerifyHeader(enc, *hk));
  SecretBytes other(32);
  other.UnsafeMutableBytes()[0] = 1;
  EXPECT_FALSE(VerifyHeader(EncodeHeader(h, *hk), *DeriveHeaderKey(other, h.volume_id)));
}

TEST(FormatTest, TagDependsOnEverything) {
  SecretBytes k(32);
  Id id{};
  Bytes m1 = EncodeManifest(SampleManifest());
  Tag t = ComputeTag(k, id, 7, m1);
  EXPECT_NE(t, ComputeTag(k, id, 8, m1));
  Id id2 = id;
  id2[0] = 1;
  EXPECT_NE(t, ComputeTag(k, id2, 7, m1));
  m1.back() ^= 1;
  EXPECT_NE(t, ComputeTag(k, id, 7, m1));
}

// ---- Version 2: deltas ----------------------------------------------------------

ManifestState SampleState() {
  auto s = ManifestState::FromManifest(SampleManifest());
  EXPECT_TRUE(s.ok());
  return std::move(*s);
}

ManifestDelta EmptyDelta() {
  ManifestDelta d;
  d.seq = 8;
  d.next_ino = 5;
  return d;
}

InodeRecord Dir(uint64_t ino, uint64_t parent, const std::string& name) {
  InodeRecord r;
  r.ino = ino;
  r.parent = parent;
  r.type = InodeType::kDirectory;
  r.mode = 0755;
  r.name = name;
  return r;
}

TEST(FormatTest, DeltaRoundTripAndApply) {
  Manifest m = SampleManifest();
  ManifestDelta d = EmptyDelta();
  d.next_ino = 7;
  InodeRecord moved = m.inodes[2];  // the file moves to the root and grows
  moved.parent = kRootIno;
  moved.name = "moved";
  moved.size = 9000;
  moved.root.resize(3);
  d.records = {moved, Dir(5, 2, "new"), Dir(6, 5, "deeper")};
  d.removed = {4};
  Bytes enc = EncodeDelta(d);
  auto back = DecodeDelta(enc, 4096);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(EncodeDelta(*back), enc);

  ManifestState st = SampleState();
  ASSERT_TRUE(st.Apply(*back).ok());
  Manifest want = m;
  want.seq = 8;
  want.next_ino = 7;
  want.inodes = {m.inodes[0], m.inodes[1], moved, Dir(5, 2, "new"), Dir(6, 5, "deeper")};
  EXPECT_EQ(EncodeManifest(st.ToManifest()), EncodeManifest(want));
  EXPECT_EQ(st.encoded_size(), EncodeManifest(want).size());
  EXPECT_EQ(st.seq(), 8u);
}

TEST(FormatTest, DeltaDecodingRejectsMalformedInput) {
  ManifestDelta d = EmptyDelta();
  d.records = {Dir(3, 1, "a"), Dir(2, 1, "b")};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "records out of order";
  d.records = {Dir(2, 1, "a")};
  d.removed = {2};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "changed and removed";
  d.removed = {4, 3};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "removed out of order";
  d.removed = {1};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "removes the root";
  d.removed = {};
  d.records = {Dir(9, 1, "a")};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "inode beyond next_ino";
  d.records = {Dir(2, 1, "..")};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "bad name";
  InodeRecord root = Dir(kRootIno, 0, "");
  root.parent = 2;
  d.records = {root};
  EXPECT_FALSE(DecodeDelta(EncodeDelta(d), 4096).ok()) << "root with a parent";
  d.records = {Dir(2, 1, "a")};
  Bytes enc = EncodeDelta(d);
  enc.push_back(0);
  EXPECT_FALSE(DecodeDelta(enc, 4096).ok()) << "trailing byte";
  enc.resize(enc.size() - 2);
  EXPECT_FALSE(DecodeDelta(enc, 4096).ok()) << "truncated";
  enc = EncodeDelta(d);
  enc[0] ^= 1;
  EXPECT_FALSE(DecodeDelta(enc, 4096).ok()) << "magic";
}

TEST(FormatTest, DeltaThatBreaksTheTreeDoesNotApply) {
  Manifest m = SampleManifest();
  auto expect_refused = [](const ManifestDelta& d, const char* why) {
    ManifestState st = SampleState();
    auto decoded = DecodeDelta(EncodeDelta(d), 4096);
    ASSERT_TRUE(decoded.ok()) << why << ": " << decoded.status().ToString();
    Status s = st.Apply(*decoded);
    EXPECT_EQ(s.code(), StatusCode::kIntegrity) << why;
  };
  ManifestDelta d = EmptyDelta();
  d.seq = 9;
  expect_refused(d, "seq does not follow");
  d = EmptyDelta();
  d.next_ino = 4;
  d.records = {};
  expect_refused(d, "next_ino goes back");
  d = EmptyDelta();
  d.next_ino = 10;
  d.removed = {9};
  expect_refused(d, "removes an inode that does not exist");
  d = EmptyDelta();
  d.removed = {2};
  expect_refused(d, "removes a directory that keeps a child");
  d = EmptyDelta();
  InodeRecord as_file = m.inodes[1];
  as_file.type = InodeType::kSymlink;
  as_file.target = "x";
  d.records = {as_file};
  expect_refused(d, "a directory with a child becomes a symlink");
  d = EmptyDelta();
  d.records = {Dir(2, 1, "l")};
  expect_refused(d, "takes the name of an unchanged inode");
  d = EmptyDelta();
  d.next_ino = 6;
  d.records = {Dir(5, 3, "under-a-file")};
  expect_refused(d, "parent is a file");
  d.records = {Dir(5, 9, "orphan")};
  d.next_ino = 10;
  expect_refused(d, "parent does not exist");
  d = EmptyDelta();
  d.next_ino = 6;
  d.records = {Dir(2, 5, "etc"), Dir(5, 2, "loop")};
  expect_refused(d, "directory cycle");
  d = EmptyDelta();
  d.next_ino = 6;
  InodeRecord twin = m.inodes[2];
  twin.ino = 5;
  twin.name = "twin";
  d.records = {twin};
  expect_refused(d, "two files share an object");

  // Swapping two names in one delta is fine, and so is reusing the name of
  // a removed inode.
  d = EmptyDelta();
  InodeRecord a = m.inodes[1], b = m.inodes[3];
  a.name = "l";
  b.name = "etc";
  d.records = {a, b};
  ManifestState st = SampleState();
  auto decoded = DecodeDelta(EncodeDelta(d), 4096);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(st.Apply(*decoded).ok());
  d = EmptyDelta();
  d.next_ino = 6;
  d.records = {Dir(5, 1, "l")};
  d.removed = {4};
  st = SampleState();
  decoded = DecodeDelta(EncodeDelta(d), 4096);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(st.Apply(*decoded).ok());
}

TEST(FormatTest, Version2TagChainsAndDependsOnEverything) {
  SecretBytes k(32);
  Id id{};
  Tag prev{};
  prev[0] = 1;
  Bytes d = EncodeDelta(EmptyDelta());
  Tag t = ComputeTagV2(k, id, 8, prev, d);
  EXPECT_NE(t, ComputeTagV2(k, id, 9, prev, d));
  Tag other = prev;
  other[31] ^= 1;
  EXPECT_NE(t, ComputeTagV2(k, id, 8, other, d));
  Id id2 = id;
  id2[0] = 1;
  EXPECT_NE(t, ComputeTagV2(k, id2, 8, prev, d));
  d.back() ^= 1;
  EXPECT_NE(t, ComputeTagV2(k, id, 8, prev, d));
  // Never equal to a version-1 tag of the same bytes.
  EXPECT_NE(ComputeTagV2(k, id, 8, Tag{}, d), ComputeTag(k, id, 8, d));
}

TEST(FormatTest, FramesParse) {
  Id obj{};
  obj[0] = 5;
  Bytes page(512, 0xcc);
  Bytes f = EncodePageFrame(obj, PageKind::kNode, 1024, page);
  auto p = ParseFrame(f, 512, kFormatVersion);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->type, FrameType::kPage);
  EXPECT_EQ(p->object, obj);
  EXPECT_EQ(p->kind, PageKind::kNode);
  EXPECT_EQ(p->offset, 1024u);
  EXPECT_EQ(p->total_size, f.size());
  EXPECT_FALSE(ParseFrame(std::span<const uint8_t>(f).first(f.size() - 1), 512, kFormatVersion).has_value());
  EXPECT_FALSE(ParseFrame(f, 4096, kFormatVersion).has_value()) << "page size must match the chunk size";
  Bytes misaligned = EncodePageFrame(obj, PageKind::kData, 100, page);
  EXPECT_FALSE(ParseFrame(misaligned, 512, kFormatVersion).has_value());
}

// Version 3 (docs/volume-format.md, section 19): leaf flag 3 and PAGE
// kind 2 name the alternate data object; earlier versions refuse both.
TEST(FormatTest, AlternateSlotsOnlyInVersion3) {
  crypto::Nonce nonce{};
  crypto::AeadTag tag{};
  nonce[0] = 1;
  tag[0] = 2;
  const Entry alt = MakeLeaf(nonce, tag, true);
  const Entry plain = MakeLeaf(nonce, tag, false);
  EXPECT_TRUE(LeafIsAlternate(alt));
  EXPECT_FALSE(LeafIsAlternate(plain));
  crypto::Nonce n;
  crypto::AeadTag t;
  EXPECT_TRUE(ParseLeaf(alt, n, t, kFormatVersion3));
  EXPECT_EQ(n, nonce);
  EXPECT_EQ(t, tag);
  EXPECT_TRUE(ParseLeaf(plain, n, t, kFormatVersion3));
  EXPECT_TRUE(ParseLeaf(plain, n, t, kFormatVersion2));
  EXPECT_FALSE(ParseLeaf(alt, n, t, kFormatVersion2));
  EXPECT_FALSE(ParseLeaf(alt, n, t, kFormatVersion1));
  for (uint8_t flags : {0, 2, 5, 7, 0x81}) {
    Entry e = plain;
    e[28] = flags;
    EXPECT_FALSE(ParseLeaf(e, n, t, kFormatVersion3)) << int{flags};
  }
  Id obj{};
  Bytes page(512, 0xcc);
  Bytes f = EncodePageFrame(obj, PageKind::kAlternate, 512, page);
  auto p = ParseFrame(f, 512, kFormatVersion3);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->kind, PageKind::kAlternate);
  EXPECT_FALSE(ParseFrame(f, 512, kFormatVersion2).has_value());
  f[kFrameHeaderSize + kIdSize] = 3;  // no kind 3
  EXPECT_FALSE(ParseFrame(f, 512, kFormatVersion3).has_value());
}

TEST(FormatTest, JournalNames) {
  EXPECT_EQ(JournalName(10), "journal.000000000000000a");
  EXPECT_EQ(*ParseJournalName("journal.000000000000000a"), 10u);
  EXPECT_FALSE(ParseJournalName("journal.000000000000000A").has_value());
  EXPECT_FALSE(ParseJournalName("journal.1").has_value());
}

}  // namespace
}  // namespace cloister::volume::format
