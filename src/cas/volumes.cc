// Volume commits (docs/protocol.md section 7): a running program reports
// the new tag of a volume it committed, and the CAS records it as the state
// the next start must find.
#include <algorithm>
#include <cstdio>

#include "attest/relay_reply.h"
#include "attest/volume_commit.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "cas/service.h"
#include "cas/service_internal.h"
#include "cas/volume_token.h"

namespace cloister::cas {
namespace {

using nlohmann::json;
using namespace internal;  // NOLINT

// How often a commit is tried again when the session record changed
// between reading and writing it (another commit, an update).
constexpr int kCommitAttempts = 16;

CommitResult Refuse(Status s, const char* reason) {
  CommitResult r;
  r.status = std::move(s);
  r.reason = reason;
  return r;
}

}  // namespace

CommitResult CasService::CommitVolume(std::string_view body, const std::string* relaying_node) {
  CommitResult out;
  auto finish = [this](CommitResult r) {
    CountCommit(r);
    return r;
  };
  if (Status s = RequireUnsealed(); !s.ok()) return finish(Refuse(s, "unavailable"));
  if (relaying_node != nullptr) {
    std::shared_lock<std::shared_mutex> l(nodes_mu_);
    if (node_names_.count(*relaying_node) == 0 || revoked_.count(*relaying_node) > 0) {
      return finish(Refuse(PermissionDenied("only a node that joined this CAS and is not revoked relays commits"),
                           "node-not-allowed"));
    }
  }
  volume_commit::Request req;
  std::string error;
  if (!volume_commit::ParseRequest(body, &req, &error)) {
    return finish(Refuse(InvalidArgument("the commit report is malformed: " + error), "bad-request"));
  }
  // The checks in the order docs/protocol.md gives; the first that fails
  // is the answer.
  auto claims = VerifyVolumeToken(volume_token_key_, req.token);
  if (!claims.ok()) return finish(Refuse(PermissionDenied(claims.status().message()), "token-invalid"));
  relay::Hash key_hash;
  if (!relay::ReportDataOfPoint(req.key, &key_hash)) return finish(Refuse(InternalError("cannot hash a key"), "internal"));
  if (!ConstantTimeEquals(key_hash, claims->key_hash)) {
    return finish(Refuse(PermissionDenied("the report's key is not the one its token was issued to"), "key-not-bound"));
  }
  if (!volume_commit::VerifySignature(req, &error)) return finish(Refuse(PermissionDenied(error), "signature-invalid"));

  const std::string tag = HexEncode(req.tag);
  auto accepted = [&]() -> CommitResult {
    out.volume = req.volume;
    out.seq = req.seq;
    out.tag = tag;
    out.receipt_message = volume_commit::ReceiptMessage(req.token, req.volume, req.seq, req.tag);
    return out;
  };
  const std::string issued = Rfc3339(claims->issued_unix);
  const Status not_mounted =
      NotFound("the session no longer has this service mounting this volume (or does not exist)");
  for (int attempt = 0; attempt < kCommitAttempts; ++attempt) {
    auto current = store_->GetVersioned(kSessions, claims->session);
    if (!current.ok()) return finish(Refuse(current.status(), "internal"));
    if (!*current) return finish(Refuse(not_mounted, "not-mounted"));
    auto parsed = ParseRecord((*current)->value, "session");
    if (!parsed.ok()) return finish(Refuse(parsed.status(), "internal"));
    json& record = *parsed;
    auto p = ParsedPolicy(record.value("hash", ""), record.value("document", ""));
    if (!p) return finish(Refuse(InternalError("a stored session no longer parses"), "internal"));
    const policy::Service* svc = nullptr;
    for (const policy::Service& s : p->services) {
      if (s.name == claims->service) svc = &s;
    }
    const bool mounted = svc != nullptr && std::any_of(svc->mounts.begin(), svc->mounts.end(),
                                                       [&](const policy::Mount& m) { return m.volume == req.volume; });
    const policy::Volume* spec = nullptr;
    for (const policy::Volume& v : p->volumes) {
      if (v.name == req.volume) spec = &v;
    }
    json* entry = record.contains("volumes") && record["volumes"].is_object() && record["volumes"].contains(req.volume)
                      ? &record["volumes"][req.volume]
                      : nullptr;
    if (!mounted || spec == nullptr || entry == nullptr || !entry->is_object()) {
      return finish(Refuse(not_mounted, "not-mounted"));
    }
    // A key made after the start (the volume was removed and added again,
    // or the session deleted and created again) is another volume: the
    // program's commits are of the one it was granted. Both times are
    // RFC 3339 UTC of one fixed width, so text order is time order.
    if (issued < entry->value("created", std::string())) {
      return finish(Refuse(FailedPrecondition("the volume's key was replaced after this program started"),
                           "volume-replaced"));
    }
    if (spec->update_policy == policy::UpdatePolicy::kReadOnly) {
      return finish(Refuse(PermissionDenied("the volume is read-only: the CAS accepts no commit of it"), "read-only"));
    }
    auto recorded_seq = entry->find("seq");
    if (recorded_seq != entry->end() && recorded_seq->is_number_unsigned()) {
      const uint64_t last = recorded_seq->get<uint64_t>();
      if (req.seq == last && entry->value("tag", std::string()) == tag) {
        out.repeated = true;
        return finish(accepted());
      }
      if (req.seq <= last) {
        return finish(Refuse(StaleError("the CAS has recorded commit " + std::to_string(last) +
                                        " of this volume; this report is of commit " + std::to_string(req.seq)),
                             "stale"));
      }
    }
    std::string now = Now();
    (*entry)["tag"] = tag;
    (*entry)["seq"] = req.seq;
    (*entry)["committed"] = now;
    auto applied = store_->Apply({Store::Write{kSessions, claims->session, ToBytes(record.dump()),
                                               (*current)->revision}});
    if (applied.ok()) {
      if (log_attestations_) {
        // Like an attestation's line: no session, service or volume name.
        std::fprintf(stderr, "cloister-cas: volume commit accepted seq=%llu tag=%.16s\n",
                     static_cast<unsigned long long>(req.seq), tag.c_str());
      }
      return finish(accepted());
    }
    if (applied.status().code() != StatusCode::kFailedPrecondition) return finish(Refuse(applied.status(), "internal"));
    // The record changed meanwhile: read it again and decide again.
  }
  return finish(Refuse(Unavailable("the session kept changing while the commit was recorded; try again"), "busy"));
}

void CasService::CountCommit(const CommitResult& r) {
  std::lock_guard<std::mutex> l(counts_mu_);
  ++commit_counts_[r.status.ok() ? (r.repeated ? "repeated" : "accepted") : r.reason];
}

std::map<std::string, uint64_t> CasService::CommitCounts() const {
  std::lock_guard<std::mutex> l(counts_mu_);
  return commit_counts_;
}

}  // namespace cloister::cas
