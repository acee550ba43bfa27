// Signatures for evidence and other signed statements: ECDSA P-256 with
// SHA-256 (DER signatures), through OpenSSL 3 EVP. The key that signs is a
// PEM private key; the key that verifies comes from a PEM certificate, so a
// verifier names its trust in one place (the certificate it accepted).
#pragma once

#include <openssl/types.h>

#include <memory>
#include <span>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::crypto {

// A P-256 private key parsed once, for a signer that signs many messages
// (a LAS signs evidence at every program start). Thread-safe: Sign may be
// called from many threads at once.
class P256Signer {
 public:
  // kInvalidArgument unless `private_key_pem` is a PEM P-256 private key.
  static StatusOr<std::unique_ptr<P256Signer>> New(const SecretBytes& private_key_pem);
  ~P256Signer();
  P256Signer(const P256Signer&) = delete;
  P256Signer& operator=(const P256Signer&) = delete;

  // The identity of the key (hex SHA-256 of the public key, DER SPKI).
  const std::string& id() const { return id_; }
  // ECDSA P-256 with SHA-256, DER-encoded.
  StatusOr<Bytes> Sign(std::span<const uint8_t> data) const;

 private:
  P256Signer() = default;
  EVP_PKEY* key_ = nullptr;  // owned
  std::string id_;
};

// The P-256 public key of a certificate, parsed once to verify many
// signatures (a CAS checks every start's evidence against the same node
// certificate). Safe to use from several threads at once.
class P256Verifier {
 public:
  // kIntegrity unless `certificate_pem` is a PEM X.509 certificate with a
  // P-256 key. Nothing else about the certificate is checked.
  static StatusOr<std::shared_ptr<const P256Verifier>> FromCertificate(const std::string& certificate_pem);
  ~P256Verifier();
  P256Verifier(const P256Verifier&) = delete;
  P256Verifier& operator=(const P256Verifier&) = delete;

  // The identity of the key (hex SHA-256 of the public key, DER SPKI).
  const std::string& id() const { return id_; }
  // kIntegrity unless `signature` is a valid ECDSA P-256/SHA-256 signature
  // (DER) of `data` by this key.
  Status Verify(std::span<const uint8_t> data, std::span<const uint8_t> signature) const;

 private:
  P256Verifier() = default;
  EVP_PKEY* key_ = nullptr;  // owned
  std::string id_;
};

// Signs `data` with a P-256 private key (PEM). Other key types are refused.
StatusOr<Bytes> SignP256(const SecretBytes& private_key_pem, std::span<const uint8_t> data);

// kIntegrity unless `signature` is a valid ECDSA P-256/SHA-256 signature of
// `data` by the public key of `certificate_pem`.
Status VerifyP256(const std::string& certificate_pem, std::span<const uint8_t> data,
                  std::span<const uint8_t> signature);

}  // namespace cloister::crypto
