// Intel DCAP quotes: SGX quotes version 3 (and version 4 with an SGX body)
// and TDX quotes version 4 and 5 (TDX 1.0 and 1.5 bodies), verified to the
// Intel SGX Root CA and evaluated against Intel's collateral (TCB Info, QE
// Identity, CRLs) as Intel's Quote Verification Library does.
//
// Pure: no I/O, the time is passed in. The quote is untrusted input: every
// length is checked against the bytes there are, and the bytes after the
// signature data (real quotes carry padding there) are ignored, never read
// as part of the quote.
//
// What VerifyDcapQuote checks, in order (each a line of verdict.checks):
//  1. the quote parses; header version, key type (ECDSA P-256) and QE vendor;
//  2. the PCK certificate chain (from the quote's certification data, or
//     from the collateral for quotes that carry only a PPID) to a root whose
//     SubjectPublicKeyInfo hash is pinned (Intel SGX Root CA), every
//     certificate valid at `now`;
//  3. with collateral: the root CA's CRL and the PCK CA's CRL (signed by
//     their issuers, current at `now`), neither revoking the chain;
//  4. the QE report's signature by the PCK key;
//  5. the QE report data binds the attestation key and the QE auth data;
//  6. the quote's signature by the attestation key;
//  7. with collateral: TCB Info and QE Identity signed (over their exact
//     JSON bytes) by the Intel SGX TCB Signing certificate chained to the
//     pinned root, for this FMSPC and PCE-ID; the QE matches its identity;
//     the platform's (and for TDX, the TDX module's) TCB level, converged
//     with the QE's, gives the status and advisories.
// Collateral past its nextUpdate is reported in verdict.warnings (the
// policy decides whether to tolerate it), never silently accepted.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attest/hardware.h"
#include "base/bytes.h"
#include "cloister/status.h"

namespace cloister::attest {

// ---- the quote, parsed ----

struct SgxReportBody {  // 384 bytes, also the QE's report
  std::array<uint8_t, 16> cpusvn{};
  uint32_t miscselect = 0;
  std::array<uint8_t, 16> isvextprodid{};
  std::array<uint8_t, 16> attributes{};  // flags u64 LE, then xfrm u64 LE
  std::array<uint8_t, 32> mrenclave{}, mrsigner{};
  std::array<uint8_t, 64> configid{};
  uint16_t isvprodid = 0, isvsvn = 0, configsvn = 0;
  std::array<uint8_t, 16> isvfamilyid{};
  std::array<uint8_t, 64> report_data{};
  bool debug() const { return (attributes[0] & 0x02) != 0; }
};

struct TdReportBody {  // 584 bytes (TDX 1.0) or 648 (TDX 1.5)
  std::array<uint8_t, 16> tee_tcb_svn{};
  std::array<uint8_t, 48> mrseam{}, mrsignerseam{};
  std::array<uint8_t, 8> seamattributes{}, tdattributes{}, xfam{};
  std::array<uint8_t, 48> mrtd{}, mrconfigid{}, mrowner{}, mrownerconfig{};
  std::array<std::array<uint8_t, 48>, 4> rtmr{};
  std::array<uint8_t, 64> report_data{};
  bool tdx15 = false;
  std::array<uint8_t, 16> tee_tcb_svn2{};
  std::array<uint8_t, 48> mrservicetd{};
  bool debug() const { return (tdattributes[0] & 0x01) != 0; }
};

struct DcapQuote {
  uint16_t version = 0;
  uint32_t tee_type = 0;  // 0 SGX, 0x81 TDX
  bool is_tdx() const { return tee_type == 0x81; }
  uint16_t qe_svn = 0, pce_svn = 0;  // version 3 header fields
  std::array<uint8_t, 16> qe_vendor_id{};
  SgxReportBody sgx;  // when !is_tdx()
  TdReportBody td;    // when is_tdx()
  size_t signed_size = 0;  // the quote signature covers bytes [0, signed_size)
  std::array<uint8_t, 64> signature{};        // r || s
  std::array<uint8_t, 64> attestation_key{};  // x || y
  SgxReportBody qe_report;
  std::array<uint8_t, 384> qe_report_raw{};
  std::array<uint8_t, 64> qe_report_signature{};
  Bytes qe_auth_data;
  uint16_t cert_type = 0;  // certification data type (innermost for v4/v5)
  Bytes cert_data;
  size_t trailing_bytes = 0;  // after the signature data; ignored
};

// kIntegrity, naming the field, for anything malformed or out of bounds.
StatusOr<DcapQuote> ParseDcapQuote(std::span<const uint8_t> quote);

// ---- collateral ----

// As a PCCS (or Intel's PCS) serves it for the quote's FMSPC. JSON texts are
// the responses as received: {"tcbInfo":{...},"signature":"..."} and
// {"enclaveIdentity":{...},"signature":"..."}; the signature covers the
// exact bytes of the inner object. Chains and CRLs are PEM or DER.
struct DcapCollateral {
  std::string tcb_info_json;
  std::string qe_identity_json;
  Bytes tcb_info_issuer_chain;    // TCB Signing certificate + root
  Bytes qe_identity_issuer_chain;  // usually the same
  Bytes root_ca_crl;
  // The CRL of the CA that issued the PCK certificate (Processor or
  // Platform CA); more may be given, the one of that CA is used.
  std::vector<Bytes> pck_crls;
  // Only for quotes whose certification data is not the PCK chain (types
  // 1-4: PPID or the PCK leaf alone): the PCK certificate and its chain.
  Bytes pck_certificate_chain;
};

// Builds a collateral from the one-file JSON form some verifiers use
// ({"tcb_info": "...", "tcb_info_signature": "hex", "tcb_info_issuer_chain":
// "PEM", "qe_identity": ..., "root_ca_crl": "hex DER", "pck_crl": ...}).
StatusOr<DcapCollateral> DcapCollateralFromJson(const std::string& json);

struct DcapTrust {
  // SHA-256 of the SubjectPublicKeyInfo of the accepted roots. Default: the
  // Intel SGX Root CA.
  std::vector<std::array<uint8_t, 32>> root_spki_sha256;
};
const DcapTrust& DefaultDcapTrust();

// Which collateral a quote needs: its platform's FMSPC (lowercase hex, from
// the PCK certificate in the quote or, for PPID-only quotes, among
// `pck_certificates`) and whether it is a TDX quote. Only parses: nothing
// is verified, the answer serves to choose collateral, which
// VerifyDcapQuote then checks against the quote.
struct DcapPlatform {
  std::string fmspc;
  bool tdx = false;
};
StatusOr<DcapPlatform> ReadDcapPlatform(std::span<const uint8_t> quote, const Bytes& pck_certificates);

// See the top of this file. `collateral` may be null: signatures and the
// PCK chain are still verified, the TCB is not (tcb_status kNotEvaluated).
StatusOr<HardwareVerdict> VerifyDcapQuote(std::span<const uint8_t> quote, const DcapCollateral* collateral,
                                          int64_t now_unix, const DcapTrust& trust = DefaultDcapTrust());

}  // namespace cloister::attest
