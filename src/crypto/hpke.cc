// RFC 9180 HPKE for DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM,
// base mode, one message per context. Section numbers below are RFC 9180's.
//
// Every primitive is OpenSSL's: ECDH through EVP_PKEY_derive, HKDF through
// EVP_KDF "HKDF" in EXTRACT_ONLY / EXPAND_ONLY mode, AES-GCM through
// EVP_CIPHER. This file only builds the labels and wires the steps together.
//
// Secrets (DH output, PRKs, shared secret, key, nonce, DeriveKeyPair
// candidates) live in types that OPENSSL_cleanse themselves on every return
// path. The exporter secret of section 5.1 is never derived: nothing here
// exports, so there is nothing of it to hold or wipe.

// Included by its plain name, not "crypto/hpke.h": the runtime library and
// a stand-alone compile must not need the project's include path.
#include "hpke.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <string_view>

namespace cloister::hpke {
namespace {

using Bytes = std::span<const uint8_t>;

constexpr size_t kHashSize = 32;       // Nh of HKDF-SHA256
constexpr size_t kDhSize = 32;         // Ndh: the x coordinate of the ECDH point
constexpr size_t kSharedSize = 32;     // Nsecret of the KEM
constexpr size_t kPrivateKeySize = 32; // Nsk of P-256
constexpr size_t kKeySize = 16;        // Nk of AES-128-GCM
constexpr size_t kNonceSize = 12;      // Nn of AES-128-GCM
constexpr uint8_t kModeBase = 0x00;    // section 5, table 1
constexpr uint8_t kP256Bitmask = 0xff; // section 7.1.3

// suite_id of the KEM (section 4.1) and of the whole suite (section 5.1).
constexpr uint8_t kKemSuite[] = {'K', 'E', 'M', 0x00, 0x10};
constexpr uint8_t kHpkeSuite[] = {'H', 'P', 'K', 'E', 0x00, 0x10,
                                  0x00, 0x01, 0x00, 0x01};
constexpr std::string_view kVersionLabel = "HPKE-v1";  // section 4

struct OsslFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
  void operator()(EC_GROUP* p) const { EC_GROUP_free(p); }
  void operator()(EC_POINT* p) const { EC_POINT_free(p); }
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
  void operator()(BN_CTX* p) const { BN_CTX_free(p); }
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, OsslFree>;

// A fixed-size secret, wiped when it goes out of scope.
template <size_t N>
struct Secret {
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  std::array<uint8_t, N> bytes{};
};

// The concatenation of `parts`, sized once so the vector never reallocates
// (which would leave an unwiped copy behind), and wiped on destruction:
// labeled inputs carry IKM such as the DH output.
class Concat {
 public:
  Concat(std::initializer_list<Bytes> parts) {
    size_t size = 0;
    for (Bytes part : parts) size += part.size();
    bytes_.reserve(size);
    for (Bytes part : parts) bytes_.insert(bytes_.end(), part.begin(), part.end());
  }
  Concat(const Concat&) = delete;
  Concat& operator=(const Concat&) = delete;
  ~Concat() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }
  Bytes view() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// The AEAD key and nonce of one context (section 5.1).
struct AeadKey {
  Secret<kKeySize> key;
  Secret<kNonceSize> nonce;
};

// OpenSSL queues an error for every rejected input. Left in the thread's
// queue, it would be picked up by an unrelated later call (SSL_get_error
// reads the queue), so each entry point drops what it added.
class ErrorMark {
 public:
  ErrorMark() { ERR_set_mark(); }
  ErrorMark(const ErrorMark&) = delete;
  ErrorMark& operator=(const ErrorMark&) = delete;
  ~ErrorMark() { ERR_pop_to_mark(); }
};

Bytes Text(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void Wipe(std::vector<uint8_t>* v) {
  OPENSSL_cleanse(v->data(), v->size());
  v->clear();
}

// One HKDF-SHA256 step. OpenSSL treats an absent salt as HashLen zero
// bytes, as RFC 5869 section 2.2 requires for the empty salt of HPKE.
bool Hkdf(int mode, Bytes key, Bytes salt, Bytes info, std::span<uint8_t> out) {
  Ptr<EVP_KDF> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  Ptr<EVP_KDF_CTX> ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (!ctx) return false;
  OSSL_PARAM params[6];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_utf8_string(
      OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key.data()), key.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size());
  }
  if (!info.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  return EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) == 1;
}

// LabeledExtract (section 4): Extract(salt, "HPKE-v1" || suite || label || ikm).
bool LabeledExtract(Bytes suite, Bytes salt, std::string_view label, Bytes ikm,
                    std::span<uint8_t, kHashSize> prk) {
  Concat labeled_ikm({Text(kVersionLabel), suite, Text(label), ikm});
  return Hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, labeled_ikm.view(), salt, {}, prk);
}

// LabeledExpand (section 4):
// Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite || label || info, L).
bool LabeledExpand(Bytes suite, Bytes prk, std::string_view label, Bytes info,
                   std::span<uint8_t> out) {
  const uint8_t length[2] = {static_cast<uint8_t>(out.size() >> 8),
                             static_cast<uint8_t>(out.size())};
  Concat labeled_info({length, Text(kVersionLabel), suite, Text(label), info});
  return Hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, {}, labeled_info.view(), out);
}

bool IsP256(EVP_PKEY* key) {
  char group[64];
  size_t length = 0;
  return EVP_PKEY_is_a(key, "EC") &&
         EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                        sizeof(group), &length) == 1 &&
         std::string_view(group, length) == SN_X9_62_prime256v1;
}

// The P-256 domain parameters as a key without key material, made once.
// New keys copy the group from it: OpenSSL 3.0 otherwise builds the curve
// afresh (Montgomery constants included) for every key it generates or
// imports, which cost more than a third of an HPKE seal.
EVP_PKEY* P256Parameters() {
  static EVP_PKEY* const parameters = [] {
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                         const_cast<char*>(SN_X9_62_prime256v1), 0),
        OSSL_PARAM_construct_end()};
    Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEY_PARAMETERS, params) != 1) {
      return static_cast<EVP_PKEY*>(nullptr);
    }
    return raw;
  }();
  return parameters;
}

// A fresh P-256 key pair from OpenSSL's DRBG, on the shared parameters.
KeyPtr GenerateP256Key() {
  EVP_PKEY* parameters = P256Parameters();
  if (parameters == nullptr) return nullptr;
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, parameters, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_generate(ctx.get(), &raw) != 1) {
    return nullptr;
  }
  return KeyPtr(raw);
}

// DH(sk, pk) of section 4.1: the x coordinate of the ECDH point (section
// 7.1). Every peer key reaching here came from PublicKeyFromPoint, which
// validated it (section 7.1.4), so OpenSSL is not asked to validate it again:
// its full check multiplies by the group order, doubling the cost of the DH
// and proving nothing more on a curve of cofactor 1.
bool Dh(EVP_PKEY* own, EVP_PKEY* peer, Secret<kDhSize>* dh) {
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  size_t length = dh->bytes.size();
  return ctx && EVP_PKEY_derive_init(ctx.get()) == 1 &&
         EVP_PKEY_derive_set_peer_ex(ctx.get(), peer, 0) == 1 &&
         EVP_PKEY_derive(ctx.get(), dh->bytes.data(), &length) == 1 &&
         length == dh->bytes.size();
}

// The common tail of Encap and Decap (section 4.1): ExtractAndExpand of the
// DH output, bound to kem_context = enc || pkRm.
bool KemSharedSecret(EVP_PKEY* own, EVP_PKEY* peer, Bytes enc, Bytes pk_rm,
                     Secret<kSharedSize>* shared) {
  Secret<kDhSize> dh;
  Secret<kHashSize> eae_prk;
  std::array<uint8_t, 2 * kPublicKeySize> kem_context;
  if (enc.size() != kEncSize || pk_rm.size() != kPublicKeySize) return false;
  std::copy(enc.begin(), enc.end(), kem_context.begin());
  std::copy(pk_rm.begin(), pk_rm.end(), kem_context.begin() + kEncSize);
  return Dh(own, peer, &dh) &&
         LabeledExtract(kKemSuite, {}, "eae_prk", dh.bytes, eae_prk.bytes) &&
         LabeledExpand(kKemSuite, eae_prk.bytes, "shared_secret", kem_context,
                       shared->bytes);
}

// KeySchedule (section 5.1) in mode_base, where psk and psk_id are empty.
bool KeySchedule(const Secret<kSharedSize>& shared, Bytes info, AeadKey* out) {
  // key_schedule_context = mode || psk_id_hash || info_hash
  std::array<uint8_t, 1 + 2 * kHashSize> context{};
  context[0] = kModeBase;
  auto psk_id_hash = std::span(context).subspan<1, kHashSize>();
  auto info_hash = std::span(context).subspan<1 + kHashSize, kHashSize>();
  Secret<kHashSize> secret;
  return LabeledExtract(kHpkeSuite, {}, "psk_id_hash", {}, psk_id_hash) &&
         LabeledExtract(kHpkeSuite, {}, "info_hash", info, info_hash) &&
         LabeledExtract(kHpkeSuite, shared.bytes, "secret", {}, secret.bytes) &&
         LabeledExpand(kHpkeSuite, secret.bytes, "key", context, out->key.bytes) &&
         LabeledExpand(kHpkeSuite, secret.bytes, "base_nonce", context,
                       out->nonce.bytes);
}

bool FitsInt(size_t n) {
  return n <= static_cast<size_t>(std::numeric_limits<int>::max());
}

// Seal of section 5.2 at sequence number 0, so the nonce is base_nonce
// itself. `out` has room for plaintext.size() + kTagSize bytes.
bool AeadSeal(const AeadKey& k, Bytes aad, Bytes plaintext, uint8_t* out) {
  if (!FitsInt(aad.size()) || !FitsInt(plaintext.size())) return false;
  Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  // AES-GCM's default IV length is 12 bytes, which is Nn.
  return ctx &&
         EVP_EncryptInit_ex2(ctx.get(), EVP_aes_128_gcm(), k.key.bytes.data(),
                             k.nonce.bytes.data(), nullptr) == 1 &&
         (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &n, aad.data(),
                                           static_cast<int>(aad.size())) == 1) &&
         (plaintext.empty() ||
          EVP_EncryptUpdate(ctx.get(), out, &n, plaintext.data(),
                            static_cast<int>(plaintext.size())) == 1) &&
         EVP_EncryptFinal_ex(ctx.get(), out + plaintext.size(), &n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kTagSize,
                             out + plaintext.size()) == 1;
}

// Open of section 5.2 at sequence number 0. `ciphertext` holds at least
// kTagSize bytes; `out` has room for the rest. False if the tag is wrong.
bool AeadOpen(const AeadKey& k, Bytes aad, Bytes ciphertext, uint8_t* out) {
  const size_t body = ciphertext.size() - kTagSize;
  if (!FitsInt(aad.size()) || !FitsInt(body)) return false;
  std::array<uint8_t, kTagSize> tag;
  std::copy(ciphertext.begin() + body, ciphertext.end(), tag.begin());
  Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  return ctx &&
         EVP_DecryptInit_ex2(ctx.get(), EVP_aes_128_gcm(), k.key.bytes.data(),
                             k.nonce.bytes.data(), nullptr) == 1 &&
         (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &n, aad.data(),
                                           static_cast<int>(aad.size())) == 1) &&
         (body == 0 || EVP_DecryptUpdate(ctx.get(), out, &n, ciphertext.data(),
                                         static_cast<int>(body)) == 1) &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kTagSize,
                             tag.data()) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), out + body, &n) == 1;
}

// A P-256 key pair from the scalar `sk` (0 < sk < order). OpenSSL 3.0 does
// not compute the public point on import, so it is computed here.
KeyPtr KeyFromScalar(const EC_GROUP* group, const BIGNUM* sk) {
  Ptr<EC_POINT> pub(EC_POINT_new(group));
  Ptr<BN_CTX> bn_ctx(BN_CTX_secure_new());
  std::array<uint8_t, kPublicKeySize> point;
  if (!pub || !bn_ctx ||
      EC_POINT_mul(group, pub.get(), sk, nullptr, nullptr, bn_ctx.get()) != 1 ||
      EC_POINT_point2oct(group, pub.get(), POINT_CONVERSION_UNCOMPRESSED,
                         point.data(), point.size(), bn_ctx.get()) != point.size()) {
    return nullptr;
  }
  // `sk` is a secure BIGNUM, so the builder puts it in the secure part of
  // the parameter block, which OSSL_PARAM_free clears.
  Ptr<OSSL_PARAM_BLD> builder(OSSL_PARAM_BLD_new());
  if (!builder ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                      SN_X9_62_prime256v1, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                       point.data(), point.size()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_PRIV_KEY, sk) != 1) {
    return nullptr;
  }
  Ptr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(builder.get()));
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    return nullptr;
  }
  return KeyPtr(raw);
}

}  // namespace

// DeserializePublicKey (section 7.1.1) with the validation of section
// 7.1.4. OpenSSL would also take the compressed and hybrid SEC1 forms, which
// HPKE does not allow, so the form is checked here first.
KeyPtr PublicKeyFromPoint(std::span<const uint8_t> point) {
  if (point.size() != kPublicKeySize || point[0] != 0x04) return nullptr;
  EVP_PKEY* parameters = P256Parameters();
  KeyPtr key(EVP_PKEY_new());
  if (parameters == nullptr || !key ||
      EVP_PKEY_copy_parameters(key.get(), parameters) != 1 ||
      EVP_PKEY_set1_encoded_public_key(key.get(), point.data(), point.size()) != 1) {
    return nullptr;
  }
  // Decoding already refused points off the curve; the explicit check also
  // covers the point at infinity, whatever the import does. The quick check
  // leaves out only the multiplication by the group order, which proves
  // nothing on P-256: its cofactor is 1, so every point on the curve other
  // than infinity is in the prime-order group (and that multiplication was
  // a quarter of the CAS's time per relayed attestation).
  Ptr<EVP_PKEY_CTX> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) return nullptr;
  return key;
}

const char* ErrorText(Error error) {
  switch (error) {
    case Error::kNone:
      return "no error";
    case Error::kBadPublicKey:
      return "the recipient public key is not an uncompressed P-256 point";
    case Error::kBadEnc:
      return "the encapsulated key is not an uncompressed P-256 point";
    case Error::kOpenFailed:
      return "the ciphertext did not authenticate";
    case Error::kInternal:
      return "internal cryptographic error";
  }
  return "unknown error";
}

bool PublicPoint(EVP_PKEY* key, std::array<uint8_t, kPublicKeySize>* out) {
  if (key == nullptr || out == nullptr || !IsP256(key)) return false;
  ErrorMark mark;
  std::array<uint8_t, kPublicKeySize> raw;
  size_t length = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, raw.data(),
                                      raw.size(), &length) != 1) {
    return false;
  }
  // Keys made by OpenSSL export the uncompressed form, which is used as is.
  if (length == raw.size() && raw[0] == 0x04) {
    *out = raw;
    return true;
  }
  // A key may have been set to export another point format; decoding and
  // re-encoding always yields the uncompressed form.
  Ptr<EC_GROUP> group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  Ptr<EC_POINT> point(group ? EC_POINT_new(group.get()) : nullptr);
  return point &&
         EC_POINT_oct2point(group.get(), point.get(), raw.data(), length,
                            nullptr) == 1 &&
         EC_POINT_point2oct(group.get(), point.get(), POINT_CONVERSION_UNCOMPRESSED,
                            out->data(), out->size(), nullptr) == out->size();
}

KeyPtr DeriveKeyPair(std::span<const uint8_t> ikm) {
  // Section 7.1.3 asks for at least Nsk bytes of entropy in ikm.
  if (ikm.size() < kPrivateKeySize) return nullptr;
  ErrorMark mark;
  Ptr<EC_GROUP> group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  Ptr<BIGNUM> sk(BN_secure_new());
  Secret<kHashSize> dkp_prk;
  if (!group || !sk ||
      !LabeledExtract(kKemSuite, {}, "dkp_prk", ikm, dkp_prk.bytes)) {
    return nullptr;
  }
  BN_set_flags(sk.get(), BN_FLG_CONSTTIME);
  const BIGNUM* order = EC_GROUP_get0_order(group.get());
  // Rejection sampling: draw candidates until one is a valid scalar,
  // 0 < sk < order, giving up after 256 (the counter is one byte).
  for (int counter = 0; counter <= 255; ++counter) {
    const uint8_t counter_byte = static_cast<uint8_t>(counter);
    Secret<kPrivateKeySize> candidate;
    if (!LabeledExpand(kKemSuite, dkp_prk.bytes, "candidate",
                       Bytes(&counter_byte, 1), candidate.bytes)) {
      return nullptr;
    }
    candidate.bytes[0] &= kP256Bitmask;
    if (BN_bin2bn(candidate.bytes.data(), candidate.bytes.size(), sk.get()) == nullptr) {
      return nullptr;
    }
    if (!BN_is_zero(sk.get()) && BN_cmp(sk.get(), order) < 0) {
      return KeyFromScalar(group.get(), sk.get());
    }
  }
  return nullptr;
}

Error SealWithEphemeral(EVP_PKEY* ephemeral, std::span<const uint8_t> recipient_public,
                        std::span<const uint8_t> info, std::span<const uint8_t> aad,
                        std::span<const uint8_t> plaintext, std::vector<uint8_t>* enc,
                        std::vector<uint8_t>* ciphertext) {
  if (enc == nullptr || ciphertext == nullptr) return Error::kInternal;
  enc->clear();
  ciphertext->clear();
  ErrorMark mark;
  KeyPtr recipient = PublicKeyFromPoint(recipient_public);
  if (!recipient) return Error::kBadPublicKey;
  // enc = SerializePublicKey(pkE), section 4.1 Encap.
  std::array<uint8_t, kEncSize> pk_e;
  if (ephemeral == nullptr || !PublicPoint(ephemeral, &pk_e)) return Error::kInternal;
  Secret<kSharedSize> shared;
  AeadKey key;
  std::vector<uint8_t> sealed(plaintext.size() + kTagSize);
  if (!KemSharedSecret(ephemeral, recipient.get(), pk_e, recipient_public, &shared) ||
      !KeySchedule(shared, info, &key) ||
      !AeadSeal(key, aad, plaintext, sealed.data())) {
    return Error::kInternal;
  }
  enc->assign(pk_e.begin(), pk_e.end());
  *ciphertext = std::move(sealed);
  return Error::kNone;
}

Error Seal(std::span<const uint8_t> recipient_public, std::span<const uint8_t> info,
           std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
           std::vector<uint8_t>* enc, std::vector<uint8_t>* ciphertext) {
  ErrorMark mark;
  // GenerateKeyPair (section 4.1): a fresh ephemeral key from OpenSSL's DRBG,
  // freed (and its scalar cleared) when this function returns.
  KeyPtr ephemeral = GenerateP256Key();
  if (!ephemeral) {
    if (enc != nullptr) enc->clear();
    if (ciphertext != nullptr) ciphertext->clear();
    return Error::kInternal;
  }
  return SealWithEphemeral(ephemeral.get(), recipient_public, info, aad, plaintext,
                           enc, ciphertext);
}

Error Open(EVP_PKEY* recipient_private, std::span<const uint8_t> enc,
           std::span<const uint8_t> info, std::span<const uint8_t> aad,
           std::span<const uint8_t> ciphertext, std::vector<uint8_t>* plaintext) {
  if (plaintext == nullptr) return Error::kInternal;
  Wipe(plaintext);
  ErrorMark mark;
  // pkRm enters kem_context (section 4.1 Decap).
  std::array<uint8_t, kPublicKeySize> pk_rm;
  if (recipient_private == nullptr || !PublicPoint(recipient_private, &pk_rm)) {
    return Error::kInternal;
  }
  KeyPtr sender = PublicKeyFromPoint(enc);
  if (!sender) return Error::kBadEnc;
  if (ciphertext.size() < kTagSize) return Error::kOpenFailed;
  Secret<kSharedSize> shared;
  AeadKey key;
  if (!KemSharedSecret(recipient_private, sender.get(), enc, pk_rm, &shared) ||
      !KeySchedule(shared, info, &key)) {
    return Error::kInternal;
  }
  plaintext->resize(ciphertext.size() - kTagSize);
  if (!AeadOpen(key, aad, ciphertext, plaintext->data())) {
    Wipe(plaintext);
    return Error::kOpenFailed;
  }
  return Error::kNone;
}

}  // namespace cloister::hpke
