// The CAS's side of node join and attestation at start, without TLS: the
// evidence is signed here by a node key, as a LAS would sign it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "attest/evidence.h"
#include "attest/relay_reply.h"
#include "attest/volume_commit.h"
#include "base/bytes.h"
#include "crypto/hpke.h"
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

// ---- volume commits (docs/protocol.md section 7) ----

class VolumeCommitTest : public AttestTest {
 protected:
  void SetUp() override {
    AttestTest::SetUp();
    key_ = NewKey(&point_);
    ASSERT_TRUE(relay::ReportDataOfPoint(point_, &client_key_));
    Join();
  }

  static hpke::KeyPtr NewKey(relay::Point* point) {
    hpke::KeyPtr key(EVP_EC_gen("P-256"));
    EXPECT_TRUE(key && hpke::PublicPoint(key.get(), point));
    return key;
  }

  // A session whose service web mounts `mounted`, with `volumes` (YAML
  // list items) defined.
  std::string Doc(const std::string& predecessor = "", const std::string& mounted = "[data]",
                  const std::string& volumes = "  - name: data\n  - name: logs\n") {
    std::string mounts;
    std::string list = mounted.substr(1, mounted.size() - 2);
    for (size_t start = 0; start < list.size();) {
      size_t comma = list.find(',', start);
      std::string v = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      v.erase(0, v.find_first_not_of(' '));
      mounts += "      - volume: " + v + "\n        path: /" + v + "\n";
      start = comma == std::string::npos ? list.size() : comma + 1;
    }
    return "name: shop\n" + (predecessor.empty() ? "" : "predecessor: " + predecessor + "\n") +
           "services:\n"
           "  - name: web\n"
           "    measurements: [" + Hex(exe_) + ", " + Hex(runtime_) + "]\n" +
           (mounts.empty() ? "" : "    mounts:\n" + mounts) +
           "volumes:\n" + volumes +
           "security:\n  attestation:\n    allowed: [sim]\n    tolerate: [simulation]\n";
  }

  void Upload(const std::string& doc, bool create = false) {
    WriteResult w = create ? svc_->CreateSession(kTenant, doc) : svc_->UpdateSession(kTenant, "shop", doc);
    ASSERT_TRUE(w.status.ok()) << w.status.ToString() << (w.problems.empty() ? "" : " " + w.problems[0].message);
  }
  std::string CurrentHash() { return svc_->GetSession(kTenant, "shop")->hash; }

  // Starts web with the current key and returns its grant.
  GrantedConfig Start() {
    AttestResult r = svc_->Attest("shop/web", Evidence(), client_key_);
    EXPECT_TRUE(r.status.ok()) << r.status.ToString() << " " << r.reason;
    return r.config ? std::move(*r.config) : GrantedConfig{};
  }

  static volume_commit::Tag TagOf(uint8_t fill) {
    volume_commit::Tag t;
    t.fill(fill);
    return t;
  }

  std::string Report(const Bytes& token, uint64_t seq, const volume_commit::Tag& tag, const std::string& volume = "data",
                     EVP_PKEY* key = nullptr, const relay::Point* point = nullptr) {
    std::string body, error;
    EXPECT_TRUE(volume_commit::BuildRequest(token, point ? *point : point_, volume, seq, tag, key ? key : key_.get(),
                                            &body, &error))
        << error;
    return body;
  }

  // The reason of a commit's answer, "accepted" or "repeated" when it was taken.
  std::string Commit(const std::string& body, const std::string* node = nullptr) {
    CommitResult r = svc_->CommitVolume(body, node);
    if (r.status.ok()) return r.repeated ? "repeated" : "accepted";
    return r.reason;
  }

  std::optional<VolumeInfo> Recorded(const std::string& volume) {
    auto info = svc_->GetSession(kTenant, "shop");
    EXPECT_TRUE(info.ok());
    for (const VolumeInfo& v : info->volumes) {
      if (v.name == volume) return v;
    }
    return std::nullopt;
  }

  hpke::KeyPtr key_;
  relay::Point point_{};
};

TEST_F(VolumeCommitTest, AGrantCarriesATokenOnlyWhenTheServiceMountsAVolume) {
  Upload(Doc(), true);
  EXPECT_FALSE(Start().volume_token.empty());
  Upload(Doc(CurrentHash(), "[]"));
  EXPECT_TRUE(Start().volume_token.empty());
}

TEST_F(VolumeCommitTest, CommitsAreRecordedAndTheNextGrantCarriesTheTag) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  ASSERT_EQ(g.volumes.size(), 1u);
  EXPECT_EQ(g.volumes[0].tag, "");
  CommitResult r = svc_->CommitVolume(Report(g.volume_token, 1, TagOf(0xa1)), nullptr);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString() << " " << r.reason;
  EXPECT_EQ(r.volume, "data");
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.tag, HexEncode(TagOf(0xa1)));
  // What the HTTP layer signs as the receipt: this very commit.
  EXPECT_EQ(r.receipt_message, volume_commit::ReceiptMessage(g.volume_token, "data", 1, TagOf(0xa1)));

  EXPECT_EQ(Start().volumes[0].tag, HexEncode(TagOf(0xa1)));
  auto v = Recorded("data");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->seq, std::optional<uint64_t>(1));
  EXPECT_EQ(v->tag, HexEncode(TagOf(0xa1)));
  EXPECT_FALSE(v->committed.empty());
  EXPECT_FALSE(Recorded("logs")->seq);  // the other volume is untouched

  // The same commit again (a retry whose answer was lost) is answered alike.
  CommitResult again = svc_->CommitVolume(Report(g.volume_token, 1, TagOf(0xa1)), nullptr);
  EXPECT_TRUE(again.status.ok() && again.repeated);
  EXPECT_EQ(again.receipt_message, r.receipt_message);
  // A different state under the same seq, or an older seq: stale.
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(0xb1))), "stale");
  EXPECT_EQ(Commit(Report(g.volume_token, 0, TagOf(0xa0))), "stale");
  EXPECT_EQ(Commit(Report(g.volume_token, 5, TagOf(0xa5))), "accepted");
  EXPECT_EQ(Commit(Report(g.volume_token, 4, TagOf(0xa4))), "stale");
  EXPECT_EQ(Start().volumes[0].tag, HexEncode(TagOf(0xa5)));
  EXPECT_EQ(svc_->CommitVolume(Report(g.volume_token, 3, TagOf(0)), nullptr).status.code(), StatusCode::kStale);

  auto counts = svc_->CommitCounts();
  EXPECT_EQ(counts["accepted"], 2u);
  EXPECT_EQ(counts["repeated"], 1u);
  EXPECT_EQ(counts["stale"], 4u);
}

TEST_F(VolumeCommitTest, AForgedTokenIsRefused) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  Bytes forged = g.volume_token;
  forged[forged.size() / 2] ^= 1;
  EXPECT_EQ(Commit(Report(forged, 1, TagOf(1))), "token-invalid");
  forged = g.volume_token;
  forged.back() ^= 1;
  EXPECT_EQ(Commit(Report(forged, 1, TagOf(1))), "token-invalid");
  EXPECT_EQ(Commit(Report(Bytes(g.volume_token.begin(), g.volume_token.end() - 1), 1, TagOf(1))), "token-invalid");
  EXPECT_EQ(Commit(Report(Bytes(40, 0), 1, TagOf(1))), "token-invalid");

  // A token of another CAS (another database key) for the same names and key.
  std::string other_dir = dir_ + "/other";
  auto other = CasService::Open(other_dir);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->InitializeOrUnsealWithKey(*crypto::RandomSecret(32)).ok());
  (*other)->SetAdmins({kAdmin});
  auto t = (*other)->CreateJoinToken(kAdmin, 600);
  ASSERT_TRUE(t.ok());
  auto c = (*other)->JoinNode(node_.id, node_.certificate_pem, t->token, "node-1");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*other)->CreateSession(kTenant, Doc()).status.ok());
  std::swap(svc_, *other);
  std::string cert = node_cert_;
  node_cert_ = c->certificate_pem;
  GrantedConfig foreign = Start();
  std::swap(svc_, *other);
  node_cert_ = cert;
  ASSERT_FALSE(foreign.volume_token.empty());
  EXPECT_EQ(Commit(Report(foreign.volume_token, 1, TagOf(1))), "token-invalid");
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1))), "accepted");
  EXPECT_FALSE(Recorded("data")->seq == std::nullopt);
}

TEST_F(VolumeCommitTest, AReportSignedByAnotherKeyIsRefused) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  relay::Point other_point;
  hpke::KeyPtr other = NewKey(&other_point);
  // Another program's key with this program's token: the token names the
  // key it was issued to.
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1), "data", other.get(), &other_point)), "key-not-bound");
  EXPECT_FALSE(Recorded("data")->seq);
}

TEST_F(VolumeCommitTest, ABadSignatureIsRefused) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  nlohmann::json j = nlohmann::json::parse(Report(g.volume_token, 1, TagOf(1)));
  nlohmann::json changed = j;
  changed["seq"] = 2;  // the signature is over seq 1
  EXPECT_EQ(Commit(changed.dump()), "signature-invalid");
  changed = j;
  changed["tag"] = HexEncode(TagOf(2));
  EXPECT_EQ(Commit(changed.dump()), "signature-invalid");
  changed = j;
  auto sig = *Base64Decode(j["signature"].get<std::string>());
  sig[sig.size() / 2] ^= 1;
  changed["signature"] = Base64Encode(sig);
  EXPECT_EQ(Commit(changed.dump()), "signature-invalid");
  EXPECT_EQ(Commit("{\"token\": 1}"), "bad-request");
  EXPECT_EQ(Commit(j.dump()), "accepted");
}

TEST_F(VolumeCommitTest, OnlyAVolumeTheServiceMountsIsCommitted) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1), "logs")), "not-mounted");  // defined, not mounted by web
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1), "nope")), "not-mounted");
  EXPECT_EQ(svc_->CommitVolume(Report(g.volume_token, 1, TagOf(1), "logs"), nullptr).status.code(),
            StatusCode::kNotFound);
}

TEST_F(VolumeCommitTest, AReadOnlyVolumeAcceptsNoCommit) {
  Upload(Doc("", "[data]", "  - name: data\n    update_policy: read-only\n"), true);
  GrantedConfig g = Start();
  ASSERT_EQ(g.volumes[0].update_policy, "read-only");
  CommitResult r = svc_->CommitVolume(Report(g.volume_token, 1, TagOf(1)), nullptr);
  EXPECT_EQ(r.reason, "read-only");
  EXPECT_EQ(r.status.code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(Recorded("data")->seq);
}

TEST_F(VolumeCommitTest, ASessionThatDropsTheMountTakesNoMoreCommits) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  ASSERT_EQ(Commit(Report(g.volume_token, 1, TagOf(1))), "accepted");
  Upload(Doc(CurrentHash(), "[logs]"));
  EXPECT_EQ(Commit(Report(g.volume_token, 2, TagOf(2))), "not-mounted");
  Upload(Doc(CurrentHash(), "[data]"));  // mounted again: the same volume, the same key
  EXPECT_EQ(Commit(Report(g.volume_token, 2, TagOf(2))), "accepted");
  ASSERT_TRUE(svc_->DeleteSession(kTenant, "shop").ok());
  EXPECT_EQ(Commit(Report(g.volume_token, 3, TagOf(3))), "not-mounted");
}

TEST_F(VolumeCommitTest, ATokenIssuedBeforeTheVolumeWasMadeAgainIsRefused) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  ASSERT_EQ(Commit(Report(g.volume_token, 7, TagOf(7))), "accepted");
  // Times are whole seconds: let the next key be made in a later one.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(svc_->DeleteSession(kTenant, "shop").ok());
  Upload(Doc(), true);
  EXPECT_EQ(Commit(Report(g.volume_token, 8, TagOf(8))), "volume-replaced");
  EXPECT_FALSE(Recorded("data")->seq);
  GrantedConfig fresh = Start();
  EXPECT_EQ(Commit(Report(fresh.volume_token, 1, TagOf(1))), "accepted");
}

TEST_F(VolumeCommitTest, TokensStayValidAcrossARestartOfTheCas) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  ASSERT_EQ(Commit(Report(g.volume_token, 1, TagOf(1))), "accepted");
  svc_.reset();
  svc_ = Open();
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1))), "repeated");
  EXPECT_EQ(Commit(Report(g.volume_token, 2, TagOf(2))), "accepted");
  EXPECT_EQ(Start().volumes[0].tag, HexEncode(TagOf(2)));
}

TEST_F(VolumeCommitTest, OnlyJoinedNodesRelayCommits) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  const std::string stranger(64, 'c');
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1)), &stranger), "node-not-allowed");
  EXPECT_EQ(Commit(Report(g.volume_token, 1, TagOf(1)), &node_.id), "accepted");
  ASSERT_TRUE(svc_->RevokeNode(kAdmin, node_.id).ok());
  EXPECT_EQ(Commit(Report(g.volume_token, 2, TagOf(2)), &node_.id), "node-not-allowed");
  EXPECT_EQ(Commit(Report(g.volume_token, 2, TagOf(2))), "accepted");  // the program itself still may
}

TEST_F(VolumeCommitTest, AnUpdateKeepsTheRecordedStateOfAVolumeWhoseKeyStays) {
  const std::string key(64, '5'), tag(64, '6');
  const std::string explicit_volume = "  - name: data\n    key: " + key + "\n    tag: " + tag + "\n";
  Upload(Doc("", "[data]", explicit_volume), true);
  GrantedConfig g = Start();
  EXPECT_EQ(g.volumes[0].tag, tag);  // the document's tag before any commit
  ASSERT_EQ(Commit(Report(g.volume_token, 3, TagOf(3))), "accepted");
  // The same key (and the document's old tag) in a new version: the
  // recorded commit stays, the document's tag does not roll it back.
  Upload(Doc(CurrentHash(), "[data]", explicit_volume + "  - name: logs\n"));
  EXPECT_EQ(Start().volumes[0].tag, HexEncode(TagOf(3)));
  EXPECT_EQ(Recorded("data")->seq, std::optional<uint64_t>(3));
  // A generated key kept across an update keeps its state too.
  Upload(Doc(CurrentHash(), "[data, logs]", explicit_volume + "  - name: logs\n"));
  GrantedConfig both = Start();
  ASSERT_EQ(Commit(Report(both.volume_token, 1, TagOf(0x11), "logs")), "accepted");
  Upload(Doc(CurrentHash(), "[data, logs]", explicit_volume + "  - name: logs\n    update_policy: rollback-protected\n"));
  EXPECT_EQ(Recorded("logs")->seq, std::optional<uint64_t>(1));
  // Another key is another volume: its state starts again.
  Upload(Doc(CurrentHash(), "[data, logs]",
             "  - name: data\n    key: " + std::string(64, '7') + "\n  - name: logs\n"));
  EXPECT_FALSE(Recorded("data")->seq);
  EXPECT_EQ(Recorded("data")->tag, "");
}

TEST_F(VolumeCommitTest, CommitsDuringUpdatesAreNotLostAndDoNotFailThem) {
  Upload(Doc(), true);
  GrantedConfig g = Start();
  std::atomic<bool> done{false};
  std::atomic<uint64_t> last{0};
  std::thread committer([&] {
    for (uint64_t seq = 1; !done.load() && seq < 100000; ++seq) {
      std::string body = Report(g.volume_token, seq, TagOf(static_cast<uint8_t>(seq)));
      if (Commit(body) == "accepted") last = seq;
      // Faster than a program reports (at most every 100 ms per volume),
      // but not a tight loop that can starve an update's bounded retries
      // on a slow (sanitized, loaded) machine.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  int failed = 0;
  for (int i = 0; i < 30; ++i) {
    std::string extra = "  - name: data\n  - name: logs\n  - name: v" + std::to_string(i) + "\n";
    WriteResult w = svc_->UpdateSession(kTenant, "shop", Doc(CurrentHash(), "[data]", extra));
    if (!w.status.ok()) ++failed;
  }
  done = true;
  committer.join();
  EXPECT_EQ(failed, 0);
  ASSERT_GT(last.load(), 0u);
  EXPECT_EQ(Recorded("data")->seq, std::optional<uint64_t>(last.load()));
}

TEST_F(VolumeCommitTest, CommitsDuringADeletionDoNotFailIt) {
  for (int round = 0; round < 5; ++round) {
    Upload(Doc(), true);
    GrantedConfig g = Start();
    std::atomic<bool> done{false};
    std::thread committer([&] {
      for (uint64_t seq = 1; !done.load() && seq < 100000; ++seq) {
        (void)Commit(Report(g.volume_token, seq, TagOf(static_cast<uint8_t>(seq))));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Status deleted = svc_->DeleteSession(kTenant, "shop");
    done = true;
    committer.join();
    ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  }
}

}  // namespace
}  // namespace cloister::cas
