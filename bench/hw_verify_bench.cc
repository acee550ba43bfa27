// hw_verify_bench: verifications per second, on one core, of each kind of
// hardware evidence with its collateral already in memory (what a CAS does
// per start once it cached the collateral), and the signature checks each
// verification contains. bench/hw_verify_run.sh runs it next to `openssl
// speed` on the same machine (docs/benchmarks.md, "Hardware evidence").
//
//   hw_verify_bench VECTORS_DIR [SECONDS_PER_KIND]
//
// VECTORS_DIR is the public attestation vectors' directory (the one holding
// MANIFEST.md). Every verification must succeed, or the program exits 1:
// a benchmark of a failing verifier measures nothing.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "attest/dcap.h"
#include "attest/snp.h"
#include "attest/tpm_quote.h"
#include "crypto/x509.h"

using namespace cloister;

namespace {

Bytes Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "hw_verify_bench: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs `verify` for `seconds` (after a warm-up) and prints one table row.
void Measure(const char* kind, const char* signatures, double seconds, const std::function<Status()>& verify) {
  for (int i = 0; i < 3; ++i) {
    Status s = verify();
    if (!s.ok()) {
      std::fprintf(stderr, "hw_verify_bench: %s does not verify: %s\n", kind, s.ToString().c_str());
      std::exit(1);
    }
  }
  uint64_t n = 0;
  const double start = Now();
  double now = start;
  while (now - start < seconds) {
    for (int i = 0; i < 8; ++i) {
      if (!verify().ok()) std::exit(1);
    }
    n += 8;
    now = Now();
  }
  const double rate = static_cast<double>(n) / (now - start);
  std::printf("| %s | %.0f | %.3f | %s |\n", kind, rate, 1000.0 / rate, signatures);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: hw_verify_bench VECTORS_DIR [SECONDS_PER_KIND]\n");
    return 2;
  }
  const std::string v = argv[1];
  const double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;

  std::printf("| evidence | verifications/s | ms each | signature checks in one verification |\n");
  std::printf("|---|---:|---:|---|\n");

  auto dcap = [&](const char* name, const char* kind) {
    auto c = attest::DcapCollateralFromJson(
        [&] {
          Bytes b = Read(v + "/dcap-qvl/" + name + "_collateral.json");
          return std::string(b.begin(), b.end());
        }());
    if (!c.ok()) {
      std::fprintf(stderr, "hw_verify_bench: %s\n", c.status().ToString().c_str());
      std::exit(1);
    }
    Bytes quote = Read(v + "/dcap-qvl/" + name);
    const int64_t at = *crypto::ParseRfc3339("2025-07-01T00:00:00Z");
    Measure(kind,
            "ECDSA P-256: 3 PCK chain, 2 CRLs, QE report, quote, 2x (TCB Signing chain 2 + JSON 1); parsing of "
            "3 + 2x2 certificates, 2 CRLs, 2 JSON documents",
            seconds, [&, c = *c]() { return attest::VerifyDcapQuote(quote, &c, at).status(); });
  };
  dcap("sgx_quote", "Intel SGX quote v3 with TCB Info, QE Identity, CRLs");
  dcap("tdx_quote", "Intel TDX quote v4 with TCB Info, QE Identity, CRLs");

  {
    attest::SnpCollateral c;
    c.endorsement_certificate = Read(v + "/snp/go-sev-guest/vcek.testcer");
    c.ca_bundle = Read(v + "/snp/go-sev-guest/ask_ark_milan.pem");
    Bytes report = Read(v + "/snp/go-sev-guest/attestation.bin");
    const int64_t at = *crypto::ParseRfc3339("2025-06-01T00:00:00Z");
    Measure("AMD SEV-SNP report (Milan, VCEK)",
            "RSA-4096 PSS: ARK, ASK, VCEK; ECDSA P-384: report; parsing of 3 certificates", seconds,
            [&]() { return attest::VerifySnpReport(report, c, at).status(); });
  }
  {
    attest::TpmQuoteInput in;
    auto ak = crypto::PublicKey::FromSpki(Read(v + "/tpm/ak.pem"));
    auto pcrs = attest::ParseTpm2ToolsPcrsFile(Read(v + "/tpm/quote.pcrs"));
    if (!ak.ok() || !pcrs.ok()) {
      std::fprintf(stderr, "hw_verify_bench: the TPM vectors do not parse\n");
      return 1;
    }
    in.ak_key = ak->get();
    in.attest = Read(v + "/tpm/quote.msg");
    in.signature = Read(v + "/tpm/quote.sig.tss");
    in.pcrs = *pcrs;
    Bytes hex = Read(v + "/tpm/nonce.hex");
    std::string h(hex.begin(), hex.end());
    while (!h.empty() && (h.back() == '\n' || h.back() == '\r')) h.pop_back();
    std::optional<Bytes> nonce = HexDecode(h);
    if (!nonce) {
      std::fprintf(stderr, "hw_verify_bench: tpm/nonce.hex is not hex\n");
      return 1;
    }
    in.nonce = std::move(*nonce);
    Measure("TPM 2.0 quote (ECDSA P-256 AK, 3 PCRs)", "ECDSA P-256: quote", seconds,
            [&]() { return attest::VerifyTpmQuote(in).status(); });
  }
  return 0;
}
