// The CAS keyring: the database key, wrapped by a master key that never
// touches the disk in plaintext. The master key reaches a starting CAS
// either from a file (development) or as M of N Shamir shares entered by
// operators. The keyring file holds only the wrapped database key and the
// share parameters.
#pragma once

#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::cas {

enum class UnsealMode : uint8_t { kKeyFile = 1, kShares = 2 };

struct KeyringInfo {
  UnsealMode mode;
  int shares = 0;     // N (kShares)
  int threshold = 0;  // M (kShares)
};

// Splits a 32-byte secret into `n` shares of which any `m` reconstruct it
// (1 <= m <= n <= 255). Shares are text: "cloister-share-v1:<i>:<hex>:<check>",
// where the check catches typing mistakes.
StatusOr<std::vector<SecretBytes>> SplitSecret(const SecretBytes& secret, int n, int m);
// Reconstructs from at least `m` distinct shares. Wrong or too few shares
// yield a wrong secret, which the keyring detects when unwrapping.
StatusOr<SecretBytes> CombineShares(const std::vector<SecretBytes>& shares, int m);

// Checks one share's form and typing check (nothing about the secret).
Status CheckShare(const SecretBytes& share);

// Keyring file contents: header (mode, N, M) and the database key sealed
// under a key derived from the master key, with the header as associated data.
struct NewKeyring {
  Bytes file;                      // to be written to the state directory
  SecretBytes database_key;
  SecretBytes master_key;
  std::vector<SecretBytes> shares;  // kShares only
};
// `master_key` (kKeyFile only) wraps under an operator's existing key file
// instead of a fresh master key.
StatusOr<NewKeyring> CreateKeyring(UnsealMode mode, int shares, int threshold,
                                   const SecretBytes* master_key = nullptr);
StatusOr<KeyringInfo> ParseKeyring(std::span<const uint8_t> file);
// The database key, or kIntegrity if the master key is wrong.
StatusOr<SecretBytes> UnwrapDatabaseKey(std::span<const uint8_t> file, const SecretBytes& master_key);

}  // namespace cloister::cas
