// libFuzzer target on the Intel DCAP quote parser and verifier, and on the
// TDX event log replay (both untrusted: they arrive from nodes over the
// network). Seed with real
// quotes, e.g. the public vectors' dcap-qvl/sgx_quote and tdx_quote: the
// test command copies them into the corpus when they exist. Verification
// runs without collateral and with a fixed time, so every input also goes
// through certificate parsing and the chain checks.
#include <cstdint>

#include "attest/ccel.h"
#include "attest/dcap.h"

using namespace cloister;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::span<const uint8_t> in(bytes, size);
  auto q = attest::ParseDcapQuote(in);
  if (q.ok()) (void)attest::VerifyDcapQuote(in, nullptr, 1'750'000'000);
  (void)attest::ReplayCcel(in);
  return 0;
}
