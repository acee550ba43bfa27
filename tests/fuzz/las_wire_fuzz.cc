// libFuzzer target on the LAS socket codec (untrusted: any local process
// may connect and send anything) and on the base64 decoder the CAS applies
// to evidence that arrives at its attestation endpoint.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "base/bytes.h"
#include "las/wire.h"

using namespace cloister;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (auto r = las::DecodeRequest(in); r.ok()) {
    // A request that decodes encodes back to the same bytes.
    auto again = las::EncodeRequest(r->report_data);
    if (size != again.size() || !std::equal(again.begin(), again.end(), data)) __builtin_trap();
  }
  if (size >= las::kResponseHeaderSize) (void)las::DecodeResponseHeader(in.first(las::kResponseHeaderSize));
  if (auto r = las::DecodeResponse(in); r.ok()) {
    if (r->body.size() + las::kResponseHeaderSize != size) __builtin_trap();
  }
  if (auto b = Base64Decode(std::string_view(reinterpret_cast<const char*>(data), size))) {
    if (b->size() > size / 4 * 3) __builtin_trap();
    // Decoding what was encoded gives the bytes back.
    auto back = Base64Decode(Base64Encode(*b));
    if (!back || *back != *b) __builtin_trap();
  }
  return 0;
}
