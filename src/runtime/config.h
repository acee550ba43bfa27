// The runtime's configuration, from both of its sources:
//  - the host: the CLOISTER_* environment variables, which only say where
//    to attest (the CAS's address and pinned key, the LAS socket) and as
//    what (the session and service);
//  - the CAS: the grant of docs/protocol.md section 5 (arguments,
//    environment, working directory, injected files, volumes), or the
//    refusal that explains why the program may not start.
// And what the program then gets: its new argument vector and environment.
//
// Everything here is pure (no I/O, no global state), so it is unit-tested
// without LD_PRELOAD. Failures are single lines for the person starting the
// program; none quotes a secret.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/injected_files.h"
#include "runtime/result.h"
#include "runtime/secret.h"
#include "runtime/volumes.h"

namespace cloister::runtime {

inline constexpr char kDefaultLasSocket[] = "/run/cloister/las.sock";

// Host variables a protected program still sees, unless the session sets
// them itself: they describe the terminal and the time zone, nothing that
// steers the program. Everything else of the host's environment is dropped.
inline constexpr std::array<std::string_view, 2> kHostAllowList = {"TERM", "TZ"};

struct CasAddress {
  std::string host;  // a name or an address; IPv6 without the brackets
  uint16_t port = 0;
  std::string text;  // as written, e.g. "[::1]:18765"; also the Host header
};

// "host:port" or "[ipv6]:port", port 1..65535.
Result<CasAddress> ParseCasAddress(std::string_view text);

struct Settings {
  // Without CLOISTER_CAS_ADDR the LAS relays the attestation (docs/protocol.md
  // section 6); with it the runtime opens its own TLS connection (section 5).
  bool relayed = false;
  CasAddress cas;                     // CLOISTER_CAS_ADDR; empty when relayed
  std::array<uint8_t, 32> cas_key{};  // CLOISTER_CAS_KEY: SHA-256 of the CAS key's SubjectPublicKeyInfo
  std::string las_socket;             // CLOISTER_LAS_SOCKET, or kDefaultLasSocket
  std::string config_id;              // CLOISTER_CONFIG_ID, "SESSION/SERVICE"
  std::string session, service;       // split at the last '/'
  bool debug = false;                 // CLOISTER_LOG=debug
};

// Reads the CLOISTER_* variables through `getenv` and refuses missing or
// ill-formed ones, naming the variable and the expected form.
Result<Settings> ReadSettings(const std::function<const char*(const char*)>& getenv);

// What the CAS granted (docs/protocol.md section 5), validated.
struct Grant {
  std::string evidence;  // evidence type as the CAS saw it, e.g. "sim"
  std::string session, service, session_hash;
  std::vector<SecretString> command;  // empty: keep the host's arguments
  std::vector<std::pair<std::string, SecretString>> environment;
  std::string pwd;  // empty: stay in the current directory
  std::vector<InjectedFile> files;
  std::vector<VolumeMount> volumes;
  // The CAS's token for commit reports of these volumes (docs/protocol.md
  // section 7), decoded from base64; empty when the grant has none (no
  // volume mounted). Opaque: the runtime only hands it back, in every
  // report it signs (attest/volume_commit.h). Not secret.
  std::vector<uint8_t> volume_token;
};

// What failure messages about a CAS reply need to know.
struct ReplyContext {
  std::string cas;                    // CLOISTER_CAS_ADDR as written
  std::string config_id;              // CLOISTER_CONFIG_ID
  std::string evidence_type;          // of the evidence sent ("sim"); empty if unknown
  std::span<const uint8_t> evidence;  // the evidence sent, to quote its measurements
  std::string relayed_by;             // the LAS's socket, when it relayed the reply
};

// "the CAS at ADDR", or "the CAS (relayed by the LAS at SOCKET)".
std::string CasName(const ReplyContext& ctx);

// Turns the CAS's HTTP status and body into a Grant (status 200 with a
// well-formed grant for ctx.config_id) or a Failure saying why the start
// was refused: one message per refusal reason of section 5, the CAS's
// `error` text with the status for anything else, what is wrong with a
// malformed grant. Every failure ends with "(evidence: TYPE)" when the
// type is known. The body is never quoted beyond the CAS's `error` field,
// because a grant holds secrets.
Result<Grant> ParseCasReply(int http_status, std::span<const uint8_t> body, const ReplyContext& ctx);

// The program's argument vector: the granted `command` if it is not empty,
// the host's (argc, argv) otherwise.
std::vector<SecretString> BuildArguments(const std::vector<SecretString>& command, int argc, char* const* argv);

// The program's environment as "NAME=VALUE" strings: the session's
// variables, then each kHostAllowList variable of `host_env` (a
// null-terminated array, as envp) that the session does not set itself.
// Nothing else of the host's passes, LD_PRELOAD and CLOISTER_* included.
std::vector<SecretString> BuildEnvironment(const std::vector<std::pair<std::string, SecretString>>& session_env,
                                           char* const* host_env);

}  // namespace cloister::runtime
