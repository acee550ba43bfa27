// Node evidence (docs/protocol.md section 4.1): what a LAS started with
// --evidence tpm, tdx or snp proves about its node when it joins the CAS and
// at every renewal. The CAS hands out a challenge; the LAS binds the
// challenge and its node id into B = SHA-256("cloister node evidence v1" ||
// challenge || node id) and has the hardware vouch for B:
//   - tpm: the TPM's endorsement key (EK) and its certificate, a fresh
//     attestation key (AK) under it, credential activation (which shows the
//     CAS that the AK lives in the TPM holding the certified EK), and a quote
//     of the SHA-256 bank's PCRs 0 to 23 with B as qualifying data;
//   - tdx, snp: a quote or report from Linux configfs-tsm whose report data
//     is B followed by 32 zero bytes.
// The result is the JSON object `E` of the join and renewal bodies.
//
// Errors name the evidence type and what failed, in one line ("tpm: cannot
// read the EK certificate from NV index 0x01c00002: ..."). They never carry
// the activated secret. Codes: kUnavailable when the TPM or configfs-tsm
// cannot be used, kFailedPrecondition when it lacks something (no EK
// certificate, another provider), kIntegrity when what it returned is
// malformed or changed while being read; whatever the challenge callback
// returned is passed on unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"
#include "crypto/crypto.h"

namespace cloister::las {

inline constexpr size_t kNodeChallengeSize = 32;
inline constexpr char kDefaultTpmTcti[] = "device:/dev/tpmrm0";
inline constexpr char kDefaultTsmDir[] = "/sys/kernel/config/tsm/report";

// A challenge of POST /v1/nodes/challenge, already checked for its shape
// (ParseNodeChallenge in cas_node_client.h).
struct NodeChallenge {
  Bytes challenge;  // kNodeChallengeSize bytes
  int64_t expires = 0;
  // tpm only: the CAS's TPM2_MakeCredential output, each a TPM2B with its
  // u16 size (TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET).
  Bytes credential_blob;
  Bytes encrypted_secret;
};

// B of protocol.md section 4.1. `node_id` is the node id's 32 bytes (the
// SHA-256 of the node key's SubjectPublicKeyInfo), not its hex.
crypto::Digest NodeEvidenceBinding(std::span<const uint8_t> challenge, std::span<const uint8_t> node_id);

// One way of proving what the node is. Gather() may be called again for
// every renewal; calls do not overlap (an implementation serialises them).
class NodeEvidenceSource {
 public:
  // Asks the CAS for a challenge: takes the JSON body of
  // POST /v1/nodes/challenge and returns the checked answer, or the error
  // to pass on (a refusal by the CAS, the CAS unreachable).
  using ChallengeFn = std::function<StatusOr<NodeChallenge>(const std::string& request_body)>;

  virtual ~NodeEvidenceSource() = default;
  // "tpm", "tdx" or "snp": the evidence type as the protocol names it.
  virtual const std::string& type() const = 0;
  // Gathers fresh evidence for the node whose id (64 hex digits) is
  // `node_id`: asks `challenge` once and returns the JSON text of `E`. For
  // tpm it holds the activated secret, hence SecretBytes; the caller sends
  // it and lets it be wiped.
  virtual StatusOr<SecretBytes> Gather(const ChallengeFn& challenge, const std::string& node_id) = 0;
};

// ---- configfs-tsm (tdx, snp) ----

// The few file operations a configfs-tsm report needs. configfs creates an
// entry's attributes (inblob, outblob, auxblob, generation, provider) when
// the entry's directory is made, and produces outblob when it is read after
// inblob was written; tests put a fake report tree behind this interface.
class TsmFs {
 public:
  virtual ~TsmFs() = default;
  // The real file system (POSIX calls).
  static TsmFs& Posix();

  virtual Status MakeDir(const std::string& path) = 0;  // mode 0700
  virtual Status RemoveDir(const std::string& path) = 0;
  // Writes all of `data` to the existing attribute `path` (opened
  // write-only; configfs takes a binary attribute when it is closed).
  virtual Status WriteAttribute(const std::string& path, std::span<const uint8_t> data) = 0;
  // The whole content of `path`, at most `max` bytes (kIntegrity beyond);
  // kNotFound when it does not exist.
  virtual StatusOr<Bytes> ReadAttribute(const std::string& path, size_t max) = 0;
};

// Evidence of `type` ("tdx" or "snp") through configfs-tsm at `dir`
// (kDefaultTsmDir in production). For each Gather(): makes a new report
// entry under `dir` with a random name (before it asks for the challenge,
// so that a node without configfs-tsm uses up none), writes
// inblob = B || 32 zero bytes,
// reads generation, outblob (and for snp auxblob, when the entry has one and
// it is not empty), generation again, which must not have changed (another
// writer used the entry meanwhile), and provider, which must be tdx_guest or
// sev_guest, and removes the entry. `fs` must outlive the source.
std::unique_ptr<NodeEvidenceSource> NewTsmNodeEvidence(const std::string& type, std::string dir, TsmFs& fs);

// ---- TPM 2.0 (tpm) ----

// Evidence from the TPM reached through the TCTI configuration `tcti`
// ("device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321", as tpm2-tss's
// TCTI loader takes it). For each Gather(), on a new connection:
//   1. reads the EK certificate from NV (0x01c00002, RSA 2048; else
//      0x01c0000a, ECC P-256) and creates the EK of that type from the TCG
//      EK Credential Profile's default template in the endorsement
//      hierarchy (empty endorsement authorization);
//   2. creates and loads a restricted ECDSA P-256 / SHA-256 signing key (the
//      AK) under the EK, authorised by PolicySecret(TPM_RH_ENDORSEMENT);
//   3. sends the challenge request with the EK certificate (PEM) and the
//      EK's and AK's TPM2B_PUBLIC (base64);
//   4. activates the CAS's credential (TPM2_ActivateCredential with the AK
//      and the EK), quotes the SHA-256 bank's PCRs 0 to 23 with B as
//      qualifying data, and reads those PCRs (8 per TPM2_PCR_Read); when
//      the PCR values read do not give the quote's PCR digest (a PCR was
//      extended in between) it quotes and reads again, up to 3 times;
//   5. flushes the EK, the AK and the sessions; the activated secret is
//      wiped after it is put into E.
std::unique_ptr<NodeEvidenceSource> NewTpmNodeEvidence(std::string tcti);

// The source for `--evidence TYPE`: null for "token" (the join token
// alone), else one of the above with the given TCTI or configfs-tsm
// directory. kInvalidArgument for another type.
StatusOr<std::unique_ptr<NodeEvidenceSource>> NewNodeEvidenceSource(const std::string& type,
                                                                    const std::string& tpm_tcti,
                                                                    const std::string& tsm_dir);

}  // namespace cloister::las
