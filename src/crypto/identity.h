// Client identities: a P-256 key pair and a self-signed certificate that
// presents it in TLS. An identity *is* the SHA-256 of the public key (DER
// SubjectPublicKeyInfo); the certificate only carries it.
#pragma once

#include <openssl/types.h>

#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::crypto {

struct NewIdentity {
  SecretBytes private_key_pem;  // PKCS#8
  std::string certificate_pem;
  std::string id;               // hex SHA-256 of the public key
};

// A fresh P-256 key and a self-signed certificate (CN "cloister identity
// <first 16 hex of the id>", valid for `days`).
StatusOr<NewIdentity> CreateIdentity(int days);

// The identity of the public key in a PEM certificate.
StatusOr<std::string> IdentityOfCertificate(const std::string& certificate_pem);
// The identity of a public key (or of the public half of a key pair).
StatusOr<std::string> IdentityOfKey(const EVP_PKEY* key);

// The identity of a PEM private key (of its public half).
StatusOr<std::string> IdentityOfPrivateKey(const SecretBytes& private_key_pem);

}  // namespace cloister::crypto
