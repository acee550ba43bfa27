// Containers for bytes that may hold secrets (the CAS's reply, injected
// file contents, environment values, volume keys). Their allocator wipes
// every block before giving it back, so neither a destroyed container nor
// the old buffer a growing one left behind keeps a copy in freed heap
// memory. This is what lets the start-up code use ordinary std::string and
// std::vector code paths (including nlohmann::json's parser) on secrets.
#pragma once

#include <openssl/crypto.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cloister::runtime {

template <typename T>
struct WipingAllocator {
  using value_type = T;

  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    OPENSSL_cleanse(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }

  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};

using SecretString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;
using SecretBytes = std::vector<uint8_t, WipingAllocator<uint8_t>>;

}  // namespace cloister::runtime
