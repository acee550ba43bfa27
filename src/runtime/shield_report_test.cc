// The commit reporter against a stand-in LAS on a Unix socket that answers
// every report for the CAS with 409: a final answer, so the reporter neither
// pauses nor retries, and the test sees exactly when reports start.
#include "runtime/shield_report.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "runtime/las_client.h"

namespace cloister::runtime::shield {
namespace {

using Clock = std::chrono::steady_clock;

class FakeLas {
 public:
  FakeLas() {
    path_ = "/tmp/cloister-report-test-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeLas() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  int reports() const { return reports_.load(); }

 private:
  static bool ReadAll(int fd, uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t got = ::read(fd, p, n);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }

  void Serve() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::vector<uint8_t> head(kLasRequestSize + 4);
      if (ReadAll(c, head.data(), head.size())) {
        uint32_t len = 0;
        for (int i = 0; i < 4; ++i) len |= uint32_t{head[kLasRequestSize + i]} << (8 * i);
        std::vector<uint8_t> body(len);
        if (len < (1u << 20) && ReadAll(c, body.data(), body.size())) {
          reports_++;
          // Header: "CLCR", version 1, status 3 (the CAS's answer), length;
          // body: HTTP status 409, then text.
          const std::string text = "conflict (stand-in)";
          std::vector<uint8_t> out = {0x43, 0x4c, 0x43, 0x52, 1, 0, 3, 0};
          const uint32_t n = static_cast<uint32_t>(2 + text.size());
          for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
          out.push_back(409 & 0xff);
          out.push_back(409 >> 8);
          out.insert(out.end(), text.begin(), text.end());
          (void)!::write(c, out.data(), out.size());
        }
      }
      ::close(c);
    }
  }

  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> reports_{0};
  std::thread thread_;
};

Reporting MakeReporting(const std::string& socket, int interval_ms) {
  Reporting r;
  r.token = {1, 2, 3, 4};
  r.key = EVP_EC_gen("P-256");
  size_t len = r.point.size();
  EXPECT_EQ(EVP_PKEY_get_octet_string_param(r.key, "encoded-pub-key", r.point.data(), r.point.size(), &len), 1);
  r.las_socket = socket;
  r.min_interval_ms = interval_ms;
  return r;
}

volume::Tag TagOf(uint64_t seq) {
  volume::Tag t{};
  t[0] = static_cast<uint8_t>(seq);
  t[1] = static_cast<uint8_t>(seq >> 8);
  return t;
}

TEST(CommitReporterTest, CommitsWithinTheIntervalFoldIntoOneReport) {
  FakeLas las;
  CommitReporter reporter(MakeReporting(las.path(), 100), {"data"}, {true});
  // About 600 commits a second for 0.6 s.
  const auto start = Clock::now();
  uint64_t seq = 0;
  while (Clock::now() - start < std::chrono::milliseconds(600)) {
    ++seq;
    reporter.Post(0, seq, TagOf(seq));
    std::this_thread::sleep_for(std::chrono::microseconds(1500));
  }
  ASSERT_TRUE(reporter.Drain(5000));
  // One report at once, then at most one per 100 ms, and the last one for
  // the newest commit (Drain returned only once nothing was left).
  EXPECT_GE(las.reports(), 4) << seq << " commits";
  EXPECT_LE(las.reports(), 9) << seq << " commits";
  EXPECT_GT(seq, 100u);
}

TEST(CommitReporterTest, DrainDoesNotWaitForTheInterval) {
  FakeLas las;
  CommitReporter reporter(MakeReporting(las.path(), 10000), {"data"}, {true});
  reporter.Post(0, 1, TagOf(1));
  ASSERT_TRUE(reporter.Drain(5000));
  EXPECT_EQ(las.reports(), 1);
  reporter.Post(0, 2, TagOf(2));
  const auto start = Clock::now();
  ASSERT_TRUE(reporter.Drain(5000));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2)) << "Drain waited for the 10 s interval";
  EXPECT_EQ(las.reports(), 2);
}

TEST(CommitReporterTest, WithoutDrainTheNextReportWaitsForTheInterval) {
  FakeLas las;
  CommitReporter reporter(MakeReporting(las.path(), 300), {"data"}, {true});
  reporter.Post(0, 1, TagOf(1));
  ASSERT_TRUE(reporter.Drain(5000));
  reporter.Post(0, 2, TagOf(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(las.reports(), 1) << "the second report went out within the interval";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(las.reports(), 2);
}

}  // namespace
}  // namespace cloister::runtime::shield
