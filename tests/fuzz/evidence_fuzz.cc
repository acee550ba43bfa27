// libFuzzer target on the parser of evidence (untrusted: it arrives from
// workloads over the network). With CLOISTER_FUZZ_SEEDS=DIR set, writes a
// valid signed evidence there first so mutations start from the real shape.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "attest/evidence.h"
#include "crypto/identity.h"

using namespace cloister;

namespace {

void WriteSeed(const std::string& dir) {
  auto id = crypto::CreateIdentity(30);
  if (!id.ok()) return;
  attest::SimClaims c;
  c.node_id = id->id;
  c.node_certificate_pem = id->certificate_pem;
  c.pid = 1;
  auto ev = attest::SignSimEvidence(c, id->private_key_pem);
  if (!ev.ok()) return;
  std::ofstream out(dir + "/sim-evidence", std::ios::binary);
  out.write(reinterpret_cast<const char*>(ev->data()), static_cast<std::streamsize>(ev->size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("CLOISTER_FUZZ_SEEDS")) WriteSeed(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  (void)attest::VerifySimEvidence(std::span<const uint8_t>(bytes, size));
  return 0;
}
