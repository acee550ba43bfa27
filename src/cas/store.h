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
  };

  virtual ~Store() = default;

  // The value of a record, or nullopt if there is none.
  virtual StatusOr<std::optional<Bytes>> Get(std::string_view table, std::string_view key) = 0;
  // Applies a batch atomically. When it returns OK the batch is durable: it
  // survives a crash of the process or of the machine.
  virtual Status Apply(const std::vector<Write>& batch) = 0;
  // Every record of a table, in key order.
  virtual StatusOr<std::vector<std::pair<std::string, Bytes>>> Scan(std::string_view table) = 0;
};

// SQLite in WAL mode with full synchronisation, in one file at `path`.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

// A Store that seals every record under `database_key` (32 bytes) before it
// reaches `inner`. Scan returns names and values in the clear, in name order.
StatusOr<std::unique_ptr<Store>> NewEncryptedStore(std::unique_ptr<Store> inner,
                                                   const SecretBytes& database_key);

}  // namespace cloister::cas
