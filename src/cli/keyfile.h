// Volume key files: one line "cloister-volume-key-v1:<64 hex digits>",
// mode 0600. Keys are only ever read from files, never from the command line.
#pragma once

#include <string>

#include "base/secret.h"
#include "cloister/status.h"
#include "os/secret_file.h"

namespace cloister::cli {

// Reads a volume key file. Refuses files that other users can read or write.
StatusOr<SecretBytes> ReadKeyFile(const std::string& path);

// Reads the key file, or creates it with a fresh random key (mode 0600) if
// it does not exist; `*created` tells which.
StatusOr<SecretBytes> ReadOrCreateKeyFile(const std::string& path, bool* created);

using os::WriteNewSecretFile;

}  // namespace cloister::cli
