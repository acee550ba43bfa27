// Cryptographic primitives, all through OpenSSL 3 EVP. Nothing here
// implements a primitive; this module only fixes parameters and makes the
// APIs hard to misuse: AEAD callers never choose nonces, keys live in
// SecretBytes, tags are compared in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/status.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace cloister::crypto {

using Digest = std::array<uint8_t, 32>;

// Fills `out` from OpenSSL's DRBG. Fails only if the DRBG cannot be seeded.
Status RandomBytes(std::span<uint8_t> out);
StatusOr<SecretBytes> RandomSecret(size_t n);

// One-shot and incremental SHA-256.
Digest Sha256(std::span<const uint8_t> data);
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::span<const uint8_t> data);
  void Update(std::string_view s) { Update(AsBytes(s)); }
  void UpdateU64(uint64_t v);
  Digest Finish();  // resets the hasher for reuse

 private:
  EVP_MD_CTX* ctx_;
};

// HMAC-SHA-256 over the concatenation of `parts`.
Digest HmacSha256(const SecretBytes& key,
                  std::initializer_list<std::span<const uint8_t>> parts);

// HKDF-SHA-256 (RFC 5869), extract-and-expand.
StatusOr<SecretBytes> HkdfSha256(const SecretBytes& ikm,
                                 std::span<const uint8_t> salt,
                                 std::span<const uint8_t> info, size_t length);

constexpr size_t kAeadKeySize = 32;
constexpr size_t kAeadNonceSize = 12;
constexpr size_t kAeadTagSize = 16;
using Nonce = std::array<uint8_t, kAeadNonceSize>;
using AeadTag = std::array<uint8_t, kAeadTagSize>;

// AES-256-GCM with a fixed key. Every Seal draws a fresh 96-bit nonce from
// the DRBG (buffered per thread and discarded across fork) and returns it;
// callers store it but can never supply one for encryption.
//
// An Aead object keeps one OpenSSL context with the expanded key, so it is
// not safe for concurrent use: give each thread its own (Clone()).
class Aead {
 public:
  static StatusOr<std::unique_ptr<Aead>> New(const SecretBytes& key);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  StatusOr<std::unique_ptr<Aead>> Clone() const { return New(key_); }

  // Encrypts `plaintext` into `ciphertext` (same length; may alias).
  Status Seal(std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
              std::span<uint8_t> ciphertext, Nonce& nonce, AeadTag& tag);
  // Decrypts and authenticates; on failure `plaintext` is zeroed and
  // kIntegrity is returned. `plaintext` may alias `ciphertext`.
  Status Open(std::span<const uint8_t> aad, const Nonce& nonce,
              const AeadTag& tag, std::span<const uint8_t> ciphertext,
              std::span<uint8_t> plaintext);

  // Authentication without encryption (GMAC): the data is only associated
  // data, so it stays readable; a fresh nonce is drawn as for Seal.
  Status Authenticate(std::span<const uint8_t> aad,
                      std::span<const uint8_t> data, Nonce& nonce,
                      AeadTag& tag);
  Status Verify(std::span<const uint8_t> aad, std::span<const uint8_t> data,
                const Nonce& nonce, const AeadTag& tag);

  // Convenience for small records: nonce || ciphertext || tag.
  StatusOr<Bytes> SealRecord(std::span<const uint8_t> aad,
                             std::span<const uint8_t> plaintext);
  StatusOr<Bytes> OpenRecord(std::span<const uint8_t> aad,
                             std::span<const uint8_t> record);

 private:
  explicit Aead(const SecretBytes& key);
  SecretBytes key_;
  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
};

// Draws a fresh nonce. Exposed for tests of the nonce source only.
Status FreshNonce(Nonce& nonce);

}  // namespace cloister::crypto
