// The runtime's check of a reply the LAS relayed from the CAS
// (docs/protocol.md section 6): a reply the pinned CAS made for this start
// opens to the grant; a reply for another start, by another key, or sealed
// to anyone else does not, and every failure names the LAS that relayed it.
//
// runtime_test links no other project library, so the test plays the CAS
// with plain EVP calls.
#include "runtime/relayed.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "attest/relay_reply.h"
#include "crypto/hpke.h"
#include "runtime/cas_client.h"
#include "runtime/config.h"

namespace cloister::runtime {
namespace {

constexpr std::string_view kFrom = "the reply the LAS at /run/test.sock relayed from the CAS";
constexpr std::string_view kGrant = R"({"session":"shop","service":"web","command":["/bin/true"]})";

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> Spki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  EXPECT_GT(n, 0);
  if (n <= 0) return {};
  std::vector<uint8_t> out(der, der + n);
  OPENSSL_free(der);
  return out;
}

relay::Hash Sha256(std::span<const uint8_t> data) {
  relay::Hash h{};
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), h.data(), &len, EVP_sha256(), nullptr), 1);
  return h;
}

std::vector<uint8_t> Sign(EVP_PKEY* key, std::span<const uint8_t> message) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t size = 0;
  EXPECT_EQ(EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  EXPECT_EQ(EVP_DigestSign(md.get(), nullptr, &size, message.data(), message.size()), 1);
  std::vector<uint8_t> sig(size);
  EXPECT_EQ(EVP_DigestSign(md.get(), sig.data(), &size, message.data(), message.size()), 1);
  sig.resize(size);
  return sig;
}

// HPKE enc || ciphertext of `grant`, sealed to `point` as the CAS seals it.
std::vector<uint8_t> SealGrant(const relay::Point& point, std::string_view aad, std::string_view grant = kGrant) {
  std::vector<uint8_t> enc, ciphertext;
  EXPECT_EQ(hpke::Seal(point, AsSpan(relay::kGrantInfo), AsSpan(aad), AsSpan(grant), &enc, &ciphertext),
            hpke::Error::kNone);
  enc.insert(enc.end(), ciphertext.begin(), ciphertext.end());
  return enc;
}

std::string Text(const SecretBytes& body) { return std::string(body.begin(), body.end()); }

class RelayedReplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cas_.reset(EVP_EC_gen("P-256"));
    ASSERT_TRUE(cas_);
    auto id = CreateClientKey();
    ASSERT_TRUE(id.ok()) << id.error();
    identity_ = std::move(id.value());
    settings_.relayed = true;
    settings_.cas_key = Sha256(Spki(cas_.get()));
    settings_.config_id = "shop/web";
    settings_.session = "shop";
    settings_.service = "web";
    settings_.las_socket = "/run/test.sock";
  }

  // A reply with `status` and `payload`, signed by `signer` (the CAS by
  // default) for `report_data` (this start's by default) and "shop/web".
  std::vector<uint8_t> MakeReply(uint16_t status, std::span<const uint8_t> payload, EVP_PKEY* signer = nullptr,
                                 const ReportData* report_data = nullptr) {
    if (signer == nullptr) signer = cas_.get();
    if (report_data == nullptr) report_data = &identity_.report_data;
    std::vector<uint8_t> unsigned_reply = relay::EncodeUnsigned(status, Spki(signer), payload);
    EXPECT_FALSE(unsigned_reply.empty());
    std::vector<uint8_t> sig = Sign(signer, relay::SignedMessage(*report_data, settings_.config_id, unsigned_reply));
    return relay::AppendSignature(std::move(unsigned_reply), sig);
  }

  // Expects OpenRelayedReply to fail with the message prefix and `what`.
  void ExpectFails(std::span<const uint8_t> reply, std::string_view what) {
    Result<HttpResponse> r = OpenRelayedReply(reply, settings_, identity_);
    ASSERT_FALSE(r.ok()) << "status " << r.value().status;
    EXPECT_EQ(r.error().rfind(kFrom, 0), 0u) << r.error();
    EXPECT_NE(r.error().find(what), std::string::npos) << r.error();
  }

  Key cas_;
  ClientIdentity identity_;
  Settings settings_;
};

TEST_F(RelayedReplyTest, OpensTheGrantSealedToThisStart) {
  std::vector<uint8_t> reply = MakeReply(200, SealGrant(identity_.point, "shop/web"));
  Result<HttpResponse> r = OpenRelayedReply(reply, settings_, identity_);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().status, 200);
  EXPECT_EQ(Text(r.value().body), kGrant);
}

TEST_F(RelayedReplyTest, ARefusalIsReturnedAsIs) {
  constexpr std::string_view kRefusal = R"({"error":"the executable's measurement is not allowed"})";
  std::vector<uint8_t> reply = MakeReply(403, AsSpan(kRefusal));
  Result<HttpResponse> r = OpenRelayedReply(reply, settings_, identity_);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().status, 403);
  EXPECT_EQ(Text(r.value().body), kRefusal);
}

TEST_F(RelayedReplyTest, AGrantSealedToAnotherKeyDoesNotOpen) {
  auto other = CreateClientKey();
  ASSERT_TRUE(other.ok()) << other.error();
  // Signed for this start, but sealed to another key.
  ExpectFails(MakeReply(200, SealGrant(other.value().point, "shop/web")), "does not open with this start's key");
}

TEST_F(RelayedReplyTest, AReplyForAnotherStartIsRefused) {
  auto other = CreateClientKey();
  ASSERT_TRUE(other.ok()) << other.error();
  // Sealed to this start's key, signed over another start's report data.
  ExpectFails(MakeReply(200, SealGrant(identity_.point, "shop/web"), nullptr, &other.value().report_data),
              "does not verify");
  // A whole reply made for the other start.
  ExpectFails(MakeReply(200, SealGrant(other.value().point, "shop/web"), nullptr, &other.value().report_data),
              "does not verify");
}

TEST_F(RelayedReplyTest, AReplySignedByAnotherKeyIsRefused) {
  Key other(EVP_EC_gen("P-256"));
  ASSERT_TRUE(other);
  ExpectFails(MakeReply(200, SealGrant(identity_.point, "shop/web"), other.get()), "pinned");
  // A refusal by another key is no more believed than a grant.
  ExpectFails(MakeReply(403, AsSpan(R"({"error":"no"})"), other.get()), "pinned");
}

TEST_F(RelayedReplyTest, AGrantSealedForAnotherConfigIdDoesNotOpen) {
  ExpectFails(MakeReply(200, SealGrant(identity_.point, "shop/db")), "does not open with this start's key");
  ExpectFails(MakeReply(200, SealGrant(identity_.point, "")), "does not open with this start's key");
}

TEST_F(RelayedReplyTest, APayloadShorterThanEncAndTagIsRefused) {
  std::vector<uint8_t> sealed = SealGrant(identity_.point, "shop/web");
  for (size_t n : {size_t{0}, size_t{1}, hpke::kEncSize, hpke::kEncSize + hpke::kTagSize - 1}) {
    ExpectFails(MakeReply(200, std::span<const uint8_t>(sealed).first(n)), "holds no sealed grant");
  }
  // Exactly enc and tag, but cut from a longer ciphertext: it does not open.
  ExpectFails(MakeReply(200, std::span<const uint8_t>(sealed).first(hpke::kEncSize + hpke::kTagSize)),
              "does not open with this start's key");
}

TEST_F(RelayedReplyTest, AMalformedReplyIsRefused) {
  std::vector<uint8_t> reply = MakeReply(200, SealGrant(identity_.point, "shop/web"));
  ExpectFails(std::span<const uint8_t>(reply).first(reply.size() - 1), "is malformed");
  reply.push_back(0);
  ExpectFails(reply, "is malformed");
  ExpectFails({}, "is malformed");
}

}  // namespace
}  // namespace cloister::runtime
