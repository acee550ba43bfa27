// Keys and signatures for the unit tests of src/attest: what a CAS or a
// program does with its P-256 key, through OpenSSL directly (the code
// under test is checked against OpenSSL, not against itself).
#pragma once

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace cloister::attest_test {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

inline Key NewKey(const char* curve = "P-256") { return Key(EVP_EC_gen(curve)); }

// DER SubjectPublicKeyInfo of `key`, as i2d_PUBKEY writes it.
inline std::vector<uint8_t> Spki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  EXPECT_GT(n, 0);
  if (n <= 0) return {};
  std::vector<uint8_t> out(der, der + n);
  OPENSSL_free(der);
  return out;
}

inline std::array<uint8_t, 32> Sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> h{};
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), h.data(), &len, EVP_sha256(), nullptr), 1);
  return h;
}

// ECDSA with SHA-256, DER, over `message`.
inline std::vector<uint8_t> Sign(EVP_PKEY* key, std::span<const uint8_t> message) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t size = 0;
  EXPECT_EQ(EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  EXPECT_EQ(EVP_DigestSign(md.get(), nullptr, &size, message.data(), message.size()), 1);
  std::vector<uint8_t> sig(size);
  EXPECT_EQ(EVP_DigestSign(md.get(), sig.data(), &size, message.data(), message.size()), 1);
  sig.resize(size);
  return sig;
}

}  // namespace cloister::attest_test
