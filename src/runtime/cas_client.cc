#include "runtime/cas_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

#include "runtime/encoding.h"
#include "runtime/io.h"
#include "runtime/log.h"

namespace cloister::runtime {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxChunkLine = 1024;
// An SslRetry outcome that is not an SSL_ERROR_* value.
constexpr int kSslTimedOut = -1000;

struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};

bool Sha256(const uint8_t* data, size_t size, uint8_t out[32]) {
  unsigned int n = 0;
  return EVP_Digest(data, size, out, &n, EVP_sha256(), nullptr) == 1 && n == 32;
}

// The error OpenSSL queued, in words. libcrypto's error strings are loaded
// only now, when a failure needs them, rather than at every start.
std::string OpensslError() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "";
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, nullptr);
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : "OpenSSL error " + std::to_string(e);
}

std::string SslErrorText(int ssl_error) {
  if (ssl_error == kSslTimedOut) return "";
  std::string queued = OpensslError();
  if (!queued.empty()) return queued;
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return "the connection was closed";
  if (ssl_error == SSL_ERROR_SYSCALL) return errno != 0 ? std::strerror(errno) : "the connection was closed";
  return "TLS error " + std::to_string(ssl_error);
}

// Runs an SSL call until it completes, waiting on the socket whenever
// OpenSSL asks to. Returns the call's result; when it is <= 0, *error holds
// the SSL_ERROR_* value, or kSslTimedOut past the deadline.
template <typename Op>
int SslRetry(SSL* ssl, int fd, const Deadline& deadline, int* error, Op op) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = op();
    if (r > 0) return r;
    int e = SSL_get_error(ssl, r);
    short events = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      *error = e;
      return r;
    }
    if (WaitFd(fd, events, deadline) != 0) {
      *error = kSslTimedOut;
      return -1;
    }
  }
}

// OpenSSL's socket BIO writes with write(2), so a peer that resets the
// connection would raise SIGPIPE and kill the process before it could fail
// closed with a message. The signal is blocked for the exchange, a SIGPIPE
// it caused is discarded, and the program's mask is restored: main never
// sees a trace of it.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    if (!was_pending_) {
      timespec zero{};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

bool IsIpLiteral(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Walks the chunked body that starts at raw[pos]. kComplete with *end just
// past the last CRLF and, if `out`, the data appended to it.
HttpParse WalkChunks(std::string_view raw, size_t pos, size_t* end, SecretBytes* out) {
  for (;;) {
    size_t eol = raw.substr(pos, kMaxChunkLine).find("\r\n");
    if (eol == std::string_view::npos) {
      return raw.size() - pos >= kMaxChunkLine ? HttpParse::kMalformed : HttpParse::kIncomplete;
    }
    std::string_view line = raw.substr(pos, eol);
    line = Trim(line.substr(0, line.find(';')));  // chunk extensions carry nothing for us
    if (line.empty() || line.size() > 8) return HttpParse::kMalformed;
    size_t size = 0;
    for (char c : line) {
      int d = std::isxdigit(static_cast<unsigned char>(c)) ? (c <= '9' ? c - '0' : (std::tolower(c) - 'a' + 10)) : -1;
      if (d < 0) return HttpParse::kMalformed;
      size = size * 16 + static_cast<size_t>(d);
    }
    pos += eol + 2;
    if (size == 0) {
      // Trailer fields until an empty line; they are ignored.
      for (;;) {
        size_t t = raw.substr(pos, kMaxChunkLine).find("\r\n");
        if (t == std::string_view::npos) {
          return raw.size() - pos >= kMaxChunkLine ? HttpParse::kMalformed : HttpParse::kIncomplete;
        }
        pos += t + 2;
        if (t == 0) {
          *end = pos;
          return HttpParse::kComplete;
        }
      }
    }
    if (size > kMaxCasResponse) return HttpParse::kMalformed;
    if (raw.size() - pos < size + 2) return HttpParse::kIncomplete;
    if (raw.substr(pos + size, 2) != "\r\n") return HttpParse::kMalformed;
    if (out != nullptr) out->insert(out->end(), raw.begin() + pos, raw.begin() + pos + size);
    pos += size + 2;
  }
}

}  // namespace

Result<ClientIdentity> CreateClientKey() {
  ClientIdentity id;
  id.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!id.key) return Fail("cannot make a P-256 key");
  // The DER SubjectPublicKeyInfo of a P-256 key is a fixed prefix and the
  // uncompressed point. Writing it here, rather than through OpenSSL's
  // encoders, lets the report data go to the LAS before the certificate
  // exists; CertifyClientKey checks that the certificate says the same.
  size_t point_size = 0;
  if (EVP_PKEY_get_octet_string_param(id.key.get(), OSSL_PKEY_PARAM_PUB_KEY, id.point.data(), id.point.size(),
                                      &point_size) != 1 ||
      point_size != id.point.size() || id.point[0] != 0x04 || !relay::ReportDataOfPoint(id.point, &id.report_data)) {
    return Fail("cannot encode the fresh public key");
  }
  return id;
}

Result<Done> CertifyClientKey(ClientIdentity& id) {
  id.certificate.reset(X509_new());
  uint8_t serial[16];
  if (!id.certificate || RAND_bytes(serial, sizeof(serial)) != 1) return Fail("cannot make a certificate");
  serial[0] &= 0x7f;  // a positive serial number
  std::unique_ptr<BIGNUM, BnFree> bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  X509* c = id.certificate.get();
  X509_NAME* name = X509_get_subject_name(c);
  static const unsigned char kCommonName[] = "cloister runtime";
  bool ok = bn && X509_set_version(c, 2) == 1 && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c)) != nullptr &&
            X509_gmtime_adj(X509_getm_notBefore(c), -300) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(c), 86400) != nullptr &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, kCommonName, -1, -1, 0) == 1 &&
            X509_set_issuer_name(c, name) == 1 && X509_set_pubkey(c, id.key.get()) == 1 &&
            X509_sign(c, id.key.get(), EVP_sha256()) > 0;
  if (!ok) return Fail("cannot make a certificate for the fresh key");

  // The CAS hashes the SubjectPublicKeyInfo as the certificate carries it;
  // it must be the one the report data names.
  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
  uint8_t digest[32];
  bool same = n > 0 && Sha256(der, static_cast<size_t>(n), digest) &&
              CRYPTO_memcmp(digest, id.report_data.data(), sizeof(digest)) == 0;
  OPENSSL_free(der);
  if (!same) return Fail("the certificate of the fresh key does not carry the key the evidence names");
  return Done{};
}

Result<ClientIdentity> CreateClientIdentity() {
  Result<ClientIdentity> id = CreateClientKey();
  if (!id.ok()) return id;
  Result<Done> certified = CertifyClientKey(id.value());
  if (!certified.ok()) return certified.failure();
  return id;
}

std::string BuildAttestRequest(const CasAddress& cas, std::string_view config_id, std::span<const uint8_t> evidence) {
  std::string body = "{\"config_id\":\"";
  body += config_id;
  body += "\",\"evidence\":\"";
  body += Base64Encode(evidence);
  body += "\"}";
  std::string r = "POST /v1/attest HTTP/1.1\r\nHost: ";
  r += cas.text;
  r += "\r\nContent-Type: application/json\r\nContent-Length: ";
  r += std::to_string(body.size());
  r += "\r\nConnection: close\r\n\r\n";
  r += body;
  return r;
}

HttpParse ParseHttpResponse(std::span<const uint8_t> bytes, bool at_eof, HttpResponse* out) {
  std::string_view raw(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  size_t pos = 0;
  for (;;) {
    size_t end = raw.substr(pos, kMaxHttpHeader + 4).find("\r\n\r\n");
    if (end == std::string_view::npos) {
      return raw.size() - pos > kMaxHttpHeader ? HttpParse::kMalformed : HttpParse::kIncomplete;
    }
    std::string_view head = raw.substr(pos, end);
    size_t body = pos + end + 4;

    // "HTTP/1.1 200 OK": the version, three digits, optionally a reason.
    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12 ||
        (status_line.substr(0, 9) != "HTTP/1.1 " && status_line.substr(0, 9) != "HTTP/1.0 ") ||
        (status_line.size() > 12 && status_line[12] != ' ')) {
      return HttpParse::kMalformed;
    }
    int status = 0;
    for (char c : status_line.substr(9, 3)) {
      if (c < '0' || c > '9') return HttpParse::kMalformed;
      status = status * 10 + (c - '0');
    }
    if (status < 100) return HttpParse::kMalformed;

    bool chunked = false;
    bool has_length = false;
    size_t length = 0;
    std::string_view fields = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    while (!fields.empty()) {
      size_t e = fields.find("\r\n");
      std::string_view line = fields.substr(0, e);
      fields = e == std::string_view::npos ? std::string_view() : fields.substr(e + 2);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) return HttpParse::kMalformed;
      std::string_view name = line.substr(0, colon), value = Trim(line.substr(colon + 1));
      if (IEquals(name, "content-length")) {
        if (value.empty() || value.size() > 10) return HttpParse::kMalformed;
        size_t v = 0;
        for (char c : value) {
          if (c < '0' || c > '9') return HttpParse::kMalformed;
          v = v * 10 + static_cast<size_t>(c - '0');
        }
        if (has_length && v != length) return HttpParse::kMalformed;
        has_length = true;
        length = v;
      } else if (IEquals(name, "transfer-encoding")) {
        if (!IEquals(value, "chunked")) return HttpParse::kMalformed;  // no other coding is ever asked for
        chunked = true;
      }
    }

    if (status < 200) {  // an interim response; the real one follows
      pos = body;
      continue;
    }
    out->status = status;
    out->body.clear();
    if (status == 204 || status == 304) return HttpParse::kComplete;
    if (chunked) {
      size_t chunks_end = 0;
      HttpParse p = WalkChunks(raw, body, &chunks_end, nullptr);
      if (p != HttpParse::kComplete) return p;
      return WalkChunks(raw, body, &chunks_end, &out->body);
    }
    if (has_length) {
      if (length > kMaxCasResponse) return HttpParse::kMalformed;
      if (raw.size() - body < length) return HttpParse::kIncomplete;
      out->body.assign(bytes.begin() + static_cast<std::ptrdiff_t>(body),
                       bytes.begin() + static_cast<std::ptrdiff_t>(body + length));
      return HttpParse::kComplete;
    }
    if (!at_eof) return HttpParse::kIncomplete;
    out->body.assign(bytes.begin() + static_cast<std::ptrdiff_t>(body), bytes.end());
    return HttpParse::kComplete;
  }
}

void SslDeleter::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
void SslDeleter::operator()(SSL* p) const { SSL_free(p); }

CasConnection::CasConnection(const Settings& settings, addrinfo* addresses)
    : at_("the CAS at " + settings.cas.text),
      cas_(settings.cas),
      pin_(settings.cas_key),
      addresses_(addresses),
      next_(addresses),
      connect_deadline_(kCasConnectTimeoutMs),
      io_deadline_(kCasIoTimeoutMs) {}

CasConnection::~CasConnection() {
  ssl_.reset();
  if (fd_ >= 0) ::close(fd_);
  if (addresses_ != nullptr) ::freeaddrinfo(addresses_);
}

Result<std::unique_ptr<CasConnection>> CasConnection::Begin(const Settings& settings) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (IsIpLiteral(settings.cas.host) ? AI_NUMERICHOST : 0);
  addrinfo* list = nullptr;
  std::string port = std::to_string(settings.cas.port);
  int rc = ::getaddrinfo(settings.cas.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    return Fail("the CAS at " + settings.cas.text + " is unreachable: cannot resolve " + settings.cas.host + ": " +
                (rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc)));
  }
  std::unique_ptr<CasConnection> c(new CasConnection(settings, list));
  c->ConnectNext();
  return c;
}

void CasConnection::ConnectNext() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  while (next_ != nullptr) {
    addrinfo* ai = next_;
    next_ = next_->ai_next;
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last_error_ = errno;
      continue;
    }
    // An interrupted connect goes on in the background, like one in progress.
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS || errno == EINTR) {
      fd_ = fd;
      return;
    }
    last_error_ = errno;
    ::close(fd);
  }
}

Result<Done> CasConnection::FinishConnect() {
  for (;;) {
    if (fd_ < 0) {
      std::string why = last_error_ == ETIMEDOUT
                            ? "no connection within " + std::to_string(kCasConnectTimeoutMs / 1000) + " s"
                            : std::string(std::strerror(last_error_ != 0 ? last_error_ : ECONNREFUSED));
      return Fail(at_ + " is unreachable: " + why);
    }
    int e = WaitFd(fd_, POLLOUT, connect_deadline_);
    socklen_t len = sizeof(int);
    if (e == 0 && ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
    if (e == 0) break;
    last_error_ = e;
    if (e == ETIMEDOUT) {  // no time left for further addresses
      ::close(fd_);
      fd_ = -1;
      continue;
    }
    ConnectNext();
  }
  // One request, one response: do not let Nagle hold back the request.
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  DebugLog("connected to the CAS at %s", cas_.text.c_str());
  return Done{};
}

Result<Done> CasConnection::Hello() {
  if (failed_) return *failed_;
  if (ssl_) return Done{};
  Result<Done> connected = FinishConnect();
  if (!connected.ok()) return Remember(connected.failure());

  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_) return Remember(Fail("cannot set up TLS: " + OpensslError()));
  // The CAS is authenticated by its pinned key alone, checked in
  // Handshake; there is no CA to verify a chain against. Plaintext copies
  // of what is read (the grant holds secrets) are wiped inside OpenSSL too.
  // OpenSSL would still build and check a chain for the record (most of
  // the client's handshake CPU with OpenSSL 3.0): the callback replaces
  // that check. The server's CertificateVerify is checked regardless.
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx_.get(), [](X509_STORE_CTX*, void*) { return 1; }, nullptr);
  SSL_CTX_set_options(ctx_.get(), SSL_OP_CLEANSE_PLAINTEXT);
  if (SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx_.get(), TLS1_3_VERSION) != 1) {
    return Remember(Fail("cannot set up TLS: " + OpensslError()));
  }
  // The client certificate comes from a callback, which OpenSSL calls when
  // the server asks for one: until Handshake has the fresh key, it
  // suspends the handshake (SSL_ERROR_WANT_X509_LOOKUP).
  SSL_CTX_set_client_cert_cb(ctx_.get(), &CasConnection::ClientCertificate);
  ssl_.reset(SSL_new(ctx_.get()));
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd_) != 1 || SSL_set_app_data(ssl_.get(), this) != 1) {
    return Remember(Fail("cannot set up TLS: " + OpensslError()));
  }
  if (!IsIpLiteral(cas_.host)) SSL_set_tlsext_host_name(ssl_.get(), cas_.host.c_str());

  // Send the ClientHello and go on with the handshake as far as it goes
  // without waiting for the server or the client certificate.
  SigpipeBlocked no_sigpipe;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int e = SSL_get_error(ssl_.get(), SSL_connect(ssl_.get()));
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_X509_LOOKUP || e == SSL_ERROR_NONE) break;
    if (e != SSL_ERROR_WANT_WRITE) return Remember(Fail("TLS 1.3 with " + at_ + " failed: " + SslErrorText(e)));
    if (WaitFd(fd_, POLLOUT, io_deadline_) != 0) {
      return Remember(Fail(at_ + " did not answer within " + std::to_string(kCasIoTimeoutMs / 1000) + " s"));
    }
  }
  DebugLog("sent the TLS ClientHello to the CAS");
  return Done{};
}

Failure CasConnection::Remember(Failure f) {
  failed_ = f;
  return f;
}

int CasConnection::ClientCertificate(SSL* ssl, X509** certificate, EVP_PKEY** key) {
  auto* self = static_cast<CasConnection*>(SSL_get_app_data(ssl));
  if (self == nullptr || self->identity_ == nullptr) return -1;  // not made yet: suspend
  // OpenSSL takes ownership of what it is given.
  X509_up_ref(self->identity_->certificate.get());
  EVP_PKEY_up_ref(self->identity_->key.get());
  *certificate = self->identity_->certificate.get();
  *key = self->identity_->key.get();
  return 1;
}

Result<Done> CasConnection::Handshake(const ClientIdentity& identity) {
  Result<Done> hello = Hello();
  if (!hello.ok()) return hello;
  identity_ = &identity;

  SigpipeBlocked no_sigpipe;
  int error = 0;
  if (SslRetry(ssl_.get(), fd_, io_deadline_, &error, [&] { return SSL_connect(ssl_.get()); }) <= 0) {
    if (error == kSslTimedOut) {
      return Remember(Fail(at_ + " did not answer within " + std::to_string(kCasIoTimeoutMs / 1000) + " s"));
    }
    return Remember(Fail("TLS 1.3 with " + at_ + " failed: " + SslErrorText(error)));
  }

  // The pin: SHA-256 of the DER SubjectPublicKeyInfo of the CAS's
  // certificate, as CLOISTER_CAS_KEY gives it. Nothing is sent before it
  // matches.
  X509* peer = SSL_get0_peer_certificate(ssl_.get());
  uint8_t got[32] = {};
  unsigned char* der = nullptr;
  int n = peer == nullptr ? 0 : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &der);
  bool hashed = n > 0 && Sha256(der, static_cast<size_t>(n), got);
  OPENSSL_free(der);
  if (!hashed) return Remember(Fail(at_ + " presented no usable certificate"));
  if (CRYPTO_memcmp(got, pin_.data(), sizeof(got)) != 0) {
    return Remember(Fail(at_ + " is not the pinned one (key " + HexEncode(got) + ", expected " + HexEncode(pin_) +
                         " from CLOISTER_CAS_KEY)"));
  }
  handshake_done_ = true;
  DebugLog("TLS 1.3 handshake done, the CAS's key matches CLOISTER_CAS_KEY");
  return Done{};
}

Result<HttpResponse> CasConnection::Exchange(std::string_view request) {
  if (!handshake_done_) return Fail("internal error: no TLS connection to " + at_);
  SigpipeBlocked no_sigpipe;
  const std::string timed_out = at_ + " did not answer within " + std::to_string(kCasIoTimeoutMs / 1000) + " s";
  int error = 0;
  size_t sent = 0;
  while (sent < request.size()) {
    int w = SslRetry(ssl_.get(), fd_, io_deadline_, &error, [&] {
      return SSL_write(ssl_.get(), request.data() + sent, static_cast<int>(request.size() - sent));
    });
    if (w <= 0) {
      if (error == kSslTimedOut) return Fail(timed_out);
      return Fail(at_ + " did not take the request: " + SslErrorText(error));
    }
    sent += static_cast<size_t>(w);
  }

  SecretBytes raw;
  raw.reserve(kReadChunk);
  HttpResponse response;
  for (;;) {
    if (raw.size() >= kMaxCasResponse) {
      return Fail(at_ + " sent more than " + std::to_string(kMaxCasResponse >> 20) + " MiB");
    }
    size_t old = raw.size();
    raw.resize(old + kReadChunk);
    int r = SslRetry(ssl_.get(), fd_, io_deadline_, &error,
                     [&] { return SSL_read(ssl_.get(), raw.data() + old, static_cast<int>(kReadChunk)); });
    raw.resize(old + static_cast<size_t>(r > 0 ? r : 0));
    if (r <= 0 && error == kSslTimedOut) return Fail(timed_out);
    // Only a TLS close_notify is a trustworthy end of the stream; an
    // unannounced close may be a truncation by someone in between, so it
    // ends only responses that carry their own length.
    bool clean_eof = r <= 0 && error == SSL_ERROR_ZERO_RETURN;
    HttpParse p = ParseHttpResponse(raw, clean_eof, &response);
    if (p == HttpParse::kComplete) break;
    if (p == HttpParse::kMalformed) return Fail(at_ + " sent a malformed HTTP response");
    if (r <= 0) {
      if (raw.empty()) return Fail(at_ + " closed the connection without an answer: " + SslErrorText(error));
      return Fail(at_ + " closed the connection before its answer was complete");
    }
  }
  OPENSSL_cleanse(raw.data(), raw.size());
  return response;
}

}  // namespace cloister::runtime
