#include "base/parallel.h"

#include <unistd.h>

#include <algorithm>

namespace cloister {

size_t ParallelFor::DefaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return std::clamp<size_t>(n == 0 ? 1 : n, 1, 4);
}

ParallelFor::ParallelFor(size_t threads) : threads_(std::max<size_t>(threads, 1)), owner_(getpid()) {
  ranges_.resize(threads_);
}

ParallelFor::~ParallelFor() {
  if (getpid() != owner_) {
    // The workers exist only in the parent; forget them here.
    for (auto& t : workers_) t.detach();
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ParallelFor::Work(size_t slot) {
  size_t seen = 0;
  while (true) {
    const std::function<void(size_t, size_t, size_t)>* fn;
    std::pair<size_t, size_t> range;
    {
      std::unique_lock<std::mutex> l(mu_);
      start_.wait(l, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      range = ranges_[slot];
    }
    if (range.first < range.second) (*fn)(range.first, range.second, slot);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

void ParallelFor::Run(size_t n, size_t grain, const std::function<void(size_t, size_t, size_t)>& fn) {
  size_t parts = std::min(threads(), std::max<size_t>(1, n / std::max<size_t>(grain, 1)));
  if (parts <= 1 || getpid() != owner_) {
    if (n > 0) fn(0, n, 0);
    return;
  }
  if (workers_.empty()) {
    for (size_t slot = 1; slot < threads_; ++slot) workers_.emplace_back([this, slot] { Work(slot); });
  }
  size_t per = (n + parts - 1) / parts;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t s = 0; s < ranges_.size(); ++s) {
      size_t b = std::min(n, s * per), e = s < parts ? std::min(n, (s + 1) * per) : b;
      ranges_[s] = {b, e};
    }
    fn_ = &fn;
    pending_ = workers_.size();
    ++generation_;
  }
  start_.notify_all();
  fn(ranges_[0].first, ranges_[0].second, 0);
  std::unique_lock<std::mutex> l(mu_);
  done_.wait(l, [&] { return pending_ == 0; });
}

}  // namespace cloister
