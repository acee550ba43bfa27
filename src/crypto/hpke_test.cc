#include "crypto/hpke.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include <string>

#include "base/bytes.h"

namespace cloister::hpke {
namespace {

// RFC 9180 Appendix A.3.1: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
// AES-128-GCM, mode_base, and its first encryption (sequence number 0).
constexpr char kInfo[] = "4f6465206f6e2061204772656369616e2055726e";
constexpr char kIkmE[] = "4270e54ffd08d79d5928020af4686d8f6b7d35dbe470265f1f5aa22816ce860e";
constexpr char kPkEm[] =
    "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac9"
    "8536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4";
constexpr char kSkEm[] = "4995788ef4b9d6132b249ce59a77281493eb39af373d236a1fe415cb0c2d7beb";
constexpr char kIkmR[] = "668b37171f1072f3cf12ea8a236a45df23fc13b82af3609ad1e354f6ef817550";
constexpr char kPkRm[] =
    "04fe8c19ce0905191ebc298a9245792531f26f0cece2460639e8bc39cb7f706a82"
    "6a779b4cf969b8a0e539c7f62fb3d30ad6aa8f80e30f1d128aafd68a2ce72ea0";
constexpr char kSkRm[] = "f3ce7fdae57e1a310d87f1ebbde6f328be0a99cdbcadf4d6589cf29de4b8ffd2";
constexpr char kPt[] = "4265617574792069732074727574682c20747275746820626561757479";
constexpr char kAad[] = "436f756e742d30";
constexpr char kCt[] =
    "5ad590bb8baa577f8619db35a36311226a896e7342a6d836d8b7bcd2f20b6c7f"
    "9076ac232e3ab2523f39513434";

Bytes Hex(const char* hex) {
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.has_value()) << hex;
  return bytes.value_or(Bytes{});
}

std::string PrivateHex(EVP_PKEY* key) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) != 1) return "";
  std::array<uint8_t, 32> scalar;
  const int n = BN_bn2binpad(bn, scalar.data(), scalar.size());
  BN_clear_free(bn);
  return n == 32 ? HexEncode(scalar) : "";
}

Bytes Point(EVP_PKEY* key) {
  std::array<uint8_t, kPublicKeySize> point;
  EXPECT_TRUE(PublicPoint(key, &point));
  return Bytes(point.begin(), point.end());
}

KeyPtr NewKey(const char* curve = "P-256") {
  return KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}

// A recipient key and one sealed message, for the tampering tests.
struct Sealed {
  KeyPtr key = NewKey();
  Bytes info = Hex("0102");
  Bytes aad = Hex("a0a1a2");
  Bytes plaintext = Hex("00112233445566778899aabbccddeeff0011");
  Bytes enc, ciphertext;

  Sealed() {
    EXPECT_EQ(Seal(Point(key.get()), info, aad, plaintext, &enc, &ciphertext),
              Error::kNone);
  }
};

// Opens with a plaintext buffer that already holds data, so a failure
// that forgot to empty it would show.
Error OpenInto(EVP_PKEY* key, const Bytes& enc, const Bytes& info, const Bytes& aad,
               const Bytes& ciphertext, Bytes* plaintext) {
  plaintext->assign(7, 0x5a);
  return Open(key, enc, info, aad, ciphertext, plaintext);
}

TEST(HpkeTest, DeriveKeyPairMatchesRfc9180A31) {
  KeyPtr ephemeral = DeriveKeyPair(Hex(kIkmE));
  KeyPtr recipient = DeriveKeyPair(Hex(kIkmR));
  ASSERT_TRUE(ephemeral && recipient);
  EXPECT_EQ(PrivateHex(ephemeral.get()), kSkEm);
  EXPECT_EQ(HexEncode(Point(ephemeral.get())), kPkEm);
  EXPECT_EQ(PrivateHex(recipient.get()), kSkRm);
  EXPECT_EQ(HexEncode(Point(recipient.get())), kPkRm);
}

TEST(HpkeTest, SealMatchesRfc9180A31FirstEncryption) {
  KeyPtr ephemeral = DeriveKeyPair(Hex(kIkmE));
  ASSERT_TRUE(ephemeral);
  Bytes enc, ciphertext;
  ASSERT_EQ(SealWithEphemeral(ephemeral.get(), Hex(kPkRm), Hex(kInfo), Hex(kAad),
                              Hex(kPt), &enc, &ciphertext),
            Error::kNone);
  EXPECT_EQ(HexEncode(enc), kPkEm);  // enc is pkEm serialized
  EXPECT_EQ(HexEncode(ciphertext), kCt);
}

TEST(HpkeTest, OpensRfc9180A31FirstEncryption) {
  KeyPtr recipient = DeriveKeyPair(Hex(kIkmR));
  ASSERT_TRUE(recipient);
  Bytes plaintext;
  ASSERT_EQ(Open(recipient.get(), Hex(kPkEm), Hex(kInfo), Hex(kAad), Hex(kCt),
                 &plaintext),
            Error::kNone);
  EXPECT_EQ(HexEncode(plaintext), kPt);
}

TEST(HpkeTest, RoundTripWithFreshKey) {
  Sealed s;
  EXPECT_EQ(s.enc.size(), kEncSize);
  EXPECT_EQ(s.ciphertext.size(), s.plaintext.size() + kTagSize);
  Bytes plaintext;
  ASSERT_EQ(OpenInto(s.key.get(), s.enc, s.info, s.aad, s.ciphertext, &plaintext),
            Error::kNone);
  EXPECT_EQ(plaintext, s.plaintext);
}

TEST(HpkeTest, RoundTripOfEmptyMessageWithoutInfoOrAad) {
  KeyPtr key = NewKey();
  Bytes enc, ciphertext, plaintext;
  ASSERT_EQ(Seal(Point(key.get()), {}, {}, {}, &enc, &ciphertext), Error::kNone);
  EXPECT_EQ(ciphertext.size(), kTagSize);
  EXPECT_EQ(OpenInto(key.get(), enc, {}, {}, ciphertext, &plaintext), Error::kNone);
  EXPECT_TRUE(plaintext.empty());
}

TEST(HpkeTest, OpenRejectsEveryAlteredByteOfEnc) {
  Sealed s;
  for (size_t i = 0; i < s.enc.size(); ++i) {
    Bytes enc = s.enc, plaintext;
    enc[i] ^= 0x01;
    // Most changes leave the curve (kBadEnc); the rest fail authentication.
    EXPECT_NE(OpenInto(s.key.get(), enc, s.info, s.aad, s.ciphertext, &plaintext),
              Error::kNone)
        << "byte " << i;
    EXPECT_TRUE(plaintext.empty()) << "byte " << i;
  }
}

TEST(HpkeTest, OpenRejectsEveryAlteredByteOfCiphertextAndTag) {
  Sealed s;
  for (size_t i = 0; i < s.ciphertext.size(); ++i) {
    Bytes ciphertext = s.ciphertext, plaintext;
    ciphertext[i] ^= 0x80;
    EXPECT_EQ(OpenInto(s.key.get(), s.enc, s.info, s.aad, ciphertext, &plaintext),
              Error::kOpenFailed)
        << "byte " << i;
    EXPECT_TRUE(plaintext.empty()) << "byte " << i;
  }
}

TEST(HpkeTest, OpenRejectsTruncatedCiphertext) {
  Sealed s;
  Bytes plaintext;
  Bytes dropped_last(s.ciphertext.begin(), s.ciphertext.end() - 1);
  EXPECT_EQ(OpenInto(s.key.get(), s.enc, s.info, s.aad, dropped_last, &plaintext),
            Error::kOpenFailed);
  EXPECT_TRUE(plaintext.empty());
  Bytes shorter_than_tag(s.ciphertext.begin(), s.ciphertext.begin() + kTagSize - 1);
  EXPECT_EQ(OpenInto(s.key.get(), s.enc, s.info, s.aad, shorter_than_tag, &plaintext),
            Error::kOpenFailed);
  EXPECT_TRUE(plaintext.empty());
}

TEST(HpkeTest, OpenRejectsOtherInfo) {
  Sealed s;
  Bytes plaintext;
  for (const Bytes& info : {Bytes{}, Hex("0103"), Hex("010200")}) {
    EXPECT_EQ(OpenInto(s.key.get(), s.enc, info, s.aad, s.ciphertext, &plaintext),
              Error::kOpenFailed);
    EXPECT_TRUE(plaintext.empty());
  }
}

TEST(HpkeTest, OpenRejectsOtherAad) {
  Sealed s;
  Bytes plaintext;
  for (const Bytes& aad : {Bytes{}, Hex("a0a1a3"), Hex("a0a1a2a3")}) {
    EXPECT_EQ(OpenInto(s.key.get(), s.enc, s.info, aad, s.ciphertext, &plaintext),
              Error::kOpenFailed);
    EXPECT_TRUE(plaintext.empty());
  }
}

TEST(HpkeTest, OpenRejectsOtherRecipientKey) {
  Sealed s;
  KeyPtr other = NewKey();
  Bytes plaintext;
  EXPECT_EQ(OpenInto(other.get(), s.enc, s.info, s.aad, s.ciphertext, &plaintext),
            Error::kOpenFailed);
  EXPECT_TRUE(plaintext.empty());
}

TEST(HpkeTest, OpenRejectsKeyOnOtherCurve) {
  Sealed s;
  KeyPtr p384 = NewKey("P-384");
  ASSERT_TRUE(p384);
  Bytes plaintext;
  EXPECT_EQ(OpenInto(p384.get(), s.enc, s.info, s.aad, s.ciphertext, &plaintext),
            Error::kInternal);
  EXPECT_TRUE(plaintext.empty());
}

TEST(HpkeTest, SealRejectsInvalidPublicKeys) {
  const Bytes good = Hex(kPkRm);
  Bytes off_curve = good;
  off_curve.back() ^= 0x01;
  Bytes compressed(good.begin(), good.begin() + 33);  // 0x02 || X is a valid point
  compressed[0] = 0x02;
  Bytes hybrid = good;  // SEC1 hybrid form, which OpenSSL alone would accept
  hybrid[0] = 0x06 | (good.back() & 1);
  Bytes wrong_prefix = good;
  wrong_prefix[0] = 0x02;
  const Bytes cases[] = {
      {},
      Bytes{0x00},  // the point at infinity
      Bytes(good.begin(), good.end() - 1),
      [&] { Bytes b = good; b.push_back(0); return b; }(),
      off_curve,
      compressed,
      hybrid,
      wrong_prefix,
      Bytes(kPublicKeySize, 0),
  };
  ERR_clear_error();  // what earlier tests in this binary left behind
  for (size_t i = 0; i < std::size(cases); ++i) {
    Bytes enc = {1}, ciphertext = {1};
    EXPECT_EQ(Seal(cases[i], {}, {}, Hex(kPt), &enc, &ciphertext),
              Error::kBadPublicKey)
        << "case " << i;
    EXPECT_TRUE(enc.empty() && ciphertext.empty()) << "case " << i;
  }
  // The rejections leave nothing in OpenSSL's error queue.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(HpkeTest, OpenRejectsCompressedEnc) {
  Sealed s;
  Bytes compressed(s.enc.begin(), s.enc.begin() + 33);
  compressed[0] = 0x02 | (s.enc.back() & 1);
  Bytes plaintext;
  ERR_clear_error();
  EXPECT_EQ(OpenInto(s.key.get(), compressed, s.info, s.aad, s.ciphertext, &plaintext),
            Error::kBadEnc);
  EXPECT_TRUE(plaintext.empty());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(HpkeTest, SealsOfSameMessageDiffer) {
  KeyPtr key = NewKey();
  Bytes enc1, ct1, enc2, ct2;
  ASSERT_EQ(Seal(Point(key.get()), {}, {}, Hex(kPt), &enc1, &ct1), Error::kNone);
  ASSERT_EQ(Seal(Point(key.get()), {}, {}, Hex(kPt), &enc2, &ct2), Error::kNone);
  EXPECT_NE(enc1, enc2);
  EXPECT_NE(ct1, ct2);
}

TEST(HpkeTest, PublicPointIsUncompressedWhateverTheKeysFormat) {
  KeyPtr key = NewKey();
  const Bytes before = Point(key.get());
  ASSERT_EQ(EVP_PKEY_set_utf8_string_param(
                key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
            1);
  EXPECT_EQ(Point(key.get()), before);
  EXPECT_EQ(before.size(), kPublicKeySize);
  EXPECT_EQ(before[0], 0x04);
}

TEST(HpkeTest, PublicPointRejectsOtherCurves) {
  KeyPtr p384 = NewKey("P-384");
  std::array<uint8_t, kPublicKeySize> point;
  EXPECT_FALSE(PublicPoint(p384.get(), &point));
}

TEST(HpkeTest, DeriveKeyPairRejectsShortIkm) {
  EXPECT_FALSE(DeriveKeyPair(Bytes(31, 0x42)));
  EXPECT_TRUE(DeriveKeyPair(Bytes(32, 0x42)));
}

TEST(HpkeTest, ErrorTextNamesEveryError) {
  for (Error e : {Error::kNone, Error::kBadPublicKey, Error::kBadEnc,
                  Error::kOpenFailed, Error::kInternal}) {
    ASSERT_NE(ErrorText(e), nullptr);
    EXPECT_GT(std::string(ErrorText(e)).size(), 0u);
  }
}

}  // namespace
}  // namespace cloister::hpke
