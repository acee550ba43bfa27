// Tests only: the public attestation vectors (real quotes, reports and
// collateral with their expected verdicts) are not part of this repository.
// They are looked for in `testdata/attestation` of the directory named by
// CLOISTER_TESTDATA, else next to the source tree (../shared/testdata, set
// at build time). Tests that need them skip, saying so, when neither exists.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "base/bytes.h"

namespace cloister::attest::testing {

inline std::optional<std::string> VectorsDir() {
  std::string base;
  if (const char* e = std::getenv("CLOISTER_TESTDATA"); e != nullptr && *e != '\0') {
    base = e;
  } else {
#ifdef CLOISTER_TESTDATA_DIR
    base = CLOISTER_TESTDATA_DIR;
#endif
  }
  if (base.empty()) return std::nullopt;
  std::string dir = base + "/attestation";
  std::ifstream probe(dir + "/MANIFEST.md");
  if (!probe) return std::nullopt;
  return dir;
}

// The file's bytes; fails the test (and returns empty) if it is missing.
inline Bytes ReadVector(const std::string& relative) {
  auto dir = VectorsDir();
  if (!dir) {
    ADD_FAILURE() << "no attestation vectors";
    return {};
  }
  std::ifstream in(*dir + "/" + relative, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing vector " << relative;
    return {};
  }
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string ReadVectorText(const std::string& relative) {
  Bytes b = ReadVector(relative);
  return std::string(b.begin(), b.end());
}

}  // namespace cloister::attest::testing

// Skips the current test, with a message, when the vectors are absent.
#define CLOISTER_REQUIRE_VECTORS()                                                                      \
  do {                                                                                                 \
    if (!::cloister::attest::testing::VectorsDir()) {                                                  \
      GTEST_SKIP() << "attestation vectors not found (testdata/attestation under CLOISTER_TESTDATA or " \
                      "../shared next to the source tree); skipped";                                  \
    }                                                                                                  \
  } while (0)
