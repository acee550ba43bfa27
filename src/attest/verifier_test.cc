#include "attest/verifier.h"

#include <gtest/gtest.h>

#include <set>

#include "crypto/certificate.h"
#include "crypto/crypto.h"
#include "crypto/identity.h"

namespace cloister::attest {
namespace {

// A fixed clock: 2026-11-01T00:00:00Z.
constexpr int64_t kNowUnix = 1'793'491'200;
constexpr int64_t kNowNs = kNowUnix * 1'000'000'000;

struct Fixture {
  crypto::NewIdentity ca, node, other_ca;
  std::string node_cert;  // issued by `ca`, valid for a day around kNowUnix
  std::set<std::string> revoked;
  NodeTrust trust;
  Sha256Value client_key{};  // what the TLS layer would hash

  Fixture() {
    ca = *crypto::CreateCertificateAuthority("test node CA", kNowUnix - 86400, 3650);
    other_ca = *crypto::CreateCertificateAuthority("another CA", kNowUnix - 86400, 3650);
    node = *crypto::CreateIdentity(1);
    node_cert = *crypto::IssueCertificate(ca.private_key_pem, ca.certificate_pem, node.certificate_pem,
                                          "cloister node n1", kNowUnix - 3600, kNowUnix + 86400);
    trust.ca_certificate_pem = ca.certificate_pem;
    trust.is_revoked = [this](const std::string& id) { return revoked.count(id) > 0; };
    for (size_t i = 0; i < client_key.size(); ++i) client_key[i] = static_cast<uint8_t>(0xa0 + i);
  }

  SimClaims Claims(int64_t issued_at_ns) const {
    SimClaims c;
    c.report_data = client_key;
    c.executable.fill(0x11);
    c.runtime.fill(0x22);
    c.pid = 77;
    c.uid = 1000;
    c.issued_at_ns = static_cast<uint64_t>(issued_at_ns);
    c.node_id = node.id;
    c.node_certificate_pem = node_cert;
    return c;
  }

  Bytes Evidence(int64_t issued_at_ns) const {
    auto ev = SignSimEvidence(Claims(issued_at_ns), node.private_key_pem);
    EXPECT_TRUE(ev.ok()) << ev.status().ToString();
    return *ev;
  }
};

TEST(VerifierTest, AcceptsFreshBoundEvidenceFromACertifiedNode) {
  Fixture f;
  EvidenceCheck c = CheckStartEvidence(f.Evidence(kNowNs - 1'000'000), f.trust, kNowNs, f.client_key);
  EXPECT_FALSE(c.refusal) << c.detail;
  ASSERT_TRUE(c.claims);
  EXPECT_EQ(c.claims->node_id, f.node.id);
  EXPECT_EQ(c.claims->pid, 77u);
}

TEST(VerifierTest, RefusesGarbageAsInvalidEvidence) {
  Fixture f;
  Bytes junk = {1, 2, 3};
  EvidenceCheck c = CheckStartEvidence(junk, f.trust, kNowNs, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kEvidenceInvalid);
  EXPECT_FALSE(c.claims);
}

TEST(VerifierTest, RefusesANodeCertifiedByAnotherCa) {
  Fixture f;
  f.trust.ca_certificate_pem = f.other_ca.certificate_pem;
  EvidenceCheck c = CheckStartEvidence(f.Evidence(kNowNs), f.trust, kNowNs, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kNodeNotCertified);
  EXPECT_NE(c.detail.find("not signed"), std::string::npos) << c.detail;
  ASSERT_TRUE(c.claims);  // records can still name the node
}

TEST(VerifierTest, RefusesASelfSignedNodeCertificate) {
  Fixture f;
  SimClaims claims = f.Claims(kNowNs);
  claims.node_certificate_pem = f.node.certificate_pem;  // the LAS's own, not the CAS's
  auto ev = SignSimEvidence(claims, f.node.private_key_pem);
  ASSERT_TRUE(ev.ok());
  EvidenceCheck c = CheckStartEvidence(*ev, f.trust, kNowNs, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kNodeNotCertified);
}

TEST(VerifierTest, RefusesAnExpiredOrNotYetValidNodeCertificate) {
  Fixture f;
  Bytes ev = f.Evidence(kNowNs + 2 * 86400'000'000'000);
  int64_t later = kNowNs + 2 * 86400'000'000'000;
  EvidenceCheck c = CheckStartEvidence(ev, f.trust, later, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kNodeNotCertified);
  EXPECT_NE(c.detail.find("expired"), std::string::npos) << c.detail;

  int64_t earlier = kNowNs - 2 * 3600'000'000'000;
  c = CheckStartEvidence(f.Evidence(earlier), f.trust, earlier, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kNodeNotCertified);
  EXPECT_NE(c.detail.find("not yet valid"), std::string::npos) << c.detail;
}

TEST(VerifierTest, RefusesARevokedNodeAtOnce) {
  Fixture f;
  Bytes ev = f.Evidence(kNowNs);
  EXPECT_FALSE(CheckStartEvidence(ev, f.trust, kNowNs, f.client_key).refusal);
  f.revoked.insert(f.node.id);
  EvidenceCheck c = CheckStartEvidence(ev, f.trust, kNowNs, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kNodeRevoked);
}

TEST(VerifierTest, RefusesOldAndFutureEvidence) {
  Fixture f;
  EXPECT_FALSE(CheckStartEvidence(f.Evidence(kNowNs - kMaxEvidenceAgeNs), f.trust, kNowNs, f.client_key).refusal);
  EvidenceCheck c = CheckStartEvidence(f.Evidence(kNowNs - kMaxEvidenceAgeNs - 1), f.trust, kNowNs, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kEvidenceStale);
  EXPECT_FALSE(CheckStartEvidence(f.Evidence(kNowNs + kMaxEvidenceSkewNs), f.trust, kNowNs, f.client_key).refusal);
  c = CheckStartEvidence(f.Evidence(kNowNs + kMaxEvidenceSkewNs + 1), f.trust, kNowNs, f.client_key);
  ASSERT_TRUE(c.refusal);
  EXPECT_EQ(*c.refusal, Refusal::kEvidenceStale);
  EXPECT_NE(c.detail.find("future"), std::string::npos);
}

TEST(VerifierTest, RefusesEvidenceBoundToAnotherKey) {
  Fixture f;
  Bytes ev = f.Evidence(kNowNs);
  for (size_t i = 0; i < 32; ++i) {
    Sha256Value other = f.client_key;
    other[i] ^= 0x80;
    EvidenceCheck c = CheckStartEvidence(ev, f.trust, kNowNs, other);
    ASSERT_TRUE(c.refusal) << i;
    EXPECT_EQ(*c.refusal, Refusal::kEvidenceNotBound);
  }
}

TEST(VerifierTest, ReasonCodesAreTheProtocolsNames) {
  EXPECT_EQ(RefusalCode(Refusal::kBadRequest), "bad-request");
  EXPECT_EQ(RefusalCode(Refusal::kEvidenceInvalid), "evidence-invalid");
  EXPECT_EQ(RefusalCode(Refusal::kNodeNotCertified), "node-not-certified");
  EXPECT_EQ(RefusalCode(Refusal::kNodeRevoked), "node-revoked");
  EXPECT_EQ(RefusalCode(Refusal::kEvidenceStale), "evidence-stale");
  EXPECT_EQ(RefusalCode(Refusal::kEvidenceNotBound), "evidence-not-bound");
  EXPECT_EQ(RefusalCode(Refusal::kUnknownConfig), "unknown-config");
  EXPECT_EQ(RefusalCode(Refusal::kEvidenceTypeNotAllowed), "evidence-type-not-allowed");
  EXPECT_EQ(RefusalCode(Refusal::kEvidenceNotAccepted), "evidence-not-accepted");
  EXPECT_EQ(RefusalCode(Refusal::kMeasurementNotAllowed), "measurement-not-allowed");
}

TEST(CertificateTest, IssuedCertificateCarriesTheSubjectsKeyAndName) {
  Fixture f;
  auto facts = crypto::ReadCertificate(f.node_cert);
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->key_id, f.node.id);
  EXPECT_EQ(facts->common_name, "cloister node n1");
  EXPECT_EQ(facts->not_before_unix, kNowUnix - 3600);
  EXPECT_EQ(facts->not_after_unix, kNowUnix + 86400);
  auto v = crypto::VerifyIssuedBy(f.node_cert, f.ca.certificate_pem, kNowUnix);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  v = crypto::VerifyIssuedBy(f.node_cert, f.other_ca.certificate_pem, kNowUnix);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kIntegrity);
}

}  // namespace
}  // namespace cloister::attest
