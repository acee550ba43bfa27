#include "attest/evidence.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "attest/measure.h"
#include "crypto/crypto.h"
#include "crypto/identity.h"

namespace cloister::attest {
namespace {

struct Node {
  crypto::NewIdentity id;
};

Node MakeNode() {
  auto id = crypto::CreateIdentity(30);
  EXPECT_TRUE(id.ok());
  return Node{std::move(*id)};
}

SimClaims ClaimsFor(const Node& n) {
  SimClaims c;
  for (size_t i = 0; i < 32; ++i) {
    c.report_data[i] = static_cast<uint8_t>(i);
    c.executable[i] = static_cast<uint8_t>(0x40 + i);
    c.runtime[i] = static_cast<uint8_t>(0x80 + i);
  }
  c.pid = 4242;
  c.uid = 1000;
  c.issued_at_ns = 1'790'000'000'000'000'000ull;
  c.node_id = n.id.id;
  c.node_certificate_pem = n.id.certificate_pem;
  return c;
}

TEST(EvidenceTest, RoundTripsEveryClaim) {
  Node n = MakeNode();
  SimClaims c = ClaimsFor(n);
  auto ev = SignSimEvidence(c, n.id.private_key_pem);
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  auto got = VerifySimEvidence(*ev);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->type, EvidenceType::kSim);
  EXPECT_EQ(EvidenceTypeName(got->type), "sim");
  EXPECT_EQ(got->report_data, c.report_data);
  EXPECT_EQ(got->executable, c.executable);
  EXPECT_EQ(got->runtime, c.runtime);
  EXPECT_EQ(got->pid, 4242u);
  EXPECT_EQ(got->uid, 1000u);
  EXPECT_EQ(got->issued_at_ns, c.issued_at_ns);
  EXPECT_EQ(got->node_id, n.id.id);
  EXPECT_EQ(got->node_certificate_pem, n.id.certificate_pem);
}

TEST(EvidenceTest, EveryChangedByteIsRefused) {
  Node n = MakeNode();
  auto ev = SignSimEvidence(ClaimsFor(n), n.id.private_key_pem);
  ASSERT_TRUE(ev.ok());
  for (size_t i = 0; i < ev->size(); ++i) {
    Bytes bad = *ev;
    bad[i] ^= 0x01;
    auto got = VerifySimEvidence(bad);
    ASSERT_FALSE(got.ok()) << "a flip of byte " << i << " of " << ev->size() << " was accepted";
    EXPECT_EQ(got.status().code(), StatusCode::kIntegrity);
  }
}

TEST(EvidenceTest, TruncatedOrExtendedEvidenceIsRefused) {
  Node n = MakeNode();
  auto ev = SignSimEvidence(ClaimsFor(n), n.id.private_key_pem);
  ASSERT_TRUE(ev.ok());
  for (size_t len = 0; len < ev->size(); ++len) {
    EXPECT_FALSE(VerifySimEvidence(std::span<const uint8_t>(ev->data(), len)).ok()) << len;
  }
  Bytes longer = *ev;
  longer.push_back(0);
  auto got = VerifySimEvidence(longer);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("trailing"), std::string::npos);
}

TEST(EvidenceTest, AnotherNodesCertificateDoesNotCarryTheSignature) {
  Node a = MakeNode(), b = MakeNode();
  SimClaims c = ClaimsFor(a);
  auto ev = SignSimEvidence(c, a.id.private_key_pem);
  ASSERT_TRUE(ev.ok());
  // Rebuild the same evidence with b's certificate and id but a's signature.
  SimClaims forged = c;
  forged.node_id = b.id.id;
  forged.node_certificate_pem = b.id.certificate_pem;
  auto other = SignSimEvidence(forged, b.id.private_key_pem);
  ASSERT_TRUE(other.ok());
  // Put a's signature (the last field: u32 length, then the DER bytes)
  // after b's body.
  auto signature_start = [](const Bytes& e) {
    for (size_t start = e.size() - 4; start > 0; --start) {
      uint32_t len = LoadU32(e.data() + start);
      if (start + 4 + len == e.size() && len >= 8 && len <= 128) return start;
    }
    return size_t{0};
  };
  size_t sig_a = signature_start(*ev), sig_b = signature_start(*other);
  ASSERT_GT(sig_a, 0u);
  ASSERT_GT(sig_b, 0u);
  Bytes spliced(other->begin(), other->begin() + static_cast<long>(sig_b));
  spliced.insert(spliced.end(), ev->begin() + static_cast<long>(sig_a), ev->end());
  auto got = VerifySimEvidence(spliced);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("signature"), std::string::npos);
}

// A caller that keeps parsed node keys (the CAS) is asked for the key of
// the enclosed certificate, and what it returns decides: a key that does
// not match node_id, or that did not make the signature, is refused as if
// the certificate itself were wrong.
TEST(EvidenceTest, KeptNodeKeysAreUsedAndChecked) {
  Node n = MakeNode();
  Node other = MakeNode();
  auto ev = SignSimEvidence(ClaimsFor(n), n.id.private_key_pem);
  ASSERT_TRUE(ev.ok());

  int asked = 0;
  NodeKeyFn kept = [&](const std::string& pem) {
    ++asked;
    EXPECT_EQ(pem, n.id.certificate_pem);
    return crypto::P256Verifier::FromCertificate(pem);
  };
  auto got = VerifySimEvidence(*ev, kept);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(asked, 1);

  NodeKeyFn wrong = [&](const std::string&) { return crypto::P256Verifier::FromCertificate(other.id.certificate_pem); };
  auto refused = VerifySimEvidence(*ev, wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kIntegrity);
  EXPECT_NE(refused.status().message().find("node_id"), std::string::npos) << refused.status().message();

  NodeKeyFn failing = [](const std::string&) -> StatusOr<std::shared_ptr<const crypto::P256Verifier>> {
    return IntegrityError("no key");
  };
  EXPECT_EQ(VerifySimEvidence(*ev, failing).status().code(), StatusCode::kIntegrity);
  NodeKeyFn null_key = [](const std::string&) -> StatusOr<std::shared_ptr<const crypto::P256Verifier>> {
    return std::shared_ptr<const crypto::P256Verifier>();
  };
  EXPECT_EQ(VerifySimEvidence(*ev, null_key).status().code(), StatusCode::kIntegrity);
}

TEST(EvidenceTest, ParsedKeyVerifiesLikeTheCertificate) {
  Node n = MakeNode();
  Bytes data = {1, 2, 3, 4, 5};
  auto sig = crypto::SignP256(n.id.private_key_pem, data);
  ASSERT_TRUE(sig.ok());
  auto key = crypto::P256Verifier::FromCertificate(n.id.certificate_pem);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->id(), n.id.id);
  EXPECT_TRUE((*key)->Verify(data, *sig).ok());
  EXPECT_TRUE(crypto::VerifyP256(n.id.certificate_pem, data, *sig).ok());
  Bytes changed = data;
  changed[0] ^= 1;
  EXPECT_EQ((*key)->Verify(changed, *sig).code(), StatusCode::kIntegrity);
  Bytes bad_sig = *sig;
  bad_sig.back() ^= 1;
  EXPECT_EQ((*key)->Verify(data, bad_sig).code(), StatusCode::kIntegrity);
  EXPECT_EQ((*key)->Verify(data, {}).code(), StatusCode::kIntegrity);
  EXPECT_EQ(crypto::P256Verifier::FromCertificate("not a certificate").status().code(), StatusCode::kIntegrity);
}

TEST(EvidenceTest, SigningChecksThatKeyCertificateAndIdBelongTogether) {
  Node a = MakeNode(), b = MakeNode();
  SimClaims c = ClaimsFor(a);
  EXPECT_FALSE(SignSimEvidence(c, b.id.private_key_pem).ok()) << "certificate of a, key of b";
  c.node_id = b.id.id;
  EXPECT_FALSE(SignSimEvidence(c, a.id.private_key_pem).ok()) << "node_id of b";
}

TEST(EvidenceTest, MalformedInputFailsCleanly) {
  EXPECT_FALSE(VerifySimEvidence({}).ok());
  Bytes junk(200, 0xff);
  EXPECT_FALSE(VerifySimEvidence(junk).ok());
  Bytes huge(kMaxEvidenceSize + 1, 0);
  EXPECT_FALSE(VerifySimEvidence(huge).ok());
}

TEST(MeasureTest, MeasuresTheBytesOfARegularFile) {
  char path[] = "/tmp/cloister-measure-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string content(3 << 20, 'x');
  content += "tail";
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  close(fd);
  auto m = MeasureFile(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->sha256, HexEncode(crypto::Sha256(AsBytes(content))));
  EXPECT_EQ(m->size, content.size());
  EXPECT_NE(m->inode, 0u);
  unlink(path);
  EXPECT_EQ(MeasureFile(path).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(MeasureFile("/tmp").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cloister::attest
