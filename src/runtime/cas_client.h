// The client side of attestation at start (docs/protocol.md section 5):
// the fresh key the evidence is bound to, one TLS 1.3 connection to the CAS
// whose key is pinned, and one hand-written HTTP/1.1 exchange over it.
//
// The HTTP codec is pure and bounded (ParseHttpResponse); CasConnection
// does the I/O. No HTTP library is used: the runtime must stay small, load fast
// and bring no shared dependency into the program.
#pragma once

#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "runtime/config.h"
#include "runtime/io.h"
#include "runtime/las_client.h"
#include "runtime/result.h"
#include "runtime/secret.h"

namespace cloister::runtime {

// Bounds of the exchange with the CAS.
inline constexpr int kCasConnectTimeoutMs = 5000;
inline constexpr int kCasIoTimeoutMs = 30000;                // from the first connect to the end of the response
inline constexpr size_t kMaxCasResponse = 16 * 1024 * 1024;  // headers and body
inline constexpr size_t kMaxHttpHeader = 64 * 1024;

struct OpensslFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
};

// The key this start is attested under: made fresh for every start, never
// stored, and used once as the TLS client key towards the CAS. The evidence
// carries `report_data`, so evidence without this private key is useless.
struct ClientIdentity {
  std::unique_ptr<EVP_PKEY, OpensslFree> key;
  std::unique_ptr<X509, OpensslFree> certificate;  // self-signed, for the TLS handshake only
  ReportData report_data{};                        // SHA-256 of the public key's DER SubjectPublicKeyInfo
  relay::Point point{};                            // the public key's uncompressed point
};

// A fresh P-256 key pair and its report data, without a certificate yet
// (the LAS needs only the report data).
Result<ClientIdentity> CreateClientKey();

// Gives `identity` (from CreateClientKey) its self-signed certificate,
// valid for one day from five minutes ago (for clock skew), and checks
// that the certificate carries exactly the SubjectPublicKeyInfo the report
// data is the hash of.
Result<Done> CertifyClientKey(ClientIdentity& identity);

// Both at once.
Result<ClientIdentity> CreateClientIdentity();

// The complete request: POST /v1/attest with Host, Content-Type,
// Content-Length and Connection: close, and the JSON body
// {"config_id": ..., "evidence": base64}. `config_id` must be valid per
// ReadSettings (it is not escaped beyond that).
std::string BuildAttestRequest(const CasAddress& cas, std::string_view config_id, std::span<const uint8_t> evidence);

struct HttpResponse {
  int status = 0;
  SecretBytes body;  // may hold secrets: wiped when freed
};

enum class HttpParse { kComplete, kIncomplete, kMalformed };

// Parses what arrived so far of an HTTP/1.0 or 1.1 response (interim 1xx
// responses are skipped). The body is delimited by Content-Length, by
// chunked transfer coding, or, without either, by the end of the stream
// (`at_eof`). kIncomplete asks for more bytes (or, at the end of the
// stream, means the response was cut short). On kComplete `out` holds the
// status and the (de-chunked) body. The header block is bounded by
// kMaxHttpHeader; the caller bounds the whole.
HttpParse ParseHttpResponse(std::span<const uint8_t> raw, bool at_eof, HttpResponse* out);

struct SslDeleter {
  void operator()(SSL_CTX* p) const;
  void operator()(SSL* p) const;
};

// One attestation exchange with the CAS, in steps, so that the caller can
// overlap them with other work: the TCP connection is under way, and the
// CAS works on its part of the TLS handshake, while the fresh key is made;
// the handshake completes while the LAS measures the process (it needs the
// key, but not the evidence).
//
// Failures name the address and say which step went wrong; a step after a
// failed one returns the same failure. Adding "(evidence: TYPE)" is the
// caller's business.
class CasConnection {
 public:
  // Resolves settings.cas and starts connecting to its first address
  // without waiting. Fails only when the name does not resolve.
  static Result<std::unique_ptr<CasConnection>> Begin(const Settings& settings);

  ~CasConnection();
  CasConnection(const CasConnection&) = delete;
  CasConnection& operator=(const CasConnection&) = delete;

  // Completes the connection (moving on to further addresses of the name,
  // all within kCasConnectTimeoutMs of Begin), sets TCP_NODELAY, and sends
  // the TLS 1.3 ClientHello. Optional: Handshake does it if needed.
  Result<Done> Hello();

  // Completes the TLS 1.3 handshake with `identity` as client certificate.
  // The server is accepted only if the SHA-256 of its certificate's
  // SubjectPublicKeyInfo equals settings.cas_key, compared in constant
  // time. `identity` must outlive the connection.
  Result<Done> Handshake(const ClientIdentity& identity);

  // After a successful Handshake: sends `request` and reads the response.
  // Everything from Begin to the end of the response takes at most
  // kCasIoTimeoutMs.
  Result<HttpResponse> Exchange(std::string_view request);

 private:
  CasConnection(const Settings& settings, addrinfo* addresses);

  // Starts connecting to the next address that takes a connect call.
  // Afterwards fd_ is connecting (or connected), or -1 with last_error_ set.
  void ConnectNext();
  Result<Done> FinishConnect();
  // Keeps `f` as the answer to every later step.
  Failure Remember(Failure f);
  // OpenSSL's client certificate callback: identity_, once there.
  static int ClientCertificate(SSL* ssl, X509** certificate, EVP_PKEY** key);

  const std::string at_;  // "the CAS at ADDR", for messages
  const CasAddress cas_;
  const std::array<uint8_t, 32> pin_;
  addrinfo* addresses_;
  addrinfo* next_ = nullptr;
  int fd_ = -1;
  int last_error_ = 0;
  Deadline connect_deadline_;
  Deadline io_deadline_;
  std::unique_ptr<SSL_CTX, SslDeleter> ctx_;
  std::unique_ptr<SSL, SslDeleter> ssl_;
  const ClientIdentity* identity_ = nullptr;
  bool handshake_done_ = false;
  std::optional<Failure> failed_;
};

}  // namespace cloister::runtime
