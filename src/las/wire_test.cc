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
      {6, 2, "kind 2"},       // kind
      {6, 0, "kind 0"},
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
  EXPECT_FALSE(DecodeResponseHeader(Header(kResponseMagic, 1, 2, 0, 10)).ok());
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

}  // namespace
}  // namespace cloister::las
