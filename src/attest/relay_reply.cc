#include "attest/relay_reply.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

#include "crypto/hpke.h"

namespace cloister::relay {
namespace {

// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes,
// no unused bits) } with the point left out.
constexpr std::array<uint8_t, 26> kP256SpkiPrefix = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                                     0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                                     0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
constexpr std::array<uint8_t, 4> kMagic = {'C', 'L', 'C', 'G'};
constexpr std::string_view kSignatureContext = "cloister relayed reply v1";

void PutU16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void PutU32(std::vector<uint8_t>& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

void PutBytes(std::vector<uint8_t>& b, std::span<const uint8_t> s) { b.insert(b.end(), s.begin(), s.end()); }

// Reads big-endian fields from a span; once a read runs past the end,
// every later read fails too.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> s) : s_(s) {}
  bool U16(uint16_t* v) {
    if (!Has(2)) return false;
    *v = static_cast<uint16_t>(s_[pos_] << 8 | s_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U32(uint32_t* v) {
    if (!Has(4)) return false;
    *v = static_cast<uint32_t>(s_[pos_]) << 24 | static_cast<uint32_t>(s_[pos_ + 1]) << 16 |
         static_cast<uint32_t>(s_[pos_ + 2]) << 8 | s_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  bool Take(size_t n, std::span<const uint8_t>* out) {
    if (!Has(n)) return false;
    *out = s_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  size_t left() const { return s_.size() - pos_; }

 private:
  bool Has(size_t n) const { return n <= s_.size() - pos_; }
  std::span<const uint8_t> s_;
  size_t pos_ = 0;
};

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};


}  // namespace

std::array<uint8_t, kSpkiSize> SpkiOfPoint(const Point& point) {
  std::array<uint8_t, kSpkiSize> spki;
  std::memcpy(spki.data(), kP256SpkiPrefix.data(), kP256SpkiPrefix.size());
  std::memcpy(spki.data() + kP256SpkiPrefix.size(), point.data(), point.size());
  return spki;
}

bool ReportDataOfPoint(const Point& point, Hash* out) {
  std::array<uint8_t, kSpkiSize> spki = SpkiOfPoint(point);
  unsigned int len = 0;
  return EVP_Digest(spki.data(), spki.size(), out->data(), &len, EVP_sha256(), nullptr) == 1 && len == out->size();
}

std::vector<uint8_t> EncodeUnsigned(uint16_t status, std::span<const uint8_t> cas_spki,
                                    std::span<const uint8_t> payload) {
  if (payload.size() > kMaxPayload || cas_spki.size() > 0xffff) return {};
  std::vector<uint8_t> b;
  b.reserve(16 + cas_spki.size() + payload.size() + kMaxSignature);
  PutBytes(b, kMagic);
  PutU16(b, kVersion);
  PutU16(b, status);
  PutU16(b, static_cast<uint16_t>(cas_spki.size()));
  PutBytes(b, cas_spki);
  PutU32(b, static_cast<uint32_t>(payload.size()));
  PutBytes(b, payload);
  return b;
}

std::vector<uint8_t> SignedMessage(const Hash& report_data, std::string_view config_id,
                                   std::span<const uint8_t> unsigned_reply) {
  // Sized once and filled with memcpy (GCC 12 misreads vector::insert
  // chains here as overflows).
  std::vector<uint8_t> m(kSignatureContext.size() + 1 + report_data.size() + 2 + config_id.size() +
                         unsigned_reply.size());
  uint8_t* p = m.data();
  auto put = [&p](const void* data, size_t n) {
    if (n > 0) std::memcpy(p, data, n);
    p += n;
  };
  const uint8_t zero = 0;
  const uint8_t length[2] = {static_cast<uint8_t>(config_id.size() >> 8), static_cast<uint8_t>(config_id.size())};
  put(kSignatureContext.data(), kSignatureContext.size());
  put(&zero, 1);
  put(report_data.data(), report_data.size());
  put(length, 2);
  put(config_id.data(), config_id.size());
  put(unsigned_reply.data(), unsigned_reply.size());
  return m;
}

std::vector<uint8_t> AppendSignature(std::vector<uint8_t> unsigned_reply, std::span<const uint8_t> signature) {
  PutU16(unsigned_reply, static_cast<uint16_t>(signature.size()));
  PutBytes(unsigned_reply, signature);
  return unsigned_reply;
}

bool Parse(std::span<const uint8_t> bytes, Reply* out, std::string* error) {
  Reader r(bytes);
  std::span<const uint8_t> magic;
  uint16_t version = 0, status = 0, key_len = 0, sig_len = 0;
  uint32_t payload_len = 0;
  if (!r.Take(kMagic.size(), &magic) || std::memcmp(magic.data(), kMagic.data(), kMagic.size()) != 0) {
    *error = "not a relayed reply (bad magic)";
    return false;
  }
  if (!r.U16(&version) || version != kVersion) {
    *error = "relayed reply version " + std::to_string(version) + " is not supported (this runtime reads 1)";
    return false;
  }
  if (!r.U16(&status) || status < 100 || status > 599) {
    *error = "the relayed reply has no valid status";
    return false;
  }
  if (!r.U16(&key_len) || !r.Take(key_len, &out->cas_spki)) {
    *error = "the relayed reply is cut short in the CAS key";
    return false;
  }
  if (!r.U32(&payload_len) || payload_len > kMaxPayload || !r.Take(payload_len, &out->payload)) {
    *error = "the relayed reply's payload is cut short or larger than allowed";
    return false;
  }
  out->unsigned_part = bytes.first(r.pos());
  if (!r.U16(&sig_len) || sig_len == 0 || sig_len > kMaxSignature || !r.Take(sig_len, &out->signature)) {
    *error = "the relayed reply's signature is missing or malformed";
    return false;
  }
  if (r.left() != 0) {
    *error = "the relayed reply has " + std::to_string(r.left()) + " bytes after its signature";
    return false;
  }
  out->status = status;
  return true;
}

CasSignature CheckCasSignature(std::span<const uint8_t> cas_spki, const Hash& pin, std::span<const uint8_t> message,
                               std::span<const uint8_t> signature) {
  Hash key_hash{};
  unsigned int len = 0;
  if (EVP_Digest(cas_spki.data(), cas_spki.size(), key_hash.data(), &len, EVP_sha256(), nullptr) != 1) {
    return CasSignature::kCannotCheck;
  }
  if (CRYPTO_memcmp(key_hash.data(), pin.data(), pin.size()) != 0) return CasSignature::kNotPinned;
  // The pin matched, so these are the CAS's own key bytes; a CAS key that
  // is not P-256 is not one this code can check.
  if (cas_spki.size() != kSpkiSize ||
      std::memcmp(cas_spki.data(), kP256SpkiPrefix.data(), kP256SpkiPrefix.size()) != 0) {
    return CasSignature::kNotP256;
  }
  // Built from the point, without OpenSSL 3.0's generic DER decoders (a
  // tenth of a millisecond each).
  hpke::KeyPtr key = hpke::PublicKeyFromPoint(cas_spki.subspan(kP256SpkiPrefix.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
  if (!key || !md || EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(), nullptr) != 1) {
    return CasSignature::kCannotCheck;
  }
  if (EVP_DigestVerify(md.get(), signature.data(), signature.size(), message.data(), message.size()) != 1) {
    return CasSignature::kInvalid;
  }
  return CasSignature::kValid;
}

bool Verify(const Reply& reply, const Hash& pin, const Hash& report_data, std::string_view config_id,
            std::string* error) {
  std::vector<uint8_t> message = SignedMessage(report_data, config_id, reply.unsigned_part);
  switch (CheckCasSignature(reply.cas_spki, pin, message, reply.signature)) {
    case CasSignature::kValid: return true;
    case CasSignature::kNotPinned:
      *error = "the reply is signed by a key that is not the pinned CAS key (CLOISTER_CAS_KEY)";
      return false;
    case CasSignature::kNotP256: *error = "the CAS key is not a P-256 key"; return false;
    case CasSignature::kCannotCheck: *error = "cannot set up the check of the CAS's signature"; return false;
    case CasSignature::kInvalid: *error = "the CAS's signature over the reply does not verify for this start"; return false;
  }
  return false;
}

std::vector<uint8_t> EncodeBatch(const std::vector<std::vector<uint8_t>>& replies) {
  size_t size = 4;
  for (const auto& r : replies) size += 4 + r.size();
  std::vector<uint8_t> b;
  b.reserve(size);
  PutU32(b, static_cast<uint32_t>(replies.size()));
  for (const auto& r : replies) {
    PutU32(b, static_cast<uint32_t>(r.size()));
    PutBytes(b, r);
  }
  return b;
}

bool DecodeBatch(std::span<const uint8_t> bytes, size_t expected, std::vector<std::span<const uint8_t>>* out,
                 std::string* error) {
  Reader r(bytes);
  uint32_t count = 0;
  if (!r.U32(&count)) {
    *error = "the batch of replies is truncated";
    return false;
  }
  if (count != expected) {
    *error = "the batch holds " + std::to_string(count) + " replies for " + std::to_string(expected) + " starts";
    return false;
  }
  out->clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t length = 0;
    std::span<const uint8_t> reply;
    if (!r.U32(&length) || length > r.left() || !r.Take(length, &reply)) {
      *error = "the batch of replies is truncated";
      return false;
    }
    out->push_back(reply);
  }
  if (r.left() != 0) {
    *error = "bytes follow the last reply of the batch";
    return false;
  }
  return true;
}

}  // namespace cloister::relay
