// Attestation at start (docs/protocol.md section 5): the CAS's verdict on
// a starting program, the configuration it hands out, and the record of
// every attempt.
#include <algorithm>
#include <chrono>

#include "attest/hw_policy.h"
#include "attest/verifier.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "crypto/certificate.h"
#include "crypto/crypto.h"
#include "cas/attestation_log.h"
#include "cas/secrets.h"
#include "cas/service.h"
#include "cas/service_internal.h"
#include "cas/volume_token.h"

namespace cloister::cas {
namespace {

using attest::Refusal;
using nlohmann::json;
using namespace internal;  // NOLINT

bool Contains(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// What the runtime is told: enough to act on, nothing about the session it
// could not know already. The record keeps the exact detail.
Status RefusalStatus(Refusal r) {
  switch (r) {
    case Refusal::kBadRequest: return InvalidArgument("the attestation request is malformed");
    case Refusal::kEvidenceInvalid: return PermissionDenied("the evidence is not valid");
    case Refusal::kNodeNotCertified:
      return PermissionDenied("the node's certificate was not issued by this CAS or is not valid now");
    case Refusal::kNodeRevoked: return PermissionDenied("the node that vouched for this program is revoked");
    case Refusal::kEvidenceStale:
      return PermissionDenied("the evidence is too old or dated in the future (compare the clocks of the node and the CAS)");
    case Refusal::kEvidenceNotBound:
      return PermissionDenied("the evidence is not bound to the key of this connection");
    case Refusal::kUnknownConfig: return NotFound("no such session or service");
    case Refusal::kEvidenceTypeNotAllowed: return PermissionDenied("the session does not accept this type of evidence");
    case Refusal::kEvidenceNotAccepted:
      return PermissionDenied("the node's hardware evidence does not meet the session's attestation requirements");
    case Refusal::kMeasurementNotAllowed:
      return PermissionDenied("the program's measurement is not allowed for this service");
  }
  return PermissionDenied("refused");
}

std::string JoinReasons(const std::vector<std::string>& reasons) {
  std::string out;
  for (const std::string& r : reasons) out += (out.empty() ? "" : "; ") + r;
  return out;
}

std::string_view UpdatePolicyName(policy::UpdatePolicy p) {
  return p == policy::UpdatePolicy::kReadOnly ? "read-only" : "rollback-protected";
}

}  // namespace

StatusOr<crypto::CertificateFacts> CasService::VerifyNodeCertificate(const std::string& pem, const std::string& ca_pem,
                                                                    int64_t now_unix) {
  // A node presents the same certificate at every start until it renews:
  // its signature is checked once, its validity every time.
  std::string key = HexEncode(crypto::Sha256(AsBytes(pem)));
  std::optional<crypto::CertificateFacts> facts;
  {
    std::lock_guard<std::mutex> l(cert_cache_mu_);
    auto it = cert_cache_.find(key);
    if (it != cert_cache_.end()) facts = it->second.facts;
  }
  if (!facts) {
    // Validity is checked below against `now`; verify the signature at a
    // time the certificate is valid so that an expired one is cached too.
    ASSIGN_OR_RETURN(crypto::CertificateFacts read, crypto::ReadCertificate(pem));
    ASSIGN_OR_RETURN(facts, crypto::VerifyIssuedBy(pem, ca_pem, read.not_before_unix));
    std::lock_guard<std::mutex> l(cert_cache_mu_);
    if (cert_cache_.size() >= 4096) cert_cache_.clear();
    cert_cache_[key].facts = *facts;
  }
  if (now_unix < facts->not_before_unix) return FailedPrecondition("the certificate is not yet valid");
  if (now_unix > facts->not_after_unix) return FailedPrecondition("the certificate expired");
  return *facts;
}

StatusOr<std::shared_ptr<const crypto::P256Verifier>> CasService::NodeKey(const std::string& pem) {
  std::string key = HexEncode(crypto::Sha256(AsBytes(pem)));
  {
    std::lock_guard<std::mutex> l(cert_cache_mu_);
    auto it = cert_cache_.find(key);
    if (it != cert_cache_.end() && it->second.key) return it->second.key;
  }
  ASSIGN_OR_RETURN(auto parsed, crypto::P256Verifier::FromCertificate(pem));
  std::lock_guard<std::mutex> l(cert_cache_mu_);
  if (cert_cache_.size() >= 4096) cert_cache_.clear();
  cert_cache_[key].key = parsed;
  return parsed;
}

std::shared_ptr<const policy::Policy> CasService::ParsedPolicy(const std::string& hash, const std::string& document) {
  {
    std::lock_guard<std::mutex> l(policy_cache_mu_);
    auto it = policy_cache_.find(hash);
    if (it != policy_cache_.end()) return it->second;
  }
  policy::ParseResult p = policy::Parse(document);
  if (!p.policy) return nullptr;
  auto parsed = std::make_shared<const policy::Policy>(std::move(*p.policy));
  std::lock_guard<std::mutex> l(policy_cache_mu_);
  // Old versions are never asked for again once replaced; a bounded cache
  // that is simply emptied when full keeps this simple.
  if (policy_cache_.size() >= 4096) policy_cache_.clear();
  policy_cache_.emplace(hash, parsed);
  return parsed;
}

StatusOr<std::shared_ptr<const json>> CasService::SessionRecord(const std::string& name) {
  ASSIGN_OR_RETURN(auto v, store_->GetVersioned(kSessions, name));
  if (!v) return std::shared_ptr<const json>();
  {
    std::lock_guard<std::mutex> l(record_cache_mu_);
    auto it = record_cache_.find(name);
    if (it != record_cache_.end() && it->second.first == v->revision) return it->second.second;
  }
  ASSIGN_OR_RETURN(json parsed, ParseRecord(v->value, "session"));
  auto doc = parsed.find("document");
  if (doc == parsed.end() || !doc->is_string()) return InternalError("stored session " + name + " has no document");
  auto record = std::make_shared<const json>(std::move(parsed));
  std::lock_guard<std::mutex> l(record_cache_mu_);
  if (record_cache_.size() >= kCachedSessions) record_cache_.clear();
  record_cache_.insert_or_assign(name, std::make_pair(v->revision, record));
  return record;
}

void CasService::Record(AttestationRecord r) {
  {
    std::lock_guard<std::mutex> l(counts_mu_);
    ++attest_counts_[{r.evidence.empty() ? "unknown" : r.evidence, r.granted ? "granted" : "refused",
                      r.granted ? "" : r.reason}];
  }
  // Like the request log, the log line names no session, service or
  // detail (tenant data); the record keeps them for those who may read it.
  if (log_attestations_) {
    std::fprintf(stderr, "cloister-cas: attestation %s evidence=%s node=%s%s%s\n", r.granted ? "granted" : "refused",
                 r.evidence.empty() ? "-" : r.evidence.c_str(), r.node_id.empty() ? "-" : r.node_id.substr(0, 16).c_str(),
                 r.granted ? "" : " reason=", r.granted ? "" : r.reason.c_str());
  }
  // Starts that name no existing session are counted, not recorded: a
  // record kept under a name nobody owns yet would be shown to whoever
  // creates that session later.
  if (attestation_log_ && !r.session_hash.empty()) attestation_log_->Append(std::move(r));
}

std::map<std::tuple<std::string, std::string, std::string>, uint64_t> CasService::AttestationCounts() const {
  std::lock_guard<std::mutex> l(counts_mu_);
  return attest_counts_;
}

AttestResult CasService::Attest(const std::string& config_id, std::span<const uint8_t> evidence,
                                const std::array<uint8_t, 32>& client_key_hash) {
  AttestResult out;
  if (Status s = RequireUnsealed(); !s.ok()) {
    out.status = s;
    out.reason = "unavailable";
    return out;
  }
  AttestationRecord rec;
  rec.time = Now();
  size_t slash = config_id.rfind('/');
  if (slash != std::string::npos) {
    rec.session = config_id.substr(0, slash);
    rec.service = config_id.substr(slash + 1);
  }
  // The session is read first so that every refusal, whatever the check
  // that failed, is recorded with the session it named (if it exists).
  Store& store = *store_;
  std::shared_ptr<const json> session;
  if (!rec.session.empty()) {
    auto loaded = SessionRecord(rec.session);
    if (!loaded.ok()) {
      out.status = loaded.status();
      out.reason = "internal";
      return out;
    }
    session = std::move(*loaded);
    if (session) rec.session_hash = session->value("hash", "");
  }
  auto refuse = [&](Refusal r, std::string detail) {
    out.status = RefusalStatus(r);
    out.reason = std::string(attest::RefusalCode(r));
    out.evidence = rec.evidence;
    rec.granted = false;
    rec.reason = out.reason;
    rec.detail = std::move(detail);
    // Anyone who reaches the endpoint can make these two; recording them
    // would let a stranger push a session's real records out of its log.
    // They are logged and counted only.
    bool anonymous = r == Refusal::kEvidenceInvalid || r == Refusal::kNodeNotCertified;
    if (anonymous) rec.session_hash.clear();
    Record(std::move(rec));
    return out;
  };
  if (rec.session.empty() || rec.service.empty() || config_id.size() > 256) {
    return refuse(Refusal::kBadRequest, "CLOISTER_CONFIG_ID must be SESSION/SERVICE");
  }

  attest::NodeTrust trust;
  {
    std::shared_lock<std::shared_mutex> l(nodes_mu_);
    trust.ca_certificate_pem = node_ca_cert_;
  }
  trust.verify_certificate = [this, &trust](const std::string& pem, int64_t now_unix) {
    return VerifyNodeCertificate(pem, trust.ca_certificate_pem, now_unix);
  };
  trust.node_key = [this](const std::string& pem) { return NodeKey(pem); };
  trust.is_revoked = [this](const std::string& id) {
    std::shared_lock<std::shared_mutex> l(nodes_mu_);
    return revoked_.count(id) > 0;
  };
  attest::EvidenceCheck check = attest::CheckStartEvidence(evidence, trust, UnixNowNs(), client_key_hash);
  // The node's verdict, for a node that joined with hardware evidence
  // (docs/protocol.md section 4.1): a start is of the node's evidence type,
  // since what the LAS signs is only as good as what the node proved.
  std::shared_ptr<const attest::HardwareVerdict> verdict;
  if (check.claims) {
    const attest::SimClaims& c = *check.claims;
    rec.node_id = c.node_id;
    rec.executable = HexEncode(c.executable);
    rec.runtime = HexEncode(c.runtime);
    rec.pid = c.pid;
    std::shared_lock<std::shared_mutex> l(nodes_mu_);
    auto it = node_names_.find(c.node_id);
    if (it != node_names_.end()) rec.node_name = it->second;
    auto v = node_verdicts_.find(c.node_id);
    if (v != node_verdicts_.end()) verdict = v->second;
    rec.evidence = verdict ? verdict->type : std::string(attest::EvidenceTypeName(c.type));
  }
  if (check.refusal) return refuse(*check.refusal, check.detail);
  const attest::SimClaims& claims = *check.claims;

  if (!session) return refuse(Refusal::kUnknownConfig, "no session " + rec.session);
  const json& record = *session;
  auto p = ParsedPolicy(rec.session_hash, record.at("document").get_ref<const std::string&>());
  if (!p) {
    out.status = InternalError("stored session " + rec.session + " no longer parses");
    out.reason = "internal";
    return out;
  }
  const policy::Service* svc = nullptr;
  for (const policy::Service& s : p->services) {
    if (s.name == rec.service) svc = &s;
  }
  if (svc == nullptr) return refuse(Refusal::kUnknownConfig, "session " + rec.session + " has no service " + rec.service);

  if (!Contains(p->attestation.allowed, rec.evidence) ||
      (!verdict && !Contains(p->attestation.tolerate, "simulation"))) {
    return refuse(Refusal::kEvidenceTypeNotAllowed,
                  rec.evidence + " evidence is not in security.attestation.allowed (or simulation is not tolerated)");
  }
  std::string tolerated;
  if (verdict) {
    attest::HardwareDecision d =
        attest::JudgeHardwareVerdict(*verdict, *Requirements(rec.session_hash, *p), EvidenceNow());
    if (!d.accepted) {
      return refuse(Refusal::kEvidenceNotAccepted, "the " + verdict->type + " verdict of node " +
                                                       rec.node_id.substr(0, 16) + " is not accepted: " +
                                                       JoinReasons(d.reasons));
    }
    tolerated = JoinReasons(d.reasons);
  }
  if (!Contains(svc->measurements, rec.executable)) {
    return refuse(Refusal::kMeasurementNotAllowed,
                  "executable " + rec.executable + " is not among the " + std::to_string(svc->measurements.size()) +
                      " measurements of service " + rec.service);
  }
  if (std::all_of(claims.runtime.begin(), claims.runtime.end(), [](uint8_t b) { return b == 0; })) {
    return refuse(Refusal::kMeasurementNotAllowed, "no Cloister runtime is mapped into the process");
  }
  if (!Contains(svc->measurements, rec.runtime)) {
    return refuse(Refusal::kMeasurementNotAllowed,
                  "runtime " + rec.runtime + " is not among the measurements of service " + rec.service);
  }

  // Granted: fill in the configuration.
  GrantedConfig g;
  g.session = rec.session;
  g.session_hash = rec.session_hash;
  g.service = rec.service;
  g.evidence = rec.evidence;
  g.command = svc->command;
  g.pwd = svc->pwd;
  Status resolve_error;
  std::map<std::string, SecretValue> values;
  SecretResolver resolve = [&](const std::string& name) -> const SecretValue* {
    auto it = values.find(name);
    if (it != values.end()) return &it->second;
    const policy::Secret* spec = nullptr;
    for (const policy::Secret& s : p->secrets) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) return nullptr;
    std::string owner = rec.session, secret = name;
    if (spec->kind == policy::SecretKind::kImported) {
      // The exporter may have withdrawn the export since this session was
      // written: check its current version.
      auto e = LoadSession(store, spec->import->session);
      if (!e.ok() || !*e) {
        resolve_error = FailedPrecondition("secret " + name + ": session " + spec->import->session + " is gone");
        return nullptr;
      }
      std::string exporter_hash = (*e)->record.value("hash", "");
      auto ep = ParsedPolicy(exporter_hash, (*e)->record.value("document", ""));
      bool exported = false;
      if (ep && (spec->import->session_hash.empty() || spec->import->session_hash == exporter_hash)) {
        for (const policy::Secret& s : ep->secrets) {
          if (s.name != spec->import->secret) continue;
          for (const policy::Export& x : s.exports) {
            if (x.session == rec.session && (x.session_hash.empty() || x.session_hash == rec.session_hash)) exported = true;
          }
        }
      }
      if (!exported) {
        resolve_error = FailedPrecondition("secret " + name + " is no longer exported to this session by " +
                                           spec->import->session);
        return nullptr;
      }
      owner = spec->import->session;
      secret = spec->import->secret;
    }
    auto v = LoadSecret(store, owner, secret);
    if (!v.ok() || !*v) {
      resolve_error = v.ok() ? FailedPrecondition("secret " + name + " has no value") : v.status();
      return nullptr;
    }
    return &values.emplace(name, std::move(**v)).first->second;
  };
  auto fail_config = [&](const Status& s) {
    out.status = s.code() == StatusCode::kInternal || s.code() == StatusCode::kIoError ? s
                                                                                         : FailedPrecondition(s.message());
    out.reason = "config-unavailable";
    out.evidence = rec.evidence;
    rec.granted = false;
    rec.reason = out.reason;
    rec.detail = s.message();
    Record(std::move(rec));
    return out;
  };
  for (const auto& [k, v] : svc->environment) {
    auto filled = Substitute(v, resolve);
    if (!filled.ok()) return fail_config(resolve_error.ok() ? filled.status() : resolve_error);
    g.environment.emplace_back(k, std::move(*filled));
  }
  for (const policy::InjectedFile& f : svc->files) {
    auto filled = Substitute(f.content, resolve);
    if (!filled.ok()) return fail_config(resolve_error.ok() ? filled.status() : resolve_error);
    g.files.push_back(GrantedConfig::File{f.path, f.mode, std::move(*filled)});
  }
  static const json kNoVolumes = json::object();
  auto volumes_field = record.find("volumes");
  const json& volumes = volumes_field != record.end() ? *volumes_field : kNoVolumes;
  for (const policy::Mount& m : svc->mounts) {
    const policy::Volume* vol = nullptr;
    for (const policy::Volume& v : p->volumes) {
      if (v.name == m.volume) vol = &v;
    }
    if (vol == nullptr) return fail_config(InternalError("mount of an unknown volume " + m.volume));
    auto key = LoadSecret(store, rec.session, VolumeKeyName(m.volume));
    if (!key.ok()) return fail_config(key.status());
    if (!*key) return fail_config(FailedPrecondition("volume " + m.volume + " has no key"));
    std::string tag = volumes.contains(m.volume) ? volumes[m.volume].value("tag", "") : vol->tag;
    g.volumes.push_back(GrantedConfig::Volume{m.volume, m.path, tag, std::string(UpdatePolicyName(vol->update_policy)),
                                              std::move((*key)->bytes)});
  }
  if (!svc->mounts.empty()) {
    // Lets the program report its commits of these volumes later, signed
    // with the key this start bound (docs/protocol.md section 7).
    auto token = IssueVolumeToken(volume_token_key_, VolumeTokenClaims{UnixNow(), rec.session, rec.service,
                                                                       client_key_hash});
    if (!token.ok()) return fail_config(token.status());
    g.volume_token = std::move(*token);
  }
  for (auto& [_, v] : values) v.bytes = SecretBytes();
  rec.granted = true;
  if (!tolerated.empty()) rec.detail = "tolerated: " + tolerated;
  out.evidence = rec.evidence;
  Record(std::move(rec));
  out.config = std::move(g);
  return out;
}

StatusOr<std::vector<AttestationRecord>> CasService::Attestations(const std::string& caller, const std::string& session,
                                                                  size_t limit) {
  RETURN_IF_ERROR(RequireUnsealed());
  ASSIGN_OR_RETURN(auto cur, LoadSession(*store_, session));
  if (!cur) return NotFound("no session " + session);
  if (!Allowed(AccessList(cur->record, "read"), caller, CreatorOf(cur->record))) {
    return PermissionDenied("identity " + caller + " may not read session " + session);
  }
  return attestation_log_->Latest(session, limit);
}

}  // namespace cloister::cas
