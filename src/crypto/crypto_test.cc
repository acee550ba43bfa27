#include "crypto/crypto.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

namespace cloister::crypto {
namespace {

SecretBytes FromHex(const char* hex) {
  auto b = HexDecode(hex);
  return SecretBytes(b->data(), b->size());
}

TEST(CryptoTest, Sha256KnownAnswer) {
  EXPECT_EQ(HexEncode(Sha256(AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256Hasher h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.Finish(), Sha256(AsBytes("abc")));
}

TEST(CryptoTest, HmacSha256Rfc4231Case2) {
  SecretBytes key(reinterpret_cast<const uint8_t*>("Jefe"), 4);
  EXPECT_EQ(HexEncode(HmacSha256(key, {AsBytes("what do ya want "), AsBytes("for nothing?")})),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, HkdfRfc5869Case1) {
  SecretBytes ikm = FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  auto salt = *HexDecode("000102030405060708090a0b0c");
  auto info = *HexDecode("f0f1f2f3f4f5f6f7f8f9");
  auto okm = HkdfSha256(ikm, salt, info, 42);
  ASSERT_TRUE(okm.ok());
  EXPECT_EQ(HexEncode(okm->UnsafeBytes()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

TEST(CryptoTest, HkdfRfc5869Case3EmptySaltAndInfo) {
  SecretBytes ikm = FromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  auto okm = HkdfSha256(ikm, {}, {}, 42);
  ASSERT_TRUE(okm.ok()) << okm.status().ToString();
  EXPECT_EQ(HexEncode(okm->UnsafeBytes()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(CryptoTest, AeadRoundTripAndEveryTamperFails) {
  auto key = RandomSecret(32);
  auto a = Aead::New(*key);
  ASSERT_TRUE(a.ok());
  Bytes aad = {1, 2, 3};
  Bytes pt(1000, 0x5a);
  Bytes ct(pt.size());
  Nonce nonce;
  AeadTag tag;
  ASSERT_TRUE((*a)->Seal(aad, pt, ct, nonce, tag).ok());
  EXPECT_NE(ct, pt);
  Bytes out(pt.size());
  ASSERT_TRUE((*a)->Open(aad, nonce, tag, ct, out).ok());
  EXPECT_EQ(out, pt);

  Bytes bad_ct = ct;
  bad_ct[500] ^= 1;
  EXPECT_EQ((*a)->Open(aad, nonce, tag, bad_ct, out).code(), StatusCode::kIntegrity);
  EXPECT_EQ(out, Bytes(pt.size(), 0)) << "failed decryption must not leave plaintext";
  Bytes bad_aad = {1, 2, 4};
  EXPECT_FALSE((*a)->Open(bad_aad, nonce, tag, ct, out).ok());
  Nonce bad_nonce = nonce;
  bad_nonce[0] ^= 1;
  EXPECT_FALSE((*a)->Open(aad, bad_nonce, tag, ct, out).ok());
  AeadTag bad_tag = tag;
  bad_tag[15] ^= 1;
  EXPECT_FALSE((*a)->Open(aad, nonce, bad_tag, ct, out).ok());
}

TEST(CryptoTest, AuthenticateOnlyDetectsChanges) {
  auto a = Aead::New(*RandomSecret(32));
  Bytes data(4096, 7);
  Nonce n;
  AeadTag t;
  ASSERT_TRUE((*a)->Authenticate({}, data, n, t).ok());
  EXPECT_TRUE((*a)->Verify({}, data, n, t).ok());
  data[4095] ^= 0x80;
  EXPECT_EQ((*a)->Verify({}, data, n, t).code(), StatusCode::kIntegrity);
}

TEST(CryptoTest, RecordsRoundTrip) {
  auto a = Aead::New(*RandomSecret(32));
  auto rec = (*a)->SealRecord(AsBytes("ctx"), AsBytes("hello"));
  ASSERT_TRUE(rec.ok());
  auto back = (*a)->OpenRecord(AsBytes("ctx"), *rec);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::string(back->begin(), back->end()), "hello");
  EXPECT_FALSE((*a)->OpenRecord(AsBytes("other"), *rec).ok());
  EXPECT_FALSE((*a)->OpenRecord(AsBytes("ctx"), std::span<const uint8_t>(rec->data(), 10)).ok());
}

TEST(CryptoTest, NoncesAreFreshAndNeverRepeat) {
  std::set<Nonce> seen;
  for (int i = 0; i < 100000; ++i) {
    Nonce n;
    ASSERT_TRUE(FreshNonce(n).ok());
    ASSERT_TRUE(seen.insert(n).second) << "nonce repeated";
  }
}

TEST(CryptoTest, ChildAfterForkDoesNotReuseParentNonces) {
  Nonce warm;
  ASSERT_TRUE(FreshNonce(warm).ok());  // fills the per-thread buffer
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Nonce n;
    bool ok = FreshNonce(n).ok();
    ssize_t w = write(fds[1], n.data(), n.size());
    _exit(ok && w == static_cast<ssize_t>(n.size()) ? 0 : 1);
  }
  Nonce parent;
  ASSERT_TRUE(FreshNonce(parent).ok());
  Nonce child;
  ASSERT_EQ(read(fds[0], child.data(), child.size()), static_cast<ssize_t>(child.size()));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(parent, child);
  close(fds[0]);
  close(fds[1]);
}

TEST(CryptoTest, RejectsWrongKeySize) {
  EXPECT_FALSE(Aead::New(SecretBytes(16)).ok());
}

}  // namespace
}  // namespace cloister::crypto
