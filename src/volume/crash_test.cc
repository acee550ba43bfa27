// Crash consistency under fault injection. The file system is MemEnv: it
// forgets unsynced data on Crash() (or keeps a random part of it), and can
// make every write-like call fail after N successes, which stops a commit
// at an arbitrary point as if the process had died there. After each such
// crash the volume must open, every file must be at its last committed
// state (or, if the interrupted commit reached the disk, at the new one),
// and the tag must be one that a commit reported.
#include <gtest/gtest.h>

#include <map>

#include "cloister/volume.h"
#include "volume/test_util.h"

namespace cloister::volume {
namespace {

using namespace testing;  // NOLINT
using Files = std::map<std::string, Bytes>;

OpenOptions SmallJournal() {
  OpenOptions o;
  o.journal_rotate_bytes = 4096;  // checkpoints happen inside the commits under test
  o.cache_bytes = 8 * 512;
  // Every rewrite of a settled chunk is relocated (format version 3), so
  // interrupted commits leave chunks half written in their other slot.
  o.relocate_min_bytes = 0;
  o.journal_rotate_relocated_bytes = 8 * 512;
  return o;
}

Files ReadAll(Volume& v) {
  Files out;
  std::vector<std::string> dirs{""};
  while (!dirs.empty()) {
    std::string d = dirs.back();
    dirs.pop_back();
    auto list = v.List(d.empty() ? "/" : d);
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    if (!list.ok()) return out;
    for (const auto& e : *list) {
      std::string p = d + "/" + e.name;
      if (e.type == FileType::kDirectory) {
        dirs.push_back(p);
      } else {
        auto data = ReadFile(v, p);
        EXPECT_TRUE(data.ok()) << p << ": " << data.status().ToString();
        out[p] = data.ok() ? *data : Bytes{};
      }
    }
  }
  return out;
}

// Builds a volume with several committed transactions, then runs `change`
// and commits it; returns the state and tags before and after.
struct Scenario {
  Files before, after;
  Tag tag_before{}, tag_after{};
};

void Prepare(os::MemEnv& env, const SecretBytes& key, Scenario* s) {
  CreateOptions c;
  c.chunk_size = 512;
  auto v = Volume::Create(env, "/vol", key, c);
  ASSERT_TRUE(v.ok());
  v->reset();
  auto vol = Volume::Open(env, "/vol", key, SmallJournal());
  ASSERT_TRUE(vol.ok());
  ASSERT_OK(WriteFile(**vol, "/db", Pattern(300 * 512, 1)));  // deep tree
  ASSERT_OK(WriteFile(**vol, "/log", Pattern(3000, 2)));
  ASSERT_OK((*vol)->Mkdir("/d", 0755));
  ASSERT_OK(WriteFile(**vol, "/d/gone", Pattern(900, 3)));
  ASSERT_TRUE((*vol)->Commit().ok());
  // A few more commits so that the journal rotates at least once.
  for (int i = 0; i < 4; ++i) {
    OpenFlags w;
    w.write = true;
    auto f = (*vol)->OpenFile("/db", w);
    ASSERT_OK((*f)->WriteAt(static_cast<uint64_t>(i) * 20000 + 7, Pattern(700, 10 + i)));
    f->reset();
    ASSERT_TRUE((*vol)->Commit().ok());
  }
  s->before = ReadAll(**vol);
  s->tag_before = (*vol)->Info().tag;
}

// The transaction under test touches every kind of change.
Status Change(Volume& v) {
  OpenFlags w;
  w.write = true;
  ASSIGN_OR_RETURN(auto db, v.OpenFile("/db", w));
  RETURN_IF_ERROR(db->WriteAt(5, Pattern(3000, 20)));             // overwrite committed chunks
  RETURN_IF_ERROR(db->WriteAt(300 * 512 + 100, Pattern(5000, 21)));  // extend (fresh chunks, taller tree)
  RETURN_IF_ERROR(db->WriteAt(9000 * 512, Pattern(10, 22)));      // far: holes
  ASSIGN_OR_RETURN(auto log, v.OpenFile("/log", w));
  RETURN_IF_ERROR(log->WriteAt(0, Pattern(1500, 24)));  // settled since the first commit: relocated
  RETURN_IF_ERROR(log->Truncate(1000));
  RETURN_IF_ERROR(WriteFile(v, "/new", Pattern(2500, 23)));
  RETURN_IF_ERROR(v.Remove("/d/gone"));
  RETURN_IF_ERROR(v.Rename("/log", "/d/log"));
  return Status::Ok();
}

void RunCrashPoint(int64_t fail_after, os::MemEnv::CrashMode mode, uint64_t seed, bool* commit_finished) {
  os::MemEnv env(seed);
  SecretBytes key = TestKey();
  Scenario s;
  Prepare(env, key, &s);
  if (::testing::Test::HasFatalFailure()) return;
  {
    auto v = Volume::Open(env, "/vol", key, SmallJournal());
    ASSERT_TRUE(v.ok());
    ASSERT_OK(Change(**v));
    s.after = ReadAll(**v);
    env.FailWritesAfter(fail_after);
    auto t = (*v)->Commit();
    *commit_finished = t.ok();
    if (t.ok()) s.tag_after = *t;
    env.FailWritesAfter(-1);
  }
  env.Crash(mode);

  auto v = Volume::Open(env, "/vol", key, SmallJournal());
  ASSERT_TRUE(v.ok()) << "fail_after=" << fail_after << ": " << v.status().ToString();
  Files now = ReadAll(**v);
  Tag tag = (*v)->Info().tag;
  if (*commit_finished) {
    EXPECT_EQ(tag, s.tag_after) << "a commit that returned must survive (fail_after=" << fail_after << ")";
    EXPECT_TRUE(now == s.after);
  } else if (tag == s.tag_before) {
    EXPECT_TRUE(now == s.before) << "fail_after=" << fail_after;
  } else {
    // The interrupted commit reached the disk before the failure: the newer
    // state is allowed, complete and exact.
    EXPECT_TRUE(now == s.after) << "fail_after=" << fail_after << ": state is neither before nor after";
  }
  auto report = (*v)->Verify();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  v->reset();

  // Whatever happened, the state the remote party knew before the commit
  // can still be opened.
  OpenOptions o = SmallJournal();
  o.expected_tag = s.tag_before;
  auto old = Volume::Open(env, "/vol", key, o);
  ASSERT_TRUE(old.ok()) << "fail_after=" << fail_after << ": " << old.status().ToString();
  EXPECT_TRUE(ReadAll(**old) == s.before);
}

TEST(CrashTest, CommitInterruptedAtEveryWriteDropUnsynced) {
  bool finished = false;
  int64_t n = 0;
  for (; !finished && n < 500; ++n) {
    RunCrashPoint(n, os::MemEnv::CrashMode::kDropUnsynced, 1, &finished);
    if (HasFatalFailure()) return;
  }
  EXPECT_TRUE(finished) << "the commit never completed";
  EXPECT_GT(n, 5) << "the commit should consist of several writes";
}

TEST(CrashTest, CommitInterruptedAtEveryWriteRandomLoss) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    bool finished = false;
    for (int64_t n = 0; !finished && n < 500; ++n) {
      RunCrashPoint(n, os::MemEnv::CrashMode::kRandom, seed * 7919 + static_cast<uint64_t>(n), &finished);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(CrashTest, CrashBetweenCommitsKeepsLastCommit) {
  // kill -9 with uncommitted writes in flight: files are at their last
  // commit, the tag is the one the last commit reported.
  os::MemEnv env(3);
  SecretBytes key = TestKey();
  Scenario s;
  Prepare(env, key, &s);
  {
    auto v = Volume::Open(env, "/vol", key, SmallJournal());
    ASSERT_TRUE(v.ok());
    ASSERT_OK(Change(**v));  // never committed
  }
  env.Crash(os::MemEnv::CrashMode::kRandom);
  OpenOptions o = SmallJournal();
  o.expected_tag = s.tag_before;
  auto v = Volume::Open(env, "/vol", key, o);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(ReadAll(**v) == s.before);
}

TEST(CrashTest, RecoveryItselfCanCrash) {
  // Crash in the middle of the recovery that follows a crash.
  for (int64_t n = 0; n < 40; ++n) {
    os::MemEnv env(static_cast<uint64_t>(n) + 100);
    SecretBytes key = TestKey();
    Scenario s;
    Prepare(env, key, &s);
    {
      auto v = Volume::Open(env, "/vol", key, SmallJournal());
      ASSERT_OK(Change(**v));
      env.FailWritesAfter(3);
      (void)(*v)->Commit();
      env.FailWritesAfter(-1);
    }
    env.Crash(os::MemEnv::CrashMode::kRandom);
    env.FailWritesAfter(n);
    { auto v = Volume::Open(env, "/vol", key, SmallJournal()); }
    env.FailWritesAfter(-1);
    env.Crash(os::MemEnv::CrashMode::kRandom);
    OpenOptions o = SmallJournal();
    o.expected_tag = s.tag_before;
    auto v = Volume::Open(env, "/vol", key, o);
    ASSERT_TRUE(v.ok()) << "n=" << n << ": " << v.status().ToString();
    EXPECT_TRUE(ReadAll(**v) == s.before) << "n=" << n;
  }
}

}  // namespace
}  // namespace cloister::volume
