// The relayed reply format (docs/protocol.md section 6) as the runtime
// checks it: a reply the CAS signed for this start is accepted, and no
// change to any of its bytes, no cut and nothing appended gets past Parse
// and Verify together.
#include "attest/relay_reply.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "attest/test_keys.h"
#include "crypto/hpke.h"

namespace cloister::relay {
namespace {

using attest_test::Key;
using attest_test::NewKey;
using attest_test::Sign;
using attest_test::Spki;

Hash Sha256(std::span<const uint8_t> data) { return attest_test::Sha256(data); }

Point PointOf(EVP_PKEY* key) {
  std::array<uint8_t, hpke::kPublicKeySize> p{};
  EXPECT_TRUE(hpke::PublicPoint(key, &p));
  Point out;
  std::copy(p.begin(), p.end(), out.begin());
  return out;
}

std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> Payload() {
  std::vector<uint8_t> p(120);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i * 7 + 3);
  return p;
}

// A CAS key, the start it answers and a reply it signed for that start.
class RelayReplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cas_ = NewKey("P-256");
    ASSERT_TRUE(cas_);
    cas_spki_ = Spki(cas_.get());
    pin_ = Sha256(cas_spki_);
    program_ = NewKey("P-256");
    ASSERT_TRUE(program_);
    ASSERT_TRUE(ReportDataOfPoint(PointOf(program_.get()), &report_data_));
  }

  // A reply with `status` and `payload`, signed by `signer` (the CAS by
  // default) for `report_data` and `config_id`.
  std::vector<uint8_t> MakeReply(uint16_t status, std::span<const uint8_t> payload, EVP_PKEY* signer = nullptr,
                                 const Hash* report_data = nullptr, std::string_view config_id = "shop/web") {
    if (signer == nullptr) signer = cas_.get();
    if (report_data == nullptr) report_data = &report_data_;
    std::vector<uint8_t> unsigned_reply = EncodeUnsigned(status, Spki(signer), payload);
    EXPECT_FALSE(unsigned_reply.empty());
    std::vector<uint8_t> sig = Sign(signer, SignedMessage(*report_data, config_id, unsigned_reply));
    return AppendSignature(std::move(unsigned_reply), sig);
  }

  // Parse and Verify for this start, as the runtime runs them. True only
  // if both accept; `error` says why not.
  bool Accepts(std::span<const uint8_t> bytes, std::string* error, std::string_view config_id = "shop/web") {
    Reply reply;
    if (!Parse(bytes, &reply, error)) return false;
    return Verify(reply, pin_, report_data_, config_id, error);
  }

  Key cas_, program_;
  std::vector<uint8_t> cas_spki_;
  Hash pin_{}, report_data_{};
};

TEST(RelayPointTest, SpkiOfPointIsWhatOpenSslWritesAndReportDataIsItsHash) {
  for (int i = 0; i < 4; ++i) {
    Key key = NewKey("P-256");
    ASSERT_TRUE(key);
    Point point = PointOf(key.get());
    EXPECT_EQ(point[0], 0x04);
    std::vector<uint8_t> der = Spki(key.get());
    auto spki = SpkiOfPoint(point);
    ASSERT_EQ(der.size(), kSpkiSize);
    EXPECT_EQ(std::vector<uint8_t>(spki.begin(), spki.end()), der);
    Hash report_data{};
    ASSERT_TRUE(ReportDataOfPoint(point, &report_data));
    EXPECT_EQ(report_data, Sha256(der));
  }
}

TEST_F(RelayReplyTest, AWellFormedSignedReplyParsesAndVerifies) {
  std::vector<uint8_t> payload = Payload();
  std::vector<uint8_t> bytes = MakeReply(200, payload);
  Reply reply;
  std::string error;
  ASSERT_TRUE(Parse(bytes, &reply, &error)) << error;
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(std::vector<uint8_t>(reply.cas_spki.begin(), reply.cas_spki.end()), cas_spki_);
  EXPECT_EQ(std::vector<uint8_t>(reply.payload.begin(), reply.payload.end()), payload);
  EXPECT_EQ(reply.unsigned_part.size(), bytes.size() - 2 - reply.signature.size());
  EXPECT_EQ(reply.unsigned_part.data(), bytes.data());
  EXPECT_TRUE(Verify(reply, pin_, report_data_, "shop/web", &error)) << error;

  // A refusal carries its JSON as is.
  std::string refusal = R"({"error":"measurement not allowed"})";
  std::vector<uint8_t> refused = MakeReply(403, AsSpan(refusal));
  ASSERT_TRUE(Parse(refused, &reply, &error)) << error;
  EXPECT_EQ(reply.status, 403);
  EXPECT_EQ(std::string(reply.payload.begin(), reply.payload.end()), refusal);
  EXPECT_TRUE(Verify(reply, pin_, report_data_, "shop/web", &error)) << error;
}

TEST_F(RelayReplyTest, AReplyFromAnotherKeyIsRefusedAsNotPinned) {
  Key other = NewKey("P-256");
  ASSERT_TRUE(other);
  std::vector<uint8_t> bytes = MakeReply(200, Payload(), other.get());
  std::string error;
  EXPECT_FALSE(Accepts(bytes, &error));
  EXPECT_NE(error.find("pinned"), std::string::npos) << error;

  // The CAS's key named in the reply, but signed by another: the
  // signature, not the named key, decides.
  std::vector<uint8_t> unsigned_reply = EncodeUnsigned(200, cas_spki_, Payload());
  std::vector<uint8_t> forged =
      AppendSignature(unsigned_reply, Sign(other.get(), SignedMessage(report_data_, "shop/web", unsigned_reply)));
  error.clear();
  EXPECT_FALSE(Accepts(forged, &error));
  EXPECT_NE(error.find("does not verify"), std::string::npos) << error;
}

TEST_F(RelayReplyTest, AReplyForAnotherStartIsRefused) {
  Hash other_report_data = report_data_;
  other_report_data[31] ^= 1;
  std::string error;
  EXPECT_FALSE(Accepts(MakeReply(200, Payload(), nullptr, &other_report_data), &error));
  EXPECT_NE(error.find("does not verify"), std::string::npos) << error;

  error.clear();
  EXPECT_FALSE(Accepts(MakeReply(200, Payload(), nullptr, nullptr, "shop/db"), &error));
  EXPECT_NE(error.find("does not verify"), std::string::npos) << error;

  // The same reply checked as if for another config id.
  error.clear();
  EXPECT_FALSE(Accepts(MakeReply(200, Payload()), &error, "shop/webx"));
  EXPECT_NE(error.find("does not verify"), std::string::npos) << error;
}

TEST_F(RelayReplyTest, EveryFlippedByteIsRefused) {
  std::vector<uint8_t> good = MakeReply(200, Payload());
  std::string error;
  ASSERT_TRUE(Accepts(good, &error)) << error;
  for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
    for (size_t i = 0; i < good.size(); ++i) {
      std::vector<uint8_t> bad = good;
      bad[i] ^= mask;
      error.clear();
      EXPECT_FALSE(Accepts(bad, &error)) << "byte " << i << " ^ " << int{mask} << " of " << good.size();
      EXPECT_FALSE(error.empty()) << "byte " << i;
    }
  }
}

TEST_F(RelayReplyTest, EveryTruncationAndATrailingByteAreRefused) {
  std::vector<uint8_t> good = MakeReply(200, Payload());
  for (size_t n = 0; n < good.size(); ++n) {
    Reply reply;
    std::string error;
    EXPECT_FALSE(Parse(std::span<const uint8_t>(good).first(n), &reply, &error)) << "length " << n;
    EXPECT_FALSE(error.empty()) << "length " << n;
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  Reply reply;
  std::string error;
  EXPECT_FALSE(Parse(longer, &reply, &error));
  EXPECT_NE(error.find("1 bytes after its signature"), std::string::npos) << error;
}

TEST_F(RelayReplyTest, SignatureOfLengthZeroOrAbove80IsRefused) {
  std::vector<uint8_t> unsigned_reply = EncodeUnsigned(200, cas_spki_, Payload());
  Reply reply;
  std::string error;
  EXPECT_FALSE(Parse(AppendSignature(unsigned_reply, {}), &reply, &error));
  EXPECT_NE(error.find("signature is missing or malformed"), std::string::npos) << error;

  std::vector<uint8_t> sig = Sign(cas_.get(), SignedMessage(report_data_, "shop/web", unsigned_reply));
  std::vector<uint8_t> padded = sig;
  padded.resize(kMaxSignature + 1, 0);
  error.clear();
  EXPECT_FALSE(Parse(AppendSignature(unsigned_reply, padded), &reply, &error));
  EXPECT_NE(error.find("signature is missing or malformed"), std::string::npos) << error;

  // At the limit it parses, and the padding then fails the signature.
  padded.resize(kMaxSignature);
  std::vector<uint8_t> at_limit = AppendSignature(unsigned_reply, padded);
  error.clear();
  ASSERT_TRUE(Parse(at_limit, &reply, &error)) << error;
  EXPECT_FALSE(Verify(reply, pin_, report_data_, "shop/web", &error));
  EXPECT_NE(error.find("does not verify"), std::string::npos) << error;
}

TEST_F(RelayReplyTest, StatusOutsideHttpRangeIsRefused) {
  for (uint16_t status : {uint16_t{0}, uint16_t{99}, uint16_t{600}, uint16_t{0xffff}}) {
    Reply reply;
    std::string error;
    EXPECT_FALSE(Parse(MakeReply(status, Payload()), &reply, &error)) << status;
    EXPECT_NE(error.find("no valid status"), std::string::npos) << status << ": " << error;
  }
  for (uint16_t status : {uint16_t{100}, uint16_t{599}}) {
    std::string error;
    EXPECT_TRUE(Accepts(MakeReply(status, Payload()), &error)) << status << ": " << error;
  }
}

TEST_F(RelayReplyTest, APinnedKeyThatIsNotP256IsRefused) {
  // The pin matches, but the key is not one the runtime can check. A P-384
  // signature does not fit in kMaxSignature, and Verify refuses the key
  // before it looks at the signature, so a stand-in signature will do.
  for (const char* type : {"P-384", "ED25519"}) {
    Key key = std::string_view(type) == "ED25519" ? Key(EVP_PKEY_Q_keygen(nullptr, nullptr, type)) : NewKey(type);
    ASSERT_TRUE(key) << type;
    std::vector<uint8_t> spki = Spki(key.get());
    std::vector<uint8_t> bytes = AppendSignature(EncodeUnsigned(200, spki, Payload()), std::vector<uint8_t>(64, 1));
    Reply reply;
    std::string error;
    ASSERT_TRUE(Parse(bytes, &reply, &error)) << type << ": " << error;
    EXPECT_FALSE(Verify(reply, Sha256(spki), report_data_, "shop/web", &error)) << type;
    EXPECT_NE(error.find("not a P-256"), std::string::npos) << type << ": " << error;
  }
}

TEST_F(RelayReplyTest, OversizedPayloadIsNotEncodedNorParsed) {
  std::vector<uint8_t> big(kMaxPayload + 1, 0x5a);
  EXPECT_TRUE(EncodeUnsigned(200, cas_spki_, big).empty());
  EXPECT_FALSE(EncodeUnsigned(200, cas_spki_, std::span<const uint8_t>(big).first(kMaxPayload)).empty());

  // A length field above the bound, with the bytes really there.
  std::vector<uint8_t> bytes = EncodeUnsigned(200, cas_spki_, {});
  const size_t length_at = bytes.size() - 4;
  const uint32_t n = static_cast<uint32_t>(big.size());
  bytes[length_at] = static_cast<uint8_t>(n >> 24);
  bytes[length_at + 1] = static_cast<uint8_t>(n >> 16);
  bytes[length_at + 2] = static_cast<uint8_t>(n >> 8);
  bytes[length_at + 3] = static_cast<uint8_t>(n);
  bytes.insert(bytes.end(), big.begin(), big.end());
  bytes = AppendSignature(std::move(bytes), std::vector<uint8_t>(70, 1));
  Reply reply;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &reply, &error));
  EXPECT_NE(error.find("larger than allowed"), std::string::npos) << error;
}

}  // namespace
}  // namespace cloister::relay
