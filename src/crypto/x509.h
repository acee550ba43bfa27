// X.509 certificates and CRLs issued by others (Intel's and AMD's
// attestation PKIs, TPM manufacturers), and signatures in the raw forms
// hardware evidence uses. Parsing is bounded and never trusts what it reads:
// a Certificate says what a certificate contains; whether it is trusted is
// decided by the verifier that checks its chain with VerifyIssuedBy, its
// validity at an explicit time, and CRLs. Time is always passed in.
//
// Everything goes through OpenSSL 3; signatures are checked with the
// algorithm the issuer's key and the certificate name (ECDSA with SHA-256
// or SHA-384, RSA PKCS#1 v1.5 or RSASSA-PSS).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "cloister/status.h"

typedef struct x509_st X509;
typedef struct X509_crl_st X509_CRL;
typedef struct evp_pkey_st EVP_PKEY;

namespace cloister::crypto {

class PublicKey;

class Certificate {
 public:
  // One certificate, DER or PEM. kIntegrity with the reason otherwise.
  static StatusOr<std::shared_ptr<const Certificate>> FromDer(std::span<const uint8_t> der);
  static StatusOr<std::shared_ptr<const Certificate>> FromPem(std::string_view pem);
  // Every certificate of a PEM bundle, or of concatenated DER certificates
  // (some quotes carry their chain that way), in the order given. Empty
  // input, or anything that is not a certificate, is kIntegrity.
  static StatusOr<std::vector<std::shared_ptr<const Certificate>>> ParseBundle(std::span<const uint8_t> bytes);
  ~Certificate();
  Certificate(const Certificate&) = delete;
  Certificate& operator=(const Certificate&) = delete;

  const std::string& subject_cn() const { return subject_cn_; }
  const std::string& issuer_cn() const { return issuer_cn_; }
  // One line naming the certificate in error messages: its subject CN (or
  // the whole subject when there is no CN).
  const std::string& name() const { return name_; }
  int64_t not_before_unix() const { return not_before_; }
  int64_t not_after_unix() const { return not_after_; }
  // The serial number as the DER INTEGER's content bytes (may be negative:
  // some AMD VCEKs have one).
  const Bytes& serial() const { return serial_; }
  const Bytes& der() const { return der_; }
  // DER SubjectPublicKeyInfo, and its SHA-256 (what pins name).
  const Bytes& spki_der() const { return spki_; }
  std::array<uint8_t, 32> SpkiSha256() const;
  bool is_ca() const { return is_ca_; }

  // The content (inside the OCTET STRING) of the extension with this OID
  // (dotted form), or nullopt when the certificate has none.
  std::optional<Bytes> Extension(std::string_view oid) const;

  // Was this certificate signed by `issuer`'s key, and does its issuer name
  // equal `issuer`'s subject? kIntegrity naming both otherwise.
  Status VerifyIssuedBy(const Certificate& issuer) const;
  // kFailedPrecondition ("... expired at ...", "... not valid before ...")
  // unless not_before <= now_unix <= not_after.
  Status CheckValidAt(int64_t now_unix) const;

  StatusOr<std::unique_ptr<PublicKey>> Key() const;

  X509* raw() const { return x509_; }

 private:
  Certificate() = default;
  static StatusOr<std::shared_ptr<const Certificate>> Wrap(X509* x);
  X509* x509_ = nullptr;  // owned
  std::string subject_cn_, issuer_cn_, name_;
  int64_t not_before_ = 0, not_after_ = 0;
  Bytes serial_, der_, spki_;
  bool is_ca_ = false;
};

class Crl {
 public:
  // DER or PEM. kIntegrity otherwise.
  static StatusOr<std::unique_ptr<Crl>> Parse(std::span<const uint8_t> bytes);
  ~Crl();
  Crl(const Crl&) = delete;
  Crl& operator=(const Crl&) = delete;

  const std::string& issuer_cn() const { return issuer_cn_; }
  int64_t this_update_unix() const { return this_update_; }
  int64_t next_update_unix() const { return next_update_; }  // 0 when absent
  // Signed by `issuer` (and issued under its name)? kIntegrity otherwise.
  Status VerifyIssuedBy(const Certificate& issuer) const;
  // kFailedPrecondition unless this_update <= now <= next_update.
  Status CheckCurrentAt(int64_t now_unix) const;
  // Does it list `cert`'s serial number? Only meaningful once the CRL was
  // verified to come from `cert`'s issuer.
  bool Revokes(const Certificate& cert) const;

 private:
  Crl() = default;
  X509_CRL* crl_ = nullptr;  // owned
  std::string issuer_cn_;
  int64_t this_update_ = 0, next_update_ = 0;
};

enum class HashAlg { kSha256, kSha384 };

// A public key to verify signatures with: from a certificate, a PEM or DER
// SubjectPublicKeyInfo, or raw EC coordinates (an SGX/TDX attestation key
// is x||y of a P-256 point; a TPM's ECC key is x and y from its public area).
class PublicKey {
 public:
  static StatusOr<std::unique_ptr<PublicKey>> FromSpki(std::span<const uint8_t> der_or_pem);
  // `curve` is "P-256" or "P-384"; x and y big-endian, each the curve's size.
  static StatusOr<std::unique_ptr<PublicKey>> FromEcPoint(std::string_view curve, std::span<const uint8_t> x,
                                                         std::span<const uint8_t> y);
  // RSA from its modulus (big-endian) and public exponent.
  static StatusOr<std::unique_ptr<PublicKey>> FromRsa(std::span<const uint8_t> modulus, uint32_t exponent);
  ~PublicKey();
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  // "EC P-256", "EC P-384", "RSA 2048", ...
  std::string Describe() const;
  Bytes SpkiDer() const;

  // ECDSA over `data` with `hash`, the signature as DER, or as the raw
  // big-endian r and s (each any length up to the curve's size: TPMs strip
  // leading zeros). kIntegrity if it does not verify or the key is not EC.
  Status VerifyEcdsaDer(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> der) const;
  Status VerifyEcdsaRaw(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> r,
                        std::span<const uint8_t> s) const;
  // RSA PKCS#1 v1.5 or RSASSA-PSS (salt length = hash length unless given).
  Status VerifyRsaPkcs1(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> sig) const;
  Status VerifyRsaPss(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> sig,
                      int salt_length = -1) const;

  EVP_PKEY* raw() const { return key_; }

 private:
  friend class Certificate;
  PublicKey() = default;
  EVP_PKEY* key_ = nullptr;  // owned
};

Bytes Hash(HashAlg alg, std::span<const uint8_t> data);

// "2025-06-19T10:56:11Z" (RFC 3339 UTC, optional fraction) to UNIX seconds.
StatusOr<int64_t> ParseRfc3339(std::string_view text);
std::string FormatRfc3339(int64_t unix_seconds);

}  // namespace cloister::crypto
