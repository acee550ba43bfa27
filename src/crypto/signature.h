// Signatures for evidence and other signed statements: ECDSA P-256 with
// SHA-256 (DER signatures), through OpenSSL 3 EVP. The key that signs is a
// PEM private key; the key that verifies comes from a PEM certificate, so a
// verifier names its trust in one place (the certificate it accepted).
#pragma once

#include <span>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::crypto {

// Signs `data` with a P-256 private key (PEM). Other key types are refused.
StatusOr<Bytes> SignP256(const SecretBytes& private_key_pem, std::span<const uint8_t> data);

// kIntegrity unless `signature` is a valid ECDSA P-256/SHA-256 signature of
// `data` by the public key of `certificate_pem`.
Status VerifyP256(const std::string& certificate_pem, std::span<const uint8_t> data,
                  std::span<const uint8_t> signature);

}  // namespace cloister::crypto
