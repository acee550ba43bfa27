// Small helpers for the start-up exchanges: a deadline that bounds a whole
// exchange (not each call, so a peer that trickles one byte at a time
// cannot stretch it), and waiting on a non-blocking descriptor under it.
#pragma once

#include <time.h>

namespace cloister::runtime {

class Deadline {
 public:
  // A deadline `ms` milliseconds from now (CLOCK_MONOTONIC).
  explicit Deadline(int ms);

  // Milliseconds left, 0 once passed.
  int RemainingMs() const;

 private:
  timespec end_{};
};

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT). Returns 0 when
// ready, ETIMEDOUT when the deadline passed first, or the errno of poll.
int WaitFd(int fd, short events, const Deadline& deadline);

}  // namespace cloister::runtime
