// Evidence: what a LAS signs for a process that starts, and what the CAS
// turns into a verdict. This file holds the `sim` evidence format (see
// docs/protocol.md): the LAS's node key signs the process's measurements
// and the report data the process supplied (SHA-256 of the fresh public key
// of its TLS connection to the CAS). The node certificate, which the CAS
// issued when the node joined, travels with it.
//
// Parsing and signature checking are pure; deciding whether the node
// certificate is one the CAS issued and has not revoked, whether the
// evidence is recent enough and whether the measurement is allowed is the
// CAS's business.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "crypto/signature.h"

namespace cloister::attest {

enum class EvidenceType : uint8_t { kSim = 1 };
std::string_view EvidenceTypeName(EvidenceType t);  // "sim"

using Sha256Value = std::array<uint8_t, 32>;

struct SimClaims {
  EvidenceType type = EvidenceType::kSim;
  // SHA-256 of the caller's fresh public key (DER SubjectPublicKeyInfo).
  Sha256Value report_data{};
  // SHA-256 of the process's executable and of the runtime library mapped
  // into it (all zero when none is).
  Sha256Value executable{};
  Sha256Value runtime{};
  uint32_t pid = 0, uid = 0;  // as the LAS saw them (SO_PEERCRED)
  uint64_t issued_at_ns = 0;  // LAS clock, UNIX epoch
  // hex SHA-256 of the node's public key, and its certificate (PEM).
  std::string node_id;
  std::string node_certificate_pem;
};

// Largest encoded evidence accepted (bytes).
inline constexpr size_t kMaxEvidenceSize = 64 * 1024;

// Encodes and signs `claims` with the node's P-256 private key (PEM).
// `claims.node_id` must be the hash of the key in `claims.node_certificate_pem`
// and the certificate must belong to `node_key_pem`.
StatusOr<Bytes> SignSimEvidence(const SimClaims& claims, const SecretBytes& node_key_pem);

// The same with a key parsed once (a LAS signs at every start). Only checks
// that `claims.node_id` is the signer's identity: the caller has checked,
// when it installed the certificate, that it belongs to the key.
StatusOr<Bytes> SignSimEvidence(const SimClaims& claims, const crypto::P256Signer& node_key);

// The key of a node certificate (PEM), ready to verify signatures. The
// default is crypto::P256Verifier::FromCertificate; a CAS, which sees the
// same certificate at every start of a node, keeps what it parsed.
using NodeKeyFn =
    std::function<StatusOr<std::shared_ptr<const crypto::P256Verifier>>(const std::string& certificate_pem)>;

// Parses evidence (bounded by its length fields; trailing bytes refused)
// and checks its signature against the enclosed node certificate and that
// node_id names that certificate's key. kIntegrity, with the reason, for
// anything else. Says nothing about whether the node is trusted.
StatusOr<SimClaims> VerifySimEvidence(std::span<const uint8_t> evidence, const NodeKeyFn& node_key = nullptr);

}  // namespace cloister::attest
