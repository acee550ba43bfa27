#include "las/wire.h"

#include <gtest/gtest.h>

#include <cstring>

namespace cloister::las {
namespace {

attest::Sha256Value Counting() {
  attest::Sha256Value v;
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i + 1);
  return v;
}

TEST(WireTest, RequestHasTheDocumentedLayout) {
  auto req = EncodeRequest(Counting());
  // "CLCQ", version 1, kind 1, reserved 0, then the report data.
  const uint8_t head[] = {'C', 'L', 'C', 'Q', 1, 0, 1, 0};
  EXPECT_EQ(std::memcmp(req.data(), head, sizeof(head)), 0);
  EXPECT_EQ(std::memcmp(req.data() + 8, Counting().data(), 32), 0);

  auto decoded = DecodeRequest(req);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->kind, RequestKind::kEvidenceForCaller);
  EXPECT_EQ(decoded->report_data, Counting());
}

TEST(WireTest, RequestWithBadFieldsIsRefused) {
  auto good = EncodeRequest(Counting());
  struct Case {
    size_t offset;
    uint8_t value;
    const char* expect;
  } cases[] = {
      {0, 'X', "magic"},      // magic
      {4, 2, "version 2"},    // version low byte
      {5, 1, "version 257"},  // version high byte
      {6, 4, "kind 4"},       // kind
      {6, 0, "kind 0"},
      {6, 3, "report data must be all zero"},  // a volume commit carries none
      {7, 1, "reserved"},
  };
  for (const Case& c : cases) {
    auto bad = good;
    bad[c.offset] = c.value;
    auto r = DecodeRequest(bad);
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
}

TEST(WireTest, RequestOfWrongLengthIsRefused) {
  auto good = EncodeRequest(Counting());
  Bytes shorter(good.begin(), good.end() - 1);
  Bytes longer(good.begin(), good.end());
  longer.push_back(0);
  EXPECT_FALSE(DecodeRequest(shorter).ok());
  EXPECT_FALSE(DecodeRequest(longer).ok());
  EXPECT_FALSE(DecodeRequest({}).ok());
}

TEST(WireTest, EvidenceResponseRoundTrips) {
  Bytes evidence(1000, 0xAB);
  auto enc = EncodeEvidenceResponse(evidence);
  ASSERT_TRUE(enc.ok());
  ASSERT_EQ(enc->size(), kResponseHeaderSize + evidence.size());
  const uint8_t head[] = {'C', 'L', 'C', 'R', 1, 0, 0, 0, 0xE8, 0x03, 0, 0};
  EXPECT_EQ(std::memcmp(enc->data(), head, sizeof(head)), 0);

  auto header = DecodeResponseHeader(std::span<const uint8_t>(*enc).first(kResponseHeaderSize));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->status, ResponseStatus::kEvidence);
  EXPECT_EQ(header->length, 1000u);
  auto r = DecodeResponse(*enc);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ResponseStatus::kEvidence);
  EXPECT_EQ(r->body, evidence);
}

TEST(WireTest, EvidenceOutOfBoundsIsNotEncoded) {
  EXPECT_FALSE(EncodeEvidenceResponse({}).ok());
  EXPECT_TRUE(EncodeEvidenceResponse(Bytes(kMaxEvidenceBody, 1)).ok());
  EXPECT_FALSE(EncodeEvidenceResponse(Bytes(kMaxEvidenceBody + 1, 1)).ok());
}

TEST(WireTest, RefusalRoundTripsAndIsCutAtACharacterBoundary) {
  auto r = DecodeResponse(EncodeRefusal("process 7 is gone"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ResponseStatus::kRefused);
  EXPECT_EQ(r->message(), "process 7 is gone");

  // 1023 ASCII bytes, then a 2-byte character that would straddle the cut.
  std::string long_message(kMaxMessageBody - 1, 'a');
  long_message += "\xC3\xA9tail";
  auto cut = DecodeResponse(EncodeRefusal(long_message));
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->message(), std::string(kMaxMessageBody - 1, 'a'));

  auto empty = DecodeResponse(EncodeRefusal(""));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->message(), "");
}

Bytes Header(uint32_t magic, uint16_t version, uint8_t status, uint8_t reserved, uint32_t length) {
  Bytes b;
  PutU32(b, magic);
  PutU16(b, version);
  PutU8(b, status);
  PutU8(b, reserved);
  PutU32(b, length);
  return b;
}

TEST(WireTest, ResponseHeaderWithBadFieldsIsRefused) {
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 0, 0, 10)).ok());
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 1, 0, 0)).ok());
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 1, 0, kMaxMessageBody)).ok());
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 0, 0, kMaxEvidenceBody)).ok());

  EXPECT_FALSE(DecodeResponseHeader(Header(kRequestMagic, 1, 0, 0, 10)).ok());  // a request's magic
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 2, 0, 0, 10)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 4, 0, 10)).ok());
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 3, 0, 10)).ok());  // a CAS answer
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 2, 0, 10)).ok());
  EXPECT_TRUE(DecodeResponseHeader(Header(kResponseMagic, 1, 2, 0, kMaxRelayedBody)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 2, 0, 9)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 2, 0, kMaxRelayedBody + 1)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 0, 1, 10)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 0, 0, 0)).ok());  // empty evidence
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 0, 0, kMaxEvidenceBody + 1)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 1, 0, kMaxMessageBody + 1)).ok());
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 0, 0, 0xFFFFFFFF)).ok());
  Bytes eleven = Header(kResponseMagic, 1, 0, 0, 10);
  eleven.pop_back();
  EXPECT_FALSE(DecodeResponseHeader(eleven).ok());
}

TEST(WireTest, ResponseBodyMustHaveExactlyTheAnnouncedLength) {
  Bytes msg = EncodeRefusal("hello");
  Bytes truncated(msg.begin(), msg.end() - 1);
  Bytes trailing = msg;
  trailing.push_back('!');
  EXPECT_TRUE(DecodeResponse(msg).ok());
  EXPECT_FALSE(DecodeResponse(truncated).ok());
  EXPECT_FALSE(DecodeResponse(trailing).ok());
  EXPECT_FALSE(DecodeResponse(std::span<const uint8_t>(msg).first(5)).ok());
}

// ---- relayed attestation (docs/protocol.md section 6) ----

// An uncompressed point as the codec sees it: 0x04 and 64 bytes. The codec
// does not check that it is on the curve (the CAS does), so any will do.
relay::Point SomePoint() {
  relay::Point p;
  p[0] = 0x04;
  for (size_t i = 1; i < p.size(); ++i) p[i] = static_cast<uint8_t>(0x30 + i);
  return p;
}

attest::Sha256Value ReportDataOf(const relay::Point& point) {
  relay::Hash h{};
  EXPECT_TRUE(relay::ReportDataOfPoint(point, &h));
  return h;
}

// Decodes `bytes` the way the socket server reads them: the header, the
// tail's head, then the config id.
Status DecodeRelayed(std::span<const uint8_t> bytes, EvidenceRequest* out) {
  if (bytes.size() < kRequestSize + kRelayTailHead) return InvalidArgument("too short for a relayed request");
  ASSIGN_OR_RETURN(*out, DecodeRequest(bytes.first(kRequestSize)));
  if (out->kind != RequestKind::kRelayedAttestation) return InvalidArgument("not a relayed request");
  ASSIGN_OR_RETURN(size_t n, RelayConfigIdLength(bytes.subspan(kRequestSize, kRelayTailHead)));
  if (bytes.size() != kRequestSize + kRelayTailHead + n) return InvalidArgument("config id length does not match");
  return DecodeRelayTail(bytes.subspan(kRequestSize), out);
}

TEST(WireTest, RelayedRequestRoundTrips) {
  relay::Point point = SomePoint();
  attest::Sha256Value report_data = ReportDataOf(point);
  // 300 bytes: both bytes of the little-endian length are non-zero.
  std::string config_id = "shop/" + std::string(295, 'w');
  Bytes b = EncodeRelayedRequest(report_data, point, config_id);
  ASSERT_EQ(b.size(), kRequestSize + kRelayTailHead + config_id.size());
  const uint8_t head[] = {'C', 'L', 'C', 'Q', 1, 0, 2, 0};
  EXPECT_EQ(std::memcmp(b.data(), head, sizeof(head)), 0);
  EXPECT_EQ(std::memcmp(b.data() + 8, report_data.data(), 32), 0);
  EXPECT_EQ(std::memcmp(b.data() + 40, point.data(), point.size()), 0);
  EXPECT_EQ(b[105], 0x2C);
  EXPECT_EQ(b[106], 0x01);

  auto req = DecodeRequest(std::span<const uint8_t>(b).first(kRequestSize));
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->kind, RequestKind::kRelayedAttestation);
  EXPECT_EQ(req->report_data, report_data);
  auto n = RelayConfigIdLength(std::span<const uint8_t>(b).subspan(kRequestSize, kRelayTailHead));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, config_id.size());
  Status s = DecodeRelayTail(std::span<const uint8_t>(b).subspan(kRequestSize), &*req);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(req->key, point);
  EXPECT_EQ(req->config_id, config_id);

  // The shortest and the longest config id.
  for (size_t len : {size_t{1}, kMaxConfigId}) {
    std::string id(len, 'c');
    EvidenceRequest r;
    Status ok = DecodeRelayed(EncodeRelayedRequest(report_data, point, id), &r);
    ASSERT_TRUE(ok.ok()) << len << ": " << ok.ToString();
    EXPECT_EQ(r.config_id, id);
  }
}

TEST(WireTest, RelayedRequestForOtherReportDataIsRefused) {
  relay::Point point = SomePoint();
  attest::Sha256Value report_data = ReportDataOf(point);
  report_data[0] ^= 1;
  EvidenceRequest r;
  Status s = DecodeRelayed(EncodeRelayedRequest(report_data, point, "shop/web"), &r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("report data is not the SHA-256"), std::string::npos) << s.message();

  // The right report data for another point.
  relay::Point other = point;
  other[64] ^= 1;
  s = DecodeRelayed(EncodeRelayedRequest(ReportDataOf(point), other, "shop/web"), &r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("report data"), std::string::npos) << s.message();
}

TEST(WireTest, RelayedConfigIdLengthOutOfRangeIsRefused) {
  relay::Point point = SomePoint();
  attest::Sha256Value report_data = ReportDataOf(point);
  for (size_t len : {size_t{0}, kMaxConfigId + 1}) {
    Bytes b = EncodeRelayedRequest(report_data, point, std::string(len, 'c'));
    auto n = RelayConfigIdLength(std::span<const uint8_t>(b).subspan(kRequestSize, kRelayTailHead));
    ASSERT_FALSE(n.ok()) << len;
    EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(n.status().message().find("config id length " + std::to_string(len) + " is out of range"),
              std::string::npos)
        << n.status().message();

    EvidenceRequest r;
    r.report_data = report_data;
    Status s = DecodeRelayTail(std::span<const uint8_t>(b).subspan(kRequestSize), &r);
    ASSERT_FALSE(s.ok()) << len;
    EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.message();
  }
  // The head must be exactly kRelayTailHead bytes.
  Bytes b = EncodeRelayedRequest(report_data, point, "shop/web");
  EXPECT_FALSE(RelayConfigIdLength(std::span<const uint8_t>(b).subspan(kRequestSize, kRelayTailHead - 1)).ok());
  EXPECT_FALSE(RelayConfigIdLength(std::span<const uint8_t>(b).subspan(kRequestSize, kRelayTailHead + 1)).ok());
}

TEST(WireTest, RelayedKeyThatIsNotAnUncompressedPointIsRefused) {
  for (uint8_t first : {uint8_t{0x00}, uint8_t{0x02}, uint8_t{0x03}, uint8_t{0x05}}) {
    relay::Point point = SomePoint();
    point[0] = first;
    EvidenceRequest r;
    // The report data matches the point, so only the form is wrong.
    Status s = DecodeRelayed(EncodeRelayedRequest(ReportDataOf(point), point, "shop/web"), &r);
    ASSERT_FALSE(s.ok()) << int{first};
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("not an uncompressed P-256 point"), std::string::npos) << s.message();
  }
}

TEST(WireTest, RelayedTailOfWrongLengthIsRefused) {
  relay::Point point = SomePoint();
  attest::Sha256Value report_data = ReportDataOf(point);
  Bytes b = EncodeRelayedRequest(report_data, point, "shop/web");
  Bytes tail(b.begin() + kRequestSize, b.end());

  EvidenceRequest r;
  r.report_data = report_data;
  ASSERT_TRUE(DecodeRelayTail(tail, &r).ok());

  Bytes shorter(tail.begin(), tail.end() - 1);
  Bytes longer = tail;
  longer.push_back('x');
  for (const Bytes& bad : {shorter, longer}) {
    EvidenceRequest req;
    req.report_data = report_data;
    Status s = DecodeRelayTail(bad, &req);
    ASSERT_FALSE(s.ok()) << bad.size();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("config id is cut short"), std::string::npos) << s.message();
  }
  // Shorter than the tail's head.
  Status s = DecodeRelayTail(std::span<const uint8_t>(tail).first(kRelayTailHead - 1), &r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tail is cut short"), std::string::npos) << s.message();
  EXPECT_FALSE(DecodeRelayTail({}, &r).ok());
}

TEST(WireTest, RelayedResponseRoundTrips) {
  Bytes evidence(300, 0xE1);
  Bytes cas_reply(500, 0xC7);
  auto enc = EncodeRelayedResponse(evidence, cas_reply);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  const uint32_t length = 4 + 300 + 4 + 500;
  ASSERT_EQ(enc->size(), kResponseHeaderSize + length);
  const uint8_t head[] = {'C', 'L', 'C', 'R', 1, 0, 2, 0, length & 0xff, length >> 8, 0, 0};
  EXPECT_EQ(std::memcmp(enc->data(), head, sizeof(head)), 0);

  auto header = DecodeResponseHeader(std::span<const uint8_t>(*enc).first(kResponseHeaderSize));
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_EQ(header->status, ResponseStatus::kRelayed);
  EXPECT_EQ(header->length, length);

  auto r = DecodeResponse(*enc);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ResponseStatus::kRelayed);
  // u32 LE evidence length, evidence, u32 LE reply length, reply.
  ByteReader reader(r->body);
  EXPECT_EQ(reader.U32(), 300u);
  auto got_evidence = reader.Take(300);
  EXPECT_EQ(reader.U32(), 500u);
  auto got_reply = reader.Take(500);
  ASSERT_TRUE(reader.AtEnd());
  EXPECT_EQ(Bytes(got_evidence.begin(), got_evidence.end()), evidence);
  EXPECT_EQ(Bytes(got_reply.begin(), got_reply.end()), cas_reply);
  const uint8_t lengths[] = {0x2C, 0x01, 0, 0};
  EXPECT_EQ(std::memcmp(r->body.data(), lengths, 4), 0);
  const uint8_t reply_length[] = {0xF4, 0x01, 0, 0};
  EXPECT_EQ(std::memcmp(r->body.data() + 4 + 300, reply_length, 4), 0);

  // Cut or extended, the whole response is refused.
  Bytes cut(enc->begin(), enc->end() - 1);
  Bytes longer = *enc;
  longer.push_back(0);
  EXPECT_FALSE(DecodeResponse(cut).ok());
  EXPECT_FALSE(DecodeResponse(longer).ok());
}

TEST(WireTest, RelayedResponseOutOfBoundsIsNotEncoded) {
  Bytes one(1, 1);
  EXPECT_TRUE(EncodeRelayedResponse(one, one).ok());
  auto empty_evidence = EncodeRelayedResponse({}, one);
  ASSERT_FALSE(empty_evidence.ok());
  EXPECT_EQ(empty_evidence.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty_evidence.status().message().find("out of bounds"), std::string::npos);
  auto empty_reply = EncodeRelayedResponse(one, {});
  ASSERT_FALSE(empty_reply.ok());
  EXPECT_NE(empty_reply.status().message().find("out of bounds"), std::string::npos);

  EXPECT_TRUE(EncodeRelayedResponse(Bytes(kMaxEvidenceBody, 1), one).ok());
  auto big_evidence = EncodeRelayedResponse(Bytes(kMaxEvidenceBody + 1, 1), one);
  ASSERT_FALSE(big_evidence.ok());
  EXPECT_NE(big_evidence.status().message().find("out of bounds"), std::string::npos);

  // The largest reply that fits beside the largest evidence, and one more.
  Bytes evidence(kMaxEvidenceBody, 1);
  Bytes reply(kMaxRelayedBody - 8 - kMaxEvidenceBody, 2);
  auto largest = EncodeRelayedResponse(evidence, reply);
  ASSERT_TRUE(largest.ok()) << largest.status().ToString();
  auto decoded = DecodeResponse(*largest);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->body.size(), kMaxRelayedBody);
  reply.push_back(2);
  auto too_large = EncodeRelayedResponse(evidence, reply);
  ASSERT_FALSE(too_large.ok());
  EXPECT_NE(too_large.status().message().find("out of bounds"), std::string::npos);
}

TEST(WireTest, VolumeCommitRequestHasTheDocumentedLayout) {
  const std::string report = "{\"volume\":\"data\"}";
  auto enc = EncodeVolumeCommitRequest(report);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  ASSERT_EQ(enc->size(), kRequestSize + 4 + report.size());
  // "CLCQ", version 1, kind 3, reserved 0, 32 zero bytes, the length (u32 LE), the report.
  const uint8_t head[] = {'C', 'L', 'C', 'Q', 1, 0, 3, 0};
  EXPECT_EQ(std::memcmp(enc->data(), head, sizeof(head)), 0);
  EXPECT_EQ(Bytes(enc->begin() + 8, enc->begin() + 40), Bytes(32, 0));
  const uint8_t length[] = {static_cast<uint8_t>(report.size()), 0, 0, 0};
  EXPECT_EQ(std::memcmp(enc->data() + kRequestSize, length, 4), 0);
  EXPECT_EQ(std::string(enc->begin() + kRequestSize + 4, enc->end()), report);

  std::span<const uint8_t> all(*enc);
  auto req = DecodeRequest(all.first(kRequestSize));
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->kind, RequestKind::kVolumeCommit);
  auto n = CommitReportLength(all.subspan(kRequestSize, kCommitTailHead));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, report.size());
  ASSERT_TRUE(DecodeCommitTail(all.subspan(kRequestSize), &*req).ok());
  EXPECT_EQ(req->commit_report, report);
}

TEST(WireTest, VolumeCommitOutOfBoundsIsRefused) {
  EXPECT_FALSE(EncodeVolumeCommitRequest("").ok());
  EXPECT_TRUE(EncodeVolumeCommitRequest(std::string(kMaxCommitReport, 'x')).ok());
  EXPECT_FALSE(EncodeVolumeCommitRequest(std::string(kMaxCommitReport + 1, 'x')).ok());

  const uint8_t zero[] = {0, 0, 0, 0};
  EXPECT_NE(CommitReportLength(zero).status().message().find("length 0 is out of range"), std::string::npos);
  uint8_t too_long[4];
  StoreU32(too_long, kMaxCommitReport + 1);
  EXPECT_NE(CommitReportLength(too_long).status().message().find("out of range"), std::string::npos);
  const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(CommitReportLength(huge).ok());
  EXPECT_FALSE(CommitReportLength(std::span<const uint8_t>(zero, 3)).ok());

  auto enc = EncodeVolumeCommitRequest("abc");
  ASSERT_TRUE(enc.ok());
  std::span<const uint8_t> tail = std::span<const uint8_t>(*enc).subspan(kRequestSize);
  EvidenceRequest req;
  EXPECT_FALSE(DecodeCommitTail(tail.first(tail.size() - 1), &req).ok());
  Bytes longer(tail.begin(), tail.end());
  longer.push_back('d');
  EXPECT_FALSE(DecodeCommitTail(longer, &req).ok());
  EXPECT_FALSE(DecodeCommitTail(tail.first(2), &req).ok());
}

TEST(WireTest, CasAnswerRoundTrips) {
  const std::string body = "{\"reason\":\"stale\"}";
  auto enc = EncodeCasAnswer(409, AsBytes(body));
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  const uint32_t length = 2 + static_cast<uint32_t>(body.size());
  const uint8_t head[] = {'C', 'L', 'C', 'R', 1, 0, 3, 0, static_cast<uint8_t>(length), 0, 0, 0, 0x99, 0x01};
  ASSERT_EQ(enc->size(), kResponseHeaderSize + length);
  EXPECT_EQ(std::memcmp(enc->data(), head, sizeof(head)), 0);
  auto r = DecodeResponse(*enc);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ResponseStatus::kCasAnswer);
  auto answer = DecodeCasAnswer(r->body);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->http_status, 409);
  EXPECT_EQ(std::string(answer->body.begin(), answer->body.end()), body);

  EXPECT_TRUE(EncodeCasAnswer(200, {}).ok());
  EXPECT_TRUE(EncodeCasAnswer(200, Bytes(kMaxCasAnswerBody, 'x')).ok());
  EXPECT_FALSE(EncodeCasAnswer(200, Bytes(kMaxCasAnswerBody + 1, 'x')).ok());
  EXPECT_FALSE(EncodeCasAnswer(99, {}).ok());
  EXPECT_FALSE(EncodeCasAnswer(600, {}).ok());
  EXPECT_FALSE(DecodeCasAnswer(Bytes(1, 0)).ok());
  EXPECT_FALSE(DecodeCasAnswer(Bytes{0x2b, 0}).ok()) << "status 43";

  // The header bounds a status 3 length before any body is read.
  Bytes header(enc->begin(), enc->begin() + kResponseHeaderSize);
  StoreU32(header.data() + 8, 1);
  EXPECT_FALSE(DecodeResponseHeader(header).ok());
  StoreU32(header.data() + 8, 2 + kMaxCasAnswerBody + 1);
  EXPECT_FALSE(DecodeResponseHeader(header).ok());
  StoreU32(header.data() + 8, 2 + kMaxCasAnswerBody);
  EXPECT_TRUE(DecodeResponseHeader(header).ok());
}

}  // namespace
}  // namespace cloister::las
