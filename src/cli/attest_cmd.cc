// `cloister attest verify FILE`: offline verification of hardware evidence
// (an Intel SGX or TDX quote, an AMD SEV-SNP report, a TPM 2.0 quote) with a
// readable verdict: what was checked, the claims a policy can compare, the
// TCB status and its advisories. Collateral comes from a directory of files
// as Intel's PCS, a PCCS or AMD's KDS serve them.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "attest/ccel.h"
#include "attest/collateral.h"
#include "attest/dcap.h"
#include "attest/snp.h"
#include "attest/tpm_quote.h"
#include "cli/cli.h"
#include "crypto/x509.h"

namespace cloister::cli {
namespace {

constexpr uintmax_t kMaxFile = 4 << 20;  // no evidence or collateral file is near this

StatusOr<Bytes> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return NotFound("cannot read " + path + ": " + ec.message());
  if (size > kMaxFile) return InvalidArgument(path + " is larger than any evidence or collateral file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

StatusOr<attest::CollateralSet> LoadCollateral(const std::string& dir) {
  std::vector<attest::CollateralFile> files;
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) paths.push_back(e.path());
  }
  if (ec) return NotFound("cannot list " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    ASSIGN_OR_RETURN(Bytes b, ReadSmallFile(p.string()));
    files.push_back({p.filename().string(), std::move(b)});
  }
  ASSIGN_OR_RETURN(attest::CollateralSet set, attest::ClassifyCollateral(files));
  for (const std::string& name : set.unrecognised) {
    std::fprintf(stderr, "cloister: attest verify: %s/%s is not collateral; ignored\n", dir.c_str(), name.c_str());
  }
  return set;
}

void PrintVerdict(const attest::HardwareVerdict& v, const std::string& file) {
  std::printf("%s: authentic %s evidence\n", file.c_str(), v.type.c_str());
  std::printf("checked:\n");
  for (const std::string& c : v.checks) std::printf("  - %s\n", c.c_str());
  std::printf("claims:\n");
  size_t width = 0;
  for (const auto& c : v.claims) width = std::max(width, c.name.size());
  for (const auto& c : v.claims) std::printf("  %-*s  %s\n", static_cast<int>(width), c.name.c_str(), c.value.c_str());
  std::printf("debug: %s\n", v.debug ? "YES (the host can read this TEE's memory)" : "no");
  std::printf("TCB status: %s\n", std::string(attest::TcbStatusName(v.tcb_status)).c_str());
  std::string adv;
  for (const std::string& a : v.advisories) adv += (adv.empty() ? "" : ", ") + a;
  std::printf("advisories: %s\n", adv.empty() ? "none" : adv.c_str());
  if (v.collateral_expires_unix != 0) {
    std::printf("collateral current until: %s\n", crypto::FormatRfc3339(v.collateral_expires_unix).c_str());
  }
  for (const std::string& w : v.warnings) std::printf("warning: %s\n", w.c_str());
}

nlohmann::json VerdictJson(const attest::HardwareVerdict& v, const std::string& file) {
  nlohmann::json claims = nlohmann::json::object();
  for (const auto& c : v.claims) claims[c.name] = c.value;
  nlohmann::json j = {{"file", file},
                      {"verified", true},
                      {"type", v.type},
                      {"checks", v.checks},
                      {"claims", claims},
                      {"debug", v.debug},
                      {"tcb_status", std::string(attest::TcbStatusName(v.tcb_status))},
                      {"advisories", v.advisories},
                      {"warnings", v.warnings}};
  if (v.collateral_expires_unix != 0) j["collateral_current_until"] = crypto::FormatRfc3339(v.collateral_expires_unix);
  return j;
}

struct TpmFiles {
  std::string signature, ak, pcrs, nonce_hex;
};

StatusOr<attest::HardwareVerdict> VerifyTpm(const Bytes& attest_bytes, const TpmFiles& f) {
  if (f.signature.empty() || f.ak.empty() || f.pcrs.empty() || f.nonce_hex.empty()) {
    return InvalidArgument("a TPM quote needs --tpm-signature, --tpm-ak, --tpm-pcrs and --tpm-nonce");
  }
  attest::TpmQuoteInput in;
  in.attest = attest_bytes;
  ASSIGN_OR_RETURN(in.signature, ReadSmallFile(f.signature));
  // A TPMT_SIGNATURE starts with its algorithm (00 xx); a DER ECDSA
  // signature (tpm2_quote -f plain) with a SEQUENCE tag.
  if (!in.signature.empty() && in.signature[0] == 0x30) in.signature_format = attest::TpmSignatureFormat::kEcdsaDer;
  ASSIGN_OR_RETURN(Bytes ak, ReadSmallFile(f.ak));
  std::unique_ptr<crypto::PublicKey> ak_key;
  if (std::string(ak.begin(), ak.end()).find("-----BEGIN") != std::string::npos) {
    ASSIGN_OR_RETURN(ak_key, crypto::PublicKey::FromSpki(ak));
    in.ak_key = ak_key.get();
  } else {
    in.ak_public = std::move(ak);
  }
  ASSIGN_OR_RETURN(Bytes pcrs, ReadSmallFile(f.pcrs));
  ASSIGN_OR_RETURN(in.pcrs, attest::ParseTpm2ToolsPcrsFile(pcrs));
  std::optional<Bytes> nonce = HexDecode(f.nonce_hex);
  if (!nonce) return InvalidArgument("--tpm-nonce: not hex");
  in.nonce = std::move(*nonce);
  return attest::VerifyTpmQuote(in);
}

StatusOr<attest::HardwareVerdict> VerifyFile(const Bytes& evidence, const std::string& collateral_dir, int64_t now,
                                             const attest::DcapTrust& trust, const TpmFiles& tpm) {
  // A TPM quote (TPMS_ATTEST) starts with TPM_GENERATED_VALUE.
  if (evidence.size() >= 4 && evidence[0] == 0xff && evidence[1] == 'T' && evidence[2] == 'C' && evidence[3] == 'G') {
    return VerifyTpm(evidence, tpm);
  }
  // An SEV-SNP report is 1184 bytes and starts with version 2, 3 or 5.
  if (evidence.size() == attest::kSnpReportSize && (evidence[0] == 2 || evidence[0] == 3 || evidence[0] == 5) &&
      evidence[1] == 0 && evidence[2] == 0 && evidence[3] == 0) {
    if (collateral_dir.empty()) {
      return InvalidArgument("an SEV-SNP report needs --collateral with its VCEK or VLEK and AMD's CA certificates");
    }
    ASSIGN_OR_RETURN(attest::CollateralSet set, LoadCollateral(collateral_dir));
    ASSIGN_OR_RETURN(attest::SnpCollateral c, attest::SelectSnpCollateral(set));
    return attest::VerifySnpReport(evidence, c, now);
  }
  // A DCAP quote starts with version 3, 4 or 5 and key type 2 (ECDSA P-256).
  const bool dcap = evidence.size() >= 4 && evidence[0] >= 3 && evidence[0] <= 5 && evidence[1] == 0 &&
                    evidence[2] == 2 && evidence[3] == 0;
  if (!dcap) return InvalidArgument("not an Intel SGX or TDX quote, an SEV-SNP report or a TPM quote");
  if (collateral_dir.empty()) return attest::VerifyDcapQuote(evidence, nullptr, now, trust);
  ASSIGN_OR_RETURN(attest::CollateralSet set, LoadCollateral(collateral_dir));
  // The collateral depends on the platform (FMSPC) and the TEE type, which
  // the PCK certificate tells.
  ASSIGN_OR_RETURN(attest::DcapPlatform platform, attest::ReadDcapPlatform(evidence, set.pck_certificates));
  ASSIGN_OR_RETURN(attest::DcapCollateral c, attest::SelectDcapCollateral(set, platform.fmspc, platform.tdx));
  return attest::VerifyDcapQuote(evidence, &c, now, trust);
}

}  // namespace

void RegisterAttestCommands(CLI::App& app, int* exit_code) {
  CLI::App* verify = app.add_subcommand("verify", "Verify a hardware quote or report offline and show the verdict");
  struct Args {
    std::string file, collateral, at;
    std::vector<std::string> roots;
    TpmFiles tpm;
    std::string event_log;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  verify->add_option("file", args->file,
                     "Evidence: an Intel SGX (v3) or TDX (v4, v5) quote, an AMD SEV-SNP report, or a TPM 2.0 quote "
                     "(TPMS_ATTEST)")
      ->required();
  verify->add_option("--collateral", args->collateral,
                     "Directory with TCB Info, QE Identity, the TCB Signing chain and CRLs (as a PCCS serves them)");
  verify->add_option("--at", args->at, "Verify as of this time (RFC 3339, e.g. 2025-07-01T00:00:00Z); default: now");
  verify->add_option("--trust-root", args->roots,
                     "Trust this root CA certificate (PEM) instead of the Intel SGX Root CA (for test PKIs)");
  verify->add_option("--tpm-signature", args->tpm.signature, "TPM quote: its signature (TPMT_SIGNATURE or DER ECDSA)");
  verify->add_option("--tpm-ak", args->tpm.ak, "TPM quote: the AK (PEM public key, or its TPM2B_PUBLIC)");
  verify->add_option("--tpm-pcrs", args->tpm.pcrs, "TPM quote: the PCR values (as tpm2_quote -o writes them)");
  verify->add_option("--tpm-nonce", args->tpm.nonce_hex, "TPM quote: the nonce the quote must carry (hex)");
  verify->add_option("--event-log", args->event_log,
                     "TDX: the guest's event log (CCEL log area), which must replay to the quote's RTMR0-3");
  verify->add_flag("--json", args->json, "Machine-readable output");
  verify->callback([args, exit_code]() {
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    if (!args->at.empty()) {
      auto t = crypto::ParseRfc3339(args->at);
      if (!t.ok()) {
        *exit_code = Fail("attest verify: --at", t.status());
        return;
      }
      now = *t;
    }
    attest::DcapTrust trust = attest::DefaultDcapTrust();
    if (!args->roots.empty()) {
      trust.root_spki_sha256.clear();
      for (const std::string& r : args->roots) {
        auto pem = ReadSmallFile(r);
        auto cert = pem.ok() ? crypto::Certificate::FromPem(std::string(pem->begin(), pem->end()))
                             : StatusOr<std::shared_ptr<const crypto::Certificate>>(pem.status());
        if (!cert.ok()) {
          *exit_code = Fail("attest verify: --trust-root " + r, cert.status());
          return;
        }
        trust.root_spki_sha256.push_back((*cert)->SpkiSha256());
      }
    }
    auto evidence = ReadSmallFile(args->file);
    if (!evidence.ok()) {
      *exit_code = Fail("attest verify", evidence.status());
      return;
    }
    auto v = VerifyFile(*evidence, args->collateral, now, trust, args->tpm);
    if (v.ok() && !args->event_log.empty()) {
      // The TDX event log, replayed, must give the quote's RTMRs.
      auto log = ReadSmallFile(args->event_log);
      auto replay = log.ok() ? attest::ReplayCcel(*log) : StatusOr<attest::CcelReplay>(log.status());
      Status s = replay.ok() ? attest::CheckCcelMatchesQuote(*replay, *v) : replay.status();
      if (!s.ok()) v = s;
    }
    if (!v.ok()) {
      if (args->json) {
        nlohmann::json j = {{"file", args->file}, {"verified", false}, {"error", v.status().message()}};
        std::printf("%s\n", j.dump(2).c_str());
      }
      *exit_code = Fail("attest verify: " + args->file, v.status());
      return;
    }
    if (args->json) {
      std::printf("%s\n", VerdictJson(*v, args->file).dump(2).c_str());
    } else {
      PrintVerdict(*v, args->file);
    }
  });
}

}  // namespace cloister::cli
