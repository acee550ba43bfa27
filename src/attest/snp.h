// AMD SEV-SNP attestation reports: the parser of the 1184-byte report a
// confidential VM gets from its AMD Secure Processor (SEV-SNP firmware ABI,
// ATTESTATION_REPORT structure, versions 2, 3 and 5), and its verifier
// against AMD's key distribution PKI:
//
//   ARK (AMD Root Key, self-signed, pinned here per product)
//    └ ASK (AMD SEV Key) ──── VCEK (Versioned Chip Endorsement Key, one chip at one TCB)
//    └ ASVK (AMD SEV VLEK Key) ─ VLEK (Versioned Loaded Endorsement Key, one cloud provider)
//
// The VCEK or VLEK signs the report (ECDSA P-384, SHA-384); AMD signs the
// certificates (RSASSA-PSS, SHA-384). The VCEK's extensions name the TCB
// it was issued for and the chip, which must match the report. Fetching the
// certificates from AMD's KDS (or the host's certificate table) is the
// caller's business; everything here is pure, with "now" passed in.
//
// Byte layout: see FORMATS.md of the attestation vectors; offsets below.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attest/hardware.h"
#include "base/bytes.h"
#include "cloister/status.h"
#include "crypto/x509.h"

namespace cloister::attest {

inline constexpr size_t kSnpReportSize = 1184;
// The signature covers bytes [0, kSnpSignedSize); it starts there.
inline constexpr size_t kSnpSignedSize = 0x2A0;

// The processor generations whose ARK is known. The product decides the
// layout of a TCB_VERSION and the size of the VCEK's hwID.
enum class SnpProduct { kMilan, kGenoa, kTurin };
// "Milan", "Genoa", "Turin".
std::string_view SnpProductName(SnpProduct p);
// A product line ("Milan") or a VCEK productName with its stepping
// ("Milan-B0", "Genoa-B1"); nullopt for anything else.
std::optional<SnpProduct> ParseSnpProduct(std::string_view name);

// SIGNER_INFO bits 2-4: which key signed the report.
enum class SnpSigningKey : uint8_t { kVcek = 0, kVlek = 1, kNone = 7 };

// Guest policy bits (POLICY, offset 0x08). Bits 0-7 are the minimum ABI
// minor and 8-15 the major version the guest requires.
inline constexpr uint64_t kSnpPolicySmt = uint64_t{1} << 16;
inline constexpr uint64_t kSnpPolicyReservedOne = uint64_t{1} << 17;  // must be 1
inline constexpr uint64_t kSnpPolicyMigrateMa = uint64_t{1} << 18;
inline constexpr uint64_t kSnpPolicyDebug = uint64_t{1} << 19;
inline constexpr uint64_t kSnpPolicySingleSocket = uint64_t{1} << 20;
inline constexpr uint64_t kSnpPolicyCxlAllow = uint64_t{1} << 21;
inline constexpr uint64_t kSnpPolicyMemAes256Xts = uint64_t{1} << 22;
inline constexpr uint64_t kSnpPolicyRaplDis = uint64_t{1} << 23;
inline constexpr uint64_t kSnpPolicyCiphertextHiding = uint64_t{1} << 24;
inline constexpr uint64_t kSnpPolicyPageSwapDisable = uint64_t{1} << 25;

// The security patch levels in a TCB_VERSION. The 8 bytes, in order:
//   Milan, Genoa: [0] bootloader [1] TEE [2..5] reserved [6] SNP [7] microcode
//   Turin:        [0] FMC [1] bootloader [2] TEE [3] SNP [4..6] reserved [7] microcode
// A TCB_VERSION is handled as the little-endian uint64 of those bytes, so
// byte i is bits 8i..8i+7. `fmc` is 0 for Milan and Genoa.
struct SnpTcb {
  uint8_t fmc = 0;
  uint8_t bootloader = 0;
  uint8_t tee = 0;
  uint8_t snp = 0;
  uint8_t microcode = 0;
  bool operator==(const SnpTcb&) const = default;
};
SnpTcb DecodeSnpTcb(SnpProduct product, uint64_t tcb_version);
// The inverse (reserved bytes zero).
uint64_t EncodeSnpTcb(SnpProduct product, const SnpTcb& tcb);
// For a policy's minimum TCB: true when every named component of `actual`
// (FMC on Turin, bootloader, TEE, SNP, microcode) is at least the same
// component of `minimum`. Component by component, not as one number: a
// newer microcode does not make up for an older SNP firmware. Reserved
// bytes are ignored.
bool SnpTcbAtLeast(SnpProduct product, uint64_t actual, uint64_t minimum);

// Every field of a report. Multi-byte integers are decoded from little
// endian; byte strings are kept as the report holds them.
struct SnpReport {
  uint32_t version = 0;                    // 0x000: 2, 3 or 5
  uint32_t guest_svn = 0;                  // 0x004
  uint64_t policy = 0;                     // 0x008
  std::array<uint8_t, 16> family_id{};     // 0x010
  std::array<uint8_t, 16> image_id{};      // 0x020
  uint32_t vmpl = 0;                       // 0x030
  uint32_t signature_algo = 0;             // 0x034: 1 = ECDSA P-384 with SHA-384
  uint64_t current_tcb = 0;                // 0x038 TCB_VERSION
  uint64_t platform_info = 0;              // 0x040
  uint32_t signer_info = 0;                // 0x048: bit 0 AUTHOR_KEY_EN, 1 MASK_CHIP_KEY, 2-4 SIGNING_KEY
  std::array<uint8_t, 64> report_data{};   // 0x050
  std::array<uint8_t, 48> measurement{};   // 0x090
  std::array<uint8_t, 32> host_data{};     // 0x0C0
  std::array<uint8_t, 48> id_key_digest{};      // 0x0E0
  std::array<uint8_t, 48> author_key_digest{};  // 0x110
  std::array<uint8_t, 32> report_id{};     // 0x140
  std::array<uint8_t, 32> report_id_ma{};  // 0x160
  uint64_t reported_tcb = 0;               // 0x180 TCB_VERSION
  // 0x188..0x18A, version 3 and later (0 in version 2): CPUID Fn0000_0001
  // extended family + family, extended model + model, stepping.
  uint8_t cpuid_family = 0, cpuid_model = 0, cpuid_stepping = 0;
  std::array<uint8_t, 64> chip_id{};       // 0x1A0 (zero when MASK_CHIP_KEY)
  uint64_t committed_tcb = 0;              // 0x1E0 TCB_VERSION
  uint8_t current_build = 0, current_minor = 0, current_major = 0;        // 0x1E8..0x1EA
  uint8_t committed_build = 0, committed_minor = 0, committed_major = 0;  // 0x1EC..0x1EE
  uint64_t launch_tcb = 0;                 // 0x1F0 TCB_VERSION
  uint64_t launch_mit_vector = 0;          // 0x1F8, version 5 and later (else 0)
  uint64_t current_mit_vector = 0;         // 0x200, version 5 and later (else 0)
  // 0x2A0: R and S as stored, little-endian, 72 bytes each.
  std::array<uint8_t, 72> signature_r{};
  std::array<uint8_t, 72> signature_s{};

  bool debug() const { return (policy & kSnpPolicyDebug) != 0; }
  bool author_key_en() const { return (signer_info & 1) != 0; }
  bool mask_chip_key() const { return (signer_info & 2) != 0; }
  // The raw 3-bit field; values other than those of SnpSigningKey are
  // reserved (VerifySnpReport refuses them).
  uint8_t signing_key() const { return static_cast<uint8_t>((signer_info >> 2) & 7); }
};

// Parses a report, bounded by the buffer. kIntegrity, with a message that
// starts with "snp: " and says what is wrong, when:
//   - the buffer is not exactly kSnpReportSize bytes;
//   - VERSION is not 2, 3 or 5 (the layouts this parser knows);
//   - SIGNATURE_ALGO is not 1 (ECDSA P-384 with SHA-384, the only one the
//     ABI defines);
//   - policy bit 17 is 0 (the ABI reserves it as must-be-one; firmware
//     does not launch a guest otherwise).
// Reserved bytes are not checked: the ABI only calls them reserved, and
// later versions have put fields into them. Nothing here is authenticated.
StatusOr<SnpReport> ParseSnpReport(std::span<const uint8_t> report);

// What the verifier needs besides the report: all of it from AMD's KDS (or
// the host's extended report certificate table). Untrusted input.
struct SnpCollateral {
  // The VCEK or VLEK certificate, DER or PEM (exactly one certificate).
  Bytes endorsement_certificate;
  // The ASK (for a VCEK) or ASVK (for a VLEK) and the ARK, PEM, in any
  // order; extra AMD CA certificates (KDS's ASK+ARK+ASVK bundles) are fine.
  Bytes ca_bundle;
  // Optional CRLs (DER or PEM); each must be the ARK's of this product.
  std::vector<Bytes> crls;
};

// What the verifier trusts: for each product (SnpProductName), the SHA-256
// of the ARK's DER SubjectPublicKeyInfo. A product without an entry is
// refused.
struct SnpTrust {
  std::map<std::string, std::array<uint8_t, 32>, std::less<>> pinned_arks;
};
// AMD's real ARKs for Milan, Genoa and Turin.
const SnpTrust& DefaultSnpTrust();

// Does this VCEK name the report's chip (hwID == chip_id) and TCB (its SPL
// extensions == reported_tcb)? What VerifySnpReport checks of the VCEK
// against the report, as a yes or no, for choosing among several VCEKs.
bool SnpVcekFitsReport(const crypto::Certificate& vcek, SnpProduct product, const SnpReport& report);

// One entry of an SEV-SNP certificate table: what a guest receives next to
// its report (the `auxblob` of a configfs-tsm report, the certificate
// buffer of the extended guest request): a GUID naming the entry (the VCEK,
// VLEK, ASK, ARK, ...) and its bytes, usually one DER certificate.
struct SnpCertificateTableEntry {
  std::array<uint8_t, 16> guid{};  // as stored (the GUID's mixed-endian form)
  Bytes data;
};

// Parses the table: 24-byte entries (GUID, u32 offset, u32 length, little-
// endian, offsets from the start of the table) ended by an all-zero entry,
// with the data after the entries. kIntegrity, naming what is wrong, for a
// table without its terminating entry, an entry whose data lies outside the
// table or inside the entries, or a table over 64 KiB. Says nothing about
// what the entries hold.
StatusOr<std::vector<SnpCertificateTableEntry>> ParseSnpCertificateTable(std::span<const uint8_t> table);

// Verifies a report and returns what it says. In order:
//   1. the report parses (ParseSnpReport) and is signed (SIGNING_KEY 0 or 1);
//   2. the endorsement certificate is the kind SIGNER_INFO names (subject
//      CN SEV-VCEK or SEV-VLEK);
//   3. the product comes from its productName extension, else from its
//      issuer (SEV-<product> / SEV-VLEK-<product>); the CA bundle has
//      ARK-<product> and SEV-<product> (VCEK) or SEV-VLEK-<product> (VLEK);
//   4. the ARK's key is the pinned one, the ARK is self-signed, the ARK and
//      the ASK/ASVK are CA certificates, ASK/ASVK <- ARK, VCEK/VLEK <- ASK/ASVK;
//   5. each CRL is signed by the ARK and does not list the ASK/ASVK;
//   6. the report signature (ECDSA P-384, SHA-384 over [0, 0x2A0)) verifies
//      with the VCEK/VLEK key;
//   7. the certificate's SPL extensions equal the reported_tcb components;
//      for a VCEK its hwID equals chip_id (the first 8 bytes on Turin)
//      unless MASK_CHIP_KEY; from report version 3 the CPUID family fits the
//      product (0x19 Milan/Genoa, 0x1A Turin);
//   8. ARK, ASK/ASVK and VCEK/VLEK are valid at `now_unix`.
// Failures are kIntegrity, except 8, which is kFailedPrecondition; every
// message starts with "snp: " and names the certificate or field.
//
// A DEBUG guest (policy bit 19) is not an error: verdict.debug is set and a
// warning says so. A CRL that is not current is a warning. tcb_status stays
// kNotEvaluated: without AMD's list of current TCBs the verifier cannot
// tell whether reported_tcb is the newest; a policy compares the claims
// with its minimum (SnpTcbAtLeast).
//
// Claims (hardware.h): numbers in decimal (policy, guest_svn, vmpl,
// version, platform_info), byte strings in lowercase hex, the four
// TCB_VERSIONs as the hex of their 8 bytes as stored plus one claim per
// component ("reported_tcb.bootloader", ".tee", ".snp", ".microcode", and
// ".fmc" on Turin), product ("Milan", "Genoa", "Turin"), signing_key
// ("vcek", "vlek"), and for a VLEK csp_id (its cspID extension).
StatusOr<HardwareVerdict> VerifySnpReport(std::span<const uint8_t> report, const SnpCollateral& collateral,
                                          int64_t now_unix, const SnpTrust& trust = DefaultSnpTrust());

}  // namespace cloister::attest
