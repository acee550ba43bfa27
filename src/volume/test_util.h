// Helpers shared by the volume tests.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "base/bytes.h"
#include "base/secret.h"
#include "cloister/volume.h"
#include "crypto/crypto.h"
#include "os/mem_env.h"
#include "volume/volume_internal.h"

namespace cloister::volume::testing {

// Every volume test checks each commit's delta against the whole state.
inline const bool kVerifyDeltas = (internal::VerifyDeltasInTests() = true);

inline SecretBytes TestKey(uint8_t seed = 1) {
  SecretBytes k(kVolumeKeySize);
  for (size_t i = 0; i < k.size(); ++i) k.UnsafeMutableBytes()[i] = static_cast<uint8_t>(seed * 31 + i);
  return k;
}

inline Bytes Pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  std::mt19937 rng(seed);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

inline Bytes Str(const std::string& s) { return Bytes(s.begin(), s.end()); }

inline Status WriteFile(Volume& v, const std::string& path, const Bytes& data) {
  OpenFlags f;
  f.create = f.truncate = true;
  ASSIGN_OR_RETURN(auto file, v.OpenFile(path, f));
  return file->WriteAt(0, data);
}

inline StatusOr<Bytes> ReadFile(Volume& v, const std::string& path) {
  ASSIGN_OR_RETURN(auto file, v.OpenFile(path, OpenFlags{}));
  ASSIGN_OR_RETURN(Stat st, file->GetStat());
  Bytes out(st.size);
  ASSIGN_OR_RETURN(size_t n, file->ReadAt(0, out));
  out.resize(n);
  return out;
}

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    ::cloister::Status _s = (expr);                      \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

#define EXPECT_OK(expr)                                  \
  do {                                                   \
    ::cloister::Status _s = (expr);                      \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

}  // namespace cloister::volume::testing
