// The LAS socket protocol (docs/protocol.md, section 3): the 40-byte request
// a starting process sends over the LAS's Unix socket, and the response it
// gets back. Encoding and decoding only, no I/O: the server, the runtime and
// tests share these functions, so both ends agree by construction.
//
// Every decoder takes untrusted bytes and fails with kInvalidArgument and a
// short reason; none of them reads past the span it was given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "attest/evidence.h"
#include "base/bytes.h"
#include "cloister/status.h"

namespace cloister::las {

inline constexpr uint32_t kRequestMagic = 0x51434c43;   // the bytes "CLCQ"
inline constexpr uint32_t kResponseMagic = 0x52434c43;  // the bytes "CLCR"
inline constexpr uint16_t kWireVersion = 1;

inline constexpr size_t kRequestSize = 40;
inline constexpr size_t kResponseHeaderSize = 12;
// Largest body of each response kind.
inline constexpr size_t kMaxEvidenceBody = 65536;
inline constexpr size_t kMaxMessageBody = 1024;

// What a request may ask for. Only one kind exists today.
enum class RequestKind : uint8_t { kEvidenceForCaller = 1 };

enum class ResponseStatus : uint8_t { kEvidence = 0, kRefused = 1 };

struct EvidenceRequest {
  RequestKind kind = RequestKind::kEvidenceForCaller;
  attest::Sha256Value report_data{};
};

// The 40 bytes of a request for evidence carrying `report_data`.
std::array<uint8_t, kRequestSize> EncodeRequest(const attest::Sha256Value& report_data);

// Decodes a request. `bytes` must be exactly kRequestSize long; the magic,
// version, kind and reserved byte must be the ones above.
StatusOr<EvidenceRequest> DecodeRequest(std::span<const uint8_t> bytes);

// A response carrying evidence. kInvalidArgument if `evidence` is empty or
// longer than kMaxEvidenceBody (the server then refuses instead).
StatusOr<Bytes> EncodeEvidenceResponse(std::span<const uint8_t> evidence);

// A refusal. A message longer than kMaxMessageBody is cut at a UTF-8
// character boundary, so the body stays valid UTF-8 if the message was.
Bytes EncodeRefusal(std::string_view message);

struct ResponseHeader {
  ResponseStatus status = ResponseStatus::kRefused;
  uint32_t length = 0;  // body bytes that follow
};

// Decodes the fixed 12-byte header (exactly kResponseHeaderSize bytes):
// magic, version, a known status, reserved 0, and a length within the
// bound of that status.
StatusOr<ResponseHeader> DecodeResponseHeader(std::span<const uint8_t> bytes);

struct Response {
  ResponseStatus status = ResponseStatus::kRefused;
  Bytes body;  // evidence, or the refusal message
  std::string_view message() const {
    return {reinterpret_cast<const char*>(body.data()), body.size()};
  }
};

// Decodes a whole response: header plus exactly `length` body bytes, no
// more and no less.
StatusOr<Response> DecodeResponse(std::span<const uint8_t> bytes);

}  // namespace cloister::las
