// The LAS's side of the CAS's node routes (docs/protocol.md, section 4):
// POST /v1/nodes/join and POST /v1/nodes/renew, with node evidence
// (section 4.1) after POST /v1/nodes/challenge, the relay of starting
// programs' attestations (section 6, POST /v1/attest/relay/batch) and of
// volume commits (section 7, POST /v1/volumes/commit), over an ApiClient that
// presents the node key as its TLS client certificate and pins the CAS key.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attest/relay_reply.h"
#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "las/node_certificate.h"
#include "las/node_evidence.h"
#include "net/http_client.h"

namespace cloister::las {

// A certificate the CAS issued, already checked: for the node's key, and
// signed by the CA certificate it came with.
struct IssuedCertificate {
  NodeCertificate certificate;
  std::string ca_certificate_pem;
};

// Turns a response of the join or renewal route into an IssuedCertificate.
// Anything but 200 becomes an error carrying the CAS's "error" text:
// kUnauthenticated for 401 (token unknown, used or expired),
// kPermissionDenied for 403 (revoked or unknown node), kUnavailable for
// other statuses. A 200 whose node id or certificate is not this node's,
// or whose certificate the enclosed CA did not sign, is kIntegrity.
StatusOr<IssuedCertificate> ParseIssuedCertificate(const net::HttpResponse& response, const std::string& node_id);

// A join token is "cloister-join-v1:" followed by 64 hex digits. Surrounding
// whitespace (a trailing newline) is removed; anything else is refused
// without echoing the file's content.
StatusOr<SecretBytes> ParseJoinToken(const SecretBytes& file_content);

// JoinCas and RenewWithCas fail as ParseIssuedCertificate does when the CAS
// answered, and otherwise with kUnavailable (unreachable, timed out) or
// kFailedPrecondition (the server is not the CAS whose key is pinned).

// Joins with `token` under the operator label `name`, and with node
// evidence (the JSON text of `E`, protocol.md section 4.1) when `evidence`
// is not null.
StatusOr<IssuedCertificate> JoinCas(net::ApiClient& client, const SecretBytes& token, const std::string& name,
                                    const std::string& node_id, const SecretBytes* evidence = nullptr);

// Asks for a fresh certificate for an already joined node: with `{}`, or
// with fresh node evidence when `evidence` is not null.
StatusOr<IssuedCertificate> RenewWithCas(net::ApiClient& client, const std::string& node_id,
                                         const SecretBytes* evidence = nullptr);

// Turns the CAS's answer to POST /v1/nodes/challenge for evidence of `type`
// into a NodeChallenge. Anything but 200 is an error carrying the CAS's
// "error" text after "challenge refused: ": kUnauthenticated for 401,
// kPermissionDenied for 403 (the CAS does not trust the EK certificate, the
// AK is not an attestation key, ...), kUnavailable otherwise. A 200 must be
// a JSON object with "challenge" (64 hex digits) and a positive integer
// "expires"; for "tpm" also "credential_blob" and "encrypted_secret"
// (non-empty base64), which other types must not have. Anything else is
// kIntegrity.
StatusOr<NodeChallenge> ParseNodeChallenge(const net::HttpResponse& response, const std::string& type);

// POST /v1/nodes/challenge with `request_body` (a JSON object naming the
// type); fails as ParseNodeChallenge, or as JoinCas's transport errors.
StatusOr<NodeChallenge> RequestNodeChallenge(net::ApiClient& client, const std::string& request_body,
                                             const std::string& type);

// Fresh evidence from `source` for the node `node_id`, with a challenge
// asked over `client`: what JoinCas and RenewWithCas take as `evidence`.
StatusOr<SecretBytes> GatherNodeEvidence(net::ApiClient& client, NodeEvidenceSource& source,
                                         const std::string& node_id);

// One start the LAS relays (docs/protocol.md section 6). The views belong
// to the caller and stay valid while it waits for the reply.
struct RelayStart {
  std::string_view config_id;
  std::span<const uint8_t> evidence;
  relay::Point key;
};

// Carries 1 to relay::kMaxBatch starts in one POST /v1/attest/relay/batch
// and returns one result per start, in order: the CAS's signed reply,
// whatever it says (checking it is the program's business), or why that
// start has none. Fails as a whole when the exchange does (as JoinCas's
// transport errors, or with the CAS's "error" text when it would not take
// the request).
StatusOr<std::vector<StatusOr<Bytes>>> RelayBatchToCas(net::ApiClient& client,
                                                       const std::vector<const RelayStart*>& starts);

// The CAS's answer to a request the LAS carries for a program: the HTTP
// status and body, whatever they say (the program reads them).
struct CasAnswer {
  int status = 0;
  std::string body;
};

// Posts a volume commit report (docs/protocol.md section 7) to
// POST /v1/volumes/commit and returns the CAS's answer. Fails as JoinCas's
// transport errors do, and with kIntegrity when the answer is not an HTTP
// status with a body of at most `max_body` bytes.
StatusOr<CasAnswer> CommitVolumeToCas(net::ApiClient& client, const std::string& report, size_t max_body);

// A node name as docs/protocol.md allows: [A-Za-z0-9._-]{1,64}.
bool IsValidNodeName(const std::string& name);
// A host name made into a valid node name: other characters become '-',
// cut at 64; "node" if nothing is left.
std::string SanitizeNodeName(const std::string& hostname);

}  // namespace cloister::las
