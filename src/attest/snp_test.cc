// Tests of the SEV-SNP report parser and verifier: the public vectors
// (real reports and AMD certificates, see MANIFEST.md of the vectors) must
// verify exactly as expected/snp_*.txt says, and each kind of tampering
// with them must fail naming what failed. What no vector has (a negative
// VCEK serial, Turin, CRLs, mismatched extensions) is tested with a PKI
// made here with OpenSSL (P-384 keys, so it is fast) and a pin on its root.
#include "attest/snp.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "attest/test_keys.h"
#include "attest/test_vectors.h"

namespace cloister::attest {
namespace {

using attest_test::Key;
using attest_test::NewKey;

// 2025-06-01T00:00:00Z: inside the validity of every vector's certificates.
constexpr int64_t kNow = 1748736000;
// notAfter of snp/go-sev-guest/vcek.testcer: 2029-09-24T00:55:28Z.
constexpr int64_t kGoSevGuestVcekNotAfter = 1884905728;

constexpr size_t kR = 0x2A0, kS = 0x2A0 + 72;

// ---- the public vectors ----

struct Vector {
  const char* report;
  const char* endorsement;
  const char* bundle;
};
constexpr Vector kGoSevGuest = {"snp/go-sev-guest/attestation.bin", "snp/go-sev-guest/vcek.testcer",
                                "snp/go-sev-guest/ask_ark_milan.pem"};
constexpr Vector kTrusteeMilan = {"trustee/snp/test-report.bin", "trustee/snp/test-vcek.der",
                                  "trustee/snp/milan_ask_ark_asvk.pem"};
constexpr Vector kTrusteeVlek = {"trustee/snp/test-vlek-report.bin", "trustee/snp/test-vlek.der",
                                 "trustee/snp/milan_ask_ark_asvk.pem"};
constexpr Vector kGenoa = {"trustee/az-snp-vtpm/genoa-snp-report.bin", "trustee/az-snp-vtpm/genoa-vcek-chain.pem",
                           "trustee/snp/genoa_ask_ark_asvk.pem"};

struct Loaded {
  Bytes report;
  SnpCollateral collateral;
};

Loaded Load(const Vector& v) {
  Loaded l;
  l.report = testing::ReadVector(v.report);
  l.collateral.endorsement_certificate = testing::ReadVector(v.endorsement);
  l.collateral.ca_bundle = testing::ReadVector(v.bundle);
  return l;
}

std::string ClaimOf(const HardwareVerdict& v, std::string_view name) {
  const std::string* p = v.Find(name);
  return p != nullptr ? *p : "<no claim " + std::string(name) + ">";
}

std::string Padded(std::string hex, size_t bytes) {
  hex.resize(bytes * 2, '0');
  return hex;
}

// The status is `code`, its message starts with "snp: " and names `part`.
void ExpectFailure(const Status& s, StatusCode code, std::string_view part) {
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_TRUE(s.message().starts_with("snp: ")) << s.message();
  EXPECT_NE(s.message().find(part), std::string::npos) << "\"" << s.message() << "\" does not name \"" << part << "\"";
}
#define EXPECT_SNP_FAILS(expr, code, part)                      \
  do {                                                          \
    SCOPED_TRACE(#expr);                                        \
    auto _result = (expr);                                      \
    ASSERT_FALSE(_result.ok()) << "verified, expected failure"; \
    ExpectFailure(_result.status(), code, part);                \
  } while (0)

// Certificates of a PEM bundle as DER, through OpenSSL.
std::vector<Bytes> PemToDer(const Bytes& pem) {
  std::vector<Bytes> out;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    unsigned char* der = nullptr;
    int n = i2d_X509(x, &der);
    if (n > 0) out.emplace_back(der, der + n);
    OPENSSL_free(der);
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(bio);
  return out;
}

// PEM of DER bytes, whatever they contain (a certificate with a broken
// signature still encodes).
Bytes DerToPem(const std::vector<Bytes>& ders) {
  std::string pem;
  for (const Bytes& der : ders) {
    std::string b64 = Base64Encode(der);
    pem += "-----BEGIN CERTIFICATE-----\n";
    for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
    pem += "-----END CERTIFICATE-----\n";
  }
  return Bytes(pem.begin(), pem.end());
}

std::string CommonName(const Bytes& der) {
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (x == nullptr) return "";
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
  X509_free(x);
  return cn;
}

// The bundle with the last byte (inside the signature) of certificate `cn`
// flipped.
Bytes BreakSignatureIn(const Bytes& bundle_pem, const std::string& cn) {
  std::vector<Bytes> ders = PemToDer(bundle_pem);
  bool found = false;
  for (Bytes& der : ders) {
    if (CommonName(der) == cn) {
      der.back() ^= 0x01;
      found = true;
    }
  }
  EXPECT_TRUE(found) << cn;
  return DerToPem(ders);
}

// ---- a PKI of our own, shaped like AMD's ----

constexpr char kOidProductName[] = "1.3.6.1.4.1.3704.1.2";
constexpr char kOidBl[] = "1.3.6.1.4.1.3704.1.3.1";
constexpr char kOidTee[] = "1.3.6.1.4.1.3704.1.3.2";
constexpr char kOidSnp[] = "1.3.6.1.4.1.3704.1.3.3";
constexpr char kOidUcode[] = "1.3.6.1.4.1.3704.1.3.8";
constexpr char kOidFmc[] = "1.3.6.1.4.1.3704.1.3.9";
constexpr char kOidHwId[] = "1.3.6.1.4.1.3704.1.4";
constexpr char kOidCspId[] = "1.3.6.1.4.1.3704.1.5";

using Extensions = std::vector<std::pair<std::string, Bytes>>;

Bytes DerInteger(uint8_t v) { return v < 0x80 ? Bytes{0x02, 0x01, v} : Bytes{0x02, 0x02, 0x00, v}; }
Bytes DerIa5(const std::string& s) {
  Bytes b(2 + s.size());
  b[0] = 0x16;
  b[1] = static_cast<uint8_t>(s.size());
  std::copy(s.begin(), s.end(), b.begin() + 2);
  return b;
}

void SetName(X509_NAME* name, const std::string& cn) {
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Advanced Micro Devices"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
}

struct CertSpec {
  std::string subject_cn, issuer_cn;
  EVP_PKEY* subject_key = nullptr;
  EVP_PKEY* issuer_key = nullptr;
  long serial = 1;
  int64_t not_before = kNow - 86400 * 365;
  int64_t not_after = kNow + 86400 * 365;
  bool ca = false;
  Extensions extensions;
};

Bytes MakeCert(const CertSpec& s) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), s.serial);
  SetName(X509_get_subject_name(x), s.subject_cn);
  SetName(X509_get_issuer_name(x), s.issuer_cn);
  ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(s.not_before));
  ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(s.not_after));
  X509_set_pubkey(x, s.subject_key);
  if (s.ca) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
  }
  for (const auto& [oid, value] : s.extensions) {
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), 1);
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, value.data(), static_cast<int>(value.size()));
    X509_EXTENSION* e = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, os);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
  }
  EXPECT_GT(X509_sign(x, s.issuer_key, EVP_sha384()), 0);
  unsigned char* der = nullptr;
  int n = i2d_X509(x, &der);
  Bytes out(der, der + std::max(n, 0));
  OPENSSL_free(der);
  X509_free(x);
  return out;
}

Bytes MakeCrl(EVP_PKEY* issuer_key, const std::string& issuer_cn, std::optional<long> revoked_serial) {
  X509_CRL* crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_NAME* name = X509_NAME_new();
  SetName(name, issuer_cn);
  X509_CRL_set_issuer_name(crl, name);
  X509_NAME_free(name);
  ASN1_TIME* last = ASN1_TIME_set(nullptr, static_cast<time_t>(kNow - 86400));
  ASN1_TIME* next = ASN1_TIME_set(nullptr, static_cast<time_t>(kNow + 86400));
  X509_CRL_set1_lastUpdate(crl, last);
  X509_CRL_set1_nextUpdate(crl, next);
  if (revoked_serial) {
    X509_REVOKED* rev = X509_REVOKED_new();
    ASN1_INTEGER* serial = ASN1_INTEGER_new();
    ASN1_INTEGER_set(serial, *revoked_serial);
    X509_REVOKED_set_serialNumber(rev, serial);
    X509_REVOKED_set_revocationDate(rev, last);
    X509_CRL_add0_revoked(crl, rev);
    ASN1_INTEGER_free(serial);
  }
  X509_CRL_sort(crl);
  EXPECT_GT(X509_CRL_sign(crl, issuer_key, EVP_sha384()), 0);
  unsigned char* der = nullptr;
  int n = i2d_X509_CRL(crl, &der);
  Bytes out(der, der + std::max(n, 0));
  OPENSSL_free(der);
  X509_CRL_free(crl);
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  return out;
}

// Signs [0, 0x2A0) with ECDSA P-384 SHA-384 and stores R and S the AMD way.
void SignReport(Bytes& report, EVP_PKEY* key) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t size = 0;
  ASSERT_EQ(EVP_DigestSignInit(md, nullptr, EVP_sha384(), nullptr, key), 1);
  ASSERT_EQ(EVP_DigestSign(md, nullptr, &size, report.data(), kSnpSignedSize), 1);
  Bytes der(size);
  ASSERT_EQ(EVP_DigestSign(md, der.data(), &size, report.data(), kSnpSignedSize), 1);
  EVP_MD_CTX_free(md);
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(size));
  ASSERT_NE(sig, nullptr);
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  std::fill(report.begin() + kR, report.end(), 0);
  ASSERT_EQ(BN_bn2lebinpad(r, &report[kR], 72), 72);
  ASSERT_EQ(BN_bn2lebinpad(s, &report[kS], 72), 72);
  ECDSA_SIG_free(sig);
}

struct FakeKeys {
  Key ark = NewKey("P-384"), ask = NewKey("P-384"), asvk = NewKey("P-384");
  Key vcek = NewKey("P-384"), vlek = NewKey("P-384"), other = NewKey("P-384");
};
const FakeKeys& Keys() {
  static const FakeKeys* keys = new FakeKeys();
  return *keys;
}

// What a fake report and its chain look like; each test changes a part.
struct FakeSetup {
  SnpProduct product = SnpProduct::kMilan;
  std::string product_name = "Milan-B0";  // "" = no productName extension
  SnpTcb tcb{0, 3, 0, 8, 115};
  uint32_t version = 2;
  uint8_t cpuid_family = 0;
  bool vlek = false;
  uint32_t signer_info = 0;  // signing key bits are set from `vlek`
  uint64_t policy = 0x30000;
  long endorsement_serial = 1;
  long ask_serial = 0x1234;
  std::function<void(Extensions&)> edit_extensions;
};

struct FakeCase {
  Bytes report;
  SnpCollateral collateral;
  SnpTrust trust;
};

std::array<uint8_t, 64> FakeChipId() {
  std::array<uint8_t, 64> id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(0xA0 + i);
  return id;
}

FakeCase MakeFake(const FakeSetup& s) {
  const FakeKeys& k = Keys();
  const std::string line(SnpProductName(s.product));
  const std::string ark_cn = "ARK-" + line;
  const std::string mid_cn = (s.vlek ? "SEV-VLEK-" : "SEV-") + line;
  EVP_PKEY* mid_key = s.vlek ? k.asvk.get() : k.ask.get();
  EVP_PKEY* leaf_key = s.vlek ? k.vlek.get() : k.vcek.get();

  Extensions ext;
  if (!s.product_name.empty()) ext.emplace_back(kOidProductName, DerIa5(s.product_name));
  if (s.product == SnpProduct::kTurin) ext.emplace_back(kOidFmc, DerInteger(s.tcb.fmc));
  ext.emplace_back(kOidBl, DerInteger(s.tcb.bootloader));
  ext.emplace_back(kOidTee, DerInteger(s.tcb.tee));
  ext.emplace_back(kOidSnp, DerInteger(s.tcb.snp));
  ext.emplace_back(kOidUcode, DerInteger(s.tcb.microcode));
  const auto chip = FakeChipId();
  if (s.vlek) {
    ext.emplace_back(kOidCspId, DerIa5("CN=csp.example"));
  } else {
    size_t hwid_size = s.product == SnpProduct::kTurin ? 8 : 64;
    ext.emplace_back(kOidHwId, Bytes(chip.begin(), chip.begin() + static_cast<std::ptrdiff_t>(hwid_size)));
  }
  if (s.edit_extensions) s.edit_extensions(ext);

  FakeCase f;
  Bytes ark = MakeCert({ark_cn, ark_cn, k.ark.get(), k.ark.get(), 1, kNow - 86400 * 3650, kNow + 86400 * 3650, true});
  Bytes mid = MakeCert({mid_cn, ark_cn, mid_key, k.ark.get(), s.ask_serial, kNow - 86400 * 3650,
                        kNow + 86400 * 3650, true});
  f.collateral.endorsement_certificate = MakeCert({s.vlek ? "SEV-VLEK" : "SEV-VCEK", mid_cn, leaf_key, mid_key,
                                                   s.endorsement_serial, kNow - 86400, kNow + 86400 * 365, false, ext});
  f.collateral.ca_bundle = DerToPem({mid, ark});
  f.trust.pinned_arks[line] = attest_test::Sha256(attest_test::Spki(k.ark.get()));

  Bytes r(kSnpReportSize, 0);
  StoreU32(&r[0x000], s.version);
  StoreU64(&r[0x008], s.policy);
  StoreU32(&r[0x034], 1);
  const uint64_t tcb = EncodeSnpTcb(s.product, s.tcb);
  StoreU64(&r[0x038], tcb);
  StoreU32(&r[0x048], s.signer_info | (s.vlek ? 1u << 2 : 0u));
  for (size_t i = 0; i < 48; ++i) r[0x090 + i] = static_cast<uint8_t>(i);
  StoreU64(&r[0x180], tcb);
  r[0x188] = s.cpuid_family;
  if (!s.vlek && (s.signer_info & 2) == 0) std::copy(chip.begin(), chip.end(), r.begin() + 0x1A0);
  StoreU64(&r[0x1E0], tcb);
  StoreU64(&r[0x1F0], tcb);
  SignReport(r, leaf_key);
  f.report = std::move(r);
  return f;
}

StatusOr<HardwareVerdict> Verify(const FakeCase& f, int64_t now = kNow) {
  return VerifySnpReport(f.report, f.collateral, now, f.trust);
}

// ---- the report format ----

TEST(SnpTest, TcbLayoutsPerProduct) {
  // go-sev-guest's reported_tcb: bytes 02 00 00 00 00 00 05 44.
  const uint64_t milan = 0x4405000000000002;
  EXPECT_EQ(DecodeSnpTcb(SnpProduct::kMilan, milan), (SnpTcb{0, 2, 0, 5, 68}));
  EXPECT_EQ(DecodeSnpTcb(SnpProduct::kGenoa, milan), (SnpTcb{0, 2, 0, 5, 68}));
  // The same bytes read as Turin: [0] FMC [1] bootloader [2] TEE [3] SNP [7] microcode.
  EXPECT_EQ(DecodeSnpTcb(SnpProduct::kTurin, milan), (SnpTcb{2, 0, 0, 0, 68}));
  const SnpTcb turin{1, 2, 3, 4, 5};
  EXPECT_EQ(EncodeSnpTcb(SnpProduct::kTurin, turin), 0x0500000004030201u);
  EXPECT_EQ(DecodeSnpTcb(SnpProduct::kTurin, EncodeSnpTcb(SnpProduct::kTurin, turin)), turin);
  EXPECT_EQ(EncodeSnpTcb(SnpProduct::kMilan, SnpTcb{0, 2, 0, 5, 68}), milan);
}

TEST(SnpTest, TcbAtLeastComparesEachComponent) {
  const auto milan = [](uint8_t bl, uint8_t tee, uint8_t snp, uint8_t uc) {
    return EncodeSnpTcb(SnpProduct::kMilan, SnpTcb{0, bl, tee, snp, uc});
  };
  EXPECT_TRUE(SnpTcbAtLeast(SnpProduct::kMilan, milan(3, 0, 8, 115), milan(3, 0, 8, 115)));
  EXPECT_TRUE(SnpTcbAtLeast(SnpProduct::kMilan, milan(4, 1, 9, 200), milan(3, 0, 8, 115)));
  // A newer microcode (the most significant byte) does not make up for an
  // older SNP firmware, as a plain integer comparison would have it.
  EXPECT_FALSE(SnpTcbAtLeast(SnpProduct::kMilan, milan(3, 0, 7, 200), milan(3, 0, 8, 115)));
  EXPECT_FALSE(SnpTcbAtLeast(SnpProduct::kMilan, milan(2, 0, 8, 115), milan(3, 0, 8, 115)));
  EXPECT_FALSE(SnpTcbAtLeast(SnpProduct::kMilan, milan(3, 0, 8, 114), milan(3, 0, 8, 115)));
  // Reserved bytes do not count.
  EXPECT_TRUE(SnpTcbAtLeast(SnpProduct::kMilan, milan(3, 0, 8, 115), milan(3, 0, 8, 115) | 0x0000FFFFFFFF0000));
  // Turin has an FMC component.
  const uint64_t t1 = EncodeSnpTcb(SnpProduct::kTurin, SnpTcb{1, 2, 3, 4, 5});
  const uint64_t t2 = EncodeSnpTcb(SnpProduct::kTurin, SnpTcb{2, 2, 3, 4, 5});
  EXPECT_TRUE(SnpTcbAtLeast(SnpProduct::kTurin, t2, t1));
  EXPECT_FALSE(SnpTcbAtLeast(SnpProduct::kTurin, t1, t2));
}

TEST(SnpTest, ProductNames) {
  EXPECT_EQ(ParseSnpProduct("Milan"), SnpProduct::kMilan);
  EXPECT_EQ(ParseSnpProduct("Milan-B0"), SnpProduct::kMilan);
  EXPECT_EQ(ParseSnpProduct("Genoa"), SnpProduct::kGenoa);
  EXPECT_EQ(ParseSnpProduct("Turin-B1"), SnpProduct::kTurin);
  EXPECT_EQ(ParseSnpProduct("Rome"), std::nullopt);
  EXPECT_EQ(ParseSnpProduct("milan"), std::nullopt);
  EXPECT_EQ(ParseSnpProduct(""), std::nullopt);
  EXPECT_EQ(SnpProductName(SnpProduct::kGenoa), "Genoa");
}

TEST(SnpTest, ParsesEveryFieldOfVersion2Report) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes b = testing::ReadVector(kGoSevGuest.report);
  auto r = ParseSnpReport(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, 2u);
  EXPECT_EQ(r->guest_svn, 0u);
  EXPECT_EQ(r->policy, 0xb0000u);
  EXPECT_TRUE(r->debug());
  EXPECT_EQ(r->vmpl, 0u);
  EXPECT_EQ(r->signature_algo, 1u);
  EXPECT_EQ(r->current_tcb, 0x4405000000000002u);
  EXPECT_EQ(r->platform_info, 1u);
  EXPECT_EQ(r->signer_info, 0u);
  EXPECT_EQ(r->signing_key(), 0);
  EXPECT_EQ(HexEncode(r->report_data), Padded("0102030405", 64));
  EXPECT_EQ(HexEncode(r->measurement),
            "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01");
  EXPECT_EQ(HexEncode(r->host_data), Padded("", 32));
  EXPECT_EQ(HexEncode(r->report_id), "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a");
  EXPECT_EQ(r->reported_tcb, 0x4405000000000002u);
  EXPECT_EQ(r->cpuid_family, 0);  // version 2: no CPUID
  EXPECT_EQ(HexEncode(r->chip_id),
            "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40"
            "c05f63c9b610c5068b006b5d");
  EXPECT_EQ(r->committed_tcb, 0x4405000000000002u);
  EXPECT_EQ(r->launch_tcb, 0x4405000000000002u);
  EXPECT_EQ((std::array<int, 6>{r->current_build, r->current_minor, r->current_major, r->committed_build,
                                r->committed_minor, r->committed_major}),
            (std::array<int, 6>{3, 49, 1, 3, 49, 1}));
  EXPECT_EQ(r->signature_r[0], b[kR]);
  EXPECT_EQ(r->signature_s[71], b[kS + 71]);
}

TEST(SnpTest, ParsesVersion3CpuidAndVersion5MitigationVectors) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes b = testing::ReadVector(kTrusteeVlek.report);
  auto r = ParseSnpReport(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, 3u);
  EXPECT_EQ((std::array<int, 3>{r->cpuid_family, r->cpuid_model, r->cpuid_stepping}),
            (std::array<int, 3>{0x19, 0x01, 0x01}));
  EXPECT_EQ(r->signing_key(), 1);
  EXPECT_EQ(r->vmpl, 1u);
  EXPECT_EQ((std::array<int, 3>{r->current_build, r->current_minor, r->current_major}),
            (std::array<int, 3>{29, 55, 1}));
  EXPECT_EQ(r->launch_mit_vector, 0u);

  StoreU32(&b[0], 5);
  StoreU64(&b[0x1F8], 0x1122);
  StoreU64(&b[0x200], 0x3344);
  r = ParseSnpReport(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->launch_mit_vector, 0x1122u);
  EXPECT_EQ(r->current_mit_vector, 0x3344u);
}

TEST(SnpTest, ParserRefusesWrongSizeVersionAlgorithmAndPolicy) {
  Bytes b(kSnpReportSize, 0);
  StoreU32(&b[0], 2);
  StoreU32(&b[0x34], 1);
  StoreU64(&b[0x08], 0x30000);
  ASSERT_TRUE(ParseSnpReport(b).ok());
  EXPECT_SNP_FAILS(ParseSnpReport(std::span<const uint8_t>(b).first(1183)), StatusCode::kIntegrity, "1184");
  EXPECT_SNP_FAILS(ParseSnpReport({}), StatusCode::kIntegrity, "0 bytes");
  for (uint32_t version : {0u, 1u, 4u, 6u, 0xFFFFFFFFu}) {
    Bytes v = b;
    StoreU32(&v[0], version);
    EXPECT_SNP_FAILS(ParseSnpReport(v), StatusCode::kIntegrity, "version " + std::to_string(version));
  }
  Bytes algo = b;
  StoreU32(&algo[0x34], 2);
  EXPECT_SNP_FAILS(ParseSnpReport(algo), StatusCode::kIntegrity, "signature_algo 2");
  Bytes policy = b;
  StoreU64(&policy[0x08], 0x10000);
  EXPECT_SNP_FAILS(ParseSnpReport(policy), StatusCode::kIntegrity, "bit 17");
}

// ---- every public vector verifies as expected/snp_*.txt says ----

TEST(SnpTest, MilanVcekReportVerifies) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  auto v = VerifySnpReport(l.report, l.collateral, kNow);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->type, "snp");
  EXPECT_EQ(ClaimOf(*v, "measurement"),
            "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01");
  EXPECT_EQ(ClaimOf(*v, "policy"), std::to_string(0xb0000));
  EXPECT_TRUE(v->debug);  // policy bit 19: reported, not an error
  EXPECT_EQ(ClaimOf(*v, "report_data"), Padded("0102030405", 64));
  EXPECT_EQ(ClaimOf(*v, "chip_id"),
            "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40"
            "c05f63c9b610c5068b006b5d");
  EXPECT_EQ(ClaimOf(*v, "product"), "Milan");
  EXPECT_EQ(ClaimOf(*v, "signing_key"), "vcek");
  EXPECT_EQ(ClaimOf(*v, "version"), "2");
  EXPECT_EQ(ClaimOf(*v, "guest_svn"), "0");
  EXPECT_EQ(ClaimOf(*v, "vmpl"), "0");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb"), "0200000000000544");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.bootloader"), "2");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.tee"), "0");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.snp"), "5");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.microcode"), "68");
  EXPECT_EQ(v->Find("reported_tcb.fmc"), nullptr);  // Turin only
  EXPECT_EQ(ClaimOf(*v, "current_tcb"), "0200000000000544");
  EXPECT_EQ(ClaimOf(*v, "committed_tcb.microcode"), "68");
  EXPECT_EQ(ClaimOf(*v, "launch_tcb.snp"), "5");
  EXPECT_EQ(v->tcb_status, TcbStatus::kNotEvaluated);
  EXPECT_EQ(v->collateral_expires_unix, kGoSevGuestVcekNotAfter);
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_NE(v->warnings[0].find("DEBUG"), std::string::npos);
  // What was checked, in order.
  const std::vector<std::string> expected_checks = {
      "report format: version 2, ECDSA P-384 with SHA-384",
      "ARK ARK-Milan key is the pinned root for Milan",
      "ARK ARK-Milan self-signed",
      "ASK SEV-Milan issued by the ARK",
      "VCEK SEV-VCEK issued by the ASK",
      "report signature by the VCEK (ECDSA P-384, SHA-384)",
      "VCEK TCB extensions equal reported_tcb",
      "VCEK hwID equals chip_id",
      "ARK, ASK and VCEK valid at 2025-06-01T00:00:00Z",
  };
  EXPECT_EQ(v->checks, expected_checks);
}

TEST(SnpTest, TrusteeMilanVcekReportVerifies) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeMilan);  // the bundle holds ASK, ARK and ASVK
  auto v = VerifySnpReport(l.report, l.collateral, kNow);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "measurement"),
            "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c");
  EXPECT_EQ(ClaimOf(*v, "policy"), std::to_string(0x3001f));
  EXPECT_FALSE(v->debug);
  EXPECT_TRUE(v->warnings.empty());
  EXPECT_EQ(ClaimOf(*v, "guest_svn"), "4");
  EXPECT_EQ(ClaimOf(*v, "report_data"),
            Padded("ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2", 64));
  EXPECT_EQ(ClaimOf(*v, "chip_id"),
            "c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e"
            "4fea82301135a170e477524e");
  EXPECT_EQ(ClaimOf(*v, "family_id"), "01000000000000000000000000000000");
  EXPECT_EQ(ClaimOf(*v, "image_id"), "02000000000000000000000000000000");
  EXPECT_EQ(ClaimOf(*v, "id_key_digest"),
            "0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3");
  EXPECT_EQ(ClaimOf(*v, "product"), "Milan");
  EXPECT_EQ(ClaimOf(*v, "signing_key"), "vcek");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb"), "0300000000000873");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.microcode"), "115");
  EXPECT_EQ(ClaimOf(*v, "current_tcb"), "03000000000008ce");
  EXPECT_EQ(ClaimOf(*v, "current_tcb.microcode"), "206");
}

TEST(SnpTest, MilanVlekReportVerifies) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeVlek);
  auto v = VerifySnpReport(l.report, l.collateral, kNow);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "measurement"),
            "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0");
  EXPECT_EQ(ClaimOf(*v, "policy"), std::to_string(0x30000));
  EXPECT_FALSE(v->debug);
  EXPECT_EQ(ClaimOf(*v, "report_data"),
            "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e"
            "3a480d741a4478e8a7bc27ca");
  EXPECT_EQ(ClaimOf(*v, "chip_id"), Padded("", 64));
  EXPECT_EQ(ClaimOf(*v, "vmpl"), "1");
  EXPECT_EQ(ClaimOf(*v, "version"), "3");
  EXPECT_EQ(ClaimOf(*v, "product"), "Milan");
  EXPECT_EQ(ClaimOf(*v, "signing_key"), "vlek");
  EXPECT_EQ(ClaimOf(*v, "csp_id"), "CN=cc-us-east-2.amazonaws.com");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb"), "04000000000018d9");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.microcode"), "217");
  EXPECT_EQ(ClaimOf(*v, "committed_tcb.microcode"), "219");
  EXPECT_NE(std::find(v->checks.begin(), v->checks.end(), "VLEK SEV-VLEK issued by the ASVK"), v->checks.end());
  EXPECT_NE(std::find(v->checks.begin(), v->checks.end(), "ASVK SEV-VLEK-Milan issued by the ARK"), v->checks.end());
}

TEST(SnpTest, GenoaVcekReportVerifies) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGenoa);  // a PEM VCEK
  auto v = VerifySnpReport(l.report, l.collateral, kNow);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "measurement"),
            "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae");
  EXPECT_EQ(ClaimOf(*v, "policy"), std::to_string(0x3001f));
  EXPECT_FALSE(v->debug);
  EXPECT_EQ(ClaimOf(*v, "report_data"),
            Padded("b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f", 64));
  EXPECT_EQ(ClaimOf(*v, "chip_id"),
            "0506ffba875e939c2729d20c74eb72b4c5ba6bf7ea1faaa640141f12c6d64782fb487f68ce69dcd021e914cc0d9244327bc121f0"
            "242d6470903ad1d4aaea4ad1");
  EXPECT_EQ(ClaimOf(*v, "guest_svn"), "65547");
  EXPECT_EQ(ClaimOf(*v, "family_id"), "01232000000000000000000000000000");
  EXPECT_EQ(ClaimOf(*v, "product"), "Genoa");
  EXPECT_EQ(ClaimOf(*v, "signing_key"), "vcek");
  EXPECT_EQ(ClaimOf(*v, "version"), "3");
  EXPECT_EQ(ClaimOf(*v, "platform_info"), std::to_string(0x24));
  EXPECT_EQ(ClaimOf(*v, "reported_tcb"), "0a00000000001754");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.bootloader"), "10");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.snp"), "23");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.microcode"), "84");
}

TEST(SnpTest, BundleOrderDoesNotMatter) {
  CLOISTER_REQUIRE_VECTORS();
  for (const Vector& vec : {kGoSevGuest, kTrusteeVlek}) {
    Loaded l = Load(vec);
    std::vector<Bytes> ders = PemToDer(l.collateral.ca_bundle);
    ASSERT_GE(ders.size(), 2u);
    std::reverse(ders.begin(), ders.end());
    l.collateral.ca_bundle = DerToPem(ders);
    auto v = VerifySnpReport(l.report, l.collateral, kNow);
    EXPECT_TRUE(v.ok()) << vec.report << ": " << v.status().ToString();
  }
}

// ---- tampering with the public vectors ----

TEST(SnpTest, FlippedByteInSignedAreaFailsSignature) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeMilan);
  for (size_t offset : {size_t{0x04}, size_t{0x50}, size_t{0x90}, size_t{0x29F}}) {
    Bytes r = l.report;
    r[offset] ^= 0x01;
    EXPECT_SNP_FAILS(VerifySnpReport(r, l.collateral, kNow), StatusCode::kIntegrity, "report signature");
  }
}

TEST(SnpTest, FlippedSignatureRFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.report[kR] ^= 0x01;
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity, "report signature");
}

TEST(SnpTest, FlippedSignatureSFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.report[kS + 10] ^= 0x80;
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity, "report signature");
}

TEST(SnpTest, SignatureWiderThanP384Fails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.report[kR + 60] = 0x01;  // R's bytes 48..71 must be zero
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity, "report signature R or S");
}

TEST(SnpTest, AlteredChipIdFailsSignatureFirst) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.report[0x1A0] ^= 0x01;
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity, "report signature");
}

TEST(SnpTest, BrokenArkSignatureFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.collateral.ca_bundle = BreakSignatureIn(l.collateral.ca_bundle, "ARK-Milan");
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "ARK ARK-Milan self-signature");
}

TEST(SnpTest, BrokenAskSignatureFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.collateral.ca_bundle = BreakSignatureIn(l.collateral.ca_bundle, "SEV-Milan");
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity, "ASK SEV-Milan signature");
}

TEST(SnpTest, BrokenAsvkSignatureFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeVlek);
  l.collateral.ca_bundle = BreakSignatureIn(l.collateral.ca_bundle, "SEV-VLEK-Milan");
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "ASVK SEV-VLEK-Milan signature");
}

TEST(SnpTest, BrokenVcekSignatureFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.collateral.endorsement_certificate.back() ^= 0x01;  // DER: the last byte is the signature's
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "VCEK SEV-VCEK signature by the ASK");
}

TEST(SnpTest, BrokenVlekSignatureFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeVlek);
  l.collateral.endorsement_certificate.back() ^= 0x01;
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "VLEK SEV-VLEK signature by the ASVK");
}

TEST(SnpTest, WrongArkPinFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  SnpTrust trust = DefaultSnpTrust();
  trust.pinned_arks["Milan"][0] ^= 0x01;
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow, trust), StatusCode::kIntegrity,
                   "ARK ARK-Milan is not the pinned AMD root key for Milan");
  trust.pinned_arks.erase("Milan");
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow, trust), StatusCode::kIntegrity,
                   "no ARK is pinned for product Milan");
  // The Genoa ARK is not the Milan one.
  SnpTrust swapped = DefaultSnpTrust();
  swapped.pinned_arks["Milan"] = DefaultSnpTrust().pinned_arks.at("Genoa");
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow, swapped), StatusCode::kIntegrity, "pinned");
}

TEST(SnpTest, VlekReportWithVcekChainFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeVlek);
  l.collateral.endorsement_certificate = testing::ReadVector(kTrusteeMilan.endorsement);
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "signed with a VLEK (signer_info) but the endorsement key certificate is a VCEK");
}

TEST(SnpTest, VcekReportWithVlekChainFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeMilan);
  l.collateral.endorsement_certificate = testing::ReadVector(kTrusteeVlek.endorsement);
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "signed with a VCEK (signer_info) but the endorsement key certificate is a VLEK");
}

TEST(SnpTest, VcekOfAnotherChipFailsSignature) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.collateral.endorsement_certificate = testing::ReadVector(kTrusteeMilan.endorsement);
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "report signature does not verify with the VCEK key");
}

TEST(SnpTest, VlekWithoutAsvkInBundleFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeVlek);
  l.collateral.ca_bundle = testing::ReadVector(kGoSevGuest.bundle);  // ASK and ARK only
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "no SEV-VLEK-Milan certificate (ASVK)");
}

TEST(SnpTest, BundleOfAnotherProductFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  l.collateral.ca_bundle = testing::ReadVector(kGenoa.bundle);
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity, "no ARK-Milan certificate");
}

TEST(SnpTest, ExpiredVcekFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  ASSERT_TRUE(VerifySnpReport(l.report, l.collateral, kGoSevGuestVcekNotAfter).ok());
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kGoSevGuestVcekNotAfter + 1),
                   StatusCode::kFailedPrecondition, "VCEK SEV-VCEK is not valid at 2029-09-24T00:55:29Z");
}

TEST(SnpTest, VlekNotYetValidFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kTrusteeVlek);
  const int64_t not_before = 1733868861;  // 2024-12-10T22:14:21Z
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, not_before - 1), StatusCode::kFailedPrecondition,
                   "VLEK SEV-VLEK is not valid");
}

TEST(SnpTest, TruncatedAndOverlongReportsFail) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  Bytes shorter(l.report.begin(), l.report.end() - 1);
  EXPECT_SNP_FAILS(VerifySnpReport(shorter, l.collateral, kNow), StatusCode::kIntegrity,
                   "the report is 1183 bytes, expected 1184");
  Bytes longer = l.report;
  longer.push_back(0);
  EXPECT_SNP_FAILS(VerifySnpReport(longer, l.collateral, kNow), StatusCode::kIntegrity,
                   "the report is 1185 bytes, expected 1184");
}

TEST(SnpTest, UnknownVersionFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  StoreU32(&l.report[0], 4);
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, l.collateral, kNow), StatusCode::kIntegrity,
                   "report version 4 is not supported");
}

TEST(SnpTest, GarbageCollateralFails) {
  CLOISTER_REQUIRE_VECTORS();
  Loaded l = Load(kGoSevGuest);
  SnpCollateral bad = l.collateral;
  bad.endorsement_certificate = {1, 2, 3};
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, bad, kNow), StatusCode::kIntegrity,
                   "VCEK/VLEK certificate does not parse");
  bad = l.collateral;
  bad.ca_bundle.clear();
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, bad, kNow), StatusCode::kIntegrity, "AMD CA bundle does not parse");
  bad = l.collateral;
  bad.endorsement_certificate = l.collateral.ca_bundle;  // two certificates
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, bad, kNow), StatusCode::kIntegrity, "expected one VCEK/VLEK certificate");
  bad = l.collateral;
  bad.crls.push_back({0x30, 0x00});
  EXPECT_SNP_FAILS(VerifySnpReport(l.report, bad, kNow), StatusCode::kIntegrity, "CRL 1 does not parse");
}

// ---- what no vector has: our own AMD-shaped PKI ----

TEST(SnpTest, FakeChainVerifies) {
  FakeCase f = MakeFake({});
  auto v = Verify(f);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.microcode"), "115");
  EXPECT_EQ(ClaimOf(*v, "chip_id"), HexEncode(FakeChipId()));
  EXPECT_FALSE(v->debug);
  // The real ARK pins do not accept it.
  EXPECT_SNP_FAILS(VerifySnpReport(f.report, f.collateral, kNow), StatusCode::kIntegrity, "pinned");
}

TEST(SnpTest, NegativeVcekSerialAccepted) {
  FakeSetup s;
  s.endorsement_serial = -0x1234567;
  auto v = Verify(MakeFake(s));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
}

TEST(SnpTest, DebugBitIsReportedNotRefused) {
  FakeSetup s;
  s.policy = 0x30000 | kSnpPolicyDebug;
  auto v = Verify(MakeFake(s));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->debug);
  EXPECT_EQ(ClaimOf(*v, "policy"), std::to_string(0x30000 | kSnpPolicyDebug));
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_NE(v->warnings[0].find("DEBUG"), std::string::npos);
}

TEST(SnpTest, TurinVcekWithFmcAndShortHwIdVerifies) {
  FakeSetup s;
  s.product = SnpProduct::kTurin;
  s.product_name = "Turin-B0";
  s.tcb = {1, 2, 3, 4, 90};
  s.version = 3;
  s.cpuid_family = 0x1A;
  FakeCase f = MakeFake(s);
  auto v = Verify(f);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "product"), "Turin");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb"), "010203040000005a");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.fmc"), "1");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.bootloader"), "2");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.tee"), "3");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.snp"), "4");
  EXPECT_EQ(ClaimOf(*v, "reported_tcb.microcode"), "90");

  s.edit_extensions = [](Extensions& e) {
    for (auto& [oid, value] : e) {
      if (oid == kOidFmc) value = DerInteger(2);
    }
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "VCEK fmcSPL 2 differs from reported_tcb fmc 1");
  s.edit_extensions = [](Extensions& e) {
    std::erase_if(e, [](const auto& x) { return x.first == kOidFmc; });
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "VCEK has no fmcSPL extension");
  s.edit_extensions = [](Extensions& e) {
    for (auto& [oid, value] : e) {
      if (oid == kOidHwId) value[7] ^= 0x01;
    }
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "VCEK hwID differs from the report's chip_id");
}

TEST(SnpTest, CpuidFamilyMustFitProduct) {
  FakeSetup s;
  s.version = 3;
  s.cpuid_family = 0x1A;  // Zen 5 with a Milan VCEK
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "CPUID family 26 does not fit product Milan");
  s.cpuid_family = 0x19;
  EXPECT_TRUE(Verify(MakeFake(s)).ok());
}

TEST(SnpTest, SplMismatchFails) {
  const std::pair<const char*, const char*> cases[] = {
      {kOidBl, "VCEK blSPL 9 differs from reported_tcb bootloader 3"},
      {kOidTee, "VCEK teeSPL 9 differs from reported_tcb tee 0"},
      {kOidSnp, "VCEK snpSPL 9 differs from reported_tcb snp 8"},
      {kOidUcode, "VCEK ucodeSPL 9 differs from reported_tcb microcode 115"},
  };
  for (const auto& [which, message] : cases) {
    FakeSetup s;
    s.edit_extensions = [which = std::string(which)](Extensions& e) {
      for (auto& [oid, value] : e) {
        if (oid == which) value = DerInteger(9);
      }
    };
    EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, message);
  }
  FakeSetup missing;
  missing.edit_extensions = [](Extensions& e) {
    std::erase_if(e, [](const auto& x) { return x.first == kOidSnp; });
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(missing)), StatusCode::kIntegrity, "VCEK has no snpSPL extension");
  FakeSetup not_integer;
  not_integer.edit_extensions = [](Extensions& e) {
    for (auto& [oid, value] : e) {
      if (oid == kOidBl) value = DerIa5("3");
    }
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(not_integer)), StatusCode::kIntegrity, "VCEK blSPL is not an integer");
}

TEST(SnpTest, HwIdMismatchFailsUnlessChipIdMasked) {
  FakeSetup s;
  s.edit_extensions = [](Extensions& e) {
    for (auto& [oid, value] : e) {
      if (oid == kOidHwId) value[63] ^= 0x01;
    }
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "VCEK hwID differs from the report's chip_id");
  s.signer_info = 2;  // MASK_CHIP_KEY: chip_id is zero, hwID not compared
  auto v = Verify(MakeFake(s));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "chip_id"), Padded("", 64));
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_NE(v->warnings[0].find("MASK_CHIP_KEY"), std::string::npos);

  FakeSetup no_hwid;
  no_hwid.edit_extensions = [](Extensions& e) {
    std::erase_if(e, [](const auto& x) { return x.first == kOidHwId; });
  };
  EXPECT_SNP_FAILS(Verify(MakeFake(no_hwid)), StatusCode::kIntegrity, "VCEK has no hwID extension");
}

TEST(SnpTest, FakeVlekVerifies) {
  FakeSetup s;
  s.vlek = true;
  auto v = Verify(MakeFake(s));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "signing_key"), "vlek");
  EXPECT_EQ(ClaimOf(*v, "csp_id"), "CN=csp.example");
}

TEST(SnpTest, ProductFromIssuerWhenNoProductName) {
  FakeSetup s;
  s.product = SnpProduct::kGenoa;
  s.product_name = "";
  auto v = Verify(MakeFake(s));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(ClaimOf(*v, "product"), "Genoa");
}

TEST(SnpTest, ProductNameMustFitIssuer) {
  FakeSetup s;
  s.product_name = "Genoa";  // but issued by SEV-Milan
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity,
                   "VCEK (product Genoa) is issued by SEV-Milan, not SEV-Genoa");
  s.product_name = "Rome-B0";
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "VCEK productName \"Rome-B0\" is not a known product");
}

TEST(SnpTest, UnsignedOrReservedSigningKeyFails) {
  FakeSetup s;
  s.signer_info = 7u << 2;
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "not signed");
  s.signer_info = 3u << 2;
  EXPECT_SNP_FAILS(Verify(MakeFake(s)), StatusCode::kIntegrity, "signing_key 3 is reserved");
}

TEST(SnpTest, CrlRevokingAskFails) {
  FakeSetup s;
  FakeCase f = MakeFake(s);
  const FakeKeys& k = Keys();
  f.collateral.crls.push_back(MakeCrl(k.ark.get(), "ARK-Milan", 0x999));  // another serial
  auto v = Verify(f);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_NE(std::find(v->checks.begin(), v->checks.end(), "ASK SEV-Milan not revoked (CRL 1 of ARK-Milan)"),
            v->checks.end());
  EXPECT_EQ(v->collateral_expires_unix, kNow + 86400);  // the CRL's nextUpdate

  f.collateral.crls.push_back(MakeCrl(k.ark.get(), "ARK-Milan", s.ask_serial));
  EXPECT_SNP_FAILS(Verify(f), StatusCode::kIntegrity, "ASK SEV-Milan is revoked (CRL 2 of ARK-Milan)");
}

TEST(SnpTest, CrlNotSignedByArkFails) {
  FakeCase f = MakeFake({});
  f.collateral.crls.push_back(MakeCrl(Keys().other.get(), "ARK-Milan", std::nullopt));
  EXPECT_SNP_FAILS(Verify(f), StatusCode::kIntegrity, "CRL 1 is not signed by ARK-Milan");
}

TEST(SnpTest, StaleCrlIsAWarning) {
  FakeCase f = MakeFake({});
  f.collateral.crls.push_back(MakeCrl(Keys().ark.get(), "ARK-Milan", std::nullopt));
  auto v = Verify(f, kNow + 2 * 86400);  // after the CRL's nextUpdate
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_NE(v->warnings[0].find("CRL 1 of ARK-Milan is not current"), std::string::npos) << v->warnings[0];
}

TEST(SnpTest, ArkNotSelfSignedFails) {
  // An "ARK" with the pinned key's name and key but signed by another key.
  FakeCase f = MakeFake({});
  const FakeKeys& k = Keys();
  Bytes ark = MakeCert({"ARK-Milan", "ARK-Milan", k.ark.get(), k.other.get(), 1, kNow - 86400, kNow + 86400, true});
  std::vector<Bytes> ders = PemToDer(f.collateral.ca_bundle);
  ders.back() = ark;
  f.collateral.ca_bundle = DerToPem(ders);
  EXPECT_SNP_FAILS(Verify(f), StatusCode::kIntegrity, "ARK ARK-Milan self-signature does not verify");
}

TEST(SnpTest, AskThatIsNotACaFails) {
  FakeCase f = MakeFake({});
  const FakeKeys& k = Keys();
  Bytes ask = MakeCert({"SEV-Milan", "ARK-Milan", k.ask.get(), k.ark.get(), 0x1234, kNow - 86400, kNow + 86400, false});
  std::vector<Bytes> ders = PemToDer(f.collateral.ca_bundle);
  ders.front() = ask;
  f.collateral.ca_bundle = DerToPem(ders);
  EXPECT_SNP_FAILS(Verify(f), StatusCode::kIntegrity, "ASK SEV-Milan is not a CA certificate");
}

TEST(SnpTest, TwoDifferentAsksInBundleFail) {
  FakeCase f = MakeFake({});
  const FakeKeys& k = Keys();
  std::vector<Bytes> ders = PemToDer(f.collateral.ca_bundle);
  ders.push_back(MakeCert({"SEV-Milan", "ARK-Milan", k.other.get(), k.ark.get(), 7, kNow - 86400, kNow + 86400, true}));
  f.collateral.ca_bundle = DerToPem(ders);
  EXPECT_SNP_FAILS(Verify(f), StatusCode::kIntegrity, "two different certificates named SEV-Milan");
}

TEST(SnpTest, ExpiredAskFails) {
  FakeCase f = MakeFake({});
  const FakeKeys& k = Keys();
  Bytes ask = MakeCert({"SEV-Milan", "ARK-Milan", k.ask.get(), k.ark.get(), 0x1234, kNow - 86400 * 10, kNow - 1, true});
  std::vector<Bytes> ders = PemToDer(f.collateral.ca_bundle);
  ders.front() = ask;
  f.collateral.ca_bundle = DerToPem(ders);
  EXPECT_SNP_FAILS(Verify(f), StatusCode::kFailedPrecondition, "ASK SEV-Milan is not valid");
}

// A certificate table as a host hands it to a guest: entries, an all-zero
// terminator, then the data.
Bytes Table(const std::vector<std::pair<uint8_t, Bytes>>& entries) {
  Bytes head, body;
  const size_t data_start = (entries.size() + 1) * 24;
  for (const auto& [tag, data] : entries) {
    Bytes e(16, tag);
    for (uint64_t v : {data_start + body.size(), static_cast<uint64_t>(data.size())}) {
      for (int i = 0; i < 4; ++i) e.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    head.insert(head.end(), e.begin(), e.end());
    body.insert(body.end(), data.begin(), data.end());
  }
  head.resize(head.size() + 24, 0);
  head.insert(head.end(), body.begin(), body.end());
  return head;
}

TEST(SnpTest, CertificateTableEntries) {
  Bytes table = Table({{0x63, Bytes{1, 2, 3}}, {0x4a, Bytes{4, 5}}});
  auto entries = ParseSnpCertificateTable(table);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].guid[0], 0x63);
  EXPECT_EQ((*entries)[0].data, (Bytes{1, 2, 3}));
  EXPECT_EQ((*entries)[1].data, (Bytes{4, 5}));
  auto empty = ParseSnpCertificateTable(Table({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(SnpTest, CertificateTableBoundsAreChecked) {
  Bytes table = Table({{0x63, Bytes{1, 2, 3}}});
  Bytes past = table;
  past[20] = 4;  // length one past the end
  EXPECT_SNP_FAILS(ParseSnpCertificateTable(past), StatusCode::kIntegrity, "ends past the table");
  Bytes into = table;
  into[16] = 8;  // data inside the entries
  EXPECT_SNP_FAILS(ParseSnpCertificateTable(into), StatusCode::kIntegrity, "points into the entries");
  Bytes unended(16, 0x63);  // one entry, no data, and no terminator
  unended.insert(unended.end(), {24, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_SNP_FAILS(ParseSnpCertificateTable(unended), StatusCode::kIntegrity, "no terminating entry");
  EXPECT_SNP_FAILS(ParseSnpCertificateTable(Bytes{}), StatusCode::kIntegrity, "no terminating entry");
  Bytes huge(65 * 1024, 0);
  EXPECT_SNP_FAILS(ParseSnpCertificateTable(huge), StatusCode::kIntegrity, "larger than 64 KiB");
}

}  // namespace
}  // namespace cloister::attest
