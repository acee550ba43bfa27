// Secrets generated inside the CAS, and the filling of placeholders with
// them. All randomness is OpenSSL's RNG; keys and certificates are made
// through OpenSSL 3 EVP and X509 APIs only.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/secret.h"
#include "cloister/status.h"
#include "policy/policy.h"

namespace cloister::cas {

// The value of one secret as the CAS keeps it (encrypted, in its store).
struct SecretValue {
  // Never kImported: an imported secret carries the exporter's kind.
  policy::SecretKind kind = policy::SecretKind::kAscii;
  // ascii, binary, explicit: the value itself.
  // private-key, x509-ca, x509: the private key, PKCS#8 DER.
  SecretBytes bytes;
  // x509-ca, x509: the certificate (PEM) and the certificates of its
  // issuers, nearest first, up to and including the root (PEM; empty for a
  // self-signed root).
  std::string certificate_pem;
  std::string chain_pem;
  // policy::Secret::Fingerprint() of the definition it was made from.
  std::string fingerprint;
};

// The characters of an `ascii` secret: the URL-unreserved set of RFC 3986
// (letters, digits, "-._~"), 66 characters, each drawn with equal
// probability. None of them needs quoting in a URL, a JSON or YAML string,
// a double-quoted shell word or an environment file, so a password can be
// put into a connection string ("postgres://u:PASSWORD@host") unescaped.
inline constexpr std::string_view kAsciiAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

// Store encoding (versioned, self-delimiting); the result is secret.
SecretBytes EncodeSecretValue(const SecretValue& v);
StatusOr<SecretValue> DecodeSecretValue(std::span<const uint8_t> encoded);

// Values already known by name (earlier secrets of the same session, and
// imported ones), or nullptr.
using SecretResolver = std::function<const SecretValue*(const std::string& name)>;

// Makes a value for `spec` (never kImported). x509 and x509-ca with an
// issuer or a private_key find them through `resolve`; they must have been
// made first (see GenerationOrder).
StatusOr<SecretValue> GenerateSecret(const policy::Secret& spec, const SecretResolver& resolve);

// Indices of p.secrets in an order where every private_key and issuer a
// secret names comes before it (imports first). Error on a cycle.
StatusOr<std::vector<size_t>> GenerationOrder(const policy::Policy& p);

// The text a placeholder stands for, in `format` (policy.h lists the
// formats per kind; empty = the kind's default).
StatusOr<SecretBytes> FormatSecret(const SecretValue& v, std::string_view format);

// `s` with every placeholder replaced. kNotFound names a missing secret.
StatusOr<SecretBytes> Substitute(std::string_view s, const SecretResolver& resolve);

}  // namespace cloister::cas
