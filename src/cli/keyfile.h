// Volume key files: one line "cloister-volume-key-v1:<64 hex digits>",
// mode 0600. Keys are only ever read from files, never from the command line.
#pragma once

#include <span>
#include <string>

#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::cli {

// Reads a key file. Refuses files that other users can read or write.
StatusOr<SecretBytes> ReadKeyFile(const std::string& path);

// Creates `path` (which must not exist) with mode 0600, writes `data`,
// and makes file and name durable; on failure nothing is left behind.
Status WriteNewSecretFile(const std::string& path, std::span<const uint8_t> data);

// Reads the key file, or creates it with a fresh random key (mode 0600) if
// it does not exist; `*created` tells which.
StatusOr<SecretBytes> ReadOrCreateKeyFile(const std::string& path, bool* created);

}  // namespace cloister::cli
