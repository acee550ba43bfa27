#include "las/wire.h"

#include <cstring>

namespace cloister::las {

std::array<uint8_t, kRequestSize> EncodeRequest(const attest::Sha256Value& report_data) {
  Bytes b;
  PutU32(b, kRequestMagic);
  PutU16(b, kWireVersion);
  PutU8(b, static_cast<uint8_t>(RequestKind::kEvidenceForCaller));
  PutU8(b, 0);
  PutBytes(b, report_data);
  std::array<uint8_t, kRequestSize> out;
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

Bytes EncodeRelayedRequest(const attest::Sha256Value& report_data, const relay::Point& key,
                           std::string_view config_id) {
  Bytes b;
  PutU32(b, kRequestMagic);
  PutU16(b, kWireVersion);
  PutU8(b, static_cast<uint8_t>(RequestKind::kRelayedAttestation));
  PutU8(b, 0);
  PutBytes(b, report_data);
  PutBytes(b, key);
  PutU16(b, static_cast<uint16_t>(config_id.size()));
  PutBytes(b, AsBytes(config_id));
  return b;
}

StatusOr<Bytes> EncodeVolumeCommitRequest(std::string_view report) {
  if (report.empty() || report.size() > kMaxCommitReport) {
    return InvalidArgument("a commit report is 1 to " + std::to_string(kMaxCommitReport) + " bytes, not " +
                           std::to_string(report.size()));
  }
  Bytes b;
  PutU32(b, kRequestMagic);
  PutU16(b, kWireVersion);
  PutU8(b, static_cast<uint8_t>(RequestKind::kVolumeCommit));
  PutU8(b, 0);
  b.resize(kRequestSize, 0);  // no report data: the report proves itself
  PutU32(b, static_cast<uint32_t>(report.size()));
  PutBytes(b, AsBytes(report));
  return b;
}

StatusOr<EvidenceRequest> DecodeRequest(std::span<const uint8_t> bytes) {
  if (bytes.size() != kRequestSize) {
    return InvalidArgument("a request is " + std::to_string(kRequestSize) + " bytes, not " +
                           std::to_string(bytes.size()));
  }
  ByteReader r(bytes);
  uint32_t magic = r.U32();
  uint16_t version = r.U16();
  uint8_t kind = r.U8();
  uint8_t reserved = r.U8();
  auto report_data = r.Take(32);
  if (magic != kRequestMagic) return InvalidArgument("not a Cloister LAS request (bad magic)");
  if (version != kWireVersion) {
    return InvalidArgument("request version " + std::to_string(version) + " is not supported (this LAS speaks 1)");
  }
  if (kind != static_cast<uint8_t>(RequestKind::kEvidenceForCaller) &&
      kind != static_cast<uint8_t>(RequestKind::kRelayedAttestation) &&
      kind != static_cast<uint8_t>(RequestKind::kVolumeCommit)) {
    return InvalidArgument("request kind " + std::to_string(kind) + " is not supported");
  }
  if (reserved != 0) return InvalidArgument("the reserved byte of the request is not 0");
  EvidenceRequest req;
  req.kind = static_cast<RequestKind>(kind);
  std::memcpy(req.report_data.data(), report_data.data(), req.report_data.size());
  if (req.kind == RequestKind::kVolumeCommit && req.report_data != attest::Sha256Value{}) {
    return InvalidArgument("a volume commit request's report data must be all zero");
  }
  return req;
}

StatusOr<size_t> CommitReportLength(std::span<const uint8_t> tail_head) {
  if (tail_head.size() != kCommitTailHead) return InvalidArgument("a commit request's tail is cut short");
  ByteReader r(tail_head);
  size_t n = r.U32();
  if (n == 0 || n > kMaxCommitReport) {
    return InvalidArgument("commit report length " + std::to_string(n) + " is out of range (1.." +
                           std::to_string(kMaxCommitReport) + ")");
  }
  return n;
}

Status DecodeCommitTail(std::span<const uint8_t> tail, EvidenceRequest* req) {
  if (tail.size() < kCommitTailHead) return InvalidArgument("a commit request's tail is cut short");
  ASSIGN_OR_RETURN(size_t n, CommitReportLength(tail.first(kCommitTailHead)));
  if (tail.size() != kCommitTailHead + n) return InvalidArgument("a commit request's report is cut short");
  req->commit_report.assign(reinterpret_cast<const char*>(tail.data() + kCommitTailHead), n);
  return Status::Ok();
}

StatusOr<size_t> RelayConfigIdLength(std::span<const uint8_t> tail_head) {
  if (tail_head.size() != kRelayTailHead) return InvalidArgument("a relayed request's tail is cut short");
  size_t n = static_cast<size_t>(tail_head[kRelayTailHead - 1]) << 8 | tail_head[kRelayTailHead - 2];
  if (n == 0 || n > kMaxConfigId) {
    return InvalidArgument("config id length " + std::to_string(n) + " is out of range (1.." +
                           std::to_string(kMaxConfigId) + ")");
  }
  return n;
}

Status DecodeRelayTail(std::span<const uint8_t> tail, EvidenceRequest* req) {
  if (tail.size() < kRelayTailHead) return InvalidArgument("a relayed request's tail is cut short");
  ASSIGN_OR_RETURN(size_t n, RelayConfigIdLength(tail.first(kRelayTailHead)));
  if (tail.size() != kRelayTailHead + n) return InvalidArgument("a relayed request's config id is cut short");
  std::memcpy(req->key.data(), tail.data(), req->key.size());
  if (req->key[0] != 0x04) return InvalidArgument("the key is not an uncompressed P-256 point");
  req->config_id.assign(reinterpret_cast<const char*>(tail.data() + kRelayTailHead), n);
  relay::Hash expected;
  if (!relay::ReportDataOfPoint(req->key, &expected)) return InternalError("cannot hash the key");
  if (expected != req->report_data) {
    return InvalidArgument("the report data is not the SHA-256 of the key's SubjectPublicKeyInfo");
  }
  return Status::Ok();
}

namespace {

Bytes Header(ResponseStatus status, uint32_t length) {
  Bytes b;
  PutU32(b, kResponseMagic);
  PutU16(b, kWireVersion);
  PutU8(b, static_cast<uint8_t>(status));
  PutU8(b, 0);
  PutU32(b, length);
  return b;
}

// Length of the longest prefix of `s` that is at most `max` bytes and does
// not end inside a multi-byte UTF-8 sequence.
size_t Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the
  // character that straddles the cut, and drop that character.
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

StatusOr<Bytes> EncodeEvidenceResponse(std::span<const uint8_t> evidence) {
  if (evidence.empty()) return InvalidArgument("empty evidence");
  if (evidence.size() > kMaxEvidenceBody) {
    return InvalidArgument("evidence of " + std::to_string(evidence.size()) + " bytes is larger than the " +
                           std::to_string(kMaxEvidenceBody) + " a response may carry");
  }
  Bytes b = Header(ResponseStatus::kEvidence, static_cast<uint32_t>(evidence.size()));
  PutBytes(b, evidence);
  return b;
}

Bytes EncodeRefusal(std::string_view message) {
  message = message.substr(0, Utf8Prefix(message, kMaxMessageBody));
  Bytes b = Header(ResponseStatus::kRefused, static_cast<uint32_t>(message.size()));
  PutBytes(b, AsBytes(message));
  return b;
}

StatusOr<Bytes> EncodeRelayedResponse(std::span<const uint8_t> evidence, std::span<const uint8_t> cas_reply) {
  size_t length = 8 + evidence.size() + cas_reply.size();
  if (evidence.empty() || evidence.size() > kMaxEvidenceBody || cas_reply.empty() || length > kMaxRelayedBody) {
    return InvalidArgument("a relayed answer of " + std::to_string(evidence.size()) + " bytes of evidence and " +
                           std::to_string(cas_reply.size()) + " bytes of reply is out of bounds");
  }
  Bytes b = Header(ResponseStatus::kRelayed, static_cast<uint32_t>(length));
  PutU32(b, static_cast<uint32_t>(evidence.size()));
  PutBytes(b, evidence);
  PutU32(b, static_cast<uint32_t>(cas_reply.size()));
  PutBytes(b, cas_reply);
  return b;
}

StatusOr<Bytes> EncodeCasAnswer(uint16_t http_status, std::span<const uint8_t> body) {
  if (http_status < 100 || http_status > 599 || body.size() > kMaxCasAnswerBody) {
    return InvalidArgument("a CAS answer of HTTP " + std::to_string(http_status) + " with " +
                           std::to_string(body.size()) + " bytes is out of bounds");
  }
  Bytes b = Header(ResponseStatus::kCasAnswer, static_cast<uint32_t>(2 + body.size()));
  PutU16(b, http_status);
  PutBytes(b, body);
  return b;
}

StatusOr<CasAnswerView> DecodeCasAnswer(std::span<const uint8_t> body) {
  if (body.size() < 2 || body.size() > 2 + kMaxCasAnswerBody) {
    return InvalidArgument("a CAS answer of " + std::to_string(body.size()) + " bytes is out of bounds");
  }
  ByteReader r(body);
  CasAnswerView a;
  a.http_status = r.U16();
  if (a.http_status < 100 || a.http_status > 599) {
    return InvalidArgument("the CAS answer's status " + std::to_string(a.http_status) + " is not an HTTP status");
  }
  a.body = body.subspan(2);
  return a;
}

StatusOr<ResponseHeader> DecodeResponseHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() != kResponseHeaderSize) {
    return InvalidArgument("a response header is " + std::to_string(kResponseHeaderSize) + " bytes, not " +
                           std::to_string(bytes.size()));
  }
  ByteReader r(bytes);
  uint32_t magic = r.U32();
  uint16_t version = r.U16();
  uint8_t status = r.U8();
  uint8_t reserved = r.U8();
  uint32_t length = r.U32();
  if (magic != kResponseMagic) return InvalidArgument("not a Cloister LAS response (bad magic)");
  if (version != kWireVersion) {
    return InvalidArgument("response version " + std::to_string(version) + " is not supported");
  }
  if (reserved != 0) return InvalidArgument("the reserved byte of the response is not 0");
  ResponseHeader h;
  h.length = length;
  switch (status) {
    case static_cast<uint8_t>(ResponseStatus::kEvidence):
      h.status = ResponseStatus::kEvidence;
      if (length == 0 || length > kMaxEvidenceBody) {
        return InvalidArgument("evidence length " + std::to_string(length) + " is out of range");
      }
      break;
    case static_cast<uint8_t>(ResponseStatus::kRefused):
      h.status = ResponseStatus::kRefused;
      if (length > kMaxMessageBody) {
        return InvalidArgument("message length " + std::to_string(length) + " is out of range");
      }
      break;
    case static_cast<uint8_t>(ResponseStatus::kRelayed):
      h.status = ResponseStatus::kRelayed;
      if (length < 10 || length > kMaxRelayedBody) {
        return InvalidArgument("relayed answer length " + std::to_string(length) + " is out of range");
      }
      break;
    case static_cast<uint8_t>(ResponseStatus::kCasAnswer):
      h.status = ResponseStatus::kCasAnswer;
      if (length < 2 || length > 2 + kMaxCasAnswerBody) {
        return InvalidArgument("CAS answer length " + std::to_string(length) + " is out of range");
      }
      break;
    default:
      return InvalidArgument("response status " + std::to_string(status) + " is not known");
  }
  return h;
}

StatusOr<Response> DecodeResponse(std::span<const uint8_t> bytes) {
  if (bytes.size() < kResponseHeaderSize) return InvalidArgument("the response is truncated");
  ASSIGN_OR_RETURN(ResponseHeader h, DecodeResponseHeader(bytes.first(kResponseHeaderSize)));
  auto body = bytes.subspan(kResponseHeaderSize);
  if (body.size() < h.length) return InvalidArgument("the response body is truncated");
  if (body.size() > h.length) return InvalidArgument("the response has trailing bytes");
  Response out;
  out.status = h.status;
  out.body.assign(body.begin(), body.end());
  return out;
}

}  // namespace cloister::las
