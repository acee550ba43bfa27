#include "cas/secrets.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "crypto/ossl_ptr.h"
#include "base/bytes.h"
#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

using policy::KeyAlgorithm;
using policy::SecretKind;

constexpr int kDefaultSize = 32;
constexpr int kMaxSize = 1 << 16;
constexpr int kDefaultCaDays = 3650;
constexpr int kDefaultLeafDays = 365;
constexpr int kMaxDays = 36500;  // as the policy parser allows
constexpr long kBackdateSeconds = 5 * 60;  // tolerate clocks a little behind ours
constexpr size_t kMaxCommonName = 64;      // ub-common-name, RFC 5280

// Store encoding, version 1 (all integers little-endian):
//   u8 version = 1
//   u8 kind (see KindCode; stable across reorderings of policy::SecretKind)
//   u32 length, bytes        SecretValue::bytes
//   u32 length, bytes        certificate_pem
//   u32 length, bytes        chain_pem
//   u32 length, bytes        fingerprint
// and nothing after. The store encrypts and authenticates the record, so
// decoding only has to be safe on arbitrary input, not detect tampering.
constexpr uint8_t kEncodingVersion = 1;
constexpr size_t kMaxEncodedField = 4 << 20;

template <typename T>
using Ptr = crypto::OsslPtr<T>;

// An OpenSSL call failed. Its error queue is dropped rather than copied into
// the message: entries can quote the input being parsed, which may be a key.
Status SslError(std::string what) {
  ERR_clear_error();
  return InternalError(std::move(what));
}

std::string Quoted(std::string_view name) {
  std::string q;
  q.reserve(name.size() + 2);
  q += '\'';
  q += name;
  q += '\'';
  return q;
}

uint8_t KindCode(SecretKind k) {
  switch (k) {
    case SecretKind::kAscii: return 1;
    case SecretKind::kBinary: return 2;
    case SecretKind::kPrivateKey: return 3;
    case SecretKind::kX509Ca: return 4;
    case SecretKind::kX509: return 5;
    case SecretKind::kExplicit: return 6;
    case SecretKind::kImported: break;
  }
  return 0;  // never decoded
}

std::optional<SecretKind> KindOfCode(uint8_t code) {
  for (SecretKind k : {SecretKind::kAscii, SecretKind::kBinary, SecretKind::kPrivateKey, SecretKind::kX509Ca,
                       SecretKind::kX509, SecretKind::kExplicit}) {
    if (KindCode(k) == code) return k;
  }
  return std::nullopt;
}

bool IsCertificateKind(SecretKind k) { return k == SecretKind::kX509Ca || k == SecretKind::kX509; }
bool IsKeyKind(SecretKind k) { return k == SecretKind::kPrivateKey || IsCertificateKind(k); }

SecretBytes SecretOfText(std::string_view s) {
  return SecretBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// The contents of a memory BIO. Key material is read out of BIO_s_secmem()
// BIOs, which OpenSSL wipes when they grow and when they are freed.
SecretBytes BioSecret(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return SecretBytes();
  return SecretBytes(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n));
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return std::string();
  return std::string(data, static_cast<size_t>(n));
}

// ---- random values ----

StatusOr<SecretBytes> RandomAscii(size_t n) {
  constexpr unsigned kAlphabetSize = kAsciiAlphabet.size();
  static_assert(kAlphabetSize >= 62 && kAlphabetSize <= 256);
  // Bytes at or above the largest multiple of the alphabet size are
  // rejected, so that `b % kAlphabetSize` is uniform over what is left.
  constexpr unsigned kLimit = 256 - 256 % kAlphabetSize;
  SecretBytes out(n);
  // About 77% of the bytes are accepted; draw a little more than that.
  SecretBytes pool(n + n / 2 + 16);
  size_t filled = 0;
  while (filled < n) {
    RETURN_IF_ERROR(crypto::RandomBytes(pool.UnsafeMutableBytes()));
    for (uint8_t b : pool.UnsafeBytes()) {
      if (b >= kLimit) continue;
      out.UnsafeMutableBytes()[filled++] = static_cast<uint8_t>(kAsciiAlphabet[b % kAlphabetSize]);
      if (filled == n) break;
    }
  }
  return out;
}

StatusOr<size_t> SizeOf(const policy::Secret& spec) {
  if (spec.size == 0) return static_cast<size_t>(kDefaultSize);
  if (spec.size < 0 || spec.size > kMaxSize) {
    return InvalidArgument("secret " + Quoted(spec.name) + ": size must be from 1 to " + std::to_string(kMaxSize));
  }
  return static_cast<size_t>(spec.size);
}

// ---- keys ----

StatusOr<Ptr<EVP_PKEY>> NewKey(KeyAlgorithm a) {
  EVP_PKEY* key = nullptr;
  switch (a) {
    case KeyAlgorithm::kP256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyAlgorithm::kP384: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case KeyAlgorithm::kEd25519: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
    case KeyAlgorithm::kRsa3072: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(3072)); break;
  }
  if (key == nullptr) return SslError("key generation failed");
  return Ptr<EVP_PKEY>(key);
}

// PKCS#8 PrivateKeyInfo, DER.
StatusOr<SecretBytes> PrivateKeyDer(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_secmem()));
  if (!bio || i2d_PKCS8PrivateKey_bio(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslError("cannot encode the private key");
  }
  return BioSecret(bio.get());
}

// Only an unencrypted PKCS#8 PrivateKeyInfo with nothing after it.
StatusOr<Ptr<EVP_PKEY>> LoadPrivateKey(const SecretBytes& der) {
  EVP_PKEY* raw = nullptr;
  Ptr<OSSL_DECODER_CTX> ctx(
      OSSL_DECODER_CTX_new_for_pkey(&raw, "DER", "PrivateKeyInfo", nullptr, EVP_PKEY_KEYPAIR, nullptr, nullptr));
  const unsigned char* p = der.UnsafeBytes().data();
  size_t left = der.size();
  bool ok = ctx && left > 0 && OSSL_DECODER_from_data(ctx.get(), &p, &left) == 1;
  Ptr<EVP_PKEY> key(raw);
  if (!ok || !key || left != 0) {
    ERR_clear_error();
    return InvalidArgument("the stored private key is not a PKCS#8 key");
  }
  return key;
}

struct KeyFacts {
  const EVP_MD* digest = nullptr;  // for signatures made with this key; nullptr for Ed25519
  bool rsa = false;
};

// What a key of one of the four supported types signs with. Keys come from
// this module or from an exporting session's (also generated here), but a
// stored key is still checked rather than trusted to be one of them.
StatusOr<KeyFacts> FactsOf(EVP_PKEY* key) {
  KeyFacts f;
  if (EVP_PKEY_is_a(key, "ED25519")) return f;
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_get_bits(key) < 2048) return InvalidArgument("RSA keys shorter than 2048 bits are not supported");
    f.digest = EVP_sha256();
    f.rsa = true;
    return f;
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[80] = {};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1) {
      int nid = OBJ_sn2nid(group);
      if (nid == NID_undef) nid = EC_curve_nist2nid(group);
      if (nid == NID_X9_62_prime256v1) f.digest = EVP_sha256();
      if (nid == NID_secp384r1) f.digest = EVP_sha384();
      if (f.digest != nullptr) return f;
    }
  }
  ERR_clear_error();
  return InvalidArgument("unsupported key type (P-256, P-384, Ed25519 and RSA are)");
}

StatusOr<SecretBytes> PrivateKeyPem(const SecretBytes& der) {
  ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, LoadPrivateKey(der));
  Ptr<BIO> bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslError("cannot encode the private key");
  }
  return BioSecret(bio.get());
}

StatusOr<SecretBytes> PublicKeyPem(const SecretBytes& der) {
  ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, LoadPrivateKey(der));
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) return SslError("cannot encode the public key");
  return SecretOfText(BioString(bio.get()));
}

// ---- certificates ----

StatusOr<Ptr<X509>> ParseCertificate(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    return InvalidArgument("the stored certificate is not PEM");
  }
  return cert;
}

// A DNS name for subjectAltName: dot-separated labels of letters, digits,
// '-' and '_', each 1 to 63 long, 253 in all; the first label may be "*".
bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  bool first = true;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (!(first && label == "*")) {
      for (char c : label) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) return false;
      }
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
    first = false;
  }
}

Status PushName(GENERAL_NAMES* names, int type, Ptr<ASN1_STRING> value) {
  Ptr<GENERAL_NAME> gn(GENERAL_NAME_new());
  if (!gn || !value) return SslError("out of memory");
  GENERAL_NAME_set0_value(gn.get(), type, value.release());
  if (sk_GENERAL_NAME_push(names, gn.get()) <= 0) return SslError("out of memory");
  gn.release();  // owned by the stack now
  return Status::Ok();
}

// subjectAltName, built as a structure rather than from OpenSSL's
// "DNS:a,IP:b" text so that a name can never smuggle in another entry.
Status AddSubjectAltNames(X509* cert, const policy::Secret& spec) {
  if (spec.dns.empty() && spec.ip.empty()) return Status::Ok();
  Ptr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  if (!names) return SslError("out of memory");
  for (const std::string& dns : spec.dns) {
    if (!IsDnsName(dns)) {
      return InvalidArgument("secret " + Quoted(spec.name) + ": " + Quoted(dns) + " is not a DNS name");
    }
    Ptr<ASN1_STRING> s(ASN1_IA5STRING_new());
    if (s && ASN1_STRING_set(s.get(), dns.data(), static_cast<int>(dns.size())) != 1) return SslError("out of memory");
    RETURN_IF_ERROR(PushName(names.get(), GEN_DNS, std::move(s)));
  }
  for (const std::string& ip : spec.ip) {
    unsigned char addr[16];
    int len = 0;
    // inet_pton is strict: dotted-quad IPv4 without leading zeros, or IPv6
    // text without a zone.
    if (inet_pton(AF_INET, ip.c_str(), addr) == 1) {
      len = 4;
    } else if (inet_pton(AF_INET6, ip.c_str(), addr) == 1) {
      len = 16;
    } else {
      return InvalidArgument("secret " + Quoted(spec.name) + ": " + Quoted(ip) + " is not an IPv4 or IPv6 address");
    }
    Ptr<ASN1_STRING> s(ASN1_OCTET_STRING_new());
    if (s && ASN1_OCTET_STRING_set(s.get(), addr, len) != 1) return SslError("out of memory");
    RETURN_IF_ERROR(PushName(names.get(), GEN_IPADD, std::move(s)));
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return SslError("cannot add subjectAltName");
  }
  return Status::Ok();
}

Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return SslError(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid));
  }
  return Status::Ok();
}

Status SetRandomSerial(X509* cert) {
  uint8_t serial[16];
  bool zero = true;
  while (zero) {
    RETURN_IF_ERROR(crypto::RandomBytes(serial));
    serial[0] &= 0x7f;  // positive as a DER INTEGER
    zero = std::all_of(std::begin(serial), std::end(serial), [](uint8_t b) { return b == 0; });
  }
  Ptr<BIGNUM> bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return SslError("cannot set the serial number");
  }
  return Status::Ok();
}

struct Signer {
  X509* cert = nullptr;  // nullptr: the certificate signs itself
  EVP_PKEY* key = nullptr;
};

// A certificate for `key` as `spec` describes it, signed by `signer` (or by
// `key` itself when signer.cert is null).
StatusOr<std::string> MakeCertificate(const policy::Secret& spec, EVP_PKEY* key, const Signer& signer) {
  const bool ca = spec.kind == SecretKind::kX509Ca;
  int days = spec.validity_days;
  if (days == 0) days = ca ? kDefaultCaDays : kDefaultLeafDays;
  if (days < 1 || days > kMaxDays) {
    return InvalidArgument("secret " + Quoted(spec.name) + ": validity_days must be from 1 to " +
                           std::to_string(kMaxDays));
  }
  const std::string& cn = spec.common_name.empty() ? spec.name : spec.common_name;
  if (cn.empty() || cn.size() > kMaxCommonName) {
    return InvalidArgument("secret " + Quoted(spec.name) + ": the common name must be 1 to " +
                           std::to_string(kMaxCommonName) + " bytes");
  }
  EVP_PKEY* signing_key = signer.cert != nullptr ? signer.key : key;
  ASSIGN_OR_RETURN(KeyFacts subject, FactsOf(key));
  ASSIGN_OR_RETURN(KeyFacts signing, FactsOf(signing_key));

  Ptr<X509> cert(X509_new());
  if (!cert) return SslError("out of memory");
  RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  X509_NAME* subject_name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_NAME_add_entry_by_txt(subject_name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(),
                           signer.cert != nullptr ? X509_get_subject_name(signer.cert) : subject_name) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) == nullptr) {
    return SslError("cannot fill in the certificate");
  }
  // A certificate cannot outlive its issuer usefully; end it with the issuer.
  if (signer.cert != nullptr &&
      ASN1_TIME_compare(X509_get0_notAfter(cert.get()), X509_get0_notAfter(signer.cert)) > 0 &&
      X509_set1_notAfter(cert.get(), X509_get0_notAfter(signer.cert)) != 1) {
    return SslError("cannot fill in the certificate");
  }

  X509V3_CTX ctx{};
  X509V3_set_ctx(&ctx, signer.cert != nullptr ? signer.cert : cert.get(), cert.get(), nullptr, nullptr, 0);
  if (X509V3_set_issuer_pkey(&ctx, signing_key) != 1) return SslError("cannot prepare certificate extensions");
  if (ca) {
    RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE"));
    RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    // keyEncipherment only for RSA: TLS RSA key exchange encrypts to the
    // key; EC and Ed25519 keys only ever sign.
    RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_key_usage,
                                 subject.rsa ? "critical,digitalSignature,keyEncipherment"
                                             : "critical,digitalSignature"));
    RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth"));
    RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), spec));
  }
  // The subject key identifier first: a self-signed certificate's
  // authority key identifier is taken from it.
  RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));

  if (X509_sign(cert.get(), signing_key, signing.digest) <= 0) return SslError("cannot sign the certificate");
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) return SslError("cannot encode the certificate");
  return BioString(bio.get());
}

const SecretValue* Resolve(const SecretResolver& resolve, const std::string& name) {
  return resolve ? resolve(name) : nullptr;
}

StatusOr<SecretValue> GenerateCertificate(const policy::Secret& spec, const SecretResolver& resolve) {
  const bool ca = spec.kind == SecretKind::kX509Ca;
  SecretValue v;
  v.kind = spec.kind;

  // The subject's key: a private-key secret's, or a fresh one.
  Ptr<EVP_PKEY> key;
  if (!spec.private_key.empty()) {
    const SecretValue* k = Resolve(resolve, spec.private_key);
    if (k == nullptr) {
      return NotFound("secret " + Quoted(spec.name) + ": private_key " + Quoted(spec.private_key) + " not found");
    }
    if (k->kind != SecretKind::kPrivateKey) {
      return InvalidArgument("secret " + Quoted(spec.name) + ": private_key " + Quoted(spec.private_key) +
                             " is not a private-key secret");
    }
    auto loaded = LoadPrivateKey(k->bytes);
    if (!loaded.ok()) return loaded.status().WithContext("secret " + Quoted(spec.private_key));
    key = std::move(loaded).value();
    v.bytes = k->bytes;
  } else {
    ASSIGN_OR_RETURN(key, NewKey(spec.algorithm));
    ASSIGN_OR_RETURN(v.bytes, PrivateKeyDer(key.get()));
  }

  // The signer: the issuer CA, or the certificate itself for a root.
  Signer signer;
  Ptr<X509> issuer_cert;
  Ptr<EVP_PKEY> issuer_key;
  if (!spec.issuer.empty()) {
    if (spec.issuer == spec.name) {
      return InvalidArgument("secret " + Quoted(spec.name) + " names itself as its issuer");
    }
    const SecretValue* issuer = Resolve(resolve, spec.issuer);
    if (issuer == nullptr) {
      return NotFound("secret " + Quoted(spec.name) + ": issuer " + Quoted(spec.issuer) + " not found");
    }
    if (issuer->kind != SecretKind::kX509Ca) {
      return InvalidArgument("secret " + Quoted(spec.name) + ": issuer " + Quoted(spec.issuer) +
                             " is not an x509-ca secret");
    }
    auto cert = ParseCertificate(issuer->certificate_pem);
    if (!cert.ok()) return cert.status().WithContext("issuer " + Quoted(spec.issuer));
    issuer_cert = std::move(cert).value();
    auto ikey = LoadPrivateKey(issuer->bytes);
    if (!ikey.ok()) return ikey.status().WithContext("issuer " + Quoted(spec.issuer));
    issuer_key = std::move(ikey).value();
    if (X509_check_ca(issuer_cert.get()) < 1) {
      return InvalidArgument("secret " + Quoted(spec.name) + ": issuer " + Quoted(spec.issuer) +
                             " has no CA certificate");
    }
    if (X509_check_private_key(issuer_cert.get(), issuer_key.get()) != 1) {
      ERR_clear_error();
      return InvalidArgument("secret " + Quoted(spec.name) + ": issuer " + Quoted(spec.issuer) +
                             " has a key that does not match its certificate");
    }
    const int expiry = X509_cmp_current_time(X509_get0_notAfter(issuer_cert.get()));
    if (expiry == 0) return SslError("cannot read the issuer's notAfter");
    if (expiry < 0) {
      return FailedPrecondition("secret " + Quoted(spec.name) + ": issuer " + Quoted(spec.issuer) +
                                " has expired");
    }
    signer.cert = issuer_cert.get();
    signer.key = issuer_key.get();
    v.chain_pem = issuer->certificate_pem + issuer->chain_pem;
  } else if (!ca) {
    return InvalidArgument("secret " + Quoted(spec.name) + ": an x509 secret needs an issuer");
  }

  ASSIGN_OR_RETURN(v.certificate_pem, MakeCertificate(spec, key.get(), signer));
  v.fingerprint = spec.Fingerprint();
  return v;
}

// ---- formats ----

SecretBytes HexSecret(const SecretBytes& in) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::span<const uint8_t> b = in.UnsafeBytes();
  SecretBytes out(b.size() * 2);
  std::span<uint8_t> o = out.UnsafeMutableBytes();
  for (size_t i = 0; i < b.size(); ++i) {
    o[2 * i] = static_cast<uint8_t>(kDigits[b[i] >> 4]);
    o[2 * i + 1] = static_cast<uint8_t>(kDigits[b[i] & 0xf]);
  }
  return out;
}

StatusOr<SecretBytes> Base64Secret(const SecretBytes& in) {
  std::span<const uint8_t> b = in.UnsafeBytes();
  if (b.size() > static_cast<size_t>(kMaxEncodedField)) return InvalidArgument("value too long for base64");
  const size_t len = (b.size() + 2) / 3 * 4;
  SecretBytes buf(len + 1);  // EVP_EncodeBlock writes a terminating NUL
  int n = EVP_EncodeBlock(buf.UnsafeMutableBytes().data(), b.data(), static_cast<int>(b.size()));
  if (n < 0 || static_cast<size_t>(n) != len) return SslError("base64 encoding failed");
  return SecretBytes(buf.UnsafeBytes().data(), len);  // `buf` wipes itself
}

Status BadFormat(const SecretValue& v, std::string_view format) {
  return InvalidArgument("format " + Quoted(format) + " does not apply to " +
                         std::string(policy::SecretKindName(v.kind)) + " secrets");
}

}  // namespace

// ---- encoding ----

SecretBytes EncodeSecretValue(const SecretValue& v) {
  const std::span<const uint8_t> fields[] = {v.bytes.UnsafeBytes(), AsBytes(v.certificate_pem),
                                             AsBytes(v.chain_pem), AsBytes(v.fingerprint)};
  size_t total = 2;
  for (const auto& f : fields) total += 4 + f.size();
  // Reserved up front so that the vector never reallocates: a reallocation
  // would leave a copy of the key in freed memory that nobody wipes.
  Bytes buf;
  buf.reserve(total);
  PutU8(buf, kEncodingVersion);
  PutU8(buf, KindCode(v.kind));
  for (const auto& f : fields) PutLengthPrefixed(buf, f);
  SecretBytes out(buf.data(), buf.size());
  SecureZero(buf.data(), buf.size());
  return out;
}

StatusOr<SecretValue> DecodeSecretValue(std::span<const uint8_t> encoded) {
  ByteReader r(encoded);
  const uint8_t version = r.U8();
  if (!r.ok()) return IntegrityError("secret value is empty");
  if (version != kEncodingVersion) {
    return IntegrityError("secret value has unknown encoding version " + std::to_string(version));
  }
  const std::optional<SecretKind> kind = KindOfCode(r.U8());
  auto bytes = r.LengthPrefixed(kMaxEncodedField);
  auto cert = r.LengthPrefixed(kMaxEncodedField);
  auto chain = r.LengthPrefixed(kMaxEncodedField);
  auto fingerprint = r.LengthPrefixed(kMaxEncodedField);
  if (!r.ok() || !r.AtEnd()) return IntegrityError("secret value is malformed");
  if (!kind) return IntegrityError("secret value has an unknown kind");
  // Certificates exactly for the certificate kinds, and a key for each kind
  // that has one.
  if (IsCertificateKind(*kind) == cert.empty() || (!IsCertificateKind(*kind) && !chain.empty()) ||
      (IsKeyKind(*kind) && bytes.empty())) {
    return IntegrityError("secret value does not fit its kind");
  }
  SecretValue v;
  v.kind = *kind;
  v.bytes = SecretBytes(bytes.data(), bytes.size());
  v.certificate_pem.assign(cert.begin(), cert.end());
  v.chain_pem.assign(chain.begin(), chain.end());
  v.fingerprint.assign(fingerprint.begin(), fingerprint.end());
  return v;
}

// ---- generation ----

StatusOr<SecretValue> GenerateSecret(const policy::Secret& spec, const SecretResolver& resolve) {
  switch (spec.kind) {
    case SecretKind::kAscii: {
      ASSIGN_OR_RETURN(size_t n, SizeOf(spec));
      SecretValue v;
      v.kind = spec.kind;
      ASSIGN_OR_RETURN(v.bytes, RandomAscii(n));
      v.fingerprint = spec.Fingerprint();
      return v;
    }
    case SecretKind::kBinary: {
      ASSIGN_OR_RETURN(size_t n, SizeOf(spec));
      SecretValue v;
      v.kind = spec.kind;
      ASSIGN_OR_RETURN(v.bytes, crypto::RandomSecret(n));
      v.fingerprint = spec.Fingerprint();
      return v;
    }
    case SecretKind::kExplicit: {
      if (!spec.value) return InvalidArgument("secret " + Quoted(spec.name) + ": an explicit secret needs a value");
      SecretValue v;
      v.kind = spec.kind;
      v.bytes = *spec.value;
      v.fingerprint = spec.Fingerprint();
      return v;
    }
    case SecretKind::kPrivateKey: {
      ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, NewKey(spec.algorithm));
      SecretValue v;
      v.kind = spec.kind;
      ASSIGN_OR_RETURN(v.bytes, PrivateKeyDer(key.get()));
      v.fingerprint = spec.Fingerprint();
      return v;
    }
    case SecretKind::kX509Ca:
    case SecretKind::kX509:
      return GenerateCertificate(spec, resolve);
    case SecretKind::kImported:
      break;
  }
  return InvalidArgument("secret " + Quoted(spec.name) + " is imported, not generated");
}

StatusOr<std::vector<size_t>> GenerationOrder(const policy::Policy& p) {
  const size_t n = p.secrets.size();
  std::map<std::string, size_t, std::less<>> index;
  for (size_t i = 0; i < n; ++i) {
    if (!index.emplace(p.secrets[i].name, i).second) {
      return InvalidArgument("secret " + Quoted(p.secrets[i].name) + " is defined twice");
    }
  }
  // deps[i]: the secrets i names; an import names none (its value comes
  // from the exporting session).
  std::vector<std::vector<size_t>> deps(n);
  std::vector<std::vector<size_t>> dependents(n);
  for (size_t i = 0; i < n; ++i) {
    const policy::Secret& s = p.secrets[i];
    if (s.kind == SecretKind::kImported) continue;
    for (const std::string* ref : {&s.private_key, &s.issuer}) {
      if (ref->empty()) continue;
      auto it = index.find(*ref);
      if (it == index.end()) {
        return InvalidArgument("secret " + Quoted(s.name) + " names " + Quoted(*ref) +
                               ", which is not a secret of this session");
      }
      if (std::find(deps[i].begin(), deps[i].end(), it->second) != deps[i].end()) continue;
      deps[i].push_back(it->second);
      dependents[it->second].push_back(i);
    }
  }

  // Kahn's algorithm, taking the ready secret that comes first in the
  // document each time, so that the order is stable and readable.
  std::vector<size_t> order;
  order.reserve(n);
  std::vector<size_t> waiting(n);
  std::vector<bool> done(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (p.secrets[i].kind == SecretKind::kImported) {
      order.push_back(i);
      done[i] = true;
    }
    waiting[i] = deps[i].size();
  }
  auto finish = [&](size_t i) {
    for (size_t d : dependents[i]) --waiting[d];
  };
  for (size_t i : order) finish(i);
  while (order.size() < n) {
    size_t next = n;
    for (size_t i = 0; i < n; ++i) {
      if (!done[i] && waiting[i] == 0) {
        next = i;
        break;
      }
    }
    if (next == n) break;  // a cycle
    done[next] = true;
    order.push_back(next);
    finish(next);
  }
  if (order.size() == n) return order;

  // Every secret left waits for another one left: walk from the first of
  // them until a secret repeats, and report that cycle.
  size_t at = 0;
  while (done[at]) ++at;
  std::vector<size_t> path;
  std::vector<int> pos(n, -1);
  while (pos[at] < 0) {
    pos[at] = static_cast<int>(path.size());
    path.push_back(at);
    for (size_t d : deps[at]) {
      if (!done[d]) {
        at = d;
        break;
      }
    }
  }
  std::string cycle;
  for (size_t k = static_cast<size_t>(pos[at]); k < path.size(); ++k) cycle += Quoted(p.secrets[path[k]].name) + " -> ";
  cycle += Quoted(p.secrets[at].name);
  return InvalidArgument("secrets depend on each other in a cycle (issuer or private_key): " + cycle);
}

// ---- formats and placeholders ----

StatusOr<SecretBytes> FormatSecret(const SecretValue& v, std::string_view format) {
  switch (v.kind) {
    case SecretKind::kAscii:
    case SecretKind::kExplicit:
      if (format.empty() || format == "raw") return v.bytes;
      if (format == "hex") return HexSecret(v.bytes);
      if (format == "base64") return Base64Secret(v.bytes);
      break;
    case SecretKind::kBinary:
      if (format.empty() || format == "hex") return HexSecret(v.bytes);
      if (format == "base64") return Base64Secret(v.bytes);
      if (format == "raw") return v.bytes;
      break;
    case SecretKind::kPrivateKey:
      if (format.empty() || format == "pem") return PrivateKeyPem(v.bytes);
      if (format == "public-pem") return PublicKeyPem(v.bytes);
      break;
    case SecretKind::kX509Ca:
    case SecretKind::kX509:
      if (format.empty() || format == "cert") return SecretOfText(v.certificate_pem);
      if (format == "chain") return SecretOfText(v.certificate_pem + v.chain_pem);
      if (format == "privatekey") return PrivateKeyPem(v.bytes);
      if (format == "public-pem") return PublicKeyPem(v.bytes);
      break;
    case SecretKind::kImported:
      return InvalidArgument("an imported secret has no value of its own");
  }
  return BadFormat(v, format);
}

StatusOr<SecretBytes> Substitute(std::string_view s, const SecretResolver& resolve) {
  ASSIGN_OR_RETURN(std::vector<policy::Placeholder> found, policy::FindPlaceholders(s));
  std::vector<SecretBytes> values;
  values.reserve(found.size());
  size_t total = s.size();
  size_t prev_end = 0;
  for (const policy::Placeholder& ph : found) {
    if (ph.begin < prev_end || ph.end < ph.begin || ph.end > s.size()) {
      return InternalError("placeholders out of order");
    }
    prev_end = ph.end;
    const SecretValue* v = Resolve(resolve, ph.secret);
    if (v == nullptr) return NotFound("secret " + Quoted(ph.secret) + " not found");
    auto text = FormatSecret(*v, ph.format);
    if (!text.ok()) return text.status().WithContext("secret " + Quoted(ph.secret));
    total = total - (ph.end - ph.begin) + text->size();
    values.push_back(std::move(text).value());
  }
  SecretBytes out(total);
  uint8_t* o = out.UnsafeMutableBytes().data();
  size_t from = 0;
  auto put = [&o](std::span<const uint8_t> b) {
    if (!b.empty()) std::memcpy(o, b.data(), b.size());
    o += b.size();
  };
  for (size_t i = 0; i < found.size(); ++i) {
    put(AsBytes(s.substr(from, found[i].begin - from)));
    put(values[i].UnsafeBytes());
    from = found[i].end;
  }
  put(AsBytes(s.substr(from)));
  return out;
}

}  // namespace cloister::cas
