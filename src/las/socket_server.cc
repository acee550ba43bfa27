#include "las/socket_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace cloister::las {
namespace {

using Clock = std::chrono::steady_clock;

// Accepted connections waiting for a worker. Beyond this the acceptor stops
// taking more and the kernel's listen backlog holds them.
constexpr size_t kMaxQueued = 256;

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// mkdir -p with mode 0755 for each directory created here: the socket must
// be reachable by every local user, and the umask the LAS runs under (077)
// would otherwise hide it.
Status MakeParents(const std::string& dir) {
  if (dir == "/" || dir == ".") return Status::Ok();
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return NotADirectory(dir + " is not a directory");
    return Status::Ok();
  }
  if (errno != ENOENT) return ErrnoStatus(dir, errno);
  RETURN_IF_ERROR(MakeParents(DirOf(dir)));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("creating " + dir, errno);
  if (::chmod(dir.c_str(), 0755) != 0) return ErrnoStatus("chmod " + dir, errno);
  return Status::Ok();
}

bool FillAddress(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

// Removes `path` if it is a socket nobody listens on (what a LAS that was
// killed leaves behind). Refuses to touch anything else.
Status RemoveStaleSocket(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoStatus(path, errno);
  }
  if (!S_ISSOCK(st.st_mode)) return FailedPrecondition(path + " exists and is not a socket; not removing it");
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return ErrnoStatus("socket", errno);
  sockaddr_un addr;
  FillAddress(path, addr);
  int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(probe);
  if (rc == 0) return AlreadyExists("another process is listening on " + path + " (is a LAS already running?)");
  if (err != ECONNREFUSED) return ErrnoStatus("probing " + path, err);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("removing stale socket " + path, errno);
  return Status::Ok();
}

bool SendAll(int fd, const Bytes& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

SocketServer::SocketServer(SocketServerOptions options, RequestHandler& handler)
    : options_(std::move(options)), handler_(handler) {}

StatusOr<std::unique_ptr<SocketServer>> SocketServer::Listen(SocketServerOptions options, RequestHandler& handler) {
  if (options.threads < 1) return InvalidArgument("the socket server needs at least one worker thread");
  sockaddr_un addr;
  if (options.path.empty() || !FillAddress(options.path, addr)) {
    return InvalidArgument("socket path '" + options.path + "' is empty or longer than " +
                           std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::unique_ptr<SocketServer> s(new SocketServer(std::move(options), handler));
  const std::string& path = s->options_.path;
  RETURN_IF_ERROR(MakeParents(DirOf(path)));
  RETURN_IF_ERROR(RemoveStaleSocket(path));

  // Non-blocking, so that a connection that goes away between poll and
  // accept cannot stall the acceptor.
  s->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->listen_fd_ < 0) return ErrnoStatus("socket", errno);
  if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus("bind " + path, errno);
  }
  struct stat st;
  if (::chmod(path.c_str(), 0666) != 0 || ::lstat(path.c_str(), &st) != 0) {
    Status err = ErrnoStatus(path, errno);
    ::unlink(path.c_str());
    return err;
  }
  s->socket_dev_ = st.st_dev;
  s->socket_ino_ = st.st_ino;
  if (::listen(s->listen_fd_, SOMAXCONN) != 0) {
    Status err = ErrnoStatus("listen " + path, errno);
    ::unlink(path.c_str());
    return err;
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    Status err = ErrnoStatus("pipe", errno);
    ::unlink(path.c_str());
    return err;
  }
  s->wake_read_ = wake[0];
  s->wake_write_ = wake[1];
  return s;
}

SocketServer::~SocketServer() { Stop(); }

void SocketServer::Start() {
  if (started_ || stopped_) return;
  started_ = true;
  acceptor_ = std::thread([this] { AcceptLoop(); });
  for (int i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

void SocketServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // The pipe stays readable from now on: every poll below wakes up.
  if (wake_write_ >= 0) {
    char byte = 1;
    ssize_t ignored = ::write(wake_write_, &byte, 1);
    (void)ignored;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  // Nothing polls the listener any more: close it, and take the name away
  // so that new callers fail at once instead of waiting.
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  struct stat st;
  if (::lstat(options_.path.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    ::unlink(options_.path.c_str());
  }
  for (auto& w : workers_) w.join();
  workers_.clear();
  for (int fd : queue_) ::close(fd);
  queue_.clear();
  if (wake_read_ >= 0) ::close(wake_read_);
  if (wake_write_ >= 0) ::close(wake_write_);
  wake_read_ = wake_write_ = -1;
}

void SocketServer::AcceptLoop() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "cloister-las: poll on the socket failed: %s\n", std::strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the backlog keeps the callers; wait
        // a little (or for Stop) before trying again instead of spinning.
        std::fprintf(stderr, "cloister-las: accept: %s; retrying\n", std::strerror(errno));
        pollfd w = {wake_read_, POLLIN, 0};
        ::poll(&w, 1, 200);
      }
      continue;  // EAGAIN, ECONNABORTED, EINTR: nothing to do
    }
    std::unique_lock<std::mutex> lock(mu_);
    queue_changed_.wait(lock, [this] { return stopping_ || queue_.size() < kMaxQueued; });
    if (stopping_) {
      ::close(fd);
      return;
    }
    queue_.push_back(fd);
    lock.unlock();
    queue_changed_.notify_all();
  }
}

void SocketServer::WorkerLoop() {
  while (true) {
    int fd;
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      fd = queue_.front();
      queue_.pop_front();
    }
    queue_changed_.notify_all();  // the acceptor may wait for room
    Serve(fd);
    ::close(fd);
  }
}

void SocketServer::Serve(int fd) {
  const Clock::time_point start = Clock::now();
  ucred cred = {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) return;
  const PeerCredentials peer{static_cast<uint32_t>(cred.pid), static_cast<uint32_t>(cred.uid)};
  timeval tv = {options_.write_timeout_ms / 1000, (options_.write_timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

  auto log = [&](const std::string& what) {
    if (!options_.log_requests) return;
    std::fprintf(stderr, "cloister-las: pid %u uid %u: %s, %.1f ms\n", peer.pid, peer.uid, what.c_str(),
                 MillisSince(start));
  };

  // The request, within the read timeout counted from the accept.
  const Clock::time_point deadline = start + std::chrono::milliseconds(options_.read_timeout_ms);
  auto read_exactly = [&](uint8_t* buf, size_t size) {
    size_t got = 0;
    while (got < size) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        log("dropped: no complete request within " + std::to_string(options_.read_timeout_ms) + " ms");
        return false;
      }
      pollfd p[2] = {{fd, POLLIN, 0}, {wake_read_, POLLIN, 0}};
      int rc = ::poll(p, 2, static_cast<int>(left));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0 || p[1].revents != 0) return false;  // stopping
      if (rc == 0) continue;                          // the deadline check above ends it
      ssize_t n = ::recv(fd, buf + got, size - got, MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        log("dropped: the caller closed the connection before a complete request");
        return false;
      }
      got += static_cast<size_t>(n);
    }
    return true;
  };
  auto refuse = [&](const std::string& why) {
    SendAll(fd, EncodeRefusal("bad request: " + why));
    log("refused (bad request: " + why + ")");
  };

  uint8_t buf[kRequestSize];
  if (!read_exactly(buf, sizeof(buf))) return;
  auto request = DecodeRequest(buf);
  if (!request.ok()) return refuse(request.status().message());
  // A request's tail: a fixed head that says how many bytes follow (checked
  // against its bound before anything is allocated for them), the rest,
  // then the tail's decoder. False when the request was dropped or refused.
  using LengthFn = StatusOr<size_t> (*)(std::span<const uint8_t>);
  using DecodeFn = Status (*)(std::span<const uint8_t>, EvidenceRequest*);
  auto read_tail = [&](size_t head, LengthFn length_of, DecodeFn decode) {
    Bytes tail(head);
    if (!read_exactly(tail.data(), tail.size())) return false;
    auto length = length_of(tail);
    if (!length.ok()) {
      refuse(length.status().message());
      return false;
    }
    tail.resize(head + *length);
    if (!read_exactly(tail.data() + head, *length)) return false;
    if (Status s = decode(tail, &*request); !s.ok()) {
      refuse(s.message());
      return false;
    }
    return true;
  };
  if (request->kind == RequestKind::kRelayedAttestation &&
      !read_tail(kRelayTailHead, RelayConfigIdLength, DecodeRelayTail)) {
    return;
  }
  if (request->kind == RequestKind::kVolumeCommit && !read_tail(kCommitTailHead, CommitReportLength, DecodeCommitTail)) {
    return;
  }
  Reply reply = handler_.Handle(*request, peer);
  Bytes response;
  if (reply.granted) {
    // The kind of answer follows the kind of request, whatever the handler
    // filled in: an empty CAS reply to a relayed request is refused here.
    auto encoded = request->kind == RequestKind::kRelayedAttestation ? EncodeRelayedResponse(reply.evidence, reply.cas_reply)
                   : request->kind == RequestKind::kVolumeCommit     ? EncodeCasAnswer(reply.cas_status, reply.cas_reply)
                                                                     : EncodeEvidenceResponse(reply.evidence);
    if (encoded.ok()) {
      response = std::move(*encoded);
    } else {
      reply.granted = false;
      reply.refusal = "the LAS cannot send the evidence: " + encoded.status().message();
    }
  }
  if (!reply.granted) response = EncodeRefusal(reply.refusal);
  bool sent = SendAll(fd, response);
  if (!options_.log_requests) return;
  std::string what;
  if (!reply.granted) {
    what = "refused (" + reply.refusal + ")";
  } else if (request->kind == RequestKind::kVolumeCommit) {
    what = "volume commit relayed, the CAS answered " + std::to_string(reply.cas_status);
  } else {
    what = std::string(request->kind == RequestKind::kRelayedAttestation ? "relayed" : "evidence") + ", exe " +
           reply.executable_prefix + (reply.has_runtime ? ", runtime mapped" : ", no runtime");
  }
  if (!sent) what += ", but the response could not be sent";
  log(what);
}

}  // namespace cloister::las
