// The volume commit report (docs/protocol.md section 7): how a running
// program tells the CAS the new tag of a protected volume it committed, so
// that the CAS can refuse an older state of that volume at the next start.
//
// The program signs the report with the fresh P-256 key it attested with,
// and includes the opaque token the CAS put in its grant (`volume_token`).
// The token names the session, the service and the hash of that key, under
// the CAS's MAC; the signature proves the sender holds the key. Together
// they make the report self-authenticating: it may reach the CAS directly
// or through the LAS, and nobody on the way can forge or alter one.
//
// Pure code that needs nothing but the C++ standard library, OpenSSL and
// the (as pure) relay_reply/hpke helpers: the runtime builds reports with
// it and the CAS checks them with the same functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attest/relay_reply.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace cloister::volume_commit {

using Tag = std::array<uint8_t, 32>;

// What the signature covers first, so that the program's key signing a
// report can never be taken for it signing anything else.
inline constexpr std::string_view kLabel = "cloister volume commit v1";

// Bounds of the request's fields. A well-formed body is about a kilobyte;
// kMaxBody is also what the LAS accepts on its socket.
inline constexpr size_t kMaxToken = 512;
inline constexpr size_t kMaxVolumeName = 64;
inline constexpr size_t kMaxSignature = 80;  // DER ECDSA P-256 is at most 72
inline constexpr size_t kMaxBody = 16384;

// A volume name as a session may give it: 1 to 64 of A-Z a-z 0-9 _ -.
bool IsVolumeName(std::string_view name);

// The bytes the program signs: kLabel, then the token and the volume name
// each as a u32 big-endian length and the bytes, then `seq` as u64
// big-endian, then the 32-byte tag.
std::vector<uint8_t> SignedBytes(std::span<const uint8_t> token, std::string_view volume, uint64_t seq,
                                 const Tag& tag);

// Builds the JSON body of POST /v1/volumes/commit:
//   {"token": B64, "key": B64, "volume": NAME, "seq": N, "tag": HEX64, "signature": B64}
// `token` is the grant's volume_token (decoded), `key` the uncompressed
// point of the program's fresh key and `private_key` that key (borrowed; it
// must be the private half of `key`). The signature is ECDSA P-256 with
// SHA-256 over SignedBytes, DER-encoded, its nonce from OpenSSL. On failure
// returns false and says why in `error`; `body` is then unspecified.
bool BuildRequest(std::span<const uint8_t> token, const relay::Point& key, std::string_view volume, uint64_t seq,
                  const Tag& tag, EVP_PKEY* private_key, std::string* body, std::string* error);

// A report as parsed, before any of its claims is checked.
struct Request {
  std::vector<uint8_t> token;
  relay::Point key{};
  std::string volume;
  uint64_t seq = 0;
  Tag tag{};
  std::vector<uint8_t> signature;
};

// Parses a body strictly: at most kMaxBody bytes, one JSON object holding
// exactly the six members above, each once, in any order, with JSON white
// space between tokens. Strings must not contain escapes or control
// characters (no field needs one); base64 is the standard alphabet with
// padding and one encoding per value; the tag is 64 lower-case hex digits;
// seq a non-negative integer below 2^64 without sign, fraction or exponent;
// the key 65 bytes starting 0x04; each field within its bound. On failure
// returns false and says why in `error`.
bool ParseRequest(std::string_view body, Request* out, std::string* error);

// Checks that `request.key` is a valid P-256 point (on the curve, not the
// point at infinity) and that `request.signature` verifies under it over
// SignedBytes. Says nothing about the token: that is the CAS's to check.
bool VerifySignature(const Request& request, std::string* error);

// ---- the CAS's receipt ----
//
// The CAS answers a report it recorded (or had recorded already) with 200
// and the body
//   {"volume": NAME, "seq": N, "tag": HEX64, "cas_key": B64, "receipt": B64}
// where cas_key is the DER SubjectPublicKeyInfo of the CAS's own key (the
// key CLOISTER_CAS_KEY pins) and receipt its signature (ECDSA P-256 with
// SHA-256, DER) over ReceiptMessage of the report. Whoever carried the
// report (the LAS) can withhold the answer but not make one: a program
// that holds a receipt knows the CAS, not its carrier, recorded exactly
// this commit.
inline constexpr std::string_view kReceiptLabel = "cloister volume commit receipt v1";

// kReceiptLabel, then the SHA-256 (32 bytes) of the report's SignedBytes.
std::vector<uint8_t> ReceiptMessage(std::span<const uint8_t> token, std::string_view volume, uint64_t seq,
                                    const Tag& tag);

// The CAS's 200 body for a recorded commit, `signature` being its
// signature over ReceiptMessage.
std::string BuildReceipt(std::string_view volume, uint64_t seq, const Tag& tag, std::span<const uint8_t> cas_spki,
                         std::span<const uint8_t> signature);

// Checks the CAS's 200 body to the report of (token, volume, seq, tag):
// parsed as strictly as ParseRequest (exactly the five members above); the
// same volume, seq and tag; the SHA-256 of cas_key equals `pin` (compared
// in constant time) and is a P-256 key; the receipt verifies under it. On
// failure returns false and says why in `error`.
bool VerifyReceipt(std::string_view body, const relay::Hash& pin, std::span<const uint8_t> token,
                   std::string_view volume, uint64_t seq, const Tag& tag, std::string* error);

}  // namespace cloister::volume_commit
