// The volume token: what the CAS puts in a grant (`volume_token`) so that
// the program it started can later report commits of its volumes
// (docs/protocol.md section 7). Only the CAS makes and reads tokens; to the
// runtime a token is opaque bytes it hands back with every report.
//
// A token binds the session and service of the start and the SHA-256 of
// the program's fresh key (the report data of its evidence), under
// HMAC-SHA-256 with a key derived from the CAS's database key. It is
// therefore as durable as the database (valid across restarts of the CAS
// and on every replica that opens the same store) and cannot be made by
// anyone who cannot open that store. It is not secret: without the private
// key it names, a token is good for nothing.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

namespace cloister::cas {

struct VolumeTokenClaims {
  int64_t issued_unix = 0;           // when the start was granted
  std::string session, service;      // of CLOISTER_CONFIG_ID, at most 255 bytes each
  std::array<uint8_t, 32> key_hash{};  // SHA-256 of the program key's DER SubjectPublicKeyInfo
};

// The MAC key of tokens, derived (HKDF-SHA-256) from the database key.
StatusOr<SecretBytes> DeriveVolumeTokenKey(const SecretBytes& database_key);

// A token for `claims` under `mac_key`. Layout (little-endian, like the
// CAS's other records): version (u8, 1), issued_unix (u64), session and
// service (each u16 length and bytes), key_hash (32 bytes), then the
// HMAC-SHA-256 of a label and everything before it (32 bytes).
StatusOr<Bytes> IssueVolumeToken(const SecretBytes& mac_key, const VolumeTokenClaims& claims);

// The claims of a token this CAS issued; kUnauthenticated, with one message
// whatever was wrong, for anything else. The MAC is compared in constant
// time before any field is read.
StatusOr<VolumeTokenClaims> VerifyVolumeToken(const SecretBytes& mac_key, std::span<const uint8_t> token);

}  // namespace cloister::cas
