// SecretBytes: the only type that holds key material. It zeroes its memory
// when destroyed or reassigned, compares in constant time, and never prints
// itself. Raw bytes are reachable only through the deliberately named
// UnsafeBytes(), so every place that touches a key is easy to find.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace cloister {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t n) : bytes_(n, 0) {}
  SecretBytes(const uint8_t* data, size_t n) : bytes_(data, data + n) {}
  ~SecretBytes() { Wipe(); }

  SecretBytes(const SecretBytes& other) : bytes_(other.bytes_) {}
  SecretBytes& operator=(const SecretBytes& other);
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;

  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }

  // Access to the raw key bytes. Callers must not copy them into types that
  // do not zero themselves.
  std::span<const uint8_t> UnsafeBytes() const { return bytes_; }
  std::span<uint8_t> UnsafeMutableBytes() { return bytes_; }

  // Constant-time equality (length is not secret).
  bool Equals(const SecretBytes& other) const;

 private:
  void Wipe();
  std::vector<uint8_t> bytes_;
};

// Zeroes memory in a way the compiler may not elide.
void SecureZero(void* p, size_t n);

// Constant-time comparison of two equally long byte ranges; false if the
// lengths differ.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

}  // namespace cloister
