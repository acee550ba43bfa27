#include "cas/attestation_log.h"

#include <chrono>
#include <cstdio>

#include "cas/service_internal.h"

namespace cloister::cas {
namespace {

using nlohmann::json;

constexpr char kAttestations[] = "attestations";       // session "\n" chunk number -> [records]
constexpr char kAttestationHeads[] = "attestation_heads";  // session -> {first, last}

std::string ChunkKey(const std::string& session, uint64_t n) {
  char num[24];
  std::snprintf(num, sizeof(num), "%016llu", static_cast<unsigned long long>(n));
  return session + "\n" + num;
}

json ToJson(const AttestationRecord& r) {
  json j = {{"time", r.time}, {"service", r.service}, {"granted", r.granted}, {"evidence", r.evidence},
            {"node_id", r.node_id}, {"node_name", r.node_name}, {"pid", r.pid}};
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (!r.detail.empty()) j["detail"] = r.detail;
  if (!r.executable.empty()) j["executable"] = r.executable;
  if (!r.runtime.empty()) j["runtime"] = r.runtime;
  if (!r.session_hash.empty()) j["session_hash"] = r.session_hash;
  return j;
}

AttestationRecord FromJson(const std::string& session, const json& j) {
  AttestationRecord r;
  r.session = session;
  r.time = j.value("time", "");
  r.service = j.value("service", "");
  r.granted = j.value("granted", false);
  r.reason = j.value("reason", "");
  r.detail = j.value("detail", "");
  r.evidence = j.value("evidence", "");
  r.node_id = j.value("node_id", "");
  r.node_name = j.value("node_name", "");
  r.executable = j.value("executable", "");
  r.runtime = j.value("runtime", "");
  r.pid = j.value("pid", 0u);
  r.session_hash = j.value("session_hash", "");
  return r;
}

}  // namespace

AttestationLog::AttestationLog(std::shared_ptr<Store> store) : store_(std::move(store)) {
  writer_ = std::thread([this] { Run(); });
}

AttestationLog::~AttestationLog() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  writer_.join();
  (void)Flush();
}

void AttestationLog::Append(AttestationRecord r) {
  bool many;
  {
    std::lock_guard<std::mutex> l(mu_);
    pending_.push_back(std::move(r));
    many = pending_.size() >= 256;
  }
  if (many) wake_.notify_all();
}

void AttestationLog::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    wake_.wait_for(l, std::chrono::milliseconds(50), [this] { return stop_ || pending_.size() >= 256; });
    if (pending_.empty()) continue;
    l.unlock();
    if (Status s = Flush(); !s.ok()) {
      std::fprintf(stderr, "cloister-cas: cannot write attestation records: %s\n", s.message().c_str());
    }
    l.lock();
  }
}

StatusOr<AttestationLog::Head*> AttestationLog::HeadOf(const std::string& session) {
  auto it = heads_.find(session);
  if (it != heads_.end()) return &it->second;
  Head h;
  ASSIGN_OR_RETURN(auto stored, store_->Get(kAttestationHeads, session));
  if (stored) {
    ASSIGN_OR_RETURN(json hj, internal::ParseRecord(*stored, "attestation head"));
    h.first = hj.value("first", uint64_t{0});
    h.last = hj.value("last", uint64_t{0});
    ASSIGN_OR_RETURN(auto chunk, store_->Get(kAttestations, ChunkKey(session, h.last)));
    if (chunk) {
      json cj = json::parse(chunk->begin(), chunk->end(), nullptr, false);
      if (cj.is_array()) h.open_chunk = std::move(cj);
    }
  }
  return &heads_.emplace(session, std::move(h)).first->second;
}

Status AttestationLog::Flush() {
  std::lock_guard<std::mutex> f(flush_mu_);
  std::vector<AttestationRecord> batch_records;
  {
    std::lock_guard<std::mutex> l(mu_);
    batch_records.swap(pending_);
  }
  if (batch_records.empty()) return Status::Ok();
  std::map<std::string, std::vector<const AttestationRecord*>> by_session;
  for (const AttestationRecord& r : batch_records) by_session[r.session].push_back(&r);
  std::vector<Store::Write> writes;
  std::map<std::string, Head> before;  // to roll the cache back if the batch fails
  for (auto& [session, records] : by_session) {
    ASSIGN_OR_RETURN(Head * h, HeadOf(session));
    before.emplace(session, *h);
    for (const AttestationRecord* r : records) {
      if (h->open_chunk.size() >= kChunk) {
        writes.push_back({kAttestations, ChunkKey(session, h->last), internal::ToBytes(h->open_chunk.dump()), std::nullopt});
        ++h->last;
        h->open_chunk = json::array();
      }
      h->open_chunk.push_back(ToJson(*r));
    }
    writes.push_back({kAttestations, ChunkKey(session, h->last), internal::ToBytes(h->open_chunk.dump()), std::nullopt});
    const uint64_t keep = kKeepPerSession / kChunk;
    while (h->last - h->first + 1 > keep) {
      writes.push_back({kAttestations, ChunkKey(session, h->first), std::nullopt, std::nullopt});
      ++h->first;
    }
    writes.push_back({kAttestationHeads, session,
                      internal::ToBytes(json{{"first", h->first}, {"last", h->last}}.dump()), std::nullopt});
  }
  auto applied = store_->Apply(writes);
  if (!applied.ok()) {
    for (auto& [session, h] : before) heads_[session] = std::move(h);
    return applied.status();
  }
  return Status::Ok();
}

Status AttestationLog::Forget(const std::string& session) {
  RETURN_IF_ERROR(Flush());
  std::lock_guard<std::mutex> f(flush_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    std::erase_if(pending_, [&](const AttestationRecord& r) { return r.session == session; });
  }
  ASSIGN_OR_RETURN(Head * h, HeadOf(session));
  std::vector<Store::Write> writes;
  for (uint64_t n = h->first; n <= h->last; ++n) {
    writes.push_back({kAttestations, ChunkKey(session, n), std::nullopt, std::nullopt});
  }
  writes.push_back({kAttestationHeads, session, std::nullopt, std::nullopt});
  heads_.erase(session);
  return store_->Apply(writes).status();
}

StatusOr<std::vector<AttestationRecord>> AttestationLog::Latest(const std::string& session, size_t limit) {
  RETURN_IF_ERROR(Flush());
  std::lock_guard<std::mutex> f(flush_mu_);
  std::vector<AttestationRecord> out;
  ASSIGN_OR_RETURN(Head * h, HeadOf(session));
  for (uint64_t n = h->last + 1; n-- > h->first && out.size() < limit;) {
    json chunk;
    if (n == h->last) {
      chunk = h->open_chunk;
    } else {
      ASSIGN_OR_RETURN(auto stored, store_->Get(kAttestations, ChunkKey(session, n)));
      if (!stored) continue;
      chunk = json::parse(stored->begin(), stored->end(), nullptr, false);
      if (!chunk.is_array()) return InternalError("a stored attestation record is not valid");
    }
    for (size_t i = chunk.size(); i-- > 0 && out.size() < limit;) out.push_back(FromJson(session, chunk[i]));
  }
  return out;
}

}  // namespace cloister::cas
