#include "attest/dcap.h"

#include <gtest/gtest.h>

#include <functional>

#include "attest/collateral.h"
#include "attest/test_vectors.h"
#include "crypto/x509.h"

namespace cloister::attest {
namespace {

using testing::ReadVector;
using testing::ReadVectorText;

int64_t At(const char* t) { return *crypto::ParseRfc3339(t); }

std::string Claim(const HardwareVerdict& v, const char* name) {
  const std::string* s = v.Find(name);
  return s == nullptr ? "(absent)" : *s;
}

// The dcap-qvl sample collateral, from its one-file JSON.
DcapCollateral QvlCollateral(const char* name) {
  auto c = DcapCollateralFromJson(ReadVectorText(std::string("dcap-qvl/") + name + "_collateral.json"));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : DcapCollateral{};
}

// The same collateral from the separate files (PCCS response form).
DcapCollateral QvlCollateralFiles(const char* name) {
  std::string base = std::string("dcap-qvl/") + name;
  DcapCollateral c;
  c.tcb_info_json = ReadVectorText(base + ".tcbInfo.json");
  c.qe_identity_json = ReadVectorText(base + ".qeIdentity.json");
  c.tcb_info_issuer_chain = ReadVector(base + ".tcbchain.pem");
  c.qe_identity_issuer_chain = ReadVector(base + ".qechain.pem");
  c.root_ca_crl = ReadVector(base + ".root_ca_crl.der");
  c.pck_crls = {ReadVector(base + ".pck_crl.der")};
  return c;
}

DcapTrust TrustOf(const std::string& root_pem_path) {
  Bytes pem = ReadVector(root_pem_path);
  auto root = crypto::Certificate::FromPem(std::string_view(reinterpret_cast<const char*>(pem.data()), pem.size()));
  EXPECT_TRUE(root.ok()) << root.status().ToString();
  DcapTrust t;
  if (root.ok()) t.root_spki_sha256.push_back((*root)->SpkiSha256());
  return t;
}

TEST(DcapTest, SgxQuoteWithCollateral) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes quote = ReadVector("dcap-qvl/sgx_quote");
  for (const DcapCollateral& c : {QvlCollateral("sgx_quote"), QvlCollateralFiles("sgx_quote")}) {
    auto v = VerifyDcapQuote(quote, &c, At("2025-07-01T00:00:00Z"));
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->type, "sgx");
    EXPECT_EQ(v->tcb_status, TcbStatus::kConfigurationAndSWHardeningNeeded);
    EXPECT_EQ(v->advisories, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
    EXPECT_FALSE(v->debug);
    EXPECT_TRUE(v->warnings.empty()) << v->warnings[0];
    EXPECT_EQ(Claim(*v, "mrenclave"), "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
    EXPECT_EQ(Claim(*v, "mrsigner"), "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
    EXPECT_EQ(Claim(*v, "isvprodid"), "0");
    EXPECT_EQ(Claim(*v, "isvsvn"), "0");
    EXPECT_EQ(Claim(*v, "fmspc"), "00a067110000");
    EXPECT_EQ(Claim(*v, "report_data").substr(0, 26), "48656c6c6f2c20776f726c6421");  // "Hello, world!"
    EXPECT_EQ(v->collateral_expires_unix, At("2025-07-19T10:01:18Z"));
  }
}

TEST(DcapTest, TdxQuoteWithCollateral) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes quote = ReadVector("dcap-qvl/tdx_quote");
  auto parsed = ParseDcapQuote(quote);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->trailing_bytes, 70u);
  DcapCollateral c = QvlCollateral("tdx_quote");
  auto v = VerifyDcapQuote(quote, &c, At("2025-07-01T00:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->type, "tdx");
  EXPECT_EQ(v->tcb_status, TcbStatus::kUpToDate);
  EXPECT_FALSE(v->debug);
  EXPECT_EQ(Claim(*v, "mrtd"),
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
  EXPECT_EQ(Claim(*v, "tdattributes"), "0000001000000000");
  EXPECT_EQ(Claim(*v, "tee_tcb_svn"), "06010300000000000000000000000000");
  EXPECT_EQ(Claim(*v, "rtmr0"),
            "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0");
  EXPECT_EQ(Claim(*v, "fmspc"), "b0c06f000000");
}

TEST(DcapTest, TdxQuoteWithoutMatchingTcbLevelIsNotSupported) {
  CLOISTER_REQUIRE_VECTORS();
  // go-tdx-guest's production quote with its (older) collateral: every
  // signature holds, but no TCB level fits the platform.
  DcapCollateral c;
  c.tcb_info_json = ReadVectorText("tdx/go-tdx-guest/sample_tcbInfo_response");
  c.qe_identity_json = ReadVectorText("tdx/go-tdx-guest/sample_qeIdentity_response");
  c.tcb_info_issuer_chain = ReadVector("tdx/go-tdx-guest/tcbInfoIssuerChain.pem");
  c.qe_identity_issuer_chain = ReadVector("tdx/go-tdx-guest/qeIdentityIssuerChain.pem");
  c.root_ca_crl = ReadVector("tdx/go-tdx-guest/rootcrl.der");
  c.pck_crls = {ReadVector("tdx/go-tdx-guest/pckcrl")};
  auto v = VerifyDcapQuote(ReadVector("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"), &c, At("2023-07-01T01:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->tcb_status, TcbStatus::kNotSupported);
  EXPECT_EQ(Claim(*v, "mrtd"),
            "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb");
}

TEST(DcapTest, TdxVersion5Quote) {
  CLOISTER_REQUIRE_VECTORS();
  DcapCollateral c;
  c.tcb_info_json = ReadVectorText("tdx/go-tdx-guest/sample_tcbinfo_response_v5");
  c.qe_identity_json = ReadVectorText("tdx/go-tdx-guest/sample_qeIdentity_response");
  // This TCB Info was signed in 2026, after the sample's TCB Signing
  // certificate expired; its successor (same key) comes with dcap-qvl.
  c.tcb_info_issuer_chain = ReadVector("dcap-qvl/tdx_quote.tcbchain.pem");
  c.qe_identity_issuer_chain = c.tcb_info_issuer_chain;
  auto v = VerifyDcapQuote(ReadVector("tdx/go-tdx-guest/quote_v5_sample.dat"), &c, At("2026-02-03T01:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->tcb_status, TcbStatus::kUpToDate);
  EXPECT_EQ(Claim(*v, "mrtd"),
            "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876");
  EXPECT_NE(v->Find("tee_tcb_svn2"), nullptr);
  // The QE Identity of this sample expired in 2023, and no CRLs came with
  // it: both said, not hidden.
  std::string all;
  for (const std::string& w : v->warnings) all += w + "\n";
  EXPECT_NE(all.find("QE Identity expired at 2023-07-08T07:24:59Z"), std::string::npos) << all;
  EXPECT_NE(all.find("no CRLs given"), std::string::npos) << all;
}

TEST(DcapTest, QuotesWithoutCollateralStillVerifySignaturesAndChain) {
  CLOISTER_REQUIRE_VECTORS();
  struct Case {
    const char* file;
    const char* type;
    bool debug;
  };
  for (const Case& c : {Case{"tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat", "tdx", false},
                        Case{"trustee/occlum_quote.dat", "sgx", true}, Case{"trustee/tdx_quote_4.dat", "tdx", true},
                        Case{"trustee/tdx_quote_5.dat", "tdx", false},
                        Case{"trustee/az-tdx-vtpm/td-quote.bin", "tdx", false}}) {
    auto v = VerifyDcapQuote(ReadVector(c.file), nullptr, At("2025-01-01T00:00:00Z"));
    ASSERT_TRUE(v.ok()) << c.file << ": " << v.status().ToString();
    EXPECT_EQ(v->type, c.type) << c.file;
    EXPECT_EQ(v->debug, c.debug) << c.file;
    EXPECT_EQ(v->tcb_status, TcbStatus::kNotEvaluated) << c.file;
  }
  auto occlum = VerifyDcapQuote(ReadVector("trustee/occlum_quote.dat"), nullptr, At("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(occlum.ok());
  EXPECT_EQ(Claim(*occlum, "mrenclave"), "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68");
  EXPECT_EQ(Claim(*occlum, "attributes").substr(0, 2), "07");
}

// The sample collateral of Intel's Quote Verification Library (test PKI).
DcapCollateral IntelSampleCollateral(const std::string& dir) {
  DcapCollateral c;
  c.tcb_info_json = ReadVectorText(dir + "tcbInfo.json");
  c.qe_identity_json = ReadVectorText(dir + "qeIdentity.json");
  c.tcb_info_issuer_chain = ReadVector(dir + "tcbSignChain.pem");
  c.root_ca_crl = ReadVector(dir + "rootCaCrl.der");
  c.pck_crls = {ReadVector(dir + "intermediateCaCrl.der")};
  return c;
}

TEST(DcapTest, IntelSampleQuoteWithPpidAndTestRoot) {
  CLOISTER_REQUIRE_VECTORS();
  const std::string dir = "sgx/intel-qvl-sample/";
  DcapCollateral c = IntelSampleCollateral(dir);
  c.pck_certificate_chain = ReadVector(dir + "pckCert.pem");
  Bytes chain = ReadVector(dir + "pckSignChain.pem");
  c.pck_certificate_chain.insert(c.pck_certificate_chain.end(), chain.begin(), chain.end());
  Bytes quote = ReadVector(dir + "quote.dat");
  // Its root is a test root, not Intel's: refused by default.
  auto refused = VerifyDcapQuote(quote, &c, At("2024-01-01T00:00:00Z"));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not a trusted root"), std::string::npos) << refused.status().message();
  auto v = VerifyDcapQuote(quote, &c, At("2024-01-01T00:00:00Z"), TrustOf(dir + "trustedRootCaCert.pem"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->tcb_status, TcbStatus::kUpToDate);
  // Without the PCK certificate a PPID-only quote cannot be verified.
  c.pck_certificate_chain.clear();
  auto no_pck = VerifyDcapQuote(quote, &c, At("2024-01-01T00:00:00Z"), TrustOf(dir + "trustedRootCaCert.pem"));
  ASSERT_FALSE(no_pck.ok());
  EXPECT_NE(no_pck.status().message().find("no PCK certificate"), std::string::npos);
}

TEST(DcapTest, IntelSampleTdxQuoteFailsOnItsQeIdentity) {
  CLOISTER_REQUIRE_VECTORS();
  const std::string dir = "sgx/intel-qvl-sample/tdx/";
  DcapCollateral c = IntelSampleCollateral(dir);
  DcapTrust trust = TrustOf(dir + "trustedRootCaCert.pem");
  Bytes quote = ReadVector(dir + "quote.dat");
  auto sigs = VerifyDcapQuote(quote, nullptr, At("2024-01-01T00:00:00Z"), trust);
  ASSERT_TRUE(sigs.ok()) << sigs.status().ToString();
  auto v = VerifyDcapQuote(quote, &c, At("2024-01-01T00:00:00Z"), trust);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kIntegrity);
  EXPECT_NE(v.status().message().find("MRSIGNER"), std::string::npos) << v.status().message();
}

// ---- negative cases built from the dcap-qvl SGX and TDX quotes ----

struct Mutation {
  const char* what;
  std::function<void(Bytes&, const DcapQuote&)> apply;
  const char* expect;  // part of the error message
};

size_t SigDataAt(const DcapQuote& q) { return q.signed_size + 4; }

void ExpectRefused(const char* vector, const std::vector<Mutation>& mutations) {
  Bytes orig = ReadVector(std::string("dcap-qvl/") + vector);
  auto parsed = ParseDcapQuote(orig);
  ASSERT_TRUE(parsed.ok());
  DcapCollateral c = QvlCollateral(vector);
  ASSERT_TRUE(VerifyDcapQuote(orig, &c, At("2025-07-01T00:00:00Z")).ok());
  for (const Mutation& m : mutations) {
    Bytes b = orig;
    m.apply(b, *parsed);
    auto v = VerifyDcapQuote(b, &c, At("2025-07-01T00:00:00Z"));
    ASSERT_FALSE(v.ok()) << vector << ": " << m.what << " was accepted";
    EXPECT_EQ(v.status().code(), StatusCode::kIntegrity) << m.what << ": " << v.status().ToString();
    EXPECT_NE(v.status().message().find(m.expect), std::string::npos)
        << vector << ": " << m.what << ": \"" << v.status().message() << "\" does not say \"" << m.expect << "\"";
  }
}

std::vector<Mutation> CommonMutations(size_t body_at, size_t debug_at, uint8_t debug_bit) {
  auto sig = [](const DcapQuote& q) { return SigDataAt(q); };
  // Offsets inside the QE section: v3 has it right after sig+key, v4/v5
  // after the 6-byte type-6 header.
  auto qe = [](const DcapQuote& q) { return SigDataAt(q) + 128 + (q.version == 3 ? 0 : 6); };
  auto len_at = [](Bytes& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  };
  return {
      {"a report body byte", [=](Bytes& b, const DcapQuote&) { b[body_at + 70] ^= 1; }, "quote signature"},
      {"the DEBUG flag", [=](Bytes& b, const DcapQuote&) { b[debug_at] |= debug_bit; }, "quote signature"},
      {"a header byte (user data)", [](Bytes& b, const DcapQuote&) { b[30] ^= 1; }, "quote signature"},
      {"the quote signature (r)", [=](Bytes& b, const DcapQuote& q) { b[sig(q) + 3] ^= 1; }, "quote signature"},
      {"the quote signature (s)", [=](Bytes& b, const DcapQuote& q) { b[sig(q) + 40] ^= 1; }, "quote signature"},
      {"the attestation key", [=](Bytes& b, const DcapQuote& q) { b[sig(q) + 70] ^= 1; }, "QE report data"},
      {"the QE report", [=](Bytes& b, const DcapQuote& q) { b[qe(q) + 100] ^= 1; }, "QE report's signature"},
      {"the QE report signature", [=](Bytes& b, const DcapQuote& q) { b[qe(q) + 384 + 5] ^= 1; },
       "QE report's signature"},
      {"the QE auth data", [=](Bytes& b, const DcapQuote& q) { b[qe(q) + 384 + 64 + 2 + 1] ^= 1; }, "QE report data"},
      {"a byte of the PCK certificate",
       [=](Bytes& b, const DcapQuote& q) {
         // Inside the base64 of the first certificate of the PEM chain.
         const size_t cert_at = qe(q) + 384 + 64 + 2 + q.qe_auth_data.size() + 6;
         b[cert_at + 200] = b[cert_at + 200] == 'A' ? 'B' : 'A';
       },
       "certificate"},
      {"the signature data length (too long)",
       [=](Bytes& b, const DcapQuote& q) { len_at(b, q.signed_size, static_cast<uint32_t>(b.size())); }, "runs past"},
      {"the signature data length (too short)",
       [=](Bytes& b, const DcapQuote& q) { len_at(b, q.signed_size, 100); }, "too short"},
      {"the QE auth data length",
       [=](Bytes& b, const DcapQuote& q) {
         b[qe(q) + 384 + 64] = 0xff;
         b[qe(q) + 384 + 64 + 1] = 0xff;
       },
       "runs past"},
      {"the certification data length",
       [=](Bytes& b, const DcapQuote& q) {
         len_at(b, qe(q) + 384 + 64 + 2 + q.qe_auth_data.size() + 2, static_cast<uint32_t>(q.cert_data.size() + 1));
       },
       "runs past"},
      {"the quote version", [](Bytes& b, const DcapQuote&) { b[0] = 2; }, "unsupported quote version"},
      {"the attestation key type", [](Bytes& b, const DcapQuote&) { b[2] = 3; }, "not ECDSA P-256"},
      {"the QE vendor", [](Bytes& b, const DcapQuote&) { b[12] ^= 1; }, "not Intel's"},
      {"a truncated quote", [](Bytes& b, const DcapQuote&) { b.resize(300); }, "shorter than"},
  };
}

TEST(DcapTest, EveryAlteredSgxFieldIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  // SGX body at 48; ATTRIBUTES.flags at body offset 48 (DEBUG = bit 1).
  ExpectRefused("sgx_quote", CommonMutations(48, 48 + 48, 0x02));
}

TEST(DcapTest, EveryAlteredTdxFieldIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  // TD body at 48; TDATTRIBUTES at body offset 120 (DEBUG = bit 0).
  ExpectRefused("tdx_quote", CommonMutations(48, 48 + 120, 0x01));
}

TEST(DcapTest, AlteredCollateralIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes quote = ReadVector("dcap-qvl/sgx_quote");
  const int64_t now = At("2025-07-01T00:00:00Z");
  auto refused = [&](const char* what, const std::function<void(DcapCollateral&)>& change, const char* expect) {
    DcapCollateral c = QvlCollateralFiles("sgx_quote");
    change(c);
    auto v = VerifyDcapQuote(quote, &c, now);
    ASSERT_FALSE(v.ok()) << what << " was accepted";
    EXPECT_NE(v.status().message().find(expect), std::string::npos)
        << what << ": \"" << v.status().message() << "\" does not say \"" << expect << "\"";
  };
  auto replace_first = [](std::string& s, const std::string& from, const std::string& to) {
    size_t at = s.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
  };
  // Every TCB component and status the platform is judged by is signed.
  refused("a TCB component of TCB Info",
          [&](DcapCollateral& c) { replace_first(c.tcb_info_json, "{\"svn\":11}", "{\"svn\":10}"); },
          "TCB Info: signature");
  refused("a TCB status of TCB Info",
          [&](DcapCollateral& c) { replace_first(c.tcb_info_json, "\"SWHardeningNeeded\"", "\"UpToDate\"         "); },
          "TCB Info: signature");
  refused("the TCB Info signature",
          [&](DcapCollateral& c) {
            size_t at = c.tcb_info_json.find("\"signature\":\"") + 13;
            c.tcb_info_json[at] = c.tcb_info_json[at] == '0' ? '1' : '0';
          },
          "TCB Info: signature");
  refused("the QE Identity's ISVSVN levels",
          [&](DcapCollateral& c) { replace_first(c.qe_identity_json, "\"isvsvn\":8", "\"isvsvn\":9"); },
          "QE Identity: signature");
  refused("the TCB signing chain (another root)",
          [&](DcapCollateral& c) { c.tcb_info_issuer_chain = ReadVector("sgx/intel-qvl-sample/tcbSignChain.pem"); },
          "not a trusted root");
  refused("the CRLs swapped",
          [&](DcapCollateral& c) { std::swap(c.root_ca_crl, c.pck_crls[0]); }, "CRL");
  refused("a CRL's signature",
          [&](DcapCollateral& c) { c.pck_crls[0][c.pck_crls[0].size() - 3] ^= 1; }, "PCK CRL");
}

TEST(DcapTest, TimeIsChecked) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes quote = ReadVector("dcap-qvl/sgx_quote");
  DcapCollateral c = QvlCollateral("sgx_quote");
  // After the collateral's nextUpdate: still verified, and said.
  auto late = VerifyDcapQuote(quote, &c, At("2025-08-01T00:00:00Z"));
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  std::string all;
  for (const std::string& w : late->warnings) all += w + "\n";
  EXPECT_NE(all.find("TCB Info expired at 2025-07-19T10:56:11Z"), std::string::npos) << all;
  EXPECT_NE(all.find("CRL of Intel SGX PCK Processor CA expired at"), std::string::npos) << all;
  // Before TCB Info was issued: refused.
  auto early = VerifyDcapQuote(quote, &c, At("2025-06-01T00:00:00Z"));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), StatusCode::kFailedPrecondition);
  // After the PCK certificate expired (2030-09-20): refused.
  auto expired = VerifyDcapQuote(quote, nullptr, At("2031-01-01T00:00:00Z"));
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(expired.status().message().find("expired at"), std::string::npos) << expired.status().message();
}

TEST(DcapTest, ParserStaysInBounds) {
  CLOISTER_REQUIRE_VECTORS();
  // Every prefix of a real quote is refused or parsed without reading past it.
  Bytes quote = ReadVector("dcap-qvl/tdx_quote");
  auto full = ParseDcapQuote(quote);
  ASSERT_TRUE(full.ok());
  const size_t needed = quote.size() - full->trailing_bytes;
  for (size_t n = 0; n < quote.size(); n += 7) {
    auto q = ParseDcapQuote(std::span<const uint8_t>(quote.data(), n));
    EXPECT_EQ(q.ok(), n >= needed) << n;
  }
}

}  // namespace
}  // namespace cloister::attest

namespace cloister::attest {
namespace {

std::vector<CollateralFile> Files(const std::vector<std::string>& paths) {
  std::vector<CollateralFile> out;
  for (const std::string& p : paths) out.push_back({p, testing::ReadVector(p)});
  return out;
}

TEST(CollateralTest, FilesAreRecognisedByContent) {
  CLOISTER_REQUIRE_VECTORS();
  // One directory holding the collateral of several quotes, and a stray file.
  auto set = ClassifyCollateral(Files({
      "dcap-qvl/sgx_quote.tcbInfo.json", "dcap-qvl/sgx_quote.qeIdentity.json", "dcap-qvl/tdx_quote.tcbInfo.json",
      "dcap-qvl/tdx_quote.qeIdentity.json", "dcap-qvl/sgx_quote.tcbchain.pem", "dcap-qvl/sgx_quote.root_ca_crl.der",
      "dcap-qvl/sgx_quote.pck_crl.der", "dcap-qvl/tdx_quote.pck_crl.der", "dcap-qvl/sgx_quote.pckcrlchain.pem",
      "snp/go-sev-guest/ask_ark_milan.pem", "MANIFEST.md"}));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->tcb_infos.size(), 2u);
  EXPECT_EQ(set->qe_identities.size(), 2u);
  EXPECT_EQ(set->intel_pck_crls.size(), 2u);
  EXPECT_FALSE(set->intel_root_ca_crl.empty());
  EXPECT_EQ(set->amd_certificates.size(), 1u);
  EXPECT_EQ(set->unrecognised, std::vector<std::string>{"MANIFEST.md"});

  for (const char* name : {"sgx_quote", "tdx_quote"}) {
    Bytes quote = testing::ReadVector(std::string("dcap-qvl/") + name);
    // The platform the quote names chooses the collateral.
    auto platform = ReadDcapPlatform(quote, set->pck_certificates);
    ASSERT_TRUE(platform.ok()) << platform.status().ToString();
    auto c = SelectDcapCollateral(*set, platform->fmspc, platform->tdx);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto v = VerifyDcapQuote(quote, &*c, At("2025-07-01T00:00:00Z"));
    ASSERT_TRUE(v.ok()) << name << ": " << v.status().ToString();
    EXPECT_EQ(v->tcb_status, platform->tdx ? TcbStatus::kUpToDate : TcbStatus::kConfigurationAndSWHardeningNeeded);
    EXPECT_TRUE(v->warnings.empty()) << v->warnings[0];
  }
  auto missing = SelectDcapCollateral(*set, "00906ea10000", false);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("00906ea10000"), std::string::npos);
}

TEST(CollateralTest, OneFileFormAndMalformedFiles) {
  CLOISTER_REQUIRE_VECTORS();
  auto set = ClassifyCollateral(Files({"dcap-qvl/sgx_quote_collateral.json"}));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->tcb_infos.size(), 1u);
  EXPECT_FALSE(set->tcb_signing_chain.empty());
  EXPECT_FALSE(ClassifyCollateral({{"broken.json", Bytes{'{', '"', 'x'}}}).ok());
  std::string pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  EXPECT_FALSE(ClassifyCollateral({{"broken.pem", Bytes(pem.begin(), pem.end())}}).ok());
}

}  // namespace
}  // namespace cloister::attest
