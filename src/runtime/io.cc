#include "runtime/io.h"

#include <errno.h>
#include <poll.h>

namespace cloister::runtime {

Deadline::Deadline(int ms) {
  ::clock_gettime(CLOCK_MONOTONIC, &end_);
  end_.tv_sec += ms / 1000;
  end_.tv_nsec += static_cast<long>(ms % 1000) * 1000000L;
  if (end_.tv_nsec >= 1000000000L) {
    end_.tv_sec += 1;
    end_.tv_nsec -= 1000000000L;
  }
}

int Deadline::RemainingMs() const {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  long long left = (static_cast<long long>(end_.tv_sec) - now.tv_sec) * 1000 + (end_.tv_nsec - now.tv_nsec) / 1000000;
  if (left <= 0) return 0;
  return left > 1000000000 ? 1000000000 : static_cast<int>(left);
}

int WaitFd(int fd, short events, const Deadline& deadline) {
  for (;;) {
    int ms = deadline.RemainingMs();
    if (ms == 0) return ETIMEDOUT;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0) return 0;  // ready, or an error/hang-up the next call reports
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

}  // namespace cloister::runtime
