// What the CAS service's parts share (service.cc: sessions; nodes.cc: node
// join and certificates; attest.cc: attestation at start): the store's
// tables and record helpers. Not part of any API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "cas/secrets.h"
#include "cas/store.h"
#include "cloister/status.h"
#include "policy/policy.h"

namespace cloister::cas::internal {

// Tables of the store. Every record is sealed by the EncryptedStore.
inline constexpr char kSessions[] = "sessions";        // name -> session record (JSON)
inline constexpr size_t kCachedSessions = 4096;  // session records kept decrypted in memory
inline constexpr char kHistory[] = "history";          // name -> [version entries] (JSON)
inline constexpr char kSecrets[] = "secrets";          // name "\n" secret -> EncodeSecretValue
inline constexpr char kIdentities[] = "identities";    // identity -> {first_seen} (JSON)
inline constexpr char kNodeCa[] = "node_ca";           // "ca" -> {certificate, key} (JSON)
inline constexpr char kNodes[] = "nodes";              // node id -> node record (JSON)
inline constexpr char kJoinTokens[] = "join_tokens";   // hex SHA-256 of a token -> {expires, ...}
inline constexpr char kCollateral[] = "collateral";    // kind "\n" subject -> collateral piece (JSON)

// The secrets-table name under which a volume's key is kept: "@" cannot
// start a secret's name, so it never collides with one.
inline std::string VolumeKeyName(const std::string& volume) { return "@volume/" + volume; }

// Now, as RFC 3339 UTC ("2026-11-22T07:31:00Z").
std::string Now();

std::string SecretKey(const std::string& session, const std::string& secret);
Bytes ToBytes(const std::string& s);

// A record JSON object of our own sealed store; kInternal if it is not one.
StatusOr<nlohmann::json> ParseRecord(const Bytes& b, const char* what);

// True if `caller` is in `who` (identities, CREATOR, ANY, NONE).
bool Allowed(const std::vector<std::string>& who, const std::string& caller, const std::string& creator);
std::vector<std::string> AccessList(const nlohmann::json& rec, const char* which);
std::string CreatorOf(const nlohmann::json& rec);

// A stored session: its record, the revision it was read at, and (when
// asked for) the parsed policy of the current version.
struct Current {
  nlohmann::json record;
  uint64_t revision = 0;
  policy::Policy policy;
};
StatusOr<std::optional<Current>> LoadSession(Store& store, const std::string& name, bool parse = false);

// A stored secret value, decoded; nullopt if there is none.
StatusOr<std::optional<SecretValue>> LoadSecret(Store& store, const std::string& session, const std::string& secret);

}  // namespace cloister::cas::internal
