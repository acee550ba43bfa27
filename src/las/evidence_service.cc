#include "las/evidence_service.h"

#include <algorithm>
#include <chrono>

#include "attest/evidence.h"

namespace cloister::las {
namespace {

int64_t RealTimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Reply Refuse(std::string message) {
  Reply r;
  r.refusal = std::move(message);
  return r;
}

}  // namespace

EvidenceService::EvidenceService(const NodeCredentials& credentials, ProcessMeasurer& measurer, ClockFn clock,
                                 RelayFn relay, CommitFn commit)
    : credentials_(credentials),
      measurer_(measurer),
      clock_(clock ? std::move(clock) : ClockFn(RealTimeNs)),
      relay_(std::move(relay)),
      commit_(std::move(commit)) {}

Reply EvidenceService::Handle(const EvidenceRequest& request, const PeerCredentials& peer) {
  if (request.kind == RequestKind::kVolumeCommit) {
    // The CAS checks the report's token and signature; the LAS only keeps
    // what cannot be one from reaching it. It can withhold a report, not
    // forge or alter one.
    if (!commit_) return Refuse("this LAS does not carry volume commits to a CAS");
    volume_commit::Request parsed;
    std::string error;
    if (!volume_commit::ParseRequest(request.commit_report, &parsed, &error)) {
      return Refuse("bad request: the commit report is malformed: " + error);
    }
    auto answer = commit_(request.commit_report);
    if (!answer.ok()) return Refuse(answer.status().message());
    Reply r;
    r.granted = true;
    r.cas_status = static_cast<uint16_t>(answer->status);
    r.cas_reply.assign(answer->body.begin(), answer->body.end());
    return r;
  }
  // One certificate for the whole request, even if a renewal swaps it
  // meanwhile: the validity we check is that of the certificate we embed.
  std::shared_ptr<const NodeCertificate> cert = credentials_.certificate();
  const int64_t now_ns = clock_();
  const int64_t now = now_ns / 1'000'000'000;
  if (now > cert->validity.not_after) {
    return Refuse("this node has no valid certificate (expired at " + Rfc3339(cert->validity.not_after) + ")");
  }
  if (now < cert->validity.not_before) {
    return Refuse("this node has no valid certificate (not valid before " + Rfc3339(cert->validity.not_before) +
                  "; is the clock right?)");
  }
  if (peer.pid == 0) {
    return Refuse("the calling process is not visible in the LAS's PID namespace");
  }
  const bool relayed = request.kind == RequestKind::kRelayedAttestation;
  if (relayed && !relay_) return Refuse("this LAS does not relay attestations to a CAS");

  auto measured = measurer_.Measure(peer.pid);
  if (!measured.ok()) return Refuse(measured.status().message());

  attest::SimClaims claims;
  claims.report_data = request.report_data;
  claims.executable = measured->executable;
  claims.runtime = measured->runtime;
  claims.pid = peer.pid;
  claims.uid = peer.uid;
  // Stamped after measuring: a large executable hashed on a cache miss
  // would otherwise make fresh evidence look older than it is.
  claims.issued_at_ns = static_cast<uint64_t>(std::max<int64_t>(clock_(), now_ns));
  claims.node_id = credentials_.node_id();
  claims.node_certificate_pem = cert->pem;
  // The parsed key when there is one: parsing PEM costs more than signing.
  auto evidence = credentials_.signer() != nullptr ? attest::SignSimEvidence(claims, *credentials_.signer())
                                                   : attest::SignSimEvidence(claims, credentials_.key_pem());
  Reply r;
  r.executable_prefix = HexEncode(measured->executable).substr(0, 12);
  r.has_runtime = measured->has_runtime;
  if (!evidence.ok()) {
    r.refusal = "the LAS cannot sign evidence: " + evidence.status().message();
    return r;
  }
  if (evidence->size() > kMaxEvidenceBody) {
    r.refusal = "the evidence is too large to send";
    return r;
  }
  if (relayed) {
    auto reply = relay_(request.config_id, *evidence, request.key);
    if (!reply.ok()) {
      r.refusal = reply.status().message();
      return r;
    }
    r.cas_reply = std::move(*reply);
  }
  r.granted = true;
  r.evidence = std::move(*evidence);
  return r;
}

}  // namespace cloister::las
