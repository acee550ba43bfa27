#include "attest/volume_commit.h"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

#include "crypto/hpke.h"

namespace cloister::volume_commit {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string Base64(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(), static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

// Strict base64: OpenSSL decodes (it tolerates surrounding white space and
// reports padding as zero bytes), and only text that encodes back to
// exactly itself is accepted, so every value has one encoding.
bool Unbase64(std::string_view text, size_t max, std::vector<uint8_t>* out) {
  if (text.empty() || text.size() % 4 != 0 || text.size() / 4 * 3 > max + 2) return false;
  std::vector<uint8_t> decoded(text.size() / 4 * 3);
  int n = EVP_DecodeBlock(decoded.data(), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t padding = text.back() != '=' ? 0 : text[text.size() - 2] == '=' ? 2 : 1;
  if (static_cast<size_t>(n) < padding) return false;
  decoded.resize(static_cast<size_t>(n) - padding);
  if (decoded.size() > max || Base64(decoded) != text) return false;
  *out = std::move(decoded);
  return true;
}

constexpr char kHexDigits[] = "0123456789abcdef";

std::string Hex(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 15];
  }
  return out;
}

int LowerHexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// A flat JSON object of string and unsigned integer members, read without
// any leniency: what BuildRequest writes, give or take white space and
// member order.
class FlatJsonReader {
 public:
  explicit FlatJsonReader(std::string_view s) : s_(s) {}

  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ >= s_.size() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool Peek(char c) {
    SkipSpace();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ == s_.size();
  }
  // A string without escapes or control characters.
  bool String(std::string_view* out) {
    if (!Consume('"')) return false;
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c < 0x20 || c == '\\') return false;
      ++pos_;
    }
    if (pos_ == s_.size()) return false;
    *out = s_.substr(start, pos_ - start);
    ++pos_;
    return true;
  }
  // A non-negative integer below 2^64 in its shortest form.
  bool Unsigned(uint64_t* out) {
    SkipSpace();
    size_t start = pos_;
    uint64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      uint64_t digit = static_cast<uint64_t>(s_[pos_] - '0');
      if (v > (UINT64_MAX - digit) / 10) return false;
      v = v * 10 + digit;
      ++pos_;
    }
    size_t digits = pos_ - start;
    if (digits == 0 || (digits > 1 && s_[start] == '0')) return false;
    // "1.5", "1e3": the digits read are not the whole number.
    if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) return false;
    *out = v;
    return true;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool Fail(std::string* error, std::string what) {
  *error = std::move(what);
  return false;
}

// Reads a flat JSON object whose members are exactly `names`, each once, in
// any order: `member(i, reader, error)` reads the value of names[i].
template <typename Member>
bool ReadFlatObject(std::string_view body, std::span<const std::string_view> names, Member member,
                    std::string* error) {
  FlatJsonReader r(body);
  if (!r.Consume('{')) return Fail(error, "the body is not a JSON object");
  std::vector<bool> seen(names.size());
  bool first = true;
  while (!r.Peek('}')) {
    if (!first && !r.Consume(',')) return Fail(error, "members must be separated by commas");
    first = false;
    std::string_view name;
    if (!r.String(&name) || !r.Consume(':')) return Fail(error, "a member name is malformed");
    size_t field = names.size();
    for (size_t i = 0; i < names.size(); ++i) {
      if (name == names[i]) field = i;
    }
    if (field == names.size()) return Fail(error, "unknown member \"" + std::string(name.substr(0, 32)) + "\"");
    if (seen[field]) return Fail(error, "member \"" + std::string(name) + "\" appears twice");
    seen[field] = true;
    if (!member(field, r, error)) return false;
  }
  if (!r.Consume('}') || !r.AtEnd()) return Fail(error, "the body has bytes after its object");
  for (size_t i = 0; i < names.size(); ++i) {
    if (!seen[i]) return Fail(error, "member \"" + std::string(names[i]) + "\" is missing");
  }
  return true;
}

bool ReadSeq(FlatJsonReader& r, uint64_t* seq, std::string* error) {
  if (!r.Unsigned(seq)) return Fail(error, "seq is not an integer from 0 to 2^64-1");
  return true;
}

bool ReadVolume(std::string_view value, std::string* volume, std::string* error) {
  if (!IsVolumeName(value)) return Fail(error, "volume is not 1 to 64 of A-Z a-z 0-9 _ -");
  volume->assign(value);
  return true;
}

bool ReadTag(std::string_view value, Tag* tag, std::string* error) {
  if (value.size() != 2 * tag->size()) return Fail(error, "tag is not 64 lower-case hex digits");
  for (size_t i = 0; i < tag->size(); ++i) {
    int hi = LowerHexDigit(value[2 * i]), lo = LowerHexDigit(value[2 * i + 1]);
    if (hi < 0 || lo < 0) return Fail(error, "tag is not 64 lower-case hex digits");
    (*tag)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

bool IsVolumeName(std::string_view name) {
  if (name.empty() || name.size() > kMaxVolumeName) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<uint8_t> SignedBytes(std::span<const uint8_t> token, std::string_view volume, uint64_t seq,
                                 const Tag& tag) {
  // Sized once and filled with memcpy (GCC 12 misreads vector::insert
  // chains as overflows, as in relay_reply.cc).
  std::vector<uint8_t> m(kLabel.size() + 4 + token.size() + 4 + volume.size() + 8 + tag.size());
  uint8_t* p = m.data();
  auto put = [&p](const void* data, size_t n) {
    if (n > 0) std::memcpy(p, data, n);
    p += n;
  };
  auto put_be = [&put](uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; ++i) b[i] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - i)));
    put(b, static_cast<size_t>(bytes));
  };
  put(kLabel.data(), kLabel.size());
  put_be(token.size(), 4);
  put(token.data(), token.size());
  put_be(volume.size(), 4);
  put(volume.data(), volume.size());
  put_be(seq, 8);
  put(tag.data(), tag.size());
  return m;
}

bool BuildRequest(std::span<const uint8_t> token, const relay::Point& key, std::string_view volume, uint64_t seq,
                  const Tag& tag, EVP_PKEY* private_key, std::string* body, std::string* error) {
  if (token.empty() || token.size() > kMaxToken) return Fail(error, "the volume token is empty or too long");
  if (!IsVolumeName(volume)) return Fail(error, "the volume name is not 1 to 64 of A-Z a-z 0-9 _ -");
  // A report signed by one key but naming another would be refused by the
  // CAS anyway; saying so here names the caller's mistake.
  std::array<uint8_t, hpke::kPublicKeySize> own{};
  if (private_key == nullptr || !hpke::PublicPoint(private_key, &own)) {
    return Fail(error, "the signing key is not a P-256 key");
  }
  if (own != key) return Fail(error, "the signing key is not the private half of the key named in the report");
  std::vector<uint8_t> message = SignedBytes(token, volume, seq, tag);
  MdCtxPtr md(EVP_MD_CTX_new());
  size_t length = 0;
  if (!md || EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, private_key, nullptr) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &length, message.data(), message.size()) != 1) {
    return Fail(error, "cannot set up the signature");
  }
  std::vector<uint8_t> signature(length);
  if (EVP_DigestSign(md.get(), signature.data(), &length, message.data(), message.size()) != 1 || length == 0 ||
      length > kMaxSignature) {
    return Fail(error, "cannot sign the commit report");
  }
  signature.resize(length);
  *body = "{\"token\":\"" + Base64(token) + "\",\"key\":\"" + Base64(key) + "\",\"volume\":\"" + std::string(volume) +
          "\",\"seq\":" + std::to_string(seq) + ",\"tag\":\"" + Hex(tag) + "\",\"signature\":\"" + Base64(signature) +
          "\"}";
  return true;
}

bool ParseRequest(std::string_view body, Request* out, std::string* error) {
  if (body.size() > kMaxBody) return Fail(error, "the body is larger than " + std::to_string(kMaxBody) + " bytes");
  enum Field { kToken, kKey, kVolume, kSeq, kTag, kSignature, kFields };
  static constexpr std::string_view kNames[kFields] = {"token", "key", "volume", "seq", "tag", "signature"};
  Request req;
  auto member = [&req](size_t field, FlatJsonReader& r, std::string* why) {
    if (field == kSeq) return ReadSeq(r, &req.seq, why);
    std::string_view value;
    if (!r.String(&value)) return Fail(why, "member \"" + std::string(kNames[field]) + "\" is not a plain string");
    switch (field) {
      case kToken:
        if (!Unbase64(value, kMaxToken, &req.token) || req.token.empty()) {
          return Fail(why, "token is not base64 of 1 to " + std::to_string(kMaxToken) + " bytes");
        }
        return true;
      case kKey: {
        std::vector<uint8_t> point;
        if (!Unbase64(value, req.key.size(), &point) || point.size() != req.key.size() || point[0] != 0x04) {
          return Fail(why, "key is not base64 of an uncompressed P-256 point (65 bytes)");
        }
        std::memcpy(req.key.data(), point.data(), point.size());
        return true;
      }
      case kVolume: return ReadVolume(value, &req.volume, why);
      case kTag: return ReadTag(value, &req.tag, why);
      default:
        if (!Unbase64(value, kMaxSignature, &req.signature) || req.signature.empty()) {
          return Fail(why, "signature is not base64 of 1 to " + std::to_string(kMaxSignature) + " bytes");
        }
        return true;
    }
  };
  if (!ReadFlatObject(body, kNames, member, error)) return false;
  *out = std::move(req);
  return true;
}

bool VerifySignature(const Request& request, std::string* error) {
  hpke::KeyPtr key = hpke::PublicKeyFromPoint(request.key);
  if (!key) return Fail(error, "the key is not a valid P-256 point");
  MdCtxPtr md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.get(), nullptr) != 1) {
    return Fail(error, "cannot set up the check of the signature");
  }
  std::vector<uint8_t> message = SignedBytes(request.token, request.volume, request.seq, request.tag);
  if (EVP_DigestVerify(md.get(), request.signature.data(), request.signature.size(), message.data(),
                       message.size()) != 1) {
    return Fail(error, "the signature does not verify for this report under its key");
  }
  return true;
}

std::vector<uint8_t> ReceiptMessage(std::span<const uint8_t> token, std::string_view volume, uint64_t seq,
                                    const Tag& tag) {
  std::vector<uint8_t> report = SignedBytes(token, volume, seq, tag);
  std::vector<uint8_t> m(kReceiptLabel.size() + 32);
  std::memcpy(m.data(), kReceiptLabel.data(), kReceiptLabel.size());
  unsigned int len = 0;
  if (EVP_Digest(report.data(), report.size(), m.data() + kReceiptLabel.size(), &len, EVP_sha256(), nullptr) != 1 ||
      len != 32) {
    return {};  // nothing verifies over an empty message
  }
  return m;
}

std::string BuildReceipt(std::string_view volume, uint64_t seq, const Tag& tag, std::span<const uint8_t> cas_spki,
                         std::span<const uint8_t> signature) {
  return "{\"volume\":\"" + std::string(volume) + "\",\"seq\":" + std::to_string(seq) + ",\"tag\":\"" + Hex(tag) +
         "\",\"cas_key\":\"" + Base64(cas_spki) + "\",\"receipt\":\"" + Base64(signature) + "\"}";
}

bool VerifyReceipt(std::string_view body, const relay::Hash& pin, std::span<const uint8_t> token,
                   std::string_view volume, uint64_t seq, const Tag& tag, std::string* error) {
  if (body.size() > kMaxBody) return Fail(error, "the receipt is larger than " + std::to_string(kMaxBody) + " bytes");
  enum Field { kVolume, kSeq, kTag, kCasKey, kReceipt, kFields };
  static constexpr std::string_view kNames[kFields] = {"volume", "seq", "tag", "cas_key", "receipt"};
  std::string got_volume;
  uint64_t got_seq = 0;
  Tag got_tag{};
  std::vector<uint8_t> cas_key, receipt;
  auto member = [&](size_t field, FlatJsonReader& r, std::string* why) {
    if (field == kSeq) return ReadSeq(r, &got_seq, why);
    std::string_view value;
    if (!r.String(&value)) return Fail(why, "member \"" + std::string(kNames[field]) + "\" is not a plain string");
    switch (field) {
      case kVolume: return ReadVolume(value, &got_volume, why);
      case kTag: return ReadTag(value, &got_tag, why);
      case kCasKey:
        if (!Unbase64(value, 1024, &cas_key) || cas_key.empty()) return Fail(why, "cas_key is not base64 of a key");
        return true;
      default:
        if (!Unbase64(value, kMaxSignature, &receipt) || receipt.empty()) {
          return Fail(why, "receipt is not base64 of 1 to " + std::to_string(kMaxSignature) + " bytes");
        }
        return true;
    }
  };
  if (!ReadFlatObject(body, kNames, member, error)) return false;
  if (got_volume != volume || got_seq != seq || got_tag != tag) {
    return Fail(error, "the receipt is for another commit than this report");
  }
  switch (relay::CheckCasSignature(cas_key, pin, ReceiptMessage(token, volume, seq, tag), receipt)) {
    case relay::CasSignature::kValid: return true;
    case relay::CasSignature::kNotPinned:
      return Fail(error, "the receipt is signed by a key that is not the pinned CAS key (CLOISTER_CAS_KEY)");
    case relay::CasSignature::kNotP256: return Fail(error, "the CAS key is not a P-256 key");
    case relay::CasSignature::kCannotCheck: return Fail(error, "cannot set up the check of the CAS's receipt");
    case relay::CasSignature::kInvalid: break;
  }
  return Fail(error, "the CAS's receipt does not verify for this report");
}

}  // namespace cloister::volume_commit
