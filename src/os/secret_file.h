// Files that hold secrets: created 0600 and durable, and refused when other
// users can read them. Key files are one text line "<prefix><hex>" so that a
// file made for one purpose is never taken for another.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::os {

// The whole file, at most `max_size` bytes. Refuses files that are not
// regular or that other users can read or write (mode & 077).
StatusOr<SecretBytes> ReadPrivateFile(const std::string& path, size_t max_size);

// Creates `path` (which must not exist: kAlreadyExists) with mode 0600,
// writes `data`, and makes file and name durable; on failure nothing is
// left behind.
Status WriteNewSecretFile(const std::string& path, std::span<const uint8_t> data);

// A key file "<prefix><2*size hex digits>\n". `what` names it in errors
// ("volume key", "unseal key").
StatusOr<SecretBytes> ReadKeyFile(const std::string& path, std::string_view prefix, size_t size,
                                  std::string_view what);
// Reads the key file, or creates it with a fresh random key if it does not
// exist; `*created` tells which.
StatusOr<SecretBytes> ReadOrCreateKeyFile(const std::string& path, std::string_view prefix, size_t size,
                                          std::string_view what, bool* created);

}  // namespace cloister::os
