#include "crypto/x509.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "attest/test_vectors.h"
#include "base/bytes.h"

namespace cloister::crypto {
namespace {

using attest::testing::ReadVector;

TEST(X509Test, Rfc3339RoundTrips) {
  auto t = ParseRfc3339("2025-06-19T10:56:11Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, 1750330571);
  EXPECT_EQ(FormatRfc3339(*t), "2025-06-19T10:56:11Z");
  EXPECT_EQ(*ParseRfc3339("2025-06-19T10:56:11.123Z"), 1750330571);
  EXPECT_EQ(*ParseRfc3339("2025-06-19T10:56:11+00:00"), 1750330571);
  for (const char* bad : {"", "2025-06-19", "2025-06-19T10:56:11", "2025-06-19T10:56:11+01:00", "2025-13-19T10:56:11Z",
                          "2025-06-19T10:56:11.Z", "2025-06-19 10:56:11Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(X509Test, EcdsaRawAndDerSignatures) {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  ASSERT_NE(raw, nullptr);
  BIGNUM *x = nullptr, *y = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(raw, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
  ASSERT_EQ(EVP_PKEY_get_bn_param(raw, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
  Bytes xb(32), yb(32);
  BN_bn2binpad(x, xb.data(), 32);
  BN_bn2binpad(y, yb.data(), 32);
  BN_free(x);
  BN_free(y);
  Bytes msg = {'q', 'u', 'o', 't', 'e'};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, raw), 1);
  size_t n = 0;
  ASSERT_EQ(EVP_DigestSign(ctx, nullptr, &n, msg.data(), msg.size()), 1);
  Bytes der(n);
  ASSERT_EQ(EVP_DigestSign(ctx, der.data(), &n, msg.data(), msg.size()), 1);
  der.resize(n);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(raw);

  auto key = PublicKey::FromEcPoint("P-256", xb, yb);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->Describe(), "EC P-256");
  EXPECT_TRUE((*key)->VerifyEcdsaDer(HashAlg::kSha256, msg, der).ok());
  // The same signature as r and s.
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  ASSERT_NE(sig, nullptr);
  Bytes r(static_cast<size_t>(BN_num_bytes(ECDSA_SIG_get0_r(sig)))), s(static_cast<size_t>(BN_num_bytes(ECDSA_SIG_get0_s(sig))));
  BN_bn2bin(ECDSA_SIG_get0_r(sig), r.data());
  BN_bn2bin(ECDSA_SIG_get0_s(sig), s.data());
  ECDSA_SIG_free(sig);
  EXPECT_TRUE((*key)->VerifyEcdsaRaw(HashAlg::kSha256, msg, r, s).ok());
  Bytes other = msg;
  other[0] ^= 1;
  Status bad = (*key)->VerifyEcdsaRaw(HashAlg::kSha256, other, r, s);
  EXPECT_EQ(bad.code(), StatusCode::kIntegrity);
  EXPECT_NE(bad.message().find("does not verify"), std::string::npos) << bad.message();
  EXPECT_FALSE((*key)->VerifyEcdsaRaw(HashAlg::kSha384, msg, r, s).ok());
  EXPECT_FALSE((*key)->VerifyRsaPkcs1(HashAlg::kSha256, msg, der).ok());
  // A point off the curve is refused.
  yb[31] ^= 1;
  EXPECT_EQ(PublicKey::FromEcPoint("P-256", xb, yb).status().code(), StatusCode::kIntegrity);
  EXPECT_FALSE(PublicKey::FromEcPoint("P-521", xb, yb).ok());
}

TEST(X509Test, IntelRootAndTcbSigningChain) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes root_pem = ReadVector("intel_sgx_root_ca.pem");
  auto root = Certificate::FromPem(std::string_view(reinterpret_cast<const char*>(root_pem.data()), root_pem.size()));
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ((*root)->subject_cn(), "Intel SGX Root CA");
  EXPECT_TRUE((*root)->is_ca());
  std::string fp = HexEncode(Hash(HashAlg::kSha256, (*root)->der()));
  EXPECT_EQ(fp.substr(0, 8), "44a0196b");
  EXPECT_EQ(fp.substr(fp.size() - 4), "74d3");
  EXPECT_TRUE((*root)->VerifyIssuedBy(**root).ok());
  EXPECT_EQ(HexEncode((*root)->serial()), "22650cd65a9d3489f383b49552bf501b392706ac");

  auto chain = Certificate::ParseBundle(ReadVector("dcap-qvl/sgx_quote.tcbchain.pem"));
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ(chain->size(), 2u);
  const Certificate& signing = *(*chain)[0];
  EXPECT_EQ(signing.subject_cn(), "Intel SGX TCB Signing");
  EXPECT_EQ(signing.issuer_cn(), "Intel SGX Root CA");
  EXPECT_TRUE(signing.VerifyIssuedBy(**root).ok());
  EXPECT_FALSE(signing.is_ca());
  // Issued by itself: wrong issuer name.
  Status s = signing.VerifyIssuedBy(signing);
  EXPECT_EQ(s.code(), StatusCode::kIntegrity);
  EXPECT_NE(s.message().find("names issuer"), std::string::npos) << s.message();
  // Validity.
  EXPECT_TRUE(signing.CheckValidAt(signing.not_before_unix()).ok());
  Status late = signing.CheckValidAt(signing.not_after_unix() + 1);
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(late.message().find("expired at"), std::string::npos);
  EXPECT_EQ(signing.CheckValidAt(signing.not_before_unix() - 1).code(), StatusCode::kFailedPrecondition);

  // The same chain as concatenated DER.
  Bytes der = (*chain)[1]->der();
  der.insert(der.end(), signing.der().begin(), signing.der().end());
  auto from_der = Certificate::ParseBundle(der);
  ASSERT_TRUE(from_der.ok()) << from_der.status().ToString();
  ASSERT_EQ(from_der->size(), 2u);
  EXPECT_EQ((*from_der)[1]->subject_cn(), "Intel SGX TCB Signing");
  der.push_back(0x30);
  EXPECT_FALSE(Certificate::ParseBundle(der).ok());

  // A certificate with one changed byte in its signed part no longer verifies.
  Bytes tampered = signing.der();
  tampered[tampered.size() / 2] ^= 0x01;
  auto t = Certificate::FromDer(tampered);
  if (t.ok()) {
    EXPECT_EQ((*t)->VerifyIssuedBy(**root).code(), StatusCode::kIntegrity);
  }
}

TEST(X509Test, RootCaCrlVerifiesAndRevokesNothingItShouldNot) {
  CLOISTER_REQUIRE_VECTORS();
  Bytes root_pem = ReadVector("intel_sgx_root_ca.pem");
  auto root = Certificate::FromPem(std::string_view(reinterpret_cast<const char*>(root_pem.data()), root_pem.size()));
  ASSERT_TRUE(root.ok());
  auto crl = Crl::Parse(ReadVector("dcap-qvl/sgx_quote.root_ca_crl.der"));
  ASSERT_TRUE(crl.ok()) << crl.status().ToString();
  EXPECT_EQ((*crl)->issuer_cn(), "Intel SGX Root CA");
  EXPECT_TRUE((*crl)->VerifyIssuedBy(**root).ok());
  EXPECT_TRUE((*crl)->CheckCurrentAt((*crl)->this_update_unix()).ok());
  if ((*crl)->next_update_unix() != 0) {
    EXPECT_EQ((*crl)->CheckCurrentAt((*crl)->next_update_unix() + 1).code(), StatusCode::kFailedPrecondition);
  }
  auto chain = Certificate::ParseBundle(ReadVector("dcap-qvl/sgx_quote.tcbchain.pem"));
  ASSERT_TRUE(chain.ok());
  EXPECT_FALSE((*crl)->Revokes(*(*chain)[0]));
  // Signed by someone else: the TCB signing certificate's key is not the root's.
  EXPECT_EQ((*crl)->VerifyIssuedBy(*(*chain)[0]).code(), StatusCode::kIntegrity);
  Bytes bad = ReadVector("dcap-qvl/sgx_quote.root_ca_crl.der");
  bad[bad.size() - 5] ^= 0x01;  // inside the signature
  auto bad_crl = Crl::Parse(bad);
  if (bad_crl.ok()) {
    EXPECT_EQ((*bad_crl)->VerifyIssuedBy(**root).code(), StatusCode::kIntegrity);
  }
}

TEST(X509Test, AmdChainUsesRsaPss) {
  CLOISTER_REQUIRE_VECTORS();
  auto chain = Certificate::ParseBundle(ReadVector("snp/go-sev-guest/ask_ark_milan.pem"));
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  ASSERT_EQ(chain->size(), 2u);
  const Certificate& ask = *(*chain)[0];
  const Certificate& ark = *(*chain)[1];
  EXPECT_EQ(ask.subject_cn(), "SEV-Milan");
  EXPECT_EQ(ark.subject_cn(), "ARK-Milan");
  EXPECT_TRUE(ark.VerifyIssuedBy(ark).ok());
  EXPECT_TRUE(ask.VerifyIssuedBy(ark).ok());
  auto vcek = Certificate::FromDer(ReadVector("snp/go-sev-guest/vcek.testcer"));
  ASSERT_TRUE(vcek.ok()) << vcek.status().ToString();
  EXPECT_TRUE((*vcek)->VerifyIssuedBy(ask).ok());
  auto key = (*vcek)->Key();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ((*key)->Describe(), "EC P-384");
  auto product = (*vcek)->Extension("1.3.6.1.4.1.3704.1.2");
  ASSERT_TRUE(product.has_value());
  EXPECT_FALSE((*vcek)->Extension("1.2.3.4").has_value());
}

}  // namespace
}  // namespace cloister::crypto
