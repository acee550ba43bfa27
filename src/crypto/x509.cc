#include "crypto/x509.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "crypto/ossl_ptr.h"

namespace cloister::crypto {
namespace {

struct Free {
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
  void operator()(ASN1_OBJECT* p) const { ASN1_OBJECT_free(p); }
};
template <typename T>
using Own = std::unique_ptr<T, Free>;

// OpenSSL keeps a per-thread error queue; a failed parse must not leave
// entries behind for an unrelated caller to trip over.
struct ClearErrors {
  ~ClearErrors() { ERR_clear_error(); }
};

int64_t UnixOf(const ASN1_TIME* t) {
  if (t == nullptr) return 0;
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string CommonName(const X509_NAME* name) {
  if (name == nullptr) return "";
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  if (s == nullptr) return "";
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string OneLine(const X509_NAME* name) {
  char buf[256];
  if (name == nullptr || X509_NAME_oneline(name, buf, sizeof buf) == nullptr) return "(no name)";
  return buf;
}

std::string TimeText(int64_t t) { return FormatRfc3339(t); }

const EVP_MD* Md(HashAlg h) { return h == HashAlg::kSha384 ? EVP_sha384() : EVP_sha256(); }

bool LooksLikePem(std::span<const uint8_t> b) {
  static constexpr char kDash[] = "-----BEGIN";
  auto it = std::search(b.begin(), b.end(), kDash, kDash + sizeof kDash - 1);
  return it != b.end();
}

// A public key of `type` ("EC", "RSA") from the parameters in `bld`, or null.
EVP_PKEY* PublicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  Own<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld));
  OsslPtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return key;
}

Status DigestVerify(EVP_PKEY* key, HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> sig,
                    int padding, int salt, const char* what) {
  ClearErrors clear;
  Own<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, Md(hash), nullptr, key) != 1) {
    return IntegrityError(std::string(what) + ": the key cannot verify this kind of signature");
  }
  if (padding != 0) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, padding) != 1) return IntegrityError(std::string(what) + ": not an RSA key");
    if (padding == RSA_PKCS1_PSS_PADDING && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1) {
      return IntegrityError(std::string(what) + ": bad PSS salt length");
    }
  }
  if (EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), data.data(), data.size()) != 1) {
    return IntegrityError(std::string(what) + " does not verify");
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------- Certificate

Certificate::~Certificate() { X509_free(x509_); }

StatusOr<std::shared_ptr<const Certificate>> Certificate::Wrap(X509* x) {
  std::shared_ptr<Certificate> c(new Certificate());
  c->x509_ = x;
  c->subject_cn_ = CommonName(X509_get_subject_name(x));
  c->issuer_cn_ = CommonName(X509_get_issuer_name(x));
  c->name_ = c->subject_cn_.empty() ? OneLine(X509_get_subject_name(x)) : c->subject_cn_;
  c->not_before_ = UnixOf(X509_get0_notBefore(x));
  c->not_after_ = UnixOf(X509_get0_notAfter(x));
  if (c->not_before_ == 0 || c->not_after_ == 0) return IntegrityError("certificate " + c->name_ + ": bad validity");
  // The serial as the DER INTEGER's content (two's complement): the
  // ASN1_INTEGER itself holds the magnitude and the sign apart.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(x);
  int n = serial == nullptr ? -1 : i2d_ASN1_INTEGER(serial, nullptr);
  if (n > 2) {
    Bytes enc(static_cast<size_t>(n));
    unsigned char* p = enc.data();
    i2d_ASN1_INTEGER(serial, &p);
    // Tag, then a short or long length form.
    size_t header = 2 + ((enc[1] & 0x80) != 0 ? (enc[1] & 0x7f) : 0);
    if (header < enc.size()) c->serial_.assign(enc.begin() + static_cast<ptrdiff_t>(header), enc.end());
  }
  n = i2d_X509(x, nullptr);
  if (n <= 0) return IntegrityError("certificate " + c->name_ + " cannot be encoded");
  c->der_.resize(static_cast<size_t>(n));
  unsigned char* p = c->der_.data();
  i2d_X509(x, &p);
  X509_PUBKEY* pub = X509_get_X509_PUBKEY(x);
  n = pub == nullptr ? -1 : i2d_X509_PUBKEY(pub, nullptr);
  if (n <= 0) return IntegrityError("certificate " + c->name_ + " has no public key");
  c->spki_.resize(static_cast<size_t>(n));
  p = c->spki_.data();
  i2d_X509_PUBKEY(pub, &p);
  c->is_ca_ = X509_check_ca(x) != 0;
  return std::shared_ptr<const Certificate>(std::move(c));
}

StatusOr<std::shared_ptr<const Certificate>> Certificate::FromDer(std::span<const uint8_t> der) {
  ClearErrors clear;
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (x == nullptr) return IntegrityError("not a DER certificate");
  if (p != der.data() + der.size()) {
    X509_free(x);
    return IntegrityError("bytes after a DER certificate");
  }
  return Wrap(x);
}

StatusOr<std::shared_ptr<const Certificate>> Certificate::FromPem(std::string_view pem) {
  ASSIGN_OR_RETURN(auto all, ParseBundle(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pem.data()),
                                                                  pem.size())));
  if (all.size() != 1) return IntegrityError("expected one PEM certificate, found " + std::to_string(all.size()));
  return all[0];
}

StatusOr<std::vector<std::shared_ptr<const Certificate>>> Certificate::ParseBundle(std::span<const uint8_t> bytes) {
  ClearErrors clear;
  std::vector<std::shared_ptr<const Certificate>> out;
  if (LooksLikePem(bytes)) {
    OsslPtr<BIO> bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    if (!bio) return InternalError("out of memory");
    for (;;) {
      X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
      if (x == nullptr) {
        unsigned long e = ERR_peek_last_error();
        // The end of the input ends the bundle; anything else is malformed.
        if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE && !out.empty()) break;
        return IntegrityError("malformed PEM certificate #" + std::to_string(out.size() + 1));
      }
      ASSIGN_OR_RETURN(auto c, Wrap(x));
      out.push_back(std::move(c));
      if (out.size() > 64) return IntegrityError("too many certificates in one bundle");
    }
  } else {
    // Concatenated DER: each certificate is one SEQUENCE.
    size_t at = 0;
    while (at < bytes.size()) {
      const unsigned char* p = bytes.data() + at;
      X509* x = d2i_X509(nullptr, &p, static_cast<long>(bytes.size() - at));
      if (x == nullptr) return IntegrityError("malformed DER certificate #" + std::to_string(out.size() + 1));
      at = static_cast<size_t>(p - bytes.data());
      ASSIGN_OR_RETURN(auto c, Wrap(x));
      out.push_back(std::move(c));
      if (out.size() > 64) return IntegrityError("too many certificates in one bundle");
    }
  }
  if (out.empty()) return IntegrityError("no certificate");
  return out;
}

std::array<uint8_t, 32> Certificate::SpkiSha256() const {
  Bytes h = Hash(HashAlg::kSha256, spki_);
  std::array<uint8_t, 32> out{};
  std::copy(h.begin(), h.end(), out.begin());
  return out;
}

std::optional<Bytes> Certificate::Extension(std::string_view oid) const {
  ClearErrors clear;
  Own<ASN1_OBJECT> obj(OBJ_txt2obj(std::string(oid).c_str(), 1));
  if (!obj) return std::nullopt;
  int i = X509_get_ext_by_OBJ(x509_, obj.get(), -1);
  if (i < 0) return std::nullopt;
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(x509_, i));
  if (data == nullptr) return std::nullopt;
  return Bytes(ASN1_STRING_get0_data(data), ASN1_STRING_get0_data(data) + ASN1_STRING_length(data));
}

Status Certificate::VerifyIssuedBy(const Certificate& issuer) const {
  ClearErrors clear;
  if (X509_NAME_cmp(X509_get_issuer_name(x509_), X509_get_subject_name(issuer.x509_)) != 0) {
    return IntegrityError("certificate " + name_ + " names issuer " + OneLine(X509_get_issuer_name(x509_)) +
                          ", not " + issuer.name_);
  }
  EVP_PKEY* key = X509_get0_pubkey(issuer.x509_);
  if (key == nullptr || X509_verify(x509_, key) != 1) {
    return IntegrityError("signature of certificate " + name_ + " does not verify with the key of " + issuer.name_);
  }
  return Status::Ok();
}

Status Certificate::CheckValidAt(int64_t now_unix) const {
  if (now_unix < not_before_) {
    return FailedPrecondition("certificate " + name_ + " is not valid before " + TimeText(not_before_));
  }
  if (now_unix > not_after_) return FailedPrecondition("certificate " + name_ + " expired at " + TimeText(not_after_));
  return Status::Ok();
}

StatusOr<std::unique_ptr<PublicKey>> Certificate::Key() const {
  EVP_PKEY* key = X509_get_pubkey(x509_);
  if (key == nullptr) return IntegrityError("certificate " + name_ + " has an unusable public key");
  std::unique_ptr<PublicKey> k(new PublicKey());
  k->key_ = key;
  return k;
}

// ---------------------------------------------------------------- Crl

Crl::~Crl() { X509_CRL_free(crl_); }

StatusOr<std::unique_ptr<Crl>> Crl::Parse(std::span<const uint8_t> bytes) {
  ClearErrors clear;
  X509_CRL* crl = nullptr;
  if (LooksLikePem(bytes)) {
    OsslPtr<BIO> bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    if (bio) crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
  } else {
    const unsigned char* p = bytes.data();
    crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(bytes.size()));
    if (crl != nullptr && p != bytes.data() + bytes.size()) {
      X509_CRL_free(crl);
      return IntegrityError("bytes after a DER CRL");
    }
  }
  if (crl == nullptr) return IntegrityError("not a CRL");
  std::unique_ptr<Crl> c(new Crl());
  c->crl_ = crl;
  c->issuer_cn_ = CommonName(X509_CRL_get_issuer(crl));
  c->this_update_ = UnixOf(X509_CRL_get0_lastUpdate(crl));
  c->next_update_ = UnixOf(X509_CRL_get0_nextUpdate(crl));
  if (c->this_update_ == 0) return IntegrityError("CRL of " + c->issuer_cn_ + ": bad thisUpdate");
  return c;
}

Status Crl::VerifyIssuedBy(const Certificate& issuer) const {
  ClearErrors clear;
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl_), X509_get_subject_name(issuer.raw())) != 0) {
    return IntegrityError("CRL issued by " + OneLine(X509_CRL_get_issuer(crl_)) + ", not by " + issuer.name());
  }
  EVP_PKEY* key = X509_get0_pubkey(issuer.raw());
  if (key == nullptr || X509_CRL_verify(crl_, key) != 1) {
    return IntegrityError("signature of the CRL of " + issuer.name() + " does not verify");
  }
  return Status::Ok();
}

Status Crl::CheckCurrentAt(int64_t now_unix) const {
  if (now_unix < this_update_) {
    return FailedPrecondition("CRL of " + issuer_cn_ + " is not valid before " + TimeText(this_update_));
  }
  if (next_update_ != 0 && now_unix > next_update_) {
    return FailedPrecondition("CRL of " + issuer_cn_ + " expired at " + TimeText(next_update_));
  }
  return Status::Ok();
}

bool Crl::Revokes(const Certificate& cert) const {
  X509_REVOKED* entry = nullptr;
  return X509_CRL_get0_by_serial(crl_, &entry, X509_get0_serialNumber(cert.raw())) == 1;
}

// ---------------------------------------------------------------- PublicKey

PublicKey::~PublicKey() { EVP_PKEY_free(key_); }

StatusOr<std::unique_ptr<PublicKey>> PublicKey::FromSpki(std::span<const uint8_t> der_or_pem) {
  ClearErrors clear;
  EVP_PKEY* key = nullptr;
  if (LooksLikePem(der_or_pem)) {
    OsslPtr<BIO> bio(BIO_new_mem_buf(der_or_pem.data(), static_cast<int>(der_or_pem.size())));
    if (bio) key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  } else {
    const unsigned char* p = der_or_pem.data();
    key = d2i_PUBKEY(nullptr, &p, static_cast<long>(der_or_pem.size()));
    if (key != nullptr && p != der_or_pem.data() + der_or_pem.size()) {
      EVP_PKEY_free(key);
      return IntegrityError("bytes after a public key");
    }
  }
  if (key == nullptr) return IntegrityError("not a public key (SubjectPublicKeyInfo)");
  std::unique_ptr<PublicKey> k(new PublicKey());
  k->key_ = key;
  return k;
}

StatusOr<std::unique_ptr<PublicKey>> PublicKey::FromEcPoint(std::string_view curve, std::span<const uint8_t> x,
                                                           std::span<const uint8_t> y) {
  ClearErrors clear;
  size_t n = 0;
  const char* group = nullptr;
  if (curve == "P-256") {
    n = 32;
    group = "P-256";
  } else if (curve == "P-384") {
    n = 48;
    group = "P-384";
  } else {
    return InvalidArgument("unsupported curve " + std::string(curve));
  }
  if (x.size() > n || y.size() > n) return IntegrityError("EC point coordinate too long for " + std::string(curve));
  // Uncompressed point: 04 || x || y, each left-padded to the curve size.
  Bytes point(1 + 2 * n, 0);
  point[0] = 0x04;
  std::copy(x.begin(), x.end(), point.begin() + static_cast<ptrdiff_t>(1 + n - x.size()));
  std::copy(y.begin(), y.end(), point.begin() + static_cast<ptrdiff_t>(1 + 2 * n - y.size()));
  Own<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    return InternalError("out of memory");
  }
  EVP_PKEY* key = PublicKeyFromParams("EC", bld.get());
  if (key == nullptr) return IntegrityError("not a point on " + std::string(curve));
  std::unique_ptr<PublicKey> k(new PublicKey());
  k->key_ = key;
  // fromdata does not always check that the point lies on the curve.
  OsslPtr<EVP_PKEY_CTX> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return IntegrityError("not a point on " + std::string(curve));
  return k;
}

StatusOr<std::unique_ptr<PublicKey>> PublicKey::FromRsa(std::span<const uint8_t> modulus, uint32_t exponent) {
  ClearErrors clear;
  if (modulus.size() < 256 || modulus.size() > 1024) {
    return IntegrityError("RSA modulus of " + std::to_string(modulus.size() * 8) + " bits is not accepted");
  }
  OsslPtr<BIGNUM> n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  OsslPtr<BIGNUM> e(BN_new());
  if (!n || !e || BN_set_word(e.get(), exponent) != 1) return InternalError("out of memory");
  Own<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return InternalError("out of memory");
  }
  EVP_PKEY* key = PublicKeyFromParams("RSA", bld.get());
  if (key == nullptr) return IntegrityError("not an RSA public key");
  std::unique_ptr<PublicKey> k(new PublicKey());
  k->key_ = key;
  return k;
}

std::string PublicKey::Describe() const {
  if (EVP_PKEY_is_a(key_, "EC")) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key_, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) == 1) {
      std::string g(group, len);
      if (g == "prime256v1") g = "P-256";
      if (g == "secp384r1") g = "P-384";
      return "EC " + g;
    }
    return "EC";
  }
  if (EVP_PKEY_is_a(key_, "RSA") || EVP_PKEY_is_a(key_, "RSA-PSS")) {
    return "RSA " + std::to_string(EVP_PKEY_get_bits(key_));
  }
  return EVP_PKEY_get0_type_name(key_) != nullptr ? EVP_PKEY_get0_type_name(key_) : "unknown key";
}

Bytes PublicKey::SpkiDer() const {
  int n = i2d_PUBKEY(key_, nullptr);
  if (n <= 0) return {};
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  i2d_PUBKEY(key_, &p);
  return out;
}

Status PublicKey::VerifyEcdsaDer(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> der) const {
  if (!EVP_PKEY_is_a(key_, "EC")) return IntegrityError("ECDSA signature, but the key is " + Describe());
  return DigestVerify(key_, hash, data, der, 0, 0, "ECDSA signature");
}

Status PublicKey::VerifyEcdsaRaw(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> r,
                                 std::span<const uint8_t> s) const {
  ClearErrors clear;
  if (!EVP_PKEY_is_a(key_, "EC")) return IntegrityError("ECDSA signature, but the key is " + Describe());
  if (r.empty() || s.empty() || r.size() > 66 || s.size() > 66) return IntegrityError("ECDSA signature: bad r or s length");
  Own<ECDSA_SIG> sig(ECDSA_SIG_new());
  BIGNUM* br = BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr);
  BIGNUM* bs = BN_bin2bn(s.data(), static_cast<int>(s.size()), nullptr);
  if (!sig || br == nullptr || bs == nullptr || ECDSA_SIG_set0(sig.get(), br, bs) != 1) {
    BN_free(br);
    BN_free(bs);
    return InternalError("out of memory");
  }
  unsigned char* der = nullptr;
  int n = i2d_ECDSA_SIG(sig.get(), &der);
  if (n <= 0) return InternalError("cannot encode an ECDSA signature");
  Bytes encoded(der, der + n);
  OPENSSL_free(der);
  return DigestVerify(key_, hash, data, encoded, 0, 0, "ECDSA signature");
}

Status PublicKey::VerifyRsaPkcs1(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> sig) const {
  if (!EVP_PKEY_is_a(key_, "RSA")) return IntegrityError("RSA signature, but the key is " + Describe());
  return DigestVerify(key_, hash, data, sig, RSA_PKCS1_PADDING, 0, "RSA PKCS#1 v1.5 signature");
}

Status PublicKey::VerifyRsaPss(HashAlg hash, std::span<const uint8_t> data, std::span<const uint8_t> sig,
                               int salt_length) const {
  if (!EVP_PKEY_is_a(key_, "RSA") && !EVP_PKEY_is_a(key_, "RSA-PSS")) {
    return IntegrityError("RSA-PSS signature, but the key is " + Describe());
  }
  int salt = salt_length >= 0 ? salt_length : (hash == HashAlg::kSha384 ? 48 : 32);
  return DigestVerify(key_, hash, data, sig, RSA_PKCS1_PSS_PADDING, salt, "RSA-PSS signature");
}

// ---------------------------------------------------------------- helpers

Bytes Hash(HashAlg alg, std::span<const uint8_t> data) {
  Bytes out(static_cast<size_t>(EVP_MD_get_size(Md(alg))));
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &n, Md(alg), nullptr) != 1) return {};
  out.resize(n);
  return out;
}

StatusOr<int64_t> ParseRfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)
  auto bad = [&] { return InvalidArgument("not an RFC 3339 UTC time: \"" + std::string(text.substr(0, 40)) + "\""); };
  if (text.size() < 20) return bad();
  auto num = [&](size_t at, size_t len, int* out) {
    int v = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
  };
  struct tm tm {};
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  if (!num(0, 4, &year) || text[4] != '-' || !num(5, 2, &mon) || text[7] != '-' || !num(8, 2, &day) ||
      (text[10] != 'T' && text[10] != 't') || !num(11, 2, &hour) || text[13] != ':' || !num(14, 2, &min) ||
      text[16] != ':' || !num(17, 2, &sec)) {
    return bad();
  }
  size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    size_t digits = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at, ++digits;
    if (digits == 0) return bad();
  }
  std::string_view zone = text.substr(at);
  if (zone != "Z" && zone != "z" && zone != "+00:00") return bad();
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return bad();
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm));
}

std::string FormatRfc3339(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr) return "(invalid time)";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace cloister::crypto
