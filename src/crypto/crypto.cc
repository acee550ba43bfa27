#include "crypto/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include <cstring>

namespace cloister::crypto {

Status RandomBytes(std::span<uint8_t> out) {
  if (out.empty()) return Status::Ok();
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return InternalError("the random number generator failed");
  }
  return Status::Ok();
}

StatusOr<SecretBytes> RandomSecret(size_t n) {
  SecretBytes s(n);
  RETURN_IF_ERROR(RandomBytes(s.UnsafeMutableBytes()));
  return s;
}

namespace {

// Nonces come from a per-thread buffer of DRBG output, so a 4 KiB chunk
// write does not pay for a DRBG call. After fork() the child must never
// reuse nonces from the parent's buffer: the buffer lives in a page marked
// MADV_WIPEONFORK, which the kernel hands to a child zeroed (so its marker
// is gone and it refills). Where the kernel lacks that, the buffer falls
// back to remembering the process id and a pthread_atfork generation.
constexpr uint64_t kBufferMarker = 0x65636e6f6e2d636cull;

struct NoncePage {
  uint64_t marker;
  uint64_t used;
  uint8_t bytes[4096 - 16];
};

std::atomic<uint64_t> g_fork_generation{0};
void OnFork() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }
const bool g_atfork_registered = pthread_atfork(nullptr, nullptr, OnFork) == 0;

struct NonceBuffer {
  NoncePage* page = nullptr;
  bool wipe_on_fork = false;
  pid_t owner = 0;
  uint64_t generation = 0;
  NonceBuffer() {
    void* p = mmap(nullptr, sizeof(NoncePage), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    page = static_cast<NoncePage*>(p);
    wipe_on_fork = madvise(p, sizeof(NoncePage), MADV_WIPEONFORK) == 0;
  }
  ~NonceBuffer() {
    if (page != nullptr) {
      SecureZero(page, sizeof(NoncePage));
      munmap(page, sizeof(NoncePage));
    }
  }
  bool Valid() const {
    if (page == nullptr || page->marker != kBufferMarker) return false;
    if (wipe_on_fork) return true;
    return g_atfork_registered && owner == getpid() &&
           generation == g_fork_generation.load(std::memory_order_relaxed);
  }
};
thread_local NonceBuffer tl_nonces;

}  // namespace

Status FreshNonce(Nonce& nonce) {
  NonceBuffer& b = tl_nonces;
  if (b.page == nullptr) return RandomBytes(nonce);  // no buffer: one DRBG call
  NoncePage& p = *b.page;
  if (!b.Valid() || p.used + nonce.size() > sizeof(p.bytes)) {
    RETURN_IF_ERROR(RandomBytes(p.bytes));
    p.used = 0;
    p.marker = kBufferMarker;
    b.owner = getpid();
    b.generation = g_fork_generation.load(std::memory_order_relaxed);
  }
  std::memcpy(nonce.data(), p.bytes + p.used, nonce.size());
  SecureZero(p.bytes + p.used, nonce.size());
  p.used += nonce.size();
  return Status::Ok();
}

namespace {

// Fetched once: EVP_sha256() and a MAC fetched per call make OpenSSL look
// the algorithm up in its provider store every time, which costs more than
// hashing the few hundred bytes of a tree node or a tag. Never freed (they
// live as long as the process; OpenSSL's exit-time cleanup leaves them be).
const EVP_MD* Sha256Md() {
  static EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) std::abort();  // SHA-256 is always available in OpenSSL 3
    return m;
  }();
  return md;
}

// An HMAC-SHA-256 context without a key, copied for every MAC: the copy
// keeps the digest the template fetched.
const EVP_MAC_CTX* HmacSha256Template() {
  static EVP_MAC_CTX* t = [] {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
    EVP_MAC_free(mac);
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                           OSSL_PARAM_construct_end()};
    if (ctx == nullptr || EVP_MAC_CTX_set_params(ctx, params) != 1) std::abort();
    return ctx;
  }();
  return t;
}

}  // namespace

Digest Sha256(std::span<const uint8_t> data) {
  Digest d;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, Sha256Md(), nullptr) != 1) std::abort();
  return d;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) != 1) std::abort();
}
Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }
void Sha256Hasher::Update(std::span<const uint8_t> data) {
  EVP_DigestUpdate(ctx_, data.data(), data.size());
}
void Sha256Hasher::UpdateU64(uint64_t v) {
  uint8_t b[8];
  StoreU64(b, v);
  Update(std::span<const uint8_t>(b, 8));
}
Digest Sha256Hasher::Finish() {
  Digest d;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, d.data(), &len);
  EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr);
  return d;
}

Digest HmacSha256(const SecretBytes& key,
                  std::initializer_list<std::span<const uint8_t>> parts) {
  Digest out{};
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(HmacSha256Template());
  size_t len = 0;
  bool ok = ctx != nullptr && EVP_MAC_init(ctx, key.UnsafeBytes().data(), key.size(), nullptr) == 1;
  for (auto p : parts) ok = ok && EVP_MAC_update(ctx, p.data(), p.size()) == 1;
  ok = ok && EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1;
  EVP_MAC_CTX_free(ctx);
  if (!ok) std::abort();  // HMAC-SHA-256 is always available in OpenSSL 3
  return out;
}

StatusOr<SecretBytes> HkdfSha256(const SecretBytes& ikm,
                                 std::span<const uint8_t> salt,
                                 std::span<const uint8_t> info, size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return InternalError("HKDF is not available");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return InternalError("HKDF context allocation failed");
  char digest_name[] = "SHA256";
  // Empty salt or info are left out: HKDF then uses its defaults (a zero
  // salt, no info), as RFC 5869 specifies.
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest_name, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.UnsafeBytes().data()), ikm.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                                    salt.size());
  }
  if (!info.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()),
                                                    info.size());
  }
  params[n] = OSSL_PARAM_construct_end();
  SecretBytes out(length);
  int rc = EVP_KDF_derive(ctx, out.UnsafeMutableBytes().data(), length, params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return InternalError("HKDF derivation failed");
  return out;
}

Aead::Aead(const SecretBytes& key) : key_(key) {}

Aead::~Aead() {
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
}

StatusOr<std::unique_ptr<Aead>> Aead::New(const SecretBytes& key) {
  if (key.size() != kAeadKeySize) {
    return InvalidArgument("AES-256-GCM needs a 32-byte key");
  }
  std::unique_ptr<Aead> a(new Aead(key));
  a->enc_ = EVP_CIPHER_CTX_new();
  a->dec_ = EVP_CIPHER_CTX_new();
  if (a->enc_ == nullptr || a->dec_ == nullptr ||
      EVP_EncryptInit_ex(a->enc_, EVP_aes_256_gcm(), nullptr,
                         key.UnsafeBytes().data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(a->dec_, EVP_aes_256_gcm(), nullptr,
                         key.UnsafeBytes().data(), nullptr) != 1) {
    return InternalError("AES-256-GCM initialisation failed");
  }
  return a;
}

Status Aead::Seal(std::span<const uint8_t> aad, std::span<const uint8_t> pt,
                  std::span<uint8_t> ct, Nonce& nonce, AeadTag& tag) {
  if (ct.size() != pt.size()) return InternalError("AEAD length mismatch");
  RETURN_IF_ERROR(FreshNonce(nonce));
  int len = 0;
  bool ok = EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            (aad.empty() ||
             EVP_EncryptUpdate(enc_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
            (pt.empty() ||
             EVP_EncryptUpdate(enc_, ct.data(), &len, pt.data(), static_cast<int>(pt.size())) == 1) &&
            EVP_EncryptFinal_ex(enc_, ct.data() + pt.size(), &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag.size()), tag.data()) == 1;
  if (!ok) return InternalError("AES-256-GCM encryption failed");
  return Status::Ok();
}

Status Aead::Open(std::span<const uint8_t> aad, const Nonce& nonce,
                  const AeadTag& tag, std::span<const uint8_t> ct,
                  std::span<uint8_t> pt) {
  if (ct.size() != pt.size()) return InternalError("AEAD length mismatch");
  int len = 0;
  AeadTag tag_copy = tag;
  bool ok = EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            (aad.empty() ||
             EVP_DecryptUpdate(dec_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
            (ct.empty() ||
             EVP_DecryptUpdate(dec_, pt.data(), &len, ct.data(), static_cast<int>(ct.size())) == 1) &&
            EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_copy.size()), tag_copy.data()) == 1 &&
            EVP_DecryptFinal_ex(dec_, pt.data() + ct.size(), &len) == 1;
  if (!ok) {
    SecureZero(pt.data(), pt.size());
    return IntegrityError("authentication failed");
  }
  return Status::Ok();
}

Status Aead::Authenticate(std::span<const uint8_t> aad,
                          std::span<const uint8_t> data, Nonce& nonce,
                          AeadTag& tag) {
  RETURN_IF_ERROR(FreshNonce(nonce));
  int len = 0;
  uint8_t none[1];
  bool ok = EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            (aad.empty() ||
             EVP_EncryptUpdate(enc_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
            (data.empty() ||
             EVP_EncryptUpdate(enc_, nullptr, &len, data.data(), static_cast<int>(data.size())) == 1) &&
            EVP_EncryptFinal_ex(enc_, none, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag.size()), tag.data()) == 1;
  if (!ok) return InternalError("GMAC computation failed");
  return Status::Ok();
}

Status Aead::Verify(std::span<const uint8_t> aad, std::span<const uint8_t> data,
                    const Nonce& nonce, const AeadTag& tag) {
  int len = 0;
  uint8_t none[1];
  AeadTag tag_copy = tag;
  bool ok = EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            (aad.empty() ||
             EVP_DecryptUpdate(dec_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
            (data.empty() ||
             EVP_DecryptUpdate(dec_, nullptr, &len, data.data(), static_cast<int>(data.size())) == 1) &&
            EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_copy.size()), tag_copy.data()) == 1 &&
            EVP_DecryptFinal_ex(dec_, none, &len) == 1;
  if (!ok) return IntegrityError("authentication failed");
  return Status::Ok();
}

StatusOr<Bytes> Aead::SealRecord(std::span<const uint8_t> aad,
                                 std::span<const uint8_t> plaintext) {
  Bytes out(kAeadNonceSize + plaintext.size() + kAeadTagSize);
  Nonce nonce;
  AeadTag tag;
  RETURN_IF_ERROR(Seal(aad, plaintext,
                       std::span<uint8_t>(out.data() + kAeadNonceSize, plaintext.size()),
                       nonce, tag));
  std::memcpy(out.data(), nonce.data(), nonce.size());
  std::memcpy(out.data() + kAeadNonceSize + plaintext.size(), tag.data(), tag.size());
  return out;
}

StatusOr<Bytes> Aead::OpenRecord(std::span<const uint8_t> aad,
                                 std::span<const uint8_t> record) {
  if (record.size() < kAeadNonceSize + kAeadTagSize) {
    return IntegrityError("record too short");
  }
  Nonce nonce;
  AeadTag tag;
  size_t n = record.size() - kAeadNonceSize - kAeadTagSize;
  std::memcpy(nonce.data(), record.data(), nonce.size());
  std::memcpy(tag.data(), record.data() + kAeadNonceSize + n, tag.size());
  Bytes out(n);
  RETURN_IF_ERROR(Open(aad, nonce, tag, record.subspan(kAeadNonceSize, n), out));
  return out;
}

}  // namespace cloister::crypto
