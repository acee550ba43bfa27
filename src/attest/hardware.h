// What the verifiers of hardware evidence (sgx, tdx, snp, tpm) hand to
// whoever decides about it (the CAS's policy, `cloister attest verify`):
// what was checked, the claims a policy can compare, the TCB status and its
// advisories. A verifier returns a HardwareVerdict only when the evidence is
// authentic: every signature and certificate checked to a pinned root. What
// is merely not good enough (DEBUG set, TCB out of date, expired collateral
// that a policy may tolerate) is reported in the verdict, never hidden;
// anything that is not authentic is an error (kIntegrity) whose message
// names what failed, e.g. "sgx: quote signature does not verify with the
// attestation key".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloister/status.h"

namespace cloister::attest {

// Intel's TCB statuses (TDX adds the two TDRelaunchAdvised ones), used for
// AMD and TPM evidence too where they apply (UpToDate, OutOfDate).
enum class TcbStatus {
  kUpToDate,
  kSWHardeningNeeded,
  kConfigurationNeeded,
  kConfigurationAndSWHardeningNeeded,
  kOutOfDate,
  kOutOfDateConfigurationNeeded,
  kTDRelaunchAdvised,
  kTDRelaunchAdvisedConfigurationNeeded,
  kRevoked,
  kNotSupported,  // no TCB level matches the platform
  kNotEvaluated,  // no collateral was given (signatures and chain still checked)
};
// "UpToDate", "SWHardeningNeeded", ..., "NotSupported", "NotEvaluated".
std::string_view TcbStatusName(TcbStatus s);
// The names above, as in Intel's TCB Info JSON; kIntegrity for others.
StatusOr<TcbStatus> ParseTcbStatus(std::string_view name);

// A claim a policy can compare: lowercase name, value as lowercase hex for
// byte strings and decimal for numbers. Names per type:
//   sgx: mrenclave, mrsigner, isvprodid, isvsvn, attributes, miscselect,
//        cpusvn, configid, configsvn, isvextprodid, isvfamilyid, report_data,
//        fmspc, pceid, pcesvn
//   tdx: mrtd, rtmr0..rtmr3, mrseam, mrsignerseam, seamattributes,
//        tdattributes, xfam, mrconfigid, mrowner, mrownerconfig,
//        tee_tcb_svn, (TDX 1.5) tee_tcb_svn2, mrservicetd, report_data, fmspc
//   snp: measurement, host_data, report_data, policy, guest_svn, vmpl,
//        family_id, image_id, id_key_digest, author_key_digest,
//        reported_tcb, committed_tcb, launch_tcb, current_tcb, chip_id,
//        product, signing_key ("vcek"/"vlek"), version
//   tpm: nonce, pcr_digest, pcr<N> (bank sha256), pcr<N>_sha384, ak (hex
//        SHA-256 of its SubjectPublicKeyInfo), clock, reset_count,
//        restart_count, firmware; the CAS adds ek (hex SHA-256 of the
//        EK certificate's SubjectPublicKeyInfo) and ek_issuer for a node
//        that joined with tpm evidence
struct Claim {
  std::string name;
  std::string value;
};

struct HardwareVerdict {
  std::string type;  // "sgx", "tdx", "snp", "tpm"
  // What was verified, in order, one short line each ("quote signature by
  // the attestation key", "PCK chain to the Intel SGX Root CA", ...).
  std::vector<std::string> checks;
  std::vector<Claim> claims;
  // DEBUG enclave/TD/guest: its memory is readable by the host.
  bool debug = false;
  TcbStatus tcb_status = TcbStatus::kNotEvaluated;
  // Intel advisory IDs ("INTEL-SA-00289", ...) of the matched TCB level.
  std::vector<std::string> advisories;
  // CRLs were given and checked (nothing in the chain revoked).
  bool revocation_checked = false;
  // The earliest nextUpdate / expiry of the collateral used (0: none), so
  // a caller can see how long the verdict stays current.
  int64_t collateral_expires_unix = 0;
  // Things a policy may tolerate or not, stated plainly ("TCB Info expired
  // at 2025-07-19T10:56:11Z (verified at ...)").
  std::vector<std::string> warnings;

  // The claim's value, or nullptr.
  const std::string* Find(std::string_view name) const;
};

}  // namespace cloister::attest
