// Judging a hardware verdict (hardware.h) against what a session asks of
// it: the claims it expects (MRENCLAVE, MRTD, RTMRs, the SNP measurement,
// PCRs, ...), minimums (ISVSVN, SNP TCB components), and the weaknesses it
// tolerates (debug mode, an out-of-date TCB or collateral, software
// hardening or configuration needed, advisories). Pure: the time is passed
// in. The session's document says this in `security.attestation` (see
// docs/policy.md section 11); the CAS turns that into HardwareRequirements.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attest/hardware.h"

namespace cloister::attest {

// For one evidence type.
struct ExpectedClaims {
  // Claim name -> accepted values (any of them; lowercase hex or decimal,
  // compared case-insensitively).
  std::map<std::string, std::vector<std::string>> one_of;
  // Claim name -> minimum (the claim read as a decimal number).
  std::map<std::string, uint64_t> at_least;
};

struct HardwareRequirements {
  // Tolerations, as in the policy: debug, outdated-tcb,
  // sw-hardening-needed, configuration-needed.
  std::vector<std::string> tolerate;
  // Advisory IDs accepted in a tolerated TCB status.
  std::vector<std::string> ignore_advisories;
  // By evidence type ("sgx", "tdx", "snp", "tpm"); a type without an entry
  // has no expected claims (a policy then relies on the per-process
  // measurements alone).
  std::map<std::string, ExpectedClaims> expect;
};

struct HardwareDecision {
  bool accepted = false;
  // Why not (each a complete sentence naming the claim or status), or, when
  // accepted, what was tolerated ("debug TD tolerated"). Names no secret.
  std::vector<std::string> reasons;
};

// Accepts the verdict only if all of these hold:
//  - every expected claim is present with an accepted value, and every
//    minimum is met;
//  - debug mode is tolerated ("debug") if the TEE is in debug mode;
//  - for sgx and tdx, the TCB was evaluated against collateral that checked
//    revocation; its status is UpToDate or tolerated (SWHardeningNeeded:
//    sw-hardening-needed; ConfigurationNeeded: configuration-needed; both
//    for ConfigurationAndSWHardeningNeeded; OutOfDate and TDRelaunchAdvised:
//    outdated-tcb; OutOfDateConfigurationNeeded: outdated-tcb and
//    configuration-needed); Revoked and NotSupported never are; and every
//    advisory of a status other than UpToDate is in ignore_advisories;
//  - collateral past its nextUpdate at `now_unix` needs outdated-tcb.
HardwareDecision JudgeHardwareVerdict(const HardwareVerdict& v, const HardwareRequirements& r, int64_t now_unix);

}  // namespace cloister::attest
