#include "cas/volume_token.h"

#include "crypto/crypto.h"

namespace cloister::cas {
namespace {

constexpr uint8_t kTokenVersion = 1;
constexpr size_t kMacSize = 32;
constexpr size_t kMaxName = 255;
// What the MAC covers first: a token's MAC can never be taken for a MAC
// the CAS computes under the same key for anything else.
constexpr char kMacLabel[] = "cloister volume token v1";

crypto::Digest Mac(const SecretBytes& key, std::span<const uint8_t> claims) {
  return crypto::HmacSha256(key, {AsBytes(kMacLabel), claims});
}

}  // namespace

StatusOr<SecretBytes> DeriveVolumeTokenKey(const SecretBytes& database_key) {
  if (database_key.size() != 32) return InvalidArgument("the database key is 32 bytes");
  // The same salt as the store's own keys (encrypted_store.cc), another info.
  return crypto::HkdfSha256(database_key, AsBytes("cloister cas database v1"), AsBytes("cloister volume token v1"),
                            32);
}

StatusOr<Bytes> IssueVolumeToken(const SecretBytes& mac_key, const VolumeTokenClaims& claims) {
  if (mac_key.size() != 32) return InternalError("the volume token key is not set");
  if (claims.session.empty() || claims.session.size() > kMaxName || claims.service.empty() ||
      claims.service.size() > kMaxName || claims.issued_unix < 0) {
    return InvalidArgument("a volume token names a session and a service of 1 to 255 bytes");
  }
  Bytes t;
  PutU8(t, kTokenVersion);
  PutU64(t, static_cast<uint64_t>(claims.issued_unix));
  PutU16(t, static_cast<uint16_t>(claims.session.size()));
  PutBytes(t, AsBytes(claims.session));
  PutU16(t, static_cast<uint16_t>(claims.service.size()));
  PutBytes(t, AsBytes(claims.service));
  PutBytes(t, claims.key_hash);
  crypto::Digest mac = Mac(mac_key, t);
  PutBytes(t, mac);
  return t;
}

StatusOr<VolumeTokenClaims> VerifyVolumeToken(const SecretBytes& mac_key, std::span<const uint8_t> token) {
  const Status refused = Unauthenticated("the volume token was not issued by this CAS");
  if (mac_key.size() != 32 || token.size() <= kMacSize) return refused;
  std::span<const uint8_t> claims = token.first(token.size() - kMacSize);
  crypto::Digest expected = Mac(mac_key, claims);
  if (!ConstantTimeEquals(expected, token.last(kMacSize))) return refused;
  // Authentic from here on; still read through the bounds-checked reader.
  ByteReader r(claims);
  VolumeTokenClaims c;
  uint8_t version = r.U8();
  uint64_t issued = r.U64();
  auto session = r.Take(r.U16());
  auto service = r.Take(r.U16());
  auto key_hash = r.Take(c.key_hash.size());
  if (!r.AtEnd() || version != kTokenVersion || issued > static_cast<uint64_t>(INT64_MAX)) return refused;
  c.issued_unix = static_cast<int64_t>(issued);
  c.session.assign(session.begin(), session.end());
  c.service.assign(service.begin(), service.end());
  std::copy(key_hash.begin(), key_hash.end(), c.key_hash.begin());
  return c;
}

}  // namespace cloister::cas
