#include "attest/tpm_quote.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

#include "crypto/crypto.h"

namespace cloister::attest {
namespace {

// Largest inputs accepted before any parsing: far above what a TPM emits
// (a quote over 16 banks is a few hundred bytes; an RSA-3072 public area
// under 500), small enough that nothing is ever costly.
constexpr size_t kMaxAttestSize = 4096;
constexpr size_t kMaxSignatureSize = 1024;
constexpr size_t kMaxPublicSize = 2048;
// Part 2 bounds: TPM2B_NAME and TPM2B_DATA hold at most sizeof(TPMU_NAME)
// = sizeof(TPMT_HA) = 2 + 64 bytes, a TPM2B_DIGEST 64, an ECC parameter 66
// (P-521), an RSA key or signature 512 (RSA-4096).
constexpr size_t kMaxName = 66;
constexpr size_t kMaxData = 66;
constexpr size_t kMaxDigest = 64;
constexpr size_t kMaxEccParameter = 66;
constexpr size_t kMaxRsaBytes = 512;
constexpr uint32_t kMaxBanks = 16;      // TPM2_NUM_PCR_BANKS
constexpr uint8_t kMaxSelectBytes = 4;  // 32 PCRs
constexpr int kMaxChainLinks = 6;

std::string Hex16(uint16_t v) {
  char b[8];
  std::snprintf(b, sizeof(b), "0x%04x", static_cast<unsigned>(v));
  return b;
}

std::string Hex32(uint32_t v) {
  char b[12];
  std::snprintf(b, sizeof(b), "0x%08x", static_cast<unsigned>(v));
  return b;
}

// "sha256" for a bank or hash algorithm, else its number.
std::string AlgName(uint16_t alg) {
  switch (alg) {
    case kTpmAlgSha1: return "sha1";
    case kTpmAlgSha256: return "sha256";
    case kTpmAlgSha384: return "sha384";
    case kTpmAlgRsassa: return "RSASSA";
    case kTpmAlgRsapss: return "RSAPSS";
    case kTpmAlgEcdsa: return "ECDSA";
    case kTpmAlgRsa: return "RSA";
    case kTpmAlgEcc: return "ECC";
  }
  return Hex16(alg);
}

// The hashes this verifier computes with, by TPM_ALG_ID.
struct HashInfo {
  uint16_t alg;
  const char* openssl_name;
  size_t size;
  crypto::HashAlg hash;
};
constexpr HashInfo kHashes[] = {
    {kTpmAlgSha256, "SHA256", 32, crypto::HashAlg::kSha256},
    {kTpmAlgSha384, "SHA384", 48, crypto::HashAlg::kSha384},
};

const HashInfo* FindHash(uint16_t alg) {
  for (const HashInfo& h : kHashes) {
    if (h.alg == alg) return &h;
  }
  return nullptr;
}

const HashInfo& InfoOf(crypto::HashAlg hash) {
  return hash == crypto::HashAlg::kSha384 ? kHashes[1] : kHashes[0];
}

// One-shot digest; false only if OpenSSL fails.
bool Digest(const HashInfo& h, std::span<const uint8_t> data, Bytes& out) {
  out = crypto::Hash(h.hash, data);
  return out.size() == h.size;
}

// Reads the TPM's big-endian marshalling. The first failure is kept, with
// the field it happened at, and every later read returns zeros; callers
// check ok() once a structure (or a value they branch on) has been read.
class TpmReader {
 public:
  explicit TpmReader(std::span<const uint8_t> data) : data_(data) {}

  uint8_t U8(const char* what) {
    auto b = Take(1, what);
    return b.empty() ? 0 : b[0];
  }
  uint16_t U16(const char* what) {
    auto b = Take(2, what);
    return b.empty() ? 0 : static_cast<uint16_t>(b[0] << 8 | b[1]);
  }
  uint32_t U32(const char* what) {
    auto b = Take(4, what);
    if (b.empty()) return 0;
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
  }
  uint64_t U64(const char* what) {
    uint64_t hi = U32(what);
    uint64_t lo = U32(what);
    return hi << 32 | lo;
  }
  std::span<const uint8_t> Take(size_t n, const char* what) {
    if (!ok()) return {};
    if (n > data_.size() - pos_) {
      Fail(std::string("is truncated at ") + what + " (offset " + std::to_string(pos_) + ")");
      return {};
    }
    auto out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  // A TPM2B: u16 size, then that many bytes, at most `max`.
  std::span<const uint8_t> Sized(const char* what, size_t max) {
    size_t at = pos_;
    uint16_t n = U16(what);
    if (!ok()) return {};
    if (n > max) {
      Fail(std::string(what) + " size " + std::to_string(n) + " at offset " + std::to_string(at) +
           " exceeds its maximum of " + std::to_string(max));
      return {};
    }
    if (n > data_.size() - pos_) {
      Fail(std::string(what) + " size " + std::to_string(n) + " at offset " + std::to_string(at) +
           " runs past the end (" + std::to_string(data_.size() - pos_) + " bytes left)");
      return {};
    }
    return Take(n, what);
  }

  void Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t position() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  std::string error_;
};

Bytes ToBytes(std::span<const uint8_t> s) { return Bytes(s.begin(), s.end()); }

void PutBe16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void PutBe32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
void PutTpm2b(Bytes& out, std::span<const uint8_t> data) {
  PutBe16(out, static_cast<uint16_t>(data.size()));
  out.insert(out.end(), data.begin(), data.end());
}

// TPML_PCR_SELECTION.
void ReadPcrSelection(TpmReader& r, std::vector<TpmPcrSelection>& out) {
  uint32_t count = r.U32("the PCR selection count");
  if (!r.ok()) return;
  if (count > kMaxBanks) {
    r.Fail("PCR selection count " + std::to_string(count) + " exceeds " + std::to_string(kMaxBanks));
    return;
  }
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    TpmPcrSelection s;
    s.hash = r.U16("a PCR selection's hash");
    uint8_t size = r.U8("a PCR selection's sizeofSelect");
    if (!r.ok()) return;
    if (size > kMaxSelectBytes) {
      r.Fail("PCR selection sizeofSelect " + std::to_string(size) + " exceeds " + std::to_string(kMaxSelectBytes));
      return;
    }
    auto bitmap = r.Take(size, "a PCR selection's bitmap");
    if (!r.ok()) return;
    for (uint32_t pcr = 0; pcr < 8u * size; ++pcr) {
      if (bitmap[pcr / 8] & (1u << (pcr % 8))) s.pcrs.push_back(pcr);
    }
    for (const TpmPcrSelection& earlier : out) {
      if (earlier.hash == s.hash) {
        r.Fail("PCR selection names bank " + AlgName(s.hash) + " twice");
        return;
      }
    }
    out.push_back(std::move(s));
  }
}

Status ReaderError(std::string_view structure, const TpmReader& r) {
  return IntegrityError("tpm: " + std::string(structure) + " " + r.error());
}

// Deleters for the OpenSSL objects this file uses beyond crypto/ossl_ptr.h.
struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
  void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
  void operator()(EVP_CIPHER* p) const { EVP_CIPHER_free(p); }
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

// Left-pads a big-endian coordinate to `size` bytes; empty if longer.
Bytes PadTo(std::span<const uint8_t> v, size_t size) {
  if (v.size() > size) return {};
  Bytes out(size - v.size(), 0);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

// Drops leading zero bytes (keeps at least one byte).
std::span<const uint8_t> StripZeros(std::span<const uint8_t> v) {
  while (v.size() > 1 && v[0] == 0) v = v.subspan(1);
  return v;
}

std::string AttributeNames(uint32_t bits) {
  static constexpr std::pair<uint32_t, const char*> kNames[] = {
      {kTpmaFixedTpm, "fixedTPM"},     {kTpmaFixedParent, "fixedParent"},
      {kTpmaSensitiveDataOrigin, "sensitiveDataOrigin"}, {kTpmaRestricted, "restricted"},
      {kTpmaSign, "sign"},             {kTpmaDecrypt, "decrypt"},
  };
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if (bits & bit) out += (out.empty() ? "" : ", ") + std::string(name);
  }
  return out;
}

// Reads a scheme selector and, for schemes that have one, its hash (and
// ECDAA's count). Part 2 gives RSAES and NULL no details.
void ReadScheme(TpmReader& r, uint16_t& scheme, uint16_t& hash) {
  scheme = r.U16("the scheme");
  hash = 0;
  if (!r.ok() || scheme == kTpmAlgNull || scheme == kTpmAlgRsaes) return;
  hash = r.U16("the scheme's hash");
  if (scheme == kTpmAlgEcdaa) (void)r.U16("the ECDAA count");
}

}  // namespace

// ---- parsers ----

StatusOr<TpmsAttest> ParseTpmsAttest(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxAttestSize) {
    return IntegrityError("tpm: TPMS_ATTEST is " + std::to_string(bytes.size()) + " bytes, more than " +
                          std::to_string(kMaxAttestSize));
  }
  TpmReader r(bytes);
  uint32_t magic = r.U32("magic");
  uint16_t type = r.U16("type");
  if (!r.ok()) return ReaderError("TPMS_ATTEST", r);
  if (magic != kTpmGeneratedValue) {
    return IntegrityError("tpm: TPMS_ATTEST magic is " + Hex32(magic) + ", not TPM_GENERATED_VALUE (0xff544347)");
  }
  if (type != kTpmStAttestQuote) {
    return IntegrityError("tpm: TPMS_ATTEST type is " + Hex16(type) + ", not TPM_ST_ATTEST_QUOTE (0x8018)");
  }
  TpmsAttest a;
  a.qualified_signer = ToBytes(r.Sized("qualifiedSigner", kMaxName));
  a.extra_data = ToBytes(r.Sized("extraData", kMaxData));
  a.clock = r.U64("clockInfo.clock");
  a.reset_count = r.U32("clockInfo.resetCount");
  a.restart_count = r.U32("clockInfo.restartCount");
  uint8_t safe = r.U8("clockInfo.safe");
  if (r.ok() && safe > 1) r.Fail("clockInfo.safe is " + std::to_string(safe) + ", neither YES nor NO");
  a.safe = safe == 1;
  a.firmware_version = r.U64("firmwareVersion");
  ReadPcrSelection(r, a.pcr_selection);
  a.pcr_digest = ToBytes(r.Sized("pcrDigest", kMaxDigest));
  if (!r.ok()) return ReaderError("TPMS_ATTEST", r);
  if (r.remaining() != 0) {
    return IntegrityError("tpm: TPMS_ATTEST has " + std::to_string(r.remaining()) + " trailing bytes");
  }
  return a;
}

StatusOr<TpmSignature> ParseTpmtSignature(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxSignatureSize) {
    return IntegrityError("tpm: TPMT_SIGNATURE is " + std::to_string(bytes.size()) + " bytes, more than " +
                          std::to_string(kMaxSignatureSize));
  }
  TpmReader r(bytes);
  TpmSignature s;
  s.sig_alg = r.U16("sigAlg");
  uint16_t hash = r.U16("the hash");
  if (!r.ok()) return ReaderError("TPMT_SIGNATURE", r);
  if (s.sig_alg != kTpmAlgEcdsa && s.sig_alg != kTpmAlgRsassa && s.sig_alg != kTpmAlgRsapss) {
    return IntegrityError("tpm: signature algorithm " + Hex16(s.sig_alg) +
                          " is not supported (ECDSA, RSASSA or RSAPSS)");
  }
  const HashInfo* h = FindHash(hash);
  if (h == nullptr) {
    return IntegrityError("tpm: signature hash " + AlgName(hash) + " is not supported (sha256 or sha384)");
  }
  s.hash = h->hash;
  if (s.sig_alg == kTpmAlgEcdsa) {
    s.ecdsa_r = ToBytes(r.Sized("signatureR", kMaxEccParameter));
    s.ecdsa_s = ToBytes(r.Sized("signatureS", kMaxEccParameter));
    if (r.ok() && (s.ecdsa_r.empty() || s.ecdsa_s.empty())) r.Fail("has an empty ECDSA r or s");
  } else {
    s.rsa_signature = ToBytes(r.Sized("the RSA signature", kMaxRsaBytes));
    if (r.ok() && s.rsa_signature.empty()) r.Fail("has an empty RSA signature");
  }
  if (!r.ok()) return ReaderError("TPMT_SIGNATURE", r);
  if (r.remaining() != 0) {
    return IntegrityError("tpm: TPMT_SIGNATURE has " + std::to_string(r.remaining()) + " trailing bytes");
  }
  return s;
}

StatusOr<TpmPublic> ParseTpmtPublic(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxPublicSize) {
    return IntegrityError("tpm: TPMT_PUBLIC is " + std::to_string(bytes.size()) + " bytes, more than " +
                          std::to_string(kMaxPublicSize));
  }
  TpmReader r(bytes);
  TpmPublic p;
  p.type = r.U16("type");
  p.name_alg = r.U16("nameAlg");
  p.object_attributes = r.U32("objectAttributes");
  p.auth_policy = ToBytes(r.Sized("authPolicy", kMaxDigest));
  if (!r.ok()) return ReaderError("TPMT_PUBLIC", r);
  if (p.type != kTpmAlgRsa && p.type != kTpmAlgEcc) {
    return IntegrityError("tpm: TPMT_PUBLIC type " + Hex16(p.type) + " is not supported (RSA or ECC)");
  }
  const HashInfo* name_hash = FindHash(p.name_alg);
  if (name_hash == nullptr) {
    return IntegrityError("tpm: TPMT_PUBLIC nameAlg " + AlgName(p.name_alg) + " is not supported (sha256 or sha384)");
  }
  // TPMT_SYM_DEF_OBJECT: an algorithm, and for anything but NULL its key
  // size and mode.
  p.symmetric_alg = r.U16("the symmetric algorithm");
  if (r.ok() && p.symmetric_alg != kTpmAlgNull) {
    p.symmetric_bits = r.U16("the symmetric key size");
    p.symmetric_mode = r.U16("the symmetric mode");
  }
  ReadScheme(r, p.scheme, p.scheme_hash);
  std::shared_ptr<const crypto::PublicKey> key;
  if (p.type == kTpmAlgRsa) {
    p.rsa_bits = r.U16("keyBits");
    uint32_t exponent = r.U32("exponent");
    p.rsa_modulus = ToBytes(r.Sized("the RSA modulus", kMaxRsaBytes));
    if (!r.ok()) return ReaderError("TPMT_PUBLIC", r);
    if (p.rsa_bits != 2048 && p.rsa_bits != 3072) {
      return IntegrityError("tpm: RSA key size " + std::to_string(p.rsa_bits) + " is not supported (2048 or 3072)");
    }
    p.rsa_exponent = exponent == 0 ? 65537 : exponent;
    if (p.rsa_exponent < 3 || p.rsa_exponent % 2 == 0) {
      return IntegrityError("tpm: RSA exponent " + std::to_string(p.rsa_exponent) + " is not valid");
    }
    if (p.rsa_modulus.size() != p.rsa_bits / 8u || (p.rsa_modulus[0] & 0x80) == 0) {
      return IntegrityError("tpm: the RSA modulus is not " + std::to_string(p.rsa_bits) + " bits");
    }
    auto k = crypto::PublicKey::FromRsa(p.rsa_modulus, p.rsa_exponent);
    if (!k.ok()) return IntegrityError("tpm: the RSA public key does not load: " + k.status().message());
    key = std::move(*k);
  } else {
    p.ecc_curve = r.U16("curveID");
    uint16_t kdf_hash = 0;
    ReadScheme(r, p.ecc_kdf, kdf_hash);
    p.ecc_x = ToBytes(r.Sized("the point's x", kMaxEccParameter));
    p.ecc_y = ToBytes(r.Sized("the point's y", kMaxEccParameter));
    if (!r.ok()) return ReaderError("TPMT_PUBLIC", r);
    const char* curve = p.ecc_curve == kTpmEccNistP256 ? "P-256" : p.ecc_curve == kTpmEccNistP384 ? "P-384" : nullptr;
    if (curve == nullptr) {
      return IntegrityError("tpm: ECC curve " + Hex16(p.ecc_curve) + " is not supported (NIST P-256 or P-384)");
    }
    size_t size = p.ecc_curve == kTpmEccNistP256 ? 32 : 48;
    // Coordinates may come without their leading zero bytes.
    Bytes x = PadTo(p.ecc_x, size), y = PadTo(p.ecc_y, size);
    if (p.ecc_x.empty() || p.ecc_y.empty() || x.empty() || y.empty()) {
      return IntegrityError(std::string("tpm: the ECC point's coordinates are not ") + curve + " coordinates");
    }
    auto k = crypto::PublicKey::FromEcPoint(curve, x, y);
    if (!k.ok()) return IntegrityError("tpm: the ECC public key does not load: " + k.status().message());
    key = std::move(*k);
  }
  if (r.remaining() != 0) {
    return IntegrityError("tpm: TPMT_PUBLIC has " + std::to_string(r.remaining()) + " trailing bytes");
  }
  p.key = std::move(key);
  p.tpmt_public = ToBytes(bytes);
  Bytes digest;
  if (!Digest(*name_hash, bytes, digest)) return InternalError("tpm: cannot hash the public area");
  PutBe16(p.name, p.name_alg);
  p.name.insert(p.name.end(), digest.begin(), digest.end());
  return p;
}

StatusOr<TpmPublic> ParseTpmPublic(std::span<const uint8_t> bytes) {
  if (bytes.size() < 2) return IntegrityError("tpm: TPM2B_PUBLIC is truncated at its size");
  size_t size = size_t{bytes[0]} << 8 | bytes[1];
  if (size != bytes.size() - 2) {
    return IntegrityError("tpm: TPM2B_PUBLIC says " + std::to_string(size) + " bytes but holds " +
                          std::to_string(bytes.size() - 2));
  }
  return ParseTpmtPublic(bytes.subspan(2));
}

Status CheckAkAttributes(const TpmPublic& ak) {
  uint32_t missing = kTpmAkRequiredAttributes & ~ak.object_attributes;
  if (missing != 0) {
    return IntegrityError("tpm: the AK is not a restricted signing key created in the TPM (missing " +
                          AttributeNames(missing) + ")");
  }
  if (ak.object_attributes & kTpmaDecrypt) return IntegrityError("tpm: the AK is a decryption key too");
  return Status::Ok();
}

// ---- tpm2-tools' PCR file ----

StatusOr<TpmPcrValues> ParseTpm2ToolsPcrsFile(std::span<const uint8_t> file) {
  // Layout of tpm2-tools' structures on a little-endian host (see the header).
  constexpr size_t kSelectionSlot = 8, kSelectionBytes = 4 + kMaxBanks * kSelectionSlot;  // 132
  constexpr size_t kDigestSlot = 2 + 64, kDigestsPerList = 8;
  constexpr size_t kListBytes = 4 + kDigestsPerList * kDigestSlot;  // 532
  constexpr uint32_t kMaxLists = 32;
  auto fail = [](const std::string& why) { return IntegrityError("tpm: PCR file (tpm2-tools) " + why); };
  auto le16 = [&](size_t at) { return static_cast<uint16_t>(file[at] | file[at + 1] << 8); };
  auto le32 = [&](size_t at) {
    return uint32_t{file[at]} | uint32_t{file[at + 1]} << 8 | uint32_t{file[at + 2]} << 16 |
           uint32_t{file[at + 3]} << 24;
  };
  if (file.size() < kSelectionBytes + 4) return fail("is too short");
  uint32_t banks = le32(0);
  if (banks > kMaxBanks) return fail("selects " + std::to_string(banks) + " banks, more than 16");
  std::vector<TpmPcrSelection> selection;
  for (uint32_t i = 0; i < banks; ++i) {
    size_t at = 4 + i * kSelectionSlot;
    TpmPcrSelection s;
    s.hash = le16(at);
    uint8_t size = file[at + 2];
    if (size > kMaxSelectBytes) return fail("has a bank bitmap of " + std::to_string(size) + " bytes");
    for (uint32_t pcr = 0; pcr < 8u * size; ++pcr) {
      if (file[at + 3 + pcr / 8] & (1u << (pcr % 8))) s.pcrs.push_back(pcr);
    }
    for (const TpmPcrSelection& earlier : selection) {
      if (earlier.hash == s.hash) return fail("names bank " + AlgName(s.hash) + " twice");
    }
    selection.push_back(std::move(s));
  }
  uint32_t lists = le32(kSelectionBytes);
  if (lists > kMaxLists) return fail("has " + std::to_string(lists) + " digest lists, more than 32");
  if (file.size() != kSelectionBytes + 4 + lists * kListBytes) {
    return fail("is " + std::to_string(file.size()) + " bytes, not " +
                std::to_string(kSelectionBytes + 4 + lists * kListBytes) + " for " + std::to_string(lists) +
                " digest lists");
  }
  std::vector<std::span<const uint8_t>> digests;
  for (uint32_t l = 0; l < lists; ++l) {
    size_t at = kSelectionBytes + 4 + l * kListBytes;
    uint32_t count = le32(at);
    if (count > kDigestsPerList) return fail("has a digest list of " + std::to_string(count) + " digests");
    for (uint32_t d = 0; d < count; ++d) {
      size_t slot = at + 4 + d * kDigestSlot;
      uint16_t size = le16(slot);
      if (size > 64) return fail("has a digest of " + std::to_string(size) + " bytes");
      digests.push_back(file.subspan(slot + 2, size));
    }
  }
  TpmPcrValues out;
  size_t next = 0;
  for (const TpmPcrSelection& s : selection) {
    if (s.pcrs.empty()) continue;
    std::map<uint32_t, Bytes>* bank = s.hash == kTpmAlgSha256 ? &out.sha256
                                      : s.hash == kTpmAlgSha384 ? &out.sha384
                                                                : nullptr;
    if (bank == nullptr) return fail("holds bank " + AlgName(s.hash) + ", which is not supported (sha256 or sha384)");
    size_t size = FindHash(s.hash)->size;
    for (uint32_t pcr : s.pcrs) {
      if (next >= digests.size()) return fail("holds fewer values than its selection names");
      if (digests[next].size() != size) {
        return fail("holds a " + std::to_string(digests[next].size()) + "-byte value for " + AlgName(s.hash) +
                    " PCR " + std::to_string(pcr));
      }
      (*bank)[pcr] = ToBytes(digests[next++]);
    }
  }
  if (next != digests.size()) return fail("holds more values than its selection names");
  return out;
}

// ---- quote verification ----

namespace {

Status VerifySignature(const crypto::PublicKey& ak, const TpmQuoteInput& in, crypto::HashAlg& hash,
                       std::string& described) {
  const int key_type = EVP_PKEY_get_base_id(ak.raw());
  const std::string bad = "tpm: the quote signature does not verify with the AK";
  if (in.signature_format == TpmSignatureFormat::kEcdsaDer) {
    hash = in.der_signature_hash;
    if (key_type != EVP_PKEY_EC) return IntegrityError("tpm: the signature is ECDSA but the AK is " + ak.Describe());
    if (!ak.VerifyEcdsaDer(hash, in.attest, in.signature).ok()) return IntegrityError(bad);
    described = "ECDSA (DER)";
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(TpmSignature sig, ParseTpmtSignature(in.signature));
  hash = sig.hash;
  described = AlgName(sig.sig_alg);
  if (sig.sig_alg == kTpmAlgEcdsa) {
    if (key_type != EVP_PKEY_EC) return IntegrityError("tpm: the signature is ECDSA but the AK is " + ak.Describe());
    // A TPM drops leading zero bytes of r and s, or keeps them; either way
    // the values are what count.
    if (!ak.VerifyEcdsaRaw(hash, in.attest, StripZeros(sig.ecdsa_r), StripZeros(sig.ecdsa_s)).ok()) {
      return IntegrityError(bad);
    }
    return Status::Ok();
  }
  if (key_type != EVP_PKEY_RSA && key_type != EVP_PKEY_RSA_PSS) {
    return IntegrityError("tpm: the signature is " + AlgName(sig.sig_alg) + " but the AK is " + ak.Describe());
  }
  if (sig.sig_alg == kTpmAlgRsassa) {
    if (!ak.VerifyRsaPkcs1(hash, in.attest, sig.rsa_signature).ok()) return IntegrityError(bad);
    return Status::Ok();
  }
  // RSASSA-PSS: the reference TPM uses a salt as long as the digest; some
  // TPMs use the longest salt the key allows (emLen - hLen - 2). PSS is
  // secure with either, so both are accepted.
  if (ak.VerifyRsaPss(hash, in.attest, sig.rsa_signature).ok()) return Status::Ok();
  int bits = EVP_PKEY_get_bits(ak.raw());
  int max_salt = (bits - 1 + 7) / 8 - static_cast<int>(InfoOf(hash).size) - 2;
  if (max_salt > 0 && ak.VerifyRsaPss(hash, in.attest, sig.rsa_signature, max_salt).ok()) return Status::Ok();
  return IntegrityError(bad);
}

std::string PcrList(const std::vector<uint32_t>& pcrs) {
  std::string out;
  for (uint32_t p : pcrs) out += (out.empty() ? "" : ",") + std::to_string(p);
  return out;
}

}  // namespace

StatusOr<HardwareVerdict> VerifyTpmQuote(const TpmQuoteInput& in) {
  HardwareVerdict v;
  v.type = "tpm";
  if ((in.ak_key != nullptr) == !in.ak_public.empty()) {
    return InvalidArgument("tpm: give the AK either as a public key or as its TPM2B_PUBLIC");
  }
  if (in.nonce.empty()) return InvalidArgument("tpm: a quote is verified against a nonce; none was given");

  ASSIGN_OR_RETURN(TpmsAttest a, ParseTpmsAttest(in.attest));
  v.checks.push_back("TPMS_ATTEST: magic TPM_GENERATED_VALUE, type TPM_ST_ATTEST_QUOTE, lengths in bounds");

  const crypto::PublicKey* ak = in.ak_key;
  TpmPublic ak_public;
  if (ak == nullptr) {
    ASSIGN_OR_RETURN(ak_public, ParseTpmPublic(in.ak_public));
    RETURN_IF_ERROR(CheckAkAttributes(ak_public));
    ak = ak_public.key.get();
    v.checks.push_back("AK public area: restricted signing key made in the TPM (Name " + HexEncode(ak_public.name) +
                       ")");
  }

  crypto::HashAlg hash = crypto::HashAlg::kSha256;
  std::string scheme;
  RETURN_IF_ERROR(VerifySignature(*ak, in, hash, scheme));
  const HashInfo& h = InfoOf(hash);
  v.checks.push_back("quote signature by the AK (" + ak->Describe() + ", " + scheme + " with " +
                     AlgName(h.alg) + ") over the TPMS_ATTEST");

  if (!ConstantTimeEquals(a.extra_data, in.nonce)) return IntegrityError("tpm: extraData is not the expected nonce");
  v.checks.push_back("extraData equals the expected nonce");

  // The selection must name exactly the supplied PCRs: every selected PCR
  // has a value, and no supplied value goes unquoted (a node must not pass
  // off a value the TPM never vouched for).
  Bytes concatenated;
  std::string selected;
  for (const TpmPcrSelection& s : a.pcr_selection) {
    if (s.pcrs.empty()) continue;
    const std::map<uint32_t, Bytes>* bank = s.hash == kTpmAlgSha256   ? &in.pcrs.sha256
                                            : s.hash == kTpmAlgSha384 ? &in.pcrs.sha384
                                                                      : nullptr;
    if (bank == nullptr) {
      return IntegrityError("tpm: the quote selects PCRs of bank " + AlgName(s.hash) +
                            ", which is not supported (sha256 or sha384)");
    }
    const size_t size = FindHash(s.hash)->size;
    for (uint32_t pcr : s.pcrs) {
      auto it = bank->find(pcr);
      if (it == bank->end()) {
        return IntegrityError("tpm: the quote selects " + AlgName(s.hash) + " PCR " + std::to_string(pcr) +
                              ", whose value was not supplied");
      }
      if (it->second.size() != size) {
        return IntegrityError("tpm: the supplied " + AlgName(s.hash) + " PCR " + std::to_string(pcr) + " value is " +
                              std::to_string(it->second.size()) + " bytes, not " + std::to_string(size));
      }
      concatenated.insert(concatenated.end(), it->second.begin(), it->second.end());
    }
    selected += (selected.empty() ? "" : "; ") + AlgName(s.hash) + ": " + PcrList(s.pcrs);
  }
  const std::pair<uint16_t, const std::map<uint32_t, Bytes>*> supplied[] = {{kTpmAlgSha256, &in.pcrs.sha256},
                                                                            {kTpmAlgSha384, &in.pcrs.sha384}};
  for (const auto& [alg, bank] : supplied) {
    for (const auto& [pcr, value] : *bank) {
      bool quoted = false;
      for (const TpmPcrSelection& s : a.pcr_selection) {
        if (s.hash == alg && std::binary_search(s.pcrs.begin(), s.pcrs.end(), pcr)) quoted = true;
      }
      if (!quoted) {
        return IntegrityError("tpm: " + AlgName(alg) + " PCR " + std::to_string(pcr) +
                              " was supplied but the quote does not select it");
      }
    }
  }
  if (selected.empty()) {
    v.warnings.push_back("the quote selects no PCRs: it says nothing about how the node booted");
    selected = "none";
  }
  v.checks.push_back("PCR selection covers exactly the supplied PCRs (" + selected + ")");

  Bytes digest;
  if (!Digest(h, concatenated, digest)) return InternalError("tpm: cannot hash the PCR values");
  if (!ConstantTimeEquals(digest, a.pcr_digest)) {
    return IntegrityError("tpm: pcrDigest does not match the supplied PCR values (" + AlgName(h.alg) + ")");
  }
  v.checks.push_back("pcrDigest equals " + AlgName(h.alg) + " of the supplied PCR values in selection order");

  v.claims.push_back({"nonce", HexEncode(a.extra_data)});
  v.claims.push_back({"pcr_digest", HexEncode(a.pcr_digest)});
  for (const auto& [pcr, value] : in.pcrs.sha256) v.claims.push_back({"pcr" + std::to_string(pcr), HexEncode(value)});
  for (const auto& [pcr, value] : in.pcrs.sha384) {
    v.claims.push_back({"pcr" + std::to_string(pcr) + "_sha384", HexEncode(value)});
  }
  crypto::Digest ak_id = crypto::Sha256(ak->SpkiDer());
  v.claims.push_back({"ak", HexEncode(ak_id)});
  v.claims.push_back({"clock", std::to_string(a.clock)});
  v.claims.push_back({"reset_count", std::to_string(a.reset_count)});
  v.claims.push_back({"restart_count", std::to_string(a.restart_count)});
  v.claims.push_back({"firmware", std::to_string(a.firmware_version)});
  if (!a.safe) {
    v.warnings.push_back("the TPM does not call its clock safe (clockInfo.safe = NO): clock may have gone back");
  }
  return v;
}

// ---- the EK and its certificate ----

StatusOr<std::unique_ptr<crypto::PublicKey>> VerifyEkCertificate(
    const crypto::Certificate& ek_certificate,
    std::span<const std::shared_ptr<const crypto::Certificate>> intermediates,
    std::span<const std::shared_ptr<const crypto::Certificate>> trusted_roots, int64_t now_unix) {
  if (trusted_roots.empty()) return InvalidArgument("tpm: no trusted EK CA certificates given");
  RETURN_IF_ERROR(ek_certificate.CheckValidAt(now_unix).WithContext("tpm: EK certificate"));
  const crypto::Certificate* current = &ek_certificate;
  std::vector<const crypto::Certificate*> used;
  for (int link = 0; link < kMaxChainLinks; ++link) {
    for (const auto& root : trusted_roots) {
      if (root != nullptr && current->VerifyIssuedBy(*root).ok()) {
        RETURN_IF_ERROR(root->CheckValidAt(now_unix).WithContext("tpm: EK CA certificate"));
        auto key = ek_certificate.Key();
        if (!key.ok()) return IntegrityError("tpm: the EK certificate's key does not load: " + key.status().message());
        return std::move(*key);
      }
    }
    const crypto::Certificate* next = nullptr;
    for (const auto& c : intermediates) {
      if (c == nullptr || !c->is_ca() || c.get() == current ||
          std::find(used.begin(), used.end(), c.get()) != used.end()) {
        continue;
      }
      if (current->VerifyIssuedBy(*c).ok()) {
        next = c.get();
        break;
      }
    }
    if (next == nullptr) {
      std::string where = current == &ek_certificate ? "" : " (the chain ends at \"" + current->name() + "\")";
      return IntegrityError("tpm: the EK certificate \"" + ek_certificate.name() +
                            "\" does not chain to a trusted EK CA" + where);
    }
    RETURN_IF_ERROR(next->CheckValidAt(now_unix).WithContext("tpm: EK intermediate certificate"));
    used.push_back(next);
    current = next;
  }
  return IntegrityError("tpm: the EK certificate chain is longer than " + std::to_string(kMaxChainLinks) + " links");
}

Status CheckEkMatchesCertificate(const TpmPublic& ek, const crypto::PublicKey& certified_key) {
  if (ek.key == nullptr) return InvalidArgument("tpm: the EK public area has no key");
  Bytes a = ek.key->SpkiDer(), b = certified_key.SpkiDer();
  if (a.empty() || !ConstantTimeEquals(a, b)) {
    return IntegrityError("tpm: the EK public area's key is not the EK certificate's key");
  }
  return Status::Ok();
}

// ---- credential activation ----

namespace {

// KDFa (Part 1, "Key Derivation Functions"): SP 800-108 counter mode with
// HMAC: K(i) = HMAC(key, [i]32 || label || 0x00 || contextU || contextV ||
// [bits]32), i from 1, concatenated and cut to `bits` (a multiple of 8).
StatusOr<SecretBytes> Kdfa(const HashInfo& h, const SecretBytes& key, std::string_view label,
                           std::span<const uint8_t> context_u, std::span<const uint8_t> context_v, size_t bits) {
  Ptr<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  Ptr<EVP_MAC_CTX> ctx(mac ? EVP_MAC_CTX_new(mac.get()) : nullptr);
  if (!ctx) {
    ERR_clear_error();
    return InternalError("tpm: HMAC is not available");
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(h.openssl_name), 0),
      OSSL_PARAM_construct_end(),
  };
  const size_t bytes = bits / 8;
  SecretBytes out(bytes);
  uint8_t block[EVP_MAX_MD_SIZE];
  Bytes fixed;  // [i] is prepended per block
  fixed.insert(fixed.end(), label.begin(), label.end());
  fixed.push_back(0);
  fixed.insert(fixed.end(), context_u.begin(), context_u.end());
  fixed.insert(fixed.end(), context_v.begin(), context_v.end());
  PutBe32(fixed, static_cast<uint32_t>(bits));
  bool ok = true;
  size_t done = 0;
  for (uint32_t i = 1; ok && done < bytes; ++i) {
    Bytes counter;
    PutBe32(counter, i);
    size_t len = 0;
    auto k = key.UnsafeBytes();
    ok = EVP_MAC_init(ctx.get(), k.data(), k.size(), params) == 1 &&
         EVP_MAC_update(ctx.get(), counter.data(), counter.size()) == 1 &&
         EVP_MAC_update(ctx.get(), fixed.data(), fixed.size()) == 1 &&
         EVP_MAC_final(ctx.get(), block, &len, sizeof(block)) == 1 && len == h.size;
    if (ok) {
      size_t n = std::min(len, bytes - done);
      std::memcpy(out.UnsafeMutableBytes().data() + done, block, n);
      done += n;
    }
  }
  OPENSSL_cleanse(block, sizeof(block));
  ERR_clear_error();
  if (!ok) return InternalError("tpm: KDFa failed");
  return out;
}

// KDFe (Part 1, "KDFe for ECDH"): SP 800-56A concatenation KDF with the
// hash: K(i) = H([i]32 || Z || use || 0x00 || partyUInfo || partyVInfo).
StatusOr<SecretBytes> Kdfe(const HashInfo& h, const SecretBytes& z, std::string_view use,
                           std::span<const uint8_t> party_u, std::span<const uint8_t> party_v, size_t bits) {
  const size_t bytes = bits / 8;
  SecretBytes out(bytes);
  size_t done = 0;
  for (uint32_t i = 1; done < bytes; ++i) {
    Bytes head;
    PutBe32(head, i);
    auto zb = z.UnsafeBytes();
    SecretBytes block_input(head.size() + zb.size() + use.size() + 1 + party_u.size() + party_v.size());
    uint8_t* p = block_input.UnsafeMutableBytes().data();
    std::memcpy(p, head.data(), head.size());
    p += head.size();
    std::memcpy(p, zb.data(), zb.size());
    p += zb.size();
    std::memcpy(p, use.data(), use.size());
    p += use.size();
    *p++ = 0;
    if (!party_u.empty()) std::memcpy(p, party_u.data(), party_u.size());
    p += party_u.size();
    if (!party_v.empty()) std::memcpy(p, party_v.data(), party_v.size());
    Bytes block;
    if (!Digest(h, block_input.UnsafeBytes(), block)) return InternalError("tpm: KDFe failed");
    size_t n = std::min(block.size(), bytes - done);
    std::memcpy(out.UnsafeMutableBytes().data() + done, block.data(), n);
    done += n;
    OPENSSL_cleanse(block.data(), block.size());
  }
  return out;
}

// The seed, encrypted to an RSA EK with OAEP (the EK's nameAlg for the
// hash and MGF1, label "IDENTITY" with its terminating zero byte).
StatusOr<Bytes> OaepEncrypt(const crypto::PublicKey& ek, const HashInfo& h, const SecretBytes& seed) {
  static constexpr char kLabel[] = "IDENTITY";  // sizeof includes the zero byte
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek.raw(), nullptr));
  void* label = OPENSSL_memdup(kLabel, sizeof(kLabel));
  const EVP_MD* md = h.alg == kTpmAlgSha384 ? EVP_sha384() : EVP_sha256();
  bool ok = ctx && label != nullptr && EVP_PKEY_encrypt_init(ctx.get()) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) == 1;
  if (ok) {
    ok = EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof(kLabel)) == 1;
    if (ok) label = nullptr;  // owned by ctx now
  }
  OPENSSL_free(label);
  Bytes out;
  size_t len = 0;
  auto s = seed.UnsafeBytes();
  if (ok) ok = EVP_PKEY_encrypt(ctx.get(), nullptr, &len, s.data(), s.size()) == 1;
  if (ok) {
    out.resize(len);
    ok = EVP_PKEY_encrypt(ctx.get(), out.data(), &len, s.data(), s.size()) == 1;
    out.resize(len);
  }
  ERR_clear_error();
  if (!ok) return InternalError("tpm: RSA-OAEP encryption to the EK failed");
  return out;
}

// ECDH with a fresh key on the EK's curve: the seed from KDFe("IDENTITY",
// partyUInfo = the ephemeral x, partyVInfo = the EK's x), and the ephemeral
// point marshalled as TPMS_ECC_POINT.
Status EcdhSeed(const TpmPublic& ek, const HashInfo& h, SecretBytes& seed, Bytes& point) {
  const char* curve = ek.ecc_curve == kTpmEccNistP384 ? "P-384" : "P-256";
  const size_t size = ek.ecc_curve == kTpmEccNistP384 ? 48 : 32;
  Ptr<EVP_PKEY> eph(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  Ptr<EVP_PKEY_CTX> ctx(eph ? EVP_PKEY_CTX_new_from_pkey(nullptr, eph.get(), nullptr) : nullptr);
  size_t z_len = 0;
  bool ok = ctx && EVP_PKEY_derive_init(ctx.get()) == 1 && EVP_PKEY_derive_set_peer(ctx.get(), ek.key->raw()) == 1 &&
            EVP_PKEY_derive(ctx.get(), nullptr, &z_len) == 1 && z_len == size;
  SecretBytes z(size);
  if (ok) ok = EVP_PKEY_derive(ctx.get(), z.UnsafeMutableBytes().data(), &z_len) == 1 && z_len == size;
  BIGNUM* x_bn = nullptr;
  BIGNUM* y_bn = nullptr;
  if (ok) {
    ok = EVP_PKEY_get_bn_param(eph.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x_bn) == 1 &&
         EVP_PKEY_get_bn_param(eph.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y_bn) == 1;
  }
  Ptr<BIGNUM> x_owner(x_bn), y_owner(y_bn);
  Bytes x(size), y(size);
  if (ok) {
    ok = BN_bn2binpad(x_bn, x.data(), static_cast<int>(size)) == static_cast<int>(size) &&
         BN_bn2binpad(y_bn, y.data(), static_cast<int>(size)) == static_cast<int>(size);
  }
  ERR_clear_error();
  if (!ok) return InternalError("tpm: ECDH with the EK failed");
  ASSIGN_OR_RETURN(seed, Kdfe(h, z, "IDENTITY", x, ek.ecc_x, h.size * 8));
  point.clear();
  PutTpm2b(point, x);
  PutTpm2b(point, y);
  return Status::Ok();
}

// AES-CFB (full-block feedback) with a zero IV, as Part 1 prescribes for
// the credential: each key encrypts exactly one message.
StatusOr<Bytes> AesCfbEncrypt(const SecretBytes& key, std::span<const uint8_t> plaintext) {
  const char* name = key.size() == 32 ? "AES-256-CFB" : "AES-128-CFB";
  Ptr<EVP_CIPHER> cipher(EVP_CIPHER_fetch(nullptr, name, nullptr));
  Ptr<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  uint8_t iv[16] = {};
  // A credential is at most a digest and a few bytes; the bound also tells
  // the compiler the size below cannot wrap.
  if (plaintext.size() > 1024) return InternalError("tpm: AES-CFB input too long");
  Bytes out(plaintext.size() + 16);
  int len = 0, tail = 0;
  bool ok = cipher && ctx &&
            EVP_EncryptInit_ex2(ctx.get(), cipher.get(), key.UnsafeBytes().data(), iv, nullptr) == 1 &&
            EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(), static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &tail) == 1;
  ERR_clear_error();
  if (!ok || static_cast<size_t>(len + tail) != plaintext.size()) return InternalError("tpm: AES-CFB failed");
  out.resize(plaintext.size());
  return out;
}

StatusOr<Bytes> Hmac(const HashInfo& h, const SecretBytes& key, std::span<const uint8_t> a,
                     std::span<const uint8_t> b) {
  Ptr<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  Ptr<EVP_MAC_CTX> ctx(mac ? EVP_MAC_CTX_new(mac.get()) : nullptr);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(h.openssl_name), 0),
      OSSL_PARAM_construct_end(),
  };
  Bytes out(EVP_MAX_MD_SIZE);
  size_t len = 0;
  auto k = key.UnsafeBytes();
  bool ok = ctx && EVP_MAC_init(ctx.get(), k.data(), k.size(), params) == 1 &&
            EVP_MAC_update(ctx.get(), a.data(), a.size()) == 1 && EVP_MAC_update(ctx.get(), b.data(), b.size()) == 1 &&
            EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) == 1 && len == h.size;
  ERR_clear_error();
  if (!ok) return InternalError("tpm: HMAC failed");
  out.resize(len);
  return out;
}

}  // namespace

StatusOr<TpmCredential> MakeCredential(const TpmPublic& ek, std::span<const uint8_t> ak_name,
                                       const SecretBytes& secret) {
  const HashInfo* h = FindHash(ek.name_alg);
  if (h == nullptr || ek.key == nullptr || (ek.type != kTpmAlgRsa && ek.type != kTpmAlgEcc)) {
    return InvalidArgument("tpm: the EK is not a parsed RSA or ECC public area with nameAlg sha256 or sha384");
  }
  const uint32_t attrs = ek.object_attributes;
  if (!(attrs & kTpmaRestricted) || !(attrs & kTpmaDecrypt) || (attrs & kTpmaSign)) {
    return InvalidArgument("tpm: the EK is not a restricted decryption key");
  }
  if (ek.symmetric_alg != kTpmAlgAes || ek.symmetric_mode != kTpmAlgCfb ||
      (ek.symmetric_bits != 128 && ek.symmetric_bits != 256)) {
    return InvalidArgument("tpm: the EK's symmetric definition is not AES-128 or AES-256 in CFB mode");
  }
  const HashInfo* name_hash =
      ak_name.size() >= 2 ? FindHash(static_cast<uint16_t>(ak_name[0] << 8 | ak_name[1])) : nullptr;
  if (name_hash == nullptr || ak_name.size() != 2 + name_hash->size) {
    return InvalidArgument("tpm: the AK name is not a TPM Name (sha256 or sha384 nameAlg, then the digest)");
  }
  if (secret.empty() || secret.size() > h->size) {
    return InvalidArgument("tpm: the credential must be 1 to " + std::to_string(h->size) + " bytes");
  }

  // 1. The seed, and how the TPM recovers it.
  SecretBytes seed;
  Bytes encrypted;
  if (ek.type == kTpmAlgRsa) {
    ASSIGN_OR_RETURN(seed, crypto::RandomSecret(h->size));
    ASSIGN_OR_RETURN(encrypted, OaepEncrypt(*ek.key, *h, seed));
  } else {
    RETURN_IF_ERROR(EcdhSeed(ek, *h, seed, encrypted));
  }

  // 2. encIdentity: the credential as a TPM2B_DIGEST, encrypted with the
  // storage key derived for this AK's Name.
  ASSIGN_OR_RETURN(SecretBytes sym_key, Kdfa(*h, seed, "STORAGE", ak_name, {}, ek.symmetric_bits));
  SecretBytes plaintext(2 + secret.size());
  {
    auto p = plaintext.UnsafeMutableBytes();
    p[0] = static_cast<uint8_t>(secret.size() >> 8);
    p[1] = static_cast<uint8_t>(secret.size());
    std::memcpy(p.data() + 2, secret.UnsafeBytes().data(), secret.size());
  }
  ASSIGN_OR_RETURN(Bytes enc_identity, AesCfbEncrypt(sym_key, plaintext.UnsafeBytes()));

  // 3. The outer HMAC over encIdentity and the Name.
  ASSIGN_OR_RETURN(SecretBytes hmac_key, Kdfa(*h, seed, "INTEGRITY", {}, {}, h->size * 8));
  ASSIGN_OR_RETURN(Bytes integrity, Hmac(*h, hmac_key, enc_identity, ak_name));

  // TPM2B_ID_OBJECT { TPM2B_DIGEST integrityHMAC; encIdentity } and
  // TPM2B_ENCRYPTED_SECRET.
  TpmCredential c;
  Bytes id_object;
  PutTpm2b(id_object, integrity);
  id_object.insert(id_object.end(), enc_identity.begin(), enc_identity.end());
  PutTpm2b(c.credential_blob, id_object);
  PutTpm2b(c.encrypted_secret, encrypted);
  return c;
}

}  // namespace cloister::attest
