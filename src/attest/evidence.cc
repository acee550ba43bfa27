#include "attest/evidence.h"

#include <algorithm>
#include <cstring>

#include "crypto/crypto.h"
#include "crypto/identity.h"
#include "crypto/signature.h"

namespace cloister::attest {
namespace {

constexpr uint32_t kMagic = 0x56454c43;  // "CLEV"
constexpr uint16_t kVersion = 1;
// Domain separation: a node key's signature over evidence can never be
// taken for its signature over anything else.
constexpr char kSignLabel[] = "cloister sim evidence v1";
constexpr size_t kMaxCertificate = 16 * 1024;
constexpr size_t kMaxSignature = 128;

Bytes SignedBytes(std::span<const uint8_t> body) {
  Bytes m;
  PutBytes(m, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kSignLabel), sizeof(kSignLabel)));
  PutBytes(m, body);
  return m;
}

Bytes Body(const SimClaims& c) {
  Bytes b;
  PutU32(b, kMagic);
  PutU16(b, kVersion);
  PutU8(b, static_cast<uint8_t>(c.type));
  PutBytes(b, c.report_data);
  PutBytes(b, c.executable);
  PutBytes(b, c.runtime);
  PutU32(b, c.pid);
  PutU32(b, c.uid);
  PutU64(b, c.issued_at_ns);
  PutLengthPrefixed(b, AsBytes(c.node_id));
  PutLengthPrefixed(b, AsBytes(c.node_certificate_pem));
  return b;
}

void Copy(std::span<const uint8_t> from, Sha256Value& to) {
  if (from.size() == to.size()) std::memcpy(to.data(), from.data(), to.size());
}

}  // namespace

std::string_view EvidenceTypeName(EvidenceType t) {
  switch (t) {
    case EvidenceType::kSim: return "sim";
  }
  return "unknown";
}

StatusOr<Bytes> SignSimEvidence(const SimClaims& claims, const SecretBytes& node_key_pem) {
  if (claims.node_certificate_pem.size() > kMaxCertificate) return InvalidArgument("the node certificate is too large");
  ASSIGN_OR_RETURN(std::string cert_id, crypto::IdentityOfCertificate(claims.node_certificate_pem));
  ASSIGN_OR_RETURN(std::string key_id, crypto::IdentityOfPrivateKey(node_key_pem));
  if (cert_id != key_id) return InvalidArgument("the node certificate does not belong to the node key");
  if (claims.node_id != cert_id) return InvalidArgument("node_id is not the hash of the node certificate's key");
  ASSIGN_OR_RETURN(auto signer, crypto::P256Signer::New(node_key_pem));
  return SignSimEvidence(claims, *signer);
}

StatusOr<Bytes> SignSimEvidence(const SimClaims& claims, const crypto::P256Signer& node_key) {
  if (claims.node_certificate_pem.size() > kMaxCertificate) return InvalidArgument("the node certificate is too large");
  if (claims.node_id != node_key.id()) return InvalidArgument("node_id is not the hash of the node key");
  Bytes body = Body(claims);
  ASSIGN_OR_RETURN(Bytes sig, node_key.Sign(SignedBytes(body)));
  PutLengthPrefixed(body, sig);
  return body;
}

StatusOr<SimClaims> VerifySimEvidence(std::span<const uint8_t> evidence, const NodeKeyFn& node_key) {
  if (evidence.size() > kMaxEvidenceSize) return IntegrityError("evidence larger than " + std::to_string(kMaxEvidenceSize) + " bytes");
  ByteReader r(evidence);
  SimClaims c;
  uint32_t magic = r.U32();
  uint16_t version = r.U16();
  uint8_t type = r.U8();
  if (!r.ok() || magic != kMagic) return IntegrityError("not Cloister evidence");
  if (version != kVersion) return IntegrityError("evidence version " + std::to_string(version) + " is not supported");
  if (type != static_cast<uint8_t>(EvidenceType::kSim)) {
    return IntegrityError("evidence type " + std::to_string(type) + " is not sim");
  }
  Copy(r.Take(32), c.report_data);
  Copy(r.Take(32), c.executable);
  Copy(r.Take(32), c.runtime);
  c.pid = r.U32();
  c.uid = r.U32();
  c.issued_at_ns = r.U64();
  auto node_id = r.LengthPrefixed(64);
  auto cert = r.LengthPrefixed(kMaxCertificate);
  size_t body_end = r.position();
  auto sig = r.LengthPrefixed(kMaxSignature);
  if (!r.ok()) return IntegrityError("evidence is truncated or a length field is out of range");
  if (!r.AtEnd()) return IntegrityError("evidence has trailing bytes");
  c.node_id.assign(node_id.begin(), node_id.end());
  c.node_certificate_pem.assign(cert.begin(), cert.end());
  auto key = node_key ? node_key(c.node_certificate_pem) : crypto::P256Verifier::FromCertificate(c.node_certificate_pem);
  if (!key.ok() || *key == nullptr) {
    return IntegrityError("the node certificate in the evidence does not parse or has no P-256 key");
  }
  if ((*key)->id() != c.node_id) return IntegrityError("node_id does not name the enclosed node certificate's key");
  Status s = (*key)->Verify(SignedBytes(evidence.first(body_end)), sig);
  if (!s.ok()) return IntegrityError("the evidence signature does not verify with the node certificate's key");
  return c;
}

}  // namespace cloister::attest
