#include "base/secret.h"

#include <openssl/crypto.h>

namespace cloister {

void SecureZero(void* p, size_t n) {
  if (n != 0) OPENSSL_cleanse(p, n);
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void SecretBytes::Wipe() {
  SecureZero(bytes_.data(), bytes_.size());
  bytes_.clear();
}

SecretBytes& SecretBytes::operator=(const SecretBytes& other) {
  if (this != &other) {
    Wipe();
    bytes_ = other.bytes_;
  }
  return *this;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : bytes_(std::move(other.bytes_)) {
  other.bytes_.clear();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

bool SecretBytes::Equals(const SecretBytes& other) const {
  return ConstantTimeEquals(bytes_, other.bytes_);
}

}  // namespace cloister
