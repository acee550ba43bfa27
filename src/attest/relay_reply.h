// The CAS's answer to a relayed attestation (docs/protocol.md section 6):
// what a starting program receives when its LAS carried its evidence to the
// CAS instead of the program opening its own TLS connection.
//
// The LAS is not trusted with the answer. The CAS signs it with its own key
// (which the program pins, as in TLS), over the program's report data and
// config id, so an answer made for another start or by anyone but the CAS
// is refused; a grant is sealed with HPKE (RFC 9180) to the program's fresh
// key, so only the process that holds that key reads it.
//
// Pure code that needs nothing of the project but OpenSSL and
// crypto/hpke (which is as pure): the CAS builds replies with it and the
// runtime (built from its own sources) checks them with the same functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cloister::relay {

// An uncompressed P-256 point (0x04 || X || Y): how a relayed request names
// the program's fresh key.
inline constexpr size_t kPointSize = 65;
using Point = std::array<uint8_t, kPointSize>;
using Hash = std::array<uint8_t, 32>;

// DER SubjectPublicKeyInfo of a P-256 key with uncompressed point: this
// 26-byte prefix, then the point. i2d_PUBKEY writes exactly this.
inline constexpr size_t kSpkiSize = 26 + kPointSize;
std::array<uint8_t, kSpkiSize> SpkiOfPoint(const Point& point);

// The report data that binds evidence to the key: SHA-256 of its SPKI, as
// for a TLS client certificate in a direct attestation. False only if
// OpenSSL fails.
bool ReportDataOfPoint(const Point& point, Hash* out);

// HPKE `info` and `aad` of the sealed grant.
inline constexpr std::string_view kGrantInfo = "cloister grant v1";

inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kMaxPayload = 16 * 1024 * 1024 + 1024;
inline constexpr size_t kMaxSignature = 80;  // DER ECDSA P-256 is at most 72

// A reply before its signature: magic "CLCG", version, `status` (the HTTP
// status of the outcome: 200 with a sealed grant as payload, otherwise the
// refusal's JSON as payload), the CAS's SPKI and the payload, lengths in
// network byte order. Empty if `payload` is larger than kMaxPayload.
std::vector<uint8_t> EncodeUnsigned(uint16_t status, std::span<const uint8_t> cas_spki,
                                    std::span<const uint8_t> payload);

// What the CAS signs: a context string, the requester's report data, the
// config id (length-prefixed) and the unsigned reply. Tying the signature
// to the report data makes a reply useless for any other start.
std::vector<uint8_t> SignedMessage(const Hash& report_data, std::string_view config_id,
                                   std::span<const uint8_t> unsigned_reply);

// The signed reply: the unsigned reply, then the signature's length and
// bytes (DER ECDSA P-256 with SHA-256 over SignedMessage).
std::vector<uint8_t> AppendSignature(std::vector<uint8_t> unsigned_reply, std::span<const uint8_t> signature);

struct Reply {
  uint16_t status = 0;
  std::span<const uint8_t> cas_spki;
  std::span<const uint8_t> payload;
  std::span<const uint8_t> unsigned_part;  // what SignedMessage covers
  std::span<const uint8_t> signature;
};

// Splits a reply, bounded by its length fields and the limits above;
// nothing may follow the signature. On failure `error` says what is wrong.
bool Parse(std::span<const uint8_t> bytes, Reply* out, std::string* error);

// The check of any message the CAS signs with its own key (a relayed reply,
// a volume commit receipt): `cas_spki` is a P-256 key whose SHA-256 equals
// `pin` (compared in constant time) and `signature` (DER ECDSA with
// SHA-256) verifies over `message` under it.
enum class CasSignature { kValid, kNotPinned, kNotP256, kCannotCheck, kInvalid };
CasSignature CheckCasSignature(std::span<const uint8_t> cas_spki, const Hash& pin, std::span<const uint8_t> message,
                               std::span<const uint8_t> signature);

// Checks that `reply` comes from the pinned CAS and was made for this start:
// the SPKI is a P-256 key whose SHA-256 equals `pin` (compared in constant
// time) and the signature verifies over SignedMessage(report_data,
// config_id, ...). On failure `error` says which check failed.
bool Verify(const Reply& reply, const Hash& pin, const Hash& report_data, std::string_view config_id,
            std::string* error);

// A batch (POST /v1/attest/relay/batch): a LAS with several starts waiting
// sends them in one request and the CAS answers every one, in order, in one
// body: the count (u32), then per start the reply's length (u32) and the
// reply. Length 0: the start was malformed and has no reply. Each reply is
// checked by its own program exactly as a single one.
inline constexpr size_t kMaxBatch = 32;
std::vector<uint8_t> EncodeBatch(const std::vector<std::vector<uint8_t>>& replies);

// Splits a batch that must hold exactly `expected` replies; nothing may
// follow the last. On failure `error` says what is wrong.
bool DecodeBatch(std::span<const uint8_t> bytes, size_t expected, std::vector<std::span<const uint8_t>>* out,
                 std::string* error);

}  // namespace cloister::relay
