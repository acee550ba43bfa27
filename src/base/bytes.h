// Byte-level helpers: hex, little-endian encoding, and a bounds-checked
// reader for parsing untrusted binary structures. Every on-disk parser in
// the project reads through ByteReader, so a malformed length can only make
// a read fail, never run past a buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cloister {

using Bytes = std::vector<uint8_t>;

std::string HexEncode(std::span<const uint8_t> data);
// Lower- or upper-case hex; nullopt on odd length or a non-hex character.
std::optional<Bytes> HexDecode(std::string_view hex);
// A-Z to a-z; every other byte as it is (hex digits, identifiers).
std::string AsciiLower(std::string_view s);

// Standard base64 (RFC 4648 section 4) with padding, no line breaks.
std::string Base64Encode(std::span<const uint8_t> data);
// nullopt unless `text` is padded standard base64 without white space.
std::optional<Bytes> Base64Decode(std::string_view text);

inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

inline void PutU8(Bytes& out, uint8_t v) { out.push_back(v); }
void PutU16(Bytes& out, uint16_t v);
void PutU32(Bytes& out, uint32_t v);
void PutU64(Bytes& out, uint64_t v);
void PutBytes(Bytes& out, std::span<const uint8_t> data);
// u32 length followed by the bytes.
void PutLengthPrefixed(Bytes& out, std::span<const uint8_t> data);

void StoreU32(uint8_t* p, uint32_t v);
void StoreU64(uint8_t* p, uint64_t v);
uint32_t LoadU32(const uint8_t* p);
uint64_t LoadU64(const uint8_t* p);

// Reads little-endian values from a span; any read past the end sets the
// reader to a failed state and returns zeros/empty spans from then on.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}

  uint8_t U8();
  uint16_t U16();
  uint32_t U32();
  uint64_t U64();
  std::span<const uint8_t> Take(size_t n);
  // u32 length then bytes; fails if the length exceeds what remains or max.
  std::span<const uint8_t> LengthPrefixed(size_t max);

  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
  bool AtEnd() const { return ok_ && pos_ == data_.size(); }
  size_t position() const { return pos_; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace cloister
