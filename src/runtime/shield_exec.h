// A program that a protected process execs joins the file shield of the
// program it came from (docs/runtime.md, "Programs that exec").
//
// Before the exec, the runtime in the exec'ing process asks the volume
// server for a connection of the new program's own and leaves a ticket on
// it: the digest of the argument vector and environment the new program
// will receive, the working directory if it is on a volume, and whether the
// new program takes the place of the program's main process. That
// connection is the only shield descriptor that survives the exec (its
// number in CLOISTER_SHIELD), and it serves nothing until the ticket is
// redeemed.
//
// The new program attests as usual (the runtime sets LD_PRELOAD and the
// CLOISTER_* variables again, so it asks for the same service). With the
// volume keys of its grant, it and the server prove to each other that
// they hold the same keys (HMAC-SHA-256 over fresh nonces from both sides,
// under a key derived from the volumes), and it checks that the ticket
// names exactly the arguments and environment it received. Only then does
// main run, with those arguments and that environment instead of the
// session's: an attested process chose them. A program started by anyone
// else with CLOISTER_SHIELD set cannot pass either check and does not run.
//
// This file holds the pure parts both sides share.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/secret.h"

namespace cloister::runtime::shield {

// Names the inherited connection: "CLOISTER_SHIELD=<descriptor>".
inline constexpr std::string_view kShieldVariable = "CLOISTER_SHIELD";

inline constexpr size_t kJoinNonceBytes = 32;
using JoinDigest = std::array<uint8_t, 32>;

// SHA-256 over the argument vector and the environment, each entry with its
// length, so that no two different pairs of lists have the same digest.
JoinDigest ExecDigest(const char* const* argv, const char* const* envp);

// One volume as both sides know it from the CAS.
struct JoinKeyPart {
  std::string_view name;
  std::string_view path;
  const uint8_t* key = nullptr;
  size_t key_size = 0;
};

// The key of the mutual proof: HKDF-SHA-256 over the keys of the volumes
// in mount order, bound to their names and paths. Both sides derive the
// same key only if they got the same volumes from the CAS.
cloister::SecretBytes JoinKey(const std::vector<JoinKeyPart>& volumes);

// What the server proves: it holds the key, it answers this very request
// (the new program's nonce) and it vouches for this ticket.
JoinDigest ServerProof(const cloister::SecretBytes& key, const std::string& client_nonce, const std::string& server_nonce,
                       const JoinDigest& ticket, bool main_process, std::string_view cwd);
// What the new program proves: it holds the key too, now.
JoinDigest ClientProof(const cloister::SecretBytes& key, const std::string& client_nonce, const std::string& server_nonce);

// Variables the runtime sets for a program a protected process execs, and
// takes out of what the new program's main sees: LD_PRELOAD and every
// CLOISTER_* variable.
bool IsRuntimeVariable(std::string_view entry);

// The environment for an exec: `envp` without runtime variables, then
// `runtime` (each "NAME=value"). The strings point into `envp` and
// `runtime`, which must outlive the result.
std::vector<const char*> ExecEnvironment(const char* const* envp, const std::vector<std::string>& runtime);

}  // namespace cloister::runtime::shield
