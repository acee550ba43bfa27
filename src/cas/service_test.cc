#include "cas/service.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

const std::string kAlice(64, 'a');
const std::string kBob(64, 'b');
const std::string kMeasurement(64, 'e');

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cas-service-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto key = crypto::RandomSecret(32);
    ASSERT_TRUE(key.ok());
    master_ = *key;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<CasService> OpenUnsealed() {
    auto s = CasService::Open(dir_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    Status st = (*s)->InitializeOrUnsealWithKey(master_);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return std::move(*s);
  }

  static std::string Doc(const std::string& name, const std::string& predecessor, const std::string& secrets,
                         const std::string& extra = "") {
    std::string d = "name: " + name + "\n";
    if (!predecessor.empty()) d += "predecessor: " + predecessor + "\n";
    d += "services:\n  - name: app\n    measurements: [" + kMeasurement + "]\n";
    if (!secrets.empty()) d += "secrets:\n" + secrets;
    return d + extra;
  }

  std::string dir_;
  SecretBytes master_;
};

TEST_F(ServiceTest, SessionCallsWaitForUnseal) {
  auto s = CasService::Open(dir_);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->GetSealStatus().state, SealState::kUninitialized);
  WriteResult w = (*s)->CreateSession(kAlice, Doc("x", "", ""));
  EXPECT_EQ(w.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ((*s)->ListSessions(kAlice).status().code(), StatusCode::kUnavailable);
}

TEST_F(ServiceTest, SharesUnsealOnlyWithEnoughRightShares) {
  std::vector<SecretBytes> shares;
  {
    auto s = CasService::Open(dir_);
    ASSERT_TRUE(s.ok());
    auto made = (*s)->InitializeShares(3, 2);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    shares = std::move(*made);
    EXPECT_EQ((*s)->InitializeShares(3, 2).status().code(), StatusCode::kAlreadyExists);
  }
  // Shares of another CAS combine to a wrong master key.
  std::string other_dir = dir_ + "/other";
  auto other = CasService::Open(other_dir);
  ASSERT_TRUE(other.ok());
  auto foreign = (*other)->InitializeShares(3, 2);
  ASSERT_TRUE(foreign.ok());

  auto s = CasService::Open(dir_);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->GetSealStatus().state, SealState::kSealed);
  ASSERT_TRUE((*s)->SubmitShare(shares[0]).ok());
  auto mixed = (*s)->SubmitShare((*foreign)[1]);
  EXPECT_EQ(mixed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->GetSealStatus().progress, 0) << "a failed combination forgets the shares entered";
  ASSERT_TRUE((*s)->SubmitShare(shares[2]).ok());
  EXPECT_EQ((*s)->SubmitShare(shares[2]).status().code(), StatusCode::kAlreadyExists);
  auto spaced_bytes = shares[2].UnsafeBytes();
  std::string spaced = " " + std::string(spaced_bytes.begin(), spaced_bytes.end()) + "\n";
  EXPECT_EQ((*s)->SubmitShare(SecretBytes(reinterpret_cast<const uint8_t*>(spaced.data()), spaced.size())).status().code(),
            StatusCode::kAlreadyExists)
      << "white space around a share does not make it another share";
  auto done = (*s)->SubmitShare(shares[1]);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state, SealState::kUnsealed);
  EXPECT_TRUE((*s)->CreateSession(kAlice, Doc("x", "", "")).status.ok());
}

TEST_F(ServiceTest, OneServicePerStateDirectory) {
  auto first = CasService::Open(dir_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = CasService::Open(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another cloister-cas"), std::string::npos)
      << second.status().ToString();
  first->reset();
  EXPECT_TRUE(CasService::Open(dir_).ok()) << "the lock goes with the service";
}

TEST_F(ServiceTest, WrongKeyFileDoesNotUnseal) {
  { OpenUnsealed(); }
  auto s = CasService::Open(dir_);
  ASSERT_TRUE(s.ok());
  auto wrong = crypto::RandomSecret(32);
  EXPECT_EQ((*s)->InitializeOrUnsealWithKey(*wrong).code(), StatusCode::kIntegrity);
  EXPECT_EQ((*s)->GetSealStatus().state, SealState::kSealed);
}

TEST_F(ServiceTest, SecretsKeepTheirValueUnlessTheirDefinitionChanges) {
  auto s = OpenUnsealed();
  std::string secrets =
      "  - name: password\n    kind: ascii\n    size: 20\n"
      "  - name: ca\n    kind: x509-ca\n"
      "  - name: cert\n    kind: x509\n    issuer: ca\n    dns: [app.example]\n"
      "  - name: other\n    kind: binary\n";
  WriteResult v1 = s->CreateSession(kAlice, Doc("keep", "", secrets));
  ASSERT_TRUE(v1.status.ok()) << v1.status.ToString();
  EXPECT_EQ(v1.generated.size(), 4u);

  // Same secrets, another environment: nothing is made again.
  WriteResult v2 = s->UpdateSession(kAlice, "keep", Doc("keep", v1.hash, secrets, "access_policy:\n  read: [ANY]\n"));
  ASSERT_TRUE(v2.status.ok()) << v2.status.ToString();
  EXPECT_TRUE(v2.generated.empty());
  EXPECT_EQ(v2.version, 2u);

  // A changed CA is made again, and so is the certificate it signs.
  std::string changed = secrets;
  changed.replace(changed.find("kind: x509-ca\n"), 14, "kind: x509-ca\n    common_name: New CA\n");
  WriteResult v3 = s->UpdateSession(kAlice, "keep", Doc("keep", v2.hash, changed));
  ASSERT_TRUE(v3.status.ok()) << v3.status.ToString();
  std::sort(v3.generated.begin(), v3.generated.end());
  EXPECT_EQ(v3.generated, (std::vector<std::string>{"ca", "cert"}));

  auto h = s->History(kAlice, "keep");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0].hash, v1.hash);
  EXPECT_EQ((*h)[2].hash, v3.hash);
  EXPECT_EQ((*h)[2].author, kAlice);
}

TEST_F(ServiceTest, PredecessorMustBeTheCurrentHash) {
  auto s = OpenUnsealed();
  WriteResult v1 = s->CreateSession(kAlice, Doc("p", "", ""));
  ASSERT_TRUE(v1.status.ok());
  WriteResult none = s->UpdateSession(kAlice, "p", Doc("p", "", "", "access_policy:\n  read: [ANY]\n"));
  EXPECT_EQ(none.status.code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(none.problems.size(), 1u);
  EXPECT_EQ(none.problems[0].path, "predecessor");
  WriteResult stale = s->UpdateSession(kAlice, "p", Doc("p", std::string(64, 'f'), ""));
  EXPECT_EQ(stale.status.code(), StatusCode::kStale);
  WriteResult renamed = s->UpdateSession(kAlice, "p", Doc("q", v1.hash, ""));
  EXPECT_EQ(renamed.status.code(), StatusCode::kInvalidArgument);
  WriteResult created_with_predecessor = s->CreateSession(kAlice, Doc("new", v1.hash, ""));
  EXPECT_EQ(created_with_predecessor.status.code(), StatusCode::kInvalidArgument);
}

TEST_F(ServiceTest, ConcurrentUpdatesOfOneVersionLetExactlyOneWin) {
  auto s = OpenUnsealed();
  WriteResult v1 = s->CreateSession(kAlice, Doc("race", "", ""));
  ASSERT_TRUE(v1.status.ok());
  std::atomic<int> ok{0}, stale{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      std::string extra = "access_policy:\n  read: [CREATOR, " + std::string(63, 'c') + std::to_string(i) + "]\n";
      WriteResult w = s->UpdateSession(kAlice, "race", Doc("race", v1.hash, "", extra));
      if (w.status.ok()) ++ok;
      if (w.status.code() == StatusCode::kStale) ++stale;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(stale.load(), 7);
  auto h = s->History(kAlice, "race");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 2u);
}

TEST_F(ServiceTest, AccessPolicyDecidesWhoReadsUpdatesAndDeletes) {
  auto s = OpenUnsealed();
  WriteResult v1 = s->CreateSession(kAlice, Doc("acl", "", "", "access_policy:\n  read: [ANY]\n  delete: [" + kBob + "]\n"));
  ASSERT_TRUE(v1.status.ok()) << v1.status.ToString();
  EXPECT_TRUE(s->GetSession(kBob, "acl").ok());
  EXPECT_EQ(s->UpdateSession(kBob, "acl", Doc("acl", v1.hash, "")).status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s->DeleteSession(kAlice, "acl").code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(s->DeleteSession(kBob, "acl").ok());
  EXPECT_EQ(s->GetSession(kAlice, "acl").status().code(), StatusCode::kNotFound);

  WriteResult priv = s->CreateSession(kAlice, Doc("private", "", ""));
  ASSERT_TRUE(priv.status.ok());
  EXPECT_EQ(s->GetSession(kBob, "private").status().code(), StatusCode::kPermissionDenied);
  auto list = s->ListSessions(kBob);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  WriteResult none = s->CreateSession(kAlice, Doc("sealed-off", "", "", "access_policy:\n  read: [NONE]\n"));
  ASSERT_TRUE(none.status.ok());
  EXPECT_EQ(s->GetSession(kAlice, "sealed-off").status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ServiceTest, ImportsNeedAnExportToTheImportingSession) {
  auto s = OpenUnsealed();
  WriteResult base = s->CreateSession(
      kAlice, Doc("base", "", "  - name: shared\n    kind: binary\n    export:\n      - session: consumer\n"));
  ASSERT_TRUE(base.status.ok()) << base.status.ToString();
  std::string import = "  - name: key\n    import:\n      session: base\n      secret: shared\n";
  WriteResult consumer = s->CreateSession(kBob, Doc("consumer", "", import));
  EXPECT_TRUE(consumer.status.ok()) << consumer.status.ToString();
  WriteResult stranger = s->CreateSession(kBob, Doc("stranger", "", import));
  EXPECT_EQ(stranger.status.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(stranger.problems.empty());
  WriteResult missing = s->CreateSession(
      kBob, Doc("consumer2", "", "  - name: key\n    import:\n      session: nowhere\n      secret: shared\n"));
  EXPECT_EQ(missing.status.code(), StatusCode::kInvalidArgument);
}

TEST_F(ServiceTest, SessionsSurviveARestart) {
  std::string hash;
  {
    auto s = OpenUnsealed();
    WriteResult w = s->CreateSession(kAlice, Doc("durable", "", "  - name: k\n    kind: private-key\n"));
    ASSERT_TRUE(w.status.ok());
    hash = w.hash;
  }
  auto s = OpenUnsealed();
  EXPECT_EQ(s->SessionCount(), 1);
  auto got = s->GetSession(kAlice, "durable");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->hash, hash);
  ASSERT_EQ(got->secrets.size(), 1u);
  EXPECT_EQ(got->secrets[0].kind, "private-key");
}

}  // namespace
}  // namespace cloister::cas
