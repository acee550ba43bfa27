#include "attest/tpm_quote.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "attest/test_swtpm.h"
#include "attest/test_vectors.h"
#include "crypto/crypto.h"

extern char** environ;

namespace cloister::attest {
namespace {

// What MANIFEST.md and tpm2_checkquote say about the vector quote.
constexpr char kVectorPcrDigest[] = "281dd12a8bd81c3e4aa550df9f7e1f9c74724631ea0720c446f27e9a18366e60";
constexpr char kVectorPcr16[] = "e43c833be76772e22820ee39d86b91c969044247ccbb30319bb4fda2d1e90c48";
const std::string kZeros32(64, '0');

// ---- small helpers ----

Bytes Hex(std::string_view s) {
  auto b = HexDecode(s);
  EXPECT_TRUE(b.has_value()) << s;
  return b.value_or(Bytes{});
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

void Be16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Be32(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}
void Be64(Bytes& b, uint64_t v) {
  Be32(b, static_cast<uint32_t>(v >> 32));
  Be32(b, static_cast<uint32_t>(v));
}
void Tpm2b(Bytes& b, std::span<const uint8_t> data) {
  Be16(b, static_cast<uint16_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
}
Bytes WithSize(const Bytes& body) {
  Bytes b;
  Tpm2b(b, body);
  return b;
}

void ExpectRefused(const Status& s, StatusCode code, std::string_view words) {
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_EQ(s.message().rfind("tpm: ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find(words), std::string::npos) << "\"" << s.message() << "\" lacks \"" << words << "\"";
}

template <typename T>
void ExpectRefused(const StatusOr<T>& s, StatusCode code, std::string_view words) {
  ASSERT_FALSE(s.ok()) << "accepted; expected a refusal naming \"" << words << "\"";
  ExpectRefused(s.status(), code, words);
}

// ---- keys and signatures, straight through OpenSSL ----

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;
using Key = Ptr<EVP_PKEY>;

Key NewEc(const char* curve) { return Key(EVP_EC_gen(curve)); }

// One RSA-2048 key for every RSA case (generating one takes a while).
EVP_PKEY* SharedRsaKey() {
  static Key key(EVP_RSA_gen(2048));
  return key.get();
}

Bytes Spki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  EXPECT_GT(n, 0);
  if (n <= 0) return {};
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

std::unique_ptr<crypto::PublicKey> PublicOf(EVP_PKEY* key) {
  auto k = crypto::PublicKey::FromSpki(Spki(key));
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return k.ok() ? std::move(*k) : nullptr;
}

Bytes Digest(const EVP_MD* md, std::span<const uint8_t> data) {
  Bytes out(EVP_MD_get_size(md));
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr), 1);
  return out;
}

// padding: 0 ECDSA (DER out), RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING.
Bytes Sign(EVP_PKEY* key, const EVP_MD* md, std::span<const uint8_t> data, int padding = 0,
           int salt = RSA_PSS_SALTLEN_DIGEST) {
  Ptr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key), 1);
  if (padding != 0) {
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, padding), 1);
    if (padding == RSA_PKCS1_PSS_PADDING) {
      EXPECT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt), 1);
    }
  }
  size_t len = 0;
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()), 1);
  Bytes sig(len);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()), 1);
  sig.resize(len);
  return sig;
}

// r and s of a DER ECDSA signature, minimal (no leading zeros) or padded.
std::pair<Bytes, Bytes> RawRs(const Bytes& der, size_t pad_to = 0) {
  const unsigned char* p = der.data();
  Ptr<ECDSA_SIG> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  EXPECT_TRUE(sig != nullptr);
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  auto out = [&](const BIGNUM* v) {
    size_t n = pad_to != 0 ? pad_to : static_cast<size_t>(BN_num_bytes(v));
    Bytes b(n);
    BN_bn2binpad(v, b.data(), static_cast<int>(n));
    return b;
  };
  return {out(r), out(s)};
}

Bytes EcdsaTpmt(uint16_t hash, const Bytes& r, const Bytes& s) {
  Bytes b;
  Be16(b, kTpmAlgEcdsa);
  Be16(b, hash);
  Tpm2b(b, r);
  Tpm2b(b, s);
  return b;
}

Bytes RsaTpmt(uint16_t alg, uint16_t hash, const Bytes& sig) {
  Bytes b;
  Be16(b, alg);
  Be16(b, hash);
  Tpm2b(b, sig);
  return b;
}

Bytes BnParam(EVP_PKEY* key, const char* name, size_t pad_to = 0) {
  BIGNUM* raw = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, name, &raw), 1) << name;
  Ptr<BIGNUM> bn(raw);
  size_t n = pad_to != 0 ? pad_to : static_cast<size_t>(BN_num_bytes(raw));
  Bytes b(n);
  BN_bn2binpad(raw, b.data(), static_cast<int>(n));
  return b;
}

// ---- TPM structures, marshalled by hand as Part 2 lays them out ----

struct AreaParams {
  uint32_t attributes = 0;
  uint16_t name_alg = kTpmAlgSha256;
  Bytes auth_policy;
  bool aes128_cfb = false;
  uint16_t scheme = kTpmAlgNull;
  uint16_t scheme_hash = 0;
};

// tpm2_createak's defaults: a restricted ECDSA/RSASSA signing key with
// SHA-256, user auth, no policy.
AreaParams AkParams(uint16_t scheme) {
  return {kTpmaFixedTpm | kTpmaFixedParent | kTpmaSensitiveDataOrigin | kTpmaUserWithAuth | kTpmaRestricted |
              kTpmaSign,
          kTpmAlgSha256, {}, false, scheme, kTpmAlgSha256};
}

// The TCG EK Credential Profile's default (L-1) templates: restricted
// decryption key, AES-128-CFB, policy PolicySecret(TPM_RH_ENDORSEMENT).
AreaParams EkParams() {
  return {kTpmaFixedTpm | kTpmaFixedParent | kTpmaSensitiveDataOrigin | kTpmaAdminWithPolicy | kTpmaRestricted |
              kTpmaDecrypt,
          kTpmAlgSha256, Hex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"), true,
          kTpmAlgNull, 0};
}

void Head(Bytes& b, uint16_t type, const AreaParams& p) {
  Be16(b, type);
  Be16(b, p.name_alg);
  Be32(b, p.attributes);
  Tpm2b(b, p.auth_policy);
  if (p.aes128_cfb) {
    Be16(b, kTpmAlgAes);
    Be16(b, 128);
    Be16(b, kTpmAlgCfb);
  } else {
    Be16(b, kTpmAlgNull);
  }
  Be16(b, p.scheme);
  if (p.scheme != kTpmAlgNull) Be16(b, p.scheme_hash);
}

// TPMT_PUBLIC of an EC key.
Bytes EccArea(EVP_PKEY* key, const AreaParams& p) {
  size_t size = EVP_PKEY_get_bits(key) == 384 ? 48 : 32;
  Bytes b;
  Head(b, kTpmAlgEcc, p);
  Be16(b, size == 48 ? kTpmEccNistP384 : kTpmEccNistP256);
  Be16(b, kTpmAlgNull);  // kdf
  Tpm2b(b, BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, size));
  Tpm2b(b, BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, size));
  return b;
}

// TPMT_PUBLIC of an RSA key (exponent 65537 written as 0, as TPMs do).
Bytes RsaArea(EVP_PKEY* key, const AreaParams& p) {
  Bytes b;
  Head(b, kTpmAlgRsa, p);
  Be16(b, static_cast<uint16_t>(EVP_PKEY_get_bits(key)));
  Be32(b, 0);
  Tpm2b(b, BnParam(key, OSSL_PKEY_PARAM_RSA_N));
  return b;
}

Bytes NameOf(const Bytes& tpmt) {
  Bytes n;
  Be16(n, kTpmAlgSha256);
  Bytes d = Digest(EVP_sha256(), tpmt);
  n.insert(n.end(), d.begin(), d.end());
  return n;
}

struct Attest {
  uint32_t magic = kTpmGeneratedValue;
  uint16_t type = kTpmStAttestQuote;
  Bytes signer = Hex("000b" + std::string(64, 'a'));
  Bytes nonce = Bytes{1, 2, 3, 4, 5, 6, 7, 8};
  uint64_t clock = 123456;
  uint32_t reset_count = 3, restart_count = 1;
  uint8_t safe = 1;
  uint64_t firmware = 0x0001000200030004;
  std::vector<std::pair<uint16_t, std::vector<uint32_t>>> selection;
  Bytes digest;
};

Bytes Marshal(const Attest& a) {
  Bytes b;
  Be32(b, a.magic);
  Be16(b, a.type);
  Tpm2b(b, a.signer);
  Tpm2b(b, a.nonce);
  Be64(b, a.clock);
  Be32(b, a.reset_count);
  Be32(b, a.restart_count);
  b.push_back(a.safe);
  Be64(b, a.firmware);
  Be32(b, static_cast<uint32_t>(a.selection.size()));
  for (const auto& [hash, pcrs] : a.selection) {
    Be16(b, hash);
    b.push_back(3);
    uint8_t bitmap[3] = {};
    for (uint32_t p : pcrs) bitmap[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
    b.insert(b.end(), bitmap, bitmap + 3);
  }
  Tpm2b(b, a.digest);
  return b;
}

Bytes Filled(size_t n, uint8_t v) { return Bytes(n, v); }

// A synthetic quote over sha256 PCRs 0 and 7 (and whatever the caller
// adds), with the pcrDigest the TPM would compute with `md`.
struct Synthetic {
  Attest attest;
  TpmPcrValues pcrs;
};

Synthetic MakeSynthetic(const EVP_MD* md = EVP_sha256()) {
  Synthetic s;
  s.pcrs.sha256[0] = Filled(32, 0x10);
  s.pcrs.sha256[7] = Filled(32, 0x17);
  s.attest.selection = {{kTpmAlgSha256, {0, 7}}};
  Bytes cat = s.pcrs.sha256[0];
  cat.insert(cat.end(), s.pcrs.sha256[7].begin(), s.pcrs.sha256[7].end());
  s.attest.digest = Digest(md, cat);
  return s;
}

// ---- the vector quote ----

struct Vector {
  std::unique_ptr<crypto::PublicKey> ak;
  TpmQuoteInput in;
};

Vector LoadVector(bool second = false) {
  Vector v;
  Bytes pem = testing::ReadVector("tpm/ak.pem");
  auto ak = crypto::PublicKey::FromSpki(pem);
  EXPECT_TRUE(ak.ok()) << ak.status().ToString();
  if (ak.ok()) v.ak = std::move(*ak);
  v.in.ak_key = v.ak.get();
  v.in.attest = testing::ReadVector(second ? "tpm/quote2.msg" : "tpm/quote.msg");
  if (second) {
    v.in.signature = testing::ReadVector("tpm/quote2.sig.der");
    v.in.signature_format = TpmSignatureFormat::kEcdsaDer;
  } else {
    v.in.signature = testing::ReadVector("tpm/quote.sig.tss");
  }
  auto pcrs = ParseTpm2ToolsPcrsFile(testing::ReadVector(second ? "tpm/quote2.pcrs" : "tpm/quote.pcrs"));
  EXPECT_TRUE(pcrs.ok()) << pcrs.status().ToString();
  if (pcrs.ok()) v.in.pcrs = *pcrs;
  v.in.nonce = Hex(Trim(testing::ReadVectorText("tpm/nonce.hex")));
  return v;
}

// The AK's public area as tpm2_createak made it (ECC P-256, default
// template), rebuilt from ak.pem: the vectors carry only the PEM and the
// Name, and the Name says whether the rebuild is exact.
Bytes VectorAkPublic() {
  Bytes pem = testing::ReadVector("tpm/ak.pem");
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Key key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_TRUE(key != nullptr);
  if (!key) return {};
  return WithSize(EccArea(key.get(), AkParams(kTpmAlgEcdsa)));
}

TEST(TpmQuoteTest, VectorQuoteVerifies) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector();
  auto verdict = VerifyTpmQuote(v.in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_EQ(verdict->type, "tpm");
  EXPECT_EQ(verdict->tcb_status, TcbStatus::kNotEvaluated);
  EXPECT_FALSE(verdict->debug);
  EXPECT_TRUE(verdict->warnings.empty());
  EXPECT_EQ(verdict->checks.size(), 5u);
  auto claim = [&](const char* name) {
    const std::string* c = verdict->Find(name);
    return c == nullptr ? std::string("<none>") : *c;
  };
  EXPECT_EQ(claim("pcr_digest"), kVectorPcrDigest);
  EXPECT_EQ(claim("pcr16"), kVectorPcr16);
  EXPECT_EQ(claim("pcr0"), kZeros32);
  EXPECT_EQ(claim("pcr1"), kZeros32);
  EXPECT_EQ(claim("pcr2"), "<none>");
  EXPECT_EQ(claim("nonce"), HexEncode(AsBytes("nonce-0123456789abcdef")));
  EXPECT_EQ(claim("clock"), "9009");
  EXPECT_EQ(claim("reset_count"), "1");
  EXPECT_EQ(claim("restart_count"), "0");
  EXPECT_EQ(claim("firmware"), std::to_string(0x2019102300163636ull));
  EXPECT_EQ(claim("ak"), HexEncode(crypto::Sha256(v.ak->SpkiDer())));
}

TEST(TpmQuoteTest, VectorQuote2WithDerSignatureVerifies) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector(/*second=*/true);
  auto verdict = VerifyTpmQuote(v.in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_EQ(*verdict->Find("pcr_digest"), kVectorPcrDigest);
  EXPECT_EQ(*verdict->Find("clock"), std::to_string(0x2351));
  // The DER bytes are no TPMT_SIGNATURE, and the other quote's signature
  // does not carry this one.
  v.in.signature_format = TpmSignatureFormat::kTpmt;
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "signature algorithm 0x3046 is not supported");
  v.in.signature = testing::ReadVector("tpm/quote.sig.tss");
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "does not verify with the AK");
}

TEST(TpmQuoteTest, VectorPcrsFileHoldsThePcrreadValues) {
  CLOISTER_REQUIRE_VECTORS();
  auto pcrs = ParseTpm2ToolsPcrsFile(testing::ReadVector("tpm/quote.pcrs"));
  ASSERT_TRUE(pcrs.ok()) << pcrs.status().ToString();
  EXPECT_TRUE(pcrs->sha384.empty());
  // pcrread.yaml: "    16: 0xE43C..." per PCR of the sha256 bank.
  std::istringstream yaml(testing::ReadVectorText("tpm/pcrread.yaml"));
  std::map<uint32_t, Bytes> expected;
  for (std::string line; std::getline(yaml, line);) {
    size_t colon = line.find(':'), x = line.find("0x");
    if (x == std::string::npos || line.find("sha256") != std::string::npos) continue;
    std::string hex = Trim(line.substr(x + 2));
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    expected[static_cast<uint32_t>(std::stoul(line.substr(0, colon)))] = Hex(hex);
  }
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(pcrs->sha256, expected);
  EXPECT_EQ(HexEncode(pcrs->sha256.at(16)), kVectorPcr16);
}

TEST(TpmQuoteTest, MalformedPcrsFileIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  const Bytes file = testing::ReadVector("tpm/quote.pcrs");
  ASSERT_EQ(file.size(), 668u);
  ExpectRefused(ParseTpm2ToolsPcrsFile(Bytes(file.begin(), file.end() - 1)), StatusCode::kIntegrity, "668");
  Bytes longer = file;
  longer.push_back(0);
  ExpectRefused(ParseTpm2ToolsPcrsFile(longer), StatusCode::kIntegrity, "is 669 bytes");
  Bytes banks = file;
  banks[0] = 17;
  ExpectRefused(ParseTpm2ToolsPcrsFile(banks), StatusCode::kIntegrity, "17 banks");
  Bytes fewer = file;
  fewer[136] = 2;  // the list's digest count
  ExpectRefused(ParseTpm2ToolsPcrsFile(fewer), StatusCode::kIntegrity, "fewer values");
  Bytes short_digest = file;
  short_digest[140] = 31;  // the first digest's size
  ExpectRefused(ParseTpm2ToolsPcrsFile(short_digest), StatusCode::kIntegrity, "31-byte value");
  Bytes sha1 = file;
  sha1[4] = 0x04;
  ExpectRefused(ParseTpm2ToolsPcrsFile(sha1), StatusCode::kIntegrity, "bank sha1");
  ExpectRefused(ParseTpm2ToolsPcrsFile({}), StatusCode::kIntegrity, "too short");
}

TEST(TpmQuoteTest, VectorAkNameMatchesItsPublicArea) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes area = VectorAkPublic();
  auto ak = ParseTpmPublic(area);
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  EXPECT_EQ(HexEncode(ak->name), HexEncode(testing::ReadVector("tpm/ak.name")));
  EXPECT_EQ(ak->type, kTpmAlgEcc);
  EXPECT_EQ(ak->ecc_curve, kTpmEccNistP256);
  EXPECT_EQ(ak->scheme, kTpmAlgEcdsa);
  EXPECT_EQ(ak->scheme_hash, kTpmAlgSha256);
  EXPECT_EQ(ak->object_attributes, 0x00050072u);
  EXPECT_TRUE(CheckAkAttributes(*ak).ok());
  Vector v = LoadVector();
  EXPECT_EQ(ak->key->SpkiDer(), v.ak->SpkiDer());

  // The quote verifies with the AK given as its public area too, and the
  // verdict says the area was checked.
  v.in.ak_key = nullptr;
  v.in.ak_public = area;
  auto verdict = VerifyTpmQuote(v.in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_EQ(verdict->checks.size(), 6u);
  EXPECT_NE(verdict->checks[1].find(HexEncode(ak->name)), std::string::npos) << verdict->checks[1];
}

TEST(TpmQuoteTest, VectorEkPublicParses) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes file = testing::ReadVector("tpm/ek.pub");
  auto ek = ParseTpmPublic(file);
  ASSERT_TRUE(ek.ok()) << ek.status().ToString();
  EXPECT_EQ(ek->type, kTpmAlgEcc);
  EXPECT_EQ(ek->name_alg, kTpmAlgSha256);
  EXPECT_EQ(ek->object_attributes, 0x000300b2u);
  EXPECT_EQ(ek->symmetric_alg, kTpmAlgAes);
  EXPECT_EQ(ek->symmetric_bits, 128);
  EXPECT_EQ(ek->symmetric_mode, kTpmAlgCfb);
  EXPECT_EQ(ek->scheme, kTpmAlgNull);
  EXPECT_EQ(ek->ecc_curve, kTpmEccNistP256);
  EXPECT_EQ(ek->ecc_kdf, kTpmAlgNull);
  EXPECT_EQ(HexEncode(ek->auth_policy), "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
  EXPECT_EQ(ek->key->Describe(), "EC P-256");
  EXPECT_EQ(ek->name, NameOf(Bytes(file.begin() + 2, file.end())));
  EXPECT_EQ(ek->tpmt_public, Bytes(file.begin() + 2, file.end()));
  // The bare TPMT_PUBLIC parses the same.
  auto bare = ParseTpmtPublic(ek->tpmt_public);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->name, ek->name);
  // An EK is no AK.
  ExpectRefused(CheckAkAttributes(*ek), StatusCode::kIntegrity, "missing sign");
}

// ---- negatives on the vector ----

TEST(TpmQuoteTest, WrongNonceIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector();
  v.in.nonce.back() ^= 1;
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "extraData is not the expected nonce");
  v.in.nonce.pop_back();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "extraData is not the expected nonce");
  v.in.nonce.clear();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kInvalidArgument, "nonce");
}

TEST(TpmQuoteTest, ChangedPcrValueIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector();
  v.in.pcrs.sha256[16][5] ^= 0x40;
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "pcrDigest does not match the supplied PCR values");
  v = LoadVector();
  v.in.pcrs.sha256[1].pop_back();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "sha256 PCR 1 value is 31 bytes, not 32");
}

TEST(TpmQuoteTest, MissingOrExtraPcrIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector();
  v.in.pcrs.sha256.erase(16);
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "selects sha256 PCR 16, whose value was not supplied");
  v = LoadVector();
  v.in.pcrs.sha256[2] = Bytes(32, 0);
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity,
                "sha256 PCR 2 was supplied but the quote does not select it");
  v = LoadVector();
  v.in.pcrs.sha384[0] = Bytes(48, 0);
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity,
                "sha384 PCR 0 was supplied but the quote does not select it");
}

TEST(TpmQuoteTest, AlteredSignatureIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  const Vector base = LoadVector();
  for (size_t at : {size_t{8}, size_t{40}, base.in.signature.size() - 1}) {  // in r, in s, s's last byte
    Vector v = LoadVector();
    v.in.signature[at] ^= 0x01;
    ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "the quote signature does not verify with the AK");
  }
  Vector v = LoadVector();
  v.in.signature.push_back(0);
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "TPMT_SIGNATURE has 1 trailing bytes");
  v = LoadVector();
  v.in.signature[5] = 0x43;  // r's size: 67, beyond any curve
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "signatureR size 67");
  v = LoadVector();
  v.in.signature.resize(20);
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "runs past the end");
}

TEST(TpmQuoteTest, AlteredAttestIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  const Vector base = LoadVector();
  auto with = [&](auto change) {
    Vector v = LoadVector();
    change(v.in.attest);
    return VerifyTpmQuote(v.in);
  };
  ExpectRefused(with([](Bytes& a) { a[0] = 0xfe; }), StatusCode::kIntegrity,
                "TPMS_ATTEST magic is 0xfe544347, not TPM_GENERATED_VALUE");
  ExpectRefused(with([](Bytes& a) { a[5] = 0x17; }), StatusCode::kIntegrity,
                "TPMS_ATTEST type is 0x8017, not TPM_ST_ATTEST_QUOTE");
  // extraData's size (offset 42): beyond the maximum, and one short (the
  // rest then no longer lines up).
  ExpectRefused(with([](Bytes& a) { a[43] = 0x43; }), StatusCode::kIntegrity, "extraData size 67 at offset 42 exceeds");
  ExpectRefused(with([](Bytes& a) { a[43] = 0x15; }), StatusCode::kIntegrity, "TPMS_ATTEST");
  // pcrDigest's size (offset 101): one too long runs past the end, one too
  // short leaves a trailing byte.
  ExpectRefused(with([](Bytes& a) { a[102] = 0x21; }), StatusCode::kIntegrity,
                "pcrDigest size 33 at offset 101 runs past the end");
  ExpectRefused(with([](Bytes& a) { a[102] = 0x1f; }), StatusCode::kIntegrity, "TPMS_ATTEST has 1 trailing bytes");
  ExpectRefused(with([](Bytes& a) { a.push_back(0); }), StatusCode::kIntegrity, "TPMS_ATTEST has 1 trailing bytes");
  // The selection: count at 91, hash at 95, sizeofSelect at 97.
  ExpectRefused(with([](Bytes& a) { a[94] = 17; }), StatusCode::kIntegrity, "PCR selection count 17 exceeds 16");
  ExpectRefused(with([](Bytes& a) { a[97] = 5; }), StatusCode::kIntegrity, "sizeofSelect 5 exceeds 4");
  // A well-formed change (the clock) leaves the signature behind.
  ExpectRefused(with([](Bytes& a) { a[71] ^= 1; }), StatusCode::kIntegrity, "the quote signature does not verify");

  // Every prefix, and every single changed byte, is refused.
  for (size_t n = 0; n < base.in.attest.size(); ++n) {
    Vector v = LoadVector();
    v.in.attest.resize(n);
    ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "TPMS_ATTEST");
  }
  for (size_t i = 0; i < base.in.attest.size(); ++i) {
    TpmQuoteInput in = base.in;
    in.attest[i] ^= 0x01;
    auto got = VerifyTpmQuote(in);
    ASSERT_FALSE(got.ok()) << "a flip of byte " << i << " was accepted";
    EXPECT_EQ(got.status().code(), StatusCode::kIntegrity) << i;
  }
}

TEST(TpmQuoteTest, WrongAkIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector();
  Key other = NewEc("P-256");
  auto other_pub = PublicOf(other.get());
  v.in.ak_key = other_pub.get();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "the quote signature does not verify with the AK");
  auto rsa = PublicOf(SharedRsaKey());
  v.in.ak_key = rsa.get();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "the signature is ECDSA but the AK is RSA");
  // The AK as a key and as a public area at once, or neither, is a caller error.
  v.in.ak_public = VectorAkPublic();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kInvalidArgument, "AK");
  v.in.ak_key = nullptr;
  v.in.ak_public.clear();
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kInvalidArgument, "AK");
}

TEST(TpmQuoteTest, UnsupportedHashOrAlgorithmIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Vector v = LoadVector();
  v.in.signature[3] = 0x04;  // SHA-1
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "signature hash sha1 is not supported");
  v = LoadVector();
  v.in.signature[1] = 0x1a;  // ECDAA
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "signature algorithm 0x001a is not supported");
  v = LoadVector();
  v.in.signature[3] = 0x0c;  // SHA-384 named, SHA-256 used
  ExpectRefused(VerifyTpmQuote(v.in), StatusCode::kIntegrity, "does not verify");
}

// ---- synthetic quotes from keys made here ----

TEST(TpmQuoteTest, ShortEcdsaRAndSVerify) {
  Key key = NewEc("P-256");
  auto pub = PublicOf(key.get());
  Synthetic s = MakeSynthetic();
  Bytes attest = Marshal(s.attest);
  // About one signature in 128 has an r or s with a leading zero byte,
  // which a TPM leaves out.
  Bytes der;
  for (int i = 0; i < 5000; ++i) {
    der = Sign(key.get(), EVP_sha256(), attest);
    auto [r, s2] = RawRs(der);
    if (r.size() < 32 || s2.size() < 32) break;
  }
  auto [r, s2] = RawRs(der);
  ASSERT_TRUE(r.size() < 32 || s2.size() < 32);
  TpmQuoteInput in;
  in.ak_key = pub.get();
  in.attest = attest;
  in.pcrs = s.pcrs;
  in.nonce = s.attest.nonce;
  in.signature = EcdsaTpmt(kTpmAlgSha256, r, s2);
  auto verdict = VerifyTpmQuote(in);
  EXPECT_TRUE(verdict.ok()) << verdict.status().ToString();
  // Padded to the curve size, and padded beyond it, the same values verify.
  auto [pr, ps] = RawRs(der, 32);
  in.signature = EcdsaTpmt(kTpmAlgSha256, pr, ps);
  EXPECT_TRUE(VerifyTpmQuote(in).ok());
  auto [lr, ls] = RawRs(der, 33);
  in.signature = EcdsaTpmt(kTpmAlgSha256, lr, ls);
  EXPECT_TRUE(VerifyTpmQuote(in).ok());
}

TEST(TpmQuoteTest, P384AkWithSha384OverTwoBanksVerifies) {
  Key key = NewEc("P-384");
  auto pub = PublicOf(key.get());
  Synthetic s;
  s.pcrs.sha256[4] = Filled(32, 0x44);
  s.pcrs.sha256[9] = Filled(32, 0x49);
  s.pcrs.sha384[4] = Filled(48, 0x84);
  s.attest.selection = {{kTpmAlgSha384, {4}}, {kTpmAlgSha256, {4, 9}}};
  // Selection order: the sha384 bank first, as selected, then sha256.
  Bytes cat = s.pcrs.sha384[4];
  for (uint32_t p : {4u, 9u}) cat.insert(cat.end(), s.pcrs.sha256[p].begin(), s.pcrs.sha256[p].end());
  s.attest.digest = Digest(EVP_sha384(), cat);
  Bytes attest = Marshal(s.attest);
  auto [r, sv] = RawRs(Sign(key.get(), EVP_sha384(), attest));
  TpmQuoteInput in;
  in.ak_key = pub.get();
  in.attest = attest;
  in.signature = EcdsaTpmt(kTpmAlgSha384, r, sv);
  in.pcrs = s.pcrs;
  in.nonce = s.attest.nonce;
  auto verdict = VerifyTpmQuote(in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_EQ(*verdict->Find("pcr4_sha384"), HexEncode(s.pcrs.sha384[4]));
  EXPECT_EQ(*verdict->Find("pcr9"), HexEncode(s.pcrs.sha256[9]));
  EXPECT_NE(verdict->checks[3].find("sha384: 4; sha256: 4,9"), std::string::npos) << verdict->checks[3];

  // The same values hashed bank by bank in the other order do not match.
  Bytes swapped;
  for (uint32_t p : {4u, 9u}) swapped.insert(swapped.end(), s.pcrs.sha256[p].begin(), s.pcrs.sha256[p].end());
  swapped.insert(swapped.end(), s.pcrs.sha384[4].begin(), s.pcrs.sha384[4].end());
  s.attest.digest = Digest(EVP_sha384(), swapped);
  in.attest = Marshal(s.attest);
  auto [r2, s2] = RawRs(Sign(key.get(), EVP_sha384(), in.attest));
  in.signature = EcdsaTpmt(kTpmAlgSha384, r2, s2);
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "pcrDigest does not match");
}

TEST(TpmQuoteTest, RsaAkWithRsassaAndRsapssVerifies) {
  EVP_PKEY* key = SharedRsaKey();
  ASSERT_TRUE(key != nullptr);
  auto pub = PublicOf(key);
  Synthetic s = MakeSynthetic();
  TpmQuoteInput in;
  in.ak_key = pub.get();
  in.attest = Marshal(s.attest);
  in.pcrs = s.pcrs;
  in.nonce = s.attest.nonce;

  in.signature = RsaTpmt(kTpmAlgRsassa, kTpmAlgSha256, Sign(key, EVP_sha256(), in.attest, RSA_PKCS1_PADDING));
  auto verdict = VerifyTpmQuote(in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_NE(verdict->checks[1].find("RSASSA"), std::string::npos) << verdict->checks[1];

  // RSASSA-PSS with the salt as long as the hash (the reference TPM) and
  // with the longest salt (some TPMs).
  in.signature = RsaTpmt(kTpmAlgRsapss, kTpmAlgSha256,
                         Sign(key, EVP_sha256(), in.attest, RSA_PKCS1_PSS_PADDING, RSA_PSS_SALTLEN_DIGEST));
  verdict = VerifyTpmQuote(in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_NE(verdict->checks[1].find("RSAPSS"), std::string::npos) << verdict->checks[1];
  in.signature = RsaTpmt(kTpmAlgRsapss, kTpmAlgSha256,
                         Sign(key, EVP_sha256(), in.attest, RSA_PKCS1_PSS_PADDING, RSA_PSS_SALTLEN_MAX));
  EXPECT_TRUE(VerifyTpmQuote(in).ok());

  // A PKCS#1 signature presented as PSS, and an altered one, are refused.
  Bytes pkcs1 = Sign(key, EVP_sha256(), in.attest, RSA_PKCS1_PADDING);
  in.signature = RsaTpmt(kTpmAlgRsapss, kTpmAlgSha256, pkcs1);
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "does not verify with the AK");
  pkcs1[100] ^= 1;
  in.signature = RsaTpmt(kTpmAlgRsassa, kTpmAlgSha256, pkcs1);
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "does not verify with the AK");

  // With the AK's public area instead of the key.
  Bytes area = WithSize(RsaArea(key, AkParams(kTpmAlgRsassa)));
  auto parsed = ParseTpmPublic(area);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->rsa_bits, 2048);
  EXPECT_EQ(parsed->rsa_exponent, 65537u);
  EXPECT_EQ(parsed->key->SpkiDer(), Spki(key));
  EXPECT_EQ(parsed->name, NameOf(Bytes(area.begin() + 2, area.end())));
  in.ak_key = nullptr;
  in.ak_public = area;
  in.signature = RsaTpmt(kTpmAlgRsassa, kTpmAlgSha256, Sign(key, EVP_sha256(), in.attest, RSA_PKCS1_PADDING));
  EXPECT_TRUE(VerifyTpmQuote(in).ok());
  // An ECDSA signature with an RSA AK says so.
  Key ec = NewEc("P-256");
  auto [r, sv] = RawRs(Sign(ec.get(), EVP_sha256(), in.attest));
  in.signature = EcdsaTpmt(kTpmAlgSha256, r, sv);
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "the signature is ECDSA but the AK is RSA");
}

TEST(TpmQuoteTest, AkWithoutRequiredAttributesIsRefused) {
  Key key = NewEc("P-256");
  Synthetic s = MakeSynthetic();
  TpmQuoteInput in;
  in.attest = Marshal(s.attest);
  auto [r, sv] = RawRs(Sign(key.get(), EVP_sha256(), in.attest));
  in.signature = EcdsaTpmt(kTpmAlgSha256, r, sv);
  in.pcrs = s.pcrs;
  in.nonce = s.attest.nonce;
  AreaParams p = AkParams(kTpmAlgEcdsa);
  in.ak_public = WithSize(EccArea(key.get(), p));
  ASSERT_TRUE(VerifyTpmQuote(in).ok());
  // Not restricted: the TPM would sign anything with it, a forged quote too.
  p.attributes &= ~kTpmaRestricted;
  in.ak_public = WithSize(EccArea(key.get(), p));
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "missing restricted");
  p = AkParams(kTpmAlgEcdsa);
  p.attributes &= ~(kTpmaFixedTpm | kTpmaSensitiveDataOrigin);
  in.ak_public = WithSize(EccArea(key.get(), p));
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "missing fixedTPM, sensitiveDataOrigin");
  p = AkParams(kTpmAlgEcdsa);
  p.attributes |= kTpmaDecrypt;
  in.ak_public = WithSize(EccArea(key.get(), p));
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "decryption key");
}

TEST(TpmQuoteTest, UnsupportedBankEmptySelectionAndUnsafeClock) {
  Key key = NewEc("P-256");
  auto pub = PublicOf(key.get());
  auto sign = [&](const Attest& a, TpmQuoteInput& in) {
    in.attest = Marshal(a);
    auto [r, sv] = RawRs(Sign(key.get(), EVP_sha256(), in.attest));
    in.signature = EcdsaTpmt(kTpmAlgSha256, r, sv);
  };
  Synthetic s = MakeSynthetic();
  TpmQuoteInput in;
  in.ak_key = pub.get();
  in.nonce = s.attest.nonce;
  in.pcrs = s.pcrs;

  Attest sha1 = s.attest;
  sha1.selection.push_back({kTpmAlgSha1, {0}});
  sign(sha1, in);
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "selects PCRs of bank sha1, which is not supported");

  Attest twice = s.attest;
  twice.selection.push_back({kTpmAlgSha256, {1}});
  sign(twice, in);
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "names bank sha256 twice");

  Attest none = s.attest;
  none.selection.clear();
  none.digest = Digest(EVP_sha256(), {});
  none.safe = 0;
  sign(none, in);
  in.pcrs = {};
  auto verdict = VerifyTpmQuote(in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  ASSERT_EQ(verdict->warnings.size(), 2u);
  EXPECT_NE(verdict->warnings[0].find("selects no PCRs"), std::string::npos);
  EXPECT_NE(verdict->warnings[1].find("safe"), std::string::npos);

  Attest bad_safe = s.attest;
  bad_safe.safe = 2;
  sign(bad_safe, in);
  in.pcrs = s.pcrs;
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "clockInfo.safe is 2");
}

TEST(TpmQuoteTest, MalformedPublicAreaIsRefused) {
  Key key = NewEc("P-256");
  Bytes area = EccArea(key.get(), AkParams(kTpmAlgEcdsa));
  ASSERT_TRUE(ParseTpmtPublic(area).ok());
  Bytes sized = WithSize(area);
  sized[1] ^= 1;
  ExpectRefused(ParseTpmPublic(sized), StatusCode::kIntegrity, "TPM2B_PUBLIC says");
  Bytes trailing = area;
  trailing.push_back(0);
  ExpectRefused(ParseTpmPublic(WithSize(trailing)), StatusCode::kIntegrity, "TPMT_PUBLIC has 1 trailing bytes");
  ExpectRefused(ParseTpmtPublic(Bytes(area.begin(), area.end() - 1)), StatusCode::kIntegrity, "runs past the end");
  Bytes keyed_hash = area;
  keyed_hash[1] = 0x08;
  ExpectRefused(ParseTpmtPublic(keyed_hash), StatusCode::kIntegrity, "type 0x0008 is not supported");
  Bytes sha1 = area;
  sha1[3] = 0x04;
  ExpectRefused(ParseTpmtPublic(sha1), StatusCode::kIntegrity, "nameAlg sha1 is not supported");
  // curveID sits after type, nameAlg, attributes, empty policy, NULL
  // symmetric, ECDSA + hash: offset 16.
  Bytes p521 = area;
  ASSERT_EQ(p521[17], 0x03);
  p521[17] = 0x05;
  ExpectRefused(ParseTpmtPublic(p521), StatusCode::kIntegrity, "ECC curve 0x0005 is not supported");
  Bytes off_curve = area;
  off_curve.back() ^= 1;
  ExpectRefused(ParseTpmtPublic(off_curve), StatusCode::kIntegrity, "ECC public key does not load");

  // RSA-1024 is too small to be supported.
  Bytes rsa;
  Head(rsa, kTpmAlgRsa, AkParams(kTpmAlgRsassa));
  Be16(rsa, 1024);
  Be32(rsa, 0);
  Bytes modulus(128, 0xc5);
  Tpm2b(rsa, modulus);
  ExpectRefused(ParseTpmtPublic(rsa), StatusCode::kIntegrity, "RSA key size 1024 is not supported");
  ExpectRefused(ParseTpmPublic({}), StatusCode::kIntegrity, "TPM2B_PUBLIC");
}

// ---- EK certificates ----

constexpr int64_t kCertNow = 1'800'000'000;

std::shared_ptr<const crypto::Certificate> MakeCert(const std::string& cn, EVP_PKEY* subject_key,
                                                    const std::string& issuer_cn, EVP_PKEY* issuer_key, bool ca,
                                                    int64_t not_before = 1'700'000'000,
                                                    int64_t not_after = 1'900'000'000) {
  static long serial = 1;
  Ptr<X509> x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(not_before));
  ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(not_after));
  auto cn_bytes = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.c_str()); };
  // EK certificates often have an empty subject (the TPM is named in the
  // subject alternative name); an empty `cn` makes one.
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_ASC, cn_bytes(cn), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(X509_get_issuer_name(x.get()), "CN", MBSTRING_ASC, cn_bytes(issuer_cn), -1, -1, 0);
  X509_set_pubkey(x.get(), subject_key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, nullptr, x.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    EXPECT_TRUE(ext != nullptr) << value;
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add(NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,keyEncipherment");
  EXPECT_GT(X509_sign(x.get(), issuer_key, EVP_sha256()), 0);
  unsigned char* der = nullptr;
  int n = i2d_X509(x.get(), &der);
  EXPECT_GT(n, 0);
  Bytes bytes(der, der + n);
  OPENSSL_free(der);
  auto cert = crypto::Certificate::FromDer(bytes);
  EXPECT_TRUE(cert.ok()) << cert.status().ToString();
  return cert.ok() ? *cert : nullptr;
}

struct EkPki {
  Key root_key = NewEc("P-256"), inter_key = NewEc("P-384"), ek_key = NewEc("P-256");
  std::shared_ptr<const crypto::Certificate> root, inter, ek;
  EkPki() {
    root = MakeCert("Test TPM Root CA", root_key.get(), "Test TPM Root CA", root_key.get(), true);
    inter = MakeCert("Test TPM EK CA", inter_key.get(), "Test TPM Root CA", root_key.get(), true);
    ek = MakeCert("", ek_key.get(), "Test TPM EK CA", inter_key.get(), false);
  }
};

using CertList = std::vector<std::shared_ptr<const crypto::Certificate>>;

TEST(TpmQuoteTest, EkCertificateChainVerifies) {
  EkPki pki;
  ASSERT_TRUE(pki.root && pki.inter && pki.ek);
  CertList inter = {pki.inter}, roots = {pki.root};
  auto key = VerifyEkCertificate(*pki.ek, inter, roots, kCertNow);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->SpkiDer(), Spki(pki.ek_key.get()));
  // The key is the one in the EK's public area.
  auto ek = ParseTpmtPublic(EccArea(pki.ek_key.get(), EkParams()));
  ASSERT_TRUE(ek.ok()) << ek.status().ToString();
  EXPECT_TRUE(CheckEkMatchesCertificate(*ek, **key).ok());
  // Pinning the issuing CA itself works too; unrelated intermediates are skipped.
  EkPki other;
  CertList pinned = {pki.inter}, noise = {other.inter, other.root};
  EXPECT_TRUE(VerifyEkCertificate(*pki.ek, noise, pinned, kCertNow).ok());
}

TEST(TpmQuoteTest, EkCertificateOutsideTheTrustedChainIsRefused) {
  EkPki pki, other;
  CertList inter = {pki.inter}, none = {}, roots = {pki.root}, other_roots = {other.root};
  ExpectRefused(VerifyEkCertificate(*pki.ek, inter, other_roots, kCertNow), StatusCode::kIntegrity,
                "does not chain to a trusted EK CA");
  ExpectRefused(VerifyEkCertificate(*pki.ek, none, roots, kCertNow), StatusCode::kIntegrity,
                "does not chain to a trusted EK CA");
  // An intermediate that is not a CA does not count.
  auto leafy = MakeCert("Test TPM EK CA", pki.inter_key.get(), "Test TPM Root CA", pki.root_key.get(), false);
  CertList leafy_list = {leafy};
  ExpectRefused(VerifyEkCertificate(*pki.ek, leafy_list, roots, kCertNow), StatusCode::kIntegrity,
                "does not chain");
  ExpectRefused(VerifyEkCertificate(*pki.ek, inter, none, kCertNow), StatusCode::kInvalidArgument, "trusted");
}

TEST(TpmQuoteTest, EkCertificateOutsideItsValidityIsRefused) {
  EkPki pki;
  CertList inter = {pki.inter}, roots = {pki.root};
  ExpectRefused(VerifyEkCertificate(*pki.ek, inter, roots, 2'000'000'000), StatusCode::kFailedPrecondition,
                "EK certificate");
  ExpectRefused(VerifyEkCertificate(*pki.ek, inter, roots, 1'600'000'000), StatusCode::kFailedPrecondition,
                "EK certificate");
  auto expired_inter = MakeCert("Test TPM EK CA", pki.inter_key.get(), "Test TPM Root CA", pki.root_key.get(), true,
                                1'700'000'000, 1'750'000'000);
  CertList expired = {expired_inter};
  ExpectRefused(VerifyEkCertificate(*pki.ek, expired, roots, kCertNow), StatusCode::kFailedPrecondition,
                "EK intermediate certificate");
}

TEST(TpmQuoteTest, EkPublicAreaWithAnotherKeyIsRefused) {
  EkPki pki;
  CertList inter = {pki.inter}, roots = {pki.root};
  auto key = VerifyEkCertificate(*pki.ek, inter, roots, kCertNow);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  Key stranger = NewEc("P-256");
  auto ek = ParseTpmtPublic(EccArea(stranger.get(), EkParams()));
  ASSERT_TRUE(ek.ok());
  ExpectRefused(CheckEkMatchesCertificate(*ek, **key), StatusCode::kIntegrity, "not the EK certificate's key");
}

// ---- credential activation ----

// The TPM's side, written here against OpenSSL from Part 1 so that the
// server side is checked against an independent reading of the spec: KDFa,
// KDFe, OAEP/ECDH, the outer HMAC, AES-128-CFB.
Bytes TestKdfa(const Bytes& key, const std::string& label, const Bytes& u, const Bytes& v, uint32_t bits) {
  Bytes out;
  for (uint32_t i = 1; out.size() < bits / 8; ++i) {
    Bytes msg;
    Be32(msg, i);
    msg.insert(msg.end(), label.begin(), label.end());
    msg.push_back(0);
    msg.insert(msg.end(), u.begin(), u.end());
    msg.insert(msg.end(), v.begin(), v.end());
    Be32(msg, bits);
    uint8_t mac[32];
    size_t len = 0;
    EXPECT_TRUE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), msg.data(), msg.size(),
                          mac, sizeof(mac), &len) != nullptr);
    out.insert(out.end(), mac, mac + len);
  }
  out.resize(bits / 8);
  return out;
}

Bytes TestKdfe(const Bytes& z, const std::string& use, const Bytes& u, const Bytes& v) {
  Bytes msg;
  Be32(msg, 1);
  msg.insert(msg.end(), z.begin(), z.end());
  msg.insert(msg.end(), use.begin(), use.end());
  msg.push_back(0);
  msg.insert(msg.end(), u.begin(), u.end());
  msg.insert(msg.end(), v.begin(), v.end());
  return Digest(EVP_sha256(), msg);  // 256 bits: one block
}

// TPM2_ActivateCredential by hand: the recovered credential, or empty.
Bytes Activate(EVP_PKEY* ek_private, const TpmPublic& ek, const Bytes& ak_name, const TpmCredential& c) {
  auto size16 = [](const Bytes& b, size_t at) { return static_cast<size_t>(b[at] << 8 | b[at + 1]); };
  EXPECT_EQ(size16(c.encrypted_secret, 0), c.encrypted_secret.size() - 2);
  Bytes secret(c.encrypted_secret.begin() + 2, c.encrypted_secret.end());
  Bytes seed;
  if (ek.type == kTpmAlgRsa) {
    Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek_private, nullptr));
    EXPECT_EQ(EVP_PKEY_decrypt_init(ctx.get()), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()), 1);
    void* label = OPENSSL_memdup("IDENTITY", 9);
    EXPECT_EQ(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, 9), 1);
    seed.resize(512);
    size_t len = seed.size();
    if (EVP_PKEY_decrypt(ctx.get(), seed.data(), &len, secret.data(), secret.size()) != 1) return {};
    seed.resize(len);
  } else {
    EXPECT_EQ(size16(secret, 0), 32u);
    Bytes x(secret.begin() + 2, secret.begin() + 34);
    EXPECT_EQ(size16(secret, 34), 32u);
    Bytes y(secret.begin() + 36, secret.end());
    auto eph = crypto::PublicKey::FromEcPoint("P-256", x, y);
    EXPECT_TRUE(eph.ok());
    if (!eph.ok()) return {};
    Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek_private, nullptr));
    Bytes z(32);
    size_t len = z.size();
    EXPECT_EQ(EVP_PKEY_derive_init(ctx.get()), 1);
    EXPECT_EQ(EVP_PKEY_derive_set_peer(ctx.get(), (*eph)->raw()), 1);
    EXPECT_EQ(EVP_PKEY_derive(ctx.get(), z.data(), &len), 1);
    seed = TestKdfe(z, "IDENTITY", x, ek.ecc_x);
  }
  EXPECT_EQ(seed.size(), 32u);
  // TPM2B_ID_OBJECT: size, TPM2B integrity HMAC, encIdentity.
  const Bytes& blob = c.credential_blob;
  EXPECT_EQ(size16(blob, 0), blob.size() - 2);
  size_t hmac_size = size16(blob, 2);
  EXPECT_EQ(hmac_size, 32u);
  Bytes hmac(blob.begin() + 4, blob.begin() + 4 + static_cast<long>(hmac_size));
  Bytes enc(blob.begin() + 4 + static_cast<long>(hmac_size), blob.end());
  Bytes hmac_key = TestKdfa(seed, "INTEGRITY", {}, {}, 256);
  Bytes mac_input = enc;
  mac_input.insert(mac_input.end(), ak_name.begin(), ak_name.end());
  uint8_t expected[32];
  size_t len = 0;
  EXPECT_TRUE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, hmac_key.data(), hmac_key.size(),
                        mac_input.data(), mac_input.size(), expected, sizeof(expected), &len) != nullptr);
  if (Bytes(expected, expected + 32) != hmac) return {};  // the TPM's TPM_RC_INTEGRITY
  Bytes sym_key = TestKdfa(seed, "STORAGE", ak_name, {}, 128);
  Bytes plain(enc.size() + 16);
  int n = 0, tail = 0;
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> cctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  uint8_t iv[16] = {};
  EXPECT_EQ(EVP_DecryptInit_ex(cctx.get(), EVP_aes_128_cfb128(), nullptr, sym_key.data(), iv), 1);
  EXPECT_EQ(EVP_DecryptUpdate(cctx.get(), plain.data(), &n, enc.data(), static_cast<int>(enc.size())), 1);
  EXPECT_EQ(EVP_DecryptFinal_ex(cctx.get(), plain.data() + n, &tail), 1);
  plain.resize(static_cast<size_t>(n + tail));
  if (plain.size() < 2 || size16(plain, 0) != plain.size() - 2) return {};
  return Bytes(plain.begin() + 2, plain.end());
}

Bytes SomeAkName(uint8_t fill) {
  Bytes n;
  Be16(n, kTpmAlgSha256);
  n.insert(n.end(), 32, fill);
  return n;
}

SecretBytes SecretOf(const Bytes& b) { return SecretBytes(b.data(), b.size()); }

TEST(TpmQuoteTest, MakeCredentialForRsaEkActivates) {
  EVP_PKEY* ek_key = SharedRsaKey();
  auto ek = ParseTpmtPublic(RsaArea(ek_key, EkParams()));
  ASSERT_TRUE(ek.ok()) << ek.status().ToString();
  Bytes secret(32);
  for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(0xc0 + i);
  Bytes name = SomeAkName(0x5a);
  auto cred = MakeCredential(*ek, name, SecretOf(secret));
  ASSERT_TRUE(cred.ok()) << cred.status().ToString();
  EXPECT_EQ(cred->credential_blob.size(), 2u + 2 + 32 + 2 + 32);
  EXPECT_EQ(cred->encrypted_secret.size(), 2u + 256);
  EXPECT_EQ(Activate(ek_key, *ek, name, *cred), secret);
  // Only for the object with that Name.
  EXPECT_TRUE(Activate(ek_key, *ek, SomeAkName(0x5b), *cred).empty());
  // A fresh seed every time.
  auto again = MakeCredential(*ek, name, SecretOf(secret));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->encrypted_secret, cred->encrypted_secret);
  EXPECT_NE(again->credential_blob, cred->credential_blob);
}

TEST(TpmQuoteTest, MakeCredentialForEccEkActivates) {
  Key ek_key = NewEc("P-256");
  auto ek = ParseTpmtPublic(EccArea(ek_key.get(), EkParams()));
  ASSERT_TRUE(ek.ok()) << ek.status().ToString();
  Bytes secret = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  Bytes name = SomeAkName(0x33);
  auto cred = MakeCredential(*ek, name, SecretOf(secret));
  ASSERT_TRUE(cred.ok()) << cred.status().ToString();
  EXPECT_EQ(cred->credential_blob.size(), 2u + 2 + 32 + 2 + 16);
  EXPECT_EQ(cred->encrypted_secret.size(), 2u + 2 + 32 + 2 + 32);
  EXPECT_EQ(Activate(ek_key.get(), *ek, name, *cred), secret);
  EXPECT_TRUE(Activate(ek_key.get(), *ek, SomeAkName(0x34), *cred).empty());
}

TEST(TpmQuoteTest, MakeCredentialRefusesWhatATpmWouldNot) {
  Key ek_key = NewEc("P-256");
  auto ek = ParseTpmtPublic(EccArea(ek_key.get(), EkParams()));
  ASSERT_TRUE(ek.ok());
  Bytes name = SomeAkName(1);
  ExpectRefused(MakeCredential(*ek, name, SecretOf(Bytes(33, 1))), StatusCode::kInvalidArgument, "1 to 32 bytes");
  ExpectRefused(MakeCredential(*ek, name, SecretBytes()), StatusCode::kInvalidArgument, "1 to 32 bytes");
  ExpectRefused(MakeCredential(*ek, Bytes(name.begin(), name.end() - 1), SecretOf(Bytes(16, 1))),
                StatusCode::kInvalidArgument, "AK name");
  auto ak = ParseTpmtPublic(EccArea(ek_key.get(), AkParams(kTpmAlgEcdsa)));
  ASSERT_TRUE(ak.ok());
  ExpectRefused(MakeCredential(*ak, name, SecretOf(Bytes(16, 1))), StatusCode::kInvalidArgument,
                "not a restricted decryption key");
  AreaParams no_aes = EkParams();
  no_aes.aes128_cfb = false;
  auto plain_ek = ParseTpmtPublic(EccArea(ek_key.get(), no_aes));
  ASSERT_TRUE(plain_ek.ok());
  ExpectRefused(MakeCredential(*plain_ek, name, SecretOf(Bytes(16, 1))), StatusCode::kInvalidArgument, "CFB");
}

// ---- against a software TPM (optional) ----

using testing::Swtpm;

Bytes ToolsCredentialFile(const TpmCredential& c) {
  return testing::ToolsCredentialFile(c.credential_blob, c.encrypted_secret);
}

TEST(TpmQuoteTest, SwtpmActivatesCredentialAndQuoteVerifies) {
  if (std::string missing = Swtpm::Missing(); !missing.empty()) {
    GTEST_SKIP() << missing << " is not installed (apt-get install swtpm swtpm-tools tpm2-tools): "
                 << "the software-TPM check is skipped";
  }
  Swtpm tpm;
  std::string error;
  ASSERT_TRUE(tpm.Start(error)) << error;

  // An ECC EK and an RSA EK, and an ECC AK under the first.
  ASSERT_TRUE(tpm.RunAndFlush("tpm2_createek -c ek.ctx -G ecc -u ek.pub")) << tpm.Log();
  ASSERT_TRUE(tpm.RunAndFlush("tpm2_createek -c ek_rsa.ctx -G rsa -u ek_rsa.pub")) << tpm.Log();
  ASSERT_TRUE(tpm.RunAndFlush("tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name"))
      << tpm.Log();
  auto ak = ParseTpmPublic(tpm.Read("ak.pub"));
  ASSERT_TRUE(ak.ok()) << ak.status().ToString();
  EXPECT_EQ(ak->name, tpm.Read("ak.name"));
  EXPECT_TRUE(CheckAkAttributes(*ak).ok());

  for (const char* which : {"ek", "ek_rsa"}) {
    SCOPED_TRACE(which);
    auto ek = ParseTpmPublic(tpm.Read(std::string(which) + ".pub"));
    ASSERT_TRUE(ek.ok()) << ek.status().ToString();
    Bytes secret(32);
    ASSERT_TRUE(crypto::RandomBytes(secret).ok());
    auto cred = MakeCredential(*ek, ak->name, SecretOf(secret));
    ASSERT_TRUE(cred.ok()) << cred.status().ToString();
    tpm.Write("cred.bin", ToolsCredentialFile(*cred));
    // The EK's policy: PolicySecret with the endorsement hierarchy.
    ASSERT_TRUE(tpm.Run("tpm2_startauthsession --policy-session -S session.ctx")) << tpm.Log();
    ASSERT_TRUE(tpm.Run("tpm2_policysecret -S session.ctx -c e")) << tpm.Log();
    bool activated = tpm.Run(std::string("tpm2_activatecredential -c ak.ctx -C ") + which +
                             ".ctx -i cred.bin -o secret.out -P session:session.ctx");
    tpm.Run("tpm2_flushcontext session.ctx");
    tpm.Run("tpm2_flushcontext -t");
    ASSERT_TRUE(activated) << tpm.Log();
    EXPECT_EQ(tpm.Read("secret.out"), secret);
  }

  // A quote over sha256 PCRs 0, 1 and 16 with a fresh nonce.
  Bytes nonce(20);
  ASSERT_TRUE(crypto::RandomBytes(nonce).ok());
  ASSERT_TRUE(tpm.RunAndFlush("tpm2_quote -c ak.ctx -l sha256:0,1,16 -q " + HexEncode(nonce) +
                              " -m quote.msg -s quote.sig -o quote.pcrs -g sha256"))
      << tpm.Log();
  TpmQuoteInput in;
  in.ak_public = tpm.Read("ak.pub");
  in.attest = tpm.Read("quote.msg");
  in.signature = tpm.Read("quote.sig");
  auto pcrs = ParseTpm2ToolsPcrsFile(tpm.Read("quote.pcrs"));
  ASSERT_TRUE(pcrs.ok()) << pcrs.status().ToString();
  in.pcrs = *pcrs;
  in.nonce = nonce;
  auto verdict = VerifyTpmQuote(in);
  ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
  EXPECT_EQ(verdict->checks.size(), 6u);
  EXPECT_EQ(*verdict->Find("nonce"), HexEncode(nonce));
  EXPECT_NE(verdict->Find("pcr16"), nullptr);
  in.nonce.back() ^= 1;
  ExpectRefused(VerifyTpmQuote(in), StatusCode::kIntegrity, "nonce");
}

}  // namespace
}  // namespace cloister::attest
