// libFuzzer target on the SEV-SNP report parser and verifier (a report
// arrives from a guest over the network: untrusted). Every input goes
// through ParseSnpReport and, as a certificate table (which arrives with
// the report), through ParseSnpCertificateTable. When CLOISTER_TESTDATA names the directory that
// holds attestation/ (the public vectors), a real Milan VCEK and AMD's
// Milan ASK+ARK are loaded once and every input also goes through
// VerifySnpReport with them (the chain checks run each time; the report
// signature almost never verifies, which is the point). With
// CLOISTER_FUZZ_SEEDS=DIR as well, the real report is written there first so
// mutations start from the real shape.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "attest/snp.h"

using namespace cloister;

namespace {

constexpr int64_t kNow = 1748736000;  // 2025-06-01T00:00:00Z, inside the vectors' validity

std::optional<attest::SnpCollateral> collateral;

std::optional<Bytes> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void LoadVectors(const std::string& testdata) {
  const std::string dir = testdata + "/attestation/snp/go-sev-guest/";
  auto vcek = ReadFile(dir + "vcek.testcer");
  auto bundle = ReadFile(dir + "ask_ark_milan.pem");
  auto report = ReadFile(dir + "attestation.bin");
  if (!vcek || !bundle || !report) return;
  collateral = attest::SnpCollateral{*vcek, *bundle, {}};
  if (const char* seeds = std::getenv("CLOISTER_FUZZ_SEEDS")) {
    std::ofstream out(std::string(seeds) + "/snp-report", std::ios::binary);
    out.write(reinterpret_cast<const char*>(report->data()), static_cast<std::streamsize>(report->size()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* testdata = std::getenv("CLOISTER_TESTDATA")) LoadVectors(testdata);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::span<const uint8_t> input(bytes, size);
  (void)attest::ParseSnpReport(input);
  (void)attest::ParseSnpCertificateTable(input);
  if (collateral) (void)attest::VerifySnpReport(input, *collateral, kNow);
  return 0;
}
