// A read cache in front of a Store, for the few tables read at every
// attestation (the session records). Sound only while this process is the
// store's one writer: the CAS holds an exclusive lock on its state
// directory for as long as it runs (CasService::Open), and every write goes
// through Apply below.
//
// Coherence: every Apply bumps a generation number before and after it
// reaches the inner store and drops the records it names. A reader fills
// the cache only if the generation did not move while it read the inner
// store, so a value read just before a write commits is never kept after
// it.
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "cas/store.h"

namespace cloister::cas {
namespace {

class CachingStore final : public Store {
 public:
  CachingStore(std::unique_ptr<Store> inner, std::vector<std::string> tables, size_t max_records)
      : inner_(std::move(inner)), tables_(std::move(tables)), max_records_(max_records) {}

  StatusOr<std::optional<Versioned>> GetVersioned(std::string_view table, std::string_view key) override {
    if (!Cached(table)) return inner_->GetVersioned(table, key);
    std::string name = Name(table, key);
    {
      std::shared_lock<std::shared_mutex> l(mu_);
      auto it = records_.find(name);
      if (it != records_.end()) return std::optional<Versioned>(it->second);
    }
    const uint64_t before = generation_.load(std::memory_order_acquire);
    ASSIGN_OR_RETURN(auto v, inner_->GetVersioned(table, key));
    if (v) {
      std::unique_lock<std::shared_mutex> l(mu_);
      if (generation_.load(std::memory_order_acquire) == before) {
        // Bounded by forgetting everything: refilling costs one read each.
        if (records_.size() >= max_records_) records_.clear();
        records_.insert_or_assign(std::move(name), *v);
      }
    }
    return v;
  }

  StatusOr<uint64_t> Apply(const std::vector<Write>& batch) override {
    Forget(batch);
    StatusOr<uint64_t> applied = inner_->Apply(batch);
    // Also after: a reader may have read the old value while the batch was
    // being written.
    Forget(batch);
    return applied;
  }

  StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) override {
    return inner_->Scan(table);
  }

 private:
  bool Cached(std::string_view table) const {
    for (const std::string& t : tables_) {
      if (t == table) return true;
    }
    return false;
  }
  static std::string Name(std::string_view table, std::string_view key) {
    std::string name(table);
    name.push_back('\0');
    name.append(key);
    return name;
  }
  void Forget(const std::vector<Write>& batch) {
    std::unique_lock<std::shared_mutex> l(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    for (const Write& w : batch) {
      if (Cached(w.table)) records_.erase(Name(w.table, w.key));
    }
  }

  std::unique_ptr<Store> inner_;
  const std::vector<std::string> tables_;
  const size_t max_records_;
  std::shared_mutex mu_;  // guards records_
  std::unordered_map<std::string, Versioned> records_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace

std::unique_ptr<Store> NewCachingStore(std::unique_ptr<Store> inner, std::vector<std::string> tables,
                                       size_t max_records) {
  return std::make_unique<CachingStore>(std::move(inner), std::move(tables), max_records);
}

}  // namespace cloister::cas
