// The sync log (docs/volume-format.md, section 20): records appended by
// other processes are applied by the next writable open of the state they
// are based on, and by nothing else.
#include "volume/sync_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "os/env.h"
#include "volume/format.h"
#include "volume/test_util.h"

namespace cloister::volume {
namespace {

using testing::Pattern;
using testing::ReadFile;
using testing::TestKey;
using testing::WriteFile;

constexpr uint32_t C = 4096;

class SyncLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cloister-synclog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/vol";
    void* m = ::mmap(nullptr, sizeof(SyncLogShared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    sh_ = new (m) SyncLogShared();
    ASSERT_OK(SyncLogInitShared(sh_, C, 1 << 20, 256 << 10));
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    sh_->~SyncLogShared();
    ::munmap(sh_, sizeof(SyncLogShared));
    std::filesystem::remove_all(root_);
  }

  StatusOr<std::unique_ptr<Volume>> Open(bool read_only = false) {
    OpenOptions o;
    o.read_only = read_only;
    return Volume::Open(os::Env::Posix(), dir_, TestKey(), o);
  }

  // A volume holding /a (3 chunks of pattern 1), committed.
  std::unique_ptr<Volume> Make() {
    auto v = Volume::Create(os::Env::Posix(), dir_, TestKey(), CreateOptions{});
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_OK(WriteFile(**v, "/a", Pattern(3 * C, 1)));
    EXPECT_TRUE((*v)->Commit().ok());
    return std::move(v).value();
  }

  uint64_t Ino(Volume& v, const std::string& path) {
    auto st = v.GetStat(path);
    EXPECT_TRUE(st.ok());
    return st.ok() ? st->ino : 0;
  }

  Status Start(Volume& v) {
    SyncLogLock l(sh_);
    RETURN_IF_ERROR(v.StartSyncLog(sh_));
    if (fd_ < 0) fd_ = ::open((dir_ + "/" + format::kSyncLogFile).c_str(), O_RDWR | O_CLOEXEC);
    return fd_ >= 0 ? Status::Ok() : IoError("cannot open the sync log");
  }

  // Appends a record saying that `ino` has `size` bytes and chunks
  // [first, first + count) hold `data`.
  StatusOr<SyncLogPosition> Append(uint64_t ino, uint64_t size, uint64_t first, uint32_t count, const Bytes& data) {
    return SyncLogAppend(sh_, fd_, [&](SyncRecordContent& c) {
      c.ino = ino;
      c.size = size;
      if (count > 0) c.runs.push_back({first, count});
      c.data = data;
      return Status::Ok();
    });
  }

  // Runs `f` in a forked child (sharing sh_ and fd_); whether it returned true.
  static bool InChild(const std::function<bool()>& f) {
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) ::_exit(f() ? 0 : 1);
    int status = 0;
    return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  // A writable open applies no record: /a is as Make() left it.
  void ExpectNoRecordApplied() {
    auto w = Open();
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ((*w)->Info().sync_log_records, 0u);
    EXPECT_EQ(*ReadFile(**w, "/a"), Pattern(3 * C, 1));
  }

  std::string root_, dir_;
  SyncLogShared* sh_ = nullptr;
  int fd_ = -1;
};

Bytes With(Bytes base, uint64_t off, const Bytes& part) {
  if (base.size() < off + part.size()) base.resize(off + part.size());
  std::copy(part.begin(), part.end(), base.begin() + static_cast<ptrdiff_t>(off));
  return base;
}

TEST_F(SyncLogTest, NoRecordsBeforeALogStarts) {
  auto v = Make();
  auto pos = Append(Ino(*v, "/a"), 3 * C, 0, 1, Pattern(C, 2));
  EXPECT_EQ(pos.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(SyncLogEnd(sh_).status().code(), StatusCode::kUnavailable);
}

TEST_F(SyncLogTest, AWritableOpenAppliesAndCommitsTheRecords) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  const uint64_t seq = v->Info().seq;
  ASSERT_OK(Start(*v));
  auto p1 = Append(ino, 3 * C, 1, 1, Pattern(C, 2));
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  EXPECT_EQ(p1->index, 1u);
  // The file grows: chunk 3, cut at the new size.
  auto p2 = Append(ino, 3 * C + 100, 3, 1, Pattern(100, 3));
  ASSERT_TRUE(p2.ok()) << p2.status().ToString();
  ASSERT_OK(SyncLogMakeDurable(sh_, fd_, *p2));
  EXPECT_EQ(sh_->durable.load(), (sh_->generation << 32) | 2);
  v.reset();  // the writer stops without a commit

  Bytes want = With(With(Pattern(3 * C, 1), C, Pattern(C, 2)), 3 * C, Pattern(100, 3));
  {
    auto ro = Open(/*read_only=*/true);
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    EXPECT_EQ((*ro)->Info().sync_log_records, 2u);
    EXPECT_EQ((*ro)->Info().seq, seq);
    // Read-only: the records over what is stored, nothing written.
    EXPECT_EQ(*ReadFile(**ro, "/a"), want);
    EXPECT_EQ((*ro)->GetStat("/a")->size, 3 * C + 100);
  }
  auto w = Open();
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->Info().sync_log_records, 2u);
  EXPECT_EQ((*w)->Info().seq, seq + 1);
  EXPECT_EQ(*ReadFile(**w, "/a"), want);
  ASSERT_TRUE((*w)->Verify().ok());
  w->reset();
  // Applied once: the log's base is no longer the newest state.
  auto again = Open();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Info().sync_log_records, 0u);
  EXPECT_EQ((*again)->Info().seq, seq + 1);
  EXPECT_EQ(*ReadFile(**again, "/a"), want);
}

TEST_F(SyncLogTest, ARecordCanShrinkAFile) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  ASSERT_TRUE(Append(ino, C + 10, 0, 0, {}).ok());
  v.reset();
  // Then grows again by a chunk written at its end: what was cut reads as
  // zeros.
  ASSERT_TRUE(Append(ino, 3 * C, 2, 1, Pattern(C, 4)).ok());
  v.reset();
  Bytes want = Pattern(3 * C, 1);
  want.resize(C + 10);
  want.resize(2 * C, 0);
  want = With(want, 2 * C, Pattern(C, 4));
  {
    auto ro = Open(/*read_only=*/true);
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    EXPECT_EQ(*ReadFile(**ro, "/a"), want);
  }
  auto w = Open();
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(*ReadFile(**w, "/a"), want);
}

TEST_F(SyncLogTest, ANewLogMakesTheOldOneStale) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  ASSERT_TRUE(Append(ino, 3 * C, 0, 1, Pattern(C, 2)).ok());
  // The writer folds the record in (here: writes the same bytes), commits,
  // and starts the next log; a record of the new one follows.
  {
    OpenFlags f;
    f.write = true;
    auto file = v->OpenFile("/a", f);
    ASSERT_TRUE(file.ok());
    ASSERT_OK((*file)->WriteAt(0, Pattern(C, 2)));
  }
  ASSERT_TRUE(v->Commit().ok());
  const uint64_t seq = v->Info().seq;
  const uint64_t gen = sh_->generation;
  ASSERT_OK(Start(*v));
  EXPECT_EQ(sh_->generation, gen + 1);
  // Records of the old log are durable through the commit.
  EXPECT_GE(sh_->durable.load(), (gen << 32) | 1);
  ASSERT_TRUE(Append(ino, 3 * C, 2, 1, Pattern(C, 4)).ok());
  v.reset();
  auto w = Open();
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->Info().sync_log_records, 1u);
  EXPECT_EQ((*w)->Info().seq, seq + 1);
  EXPECT_EQ(*ReadFile(**w, "/a"), With(With(Pattern(3 * C, 1), 0, Pattern(C, 2)), 2 * C, Pattern(C, 4)));
}

TEST_F(SyncLogTest, ALogBasedOnAnotherStateIsIgnored) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  ASSERT_TRUE(Append(ino, 3 * C, 0, 1, Pattern(C, 2)).ok());
  // A commit after the log started (a writer breaking the protocol, or a
  // copy of an old log put back): its base is not the newest state.
  ASSERT_OK(WriteFile(*v, "/b", Pattern(10, 5)));
  ASSERT_TRUE(v->Commit().ok());
  v.reset();
  ExpectNoRecordApplied();
}

TEST_F(SyncLogTest, TheFirstDamagedRecordEndsTheLog) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  std::vector<uint64_t> offsets;
  for (uint32_t k = 0; k < 3; ++k) {
    offsets.push_back(sh_->next_offset);
    ASSERT_TRUE(Append(ino, 3 * C, k, 1, Pattern(C, 10 + k)).ok());
  }
  v.reset();
  // One bit of the second record's ciphertext.
  uint8_t b;
  ASSERT_EQ(::pread(fd_, &b, 1, static_cast<off_t>(offsets[1] + 40)), 1);
  b ^= 0x10;
  ASSERT_EQ(::pwrite(fd_, &b, 1, static_cast<off_t>(offsets[1] + 40)), 1);
  auto w = Open();
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->Info().sync_log_records, 1u);
  EXPECT_EQ(*ReadFile(**w, "/a"), With(Pattern(3 * C, 1), 0, Pattern(C, 10)));
}

TEST_F(SyncLogTest, RecordsOutOfPlaceEndTheLog) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  const uint64_t first = sh_->next_offset;
  ASSERT_TRUE(Append(ino, 3 * C, 0, 1, Pattern(C, 10)).ok());
  const uint64_t second = sh_->next_offset;
  ASSERT_TRUE(Append(ino, 3 * C, 1, 1, Pattern(C, 11)).ok());
  const uint64_t end = sh_->next_offset;
  v.reset();
  // The second record copied over the first: its number is wrong there.
  std::vector<uint8_t> rec(end - second);
  ASSERT_EQ(::pread(fd_, rec.data(), rec.size(), static_cast<off_t>(second)), static_cast<ssize_t>(rec.size()));
  ASSERT_EQ(second - first, rec.size());
  ASSERT_EQ(::pwrite(fd_, rec.data(), rec.size(), static_cast<off_t>(first)), static_cast<ssize_t>(rec.size()));
  ExpectNoRecordApplied();
}

TEST_F(SyncLogTest, ARecordForADirectoryIsRefused) {
  auto v = Make();
  ASSERT_OK(Start(*v));
  ASSERT_TRUE(Append(format::kRootIno, C, 0, 1, Pattern(C, 2)).ok());
  v.reset();
  auto w = Open();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kIntegrity);
  EXPECT_NE(w.status().message().find("not a file"), std::string::npos) << w.status().message();
}

TEST_F(SyncLogTest, FullOrTooLargeMeansCommitInstead) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  auto big = Append(ino, 80 * C, 0, 80, Pattern(80 * C, 2));  // 320 KiB > 256 KiB
  EXPECT_EQ(big.status().code(), StatusCode::kUnavailable);
  int n = 0;
  StatusOr<SyncLogPosition> p = Status::Ok();
  do {
    p = Append(ino, 64 * C, 0, 64, Pattern(64 * C, 3));
    n += p.ok();
  } while (p.ok() && n < 100);
  EXPECT_EQ(p.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(n, 3);  // 1 MiB of log: three records of 256 KiB after the header
  EXPECT_LE(sh_->next_offset, sh_->capacity);
}

TEST_F(SyncLogTest, AnAppenderThatDiesHoldingTheLockBreaksTheLog) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  ASSERT_TRUE(InChild([&] {
    auto* held = new SyncLogLock(sh_);  // never released: the child ends holding it
    return held->locked();
  }));
  EXPECT_EQ(Append(ino, 3 * C, 0, 1, Pattern(C, 2)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(sh_->state, kSyncLogBroken);
  // The writer's next start takes records again.
  ASSERT_OK(Start(*v));
  EXPECT_TRUE(Append(ino, 3 * C, 0, 1, Pattern(C, 2)).ok());
}

TEST_F(SyncLogTest, AnotherProcessAppends) {
  auto v = Make();
  const uint64_t ino = Ino(*v, "/a");
  ASSERT_OK(Start(*v));
  ASSERT_TRUE(InChild([&] {
    auto p = Append(ino, 3 * C, 1, 2, Pattern(2 * C, 7));
    return p.ok() && SyncLogMakeDurable(sh_, fd_, *p).ok();
  }));
  auto end = SyncLogEnd(sh_);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->index, 1u);
  EXPECT_EQ(sh_->durable.load(), (sh_->generation << 32) | 1);
  v.reset();
  auto w = Open();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*ReadFile(**w, "/a"), With(Pattern(3 * C, 1), C, Pattern(2 * C, 7)));
}

TEST(SyncLogFormat, MalformedBodiesAreRefused) {
  SyncRecordContent c;
  c.ino = 5;
  c.size = 3 * C;
  c.runs = {{0, 1}, {2, 1}};
  c.data = Pattern(2 * C, 1);
  auto body = format::EncodeSyncRecordBody(c, C);
  auto parsed = format::ParseSyncRecordBody(body, C);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->runs.size(), 2u);
  EXPECT_EQ(parsed->data, c.data);

  auto bad = [&](SyncRecordContent x) {
    return format::ParseSyncRecordBody(format::EncodeSyncRecordBody(x, C), C).status().code();
  };
  SyncRecordContent overlap = c;
  overlap.runs = {{0, 2}, {1, 1}};
  overlap.data = Pattern(3 * C, 1);
  EXPECT_EQ(bad(overlap), StatusCode::kIntegrity);
  SyncRecordContent short_data = c;
  short_data.data.resize(2 * C - 1);
  EXPECT_EQ(bad(short_data), StatusCode::kIntegrity);
  SyncRecordContent beyond = c;
  beyond.runs = {{0, 1}, {3, 1}};  // starts at the end of the file
  EXPECT_EQ(bad(beyond), StatusCode::kIntegrity);
  SyncRecordContent empty_run = c;
  empty_run.runs = {{0, 0}};
  empty_run.data.clear();
  EXPECT_EQ(bad(empty_run), StatusCode::kIntegrity);
  SyncRecordContent cut = c;  // the file's last chunk is cut at its size
  cut.size = 2 * C + 5;
  cut.data.resize(C + 5);
  EXPECT_TRUE(format::ParseSyncRecordBody(format::EncodeSyncRecordBody(cut, C), C).ok());
}

}  // namespace
}  // namespace cloister::volume
