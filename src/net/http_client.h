// An HTTPS client for the CAS API: TLS 1.3, the CAS pinned by its key hash,
// an optional client identity, keep-alive. One client per thread.
#pragma once

#include <memory>
#include <string>

#include "cloister/status.h"
#include "net/tls.h"

namespace httplib {
class SSLClient;
}

namespace cloister::net {

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

// "host:port" or "[v6]:port"; host may be a name; port 0 (listeners only:
// the OS picks one) is accepted.
struct HostPort {
  std::string host;
  int port = 0;
};
StatusOr<HostPort> ParseHostPort(const std::string& addr);

class ApiClient {
 public:
  // `pinned_key_hash`: hex SHA-256 of the CAS public key. `identity` may be
  // null for calls that need none (health, unseal).
  static StatusOr<std::unique_ptr<ApiClient>> New(const std::string& addr, const std::string& pinned_key_hash,
                                                  const TlsIdentity* identity);
  ~ApiClient();

  // Transport failures (unreachable, a CAS whose key is not the pinned one)
  // are errors; any HTTP status is a response.
  StatusOr<HttpResponse> Get(const std::string& path);
  StatusOr<HttpResponse> Delete(const std::string& path);
  StatusOr<HttpResponse> Post(const std::string& path, const std::string& json);
  StatusOr<HttpResponse> Put(const std::string& path, const std::string& json);

 private:
  ApiClient() = default;
  StatusOr<HttpResponse> Finish(const char* method, const std::string& path, void* result);
  std::string addr_;
  std::unique_ptr<httplib::SSLClient> client_;
};

// Percent-encodes a session name for a URL path (keeps '/' between segments).
std::string EncodePathSegment(const std::string& s);

}  // namespace cloister::net
