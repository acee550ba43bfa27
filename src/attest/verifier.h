// The CAS's first judgement of the evidence a starting program presents:
// is it well formed and signed, by a node this CAS certified and has not
// revoked, recent, and bound to the TLS connection it arrived on? What the
// session then asks of it (evidence types, measurements) is decided by the
// CAS with the session at hand.
//
// Pure: the clock, the node CA and the revocation list are passed in, so the
// verifier is tested with a fixed clock (verifier_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "attest/evidence.h"
#include "crypto/certificate.h"

namespace cloister::attest {

// Why a start was refused; the codes are the `reason` values of
// docs/protocol.md section 5, in the order the checks run.
enum class Refusal {
  kBadRequest,
  kEvidenceInvalid,
  kNodeNotCertified,
  kNodeRevoked,
  kEvidenceStale,
  kEvidenceNotBound,
  kUnknownConfig,
  kEvidenceTypeNotAllowed,
  // The node's hardware verdict does not pass the session's expect,
  // tolerate and ignore_advisories (decided by the CAS, not here).
  kEvidenceNotAccepted,
  kMeasurementNotAllowed,
};
std::string_view RefusalCode(Refusal r);  // "bad-request", ..., "measurement-not-allowed"

// Evidence may be at most this old, and at most this far ahead of the
// verifier's clock (clock skew between nodes).
inline constexpr int64_t kMaxEvidenceAgeNs = 60'000'000'000;
inline constexpr int64_t kMaxEvidenceSkewNs = 60'000'000'000;

struct NodeTrust {
  // The CAS's node CA certificate (PEM).
  std::string ca_certificate_pem;
  // True if the node (hex id) is revoked.
  std::function<bool(const std::string& node_id)> is_revoked;
  // Optional: replaces crypto::VerifyIssuedBy(pem, ca_certificate_pem, now)
  // (a CAS caches what it verified). Must check the validity at `now_unix`
  // every time.
  std::function<StatusOr<crypto::CertificateFacts>(const std::string& certificate_pem, int64_t now_unix)>
      verify_certificate;
  // Optional: replaces crypto::P256Verifier::FromCertificate when the
  // evidence's signature is checked (see VerifySimEvidence).
  NodeKeyFn node_key;
};

struct EvidenceCheck {
  std::optional<Refusal> refusal;  // empty: the evidence passed
  std::string detail;              // for the CAS's log and records; names no secret
  // Set when the evidence parsed and its signature verified (also when a
  // later check refused it), so records can name the node and measurements.
  std::optional<SimClaims> claims;
};

// Runs, in order: parse and signature (VerifySimEvidence), node certificate
// issued by `trust`'s CA and valid at `now_ns`, node not revoked, issued_at
// within the bounds above, report_data == `tls_client_key_hash` (SHA-256 of
// the TLS client's public key, compared in constant time).
EvidenceCheck CheckStartEvidence(std::span<const uint8_t> evidence, const NodeTrust& trust, int64_t now_ns,
                                 const Sha256Value& tls_client_key_hash);

}  // namespace cloister::attest
