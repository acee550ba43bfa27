// The CAS's side of node join and attestation at start, without TLS: the
// evidence is signed here by a node key, as a LAS would sign it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "attest/evidence.h"
#include "base/bytes.h"
#include "cas/service.h"
#include "crypto/crypto.h"
#include "crypto/identity.h"

namespace cloister::cas {
namespace {

const std::string kAdmin(64, 'a');
const std::string kTenant(64, 'b');

std::string Hex(const attest::Sha256Value& v) { return HexEncode(v); }

class AttestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cas-attest-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    master_ = *crypto::RandomSecret(32);
    svc_ = Open();
    node_ = *crypto::CreateIdentity(1);
    exe_.fill(0x11);
    runtime_.fill(0x22);
    client_key_.fill(0x33);
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
    return std::move(*s);
  }

  SecretBytes Token() {
    auto t = svc_->CreateJoinToken(kAdmin, 600);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t->token;
  }

  // Joins node_ and keeps the certificate.
  void Join() {
    auto c = svc_->JoinNode(node_.id, node_.certificate_pem, Token(), "node-1");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    node_cert_ = c->certificate_pem;
  }

  Bytes Evidence(int64_t age_ns = 0) {
    attest::SimClaims c;
    c.report_data = client_key_;
    c.executable = exe_;
    c.runtime = runtime_;
    c.pid = 99;
    c.issued_at_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count() -
        age_ns);
    c.node_id = node_.id;
    c.node_certificate_pem = node_cert_;
    auto ev = attest::SignSimEvidence(c, node_.private_key_pem);
    EXPECT_TRUE(ev.ok()) << ev.status().ToString();
    return *ev;
  }

  void CreateSession(const std::string& allowed = "[sim]", const std::string& tolerate = "[simulation]") {
    std::string doc =
        "name: shop\n"
        "services:\n"
        "  - name: web\n"
        "    measurements: [" + Hex(exe_) + ", " + Hex(runtime_) + "]\n"
        "    command: python3 /app/web.py --port 8000\n"
        "    environment:\n"
        "      DB_PASSWORD: $$CLOISTER::db_password$$\n"
        "      MODE: production\n"
        "    pwd: /app\n"
        "    mounts:\n"
        "      - volume: data\n"
        "        path: /data\n"
        "    files:\n"
        "      - path: /etc/web.conf\n"
        "        content: \"password=$$CLOISTER::db_password$$\\n\"\n"
        "secrets:\n"
        "  - name: db_password\n"
        "    kind: ascii\n"
        "volumes:\n"
        "  - name: data\n"
        "security:\n"
        "  attestation:\n"
        "    allowed: " + allowed + "\n"
        "    tolerate: " + tolerate + "\n";
    WriteResult w = svc_->CreateSession(kTenant, doc);
    ASSERT_TRUE(w.status.ok()) << w.status.ToString() << (w.problems.empty() ? "" : " " + w.problems[0].message);
  }

  std::string Reason(const AttestResult& r) { return r.status.ok() ? "granted" : r.reason; }

  std::string dir_;
  SecretBytes master_;
  std::unique_ptr<CasService> svc_;
  crypto::NewIdentity node_;
  std::string node_cert_;
  attest::Sha256Value exe_, runtime_, client_key_;
};

TEST_F(AttestTest, JoinTokensAreForAdminsAndSingleUse) {
  EXPECT_EQ(svc_->CreateJoinToken(kTenant, 600).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(svc_->CreateJoinToken(kAdmin, 10).status().code(), StatusCode::kInvalidArgument);
  SecretBytes t = Token();
  auto c = svc_->JoinNode(node_.id, node_.certificate_pem, t, "node-1");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->node_id, node_.id);
  auto again = svc_->JoinNode(node_.id, node_.certificate_pem, t, "node-1");
  EXPECT_EQ(again.status().code(), StatusCode::kUnauthenticated);
  std::string bogus = "cloister-join-v1:" + std::string(64, '0');
  auto unknown = svc_->JoinNode(node_.id, node_.certificate_pem,
                                SecretBytes(reinterpret_cast<const uint8_t*>(bogus.data()), bogus.size()), "node-1");
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.status().message(), again.status().message());  // nothing told about which
  EXPECT_EQ(svc_->JoinNode(node_.id, node_.certificate_pem, Token(), "bad name!").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(AttestTest, OneTokenRacedByManyJoinsAdmitsOne) {
  SecretBytes t = Token();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto n = crypto::CreateIdentity(1);
      if (svc_->JoinNode(n->id, n->certificate_pem, t, "racer").ok()) ++ok;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 1);
}

TEST_F(AttestTest, GrantsAndFillsTheConfiguration) {
  Join();
  CreateSession();
  AttestResult r = svc_->Attest("shop/web", Evidence(), client_key_);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString() << " " << r.reason;
  const GrantedConfig& g = *r.config;
  EXPECT_EQ(g.evidence, "sim");
  EXPECT_EQ(g.command, (std::vector<std::string>{"python3", "/app/web.py", "--port", "8000"}));
  EXPECT_EQ(g.pwd, "/app");
  ASSERT_EQ(g.environment.size(), 2u);
  std::string password;
  for (const auto& [k, v] : g.environment) {
    auto b = v.UnsafeBytes();
    if (k == "DB_PASSWORD") password.assign(b.begin(), b.end());
    if (k == "MODE") {
      EXPECT_EQ(std::string(b.begin(), b.end()), "production");
    }
  }
  EXPECT_EQ(password.size(), 32u);
  ASSERT_EQ(g.files.size(), 1u);
  auto fb = g.files[0].content.UnsafeBytes();
  EXPECT_EQ(std::string(fb.begin(), fb.end()), "password=" + password + "\n");
  ASSERT_EQ(g.volumes.size(), 1u);
  EXPECT_EQ(g.volumes[0].path, "/data");
  EXPECT_EQ(g.volumes[0].key.size(), 32u);
  EXPECT_EQ(g.volumes[0].update_policy, "rollback-protected");

  // The same secret and volume key at the next start.
  AttestResult again = svc_->Attest("shop/web", Evidence(), client_key_);
  ASSERT_TRUE(again.status.ok());
  EXPECT_TRUE(again.config->volumes[0].key.Equals(g.volumes[0].key));

  auto records = svc_->Attestations(kTenant, "shop", 10);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_TRUE((*records)[0].granted);
  EXPECT_EQ((*records)[0].evidence, "sim");
  EXPECT_EQ((*records)[0].node_name, "node-1");
  EXPECT_EQ((*records)[0].executable, Hex(exe_));
  EXPECT_EQ(svc_->Attestations(kAdmin, "shop", 10).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(AttestTest, RefusesWithTheReasonAndRecordsIt) {
  Join();
  CreateSession();
  attest::Sha256Value other_key = client_key_;
  other_key[0] ^= 1;
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(), other_key)), "evidence-not-bound");
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(120'000'000'000), client_key_)), "evidence-stale");
  EXPECT_EQ(Reason(svc_->Attest("shop/nope", Evidence(), client_key_)), "unknown-config");
  EXPECT_EQ(Reason(svc_->Attest("nope/web", Evidence(), client_key_)), "unknown-config");
  EXPECT_EQ(Reason(svc_->Attest("noslash", Evidence(), client_key_)), "bad-request");
  Bytes junk = {1, 2, 3};
  EXPECT_EQ(Reason(svc_->Attest("shop/web", junk, client_key_)), "evidence-invalid");
  exe_.fill(0x44);
  AttestResult r = svc_->Attest("shop/web", Evidence(), client_key_);
  EXPECT_EQ(Reason(r), "measurement-not-allowed");
  EXPECT_EQ(r.evidence, "sim");
  EXPECT_EQ(r.status.code(), StatusCode::kPermissionDenied);
  exe_.fill(0x11);
  runtime_.fill(0);
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "measurement-not-allowed");

  auto records = svc_->Attestations(kTenant, "shop", 100);
  ASSERT_TRUE(records.ok());
  std::set<std::string> reasons;
  for (const AttestationRecord& rec : *records) {
    EXPECT_FALSE(rec.granted);
    reasons.insert(rec.reason);
  }
  // evidence-invalid is counted, not recorded: a stranger could flood the log
  // with it. The unknown session ("nope") has no log to record into.
  EXPECT_EQ(reasons, (std::set<std::string>{"evidence-not-bound", "evidence-stale", "unknown-config",
                                            "measurement-not-allowed"}));
  EXPECT_EQ(records->size(), 5u);
  EXPECT_EQ(records->front().detail, "no Cloister runtime is mapped into the process");
}

TEST_F(AttestTest, HardwareOnlySessionsRefuseSim) {
  Join();
  CreateSession("[tdx, snp]", "[]");
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "evidence-type-not-allowed");
}

TEST_F(AttestTest, NodesMustBeCertifiedAndNotRevoked) {
  CreateSession();
  node_cert_ = node_.certificate_pem;  // never joined: only its own certificate
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "node-not-certified");
  Join();
  Bytes ev = Evidence();
  EXPECT_EQ(Reason(svc_->Attest("shop/web", ev, client_key_)), "granted");
  EXPECT_EQ(svc_->RevokeNode(kTenant, node_.id).code(), StatusCode::kPermissionDenied);
  ASSERT_TRUE(svc_->RevokeNode(kAdmin, node_.id).ok());
  EXPECT_EQ(Reason(svc_->Attest("shop/web", ev, client_key_)), "node-revoked");
  EXPECT_EQ(svc_->RenewNode(node_.id, node_.certificate_pem).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(svc_->JoinNode(node_.id, node_.certificate_pem, Token(), "node-1").status().code(),
            StatusCode::kPermissionDenied);
  auto nodes = svc_->ListNodes(kAdmin);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_TRUE((*nodes)[0].revoked);

  // Revocation and records survive a restart of the CAS.
  svc_.reset();
  svc_ = Open();
  EXPECT_EQ(Reason(svc_->Attest("shop/web", ev, client_key_)), "node-revoked");
  // The first refusal (node-not-certified) is not recorded; the grant and
  // the two node-revoked refusals are.
  auto records = svc_->Attestations(kTenant, "shop", 1000);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), 3u);
}

TEST_F(AttestTest, ASessionUpdateTakesEffectAtTheNextStart) {
  Join();
  CreateSession();
  ASSERT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "granted");
  auto info = svc_->GetSession(kTenant, "shop");
  ASSERT_TRUE(info.ok());
  std::string doc =
      "name: shop\npredecessor: " + info->hash + "\nservices:\n  - name: web\n    measurements: [" +
      std::string(64, 'f') + ", " + Hex(runtime_) + "]\nsecurity:\n  attestation:\n    allowed: [sim]\n"
      "    tolerate: [simulation]\n";
  WriteResult w = svc_->UpdateSession(kTenant, "shop", doc);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "measurement-not-allowed");
}

TEST_F(AttestTest, RecordsGoWithTheirSession) {
  Join();
  CreateSession();
  ASSERT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "granted");
  ASSERT_TRUE(svc_->DeleteSession(kTenant, "shop").ok());
  EXPECT_EQ(Reason(svc_->Attest("shop/web", Evidence(), client_key_)), "unknown-config");
  CreateSession();
  auto records = svc_->Attestations(kTenant, "shop", 100);
  ASSERT_TRUE(records.ok());
  EXPECT_TRUE(records->empty()) << records->size() << " records of the deleted session are visible";
}

TEST_F(AttestTest, ManyConcurrentStartsAreAllRecorded) {
  Join();
  CreateSession();
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (svc_->Attest("shop/web", Evidence(), client_key_).status.ok()) ++granted;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(granted.load(), 200);
  auto records = svc_->Attestations(kTenant, "shop", 1024);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), 200u);
}

}  // namespace
}  // namespace cloister::cas
