// The CAS's HTTPS API (docs/api/openapi.yaml): routes, JSON, status codes,
// metrics and the request log, over cpp-httplib with our TLS setup. The
// service logic lives in CasService; this file only translates.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cas/metrics.h"
#include "cas/service.h"
#include "cloister/status.h"
#include "crypto/signature.h"
#include "net/tls.h"

namespace httplib {
class SSLServer;
}

namespace cloister::cas {

struct ServerOptions {
  std::string api_listen = "127.0.0.1:8081";
  std::string attest_listen = "127.0.0.1:18765";
  int threads = 128;            // connections served at once (keep-alive holds one)
  int read_timeout_seconds = 10;  // a client slower than this is dropped
  bool log_requests = true;
};

class CasServer {
 public:
  static StatusOr<std::unique_ptr<CasServer>> New(CasService& service, const net::TlsIdentity& identity,
                                                  std::string key_hash, ServerOptions options);
  ~CasServer();

  // Binds both listeners (port 0: the OS picks) and starts serving.
  Status Start();
  int api_port() const { return api_port_; }
  int attest_port() const { return attest_port_; }
  // Stops accepting, finishes requests in flight, returns.
  void Stop();

 private:
  CasServer(CasService& service, std::string key_hash, ServerOptions options);
  void Routes();
  // The reply a LAS carries back to a starting program for one start of
  // POST /v1/attest/relay or /v1/attest/relay/batch (docs/protocol.md
  // section 6), signed with the CAS's key. Empty when `start` is malformed.
  std::vector<uint8_t> RelayedReply(const nlohmann::json& start);

  CasService& service_;
  const std::string key_hash_;
  const ServerOptions options_;
  Metrics metrics_;
  // The CAS's own key, which signs relayed replies, and its DER SPKI (the
  // bytes whose SHA-256 clients pin).
  std::unique_ptr<crypto::P256Signer> signer_;
  Bytes spki_;
  std::unique_ptr<httplib::SSLServer> api_, attest_;
  std::thread api_thread_, attest_thread_;
  int api_port_ = 0, attest_port_ = 0;
};

}  // namespace cloister::cas
