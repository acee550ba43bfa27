// Nodes: the node CA, join tokens, joining, renewal, listing and
// revocation (docs/protocol.md section 4; the evidence of section 4.1 is
// verified in node_evidence.cc).
#include <algorithm>
#include <cctype>
#include <chrono>

#include "base/bytes.h"
#include "base/clock.h"
#include "cas/node_evidence.h"
#include "cas/service.h"
#include "cas/service_internal.h"
#include "crypto/certificate.h"
#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

using nlohmann::json;
using namespace internal;  // NOLINT

constexpr char kTokenPrefix[] = "cloister-join-v1:";
constexpr int64_t kMaxTokenTtl = 7 * 86400;

std::string TokenHash(std::span<const uint8_t> token) { return HexEncode(crypto::Sha256(token)); }

bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool SameIdentity(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

void CasService::SetAdmins(std::vector<std::string> admins) {
  for (std::string& a : admins) {
    std::transform(a.begin(), a.end(), a.begin(), [](unsigned char c) { return std::tolower(c); });
  }
  admins_ = std::move(admins);
}

Status CasService::RequireAdmin(const std::string& caller) const {
  for (const std::string& a : admins_) {
    if (SameIdentity(a, caller)) return Status::Ok();
  }
  return PermissionDenied("identity " + caller +
                          " is not a CAS administrator (the CAS's `admins` setting or --admin lists them)");
}

// Called at unseal, with seal_mu_ held and store_ set.
Status CasService::LoadNodeState() {
  Store& store = *store_;
  ASSIGN_OR_RETURN(auto ca, store.Get(kNodeCa, "ca"));
  std::unique_lock<std::shared_mutex> l(nodes_mu_);
  if (!ca) {
    ASSIGN_OR_RETURN(crypto::NewIdentity made, crypto::CreateCertificateAuthority("cloister node CA", UnixNow(), 3650));
    auto key = made.private_key_pem.UnsafeBytes();
    json rec = {{"certificate", made.certificate_pem}, {"key", std::string(key.begin(), key.end())}};
    std::string text = rec.dump();
    Bytes value = ToBytes(text);
    SecureZero(text.data(), text.size());
    rec["key"] = "";
    auto applied = store.Apply({Store::Write{kNodeCa, "ca", value, uint64_t{0}}});
    SecureZero(value.data(), value.size());
    RETURN_IF_ERROR(applied.status());
    node_ca_cert_ = made.certificate_pem;
    node_ca_key_ = std::move(made.private_key_pem);
  } else {
    auto rec = ParseRecord(*ca, "node CA");
    SecureZero(ca->data(), ca->size());
    if (!rec.ok()) return rec.status();
    node_ca_cert_ = rec->value("certificate", "");
    std::string key = rec->value("key", "");
    node_ca_key_ = SecretBytes(reinterpret_cast<const uint8_t*>(key.data()), key.size());
    SecureZero(key.data(), key.size());
    (*rec)["key"] = "";
  }
  ASSIGN_OR_RETURN(auto nodes, store.Scan(kNodes));
  revoked_.clear();
  node_names_.clear();
  node_verdicts_.clear();
  for (auto& [id, value] : nodes) {
    ASSIGN_OR_RETURN(json n, ParseRecord(value, "node"));
    node_names_[id] = n.value("name", "");
    if (n.value("revoked", false)) revoked_.insert(id);
    if (IsNodeEvidenceType(n.value("how", ""))) {
      auto verdict = VerdictFromJson(n.value("evidence", json()));
      if (!verdict.ok()) return InternalError("node " + id + ": " + verdict.status().message());
      node_verdicts_[id] = std::make_shared<const attest::HardwareVerdict>(std::move(*verdict));
    }
  }
  return Status::Ok();
}

int64_t CasService::NodeCount() const {
  std::shared_lock<std::shared_mutex> l(nodes_mu_);
  return static_cast<int64_t>(node_names_.size());
}

StatusOr<JoinToken> CasService::CreateJoinToken(const std::string& caller, int64_t ttl_seconds) {
  RETURN_IF_ERROR(RequireUnsealed());
  RETURN_IF_ERROR(RequireAdmin(caller));
  if (ttl_seconds < 60 || ttl_seconds > kMaxTokenTtl) {
    return InvalidArgument("a join token's lifetime must be 60 seconds to 7 days");
  }
  uint8_t raw[32];
  RETURN_IF_ERROR(crypto::RandomBytes(raw));
  std::string text = kTokenPrefix + HexEncode(raw);
  SecureZero(raw, sizeof(raw));
  JoinToken t;
  t.token = SecretBytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  t.expires_unix = UnixNow() + ttl_seconds;
  json rec = {{"expires", t.expires_unix}, {"created", Now()}, {"created_by", caller}};
  auto applied = store_->Apply({Store::Write{kJoinTokens, TokenHash(t.token.UnsafeBytes()), ToBytes(rec.dump()), uint64_t{0}}});
  SecureZero(text.data(), text.size());
  RETURN_IF_ERROR(applied.status());
  return t;
}

StatusOr<NodeCertificate> CasService::Certify(const std::string& node_id, const std::string& node_certificate_pem,
                                              const std::string& name) {
  int64_t now = UnixNow();
  NodeCertificate c;
  c.node_id = node_id;
  c.expires_unix = now + node_cert_seconds_;
  std::shared_lock<std::shared_mutex> l(nodes_mu_);
  ASSIGN_OR_RETURN(c.certificate_pem, crypto::IssueCertificate(node_ca_key_, node_ca_cert_, node_certificate_pem,
                                                               "cloister node " + name, now - 300, c.expires_unix));
  c.ca_certificate_pem = node_ca_cert_;
  return c;
}

StatusOr<NodeCertificate> CasService::JoinNode(const std::string& node_id, const std::string& node_certificate_pem,
                                               const SecretBytes& token, const std::string& name,
                                               const NodeEvidence* evidence) {
  RETURN_IF_ERROR(RequireUnsealed());
  if (!ValidNodeName(name)) return InvalidArgument("a node name is 1 to 64 of A-Z a-z 0-9 . _ -");
  // One answer for unknown, used and expired tokens: the caller learns
  // nothing about which tokens exist.
  const Status refused = Unauthenticated("the join token is not valid (unknown, already used or expired)");
  std::string hash = TokenHash(token.UnsafeBytes());
  ASSIGN_OR_RETURN(auto t, store_->GetVersioned(kJoinTokens, hash));
  if (!t) return refused;
  ASSIGN_OR_RETURN(json trec, ParseRecord(t->value, "join token"));
  if (trec.value("expires", int64_t{0}) < UnixNow()) {
    (void)store_->Apply({Store::Write{kJoinTokens, hash, std::nullopt, t->revision}});
    return refused;
  }
  ASSIGN_OR_RETURN(auto existing, store_->GetVersioned(kNodes, node_id));
  json node = json::object();
  if (existing) {
    ASSIGN_OR_RETURN(node, ParseRecord(existing->value, "node"));
    if (node.value("revoked", false)) return PermissionDenied("node " + node_id + " is revoked");
  }
  // The token stays unused until everything below succeeded.
  std::shared_ptr<const attest::HardwareVerdict> verdict;
  int64_t verified_at = 0;
  if (evidence != nullptr) {
    verified_at = EvidenceNow();
    ASSIGN_OR_RETURN(attest::HardwareVerdict v, VerifyNodeEvidence(node_id, *evidence));
    verdict = std::make_shared<const attest::HardwareVerdict>(std::move(v));
  }
  ASSIGN_OR_RETURN(NodeCertificate c, Certify(node_id, node_certificate_pem, name));
  std::string now = Now();
  if (!existing) node["joined"] = now;
  node["name"] = name;
  node["how"] = verdict ? verdict->type : "join-token";
  if (verdict) {
    node["evidence"] = VerdictJson(*verdict, verified_at);
  } else {
    node.erase("evidence");
  }
  node["renewed"] = now;
  node["expires"] = c.expires_unix;
  node["revoked"] = false;
  // Consuming the token and recording the node are one batch, conditional
  // on the token's revision: of two joins racing with one token, one wins.
  auto applied = store_->Apply({Store::Write{kJoinTokens, hash, std::nullopt, t->revision},
                                Store::Write{kNodes, node_id, ToBytes(node.dump()),
                                             existing ? std::optional<uint64_t>(existing->revision) : uint64_t{0}}});
  if (!applied.ok()) {
    if (applied.status().code() == StatusCode::kFailedPrecondition) return refused;
    return applied.status();
  }
  std::unique_lock<std::shared_mutex> l(nodes_mu_);
  node_names_[node_id] = name;
  if (verdict) {
    node_verdicts_[node_id] = verdict;
  } else {
    node_verdicts_.erase(node_id);
  }
  return c;
}

StatusOr<NodeCertificate> CasService::RenewNode(const std::string& node_id, const std::string& node_certificate_pem,
                                                const NodeEvidence* evidence) {
  RETURN_IF_ERROR(RequireUnsealed());
  ASSIGN_OR_RETURN(auto existing, store_->GetVersioned(kNodes, node_id));
  if (!existing) return PermissionDenied("node " + node_id + " has not joined this CAS");
  ASSIGN_OR_RETURN(json node, ParseRecord(existing->value, "node"));
  if (node.value("revoked", false)) return PermissionDenied("node " + node_id + " is revoked");
  // A node keeps the kind of proof it joined with: hardware evidence at
  // every renewal, or the token alone.
  const std::string how = node.value("how", "join-token");
  std::shared_ptr<const attest::HardwareVerdict> verdict;
  int64_t verified_at = 0;
  if (IsNodeEvidenceType(how)) {
    if (evidence == nullptr || evidence->type != how) {
      return PermissionDenied("node " + node_id + " joined with " + how + " evidence and renews only with fresh " +
                              how + " evidence" + (evidence == nullptr ? "" : ", not " + evidence->type));
    }
    verified_at = EvidenceNow();
    ASSIGN_OR_RETURN(attest::HardwareVerdict v, VerifyNodeEvidence(node_id, *evidence));
    verdict = std::make_shared<const attest::HardwareVerdict>(std::move(v));
  } else if (evidence != nullptr) {
    return PermissionDenied("node " + node_id + " joined with a join token alone and renews without evidence; to "
                            "prove itself with " + evidence->type + " evidence it joins again with a new token");
  }
  ASSIGN_OR_RETURN(NodeCertificate c, Certify(node_id, node_certificate_pem, node.value("name", "")));
  node["renewed"] = Now();
  node["expires"] = c.expires_unix;
  if (verdict) node["evidence"] = VerdictJson(*verdict, verified_at);
  auto applied = store_->Apply({Store::Write{kNodes, node_id, ToBytes(node.dump()), existing->revision}});
  if (!applied.ok()) {
    if (applied.status().code() == StatusCode::kFailedPrecondition) {
      return StaleError("node " + node_id + " changed meanwhile (revoked?); try again");
    }
    return applied.status();
  }
  if (verdict) {
    std::unique_lock<std::shared_mutex> l(nodes_mu_);
    node_verdicts_[node_id] = verdict;
  }
  return c;
}

StatusOr<std::vector<NodeInfo>> CasService::ListNodes(const std::string& caller) {
  RETURN_IF_ERROR(RequireUnsealed());
  RETURN_IF_ERROR(RequireAdmin(caller));
  ASSIGN_OR_RETURN(auto rows, store_->Scan(kNodes));
  std::vector<NodeInfo> out;
  for (auto& [id, value] : rows) {
    ASSIGN_OR_RETURN(json n, ParseRecord(value, "node"));
    NodeInfo info{id, n.value("name", ""), n.value("joined", ""), n.value("renewed", ""),
                  n.value("expires", int64_t{0}), n.value("how", ""), n.value("revoked", false),
                  n.value("revoked_at", "")};
    if (auto e = n.find("evidence"); e != n.end() && e->is_object()) {
      info.tcb_status = e->value("tcb_status", "");
      info.verdict_json = e->dump();
    }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const NodeInfo& a, const NodeInfo& b) { return a.joined < b.joined; });
  return out;
}

Status CasService::RevokeNode(const std::string& caller, const std::string& node_id_in) {
  RETURN_IF_ERROR(RequireUnsealed());
  RETURN_IF_ERROR(RequireAdmin(caller));
  std::string node_id = node_id_in;
  std::transform(node_id.begin(), node_id.end(), node_id.begin(), [](unsigned char c) { return std::tolower(c); });
  for (int attempt = 0; attempt < 5; ++attempt) {
    ASSIGN_OR_RETURN(auto existing, store_->GetVersioned(kNodes, node_id));
    if (!existing) return NotFound("no node " + node_id);
    ASSIGN_OR_RETURN(json node, ParseRecord(existing->value, "node"));
    if (node.value("revoked", false)) return Status::Ok();
    node["revoked"] = true;
    node["revoked_at"] = Now();
    auto applied = store_->Apply({Store::Write{kNodes, node_id, ToBytes(node.dump()), existing->revision}});
    if (applied.ok()) {
      std::unique_lock<std::shared_mutex> l(nodes_mu_);
      revoked_.insert(node_id);
      return Status::Ok();
    }
    if (applied.status().code() != StatusCode::kFailedPrecondition) return applied.status();
  }
  return StaleError("node " + node_id + " kept changing; try again");
}

}  // namespace cloister::cas
