// Node join and renewal with hardware evidence (docs/protocol.md section
// 4.1), the parts that need no store: the requests and evidence as the CAS
// receives them, the challenges it keeps in memory until they are used, the
// binding of evidence to a challenge and a node, the verdict as a node
// record keeps it, and the requirements a session puts on a verdict at a
// start. The service (node_evidence.cc, nodes.cc, attest.cc) does the rest.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attest/hardware.h"
#include "attest/hw_policy.h"
#include "attest/tpm_quote.h"
#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "policy/policy.h"

namespace cloister::cas {

// Evidence types a node can join with, besides a join token alone.
inline bool IsNodeEvidenceType(const std::string& t) { return t == "tpm" || t == "tdx" || t == "snp"; }

// `POST /v1/nodes/challenge`.
struct NodeChallengeRequest {
  std::string type;  // "tpm", "tdx" or "snp"
  // tpm only: the EK certificate (PEM; CA certificates between it and a
  // configured EK CA may follow it), the EK's and the AK's TPM2B_PUBLIC.
  std::string ek_certificate_pem;
  Bytes ek_public, ak_public;
};

// The answer to it.
struct NodeChallenge {
  std::array<uint8_t, 32> challenge{};
  int64_t expires_unix = 0;
  // tpm only: TPM2_MakeCredential of the CAS's secret, with their u16 sizes.
  Bytes credential_blob, encrypted_secret;
};

// The `evidence` of a join or renewal.
struct NodeEvidence {
  std::string type;  // "tpm", "tdx" or "snp"
  std::array<uint8_t, 32> challenge{};
  Bytes quote;    // tdx: the quote; snp: the report; tpm: the TPMS_ATTEST
  Bytes auxblob;  // snp: the host's certificate table (may be empty)
  // tpm: the activated credential, the quote's TPMT_SIGNATURE and the
  // SHA-256 PCR values it covers.
  SecretBytes secret;
  Bytes signature;
  std::map<uint32_t, Bytes> pcrs;
};

// Parse the JSON bodies of section 4.1. kInvalidArgument naming the field
// that is missing or malformed; nothing here is verified yet.
StatusOr<NodeChallengeRequest> ParseNodeChallengeRequest(const nlohmann::json& body);
StatusOr<NodeEvidence> ParseNodeEvidence(const nlohmann::json& evidence);

// An open challenge: what the CAS needs to verify the evidence that
// answers it.
struct OpenChallenge {
  std::string node_id;  // hex, lowercase
  std::string type;
  std::array<uint8_t, 32> challenge{};
  int64_t expires_unix = 0;
  // tpm: the secret the credential protects, the AK it was made for, and
  // what was checked and learnt when the challenge was made (the EK chain,
  // the AK's attributes), for the verdict.
  SecretBytes secret;
  std::shared_ptr<const attest::TpmPublic> ak;
  std::vector<std::string> checks;
  std::vector<attest::Claim> claims;
};

inline constexpr int64_t kChallengeSeconds = 120;
inline constexpr size_t kMaxChallengesPerNode = 4;
inline constexpr size_t kMaxChallenges = 10000;

// The open challenges, in memory (a restarted CAS has none). Thread-safe.
class ChallengeStore {
 public:
  // Keeps `c` until it is taken or expires (c.expires_unix). Expired ones
  // are forgotten first. kResourceExhausted when c.node_id already has
  // kMaxChallengesPerNode open, kUnavailable when kMaxChallenges are open.
  Status Add(OpenChallenge c, int64_t now_unix);
  // Removes and returns the challenge when it is open, belongs to
  // `node_id` and has not expired at `now_unix`; nullopt otherwise (a
  // challenge of another node stays open for it).
  std::optional<OpenChallenge> Take(const std::string& node_id, std::span<const uint8_t> challenge, int64_t now_unix);
  size_t size() const;

 private:
  // Forgets an open challenge and returns it. mu_ held.
  OpenChallenge Drop(std::map<std::array<uint8_t, 32>, OpenChallenge>::iterator it);
  void Expire(int64_t now_unix);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::array<uint8_t, 32>, OpenChallenge> open_;
  std::multimap<int64_t, std::array<uint8_t, 32>> by_expiry_;
  std::map<std::string, size_t> per_node_;
};

// B = SHA-256("cloister node evidence v1" || challenge || node id), the
// node id as its 32 bytes. kInvalidArgument if `node_id_hex` is not 64 hex.
StatusOr<std::array<uint8_t, 32>> NodeEvidenceBinding(std::span<const uint8_t> challenge,
                                                      const std::string& node_id_hex);

// The verdict as a node record keeps it: type, time (RFC 3339), checks,
// claims (an object), debug, tcb_status, advisories, revocation_checked,
// collateral_expires (UNIX seconds, 0: none) and warnings.
nlohmann::json VerdictJson(const attest::HardwareVerdict& v, int64_t time_unix);
// Back from that form; kInternal if it is not one.
StatusOr<attest::HardwareVerdict> VerdictFromJson(const nlohmann::json& j);

// What a session's `security.attestation` asks of a hardware verdict.
attest::HardwareRequirements RequirementsOf(const policy::AttestationPolicy& a);

}  // namespace cloister::cas
