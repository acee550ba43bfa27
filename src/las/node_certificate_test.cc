#include "las/node_certificate.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "crypto/identity.h"
#include "las/node_state.h"
#include "las/renewer.h"

namespace cloister::las {
namespace {

constexpr int64_t kDay = 86400;

NodeCertificate Valid(int64_t not_before, int64_t not_after, int64_t received_at = 0) {
  return NodeCertificate{"", {not_before, not_after}, received_at};
}

TEST(RenewalPlanTest, RenewsOnceLessThanHalfIsLeft) {
  const NodeCertificate c = Valid(1'000'000, 1'000'000 + kDay);
  EXPECT_FALSE(PlanRenewal(c, 1'000'000).renew_now);
  EXPECT_FALSE(PlanRenewal(c, 1'000'000 + kDay / 2).renew_now);  // exactly half left
  EXPECT_TRUE(PlanRenewal(c, 1'000'000 + kDay / 2 + 1).renew_now);
  EXPECT_TRUE(PlanRenewal(c, 1'000'000 + kDay - 1).renew_now);
  EXPECT_TRUE(PlanRenewal(c, 1'000'000 + kDay + 3600).renew_now);  // expired: still try
  // Before the validity starts (a clock behind the CAS's): nothing to do yet.
  EXPECT_FALSE(PlanRenewal(c, 999'000).renew_now);
}

TEST(RenewalPlanTest, CountsFromReceiptWhenNotBeforeIsBackdated) {
  // What the CAS issues with a 60-second lifetime: notBefore five minutes
  // back. Counted from notBefore it would be "more than half used" at once.
  const int64_t issued = 2'000'000;
  const NodeCertificate c = Valid(issued - 300, issued + 60, issued);
  EXPECT_FALSE(PlanRenewal(c, issued).renew_now);
  EXPECT_FALSE(PlanRenewal(c, issued + 30).renew_now);
  EXPECT_TRUE(PlanRenewal(c, issued + 31).renew_now);
  EXPECT_TRUE(PlanRenewal(Valid(issued - 300, issued + 60), issued).renew_now) << "without a receipt time";
  // A receipt time before notBefore or after now is not believed: counted
  // from notBefore, as without one.
  EXPECT_FALSE(PlanRenewal(Valid(issued, issued + 100, issued - 5000), issued + 10).renew_now);
  EXPECT_TRUE(PlanRenewal(Valid(issued - 300, issued + 60, issued + 5000), issued).renew_now);
}

TEST(RenewalPlanTest, ChecksEveryQuarterOfWhatIsLeftWithinBounds) {
  const NodeCertificate c = Valid(0, kDay);
  EXPECT_EQ(PlanRenewal(c, 0).next_check_seconds, kMaxCheckSeconds);  // a day left: every minute
  EXPECT_EQ(PlanRenewal(c, kDay - 100).next_check_seconds, 25);       // 100 s left
  EXPECT_EQ(PlanRenewal(c, kDay - 8).next_check_seconds, kMinCheckSeconds);
  EXPECT_EQ(PlanRenewal(c, kDay + 1000).next_check_seconds, kMinCheckSeconds);  // expired
  // A certificate whose validity is a single instant still gets a sane plan.
  const NodeCertificate tiny = Valid(100, 100);
  EXPECT_TRUE(PlanRenewal(tiny, 100).renew_now);
  EXPECT_EQ(PlanRenewal(tiny, 100).next_check_seconds, kMinCheckSeconds);
}

TEST(NodeCertificateTest, ReadsValidityAndFormatsRfc3339) {
  auto id = crypto::CreateIdentity(1);
  ASSERT_TRUE(id.ok());
  auto v = ValidityOf(id->certificate_pem);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const int64_t now = std::time(nullptr);
  EXPECT_NEAR(static_cast<double>(v->not_before), static_cast<double>(now - 300), 5);  // CreateIdentity backdates 5 min
  EXPECT_NEAR(static_cast<double>(v->not_after), static_cast<double>(now + kDay), 5);
  EXPECT_FALSE(ValidityOf("not a certificate").ok());

  EXPECT_EQ(Rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(Rfc3339(1'700'000'000), "2023-11-14T22:13:20Z");
}

TEST(NodeCertificateTest, ChecksKeyAndIssuer) {
  auto node = crypto::CreateIdentity(1);
  auto other = crypto::CreateIdentity(1);
  ASSERT_TRUE(node.ok() && other.ok());
  // A self-signed certificate is its own issuer.
  auto ok = CheckNodeCertificate(node->certificate_pem, node->id, node->certificate_pem, "node.crt");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->pem, node->certificate_pem);
  EXPECT_TRUE(CheckNodeCertificate(node->certificate_pem, node->id, "", "node.crt").ok());

  auto wrong_key = CheckNodeCertificate(other->certificate_pem, node->id, other->certificate_pem, "node.crt");
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_NE(wrong_key.status().message().find("not a certificate for this node's key"), std::string::npos);
  auto wrong_ca = CheckNodeCertificate(node->certificate_pem, node->id, other->certificate_pem, "node.crt");
  ASSERT_FALSE(wrong_ca.ok());
  EXPECT_NE(wrong_ca.status().message().find("not signed by the CAS's node CA"), std::string::npos);
  EXPECT_FALSE(CheckNodeCertificate(node->certificate_pem, node->id, "garbage", "node.crt").ok());
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/las_state_test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(StateDirTest, CreatesTheNodeKeyOnceAndRefusesOpenDirectories) {
  TempDir tmp;
  std::string dir = tmp.path() + "/state";
  auto state = StateDir::Open(dir);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  bool created = false;
  auto key = state->LoadOrCreateNodeKey(&created);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(created);
  ASSERT_EQ(::stat((dir + "/node.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  EXPECT_EQ(*crypto::IdentityOfCertificate(Slurp(dir + "/node-self.crt")), key->node_id);

  auto again = state->LoadOrCreateNodeKey(&created);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(again->node_id, key->node_id);

  // Not joined yet; then joined (here with a self-signed stand-in).
  auto none = state->LoadNodeCertificate(key->node_id);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(state->StoreCertificates(key->tls.certificate_pem, key->tls.certificate_pem).ok());
  auto joined = state->LoadNodeCertificate(key->node_id);
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  ASSERT_TRUE(joined->has_value());
  EXPECT_EQ((*joined)->pem, key->tls.certificate_pem);
  EXPECT_NE(::access((dir + "/node.crt.tmp").c_str(), F_OK), 0) << "no temporary file left behind";

  // A certificate for another key is refused at load.
  auto other = crypto::CreateIdentity(1);
  ASSERT_TRUE(state->StoreCertificates(other->certificate_pem, other->certificate_pem).ok());
  EXPECT_FALSE(state->LoadNodeCertificate(key->node_id).ok());

  ASSERT_EQ(::chmod(dir.c_str(), 0750), 0);
  auto open = StateDir::Open(dir);
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(open.status().message().find("chmod 700"), std::string::npos);
}

TEST(RenewerTest, RenewsOnlyWhenDueAndKeepsTheOldCertificateOnFailure) {
  TempDir tmp;
  auto state = StateDir::Open(tmp.path() + "/state");
  ASSERT_TRUE(state.ok());
  bool created;
  auto key = state->LoadOrCreateNodeKey(&created);
  ASSERT_TRUE(key.ok());
  const std::string pem = key->tls.certificate_pem;
  NodeCredentials creds(key->tls.private_key_pem, key->node_id, NodeCertificate{pem, {1000, 2000}});

  int64_t now = 1100;
  int calls = 0;
  Status next_error = Status::Ok();
  Renewer renewer(
      creds, *state,
      [&]() -> StatusOr<IssuedCertificate> {
        ++calls;
        if (!next_error.ok()) return next_error;
        return IssuedCertificate{NodeCertificate{pem, {now, now + 1000}}, pem};
      },
      [&] { return now; });

  renewer.RunOnce();  // 900 of 1000 s left
  EXPECT_EQ(calls, 0);

  now = 1600;  // 400 of 1000 s left: due
  next_error = Unavailable("CAS unreachable");
  EXPECT_EQ(renewer.RunOnce().next_check_seconds, kMaxCheckSeconds);  // 400 s left: a quarter is more than a minute
  EXPECT_EQ(calls, 1);
  now = 1990;  // 10 s left: retried soon
  EXPECT_EQ(renewer.RunOnce().next_check_seconds, kMinCheckSeconds);
  now = 2100;  // expired: nothing left to save, once a minute
  EXPECT_EQ(renewer.RunOnce().next_check_seconds, kMaxCheckSeconds);
  now = 1990;
  next_error = PermissionDenied("node revoked");  // revoked: never soon
  EXPECT_EQ(renewer.RunOnce().next_check_seconds, kMaxCheckSeconds);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(creds.certificate()->validity.not_after, 2000);  // unchanged
  EXPECT_NE(::access((tmp.path() + "/state/node.crt").c_str(), F_OK), 0);

  now = 1600;
  next_error = Status::Ok();
  RenewalPlan plan = renewer.RunOnce();
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(creds.certificate()->validity.not_after, 2600);
  EXPECT_FALSE(plan.renew_now);
  EXPECT_EQ(Slurp(tmp.path() + "/state/node.crt"), pem);
}

TEST(RenewerTest, StopsPromptly) {
  TempDir tmp;
  auto state = StateDir::Open(tmp.path() + "/state");
  bool created;
  auto key = state->LoadOrCreateNodeKey(&created);
  ASSERT_TRUE(key.ok());
  const int64_t now = std::time(nullptr);
  NodeCredentials creds(key->tls.private_key_pem, key->node_id,
                        NodeCertificate{key->tls.certificate_pem, {now, now + kDay}});
  Renewer renewer(creds, *state, []() -> StatusOr<IssuedCertificate> { return Unavailable("not used"); });
  renewer.Start();
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(renewer.Stop(std::chrono::milliseconds(2000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

}  // namespace
}  // namespace cloister::las
