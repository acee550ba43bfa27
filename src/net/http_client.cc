#include "net/http_client.h"

#include <httplib.h>

#include <cctype>
#include <charconv>

namespace cloister::net {

StatusOr<HostPort> ParseHostPort(const std::string& addr) {
  HostPort hp;
  std::string port;
  if (!addr.empty() && addr[0] == '[') {
    size_t close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return InvalidArgument("address '" + addr + "' is not [ipv6]:port");
    }
    hp.host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string::npos || colon == 0) return InvalidArgument("address '" + addr + "' is not host:port");
    hp.host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
  }
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), hp.port);
  if (ec != std::errc() || p != port.data() + port.size() || hp.port < 0 || hp.port > 65535) {
    return InvalidArgument("address '" + addr + "' has no valid port");
  }
  return hp;
}

std::string EncodePathSegment(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

StatusOr<std::unique_ptr<ApiClient>> ApiClient::New(const std::string& addr, const std::string& pinned_key_hash,
                                                    const TlsIdentity* identity) {
  ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(addr));
  if (hp.port == 0) return InvalidArgument("address '" + addr + "' has no valid port");
  std::unique_ptr<ApiClient> c(new ApiClient());
  c->addr_ = addr;
  c->client_ = std::make_unique<httplib::SSLClient>(hp.host, hp.port);
  // httplib's own verification checks a CA chain and a host name; the pin
  // set up below replaces both.
  c->client_->enable_server_certificate_verification(false);
  RETURN_IF_ERROR(ConfigureClientContext(*c->client_->ssl_context(), pinned_key_hash, identity));
  c->client_->set_keep_alive(true);
  // Requests are small and written in pieces; without this each one waits
  // for a delayed ACK (about 40 ms).
  c->client_->set_tcp_nodelay(true);
  c->client_->set_connection_timeout(5, 0);
  c->client_->set_read_timeout(30, 0);
  c->client_->set_write_timeout(30, 0);
  return c;
}

ApiClient::~ApiClient() = default;

StatusOr<HttpResponse> ApiClient::Finish(const char* method, const std::string& path, void* result) {
  auto& res = *static_cast<httplib::Result*>(result);
  if (TakePinMismatch()) {
    return PermissionDenied("the server at " + addr_ + " is not the CAS whose key was pinned (CLOISTER_CAS_KEY)");
  }
  if (!res) {
    return IoError(std::string("cannot reach the CAS at ") + addr_ + " (" + method + " " + path +
                   "): " + httplib::to_string(res.error()));
  }
  HttpResponse out;
  out.status = res->status;
  out.body = std::move(res->body);
  out.content_type = res->get_header_value("Content-Type");
  return out;
}

StatusOr<HttpResponse> ApiClient::Get(const std::string& path) {
  auto r = client_->Get(path.c_str());
  return Finish("GET", path, &r);
}
StatusOr<HttpResponse> ApiClient::Delete(const std::string& path) {
  auto r = client_->Delete(path.c_str());
  return Finish("DELETE", path, &r);
}
StatusOr<HttpResponse> ApiClient::Post(const std::string& path, const std::string& json) {
  auto r = client_->Post(path.c_str(), json, "application/json");
  return Finish("POST", path, &r);
}
StatusOr<HttpResponse> ApiClient::Put(const std::string& path, const std::string& json) {
  auto r = client_->Put(path.c_str(), json, "application/json");
  return Finish("PUT", path, &r);
}

}  // namespace cloister::net
