// libFuzzer target on the parsers of TPM 2.0 evidence (untrusted: a node
// sends its quote, signature, AK public area and PCR file over the
// network). Every input goes to each parser, so one corpus serves all. With
// CLOISTER_FUZZ_SEEDS=DIR set, writes one well-formed example of each
// structure there first so mutations start from the real shapes.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "attest/tpm_quote.h"
#include "base/bytes.h"

using namespace cloister;

namespace {

void Be16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Be32(Bytes& b, uint32_t v) {
  Be16(b, static_cast<uint16_t>(v >> 16));
  Be16(b, static_cast<uint16_t>(v));
}
void Tpm2b(Bytes& b, const Bytes& data) {
  Be16(b, static_cast<uint16_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
}

void Write(const std::string& dir, const char* name, const Bytes& data) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

void WriteSeeds(const std::string& dir) {
  // A quote over sha256 PCRs 0, 1 and 16.
  Bytes attest;
  Be32(attest, attest::kTpmGeneratedValue);
  Be16(attest, attest::kTpmStAttestQuote);
  Bytes name(34, 0x5a);
  name[0] = 0x00;
  name[1] = 0x0b;
  Tpm2b(attest, name);
  Tpm2b(attest, Bytes(16, 0x4e));
  Be32(attest, 0);
  Be32(attest, 9009);  // clock
  Be32(attest, 1);     // resetCount
  Be32(attest, 0);     // restartCount
  attest.push_back(1);
  Be32(attest, 0x20191023);
  Be32(attest, 0x00163636);
  Be32(attest, 1);
  Be16(attest, attest::kTpmAlgSha256);
  attest.push_back(3);
  for (uint8_t b : {0x03, 0x00, 0x01}) attest.push_back(b);
  Tpm2b(attest, Bytes(32, 0x28));
  Write(dir, "tpms-attest", attest);

  Bytes sig;
  Be16(sig, attest::kTpmAlgEcdsa);
  Be16(sig, attest::kTpmAlgSha256);
  Tpm2b(sig, Bytes(32, 0x89));
  Tpm2b(sig, Bytes(31, 0x56));
  Write(dir, "tpmt-signature", sig);

  // An ECC P-256 AK whose point is the curve's generator (a valid point).
  Bytes area;
  Be16(area, attest::kTpmAlgEcc);
  Be16(area, attest::kTpmAlgSha256);
  Be32(area, 0x00050072);
  Be16(area, 0);  // authPolicy
  Be16(area, attest::kTpmAlgNull);
  Be16(area, attest::kTpmAlgEcdsa);
  Be16(area, attest::kTpmAlgSha256);
  Be16(area, attest::kTpmEccNistP256);
  Be16(area, attest::kTpmAlgNull);
  Tpm2b(area, *HexDecode("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"));
  Tpm2b(area, *HexDecode("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"));
  Bytes sized;
  Tpm2b(sized, area);
  Write(dir, "tpm2b-public", sized);

  // tpm2-tools' PCR file for the same selection (little-endian dump).
  Bytes pcrs(136 + 532, 0);
  pcrs[0] = 1;
  pcrs[4] = 0x0b;
  pcrs[6] = 3;
  pcrs[7] = 0x03;
  pcrs[9] = 0x01;
  pcrs[132] = 1;
  pcrs[136] = 3;
  for (size_t d = 0; d < 3; ++d) pcrs[140 + d * 66] = 32;
  Write(dir, "tpm2-tools-pcrs", pcrs);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("CLOISTER_FUZZ_SEEDS")) WriteSeeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::span<const uint8_t> in(bytes, size);
  (void)attest::ParseTpmsAttest(in);
  (void)attest::ParseTpmtSignature(in);
  auto pub = attest::ParseTpmPublic(in);
  if (pub.ok()) (void)attest::CheckAkAttributes(*pub);
  (void)attest::ParseTpmtPublic(in);
  (void)attest::ParseTpm2ToolsPcrsFile(in);
  return 0;
}
