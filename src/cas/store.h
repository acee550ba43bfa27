// The CAS's durable store: an ordered set of tables of (key -> value)
// records behind one small interface, so that the embedded SQLite store and
// a later etcd-backed one are interchangeable.
//
// EncryptedStore wraps any Store so that nothing readable reaches it: each
// record is sealed with AES-256-GCM under the database key, with associated
// data binding it to its table and name (a record moved or swapped between
// rows fails to decrypt), and row keys are keyed hashes of the names.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::cas {

class Store {
 public:
  struct Write {
    std::string table;
    std::string key;
    std::optional<Bytes> value;  // nullopt deletes the record
    // Compare-and-swap: apply the batch only if this record's revision is
    // exactly this (0: the record must not exist). Revisions come from one
    // store-wide counter, as etcd's do, so a deleted and re-created record
    // never repeats one.
    std::optional<uint64_t> if_revision;
  };
  struct Versioned {
    Bytes value;
    uint64_t revision = 0;  // of the batch that last wrote the record
  };

  virtual ~Store() = default;

  // The value of a record, or nullopt if there is none.
  StatusOr<std::optional<Bytes>> Get(std::string_view table, std::string_view key) {
    ASSIGN_OR_RETURN(auto v, GetVersioned(table, key));
    if (!v) return std::optional<Bytes>();
    return std::optional<Bytes>(std::move(v->value));
  }
  virtual StatusOr<std::optional<Versioned>> GetVersioned(std::string_view table, std::string_view key) = 0;
  // Applies a batch atomically: all of it or, if a revision condition does
  // not hold (kFailedPrecondition, "conflict") or anything fails, none of
  // it. When it returns OK the batch is durable: it survives a crash of the
  // process or of the machine. Returns the batch's revision.
  virtual StatusOr<uint64_t> Apply(const std::vector<Write>& batch) = 0;
  // Every record of a table, in key order.
  virtual StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) = 0;
};

// SQLite in WAL mode with full synchronisation, in one file at `path`.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

// A Store that seals every record under `database_key` (32 bytes) before it
// reaches `inner`. Scan returns names and values in the clear, in name order.
StatusOr<std::unique_ptr<Store>> NewEncryptedStore(std::unique_ptr<Store> inner,
                                                   const SecretBytes& database_key);

// A Store that keeps the records of `tables` it has read in memory (at most
// `max_records` of them) and forgets a record when a batch writes it. Only
// for a store this process alone writes to.
std::unique_ptr<Store> NewCachingStore(std::unique_ptr<Store> inner, std::vector<std::string> tables,
                                       size_t max_records);

}  // namespace cloister::cas
