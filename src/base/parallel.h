// A small fork-aware helper that splits a loop over the calling thread and
// a few persistent workers. Used for chunk encryption and decryption of
// large batches, where the cipher, not the disk, is the limit.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace cloister {

class ParallelFor {
 public:
  // `threads` is the total parallelism including the caller (>= 1). The
  // worker threads start with the first Run that needs them.
  explicit ParallelFor(size_t threads);
  ~ParallelFor();
  ParallelFor(const ParallelFor&) = delete;
  ParallelFor& operator=(const ParallelFor&) = delete;

  size_t threads() const { return threads_; }

  // Calls fn(begin, end, slot) over disjoint ranges covering [0, n), with
  // slot in [0, threads()) unique among concurrent calls. Ranges are at
  // least `grain` long. Returns when every call has returned. In a child
  // process after fork() (where the workers do not exist) it runs serially.
  void Run(size_t n, size_t grain, const std::function<void(size_t, size_t, size_t)>& fn);

  // Threads worth using on this machine (hardware concurrency, at most 4).
  static size_t DefaultThreads();

 private:
  void Work(size_t slot);

  size_t threads_;
  pid_t owner_;
  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<void(size_t, size_t, size_t)>* fn_ = nullptr;
  std::vector<std::pair<size_t, size_t>> ranges_;  // per worker slot
  size_t generation_ = 0;
  size_t pending_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace cloister
