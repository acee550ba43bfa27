#include "attest/verifier.h"

#include <openssl/crypto.h>

#include "crypto/certificate.h"

namespace cloister::attest {

std::string_view RefusalCode(Refusal r) {
  switch (r) {
    case Refusal::kBadRequest: return "bad-request";
    case Refusal::kEvidenceInvalid: return "evidence-invalid";
    case Refusal::kNodeNotCertified: return "node-not-certified";
    case Refusal::kNodeRevoked: return "node-revoked";
    case Refusal::kEvidenceStale: return "evidence-stale";
    case Refusal::kEvidenceNotBound: return "evidence-not-bound";
    case Refusal::kUnknownConfig: return "unknown-config";
    case Refusal::kEvidenceTypeNotAllowed: return "evidence-type-not-allowed";
    case Refusal::kEvidenceNotAccepted: return "evidence-not-accepted";
    case Refusal::kMeasurementNotAllowed: return "measurement-not-allowed";
  }
  return "unknown";
}

EvidenceCheck CheckStartEvidence(std::span<const uint8_t> evidence, const NodeTrust& trust, int64_t now_ns,
                                 const Sha256Value& tls_client_key_hash) {
  EvidenceCheck out;
  auto refuse = [&out](Refusal r, std::string detail) {
    out.refusal = r;
    out.detail = std::move(detail);
    return out;
  };
  auto claims = VerifySimEvidence(evidence, trust.node_key);
  if (!claims.ok()) return refuse(Refusal::kEvidenceInvalid, claims.status().message());
  out.claims = *claims;
  const SimClaims& c = *out.claims;

  int64_t now_unix = now_ns / 1'000'000'000;
  auto cert = trust.verify_certificate ? trust.verify_certificate(c.node_certificate_pem, now_unix)
                                       : crypto::VerifyIssuedBy(c.node_certificate_pem, trust.ca_certificate_pem, now_unix);
  if (!cert.ok()) {
    return refuse(Refusal::kNodeNotCertified, "node " + c.node_id.substr(0, 16) + ": " + cert.status().message());
  }
  if (trust.is_revoked && trust.is_revoked(c.node_id)) {
    return refuse(Refusal::kNodeRevoked, "node " + c.node_id.substr(0, 16) + " is revoked");
  }
  int64_t issued = static_cast<int64_t>(c.issued_at_ns);
  if (issued < 0 || now_ns - issued > kMaxEvidenceAgeNs) {
    return refuse(Refusal::kEvidenceStale, "the evidence was issued " + std::to_string((now_ns - issued) / 1'000'000) +
                                               " ms ago (at most " + std::to_string(kMaxEvidenceAgeNs / 1'000'000) +
                                               " ms)");
  }
  if (issued - now_ns > kMaxEvidenceSkewNs) {
    return refuse(Refusal::kEvidenceStale, "the evidence is dated " + std::to_string((issued - now_ns) / 1'000'000) +
                                               " ms in the future");
  }
  if (CRYPTO_memcmp(c.report_data.data(), tls_client_key_hash.data(), c.report_data.size()) != 0) {
    return refuse(Refusal::kEvidenceNotBound,
                  "the evidence's report data is not the hash of this connection's client key");
  }
  return out;
}

}  // namespace cloister::attest
