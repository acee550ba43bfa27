// The LAS's Unix socket (docs/protocol.md, section 3): one thread accepts,
// a fixed pool of workers serves. Per connection a worker takes the peer's
// credentials from the kernel (SO_PEERCRED), reads the request (40 bytes,
// and a relayed attestation's or a volume commit's tail) within the read timeout, hands the decoded
// request to the RequestHandler, writes the response and closes. A request that is malformed gets a
// refusal saying why; one that does not arrive in time is dropped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloister/status.h"
#include "las/evidence_service.h"

namespace cloister::las {

struct SocketServerOptions {
  std::string path = "/run/cloister/las.sock";
  int threads = 8;              // workers: requests served at once
  int read_timeout_ms = 5000;   // docs/protocol.md: a request not complete within 5 s is dropped
  int write_timeout_ms = 5000;  // a caller that does not read its response
  bool log_requests = false;    // one line per request on stderr
};

class SocketServer {
 public:
  // Prepares the socket: creates missing parent directories (0755),
  // removes a stale socket left by a LAS that died (only a socket nobody
  // listens on; any other file, or a live socket, is an error), binds,
  // makes it mode 0666 (any local process may ask about itself) and
  // listens. Connections queue in the backlog until Start().
  // `handler` must outlive the server.
  static StatusOr<std::unique_ptr<SocketServer>> Listen(SocketServerOptions options, RequestHandler& handler);
  ~SocketServer();  // Stop()
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;

  // Starts the accepting thread and the workers.
  void Start();
  // Stops accepting, lets workers finish the request in hand, closes
  // connections still waiting, joins the threads and removes the socket
  // file (if it is still the one this server bound). Idempotent.
  void Stop();

  const std::string& path() const { return options_.path; }

 private:
  SocketServer(SocketServerOptions options, RequestHandler& handler);
  void AcceptLoop();
  void WorkerLoop();
  void Serve(int fd);

  const SocketServerOptions options_;
  RequestHandler& handler_;
  int listen_fd_ = -1;
  int wake_read_ = -1, wake_write_ = -1;  // readable once Stop() was called
  uint64_t socket_dev_ = 0, socket_ino_ = 0;

  std::mutex mu_;
  std::condition_variable queue_changed_;
  std::deque<int> queue_;  // accepted, not yet served; guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false, stopped_ = false;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace cloister::las
