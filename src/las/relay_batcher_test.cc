#include "las/relay_batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cloister::las {
namespace {

using namespace std::chrono_literals;

// A CAS stand-in: answers each start with its config id, and can hold
// requests until released, so that tests decide what is in flight.
class FakeCas {
 public:
  std::vector<StatusOr<Bytes>> Send(const std::vector<const RelayStart*>& starts) {
    std::unique_lock<std::mutex> l(mu_);
    sizes_.push_back(starts.size());
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    changed_.notify_all();
    changed_.wait(l, [&] { return !hold_; });
    --in_flight_;
    std::vector<StatusOr<Bytes>> out;
    for (const RelayStart* s : starts) {
      if (wrong_count_) break;
      out.emplace_back(Bytes(s->config_id.begin(), s->config_id.end()));
    }
    return out;
  }
  void Hold(bool hold) {
    std::lock_guard<std::mutex> l(mu_);
    hold_ = hold;
    changed_.notify_all();
  }
  // Waits until `n` requests are being answered.
  void WaitInFlight(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    ASSERT_TRUE(changed_.wait_for(l, 10s, [&] { return in_flight_ == n; }));
  }
  std::vector<size_t> sizes() {
    std::lock_guard<std::mutex> l(mu_);
    return sizes_;
  }
  size_t max_in_flight() {
    std::lock_guard<std::mutex> l(mu_);
    return max_in_flight_;
  }
  bool wrong_count_ = false;

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool hold_ = false;
  size_t in_flight_ = 0, max_in_flight_ = 0;
  std::vector<size_t> sizes_;
};

RelayBatcher::SendFn To(FakeCas& cas) {
  return [&cas](const std::vector<const RelayStart*>& starts) { return cas.Send(starts); };
}

// Relays `config` and checks that the answer is the one for it.
void RelayAndCheck(RelayBatcher& b, const std::string& config) {
  RelayStart start{config, {}, {}};
  auto reply = b.Relay(start);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(std::string(reply->begin(), reply->end()), config);
}

TEST(RelayBatcherTest, ALoneStartGoesAtOnce) {
  FakeCas cas;
  RelayBatcher b(To(cas), 2, 32);
  RelayAndCheck(b, "s/a");
  RelayAndCheck(b, "s/b");
  EXPECT_EQ(cas.sizes(), (std::vector<size_t>{1, 1}));
  EXPECT_EQ(b.counts().requests, 2u);
}

TEST(RelayBatcherTest, StartsArrivingWhileTheSlotsAreBusyGoTogether) {
  FakeCas cas;
  RelayBatcher b(To(cas), 1, 32);
  cas.Hold(true);
  std::thread first([&] { RelayAndCheck(b, "s/first"); });
  cas.WaitInFlight(1);
  std::vector<std::thread> later;
  for (int i = 0; i < 5; ++i) later.emplace_back([&, i] { RelayAndCheck(b, "s/later" + std::to_string(i)); });
  // Give the five time to queue behind the held request.
  std::this_thread::sleep_for(200ms);
  cas.Hold(false);
  first.join();
  for (auto& t : later) t.join();
  EXPECT_EQ(cas.sizes(), (std::vector<size_t>{1, 5})) << "the five waited together for the one slot";
  EXPECT_EQ(b.counts().starts, 6u);
  EXPECT_EQ(b.counts().largest, 5u);
}

TEST(RelayBatcherTest, KeepsToItsLimits) {
  FakeCas cas;
  RelayBatcher b(To(cas), 2, 3);
  cas.Hold(true);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&, i] { RelayAndCheck(b, "s/held" + std::to_string(i)); });
  cas.WaitInFlight(2);
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { RelayAndCheck(b, "s/queued" + std::to_string(i)); });
  std::this_thread::sleep_for(200ms);
  cas.Hold(false);
  for (auto& t : threads) t.join();
  EXPECT_EQ(cas.max_in_flight(), 2u);
  size_t total = 0;
  for (size_t n : cas.sizes()) {
    EXPECT_LE(n, 3u);
    total += n;
  }
  EXPECT_EQ(total, 10u);
  EXPECT_LE(cas.sizes().size(), 2u + 4u) << "the eight queued went in batches, not one by one";
}

TEST(RelayBatcherTest, AWrongNumberOfRepliesFailsEveryStartOfTheBatch) {
  FakeCas cas;
  cas.wrong_count_ = true;
  RelayBatcher b(To(cas), 1, 32);
  RelayStart start{"s/a", {}, {}};
  auto reply = b.Relay(start);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kInternal);
}

TEST(RelayBatcherTest, ManyThreadsEachGetTheirOwnReply) {
  FakeCas cas;
  RelayBatcher b(To(cas), 2, 4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) RelayAndCheck(b, "s/" + std::to_string(t) + "." + std::to_string(i));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.counts().starts, 1600u);
  EXPECT_LE(cas.max_in_flight(), 2u);
}

}  // namespace
}  // namespace cloister::las
