// Node join and renewal with hardware evidence (docs/protocol.md section
// 4.1), on the CAS's side without TLS: challenges and their limits, the
// binding, a tpm join against a software TPM driven by tpm2-tools, a tdx
// join with a real quote that binds another challenge, and starts of a
// hardware node judged against a session's `expect`.
#include "cas/node_evidence.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "attest/evidence.h"
#include "attest/test_swtpm.h"
#include "attest/test_vectors.h"
#include "base/clock.h"
#include "cas/service.h"
#include "crypto/crypto.h"
#include "crypto/identity.h"

namespace cloister::cas {
namespace {

using attest::testing::Swtpm;
using nlohmann::json;

const std::string kAdmin(64, 'a');
const std::string kTenant(64, 'b');
// Inside the validity of the dcap-qvl TDX quote's PCK chain and collateral.
constexpr int64_t kTdxVectorTime = 1750417200;  // 2025-06-20T11:00:00Z

template <typename T>
void ExpectRefusal(const StatusOr<T>& r, StatusCode code, std::string_view words) {
  ASSERT_FALSE(r.ok()) << "accepted; expected a refusal naming \"" << words << "\"";
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(words), std::string::npos)
      << "\"" << r.status().message() << "\" lacks \"" << words << "\"";
}

// ---- the challenge store, alone ----

OpenChallenge Challenge(const std::string& node, int64_t now, uint8_t tag) {
  OpenChallenge c;
  c.node_id = node;
  c.type = "tdx";
  EXPECT_TRUE(crypto::RandomBytes(c.challenge).ok());
  c.challenge[0] = tag;
  c.expires_unix = now + kChallengeSeconds;
  return c;
}

TEST(ChallengeStoreTest, FourPerNodeSingleUseAndBoundToTheNode) {
  ChallengeStore store;
  const int64_t now = 1'800'000'000;
  const std::string a(64, '1'), b(64, '2');
  std::vector<std::array<uint8_t, 32>> issued;
  for (int i = 0; i < 4; ++i) {
    OpenChallenge c = Challenge(a, now, static_cast<uint8_t>(i));
    issued.push_back(c.challenge);
    ASSERT_TRUE(store.Add(std::move(c), now).ok());
  }
  Status fifth = store.Add(Challenge(a, now, 9), now);
  EXPECT_EQ(fifth.code(), StatusCode::kResourceExhausted) << fifth.ToString();
  EXPECT_NE(fifth.message().find("4 open"), std::string::npos) << fifth.message();
  EXPECT_TRUE(store.Add(Challenge(b, now, 9), now).ok());  // another node has its own four

  // Another node cannot use a's challenge, and trying leaves it open for a.
  EXPECT_FALSE(store.Take(b, issued[0], now).has_value());
  auto taken = store.Take(a, issued[0], now);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->node_id, a);
  EXPECT_FALSE(store.Take(a, issued[0], now).has_value());  // single use
  EXPECT_TRUE(store.Add(Challenge(a, now, 10), now).ok());   // the slot is free again
  EXPECT_EQ(store.size(), 5u);
}

TEST(ChallengeStoreTest, ChallengesExpireAfter120Seconds) {
  ChallengeStore store;
  const int64_t now = 1'800'000'000;
  const std::string a(64, '1');
  OpenChallenge c = Challenge(a, now, 1);
  auto first = c.challenge;
  ASSERT_TRUE(store.Add(std::move(c), now).ok());
  OpenChallenge d = Challenge(a, now, 2);
  auto second = d.challenge;
  ASSERT_TRUE(store.Add(std::move(d), now).ok());
  EXPECT_TRUE(store.Take(a, first, now + kChallengeSeconds).has_value());  // the last good second
  EXPECT_FALSE(store.Take(a, second, now + kChallengeSeconds + 1).has_value());
  EXPECT_EQ(store.size(), 0u);
  // Expired challenges no longer count against the node's four.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(store.Add(Challenge(a, now, static_cast<uint8_t>(i)), now).ok());
  EXPECT_FALSE(store.Add(Challenge(a, now + 60, 7), now + 60).ok());
  EXPECT_TRUE(store.Add(Challenge(a, now + 121, 7), now + 121).ok());
  EXPECT_EQ(store.size(), 1u);
}

TEST(ChallengeStoreTest, AtMostTenThousandInAll) {
  ChallengeStore store;
  const int64_t now = 1'800'000'000;
  for (size_t i = 0; i < kMaxChallenges; ++i) {
    char node[65];
    std::snprintf(node, sizeof(node), "%064zx", i / kMaxChallengesPerNode);
    ASSERT_TRUE(store.Add(Challenge(node, now, 0), now).ok()) << i;
  }
  Status full = store.Add(Challenge(std::string(64, 'f'), now, 0), now);
  EXPECT_EQ(full.code(), StatusCode::kUnavailable) << full.ToString();
  EXPECT_NE(full.message().find("10000"), std::string::npos) << full.message();
  // Once they expire there is room again.
  EXPECT_TRUE(store.Add(Challenge(std::string(64, 'f'), now + 121, 0), now + 121).ok());
  EXPECT_EQ(store.size(), 1u);
}

// ---- parsing, binding, verdicts ----

TEST(NodeEvidenceTest, BindingIsTheSpecifiedHash) {
  std::array<uint8_t, 32> challenge;
  challenge.fill(0x5a);
  const std::string node = std::string(62, '0') + "ab";
  auto b = NodeEvidenceBinding(challenge, node);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const std::string label = "cloister node evidence v1";
  Bytes message(label.begin(), label.end());
  message.insert(message.end(), challenge.begin(), challenge.end());
  Bytes id = *HexDecode(node);
  message.insert(message.end(), id.begin(), id.end());
  EXPECT_EQ(HexEncode(*b), HexEncode(crypto::Sha256(message)));
  EXPECT_FALSE(NodeEvidenceBinding(challenge, "xyz").ok());
}

TEST(NodeEvidenceTest, EvidenceBodiesAreParsedStrictly) {
  const std::string ch(64, 'c');
  auto tdx = ParseNodeEvidence(json{{"type", "tdx"}, {"challenge", ch}, {"quote", Base64Encode(Bytes{1, 2, 3})}});
  ASSERT_TRUE(tdx.ok()) << tdx.status().ToString();
  EXPECT_EQ(tdx->quote, (Bytes{1, 2, 3}));
  auto snp = ParseNodeEvidence(json{{"type", "snp"}, {"challenge", ch}, {"report", Base64Encode(Bytes{4})}});
  ASSERT_TRUE(snp.ok()) << snp.status().ToString();
  EXPECT_TRUE(snp->auxblob.empty());

  ExpectRefusal(ParseNodeEvidence(json{{"type", "sgx"}, {"challenge", ch}}), StatusCode::kInvalidArgument,
                "unknown type");
  ExpectRefusal(ParseNodeEvidence(json{{"type", "tdx"}, {"challenge", "abc"}, {"quote", "AQ=="}}),
                StatusCode::kInvalidArgument, "challenge");
  ExpectRefusal(ParseNodeEvidence(json{{"type", "tdx"}, {"challenge", ch}}), StatusCode::kInvalidArgument, "quote");
  json tpm = {{"type", "tpm"},       {"challenge", ch},       {"secret", Base64Encode(Bytes(32, 7))},
              {"quote", "AQ=="},     {"signature", "AQ=="},   {"pcrs", {{"0", std::string(64, '0')}}}};
  auto ok = ParseNodeEvidence(tpm);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->pcrs.size(), 1u);
  json bad = tpm;
  bad["pcrs"] = {{"24", std::string(64, '0')}};
  ExpectRefusal(ParseNodeEvidence(bad), StatusCode::kInvalidArgument, "index 0 to 23");
  bad["pcrs"] = {{"07", std::string(64, '0')}};
  ExpectRefusal(ParseNodeEvidence(bad), StatusCode::kInvalidArgument, "index 0 to 23");
  bad["pcrs"] = {{"7", std::string(40, '0')}};
  ExpectRefusal(ParseNodeEvidence(bad), StatusCode::kInvalidArgument, "SHA-256 bank");
  bad = tpm;
  bad.erase("secret");
  ExpectRefusal(ParseNodeEvidence(bad), StatusCode::kInvalidArgument, "secret");

  ExpectRefusal(ParseNodeChallengeRequest(json{{"type", "tpm"}, {"ek_public", "AQ=="}, {"ak_public", "AQ=="}}),
                StatusCode::kInvalidArgument, "ek_certificate");
  EXPECT_TRUE(ParseNodeChallengeRequest(json{{"type", "snp"}}).ok());
}

TEST(NodeEvidenceTest, VerdictSurvivesItsJsonForm) {
  attest::HardwareVerdict v;
  v.type = "tdx";
  v.checks = {"quote signature", "PCK chain"};
  v.claims = {{"mrtd", std::string(96, 'a')}, {"report_data", std::string(128, '0')}};
  v.debug = true;
  v.tcb_status = attest::TcbStatus::kOutOfDate;
  v.advisories = {"INTEL-SA-00615"};
  v.revocation_checked = true;
  v.collateral_expires_unix = 1'760'000'000;
  v.warnings = {"debug TD"};
  json j = VerdictJson(v, 1'750'000'000);
  EXPECT_EQ(j["time"], "2025-06-15T15:06:40Z");
  EXPECT_EQ(j["tcb_status"], "OutOfDate");
  auto back = VerdictFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->type, "tdx");
  EXPECT_EQ(back->checks, v.checks);
  EXPECT_EQ(*back->Find("mrtd"), std::string(96, 'a'));
  EXPECT_TRUE(back->debug);
  EXPECT_EQ(back->tcb_status, attest::TcbStatus::kOutOfDate);
  EXPECT_EQ(back->advisories, v.advisories);
  EXPECT_TRUE(back->revocation_checked);
  EXPECT_EQ(back->collateral_expires_unix, v.collateral_expires_unix);
  EXPECT_EQ(back->warnings, v.warnings);
  j["tcb_status"] = "Fine";
  EXPECT_FALSE(VerdictFromJson(j).ok());
}

// ---- through the service ----

class NodeJoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cas-node-evidence-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    master_ = *crypto::RandomSecret(32);
    now_ = UnixNow();
    svc_ = Open();
    node_ = *crypto::CreateIdentity(1);
  }
  void TearDown() override {
    svc_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<CasService> Open() {
    auto s = CasService::Open(dir_);
    EXPECT_TRUE(s.ok());
    EXPECT_TRUE((*s)->InitializeOrUnsealWithKey(master_).ok());
    (*s)->SetAdmins({kAdmin});
    (*s)->SetEvidenceClockForTesting([this] { return now_.load(); });
    return std::move(*s);
  }

  SecretBytes Token() {
    auto t = svc_->CreateJoinToken(kAdmin, 600);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t->token;
  }

  std::array<uint8_t, 32> Binding(const std::array<uint8_t, 32>& challenge) {
    auto b = NodeEvidenceBinding(challenge, node_.id);
    EXPECT_TRUE(b.ok());
    return b.ok() ? *b : std::array<uint8_t, 32>{};
  }

  // `sim`-format evidence the node's LAS signs for a start.
  Bytes StartEvidence(const std::string& node_cert) {
    attest::SimClaims c;
    c.report_data = client_key_;
    c.executable.fill(0x11);
    c.runtime.fill(0x22);
    c.pid = 7;
    c.issued_at_ns = static_cast<uint64_t>(UnixNowNs());
    c.node_id = node_.id;
    c.node_certificate_pem = node_cert;
    auto ev = attest::SignSimEvidence(c, node_.private_key_pem);
    EXPECT_TRUE(ev.ok()) << ev.status().ToString();
    return ev.ok() ? *ev : Bytes{};
  }

  void CreateSession(const std::string& name, const std::string& attestation) {
    std::string doc = "name: " + name +
                      "\n"
                      "services:\n"
                      "  - name: web\n"
                      "    measurements: [" + std::string(64, '1') + ", " + std::string(64, '2') + "]\n"
                      "security:\n"
                      "  attestation:\n" + attestation;
    WriteResult w = svc_->CreateSession(kTenant, doc);
    ASSERT_TRUE(w.status.ok()) << w.status.ToString() << (w.problems.empty() ? "" : " " + w.problems[0].message);
  }

  std::string dir_;
  SecretBytes master_;
  std::atomic<int64_t> now_{0};
  std::unique_ptr<CasService> svc_;
  crypto::NewIdentity node_;
  attest::Sha256Value client_key_{};
};

TEST_F(NodeJoinTest, ChallengesAreLimitedPerNodeAndExpire) {
  NodeChallengeRequest tdx{"tdx", "", {}, {}};
  auto c = svc_->CreateNodeChallenge(node_.id, tdx);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->expires_unix, now_.load() + 120);
  EXPECT_TRUE(c->credential_blob.empty());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(svc_->CreateNodeChallenge(node_.id, tdx).ok());
  ExpectRefusal(svc_->CreateNodeChallenge(node_.id, tdx), StatusCode::kResourceExhausted, "open evidence challenges");
  now_ += 121;
  EXPECT_TRUE(svc_->CreateNodeChallenge(node_.id, tdx).ok());
}

TEST_F(NodeJoinTest, TpmChallengeNeedsConfiguredEkCas) {
  NodeChallengeRequest tpm{"tpm", "-----BEGIN CERTIFICATE-----\n", Bytes{1}, Bytes{1}};
  ExpectRefusal(svc_->CreateNodeChallenge(node_.id, tpm), StatusCode::kPermissionDenied, "tpm_ek_cas");
}

// A real TDX quote verifies up to Intel's root, but its report data is not
// the binding of this CAS's challenge: refused, and the token stays usable.
TEST_F(NodeJoinTest, TdxQuoteThatDoesNotBindTheChallengeIsRefused) {
  CLOISTER_REQUIRE_VECTORS();
  now_ = kTdxVectorTime;
  Bytes quote = attest::testing::ReadVector("dcap-qvl/tdx_quote");
  SecretBytes token = Token();
  auto c = svc_->CreateNodeChallenge(node_.id, NodeChallengeRequest{"tdx", "", {}, {}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  NodeEvidence e;
  e.type = "tdx";
  e.challenge = c->challenge;
  e.quote = quote;
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1", &e), StatusCode::kPermissionDenied,
                "tdx: the report data does not bind this challenge");
  // The challenge was used up by that attempt.
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1", &e), StatusCode::kPermissionDenied,
                "challenge is unknown or expired");
  // Unknown, another node's, and expired challenges.
  NodeEvidence unknown = e;
  unknown.challenge.fill(0x42);
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1", &unknown),
                StatusCode::kPermissionDenied, "challenge is unknown or expired");
  auto other = crypto::CreateIdentity(1);
  auto theirs = svc_->CreateNodeChallenge(other->id, NodeChallengeRequest{"tdx", "", {}, {}});
  ASSERT_TRUE(theirs.ok());
  NodeEvidence stolen = e;
  stolen.challenge = theirs->challenge;
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1", &stolen),
                StatusCode::kPermissionDenied, "challenge is unknown or expired");
  auto late = svc_->CreateNodeChallenge(node_.id, NodeChallengeRequest{"tdx", "", {}, {}});
  ASSERT_TRUE(late.ok());
  now_ += 121;
  NodeEvidence expired = e;
  expired.challenge = late->challenge;
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1", &expired),
                StatusCode::kPermissionDenied, "challenge is unknown or expired");
  // A challenge for snp does not take tdx evidence.
  auto snp = svc_->CreateNodeChallenge(node_.id, NodeChallengeRequest{"snp", "", {}, {}});
  ASSERT_TRUE(snp.ok());
  NodeEvidence mixed = e;
  mixed.challenge = snp->challenge;
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1", &mixed),
                StatusCode::kPermissionDenied, "made for snp evidence");
  // None of that consumed the token.
  auto joined = svc_->JoinNode(node_.id, node_.certificate_pem, token, "tdx-1");
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  auto nodes = svc_->ListNodes(kAdmin);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].how, "join-token");
  EXPECT_TRUE((*nodes)[0].tcb_status.empty());
}

// ---- tpm, end to end against swtpm ----

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

// A certificate for `key` issued by `issuer_key` (self-signed when the
// names are equal), valid from an hour ago for a year; PEM.
std::string IssueCert(const std::string& subject, EVP_PKEY* key, const std::string& issuer, EVP_PKEY* issuer_key,
                      bool ca) {
  std::unique_ptr<X509, X509Free> x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), static_cast<long>(UnixNow() % 1000000));
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 365L * 86400);
  auto name = [](const std::string& cn) {
    X509_NAME* n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    return n;
  };
  X509_NAME* s = name(subject);
  X509_NAME* i = name(issuer);
  X509_set_subject_name(x.get(), s);
  X509_set_issuer_name(x.get(), i);
  X509_NAME_free(s);
  X509_NAME_free(i);
  X509_set_pubkey(x.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  X509_EXTENSION* bc =
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  X509_add_ext(x.get(), bc, -1);
  X509_EXTENSION_free(bc);
  EXPECT_GT(X509_sign(x.get(), issuer_key, EVP_sha256()), 0);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

class TpmJoinTest : public NodeJoinTest {
 protected:
  void SetUp() override {
    if (std::string missing = Swtpm::Missing(); !missing.empty()) {
      GTEST_SKIP() << missing << " is not installed (swtpm and tpm2-tools): the tpm join tests are skipped";
    }
    NodeJoinTest::SetUp();
    std::string error;
    ASSERT_TRUE(tpm_.Start(error)) << error;
    ASSERT_TRUE(tpm_.RunAndFlush("tpm2_createek -c ek.ctx -G ecc -u ek.pub")) << tpm_.Log();
    ASSERT_TRUE(tpm_.RunAndFlush("tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name"))
        << tpm_.Log();
    // Something measured into PCR 7, as firmware would.
    ASSERT_TRUE(tpm_.Run("tpm2_pcrextend 7:sha256=" + std::string(64, '7'))) << tpm_.Log();
    ek_public_ = tpm_.Read("ek.pub");
    ak_public_ = tpm_.Read("ak.pub");
    // The TPM manufacturer's CA, and the EK certificate it issued.
    auto ek = attest::ParseTpmPublic(ek_public_);
    ASSERT_TRUE(ek.ok()) << ek.status().ToString();
    ca_key_.reset(EVP_EC_gen("P-256"));
    ca_pem_ = IssueCert("Test TPM Manufacturer CA", ca_key_.get(), "Test TPM Manufacturer CA", ca_key_.get(), true);
    ek_cert_pem_ = IssueCert("", ek->key->raw(), "Test TPM Manufacturer CA", ca_key_.get(), false);
    auto ca = crypto::Certificate::FromPem(ca_pem_);
    ASSERT_TRUE(ca.ok()) << ca.status().ToString();
    svc_->SetTpmEkCas({*ca});
  }

  NodeChallengeRequest Request() const { return NodeChallengeRequest{"tpm", ek_cert_pem_, ek_public_, ak_public_}; }

  // Activates the challenge's credential in the TPM: the secret.
  Bytes Activate(const NodeChallenge& c) {
    tpm_.Write("cred.bin", attest::testing::ToolsCredentialFile(c.credential_blob, c.encrypted_secret));
    EXPECT_TRUE(tpm_.Run("tpm2_startauthsession --policy-session -S session.ctx")) << tpm_.Log();
    EXPECT_TRUE(tpm_.Run("tpm2_policysecret -S session.ctx -c e")) << tpm_.Log();
    bool ok = tpm_.Run("tpm2_activatecredential -c ak.ctx -C ek.ctx -i cred.bin -o secret.out -P session:session.ctx");
    tpm_.Run("tpm2_flushcontext session.ctx");
    tpm_.Run("tpm2_flushcontext -t");
    EXPECT_TRUE(ok) << tpm_.Log();
    return tpm_.Read("secret.out");
  }

  // What a LAS sends: the activated secret and a quote of the SHA-256 PCRs
  // 0 to 23 over `nonce` (the binding, unless a test says otherwise).
  NodeEvidence Evidence(const NodeChallenge& c, const Bytes& secret, std::optional<Bytes> nonce = std::nullopt) {
    auto b = Binding(c.challenge);
    Bytes qualifying = nonce.value_or(Bytes(b.begin(), b.end()));
    std::string pcrs = "sha256:0";
    for (int i = 1; i < 24; ++i) pcrs += "," + std::to_string(i);
    EXPECT_TRUE(tpm_.RunAndFlush("tpm2_quote -c ak.ctx -l " + pcrs + " -q " + HexEncode(qualifying) +
                                 " -m quote.msg -s quote.sig -o quote.pcrs -g sha256"))
        << tpm_.Log();
    NodeEvidence e;
    e.type = "tpm";
    e.challenge = c.challenge;
    e.secret = SecretBytes(secret.data(), secret.size());
    e.quote = tpm_.Read("quote.msg");
    e.signature = tpm_.Read("quote.sig");
    auto values = attest::ParseTpm2ToolsPcrsFile(tpm_.Read("quote.pcrs"));
    EXPECT_TRUE(values.ok()) << values.status().ToString();
    if (values.ok()) e.pcrs = values->sha256;
    return e;
  }

  NodeEvidence FreshEvidence() {
    auto c = svc_->CreateNodeChallenge(node_.id, Request());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return {};
    return Evidence(*c, Activate(*c));
  }

  Swtpm tpm_;
  Bytes ek_public_, ak_public_;
  std::unique_ptr<EVP_PKEY, X509Free> ca_key_;
  std::string ca_pem_, ek_cert_pem_;
};

TEST_F(TpmJoinTest, NodeJoinsRenewsAndStartsAreJudgedByItsPcrs) {
  SecretBytes token = Token();
  auto c = svc_->CreateNodeChallenge(node_.id, Request());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->credential_blob.empty());
  EXPECT_FALSE(c->encrypted_secret.empty());
  NodeEvidence e = Evidence(*c, Activate(*c));
  ASSERT_EQ(e.pcrs.size(), 24u);
  const std::string pcr7 = HexEncode(e.pcrs.at(7));
  auto joined = svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1", &e);
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  // The token is used now.
  EXPECT_EQ(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1").status().code(),
            StatusCode::kUnauthenticated);

  auto nodes = svc_->ListNodes(kAdmin);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].how, "tpm");
  EXPECT_EQ((*nodes)[0].tcb_status, "NotEvaluated");
  json verdict = json::parse((*nodes)[0].verdict_json);
  EXPECT_EQ(verdict["type"], "tpm");
  EXPECT_EQ(verdict["claims"]["pcr7"], pcr7);
  EXPECT_EQ(verdict["claims"]["nonce"], HexEncode(Binding(c->challenge)));
  EXPECT_FALSE(verdict["claims"]["ek"].get<std::string>().empty());
  EXPECT_NE(verdict["checks"].dump().find("credential activated"), std::string::npos) << verdict["checks"].dump();

  // Renewal: fresh tpm evidence, nothing else.
  ExpectRefusal(svc_->RenewNode(node_.id, node_.certificate_pem), StatusCode::kPermissionDenied,
                "renews only with fresh tpm evidence");
  NodeEvidence fresh = FreshEvidence();
  auto renewed = svc_->RenewNode(node_.id, node_.certificate_pem, &fresh);
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  ExpectRefusal(svc_->RenewNode(node_.id, node_.certificate_pem, &fresh), StatusCode::kPermissionDenied,
                "challenge is unknown or expired");

  // Starts on this node are tpm starts, judged by the PCRs it quoted.
  CreateSession("good", "    allowed: [tpm]\n    expect:\n      tpm:\n        pcrs:\n          7: [" + pcr7 + "]\n");
  CreateSession("bad", "    allowed: [tpm]\n    expect:\n      tpm:\n        pcrs:\n          7: [" +
                           std::string(64, 'e') + "]\n");
  CreateSession("simulated", "    allowed: [sim]\n    tolerate: [simulation]\n");
  Bytes start = StartEvidence(renewed->certificate_pem);
  AttestResult granted = svc_->Attest("good/web", start, client_key_);
  ASSERT_TRUE(granted.status.ok()) << granted.reason << ": " << granted.status.ToString();
  EXPECT_EQ(granted.evidence, "tpm");
  EXPECT_EQ(granted.config->evidence, "tpm");
  AttestResult refused = svc_->Attest("bad/web", start, client_key_);
  EXPECT_EQ(refused.reason, "evidence-not-accepted");
  EXPECT_EQ(refused.status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.evidence, "tpm");
  EXPECT_EQ(svc_->Attest("simulated/web", start, client_key_).reason, "evidence-type-not-allowed");
  auto records = svc_->Attestations(kTenant, "bad", 10);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].evidence, "tpm");
  EXPECT_EQ((*records)[0].reason, "evidence-not-accepted");
  EXPECT_NE((*records)[0].detail.find("pcr7"), std::string::npos) << (*records)[0].detail;

  // The verdict survives a restart of the CAS.
  svc_.reset();
  svc_ = Open();
  EXPECT_EQ(svc_->Attest("bad/web", start, client_key_).reason, "evidence-not-accepted");
  AttestResult again = svc_->Attest("good/web", start, client_key_);
  EXPECT_TRUE(again.status.ok()) << again.reason << ": " << again.status.ToString();
  EXPECT_EQ(again.evidence, "tpm");
}

TEST_F(TpmJoinTest, WrongSecretWrongNonceAndAlteredPcrAreRefused) {
  SecretBytes token = Token();
  auto c = svc_->CreateNodeChallenge(node_.id, Request());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Bytes secret = Activate(*c);
  secret[0] ^= 1;
  NodeEvidence wrong_secret = Evidence(*c, secret);
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1", &wrong_secret),
                StatusCode::kPermissionDenied, "tpm: the activated credential is not the CAS's secret");

  c = svc_->CreateNodeChallenge(node_.id, Request());
  ASSERT_TRUE(c.ok());
  NodeEvidence wrong_nonce = Evidence(*c, Activate(*c), Bytes(32, 0x42));
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1", &wrong_nonce),
                StatusCode::kPermissionDenied, "tpm: extraData is not the expected nonce");

  NodeEvidence altered = FreshEvidence();
  altered.pcrs[7][0] ^= 1;
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1", &altered),
                StatusCode::kPermissionDenied, "tpm: pcrDigest does not match");

  NodeEvidence missing = FreshEvidence();
  missing.pcrs.erase(23);
  ExpectRefusal(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1", &missing),
                StatusCode::kPermissionDenied, "lacks PCR 23");

  // After all that the token still admits the node.
  NodeEvidence good = FreshEvidence();
  EXPECT_TRUE(svc_->JoinNode(node_.id, node_.certificate_pem, token, "tpm-1", &good).ok());
}

TEST_F(TpmJoinTest, EkFromAnUntrustedCaOrWithAnotherKeyIsRefused) {
  std::unique_ptr<EVP_PKEY, X509Free> rogue(EVP_EC_gen("P-256"));
  auto ek = attest::ParseTpmPublic(ek_public_);
  ASSERT_TRUE(ek.ok());
  NodeChallengeRequest r = Request();
  r.ek_certificate_pem = IssueCert("", ek->key->raw(), "Test TPM Manufacturer CA", rogue.get(), false);
  ExpectRefusal(svc_->CreateNodeChallenge(node_.id, r), StatusCode::kPermissionDenied,
                "does not chain to a trusted EK CA");
  // A certified EK, but the public area of another key (here the AK's).
  r = Request();
  r.ek_public = ak_public_;
  ExpectRefusal(svc_->CreateNodeChallenge(node_.id, r), StatusCode::kPermissionDenied,
                "not the EK certificate's key");
  // An AK that is no attestation key: the EK itself (a decryption key).
  r = Request();
  r.ak_public = ek_public_;
  ExpectRefusal(svc_->CreateNodeChallenge(node_.id, r), StatusCode::kPermissionDenied, "tpm: ak_public");
}

}  // namespace
}  // namespace cloister::cas
