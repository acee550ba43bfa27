// The volume commit report (docs/protocol.md section 7): what the runtime
// builds verifies, a change to any signed field does not, and the parser
// takes nothing but the documented form.
#include "attest/volume_commit.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attest/test_keys.h"
#include "crypto/hpke.h"

namespace cloister::volume_commit {
namespace {

using attest_test::Key;

relay::Point PointOf(EVP_PKEY* key) {
  relay::Point p{};
  EXPECT_TRUE(hpke::PublicPoint(key, &p));
  return p;
}

class VolumeCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.reset(EVP_EC_gen("P-256"));
    ASSERT_TRUE(key_);
    point_ = PointOf(key_.get());
    for (size_t i = 0; i < tag_.size(); ++i) tag_[i] = static_cast<uint8_t>(i * 7);
  }

  std::string Build(uint64_t seq = 42, std::string_view volume = "data") {
    std::string body, error;
    EXPECT_TRUE(BuildRequest(token_, point_, volume, seq, tag_, key_.get(), &body, &error)) << error;
    return body;
  }

  Request Parsed(const std::string& body) {
    Request r;
    std::string error;
    EXPECT_TRUE(ParseRequest(body, &r, &error)) << error << ": " << body;
    return r;
  }

  bool Verifies(const Request& r) {
    std::string error;
    return VerifySignature(r, &error);
  }

  std::string ParseError(const std::string& body) {
    Request r;
    std::string error;
    if (ParseRequest(body, &r, &error)) return "parsed";
    return error;
  }

  Key key_;
  relay::Point point_{};
  std::vector<uint8_t> token_ = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  Tag tag_{};
};

TEST_F(VolumeCommitTest, WhatIsBuiltParsesAndVerifies) {
  std::string body = Build();
  Request r = Parsed(body);
  EXPECT_EQ(r.token, token_);
  EXPECT_EQ(r.key, point_);
  EXPECT_EQ(r.volume, "data");
  EXPECT_EQ(r.seq, 42u);
  EXPECT_EQ(r.tag, tag_);
  EXPECT_TRUE(Verifies(r));

  // The documented JSON shape, as any JSON reader sees it.
  nlohmann::json j = nlohmann::json::parse(body);
  EXPECT_EQ(j.size(), 6u);
  EXPECT_EQ(j["volume"], "data");
  EXPECT_EQ(j["seq"], 42);
  EXPECT_EQ(j["tag"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["tag"].get<std::string>().substr(0, 6), "00070e");
  EXPECT_EQ(j["token"], "AQIDBAUGBwgJ");
}

TEST_F(VolumeCommitTest, TheSignedBytesHaveTheDocumentedLayout) {
  std::vector<uint8_t> token = {0xaa, 0xbb};
  std::vector<uint8_t> m = SignedBytes(token, "db", 0x0102030405060708ull, tag_);
  std::vector<uint8_t> expected(kLabel.begin(), kLabel.end());
  for (int b : {0, 0, 0, 2, 0xaa, 0xbb, 0, 0, 0, 2, int{'d'}, int{'b'}, 1, 2, 3, 4, 5, 6, 7, 8}) expected.push_back(static_cast<uint8_t>(b));
  expected.insert(expected.end(), tag_.begin(), tag_.end());
  EXPECT_EQ(m, expected);
}

TEST_F(VolumeCommitTest, SignaturesAreFresh) {
  // ECDSA with OpenSSL's nonces: two reports of the same commit differ in
  // their signature, and both verify.
  Request a = Parsed(Build()), b = Parsed(Build());
  EXPECT_NE(a.signature, b.signature);
  EXPECT_TRUE(Verifies(a));
  EXPECT_TRUE(Verifies(b));
}

TEST_F(VolumeCommitTest, EverySignedFieldAlteredFails) {
  const Request good = Parsed(Build());
  ASSERT_TRUE(Verifies(good));
  Request r = good;
  r.token.push_back(0);
  EXPECT_FALSE(Verifies(r)) << "token";
  r = good;
  r.volume = "date";
  EXPECT_FALSE(Verifies(r)) << "volume";
  r = good;
  r.seq = 43;
  EXPECT_FALSE(Verifies(r)) << "seq";
  r = good;
  r.tag[31] ^= 1;
  EXPECT_FALSE(Verifies(r)) << "tag";
  r = good;
  r.signature[r.signature.size() - 1] ^= 1;
  EXPECT_FALSE(Verifies(r)) << "signature";
  r = good;
  Key other(EVP_EC_gen("P-256"));
  r.key = PointOf(other.get());
  EXPECT_FALSE(Verifies(r)) << "key";
}

TEST_F(VolumeCommitTest, AKeyOffTheCurveIsRefused) {
  Request r = Parsed(Build());
  r.key[64] ^= 1;  // (x, y+1) is not on the curve
  std::string error;
  EXPECT_FALSE(VerifySignature(r, &error));
  EXPECT_NE(error.find("not a valid P-256 point"), std::string::npos) << error;
}

TEST_F(VolumeCommitTest, BuildRefusesWhatTheCasWouldRefuse) {
  std::string body, error;
  Key other(EVP_EC_gen("P-256"));
  EXPECT_FALSE(BuildRequest(token_, point_, "data", 1, tag_, other.get(), &body, &error));
  EXPECT_NE(error.find("private half"), std::string::npos) << error;
  EXPECT_FALSE(BuildRequest(token_, point_, "da ta", 1, tag_, key_.get(), &body, &error));
  EXPECT_FALSE(BuildRequest(token_, point_, std::string(65, 'v'), 1, tag_, key_.get(), &body, &error));
  EXPECT_FALSE(BuildRequest({}, point_, "data", 1, tag_, key_.get(), &body, &error));
  std::vector<uint8_t> long_token(kMaxToken + 1);
  EXPECT_FALSE(BuildRequest(long_token, point_, "data", 1, tag_, key_.get(), &body, &error));
  EXPECT_FALSE(BuildRequest(token_, point_, "data", 1, tag_, nullptr, &body, &error));
}

TEST_F(VolumeCommitTest, ExtremeSeqsRoundTrip) {
  EXPECT_EQ(Parsed(Build(0)).seq, 0u);
  Request r = Parsed(Build(UINT64_MAX));
  EXPECT_EQ(r.seq, UINT64_MAX);
  EXPECT_TRUE(Verifies(r));
}

TEST_F(VolumeCommitTest, WhiteSpaceAndMemberOrderAreFree) {
  nlohmann::json j = nlohmann::json::parse(Build());
  std::string spaced = j.dump(2);  // sorted keys, new lines, indentation
  Request r = Parsed(" \n" + spaced + "\t\r\n");
  EXPECT_TRUE(Verifies(r));
}

TEST_F(VolumeCommitTest, ParsingIsStrict) {
  nlohmann::json good = nlohmann::json::parse(Build());
  auto with = [&](const char* member, nlohmann::json value) {
    nlohmann::json j = good;
    j[member] = std::move(value);
    return j.dump();
  };
  auto without = [&](const char* member) {
    nlohmann::json j = good;
    j.erase(member);
    return j.dump();
  };
  const std::string body = good.dump();
  ASSERT_EQ(ParseError(body), "parsed");

  for (const char* m : {"token", "key", "volume", "seq", "tag", "signature"}) {
    EXPECT_NE(ParseError(without(m)), "parsed") << "without " << m;
  }
  EXPECT_NE(ParseError(with("extra", 1)), "parsed");
  // A member twice (the last one would win in a lenient reader).
  std::string twice = body.substr(0, body.size() - 1) + ",\"volume\":\"other\"}";
  EXPECT_NE(ParseError(twice).find("twice"), std::string::npos);
  // Types and forms.
  EXPECT_NE(ParseError(with("seq", -1)), "parsed");
  EXPECT_NE(ParseError(with("seq", 1.5)), "parsed");
  EXPECT_NE(ParseError(with("seq", "1")), "parsed");
  std::string big = body;
  big.replace(big.find("\"seq\":42"), 8, "\"seq\":18446744073709551616");
  EXPECT_NE(ParseError(big), "parsed");
  std::string leading_zero = body;
  leading_zero.replace(leading_zero.find("\"seq\":42"), 8, "\"seq\":042");
  EXPECT_NE(ParseError(leading_zero), "parsed");
  std::string exponent = body;
  exponent.replace(exponent.find("\"seq\":42"), 8, "\"seq\":42e0");
  EXPECT_NE(ParseError(exponent), "parsed");
  std::string upper = good["tag"].get<std::string>();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_NE(ParseError(with("tag", upper)), "parsed");
  EXPECT_NE(ParseError(with("tag", std::string(62, '0'))), "parsed");
  EXPECT_NE(ParseError(with("volume", "a/b")), "parsed");
  EXPECT_NE(ParseError(with("volume", "")), "parsed");
  EXPECT_NE(ParseError(with("volume", "da\\u0074a")), "parsed");  // an escape, even of a plain letter
  std::string escaped = body;
  escaped.replace(escaped.find("\"data\""), 6, "\"d\\u0061ta\"");
  EXPECT_NE(ParseError(escaped), "parsed");
  // Base64: not canonical (unused bits set), unpadded, wrong alphabet.
  EXPECT_NE(ParseError(with("token", "AR==")), "parsed") << "unused bits set: not the one encoding of 0x01";
  EXPECT_EQ(ParseError(with("token", "AQIDBAUGBwgJ")), "parsed");
  EXPECT_NE(ParseError(with("token", "AQID BAUGBwgJ")), "parsed");
  EXPECT_NE(ParseError(with("token", "AQ")), "parsed");
  EXPECT_EQ(ParseError(with("token", "AQ==")), "parsed") << "one byte is a token as far as the form goes";
  EXPECT_NE(ParseError(with("token", "")), "parsed");
  EXPECT_NE(ParseError(with("token", std::string(4 * (kMaxToken / 3 + 2), 'A'))), "parsed");
  // The key: 65 bytes, uncompressed.
  std::string b64 = good["key"].get<std::string>();
  EXPECT_NE(ParseError(with("key", "A" + b64.substr(1))), "parsed");
  EXPECT_NE(ParseError(with("key", b64.substr(0, 84))), "parsed");
  // Framing.
  EXPECT_NE(ParseError(body + "x"), "parsed");
  EXPECT_NE(ParseError(body + "{}"), "parsed");
  EXPECT_NE(ParseError("[" + body + "]"), "parsed");
  EXPECT_NE(ParseError(body.substr(0, body.size() - 1)), "parsed");
  EXPECT_NE(ParseError(body.substr(0, body.size() - 1) + ",}"), "parsed");
  EXPECT_NE(ParseError("{}"), "parsed");
  EXPECT_NE(ParseError(""), "parsed");
  std::string padded = std::string(kMaxBody, ' ') + body;
  EXPECT_NE(ParseError(padded).find("larger"), std::string::npos);
}

TEST_F(VolumeCommitTest, VolumeNames) {
  EXPECT_TRUE(IsVolumeName("data"));
  EXPECT_TRUE(IsVolumeName("A-z_09"));
  EXPECT_TRUE(IsVolumeName(std::string(64, 'v')));
  EXPECT_FALSE(IsVolumeName(std::string(65, 'v')));
  EXPECT_FALSE(IsVolumeName(""));
  EXPECT_FALSE(IsVolumeName("a.b"));
  EXPECT_FALSE(IsVolumeName("a\"b"));
}

// ---- the CAS's receipt ----

using attest_test::Spki;

class ReceiptTest : public VolumeCommitTest {
 protected:
  void SetUp() override {
    VolumeCommitTest::SetUp();
    cas_.reset(EVP_EC_gen("P-256"));
    ASSERT_TRUE(cas_);
    spki_ = Spki(cas_.get());
    pin_ = attest_test::Sha256(spki_);
  }
  // What the CAS answers to the report of (token_, volume, seq, tag_).
  std::string Receipt(std::string_view volume = "data", uint64_t seq = 42, EVP_PKEY* signer = nullptr) {
    return BuildReceipt(volume, seq, tag_, spki_,
                        attest_test::Sign(signer ? signer : cas_.get(), ReceiptMessage(token_, volume, seq, tag_)));
  }
  std::string Check(const std::string& body, uint64_t seq = 42, std::string_view volume = "data") {
    std::string error;
    return VerifyReceipt(body, pin_, token_, volume, seq, tag_, &error) ? "valid" : error;
  }

  Key cas_;
  std::vector<uint8_t> spki_;
  relay::Hash pin_{};
};

TEST_F(ReceiptTest, TheCasReceiptVerifiesForItsReportOnly) {
  std::string body = Receipt();
  EXPECT_EQ(Check(body), "valid");
  nlohmann::json j = nlohmann::json::parse(body);
  EXPECT_EQ(j.size(), 5u);
  EXPECT_EQ(j["seq"], 42);

  // Another commit: the answer names it, or the signature is over it.
  EXPECT_NE(Check(body, 43).find("another commit"), std::string::npos);
  EXPECT_NE(Check(body, 42, "logs").find("another commit"), std::string::npos);
  std::string other_seq = Receipt("data", 41);
  other_seq.replace(other_seq.find("\"seq\":41"), 8, "\"seq\":42");
  EXPECT_NE(Check(other_seq).find("does not verify"), std::string::npos);
  std::string error;
  std::vector<uint8_t> other_token = token_;
  other_token[0] ^= 1;
  EXPECT_FALSE(VerifyReceipt(body, pin_, other_token, "data", 42, tag_, &error));
  EXPECT_NE(error.find("does not verify"), std::string::npos) << error;
  Tag other_tag = tag_;
  other_tag[0] ^= 1;
  EXPECT_FALSE(VerifyReceipt(body, pin_, token_, "data", 42, other_tag, &error));

  // Signed by a key that is not the pinned one (a LAS making up an answer).
  Key forger(EVP_EC_gen("P-256"));
  std::vector<uint8_t> forger_spki = Spki(forger.get());
  std::string forged = BuildReceipt("data", 42, tag_, forger_spki,
                                    attest_test::Sign(forger.get(), ReceiptMessage(token_, "data", 42, tag_)));
  EXPECT_NE(Check(forged).find("not the pinned CAS key"), std::string::npos);
  // The pinned key named, another key signing.
  EXPECT_NE(Check(Receipt("data", 42, forger.get())).find("does not verify"), std::string::npos);
}

TEST_F(ReceiptTest, AReceiptIsParsedStrictly) {
  nlohmann::json good = nlohmann::json::parse(Receipt());
  ASSERT_EQ(Check(good.dump()), "valid");  // any member order
  for (const char* m : {"volume", "seq", "tag", "cas_key", "receipt"}) {
    nlohmann::json j = good;
    j.erase(m);
    EXPECT_NE(Check(j.dump()), "valid") << "without " << m;
  }
  nlohmann::json extra = good;
  extra["note"] = "x";
  EXPECT_NE(Check(extra.dump()).find("unknown member"), std::string::npos);
  EXPECT_NE(Check(good.dump() + " x"), "valid");
  EXPECT_NE(Check("{\"error\":\"stale\"}"), "valid");
}

}  // namespace
}  // namespace cloister::volume_commit
