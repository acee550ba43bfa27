// TLS for the CAS API: TLS 1.3 only, both sides identified by the SHA-256 of
// their public key (DER SubjectPublicKeyInfo), not by certificate chains.
// The server accepts any client certificate whose holder proves possession
// of its key in the handshake; handlers then decide what that identity may
// do. The client pins the server's key hash and refuses anything else.
#pragma once

#include <openssl/ssl.h>

#include <optional>
#include <string>

#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::net {

// A key pair and its certificate, as PEM (the key is secret).
struct TlsIdentity {
  std::string certificate_pem;
  SecretBytes private_key_pem;
};

// Reads `<dir>/<stem>.crt` and `<dir>/<stem>.key`; refuses a key file that
// others can read.
StatusOr<TlsIdentity> LoadTlsIdentity(const std::string& dir, const std::string& stem);

// Sets up a server context: TLS 1.3 only, `id` as the server certificate,
// client certificates requested (not required: health and unseal calls come
// without one) and accepted whatever their issuer.
Status ConfigureServerContext(SSL_CTX& ctx, const TlsIdentity& id);

// The identity (hex SHA-256 of the public key) of the peer's certificate,
// or nullopt when the peer presented none.
std::optional<std::string> PeerIdentity(const SSL* ssl);

// The peer's certificate as PEM, or nullopt when it presented none.
std::optional<std::string> PeerCertificatePem(const SSL* ssl);

// Sets up a client context: TLS 1.3 only, optional client identity, and a
// verifier that accepts the server only if its leaf certificate's key hash
// equals `pinned_key_hash` (hex, case-insensitive).
Status ConfigureClientContext(SSL_CTX& ctx, const std::string& pinned_key_hash,
                              const TlsIdentity* client);

// True if the last handshake on this thread was refused because the
// server's key was not the pinned one (reset by TakePinMismatch).
bool TakePinMismatch();

}  // namespace cloister::net
