// The LAS socket protocol (docs/protocol.md, section 3): the 40-byte request
// a starting process sends over the LAS's Unix socket (with the tail of a
// relayed attestation or a volume commit), and the response it gets back. Encoding and decoding only, no I/O: the server, the runtime and
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
#include "attest/relay_reply.h"
#include "attest/volume_commit.h"
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
// A relayed request's tail: the key's point and the config id's length,
// then the config id.
inline constexpr size_t kRelayTailHead = relay::kPointSize + 2;
inline constexpr size_t kMaxConfigId = 512;
// A relayed answer: the evidence, the CAS's signed reply and their lengths.
inline constexpr size_t kMaxRelayedBody = 4 + kMaxEvidenceBody + 4 + relay::kMaxPayload + 4096;
// A volume commit's tail: the report's length (u32), then the report (the
// JSON body of POST /v1/volumes/commit, docs/protocol.md section 7).
inline constexpr size_t kCommitTailHead = 4;
inline constexpr size_t kMaxCommitReport = volume_commit::kMaxBody;
// The CAS's answer to a commit: its HTTP status (u16), then its body.
inline constexpr size_t kMaxCasAnswerBody = 16384;

// What a request may ask for: evidence for the caller (section 3);
// evidence carried to the CAS with the caller's key and config id, the CAS's
// signed reply coming back (section 6); or a volume commit report carried
// to the CAS, its answer coming back (section 7).
enum class RequestKind : uint8_t { kEvidenceForCaller = 1, kRelayedAttestation = 2, kVolumeCommit = 3 };

enum class ResponseStatus : uint8_t { kEvidence = 0, kRefused = 1, kRelayed = 2, kCasAnswer = 3 };

struct EvidenceRequest {
  RequestKind kind = RequestKind::kEvidenceForCaller;
  attest::Sha256Value report_data{};
  // kRelayedAttestation only.
  relay::Point key{};
  std::string config_id;
  // kVolumeCommit only: the report, as the caller sent it.
  std::string commit_report;
};

// The 40 bytes of a request for evidence carrying `report_data`.
std::array<uint8_t, kRequestSize> EncodeRequest(const attest::Sha256Value& report_data);

// A relayed request: the 40-byte header with kind 2, then the key's point,
// the config id's length (u16) and the config id.
Bytes EncodeRelayedRequest(const attest::Sha256Value& report_data, const relay::Point& key,
                           std::string_view config_id);

// A volume commit: the 40-byte header with kind 3 and all-zero report data,
// then the report's length (u32) and the report. kInvalidArgument if the
// report is empty or longer than kMaxCommitReport.
StatusOr<Bytes> EncodeVolumeCommitRequest(std::string_view report);

// Decodes a request's 40-byte header. `bytes` must be exactly kRequestSize
// long; the magic, version, kind and reserved byte must be the ones above,
// and a kind 3 header's report data all zero. For kind 2 the tail follows
// (DecodeRelayTail), for kind 3 another (DecodeCommitTail).
StatusOr<EvidenceRequest> DecodeRequest(std::span<const uint8_t> bytes);

// How many bytes of config id follow a relayed tail's first kRelayTailHead
// bytes: 1..kMaxConfigId.
StatusOr<size_t> RelayConfigIdLength(std::span<const uint8_t> tail_head);

// Fills `req`'s key and config id from the whole tail (kRelayTailHead plus
// the config id) and checks that the report data is the SHA-256 of the
// key's SPKI, as the CAS will.
Status DecodeRelayTail(std::span<const uint8_t> tail, EvidenceRequest* req);

// How many bytes of report follow a commit tail's first kCommitTailHead
// bytes: 1..kMaxCommitReport.
StatusOr<size_t> CommitReportLength(std::span<const uint8_t> tail_head);

// Fills `req`'s commit report from the whole tail (kCommitTailHead plus the
// report). Only the framing is checked here; the report's own form is
// volume_commit::ParseRequest's business.
Status DecodeCommitTail(std::span<const uint8_t> tail, EvidenceRequest* req);

// A response carrying evidence. kInvalidArgument if `evidence` is empty or
// longer than kMaxEvidenceBody (the server then refuses instead).
StatusOr<Bytes> EncodeEvidenceResponse(std::span<const uint8_t> evidence);

// A refusal. A message longer than kMaxMessageBody is cut at a UTF-8
// character boundary, so the body stays valid UTF-8 if the message was.
Bytes EncodeRefusal(std::string_view message);

// An answer to a relayed request: the evidence the LAS made (u32 length,
// bytes) and the CAS's signed reply (u32 length, bytes), whose
// checking is the caller's business. kInvalidArgument beyond the bounds.
StatusOr<Bytes> EncodeRelayedResponse(std::span<const uint8_t> evidence, std::span<const uint8_t> cas_reply);

// The CAS's answer to a volume commit, status 3: the HTTP status (u16) and
// the CAS's body (at most kMaxCasAnswerBody bytes), both as the CAS sent
// them. kInvalidArgument beyond the bounds.
StatusOr<Bytes> EncodeCasAnswer(uint16_t http_status, std::span<const uint8_t> body);

struct CasAnswerView {
  uint16_t http_status = 0;
  std::span<const uint8_t> body;
};
// Splits the body of a status 3 response.
StatusOr<CasAnswerView> DecodeCasAnswer(std::span<const uint8_t> body);

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
  Bytes body;  // evidence, the refusal message, a relayed answer or a CAS answer
  std::string_view message() const {
    return {reinterpret_cast<const char*>(body.data()), body.size()};
  }
};

// Decodes a whole response: header plus exactly `length` body bytes, no
// more and no less.
StatusOr<Response> DecodeResponse(std::span<const uint8_t> bytes);

}  // namespace cloister::las
