// Hex and base64, as the start-up exchange uses them: the pinned CAS key
// and volume keys are hex, evidence and injected file contents travel as
// base64 (RFC 4648, standard alphabet, with padding).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "runtime/secret.h"

namespace cloister::runtime {

// Lower-case hex of `bytes`.
std::string HexEncode(std::span<const uint8_t> bytes);

// Decodes exactly out.size() bytes from `hex` (upper or lower case). False,
// with `out` unspecified, unless `hex` has exactly 2 * out.size() hex digits.
bool HexDecode(std::string_view hex, std::span<uint8_t> out);

std::string Base64Encode(std::span<const uint8_t> bytes);

// Strict decoding: the standard alphabet, length a multiple of 4, padding
// only at the end, no whitespace, and unused bits zero (so every value has
// one encoding). False for anything else.
bool Base64Decode(std::string_view text, SecretBytes* out);

}  // namespace cloister::runtime
