#include "cloister/volume.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "volume/format.h"
#include "volume/volume_internal.h"
#include "volume/test_util.h"

namespace cloister::volume {
namespace {

using namespace testing;  // NOLINT

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CreateOptions c;
    c.chunk_size = 512;  // fanout 16: deep trees with small files
    auto v = Volume::Create(env_, "/vol", key_, c);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    v_ = std::move(v).value();
  }

  std::unique_ptr<Volume> Reopen(OpenOptions o = {}) {
    v_.reset();
    auto v = Volume::Open(env_, "/vol", key_, o);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? std::move(v).value() : nullptr;
  }

  std::vector<std::string> Names(const std::string& dir) { return env_.ListDir(dir).value(); }

  // Writes into an existing file of the open volume.
  Status Overwrite(const std::string& path, uint64_t offset, const Bytes& data) {
    OpenFlags w;
    w.write = true;
    ASSIGN_OR_RETURN(auto f, v_->OpenFile(path, w));
    return f->WriteAt(offset, data);
  }

  size_t JournalCount() {
    size_t n = 0;
    for (const auto& name : Names("/vol")) n += format::ParseJournalName(name).has_value();
    return n;
  }

  uint64_t JournalBytes() {
    uint64_t n = 0;
    for (const auto& name : Names("/vol")) {
      if (format::ParseJournalName(name)) n += env_.Contents("/vol/" + name)->size();
    }
    return n;
  }

  os::MemEnv env_;
  SecretBytes key_ = TestKey();
  std::unique_ptr<Volume> v_;
};

TEST_F(VolumeTest, EmptyVolumeHasStableTag) {
  VolumeInfo info = v_->Info();
  EXPECT_EQ(info.seq, 0u);
  EXPECT_EQ(info.chunk_size, 512u);
  auto t = v_->Commit();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, info.tag) << "a commit without changes must not change the tag";
  v_ = Reopen();
  EXPECT_EQ(v_->Info().tag, info.tag);
}

TEST_F(VolumeTest, WriteReadAcrossChunksAndReopen) {
  Bytes data = Pattern(10000, 1);
  ASSERT_OK(WriteFile(*v_, "/a", data));
  EXPECT_EQ(*ReadFile(*v_, "/a"), data);
  auto t = v_->Commit();
  ASSERT_TRUE(t.ok());
  OpenOptions o;
  o.expected_tag = *t;
  v_ = Reopen(o);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/a"), data);
  EXPECT_EQ(v_->GetStat("/a")->size, 10000u);
}

TEST_F(VolumeTest, PartialOverwritesKeepNeighbouringBytes) {
  Bytes data = Pattern(5000, 2);
  ASSERT_OK(WriteFile(*v_, "/f", data));
  ASSERT_TRUE(v_->Commit().ok());
  OpenFlags w;
  w.write = true;
  auto f = v_->OpenFile("/f", w);
  ASSERT_TRUE(f.ok());
  Bytes patch = Pattern(700, 3);
  ASSERT_OK((*f)->WriteAt(1000, patch));  // spans a chunk boundary (1024)
  std::copy(patch.begin(), patch.end(), data.begin() + 1000);
  Bytes small = Str("xyz");
  ASSERT_OK((*f)->WriteAt(4998, small));  // extends the file by one byte
  data.resize(5001);
  std::copy(small.begin(), small.end(), data.begin() + 4998);
  f->reset();
  EXPECT_EQ(*ReadFile(*v_, "/f"), data);
  ASSERT_TRUE(v_->Commit().ok());
  v_ = Reopen();
  EXPECT_EQ(*ReadFile(*v_, "/f"), data);
}

TEST_F(VolumeTest, SparseWritesReadAsZeros) {
  OpenFlags c;
  c.create = true;
  auto f = v_->OpenFile("/sparse", c);
  ASSERT_OK((*f)->WriteAt(100000, Str("end")));
  Bytes buf(100003);
  auto n = (*f)->ReadAt(0, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 100003u);
  for (size_t i = 0; i < 100000; ++i) ASSERT_EQ(buf[i], 0) << i;
  EXPECT_EQ(buf[100000], 'e');
  Bytes past(10);
  EXPECT_EQ(*(*f)->ReadAt(200000, past), 0u);
}

TEST_F(VolumeTest, LargeFileWithDeepTree) {
  // 600 chunks of 512 bytes: height 3 with fanout 16.
  Bytes data = Pattern(600 * 512 + 77, 4);
  ASSERT_OK(WriteFile(*v_, "/big", data));
  ASSERT_TRUE(v_->Commit().ok());
  v_ = Reopen();
  EXPECT_EQ(*ReadFile(*v_, "/big"), data);
  // Random small reads.
  auto f = v_->OpenFile("/big", OpenFlags{});
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng() % data.size();
    Bytes buf(1 + rng() % 3000);
    auto n = (*f)->ReadAt(off, buf);
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(*n, std::min<size_t>(buf.size(), data.size() - off));
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n), data.begin() + static_cast<ptrdiff_t>(off)));
  }
}

TEST_F(VolumeTest, TruncateShrinksAndRegrowsWithZeros) {
  Bytes data = Pattern(300 * 512, 6);
  ASSERT_OK(WriteFile(*v_, "/t", data));
  ASSERT_TRUE(v_->Commit().ok());
  for (uint64_t size : {200u * 512 + 13, 100u * 512, 17u * 512, 16u * 512, 5u * 512 + 1, 1u, 0u}) {
    ASSERT_OK(v_->Truncate("/t", size));
    Bytes expect(data.begin(), data.begin() + static_cast<ptrdiff_t>(size));
    EXPECT_EQ(*ReadFile(*v_, "/t"), expect) << size;
    ASSERT_OK(v_->Truncate("/t", size + 3000));
    expect.resize(size + 3000, 0);
    EXPECT_EQ(*ReadFile(*v_, "/t"), expect) << "regrown " << size;
    ASSERT_OK(v_->Truncate("/t", size));
    ASSERT_TRUE(v_->Commit().ok());
    auto r = Reopen();
    ASSERT_TRUE(r);
    v_ = std::move(r);
    expect.resize(size);
    EXPECT_EQ(*ReadFile(*v_, "/t"), expect) << "after reopen " << size;
  }
}

TEST_F(VolumeTest, NamespaceOperations) {
  ASSERT_OK(v_->Mkdir("/etc", 0755));
  ASSERT_OK(v_->Mkdir("/etc/app", 0700));
  ASSERT_OK(WriteFile(*v_, "/etc/app/conf", Str("k=v")));
  ASSERT_OK(v_->Symlink("app/conf", "/etc/link"));
  EXPECT_EQ(*v_->ReadLink("/etc/link"), "app/conf");
  EXPECT_EQ(v_->Mkdir("/etc", 0755).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(v_->Mkdir("/nope/x", 0755).code(), StatusCode::kNotFound);
  EXPECT_EQ(v_->GetStat("/etc/app/conf/x").status().code(), StatusCode::kNotADirectory);
  EXPECT_EQ(v_->Rmdir("/etc").code(), StatusCode::kDirectoryNotEmpty);
  EXPECT_EQ(v_->Remove("/etc").code(), StatusCode::kIsADirectory);
  EXPECT_EQ(v_->GetStat("/../x").status().code(), StatusCode::kInvalidArgument);
  OpenFlags excl;
  excl.create = excl.exclusive = true;
  EXPECT_EQ(v_->OpenFile("/etc/app/conf", excl).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(v_->OpenFile("/etc", OpenFlags{}).status().code(), StatusCode::kIsADirectory);

  ASSERT_OK(v_->Rename("/etc/app", "/opt"));
  EXPECT_EQ(*ReadFile(*v_, "/opt/conf"), Str("k=v"));
  EXPECT_EQ(v_->Rename("/opt", "/opt/inner").code(), StatusCode::kInvalidArgument);
  ASSERT_OK(WriteFile(*v_, "/other", Str("other")));
  ASSERT_OK(v_->Rename("/other", "/opt/conf"));  // replaces
  EXPECT_EQ(*ReadFile(*v_, "/opt/conf"), Str("other"));
  EXPECT_EQ(v_->GetStat("/other").status().code(), StatusCode::kNotFound);
  ASSERT_OK(v_->Chmod("/opt/conf", 0600));
  ASSERT_OK(v_->SetMtime("/opt/conf", 1234567890));
  auto list = v_->List("/");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);  // etc, opt
  ASSERT_TRUE(v_->Commit().ok());

  v_ = Reopen();
  auto st = v_->GetStat("/opt/conf");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->mode, 0600u);
  EXPECT_EQ(st->mtime_ns, 1234567890);
  EXPECT_EQ(v_->GetStat("/etc/link")->type, FileType::kSymlink);
  ASSERT_OK(v_->Remove("/opt/conf"));
  ASSERT_OK(v_->Rmdir("/opt"));
  ASSERT_TRUE(v_->Commit().ok());
  v_ = Reopen();
  EXPECT_EQ(v_->GetStat("/opt").status().code(), StatusCode::kNotFound);
}

TEST_F(VolumeTest, RemovedFileStaysReadableWhileOpen) {
  ASSERT_OK(WriteFile(*v_, "/tmp", Pattern(3000, 7)));
  OpenFlags rw;
  rw.write = true;
  auto f = v_->OpenFile("/tmp", rw);
  ASSERT_TRUE(f.ok());
  ASSERT_OK(v_->Remove("/tmp"));
  ASSERT_OK((*f)->WriteAt(3000, Str("more")));
  Bytes buf(3004);
  EXPECT_EQ(*(*f)->ReadAt(0, buf), 3004u);
  ASSERT_TRUE(v_->Commit().ok());
  f->reset();
  ASSERT_TRUE(v_->Commit().ok());
  v_ = Reopen();
  EXPECT_EQ(v_->GetStat("/tmp").status().code(), StatusCode::kNotFound);
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty());
}

TEST_F(VolumeTest, UncommittedChangesAreDiscarded) {
  ASSERT_OK(WriteFile(*v_, "/kept", Str("kept")));
  ASSERT_TRUE(v_->Commit().ok());
  ASSERT_OK(WriteFile(*v_, "/lost", Str("lost")));
  ASSERT_OK(WriteFile(*v_, "/kept", Str("changed")));
  EXPECT_TRUE(v_->HasUncommittedChanges());
  v_ = Reopen();
  EXPECT_EQ(*ReadFile(*v_, "/kept"), Str("kept"));
  EXPECT_EQ(v_->GetStat("/lost").status().code(), StatusCode::kNotFound);
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
}

TEST_F(VolumeTest, ReadOnlyRefusesChanges) {
  ASSERT_OK(WriteFile(*v_, "/a", Str("a")));
  ASSERT_TRUE(v_->Commit().ok());
  OpenOptions ro;
  ro.read_only = true;
  v_ = Reopen(ro);
  EXPECT_EQ(v_->Mkdir("/d", 0755).code(), StatusCode::kPermissionDenied);
  OpenFlags w;
  w.write = true;
  EXPECT_EQ(v_->OpenFile("/a", w).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(v_->Commit().status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(*ReadFile(*v_, "/a"), Str("a"));
}

TEST_F(VolumeTest, OverwritesGoThroughTheJournalAndCheckpoint) {
  OpenOptions o;
  o.journal_rotate_bytes = 16 * 1024;  // rotate often
  v_ = Reopen(o);
  Bytes data = Pattern(200 * 512, 8);
  ASSERT_OK(WriteFile(*v_, "/db", data));
  ASSERT_TRUE(v_->Commit().ok());
  std::mt19937 rng(9);
  OpenFlags w;
  w.write = true;
  for (int round = 0; round < 60; ++round) {
    auto f = v_->OpenFile("/db", w);
    for (int k = 0; k < 5; ++k) {
      uint64_t off = rng() % (data.size() - 600);
      Bytes patch = Pattern(1 + rng() % 600, static_cast<uint32_t>(rng()));
      ASSERT_OK((*f)->WriteAt(off, patch));
      std::copy(patch.begin(), patch.end(), data.begin() + static_cast<ptrdiff_t>(off));
    }
    f->reset();
    ASSERT_TRUE(v_->Commit().ok());
    ASSERT_LE(JournalCount(), 2u);
  }
  EXPECT_EQ(*ReadFile(*v_, "/db"), data);
  Tag tag = v_->Info().tag;
  OpenOptions expect;
  expect.expected_tag = tag;
  v_ = Reopen(expect);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/db"), data);
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty());
}

TEST_F(VolumeTest, CheckpointPutsRunsOfPagesInPlace) {
  // A checkpoint reads pages whose frames follow each other in one read and
  // writes pages that follow each other in an object in one write. Mixed
  // here: a sequential rewrite longer than one copy batch, spread over
  // commits; scattered writes to a second file between its runs; and runs
  // written backwards (next to each other in the object, not in the journal).
  OpenOptions o;
  o.journal_rotate_bytes = 256 * 1024;
  v_ = Reopen(o);
  const uint64_t C = 512;
  Bytes big = Pattern(700 * C, 21);
  Bytes small = Pattern(40 * C, 22);
  ASSERT_OK(WriteFile(*v_, "/big", big));
  ASSERT_OK(WriteFile(*v_, "/small", small));
  ASSERT_TRUE(v_->Commit().ok());
  std::mt19937 rng(23);
  OpenFlags w;
  w.write = true;
  auto put = [](Bytes& model, uint64_t off, const Bytes& patch) {
    std::copy(patch.begin(), patch.end(), model.begin() + static_cast<ptrdiff_t>(off));
  };
  for (int pass = 0; pass < 3; ++pass) {
    auto b = v_->OpenFile("/big", w);
    auto s = v_->OpenFile("/small", w);
    ASSERT_TRUE(b.ok() && s.ok());
    for (uint64_t c = 0; c < 700; c += 70) {
      if (c / 70 % 3 == 1) {
        for (uint64_t k = 70; k-- > 0;) {
          Bytes patch = Pattern(C, static_cast<uint32_t>(rng()));
          ASSERT_OK((*b)->WriteAt((c + k) * C, patch));
          put(big, (c + k) * C, patch);
        }
      } else {
        Bytes patch = Pattern(70 * C, static_cast<uint32_t>(rng()));
        ASSERT_OK((*b)->WriteAt(c * C, patch));
        put(big, c * C, patch);
      }
      uint64_t off = rng() % (small.size() - 300);
      Bytes p2 = Pattern(300, static_cast<uint32_t>(rng()));
      ASSERT_OK((*s)->WriteAt(off, p2));
      put(small, off, p2);
      if (c / 70 % 2 == 1) {
        ASSERT_TRUE(v_->Commit().ok());
      }
    }
    ASSERT_TRUE(v_->Commit().ok());
    ASSERT_LE(JournalCount(), 2u);
    EXPECT_EQ(*ReadFile(*v_, "/big"), big);
    EXPECT_EQ(*ReadFile(*v_, "/small"), small);
  }
  OpenOptions expect;
  expect.expected_tag = v_->Info().tag;
  expect.journal_rotate_bytes = 1;  // the open checkpoints what it can
  v_ = Reopen(expect);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/big"), big);
  EXPECT_EQ(*ReadFile(*v_, "/small"), small);
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty());
}

TEST_F(VolumeTest, PreviousCommitStaysReachable) {
  ASSERT_OK(WriteFile(*v_, "/f", Str("one")));
  Tag t1 = *v_->Commit();
  ASSERT_OK(WriteFile(*v_, "/f", Str("two, longer")));
  ASSERT_OK(WriteFile(*v_, "/g", Str("new")));
  Tag t2 = *v_->Commit();
  ASSERT_NE(t1, t2);
  // The remote party may only have seen t1 (the process died after the
  // commit but before reporting it): opening with t1 returns to it.
  OpenOptions o;
  o.expected_tag = t1;
  v_ = Reopen(o);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/f"), Str("one"));
  EXPECT_EQ(v_->GetStat("/g").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(v_->Info().tag, t1);
  v_ = Reopen();
  EXPECT_EQ(v_->Info().tag, t1) << "the later commit was discarded";
  OpenOptions o2;
  o2.expected_tag = t2;
  v_.reset();
  EXPECT_EQ(Volume::Open(env_, "/vol", key_, o2).status().code(), StatusCode::kStale);
}

TEST_F(VolumeTest, AcceptNewerOpensTheNewestDescendant) {
  ASSERT_OK(WriteFile(*v_, "/f", Str("one")));
  Tag t1 = *v_->Commit();
  ASSERT_OK(WriteFile(*v_, "/f", Str("two")));
  Tag t2 = *v_->Commit();
  ASSERT_OK(WriteFile(*v_, "/f", Str("three")));
  Tag t3 = *v_->Commit();
  // The remote party saw only t1; the commits after it were made by the
  // key holder and chain back to it, so they are kept.
  OpenOptions o;
  o.expected_tag = t1;
  o.accept_newer = true;
  v_ = Reopen(o);
  ASSERT_TRUE(v_);
  EXPECT_EQ(v_->Info().tag, t3);
  EXPECT_EQ(*ReadFile(*v_, "/f"), Str("three"));
  o.expected_tag = t3;
  v_ = Reopen(o);
  ASSERT_TRUE(v_);
  EXPECT_EQ(v_->Info().tag, t3);
  // A tag the volume never had is still stale.
  Tag other = t2;
  other[0] ^= 1;
  o.expected_tag = other;
  v_.reset();
  EXPECT_EQ(Volume::Open(env_, "/vol", key_, o).status().code(), StatusCode::kStale);
}

TEST_F(VolumeTest, SplicedDiscardedCommitIsIgnored) {
  // Regression: commit A, commit B, return to A (B is discarded), commit C,
  // then an attacker appends B's saved commit frames to the journal. The
  // volume must still open as C, never serve B under C's tag.
  ASSERT_OK(WriteFile(*v_, "/f", Str("A")));
  Tag a = *v_->Commit();
  std::string journal;
  for (const auto& n : Names("/vol")) {
    if (format::ParseJournalName(n)) journal = "/vol/" + n;
  }
  size_t after_a = env_.Contents(journal)->size();
  ASSERT_OK(WriteFile(*v_, "/f", Str("B")));
  ASSERT_TRUE(v_->Commit().ok());
  Bytes full = *env_.Contents(journal);
  Bytes b_frames(full.begin() + static_cast<ptrdiff_t>(after_a), full.end());
  OpenOptions at_a;
  at_a.expected_tag = a;
  v_ = Reopen(at_a);
  ASSERT_OK(WriteFile(*v_, "/f", Str("C")));
  Tag c = *v_->Commit();
  v_.reset();
  Bytes spliced = *env_.Contents(journal);
  spliced.insert(spliced.end(), b_frames.begin(), b_frames.end());
  ASSERT_OK(env_.SetContents(journal, spliced));
  for (bool ro : {true, false}) {
    OpenOptions o;
    o.expected_tag = c;
    o.read_only = ro;
    auto v = Volume::Open(env_, "/vol", key_, o);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(*ReadFile(**v, "/f"), Str("C"));
  }
}

TEST_F(VolumeTest, RotationSurvivesReopen) {
  // Writers that open, commit once and close (like `cloister volume put`)
  // must still rotate and checkpoint the journal.
  OpenOptions o;
  o.journal_rotate_bytes = 2048;
  o.journal_preallocate_bytes = 0;  // the bound below is on the journals' bytes
  ASSERT_OK(WriteFile(*v_, "/f", Pattern(40 * 512, 1)));
  ASSERT_TRUE(v_->Commit().ok());
  Bytes data = Pattern(40 * 512, 1);
  for (int i = 0; i < 30; ++i) {
    v_ = Reopen(o);
    ASSERT_TRUE(v_);
    OpenFlags w;
    w.write = true;
    auto f = v_->OpenFile("/f", w);
    Bytes patch = Pattern(700, 100 + static_cast<uint32_t>(i));
    ASSERT_OK((*f)->WriteAt(static_cast<uint64_t>(i) * 500, patch));
    std::copy(patch.begin(), patch.end(), data.begin() + i * 500);
    f->reset();
    ASSERT_TRUE(v_->Commit().ok());
    ASSERT_LE(JournalCount(), 2u) << "round " << i;
    ASSERT_LT(JournalBytes(), 3u * 2048 + 2 * 12000) << "round " << i;
  }
  v_ = Reopen(o);
  EXPECT_EQ(*ReadFile(*v_, "/f"), data);
}

TEST_F(VolumeTest, PreallocatedJournalTailReadsAsItsEnd) {
  ASSERT_OK(WriteFile(*v_, "/f", Str("first")));
  ASSERT_TRUE(v_->Commit().ok());
  ASSERT_OK(WriteFile(*v_, "/f", Str("second")));
  Tag t = *v_->Commit();
  // While the writer has it open, the journal runs into zeros.
  EXPECT_EQ(JournalBytes() % (uint64_t{1} << 20), 0u);
  {
    // A reader (or a writer after a crash) takes the zeros for the end.
    OpenOptions ro;
    ro.read_only = true;
    ro.expected_tag = t;
    auto r = Volume::Open(env_, "/vol", key_, ro);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*ReadFile(**r, "/f"), Str("second"));
  }
  // A writer that closes cuts them off: nothing is left to report.
  v_.reset();
  EXPECT_LT(JournalBytes(), uint64_t{1} << 20);
  v_ = Reopen();
  ASSERT_TRUE(v_);
  EXPECT_EQ(v_->Info().tag, t);
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
}

TEST_F(VolumeTest, CheckpointedJournalsAreReusedAndTheirOldFramesReadAsATail) {
  OpenOptions o;
  o.journal_rotate_bytes = 64 * 1024;  // dozens of small commits each
  o.journal_preallocate_bytes = 4096;
  v_ = Reopen(o);
  Bytes data = Pattern(64 * 512, 31);
  ASSERT_OK(WriteFile(*v_, "/db", data));
  ASSERT_TRUE(v_->Commit().ok());
  OpenFlags w;
  w.write = true;
  auto overwrite = [&](int round) {
    auto f = v_->OpenFile("/db", w);
    ASSERT_TRUE(f.ok());
    Bytes patch = Pattern(100, static_cast<uint32_t>(round));
    const uint64_t off = static_cast<uint64_t>(round % 300) * 100;
    ASSERT_OK((*f)->WriteAt(off, patch));
    std::copy(patch.begin(), patch.end(), data.begin() + static_cast<ptrdiff_t>(off));
  };
  // Overwrites fill journal after journal. A journal that was made from a
  // checkpointed one is at least a full journal long after its first commit
  // (a new file would be a few KiB) and holds the old frames after it.
  bool reused = false;
  std::set<std::string> seen;
  int round = 0;
  for (; round < 2000 && !reused; ++round) {
    overwrite(round);
    ASSERT_TRUE(v_->Commit().ok());
    for (const auto& n : Names("/vol")) {
      if (!format::ParseJournalName(n) || !seen.insert(n).second) continue;
      reused = reused || env_.Contents("/vol/" + n)->size() >= o.journal_rotate_bytes;
    }
    ASSERT_LE(JournalCount(), 2u);
  }
  ASSERT_TRUE(reused) << "no journal was reused";
  overwrite(round++);
  Tag tag = *v_->Commit();
  // Killed now: the reused journal ends in the frames of the journal it
  // was, dozens of commits among them, which no reader takes for commits
  // of this one nor for damage.
  env_.Crash(os::MemEnv::CrashMode::kDropUnsynced);
  v_.reset();
  {
    OpenOptions ro;
    ro.read_only = true;
    auto r = Volume::Open(env_, "/vol", key_, ro);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->Info().tag, tag);
    EXPECT_EQ(*ReadFile(**r, "/db"), data);
  }
  OpenOptions expect = o;
  expect.expected_tag = tag;
  v_ = Reopen(expect);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/db"), data);
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  // Going on after the crash, and a close, leave no spare behind.
  for (int k = 0; k < 60; ++k) {
    overwrite(round++);
    ASSERT_TRUE(v_->Commit().ok());
  }
  tag = v_->Info().tag;
  v_.reset();
  EXPECT_FALSE(env_.FileExists("/vol/journal.spare"));
  expect.expected_tag = tag;
  v_ = Reopen(expect);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/db"), data);
}

TEST_F(VolumeTest, UnreferencedObjectsAreRemovedAsideAndAtTheLatestAtClose) {
  OpenOptions o;
  o.journal_rotate_bytes = 2048;  // a checkpoint every few commits
  o.background_removals = true;
  v_ = Reopen(o);
  // Files that are written, committed and removed again: once the journals
  // that still refer to them are checkpointed, their objects go.
  OpenFlags w;
  w.write = true;
  std::set<std::string> seen;
  for (int round = 0; round < 40; ++round) {
    const std::string path = "/f" + std::to_string(round % 3);
    ASSERT_OK(WriteFile(*v_, path, Pattern(20 * 512, static_cast<uint32_t>(round))));
    ASSERT_TRUE(v_->Commit().ok());
    for (const auto& n : Names("/vol/objects")) seen.insert(n);
    ASSERT_OK(v_->Remove(path));
    ASSERT_TRUE(v_->Commit().ok());
  }
  ASSERT_OK(WriteFile(*v_, "/kept", Str("kept")));
  const Tag tag = *v_->Commit();
  v_.reset();  // waits for the removals queued
  // The checkpoints' removals were done: few objects are left.
  std::set<std::string> left;
  for (const auto& n : Names("/vol/objects")) left.insert(n);
  EXPECT_GT(seen.size(), left.size() + 20);
  OpenOptions expect = o;
  expect.expected_tag = tag;
  v_ = Reopen(expect);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/kept"), Str("kept"));
  auto report = v_->Verify();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
}

TEST_F(VolumeTest, LeftoverSpareJournalIsRemovedAtOpen) {
  ASSERT_OK(WriteFile(*v_, "/f", Str("kept")));
  Tag t = *v_->Commit();
  v_.reset();
  // What a writer killed while it kept a checkpointed journal for reuse
  // leaves: never read, whatever it holds.
  ASSERT_OK(env_.OpenFile("/vol/journal.spare", os::OpenMode::kCreate).status());
  ASSERT_OK(env_.SetContents("/vol/journal.spare", Pattern(3000, 1)));
  {
    OpenOptions ro;
    ro.read_only = true;
    ro.expected_tag = t;
    auto r = Volume::Open(env_, "/vol", key_, ro);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*ReadFile(**r, "/f"), Str("kept"));
    auto report = (*r)->Verify();
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  }
  OpenOptions o;
  o.expected_tag = t;
  v_ = Reopen(o);
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/f"), Str("kept"));
  EXPECT_FALSE(env_.FileExists("/vol/journal.spare"));
}

TEST_F(VolumeTest, DamagedJournalIsNotMistakenForACrash) {
  ASSERT_OK(WriteFile(*v_, "/f", Str("one")));
  Tag t1 = *v_->Commit();
  ASSERT_OK(WriteFile(*v_, "/f", Str("two")));
  ASSERT_TRUE(v_->Commit().ok());
  ASSERT_OK(WriteFile(*v_, "/f", Str("three")));
  Tag t3 = *v_->Commit();
  v_.reset();
  std::string journal;
  for (const auto& n : Names("/vol")) {
    if (format::ParseJournalName(n)) journal = "/vol/" + n;
  }
  // Corrupt the second commit frame: the first commit frame ends where the
  // second transaction begins; flip a byte just after the first frame.
  Bytes j = *env_.Contents(journal);
  size_t second = 0;
  for (size_t i = 1, found = 0; i + 4 < j.size(); ++i) {
    if (j[i] == 'C' && j[i + 1] == 'L' && j[i + 2] == 'J' && j[i + 3] == 'F' && ++found == 1) {
      second = i;
      break;
    }
  }
  ASSERT_GT(second, 0u);
  j[second + 40] ^= 1;
  ASSERT_OK(env_.SetContents(journal, j));
  for (bool ro : {true, false}) {
    OpenOptions o;
    o.read_only = ro;
    EXPECT_EQ(Volume::Open(env_, "/vol", key_, o).status().code(), StatusCode::kIntegrity)
        << "an authentic later commit proves damage, not a crash";
  }
  OpenOptions with_tag;
  with_tag.expected_tag = t3;
  EXPECT_EQ(Volume::Open(env_, "/vol", key_, with_tag).status().code(), StatusCode::kStale);
  with_tag.expected_tag = t1;
  with_tag.read_only = true;
  auto v = Volume::Open(env_, "/vol", key_, with_tag);
  ASSERT_TRUE(v.ok()) << "the expected tag may choose the state";
  EXPECT_EQ(*ReadFile(**v, "/f"), Str("one"));
}

// A file that lives and dies inside one transaction (a program's
// temporary file) leaves its object on disk, which no commit refers to:
// the writer removes it by the time it closes, so that the volume it
// leaves verifies clean, read-only too.
TEST_F(VolumeTest, FileCreatedAndRemovedInOneTransactionLeavesNoObject) {
  for (bool background : {false, true}) {
    SCOPED_TRACE(background ? "background removals" : "removals in the caller");
    OpenOptions o;
    o.background_removals = background;
    v_ = Reopen(o);
    ASSERT_TRUE(v_);
    const std::string path = background ? "/tmp2" : "/tmp1";
    ASSERT_OK(WriteFile(*v_, path, Pattern(40 * 512, 7)));
    ASSERT_OK(v_->Remove(path));
    ASSERT_OK(WriteFile(*v_, "/kept", Str("kept")));
    const Tag tag = *v_->Commit();
    v_.reset();
    OpenOptions ro;
    ro.read_only = true;
    ro.expected_tag = tag;
    v_ = Reopen(ro);
    ASSERT_TRUE(v_);
    auto report = v_->Verify();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  }
}

// The collection at close is only for a volume that opened: an open that
// is refused half-way knows too little of the volume to judge what is
// garbage.
TEST_F(VolumeTest, RefusedOpenRemovesNothing) {
  ASSERT_OK(WriteFile(*v_, "/f", Pattern(40 * 512, 3)));
  ASSERT_TRUE(v_->Commit().ok());
  v_.reset();
  const std::vector<std::string> before = Names("/vol/objects");
  ASSERT_FALSE(before.empty());
  OpenOptions wrong;
  wrong.expected_tag = Tag{};  // no state has this tag
  EXPECT_FALSE(Volume::Open(env_, "/vol", key_, wrong).ok());
  EXPECT_FALSE(Volume::Open(env_, "/vol", TestKey(2), {}).ok());
  EXPECT_EQ(Names("/vol/objects"), before);
  v_ = Reopen();
  ASSERT_TRUE(v_);
  EXPECT_EQ(*ReadFile(*v_, "/f"), Pattern(40 * 512, 3));
}

TEST_F(VolumeTest, VerifyAtThePreviousTagFindsNoLeftovers) {
  ASSERT_OK(WriteFile(*v_, "/f", Pattern(3000, 1)));
  Tag t1 = *v_->Commit();
  ASSERT_OK(WriteFile(*v_, "/g", Pattern(3000, 2)));
  ASSERT_TRUE(v_->Commit().ok());
  OpenOptions o;
  o.read_only = true;
  o.expected_tag = t1;
  v_ = Reopen(o);
  auto r = v_->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->problems.empty()) << r->problems[0];
}

// Format version 3 (docs/volume-format.md, section 19): a large rewrite of
// committed chunks goes once, in place, into their other slot, and the
// journal carries only tree nodes.
TEST_F(VolumeTest, LargeRewritesAreRelocatedNotJournaled) {
  EXPECT_EQ(v_->Info().format_version, format::kFormatVersion3);
  OpenOptions exact;
  exact.journal_preallocate_bytes = 0;  // journal sizes are then what was written
  v_ = Reopen(exact);
  constexpr size_t kSize = 1 << 20;
  ASSERT_OK(WriteFile(*v_, "/f", Pattern(kSize, 1)));
  auto t1 = v_->Commit();
  ASSERT_TRUE(t1.ok());
  const uint64_t journal_before = JournalBytes();
  ASSERT_OK(Overwrite("/f", 0, Pattern(kSize, 2)));
  auto t2 = v_->Commit();
  ASSERT_TRUE(t2.ok());
  std::string alternate;
  for (const auto& name : Names("/vol/objects")) {
    if (name.size() == 34 && name.substr(32) == ".b") alternate = name;
  }
  ASSERT_FALSE(alternate.empty()) << "the rewrite did not use an alternate data object";
  EXPECT_EQ(env_.Contents("/vol/objects/" + alternate)->size(), kSize);
  EXPECT_LT(JournalBytes() - journal_before, kSize / 8) << "the rewritten chunks went through the journal";
  auto back = ReadFile(*v_, "/f");
  ASSERT_OK(back.status());
  EXPECT_TRUE(*back == Pattern(kSize, 2));

  // Relocated in a retained commit: the next rewrite must not move it back
  // over what the state before it reads, so it is journaled.
  const uint64_t journal_mid = JournalBytes();
  ASSERT_OK(Overwrite("/f", 0, Pattern(kSize, 3)));
  ASSERT_TRUE(v_->Commit().ok());
  EXPECT_GT(JournalBytes() - journal_mid, kSize) << "a chunk relocated by a retained commit moved again";

  // Every retained state still reads back exactly.
  v_.reset();
  for (const auto& [tag, seed] : {std::pair{*t1, 1u}, std::pair{*t2, 2u}}) {
    SCOPED_TRACE("state " + std::to_string(seed));
    OpenOptions o;
    o.read_only = true;
    o.expected_tag = tag;
    auto old = Volume::Open(env_, "/vol", key_, o);
    ASSERT_OK(old.status());
    back = ReadFile(**old, "/f");
    ASSERT_OK(back.status());
    EXPECT_TRUE(*back == Pattern(kSize, seed));
    auto report = (*old)->Verify();
    ASSERT_OK(report.status());
    EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  }
  v_ = Reopen();
  back = ReadFile(*v_, "/f");
  ASSERT_OK(back.status());
  EXPECT_TRUE(*back == Pattern(kSize, 3));
}

// Rotating after enough relocations lets a file rewritten pass after pass
// be written once per pass: its journal is checkpointed before the next.
TEST_F(VolumeTest, RewritingAFileOverAndOverRelocatesEveryPass) {
  v_.reset();
  OpenOptions o;
  o.journal_rotate_relocated_bytes = 64 << 10;
  o.journal_preallocate_bytes = 0;
  v_ = Reopen(o);
  constexpr size_t kSize = 256 << 10;
  ASSERT_OK(WriteFile(*v_, "/f", Pattern(kSize, 0)));
  ASSERT_TRUE(v_->Commit().ok());
  OpenFlags w;
  w.write = true;
  auto f = v_->OpenFile("/f", w);
  ASSERT_OK(f.status());
  uint64_t journaled = 0;
  for (uint32_t pass = 1; pass <= 6; ++pass) {
    for (size_t off = 0; off < kSize; off += 64 << 10) {
      const uint64_t before = JournalBytes();
      ASSERT_OK((*f)->WriteAt(off, Pattern(64 << 10, pass * 100 + static_cast<uint32_t>(off >> 16))));
      ASSERT_TRUE(v_->Commit().ok());
      const uint64_t after = JournalBytes();
      if (after > before) journaled += after - before;
    }
  }
  f->reset();
  // Six passes of 256 KiB: written twice, they would journal 1.5 MiB.
  EXPECT_LT(journaled, uint64_t{6} * kSize / 4) << "passes after the first went through the journal";
  Bytes want(kSize);
  for (size_t off = 0; off < kSize; off += 64 << 10) {
    Bytes part = Pattern(64 << 10, 600 + static_cast<uint32_t>(off >> 16));
    std::copy(part.begin(), part.end(), want.begin() + static_cast<ptrdiff_t>(off));
  }
  v_ = Reopen();
  auto back = ReadFile(*v_, "/f");
  ASSERT_OK(back.status());
  EXPECT_TRUE(*back == want);
  auto report = v_->Verify();
  ASSERT_OK(report.status());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
}

// A chunk's slot is in its leaf: the other data object's bytes are never
// read for it, and a chunk copied there from another position fails.
TEST_F(VolumeTest, AlternateDataObjectIsAuthenticatedLikeTheDataObject) {
  constexpr size_t kSize = 128 << 10;
  ASSERT_OK(WriteFile(*v_, "/f", Pattern(kSize, 1)));
  ASSERT_TRUE(v_->Commit().ok());
  ASSERT_OK(Overwrite("/f", 0, Pattern(kSize, 2)));
  ASSERT_TRUE(v_->Commit().ok());
  v_.reset();
  std::string data, alternate;
  for (const auto& name : Names("/vol/objects")) {
    if (name.size() == 34 && name.substr(32) == ".b") alternate = "/vol/objects/" + name;
    if (name.size() == 32) data = "/vol/objects/" + name;
  }
  ASSERT_FALSE(alternate.empty());
  const Bytes saved = *env_.Contents(alternate);
  // Garbage in the slot no leaf names changes nothing.
  Bytes junk = *env_.Contents(data);
  for (auto& b : junk) b ^= 0x5a;
  ASSERT_OK(env_.SetContents(data, junk));
  v_ = Reopen();
  auto back = ReadFile(*v_, "/f");
  ASSERT_OK(back.status());
  EXPECT_TRUE(*back == Pattern(kSize, 2));
  v_.reset();
  // Chunk 3 replaced by chunk 2 (a valid chunk of the same file): refused.
  Bytes moved = saved;
  std::copy(moved.begin() + 2 * 512, moved.begin() + 3 * 512, moved.begin() + 3 * 512);
  ASSERT_OK(env_.SetContents(alternate, moved));
  v_ = Reopen();
  auto bad = ReadFile(*v_, "/f");
  EXPECT_EQ(bad.status().code(), StatusCode::kIntegrity) << bad.status().ToString();
  v_.reset();
  // The alternate object gone: refused, not zeros.
  ASSERT_OK(env_.RemoveFile(alternate));
  v_ = Reopen();
  bad = ReadFile(*v_, "/f");
  EXPECT_EQ(bad.status().code(), StatusCode::kIntegrity) << bad.status().ToString();
}

TEST(ChunkSetTest, KeepsRangesAndCounts) {
  internal::ChunkSet s;
  EXPECT_TRUE(s.Insert(5));
  EXPECT_TRUE(s.Insert(7));
  EXPECT_FALSE(s.Insert(5));
  EXPECT_TRUE(s.Insert(6));  // joins [5,6) and [7,8)
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_TRUE(s.Insert(4));
  EXPECT_TRUE(s.Insert(8));
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_EQ(s.ranges().begin()->first, 4u);
  EXPECT_EQ(s.ranges().begin()->second, 9u);
  EXPECT_TRUE(s.Insert(100));
  EXPECT_EQ(s.size(), 6u);
  for (uint64_t c : {4, 5, 6, 7, 8, 100}) EXPECT_TRUE(s.Contains(c)) << c;
  for (uint64_t c : {0, 3, 9, 99, 101}) EXPECT_FALSE(s.Contains(c)) << c;
}

TEST(VolumeConcurrencyTest, ThreadsShareOneVolume) {
  // Several threads read and write their own files of one volume (4 KiB
  // chunks, so large writes and reads are split across the crypto pool).
  os::MemEnv env;
  SecretBytes key = TestKey();
  auto v = Volume::Create(env, "/vol", key, CreateOptions{});
  ASSERT_TRUE(v.ok());
  Volume& vol = **v;
  constexpr int kThreads = 4;
  std::vector<Bytes> contents(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string path = "/t" + std::to_string(t);
      Bytes data = Pattern(2 << 20, static_cast<uint32_t>(t));
      OpenFlags c;
      c.create = true;
      auto f = vol.OpenFile(path, c);
      if (!f.ok()) return failures++, void();
      for (size_t off = 0; off < data.size(); off += 300000) {
        size_t n = std::min<size_t>(300000, data.size() - off);
        if (!(*f)->WriteAt(off, std::span<const uint8_t>(data.data() + off, n)).ok()) failures++;
        Bytes back(n);
        auto r = (*f)->ReadAt(off, back);
        if (!r.ok() || *r != n || !std::equal(back.begin(), back.end(), data.begin() + static_cast<ptrdiff_t>(off))) {
          failures++;
        }
      }
      if (t == 0 && !vol.Commit().ok()) failures++;
      contents[t] = std::move(data);
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(vol.Commit().ok());
  v->reset();
  auto r = Volume::Open(env, "/vol", key, OpenOptions{});
  ASSERT_TRUE(r.ok());
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(*ReadFile(**r, "/t" + std::to_string(t)), contents[t]);
  auto report = (*r)->Verify();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty());
}

TEST_F(VolumeTest, OneWriterAtATime) {
  auto second = Volume::Open(env_, "/vol", key_, OpenOptions{});
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  OpenOptions ro;
  ro.read_only = true;
  EXPECT_TRUE(Volume::Open(env_, "/vol", key_, ro).ok()) << "readers need no lock";
  v_.reset();
  EXPECT_TRUE(Volume::Open(env_, "/vol", key_, OpenOptions{}).ok());
}

TEST_F(VolumeTest, RekeysBeforeTheEncryptionLimit) {
  OpenOptions o;
  o.max_encryptions_per_key = 100;  // files up to 25 chunks
  v_ = Reopen(o);
  Bytes data = Pattern(20 * 512, 10);
  ASSERT_OK(WriteFile(*v_, "/k", data));
  ASSERT_TRUE(v_->Commit().ok());
  auto objects_before = Names("/vol/objects");
  OpenFlags w;
  w.write = true;
  for (int i = 0; i < 100; ++i) {
    auto f = v_->OpenFile("/k", w);
    Bytes b = {static_cast<uint8_t>(i)};
    ASSERT_OK((*f)->WriteAt(static_cast<uint64_t>(i) * 97, b));
    data[static_cast<size_t>(i) * 97] = static_cast<uint8_t>(i);
  }
  ASSERT_TRUE(v_->Commit().ok());
  EXPECT_EQ(*ReadFile(*v_, "/k"), data);
  v_ = Reopen(o);
  EXPECT_EQ(*ReadFile(*v_, "/k"), data);
  auto objects_after = Names("/vol/objects");
  EXPECT_NE(objects_before, objects_after) << "the file moved to a new object (new key)";
  EXPECT_EQ(v_->Truncate("/k", 26 * 512).code(), StatusCode::kInvalidArgument)
      << "files whose re-encryption would exhaust a key are refused";
}

TEST_F(VolumeTest, RandomWriteCostDoesNotGrowWithFileSize) {
  // Per-write work is bounded by chunk + tree height, not file size: a
  // random small overwrite in a committed file appends a bounded number of
  // bytes to the journal whatever the file size.
  for (uint64_t size : {uint64_t{64} << 10, uint64_t{8} << 20}) {
    ASSERT_OK(WriteFile(*v_, "/big", Bytes(size, 1)));
    ASSERT_TRUE(v_->Commit().ok());
    uint64_t before = JournalBytes();
    OpenFlags w;
    w.write = true;
    auto f = v_->OpenFile("/big", w);
    ASSERT_OK((*f)->WriteAt(size / 2 + 100, Str("x")));
    f->reset();
    ASSERT_TRUE(v_->Commit().ok());
    uint64_t after = JournalBytes();
    // One data page and at most one node page per level (512-byte pages,
    // height <= 5 here) plus the commit frame with a one-file manifest.
    EXPECT_LT(after - before, 6u * 600 + 600) << "size " << size;
  }
}

TEST_F(VolumeTest, TinyCacheStillCorrect) {
  OpenOptions o;
  o.cache_bytes = 4 * 512;
  v_ = Reopen(o);
  Bytes data = Pattern(2000 * 512, 11);
  ASSERT_OK(WriteFile(*v_, "/c", data));
  EXPECT_EQ(*ReadFile(*v_, "/c"), data);
  ASSERT_TRUE(v_->Commit().ok());
  v_ = Reopen(o);
  EXPECT_EQ(*ReadFile(*v_, "/c"), data);
}

TEST_F(VolumeTest, WrongKeyIsRefused) {
  v_.reset();
  auto r = Volume::Open(env_, "/vol", TestKey(2), OpenOptions{});
  EXPECT_EQ(r.status().code(), StatusCode::kIntegrity);
}

TEST_F(VolumeTest, CreateRefusesNonEmptyDirectory) {
  EXPECT_EQ(Volume::Create(env_, "/vol", key_, CreateOptions{}).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(VolumeTest, AuthenticatedOnlyVolumeRoundTrips) {
  CreateOptions c;
  c.protection = Protection::kAuthenticatedOnly;
  auto v = Volume::Create(env_, "/auth", key_, c);
  ASSERT_TRUE(v.ok());
  Bytes data = Str(std::string(5000, 'Q') + "visible code");
  ASSERT_OK(WriteFile(**v, "/code.py", data));
  ASSERT_TRUE((*v)->Commit().ok());
  v->reset();
  auto r = Volume::Open(env_, "/auth", key_, OpenOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->Info().protection, Protection::kAuthenticatedOnly);
  EXPECT_EQ(*ReadFile(**r, "/code.py"), data);
}

}  // namespace
}  // namespace cloister::volume
