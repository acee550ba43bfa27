// Certificates the CAS issues to nodes: a certificate authority of its own
// (a P-256 key and a self-signed CA certificate), certificates for keys the
// CAS does not hold (a LAS's node key), and the check that a certificate
// was issued by that authority and is valid at a given time. Time is always
// passed in, so verifiers can be tested with a fixed clock.
#pragma once

#include <cstdint>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "crypto/identity.h"

namespace cloister::crypto {

// A fresh P-256 key and a self-signed CA certificate (basicConstraints
// CA:TRUE, keyUsage keyCertSign) with subject CN `common_name`, valid from
// five minutes before `now_unix` for `days`. `id` is the key's identity.
StatusOr<NewIdentity> CreateCertificateAuthority(const std::string& common_name, int64_t now_unix, int days);

// A certificate for the public key of `subject_certificate_pem` (for
// example the self-signed certificate a LAS presented in TLS), with subject
// CN `common_name`, a random serial, keyUsage digitalSignature, valid from
// `not_before_unix` to `not_after_unix`, signed by the CA.
StatusOr<std::string> IssueCertificate(const SecretBytes& ca_key_pem, const std::string& ca_certificate_pem,
                                       const std::string& subject_certificate_pem, const std::string& common_name,
                                       int64_t not_before_unix, int64_t not_after_unix);

struct CertificateFacts {
  std::string key_id;  // hex SHA-256 of the public key (DER SubjectPublicKeyInfo)
  std::string common_name;
  int64_t not_before_unix = 0, not_after_unix = 0;
};

// What a PEM certificate says, without judging it.
StatusOr<CertificateFacts> ReadCertificate(const std::string& certificate_pem);

// The DER SubjectPublicKeyInfo of the certificate's key: the bytes whose
// SHA-256 is the key's identity (and what clients pin).
StatusOr<Bytes> PublicKeyDerOfCertificate(const std::string& certificate_pem);

// Checks that `certificate_pem` was signed by the key of `ca_certificate_pem`
// (kIntegrity otherwise) and that `now_unix` lies within its validity
// (kFailedPrecondition, saying "expired" or "not yet valid", otherwise).
StatusOr<CertificateFacts> VerifyIssuedBy(const std::string& certificate_pem, const std::string& ca_certificate_pem,
                                          int64_t now_unix);

}  // namespace cloister::crypto
