// Hybrid Public Key Encryption (RFC 9180), base mode, single-shot, for one
// fixed suite only:
//
//   KEM  DHKEM(P-256, HKDF-SHA256)  kem_id  0x0010
//   KDF  HKDF-SHA256                kdf_id  0x0001
//   AEAD AES-128-GCM                aead_id 0x0001
//
// Every context seals exactly one message, so the AEAD nonce is always the
// derived base_nonce (sequence number 0, RFC 9180 section 5.2); callers
// never see or supply a nonce. There is no PSK, no sender authentication
// and no secret export.
//
// This header and hpke.cc depend on OpenSSL and the C++ standard library
// only: the same source is compiled into libcloister-runtime.so, which is
// built from its own sources against a static OpenSSL.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace cloister::hpke {

// Npk = Nenc for P-256: an uncompressed SEC1 point, 0x04 || X || Y.
inline constexpr size_t kPublicKeySize = 65;
inline constexpr size_t kEncSize = kPublicKeySize;
// AES-128-GCM tag; a ciphertext is always plaintext size + kTagSize.
inline constexpr size_t kTagSize = 16;

enum class Error {
  kNone,
  kBadPublicKey,  // the recipient public key is not an uncompressed P-256 point
  kBadEnc,        // `enc` is not an uncompressed P-256 point
  kOpenFailed,    // authentication failed: wrong key, info, aad or data
  kInternal,      // OpenSSL failed, or a key given is not a P-256 key
};

// A short English reason, for local logs. Never null.
const char* ErrorText(Error error);

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

// Encrypts `plaintext` to the holder of the private key matching
// `recipient_public` (a 65-byte uncompressed P-256 point), under a fresh
// ephemeral key. `info` binds the application context and `aad` is
// authenticated but not encrypted; Open must be given the same two.
// On success `*enc` holds kEncSize bytes and `*ciphertext` holds
// plaintext.size() + kTagSize bytes; on failure both are empty.
Error Seal(std::span<const uint8_t> recipient_public,
           std::span<const uint8_t> info, std::span<const uint8_t> aad,
           std::span<const uint8_t> plaintext, std::vector<uint8_t>* enc,
           std::vector<uint8_t>* ciphertext);

// Decrypts what Seal produced. `recipient_private` is a P-256 private key
// (borrowed). On success `*plaintext` holds the message; on any failure it
// is empty. Every intermediate secret is wiped before returning.
Error Open(EVP_PKEY* recipient_private, std::span<const uint8_t> enc,
           std::span<const uint8_t> info, std::span<const uint8_t> aad,
           std::span<const uint8_t> ciphertext,
           std::vector<uint8_t>* plaintext);

// A P-256 public key from an uncompressed point (0x04 || X || Y), checked
// as RFC 9180 section 7.1.4 asks: on the curve and not the point at
// infinity. Null for anything else, compressed and hybrid forms included.
KeyPtr PublicKeyFromPoint(std::span<const uint8_t> point);

// Writes the uncompressed point of the P-256 key `key` (public or private)
// to `*out`. False if `key` is not a P-256 key.
bool PublicPoint(EVP_PKEY* key, std::array<uint8_t, kPublicKeySize>* out);

// RFC 9180 section 7.1.3 DeriveKeyPair for P-256: a deterministic key pair
// from at least 32 bytes of input keying material. Null on failure (short
// `ikm`, or 256 rejected candidates, which does not happen in practice).
KeyPtr DeriveKeyPair(std::span<const uint8_t> ikm);

// For known-answer tests only: Seal with a caller-chosen ephemeral private
// key instead of a fresh one. Reusing an ephemeral key across messages
// reuses the AEAD key and nonce; production code calls Seal.
Error SealWithEphemeral(EVP_PKEY* ephemeral,
                        std::span<const uint8_t> recipient_public,
                        std::span<const uint8_t> info,
                        std::span<const uint8_t> aad,
                        std::span<const uint8_t> plaintext,
                        std::vector<uint8_t>* enc,
                        std::vector<uint8_t>* ciphertext);

}  // namespace cloister::hpke
