#include "attest/hw_policy.h"

#include <gtest/gtest.h>

#include "attest/dcap.h"
#include "attest/snp.h"
#include "attest/test_vectors.h"
#include "crypto/x509.h"

namespace cloister::attest {
namespace {

using testing::ReadVector;
using testing::ReadVectorText;

int64_t At(const char* t) { return *crypto::ParseRfc3339(t); }

std::string Joined(const HardwareDecision& d) {
  std::string s;
  for (const std::string& r : d.reasons) s += r + "\n";
  return s;
}

// A verdict as a DCAP verifier with collateral would give it.
HardwareVerdict Tdx(TcbStatus status, std::vector<std::string> advisories = {}) {
  HardwareVerdict v;
  v.type = "tdx";
  v.tcb_status = status;
  v.advisories = std::move(advisories);
  v.revocation_checked = true;
  v.collateral_expires_unix = At("2030-01-01T00:00:00Z");
  v.claims = {{"mrtd", "aa11"}, {"rtmr0", "bb22"}, {"isvsvn", "3"}};
  return v;
}

TEST(HwPolicyTest, ExpectedClaimsAndMinimums) {
  const int64_t now = At("2026-01-01T00:00:00Z");
  HardwareRequirements r;
  r.expect["tdx"].one_of["mrtd"] = {"00ff", "AA11"};  // any of, case-insensitive
  r.expect["tdx"].at_least["isvsvn"] = 3;
  EXPECT_TRUE(JudgeHardwareVerdict(Tdx(TcbStatus::kUpToDate), r, now).accepted);

  r.expect["tdx"].one_of["rtmr0"] = {"cc33"};
  auto d = JudgeHardwareVerdict(Tdx(TcbStatus::kUpToDate), r, now);
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("rtmr0 bb22 is not one the policy accepts"), std::string::npos) << Joined(d);

  r.expect["tdx"].one_of.erase("rtmr0");
  r.expect["tdx"].at_least["isvsvn"] = 4;
  d = JudgeHardwareVerdict(Tdx(TcbStatus::kUpToDate), r, now);
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("isvsvn 3 is below the policy's minimum 4"), std::string::npos) << Joined(d);

  r.expect["tdx"].at_least.clear();
  r.expect["tdx"].one_of["mrseam"] = {"dd44"};
  d = JudgeHardwareVerdict(Tdx(TcbStatus::kUpToDate), r, now);
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("has no mrseam"), std::string::npos) << Joined(d);

  // What another type expects does not apply.
  HardwareRequirements other;
  other.expect["sgx"].one_of["mrenclave"] = {"ee55"};
  EXPECT_TRUE(JudgeHardwareVerdict(Tdx(TcbStatus::kUpToDate), other, now).accepted);
}

TEST(HwPolicyTest, TcbStatusesNeedTheirTolerations) {
  const int64_t now = At("2026-01-01T00:00:00Z");
  struct Case {
    TcbStatus status;
    std::vector<std::string> tolerate;
    bool accepted;
  };
  const std::vector<Case> cases = {
      {TcbStatus::kUpToDate, {}, true},
      {TcbStatus::kSWHardeningNeeded, {}, false},
      {TcbStatus::kSWHardeningNeeded, {"sw-hardening-needed"}, true},
      {TcbStatus::kConfigurationNeeded, {"sw-hardening-needed"}, false},
      {TcbStatus::kConfigurationNeeded, {"configuration-needed"}, true},
      {TcbStatus::kConfigurationAndSWHardeningNeeded, {"configuration-needed"}, false},
      {TcbStatus::kConfigurationAndSWHardeningNeeded, {"configuration-needed", "sw-hardening-needed"}, true},
      {TcbStatus::kOutOfDate, {"sw-hardening-needed", "configuration-needed"}, false},
      {TcbStatus::kOutOfDate, {"outdated-tcb"}, true},
      {TcbStatus::kOutOfDateConfigurationNeeded, {"outdated-tcb"}, false},
      {TcbStatus::kOutOfDateConfigurationNeeded, {"outdated-tcb", "configuration-needed"}, true},
      {TcbStatus::kTDRelaunchAdvised, {"outdated-tcb"}, true},
      {TcbStatus::kRevoked, {"outdated-tcb", "configuration-needed", "sw-hardening-needed", "debug"}, false},
      {TcbStatus::kNotSupported, {"outdated-tcb", "configuration-needed", "sw-hardening-needed"}, false},
      {TcbStatus::kNotEvaluated, {"outdated-tcb", "configuration-needed", "sw-hardening-needed"}, false},
  };
  for (const Case& c : cases) {
    HardwareRequirements r;
    r.tolerate = c.tolerate;
    auto d = JudgeHardwareVerdict(Tdx(c.status), r, now);
    EXPECT_EQ(d.accepted, c.accepted) << TcbStatusName(c.status) << ": " << Joined(d);
    if (!d.accepted) {
      EXPECT_FALSE(d.reasons.empty());
    }
  }
  // Without CRLs the TCB status is not enough.
  HardwareVerdict unchecked = Tdx(TcbStatus::kUpToDate);
  unchecked.revocation_checked = false;
  auto d = JudgeHardwareVerdict(unchecked, HardwareRequirements{}, now);
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("revocation was not checked"), std::string::npos);
}

TEST(HwPolicyTest, AdvisoriesMustBeIgnoredOneByOne) {
  const int64_t now = At("2026-01-01T00:00:00Z");
  HardwareRequirements r;
  r.tolerate = {"sw-hardening-needed"};
  HardwareVerdict v = Tdx(TcbStatus::kSWHardeningNeeded, {"INTEL-SA-00615", "INTEL-SA-00289"});
  auto d = JudgeHardwareVerdict(v, r, now);
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("advisory INTEL-SA-00615 is not in ignore_advisories"), std::string::npos);
  r.ignore_advisories = {"INTEL-SA-00615"};
  d = JudgeHardwareVerdict(v, r, now);
  EXPECT_FALSE(d.accepted);
  EXPECT_EQ(Joined(d).find("INTEL-SA-00615"), std::string::npos) << Joined(d);
  r.ignore_advisories.push_back("INTEL-SA-00289");
  d = JudgeHardwareVerdict(v, r, now);
  EXPECT_TRUE(d.accepted) << Joined(d);
  EXPECT_NE(Joined(d).find("TCB status SWHardeningNeeded tolerated"), std::string::npos);
}

TEST(HwPolicyTest, DebugAndExpiredCollateral) {
  HardwareVerdict v = Tdx(TcbStatus::kUpToDate);
  v.debug = true;
  auto d = JudgeHardwareVerdict(v, HardwareRequirements{}, At("2026-01-01T00:00:00Z"));
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("debug mode"), std::string::npos);
  HardwareRequirements r;
  r.tolerate = {"debug"};
  d = JudgeHardwareVerdict(v, r, At("2026-01-01T00:00:00Z"));
  EXPECT_TRUE(d.accepted);
  EXPECT_NE(Joined(d).find("debug mode tolerated"), std::string::npos);

  v.debug = false;
  d = JudgeHardwareVerdict(v, HardwareRequirements{}, At("2031-01-01T00:00:00Z"));
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("collateral expired at 2030-01-01T00:00:00Z"), std::string::npos) << Joined(d);
  r.tolerate = {"outdated-tcb"};
  EXPECT_TRUE(JudgeHardwareVerdict(v, r, At("2031-01-01T00:00:00Z")).accepted);
}

TEST(HwPolicyTest, RealVerdicts) {
  CLOISTER_REQUIRE_VECTORS();
  // The dcap-qvl SGX sample: ConfigurationAndSWHardeningNeeded with two
  // advisories, accepted only with both tolerations and both advisories.
  auto c = DcapCollateralFromJson(ReadVectorText("dcap-qvl/sgx_quote_collateral.json"));
  ASSERT_TRUE(c.ok());
  const int64_t now = At("2025-07-01T00:00:00Z");
  auto sgx = VerifyDcapQuote(ReadVector("dcap-qvl/sgx_quote"), &*c, now);
  ASSERT_TRUE(sgx.ok()) << sgx.status().ToString();
  HardwareRequirements r;
  r.expect["sgx"].one_of["mrenclave"] = {"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"};
  r.expect["sgx"].at_least["isvsvn"] = 0;
  EXPECT_FALSE(JudgeHardwareVerdict(*sgx, r, now).accepted);
  r.tolerate = {"sw-hardening-needed", "configuration-needed"};
  r.ignore_advisories = {"INTEL-SA-00289", "INTEL-SA-00615"};
  auto d = JudgeHardwareVerdict(*sgx, r, now);
  EXPECT_TRUE(d.accepted) << Joined(d);
  // The same quote a month after its collateral's nextUpdate.
  EXPECT_FALSE(JudgeHardwareVerdict(*sgx, r, At("2025-08-20T00:00:00Z")).accepted);
  // Another enclave.
  r.expect["sgx"].one_of["mrenclave"] = {std::string(64, '0')};
  EXPECT_FALSE(JudgeHardwareVerdict(*sgx, r, now).accepted);

  // SEV-SNP: the go-sev-guest report runs with DEBUG set; a minimum TCB.
  SnpCollateral sc;
  sc.endorsement_certificate = ReadVector("snp/go-sev-guest/vcek.testcer");
  sc.ca_bundle = ReadVector("snp/go-sev-guest/ask_ark_milan.pem");
  const int64_t snp_now = At("2025-06-01T00:00:00Z");
  auto snp = VerifySnpReport(ReadVector("snp/go-sev-guest/attestation.bin"), sc, snp_now);
  ASSERT_TRUE(snp.ok()) << snp.status().ToString();
  HardwareRequirements s;
  s.expect["snp"].one_of["measurement"] = {
      "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"};
  s.expect["snp"].at_least["reported_tcb.snp"] = 5;
  s.tolerate = {"debug"};
  d = JudgeHardwareVerdict(*snp, s, snp_now);
  EXPECT_TRUE(d.accepted) << Joined(d);
  s.expect["snp"].at_least["reported_tcb.microcode"] = 69;
  d = JudgeHardwareVerdict(*snp, s, snp_now);
  EXPECT_FALSE(d.accepted);
  EXPECT_NE(Joined(d).find("reported_tcb.microcode 68 is below the policy's minimum 69"), std::string::npos)
      << Joined(d);
  s.tolerate.clear();
  s.expect["snp"].at_least.erase("reported_tcb.microcode");
  EXPECT_FALSE(JudgeHardwareVerdict(*snp, s, snp_now).accepted);
}

}  // namespace
}  // namespace cloister::attest
