// Node join and renewal with hardware evidence (docs/protocol.md section
// 4.1): challenges, the verification of the evidence that answers one, and
// the verdict as the node record keeps it. Joining and renewing themselves
// are in nodes.cc; judging a node's verdict at a start is in attest.cc.
#include "cas/node_evidence.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <nlohmann/json.hpp>

#include "attest/dcap.h"
#include "attest/snp.h"
#include "base/clock.h"
#include "cas/service.h"
#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

using nlohmann::json;

constexpr char kBindingLabel[] = "cloister node evidence v1";
// Largest quote, report, certificate table or TPM structure accepted. Real
// TDX quotes are about 5 KiB plus padding; an SNP certificate table a few.
constexpr size_t kMaxBlob = 64 * 1024;
constexpr uint32_t kTpmPcrCount = 24;  // PCRs 0 to 23 of the SHA-256 bank

std::optional<std::string> Str(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

StatusOr<Bytes> Base64Field(const json& j, const char* name, bool required = true) {
  auto text = Str(j, name);
  if (!text) {
    if (!required && !j.contains(name)) return Bytes{};
    return InvalidArgument(std::string("node evidence: \"") + name + "\" must be a base64 string");
  }
  auto raw = Base64Decode(*text);
  if (!raw || raw->size() > kMaxBlob) {
    return InvalidArgument(std::string("node evidence: \"") + name + "\" is not base64 of at most 64 KiB");
  }
  if (required && raw->empty()) return InvalidArgument(std::string("node evidence: \"") + name + "\" is empty");
  return std::move(*raw);
}

StatusOr<std::string> TypeField(const json& j) {
  auto type = Str(j, "type");
  if (!type) return InvalidArgument("node evidence: \"type\" must be a string: tpm, tdx or snp");
  if (!IsNodeEvidenceType(*type)) {
    return InvalidArgument("node evidence: unknown type \"" + type->substr(0, 32) + "\" (tpm, tdx or snp)");
  }
  return *type;
}

// A verifier's or checker's refusal as the node is told it: 403 with the
// message, which names what failed. Errors of the CAS itself (a store, a
// PCCS that cannot be reached) keep their code.
Status Refused(const Status& s) {
  switch (s.code()) {
    case StatusCode::kIntegrity:
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied: return PermissionDenied(s.message());
    default: return s;
  }
}

// The same, saying which input of a tpm challenge it was about:
// "tpm: ak_public: ..." from "tpm: ...".
Status RefusedTpm(const Status& s, const std::string& what) {
  std::string m = s.message();
  if (m.rfind("tpm: ", 0) == 0) m = m.substr(5);
  return PermissionDenied("tpm: " + what + ": " + m);
}

}  // namespace

// ---- parsing ----

StatusOr<NodeChallengeRequest> ParseNodeChallengeRequest(const json& body) {
  if (!body.is_object()) return InvalidArgument("a node challenge request must be a JSON object");
  NodeChallengeRequest r;
  ASSIGN_OR_RETURN(r.type, TypeField(body));
  if (r.type != "tpm") return r;
  auto pem = Str(body, "ek_certificate");
  if (!pem || pem->empty() || pem->size() > kMaxBlob) {
    return InvalidArgument("node evidence: \"ek_certificate\" must be the EK certificate in PEM (at most 64 KiB)");
  }
  r.ek_certificate_pem = std::move(*pem);
  ASSIGN_OR_RETURN(r.ek_public, Base64Field(body, "ek_public"));
  ASSIGN_OR_RETURN(r.ak_public, Base64Field(body, "ak_public"));
  return r;
}

StatusOr<NodeEvidence> ParseNodeEvidence(const json& e) {
  if (!e.is_object()) return InvalidArgument("node evidence must be a JSON object");
  NodeEvidence out;
  ASSIGN_OR_RETURN(out.type, TypeField(e));
  auto challenge = Str(e, "challenge");
  auto raw = challenge ? HexDecode(*challenge) : std::nullopt;
  if (!raw || raw->size() != out.challenge.size()) {
    return InvalidArgument("node evidence: \"challenge\" must be the 64 hex digits the CAS gave");
  }
  std::copy(raw->begin(), raw->end(), out.challenge.begin());
  if (out.type == "tdx") {
    ASSIGN_OR_RETURN(out.quote, Base64Field(e, "quote"));
  } else if (out.type == "snp") {
    ASSIGN_OR_RETURN(out.quote, Base64Field(e, "report"));
    ASSIGN_OR_RETURN(out.auxblob, Base64Field(e, "auxblob", /*required=*/false));
  } else {
    ASSIGN_OR_RETURN(Bytes secret, Base64Field(e, "secret"));
    out.secret = SecretBytes(secret.data(), secret.size());
    SecureZero(secret.data(), secret.size());
    ASSIGN_OR_RETURN(out.quote, Base64Field(e, "quote"));
    ASSIGN_OR_RETURN(out.signature, Base64Field(e, "signature"));
    auto pcrs = e.find("pcrs");
    if (pcrs == e.end() || !pcrs->is_object()) {
      return InvalidArgument("node evidence: \"pcrs\" must be an object of PCR index to 64 hex digits");
    }
    for (const auto& [key, value] : pcrs->items()) {
      bool decimal = !key.empty() && key.size() <= 2 && std::all_of(key.begin(), key.end(), ::isdigit) &&
                     (key.size() == 1 || key[0] != '0');
      uint32_t index = decimal ? static_cast<uint32_t>(std::stoul(key)) : kTpmPcrCount;
      if (index >= kTpmPcrCount) {
        return InvalidArgument("node evidence: PCR \"" + key.substr(0, 8) + "\" is not an index 0 to 23");
      }
      auto digest = value.is_string() ? HexDecode(value.get<std::string>()) : std::nullopt;
      if (!digest || digest->size() != 32) {
        return InvalidArgument("node evidence: PCR " + key + " must be 64 hex digits (the SHA-256 bank)");
      }
      out.pcrs[index] = std::move(*digest);
    }
  }
  return out;
}

// ---- the open challenges ----

Status ChallengeStore::Add(OpenChallenge c, int64_t now_unix) {
  std::lock_guard<std::mutex> l(mu_);
  Expire(now_unix);
  if (per_node_[c.node_id] >= kMaxChallengesPerNode) {
    return ResourceExhausted("node " + c.node_id.substr(0, 16) + " already has " +
                             std::to_string(kMaxChallengesPerNode) +
                             " open evidence challenges; use one or wait until one expires (" +
                             std::to_string(kChallengeSeconds) + " s)");
  }
  if (open_.size() >= kMaxChallenges) {
    if (per_node_[c.node_id] == 0) per_node_.erase(c.node_id);
    return Unavailable("the CAS has " + std::to_string(kMaxChallenges) +
                       " open node evidence challenges, its limit; try again in a minute");
  }
  if (open_.count(c.challenge) != 0) return InternalError("a node evidence challenge was drawn twice");
  ++per_node_[c.node_id];
  by_expiry_.emplace(c.expires_unix, c.challenge);
  std::array<uint8_t, 32> key = c.challenge;
  open_.emplace(key, std::move(c));
  return Status::Ok();
}

std::optional<OpenChallenge> ChallengeStore::Take(const std::string& node_id, std::span<const uint8_t> challenge,
                                                  int64_t now_unix) {
  if (challenge.size() != 32) return std::nullopt;
  std::array<uint8_t, 32> key;
  std::copy(challenge.begin(), challenge.end(), key.begin());
  std::lock_guard<std::mutex> l(mu_);
  Expire(now_unix);
  auto it = open_.find(key);
  if (it == open_.end() || it->second.node_id != node_id) return std::nullopt;
  return Drop(it);
}

size_t ChallengeStore::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return open_.size();
}

OpenChallenge ChallengeStore::Drop(std::map<std::array<uint8_t, 32>, OpenChallenge>::iterator it) {
  auto range = by_expiry_.equal_range(it->second.expires_unix);
  for (auto e = range.first; e != range.second; ++e) {
    if (e->second == it->first) {
      by_expiry_.erase(e);
      break;
    }
  }
  auto n = per_node_.find(it->second.node_id);
  if (n != per_node_.end() && --n->second == 0) per_node_.erase(n);
  OpenChallenge c = std::move(it->second);
  open_.erase(it);
  return c;
}

void ChallengeStore::Expire(int64_t now_unix) {
  // A challenge is good up to and including its `expires` second.
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_unix) {
    auto it = open_.find(by_expiry_.begin()->second);
    if (it == open_.end()) {
      by_expiry_.erase(by_expiry_.begin());  // cannot happen: Drop removes both
    } else {
      Drop(it);  // removes the by_expiry_ entry too
    }
  }
}

// ---- binding, verdicts, requirements ----

StatusOr<std::array<uint8_t, 32>> NodeEvidenceBinding(std::span<const uint8_t> challenge,
                                                      const std::string& node_id_hex) {
  auto id = HexDecode(node_id_hex);
  if (!id || id->size() != 32) return InvalidArgument("a node id is 64 hex digits");
  if (challenge.size() != 32) return InvalidArgument("a node evidence challenge is 32 bytes");
  crypto::Sha256Hasher h;
  h.Update(std::string_view(kBindingLabel));
  h.Update(challenge);
  h.Update(*id);
  return h.Finish();
}

json VerdictJson(const attest::HardwareVerdict& v, int64_t time_unix) {
  json claims = json::object();
  for (const attest::Claim& c : v.claims) claims[c.name] = c.value;
  return {{"type", v.type},
          {"time", Rfc3339(time_unix)},
          {"checks", v.checks},
          {"claims", claims},
          {"debug", v.debug},
          {"tcb_status", std::string(attest::TcbStatusName(v.tcb_status))},
          {"advisories", v.advisories},
          {"revocation_checked", v.revocation_checked},
          {"collateral_expires", v.collateral_expires_unix},
          {"warnings", v.warnings}};
}

StatusOr<attest::HardwareVerdict> VerdictFromJson(const json& j) {
  const Status bad = InternalError("a stored node verdict is malformed");
  if (!j.is_object()) return bad;
  attest::HardwareVerdict v;
  auto strings = [&j](const char* name, std::vector<std::string>& out) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_array()) return false;
    for (const json& s : *it) {
      if (!s.is_string()) return false;
      out.push_back(s.get<std::string>());
    }
    return true;
  };
  auto type = j.find("type"), claims = j.find("claims"), status = j.find("tcb_status");
  if (type == j.end() || !type->is_string() || !IsNodeEvidenceType(type->get<std::string>())) return bad;
  v.type = type->get<std::string>();
  if (!strings("checks", v.checks) || !strings("advisories", v.advisories) || !strings("warnings", v.warnings)) {
    return bad;
  }
  if (claims == j.end() || !claims->is_object()) return bad;
  for (const auto& [name, value] : claims->items()) {
    if (!value.is_string()) return bad;
    v.claims.push_back(attest::Claim{name, value.get<std::string>()});
  }
  if (status == j.end() || !status->is_string()) return bad;
  bool known = false;
  for (int s = 0; s <= static_cast<int>(attest::TcbStatus::kNotEvaluated); ++s) {
    if (attest::TcbStatusName(static_cast<attest::TcbStatus>(s)) == status->get<std::string>()) {
      v.tcb_status = static_cast<attest::TcbStatus>(s);
      known = true;
    }
  }
  if (!known) return bad;
  v.debug = j.value("debug", false);
  v.revocation_checked = j.value("revocation_checked", false);
  v.collateral_expires_unix = j.value("collateral_expires", int64_t{0});
  return v;
}

attest::HardwareRequirements RequirementsOf(const policy::AttestationPolicy& a) {
  attest::HardwareRequirements r;
  r.tolerate = a.tolerate;
  r.ignore_advisories = a.ignore_advisories;
  for (const auto& [type, e] : a.expect) r.expect[type] = attest::ExpectedClaims{e.one_of, e.at_least};
  return r;
}

// ---- the service's part ----

int64_t CasService::EvidenceNow() const { return evidence_clock_ ? evidence_clock_() : UnixNow(); }

std::shared_ptr<const attest::HardwareRequirements> CasService::Requirements(const std::string& hash,
                                                                             const policy::Policy& policy) {
  std::lock_guard<std::mutex> l(requirements_mu_);
  auto it = requirements_cache_.find(hash);
  if (it != requirements_cache_.end()) return it->second;
  // Bounded like the policy cache: old versions are not asked for again.
  if (requirements_cache_.size() >= 4096) requirements_cache_.clear();
  auto r = std::make_shared<const attest::HardwareRequirements>(RequirementsOf(policy.attestation));
  requirements_cache_.emplace(hash, r);
  return r;
}

StatusOr<NodeChallenge> CasService::CreateNodeChallenge(const std::string& node_id,
                                                        const NodeChallengeRequest& request) {
  RETURN_IF_ERROR(RequireUnsealed());
  if (!IsNodeEvidenceType(request.type)) return InvalidArgument("node evidence is of type tpm, tdx or snp");
  const int64_t now = EvidenceNow();
  OpenChallenge open;
  open.node_id = node_id;
  std::transform(open.node_id.begin(), open.node_id.end(), open.node_id.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  open.type = request.type;
  open.expires_unix = now + kChallengeSeconds;
  RETURN_IF_ERROR(crypto::RandomBytes(open.challenge));
  NodeChallenge out;
  if (request.type == "tpm") {
    if (tpm_ek_cas_.empty()) {
      return PermissionDenied("tpm: this CAS trusts no TPM EK CA (its operator sets tpm_ek_cas), so it accepts no "
                              "tpm evidence");
    }
    auto certs = crypto::Certificate::ParseBundle(AsBytes(request.ek_certificate_pem));
    if (!certs.ok()) return RefusedTpm(certs.status(), "ek_certificate");
    std::vector<std::shared_ptr<const crypto::Certificate>> intermediates(certs->begin() + 1, certs->end());
    const crypto::Certificate& ek_cert = *certs->front();
    auto certified = attest::VerifyEkCertificate(ek_cert, intermediates, tpm_ek_cas_, now);
    if (!certified.ok()) return Refused(certified.status());
    auto ek = attest::ParseTpmPublic(request.ek_public);
    if (!ek.ok()) return RefusedTpm(ek.status(), "ek_public");
    if (Status s = attest::CheckEkMatchesCertificate(*ek, **certified); !s.ok()) return Refused(s);
    auto ak = attest::ParseTpmPublic(request.ak_public);
    if (!ak.ok()) return RefusedTpm(ak.status(), "ak_public");
    if (Status s = attest::CheckAkAttributes(*ak); !s.ok()) return RefusedTpm(s, "ak_public");
    ASSIGN_OR_RETURN(open.secret, crypto::RandomSecret(32));
    auto credential = attest::MakeCredential(*ek, ak->name, open.secret);
    if (!credential.ok()) return RefusedTpm(credential.status(), "ek_public");
    out.credential_blob = std::move(credential->credential_blob);
    out.encrypted_secret = std::move(credential->encrypted_secret);
    open.checks = {"EK certificate " + ek_cert.name() + " chains to a TPM EK CA this CAS trusts",
                   "EK public area holds the EK certificate's key",
                   "AK is a restricted signing key created in the TPM (fixedTPM, fixedParent, sensitiveDataOrigin)"};
    open.claims = {{"ek", HexEncode(ek_cert.SpkiSha256())}, {"ek_issuer", ek_cert.issuer_cn()}};
    open.ak = std::make_shared<const attest::TpmPublic>(std::move(*ak));
  }
  out.challenge = open.challenge;
  out.expires_unix = open.expires_unix;
  RETURN_IF_ERROR(challenges_.Add(std::move(open), now));
  return out;
}

StatusOr<attest::HardwareVerdict> CasService::VerifyNodeEvidence(const std::string& node_id_in,
                                                                 const NodeEvidence& e) {
  std::string node_id = node_id_in;
  std::transform(node_id.begin(), node_id.end(), node_id.begin(), [](unsigned char c) { return std::tolower(c); });
  const int64_t now = EvidenceNow();
  // Taken whatever follows: a challenge is good for one attempt.
  std::optional<OpenChallenge> open = challenges_.Take(node_id, e.challenge, now);
  if (!open) return PermissionDenied("the node evidence challenge is unknown or expired");
  if (open->type != e.type) {
    return PermissionDenied("the node evidence challenge was made for " + open->type + " evidence, not " + e.type);
  }
  ASSIGN_OR_RETURN(auto binding, NodeEvidenceBinding(e.challenge, node_id));

  if (e.type == "tpm") {
    if (!open->ak) return InternalError("a tpm challenge without its AK");
    // First what only the TPM that holds the certified EK could know.
    if (!ConstantTimeEquals(e.secret.UnsafeBytes(), open->secret.UnsafeBytes())) {
      return PermissionDenied("tpm: the activated credential is not the CAS's secret (the AK is not in the TPM of "
                              "the certified EK)");
    }
    for (uint32_t i = 0; i < kTpmPcrCount; ++i) {
      if (e.pcrs.count(i) == 0) {
        return PermissionDenied("tpm: the evidence lacks PCR " + std::to_string(i) +
                                " (it must carry PCRs 0 to 23 of the SHA-256 bank)");
      }
    }
    attest::TpmQuoteInput in;
    in.ak_key = open->ak->key.get();
    in.attest = e.quote;
    in.signature = e.signature;
    for (const auto& [index, value] : e.pcrs) in.pcrs.sha256[index] = value;
    in.nonce.assign(binding.begin(), binding.end());
    auto verdict = attest::VerifyTpmQuote(in);
    if (!verdict.ok()) return Refused(verdict.status());
    verdict->checks.insert(verdict->checks.begin(), open->checks.begin(), open->checks.end());
    verdict->checks.insert(verdict->checks.begin() + static_cast<std::ptrdiff_t>(open->checks.size()),
                           "credential activated: the AK is in the TPM of the certified EK");
    verdict->checks.push_back("qualifying data binds the challenge and the node key");
    verdict->claims.insert(verdict->claims.end(), open->claims.begin(), open->claims.end());
    return verdict;
  }

  StatusOr<attest::HardwareVerdict> verdict = InternalError("unreachable");
  if (e.type == "tdx") {
    auto collateral = DcapCollateralForQuote(e.quote);
    if (!collateral.ok() && collateral.status().code() != StatusCode::kNotFound) return Refused(collateral.status());
    // Without collateral the quote is still checked up to Intel's root; its
    // TCB is NotEvaluated, which a session's judgement refuses for tdx.
    verdict = attest::VerifyDcapQuote(e.quote, collateral.ok() ? &*collateral : nullptr, now);
  } else {
    auto collateral = SnpCollateralForReport(e.quote, e.auxblob);
    if (!collateral.ok()) return Refused(collateral.status());
    verdict = attest::VerifySnpReport(e.quote, *collateral, now);
  }
  if (!verdict.ok()) return Refused(verdict.status());
  if (verdict->type != e.type) {
    return PermissionDenied(e.type + ": the evidence is " + verdict->type + " evidence, not " + e.type);
  }
  Bytes expected(binding.begin(), binding.end());
  expected.resize(64, 0);
  const std::string* report_data = verdict->Find("report_data");
  if (report_data == nullptr || *report_data != HexEncode(expected)) {
    return PermissionDenied(e.type +
                            ": the report data does not bind this challenge and node key (it must be "
                            "SHA-256(\"cloister node evidence v1\" || challenge || node id) followed by 32 zero bytes)");
  }
  verdict->checks.push_back("report data binds the challenge and the node key");
  return verdict;
}

}  // namespace cloister::cas
