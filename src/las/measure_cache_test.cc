#include "las/measure_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "attest/measure.h"

namespace cloister::las {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/las_cache_test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << content;
}

int OpenRead(const std::string& path) { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }

attest::Sha256Value Expected(const std::string& path) {
  auto m = attest::MeasureFile(path);
  EXPECT_TRUE(m.ok());
  auto raw = HexDecode(m->sha256);
  attest::Sha256Value v{};
  std::copy(raw->begin(), raw->end(), v.begin());
  return v;
}

// Files in these tests were all just written; a clock far in the future
// makes them old enough to be cached.
int64_t FarFuture() { return int64_t{4'000'000'000} * 1'000'000'000; }

// Hashes with the real measurement and counts how often it is asked to.
struct CountingHash {
  std::atomic<int> calls{0};
  MeasurementCache::HashFn Fn() {
    return [this](int fd) -> StatusOr<attest::FileMeasurement> {
      ++calls;
      return attest::MeasureFile("/proc/self/fd/" + std::to_string(fd));
    };
  }
};

MeasurementCache::Options CountingOptions(CountingHash& counter) {
  MeasurementCache::Options o;
  o.hash = counter.Fn();
  o.clock = FarFuture;
  return o;
}

TEST(MeasureCacheTest, SameIdentityIsHashedOnce) {
  TempDir dir;
  std::string file = dir.path() + "/prog";
  WriteFile(file, "a program's bytes");
  CountingHash counter;
  MeasurementCache cache(CountingOptions(counter));

  for (int i = 0; i < 3; ++i) {
    int fd = OpenRead(file);  // a new descriptor each time: identity, not fd, is the key
    auto m = cache.Measure(fd);
    ::close(fd);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(*m, Expected(file));
  }
  EXPECT_EQ(counter.calls, 1);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(MeasureCacheTest, ChangedTimesOrBytesAreHashedAgain) {
  TempDir dir;
  std::string file = dir.path() + "/prog";
  WriteFile(file, "version one");
  CountingHash counter;
  MeasurementCache cache(CountingOptions(counter));
  auto measure = [&] {
    int fd = OpenRead(file);
    auto m = cache.Measure(fd);
    ::close(fd);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : attest::Sha256Value{};
  };
  attest::Sha256Value first = measure();
  EXPECT_EQ(counter.calls, 1);

  // A new modification time (which also moves the change time).
  struct timespec times[2] = {{0, UTIME_OMIT}, {1'600'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  EXPECT_EQ(measure(), first);
  EXPECT_EQ(counter.calls, 2);

  // Only the change time moves (a mode change); make sure the clock ticks.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
  EXPECT_EQ(measure(), first);
  EXPECT_EQ(counter.calls, 3);

  // Same size, other bytes, and the old modification time put back: the
  // change time still gives it away.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(file, "version two");
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  attest::Sha256Value second = measure();
  EXPECT_EQ(counter.calls, 4);
  EXPECT_NE(second, first);
  EXPECT_EQ(second, Expected(file));

  // And unchanged from here on.
  EXPECT_EQ(measure(), second);
  EXPECT_EQ(counter.calls, 4);
}

TEST(MeasureCacheTest, RecentlyChangedFilesAreNotCached) {
  TempDir dir;
  std::string file = dir.path() + "/fresh";
  WriteFile(file, "just written");
  CountingHash counter;
  MeasurementCache::Options o;
  o.hash = counter.Fn();  // the real clock: the file changed a moment ago
  MeasurementCache cache(o);
  for (int i = 0; i < 2; ++i) {
    int fd = OpenRead(file);
    ASSERT_TRUE(cache.Measure(fd).ok());
    ::close(fd);
  }
  EXPECT_EQ(counter.calls, 2);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(MeasureCacheTest, ConcurrentMissesHashOnce) {
  TempDir dir;
  std::string file = dir.path() + "/big";
  WriteFile(file, std::string(1 << 20, 'x'));
  std::atomic<int> calls{0};
  MeasurementCache::Options o;
  o.clock = FarFuture;
  o.hash = [&calls](int fd) -> StatusOr<attest::FileMeasurement> {
    ++calls;
    // Slow enough that every thread arrives while this one is hashing.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return attest::MeasureFile("/proc/self/fd/" + std::to_string(fd));
  };
  MeasurementCache cache(o);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      int fd = OpenRead(file);
      auto m = cache.Measure(fd);
      ::close(fd);
      if (m.ok() && *m == Expected(file)) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(calls, 1);
}

TEST(MeasureCacheTest, AFileChangedWhileHashedIsRefusedAndNotCached) {
  TempDir dir;
  std::string file = dir.path() + "/moving";
  WriteFile(file, "before");
  std::atomic<int> calls{0};
  MeasurementCache::Options o;
  o.clock = FarFuture;
  o.hash = [&](int fd) -> StatusOr<attest::FileMeasurement> {
    auto m = attest::MeasureFile("/proc/self/fd/" + std::to_string(fd));
    if (calls++ == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ::chmod(file.c_str(), 0600);  // the change time moves after the bytes were read
    }
    return m;
  };
  MeasurementCache cache(o);
  int fd = OpenRead(file);
  auto m = cache.Measure(fd);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("changed while it was being measured"), std::string::npos);
  EXPECT_EQ(cache.size(), 0u);
  // Measured again (stable now) it succeeds.
  auto again = cache.Measure(fd);
  ::close(fd);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, Expected(file));
}

TEST(MeasureCacheTest, StaysWithinItsBound) {
  TempDir dir;
  CountingHash counter;
  MeasurementCache::Options o = CountingOptions(counter);
  o.max_entries = 3;
  MeasurementCache cache(o);
  for (int i = 0; i < 10; ++i) {
    std::string file = dir.path() + "/f" + std::to_string(i);
    WriteFile(file, "file " + std::to_string(i));
    int fd = OpenRead(file);
    auto m = cache.Measure(fd);
    ::close(fd);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(*m, Expected(file));
    EXPECT_LE(cache.size(), 3u);
  }
  EXPECT_EQ(counter.calls, 10);
}

TEST(MeasureCacheTest, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  MeasurementCache cache;
  int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  auto m = cache.Measure(fd);
  ::close(fd);
  EXPECT_FALSE(m.ok());
}

TEST(MeasureCacheTest, DefaultHashEqualsCloisterMeasureAlsoForADeletedFile) {
  TempDir dir;
  std::string file = dir.path() + "/gone";
  WriteFile(file, "bytes of a file that will lose its name");
  attest::Sha256Value expected = Expected(file);
  int fd = OpenRead(file);
  ASSERT_EQ(::unlink(file.c_str()), 0);
  MeasurementCache cache;
  auto m = cache.Measure(fd);
  ::close(fd);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(*m, expected);
}

}  // namespace
}  // namespace cloister::las
