#include "runtime/shield_wire.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

namespace cloister::runtime::shield {

uint64_t MarkDirty(DirtyHead* head, unsigned shift, uint64_t offset, uint64_t length) {
  if (length == 0) return 0;
  uint64_t first = offset >> shift;
  uint64_t last = (offset + length - 1) >> shift;
  if (last >= kDirtyMaxChunks || last < first) {
    head->full_scan.store(1, std::memory_order_release);
    return 0;
  }
  uint64_t added = 0;
  auto* words = reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(head) + kDirtyBitsOffset);
  auto* log_words = reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(head) + kLogBitsOffset);
  for (uint64_t c = first; c <= last;) {
    uint64_t w = c / 64;
    uint64_t lo = c % 64;
    uint64_t hi = (last / 64 == w) ? last % 64 : 63;
    uint64_t bits = (hi == 63 ? ~uint64_t{0} : ((uint64_t{1} << (hi + 1)) - 1)) & ~((uint64_t{1} << lo) - 1);
    if ((log_words[w].load(std::memory_order_relaxed) & bits) != bits) log_words[w].fetch_or(bits, std::memory_order_release);
    uint64_t old = words[w].fetch_or(bits, std::memory_order_release);
    added += static_cast<uint64_t>(__builtin_popcountll(bits & ~old));
    c = w * 64 + hi + 1;
  }
  uint64_t end = head->marked_end.load(std::memory_order_relaxed);
  while (end < last + 1 &&
         !head->marked_end.compare_exchange_weak(end, last + 1, std::memory_order_release, std::memory_order_relaxed)) {
  }
  if (added == 0) return head->unflushed.load(std::memory_order_relaxed);
  return head->unflushed.fetch_add(added, std::memory_order_relaxed) + added;
}

void MarkShrunk(DirtyHead* head, uint64_t size) {
  uint64_t low = head->low_size.load(std::memory_order_relaxed);
  while (size < low &&
         !head->low_size.compare_exchange_weak(low, size, std::memory_order_release, std::memory_order_relaxed)) {
  }
}

bool SendDatagram(int sock, const void* head, size_t head_len, const void* data, size_t data_len, const int* fds,
                  int nfds) {
  iovec iov[2] = {{const_cast<void*>(head), head_len}, {const_cast<void*>(data), data_len}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = data_len > 0 ? 2 : 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  if (nfds > 0) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(static_cast<size_t>(nfds) * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(static_cast<size_t>(nfds) * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, static_cast<size_t>(nfds) * sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return true;
    if (errno != EINTR) return false;
  }
}

ssize_t ReceiveDatagram(int sock, void* buf, size_t cap, int* fds, int* nfds) {
  iovec iov{buf, cap};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  *nfds = 0;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*nfds < 2) {
        fds[(*nfds)++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    for (int i = 0; i < *nfds; ++i) ::close(fds[i]);
    *nfds = 0;
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

}  // namespace cloister::runtime::shield
