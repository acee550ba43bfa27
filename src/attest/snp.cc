#include "attest/snp.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "crypto/x509.h"

namespace cloister::attest {
namespace {

using crypto::Certificate;
using CertPtr = std::shared_ptr<const Certificate>;

// SHA-256 of the DER SubjectPublicKeyInfo of AMD's root keys, computed at
// development time from the ARK certificates AMD's KDS serves
// (/vcek/v1/<product>/cert_chain), with
//   openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum
// Each is a 4096-bit RSA key.
//   OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=ARK-Milan
constexpr std::array<uint8_t, 32> kArkMilanSpkiSha256 = {
    0x9f, 0x05, 0x6b, 0xee, 0x44, 0x37, 0x7e, 0x29, 0x30, 0x8c, 0xb5, 0xff, 0xa8, 0x95, 0xbd, 0xfb,
    0x62, 0xd1, 0x88, 0x81, 0xfa, 0x6b, 0xed, 0x8d, 0x6f, 0x07, 0x5b, 0x02, 0x04, 0x08, 0x9c, 0xb9};
//   OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=ARK-Genoa
constexpr std::array<uint8_t, 32> kArkGenoaSpkiSha256 = {
    0x42, 0x9a, 0x69, 0xc9, 0x42, 0x2a, 0xa2, 0x58, 0xee, 0x4d, 0x8d, 0xb5, 0xfc, 0xda, 0x9c, 0x64,
    0x70, 0xef, 0x15, 0xf8, 0xcd, 0x5a, 0x9c, 0xeb, 0xd6, 0xcb, 0xc7, 0xd9, 0x0b, 0x86, 0x38, 0x31};
//   OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=ARK-Turin
constexpr std::array<uint8_t, 32> kArkTurinSpkiSha256 = {
    0x4f, 0x12, 0x54, 0x10, 0x56, 0x3a, 0x2a, 0xb9, 0xa5, 0x03, 0x56, 0xf9, 0x24, 0x3f, 0x6f, 0xde,
    0x98, 0x60, 0x3f, 0x53, 0xf9, 0x03, 0x39, 0xc7, 0x0e, 0x9d, 0x7a, 0xd0, 0x8e, 0xb6, 0x0b, 0x08};

// AMD's certificate extensions (KDS specification), under 1.3.6.1.4.1.3704.1.
constexpr std::string_view kOidProductName = "1.3.6.1.4.1.3704.1.2";
constexpr std::string_view kOidHwId = "1.3.6.1.4.1.3704.1.4";
constexpr std::string_view kOidCspId = "1.3.6.1.4.1.3704.1.5";

constexpr size_t kP384Size = 48;
constexpr size_t kRsSize = 72;  // R and S fields of the report signature

template <size_t N>
std::array<uint8_t, N> Take(std::span<const uint8_t> report, size_t offset) {
  std::array<uint8_t, N> out;
  std::memcpy(out.data(), report.data() + offset, N);
  return out;
}

std::string HexOfTcb(uint64_t tcb) {
  uint8_t raw[8];
  StoreU64(raw, tcb);
  return HexEncode(raw);
}

// --- The few DER shapes AMD's extensions use (x509.h hands out the bytes
// inside an extension's OCTET STRING; it has no ASN.1 decoder). ---

// A DER INTEGER (tag 2, short length) in 0..255: the SPL extensions.
std::optional<uint8_t> DerSmallUnsigned(std::span<const uint8_t> der) {
  if (der.size() < 3 || der[0] != 0x02 || der[1] >= 0x80 || static_cast<size_t>(der[1]) != der.size() - 2) {
    return std::nullopt;
  }
  auto value = der.subspan(2);
  if ((value[0] & 0x80) != 0) return std::nullopt;  // negative
  while (value.size() > 1 && value[0] == 0) value = value.subspan(1);
  if (value.size() != 1) return std::nullopt;
  return value[0];
}

// An IA5String (AMD's productName and cspID), also accepting UTF8String and
// PrintableString; short or one-byte long form length.
std::optional<std::string> DerString(std::span<const uint8_t> der) {
  if (der.size() < 2 || (der[0] != 0x16 && der[0] != 0x0C && der[0] != 0x13)) return std::nullopt;
  size_t len = der[1], header = 2;
  if (len == 0x81) {
    if (der.size() < 3) return std::nullopt;
    len = der[2];
    header = 3;
  } else if (len >= 0x80) {
    return std::nullopt;
  }
  if (der.size() != header + len) return std::nullopt;
  return std::string(der.begin() + static_cast<std::ptrdiff_t>(header), der.end());
}

// hwID: AMD puts the raw bytes in the extension (no inner tag); accept an
// inner OCTET STRING too, in case KDS ever adds one.
std::optional<Bytes> HwIdBytes(std::span<const uint8_t> ext, size_t size) {
  if (ext.size() == size) return Bytes(ext.begin(), ext.end());
  if (size < 0x80 && ext.size() == size + 2 && ext[0] == 0x04 && static_cast<size_t>(ext[1]) == size) {
    return Bytes(ext.begin() + 2, ext.end());
  }
  return std::nullopt;
}

struct Spl {
  std::string_view oid;
  std::string_view ext_name;   // as AMD's KDS names it
  std::string_view component;  // as the claims name it
  uint8_t SnpTcb::*field;
};

constexpr Spl kSpls[] = {
    {"1.3.6.1.4.1.3704.1.3.9", "fmcSPL", "fmc", &SnpTcb::fmc},  // Turin only
    {"1.3.6.1.4.1.3704.1.3.1", "blSPL", "bootloader", &SnpTcb::bootloader},
    {"1.3.6.1.4.1.3704.1.3.2", "teeSPL", "tee", &SnpTcb::tee},
    {"1.3.6.1.4.1.3704.1.3.3", "snpSPL", "snp", &SnpTcb::snp},
    {"1.3.6.1.4.1.3704.1.3.8", "ucodeSPL", "microcode", &SnpTcb::microcode},
};

bool HasFmc(SnpProduct p) { return p == SnpProduct::kTurin; }

// The certificates of one verification, each with the name its role has in
// messages ("VCEK", "ASVK", ...).
struct Chain {
  SnpProduct product = SnpProduct::kMilan;
  bool vlek = false;
  CertPtr ark, intermediate, endorsement;
  std::string intermediate_role, endorsement_role;  // "ASK"/"ASVK", "VCEK"/"VLEK"
};

// The certificate in `bundle` with subject CN `cn`; nullptr when none.
StatusOr<CertPtr> FindByName(const std::vector<CertPtr>& bundle, const std::string& cn) {
  CertPtr found;
  for (const auto& c : bundle) {
    if (c->subject_cn() != cn) continue;
    // Two different certificates of one name leave it open which one the
    // caller meant; the same one twice is harmless.
    if (found && found->der() != c->der()) {
      return IntegrityError("snp: the AMD CA bundle has two different certificates named " + cn);
    }
    found = c;
  }
  return found;
}

StatusOr<Chain> LoadChain(const SnpCollateral& collateral, bool vlek_signed) {
  Chain chain;
  // --- the endorsement key certificate ---
  auto endorsement = Certificate::ParseBundle(collateral.endorsement_certificate);
  if (!endorsement.ok()) {
    return IntegrityError("snp: the VCEK/VLEK certificate does not parse: " + endorsement.status().message());
  }
  if (endorsement->size() != 1) {
    return IntegrityError("snp: expected one VCEK/VLEK certificate, got " + std::to_string(endorsement->size()));
  }
  chain.endorsement = endorsement->front();
  const std::string& cn = chain.endorsement->subject_cn();
  if (cn == "SEV-VCEK") {
    chain.vlek = false;
  } else if (cn == "SEV-VLEK") {
    chain.vlek = true;
  } else {
    return IntegrityError("snp: the endorsement key certificate is neither a VCEK nor a VLEK (subject " +
                          chain.endorsement->name() + ")");
  }
  chain.endorsement_role = chain.vlek ? "VLEK" : "VCEK";
  chain.intermediate_role = chain.vlek ? "ASVK" : "ASK";
  if (chain.vlek != vlek_signed) {
    return IntegrityError(std::string("snp: the report is signed with a ") + (vlek_signed ? "VLEK" : "VCEK") +
                          " (signer_info) but the endorsement key certificate is a " + chain.endorsement_role);
  }

  // --- the product: productName, else the issuer's name ---
  const std::string issuer_prefix = chain.vlek ? "SEV-VLEK-" : "SEV-";
  const std::string& issuer = chain.endorsement->issuer_cn();
  std::optional<SnpProduct> from_issuer;
  if (issuer.starts_with(issuer_prefix)) {
    from_issuer = ParseSnpProduct(std::string_view(issuer).substr(issuer_prefix.size()));
  }
  if (auto ext = chain.endorsement->Extension(kOidProductName)) {
    auto name = DerString(*ext);
    if (!name) return IntegrityError("snp: " + chain.endorsement_role + " productName extension is not a string");
    auto product = ParseSnpProduct(*name);
    if (!product) {
      return IntegrityError("snp: " + chain.endorsement_role + " productName \"" + name->substr(0, 32) +
                            "\" is not a known product (Milan, Genoa, Turin)");
    }
    chain.product = *product;
  } else if (from_issuer) {
    chain.product = *from_issuer;
  } else {
    return IntegrityError("snp: cannot tell the product: the " + chain.endorsement_role +
                          " has no productName and its issuer is " + issuer);
  }
  const std::string product_name(SnpProductName(chain.product));
  const std::string ark_cn = "ARK-" + product_name;
  const std::string intermediate_cn = issuer_prefix + product_name;
  if (issuer != intermediate_cn) {
    return IntegrityError("snp: the " + chain.endorsement_role + " (product " + product_name + ") is issued by " +
                          issuer + ", not " + intermediate_cn);
  }

  // --- the AMD CA certificates, by name, in whatever order they came ---
  auto bundle = Certificate::ParseBundle(collateral.ca_bundle);
  if (!bundle.ok()) return IntegrityError("snp: the AMD CA bundle does not parse: " + bundle.status().message());
  ASSIGN_OR_RETURN(chain.ark, FindByName(*bundle, ark_cn));
  ASSIGN_OR_RETURN(chain.intermediate, FindByName(*bundle, intermediate_cn));
  if (!chain.ark) return IntegrityError("snp: the AMD CA bundle has no " + ark_cn + " certificate (ARK)");
  if (!chain.intermediate) {
    return IntegrityError("snp: the AMD CA bundle has no " + intermediate_cn + " certificate (" +
                          chain.intermediate_role + ")");
  }
  return chain;
}

// "ASK SEV-Milan", "VCEK SEV-VCEK", "ARK ARK-Milan".
std::string Label(const std::string& role, const Certificate& c) { return role + " " + c.name(); }

Status CheckChain(const Chain& chain, const SnpTrust& trust, std::vector<std::string>& checks) {
  const std::string product_name(SnpProductName(chain.product));
  const std::string ark = Label("ARK", *chain.ark);
  const std::string mid = Label(chain.intermediate_role, *chain.intermediate);
  const std::string leaf = Label(chain.endorsement_role, *chain.endorsement);

  auto pin = trust.pinned_arks.find(product_name);
  if (pin == trust.pinned_arks.end()) return IntegrityError("snp: no ARK is pinned for product " + product_name);
  if (chain.ark->SpkiSha256() != pin->second) {
    return IntegrityError("snp: " + ark + " is not the pinned AMD root key for " + product_name +
                          " (its key's SHA-256 is " + HexEncode(chain.ark->SpkiSha256()) + ")");
  }
  checks.push_back(ark + " key is the pinned root for " + product_name);

  if (Status s = chain.ark->VerifyIssuedBy(*chain.ark); !s.ok()) {
    return IntegrityError("snp: " + ark + " self-signature does not verify: " + s.message());
  }
  if (!chain.ark->is_ca()) return IntegrityError("snp: " + ark + " is not a CA certificate");
  checks.push_back(ark + " self-signed");

  if (Status s = chain.intermediate->VerifyIssuedBy(*chain.ark); !s.ok()) {
    return IntegrityError("snp: " + mid + " signature by the ARK does not verify: " + s.message());
  }
  if (!chain.intermediate->is_ca()) return IntegrityError("snp: " + mid + " is not a CA certificate");
  checks.push_back(mid + " issued by the ARK");

  if (Status s = chain.endorsement->VerifyIssuedBy(*chain.intermediate); !s.ok()) {
    return IntegrityError("snp: " + leaf + " signature by the " + chain.intermediate_role +
                          " does not verify: " + s.message());
  }
  checks.push_back(leaf + " issued by the " + chain.intermediate_role);
  return Status::Ok();
}

Status CheckCrls(const Chain& chain, const SnpCollateral& collateral, int64_t now_unix, HardwareVerdict& v,
                 int64_t& expires) {
  const std::string mid = Label(chain.intermediate_role, *chain.intermediate);
  for (size_t i = 0; i < collateral.crls.size(); ++i) {
    const std::string which = "CRL " + std::to_string(i + 1);
    auto crl = crypto::Crl::Parse(collateral.crls[i]);
    if (!crl.ok()) return IntegrityError("snp: " + which + " does not parse: " + crl.status().message());
    if (Status s = (*crl)->VerifyIssuedBy(*chain.ark); !s.ok()) {
      return IntegrityError("snp: " + which + " is not signed by " + chain.ark->name() + ": " + s.message());
    }
    if ((*crl)->Revokes(*chain.intermediate)) {
      return IntegrityError("snp: " + mid + " is revoked (" + which + " of " + chain.ark->name() + ")");
    }
    if (Status s = (*crl)->CheckCurrentAt(now_unix); !s.ok()) {
      v.warnings.push_back(which + " of " + chain.ark->name() + " is not current: " + s.message());
    }
    if ((*crl)->next_update_unix() != 0) expires = std::min(expires, (*crl)->next_update_unix());
    v.checks.push_back(mid + " not revoked (" + which + " of " + chain.ark->name() + ")");
    v.revocation_checked = true;
  }
  return Status::Ok();
}

Status CheckReportSignature(const Chain& chain, std::span<const uint8_t> bytes, const SnpReport& r) {
  const std::string leaf = chain.endorsement_role;
  auto key = chain.endorsement->Key();
  if (!key.ok()) return IntegrityError("snp: " + leaf + " key is unusable: " + key.status().message());
  if (std::string kind = (*key)->Describe(); kind != "EC P-384") {
    return IntegrityError("snp: " + leaf + " key is " + kind + ", not EC P-384");
  }
  // R and S are 72-byte little-endian fields; a P-384 scalar fills the low
  // 48 bytes and the rest must be zero.
  auto to_big_endian = [](const std::array<uint8_t, kRsSize>& le, std::array<uint8_t, kP384Size>& be) {
    for (size_t i = kP384Size; i < kRsSize; ++i) {
      if (le[i] != 0) return false;
    }
    std::reverse_copy(le.begin(), le.begin() + kP384Size, be.begin());
    return true;
  };
  std::array<uint8_t, kP384Size> rb{}, sb{};
  if (!to_big_endian(r.signature_r, rb) || !to_big_endian(r.signature_s, sb)) {
    return IntegrityError("snp: report signature R or S does not fit P-384 (upper bytes not zero)");
  }
  if (Status s = (*key)->VerifyEcdsaRaw(crypto::HashAlg::kSha384, bytes.first(kSnpSignedSize), rb, sb); !s.ok()) {
    return IntegrityError("snp: report signature does not verify with the " + leaf + " key");
  }
  return Status::Ok();
}

// The certificate's TCB (its SPL extensions) is the one the report states,
// and a VCEK belongs to the chip the report names.
Status CheckCertificateMatchesReport(const Chain& chain, const SnpReport& r, HardwareVerdict& v) {
  const std::string& leaf = chain.endorsement_role;
  const SnpTcb reported = DecodeSnpTcb(chain.product, r.reported_tcb);
  for (const Spl& spl : kSpls) {
    if (spl.field == &SnpTcb::fmc && !HasFmc(chain.product)) continue;
    auto ext = chain.endorsement->Extension(spl.oid);
    if (!ext) {
      return IntegrityError("snp: " + leaf + " has no " + std::string(spl.ext_name) + " extension (" +
                            std::string(spl.oid) + ")");
    }
    auto value = DerSmallUnsigned(*ext);
    if (!value) return IntegrityError("snp: " + leaf + " " + std::string(spl.ext_name) + " is not an integer 0..255");
    if (*value != reported.*spl.field) {
      return IntegrityError("snp: " + leaf + " " + std::string(spl.ext_name) + " " + std::to_string(*value) +
                            " differs from reported_tcb " + std::string(spl.component) + " " +
                            std::to_string(reported.*spl.field));
    }
  }
  v.checks.push_back(leaf + " TCB extensions equal reported_tcb");

  if (!chain.vlek) {
    const size_t size = chain.product == SnpProduct::kTurin ? 8 : 64;
    auto ext = chain.endorsement->Extension(kOidHwId);
    if (!ext) return IntegrityError("snp: VCEK has no hwID extension");
    auto hwid = HwIdBytes(*ext, size);
    if (!hwid) return IntegrityError("snp: VCEK hwID is not " + std::to_string(size) + " bytes");
    if (r.mask_chip_key()) {
      v.warnings.push_back("chip_id is masked (MASK_CHIP_KEY): the report does not say which chip made it");
    } else if (!std::equal(hwid->begin(), hwid->end(), r.chip_id.begin())) {
      return IntegrityError("snp: VCEK hwID differs from the report's chip_id");
    } else {
      v.checks.push_back("VCEK hwID equals chip_id");
    }
  }

  // From version 3 the report names the CPU family, which tells the TCB
  // layout apart: Zen 3/4 (Milan, Genoa) are family 19h, Zen 5 (Turin) 1Ah.
  if (r.version >= 3 && r.cpuid_family != 0) {
    const uint8_t want = chain.product == SnpProduct::kTurin ? 0x1A : 0x19;
    if (r.cpuid_family != want) {
      return IntegrityError("snp: the report's CPUID family " + std::to_string(r.cpuid_family) +
                            " does not fit product " + std::string(SnpProductName(chain.product)));
    }
  }
  return Status::Ok();
}

Status CheckValidity(const Chain& chain, int64_t now_unix, HardwareVerdict& v) {
  const std::pair<const char*, const CertPtr*> certs[] = {
      {"ARK", &chain.ark},
      {chain.vlek ? "ASVK" : "ASK", &chain.intermediate},
      {chain.vlek ? "VLEK" : "VCEK", &chain.endorsement},
  };
  for (const auto& [role, cert] : certs) {
    if (Status s = (*cert)->CheckValidAt(now_unix); !s.ok()) {
      return FailedPrecondition("snp: " + Label(role, **cert) + " is not valid at " +
                                crypto::FormatRfc3339(now_unix) + ": " + s.message());
    }
  }
  v.checks.push_back(std::string("ARK, ") + chain.intermediate_role + " and " + chain.endorsement_role +
                     " valid at " + crypto::FormatRfc3339(now_unix));
  return Status::Ok();
}

void AddTcbClaims(std::vector<Claim>& claims, const std::string& name, SnpProduct product, uint64_t tcb) {
  claims.push_back({name, HexOfTcb(tcb)});
  const SnpTcb t = DecodeSnpTcb(product, tcb);
  for (const Spl& spl : kSpls) {
    if (spl.field == &SnpTcb::fmc && !HasFmc(product)) continue;
    claims.push_back({name + "." + std::string(spl.component), std::to_string(t.*spl.field)});
  }
}

void AddClaims(const SnpReport& r, const Chain& chain, HardwareVerdict& v) {
  auto& c = v.claims;
  c.push_back({"version", std::to_string(r.version)});
  c.push_back({"measurement", HexEncode(r.measurement)});
  c.push_back({"host_data", HexEncode(r.host_data)});
  c.push_back({"report_data", HexEncode(r.report_data)});
  c.push_back({"policy", std::to_string(r.policy)});
  c.push_back({"guest_svn", std::to_string(r.guest_svn)});
  c.push_back({"vmpl", std::to_string(r.vmpl)});
  c.push_back({"family_id", HexEncode(r.family_id)});
  c.push_back({"image_id", HexEncode(r.image_id)});
  c.push_back({"id_key_digest", HexEncode(r.id_key_digest)});
  c.push_back({"author_key_digest", HexEncode(r.author_key_digest)});
  c.push_back({"chip_id", HexEncode(r.chip_id)});
  c.push_back({"platform_info", std::to_string(r.platform_info)});
  c.push_back({"product", std::string(SnpProductName(chain.product))});
  c.push_back({"signing_key", chain.vlek ? "vlek" : "vcek"});
  if (chain.vlek) {
    if (auto ext = chain.endorsement->Extension(kOidCspId)) {
      if (auto csp = DerString(*ext)) c.push_back({"csp_id", *csp});
    }
  }
  AddTcbClaims(c, "reported_tcb", chain.product, r.reported_tcb);
  AddTcbClaims(c, "committed_tcb", chain.product, r.committed_tcb);
  AddTcbClaims(c, "launch_tcb", chain.product, r.launch_tcb);
  AddTcbClaims(c, "current_tcb", chain.product, r.current_tcb);
}

}  // namespace

std::string_view SnpProductName(SnpProduct p) {
  switch (p) {
    case SnpProduct::kMilan: return "Milan";
    case SnpProduct::kGenoa: return "Genoa";
    case SnpProduct::kTurin: return "Turin";
  }
  return "unknown";
}

std::optional<SnpProduct> ParseSnpProduct(std::string_view name) {
  // KDS names products with their stepping ("Milan-B0"); the line is what
  // decides the keys and layouts.
  std::string_view line = name.substr(0, name.find('-'));
  for (SnpProduct p : {SnpProduct::kMilan, SnpProduct::kGenoa, SnpProduct::kTurin}) {
    if (line == SnpProductName(p)) return p;
  }
  return std::nullopt;
}

SnpTcb DecodeSnpTcb(SnpProduct product, uint64_t tcb_version) {
  auto byte = [tcb_version](int i) { return static_cast<uint8_t>(tcb_version >> (8 * i)); };
  SnpTcb t;
  if (product == SnpProduct::kTurin) {
    t.fmc = byte(0);
    t.bootloader = byte(1);
    t.tee = byte(2);
    t.snp = byte(3);
  } else {
    t.bootloader = byte(0);
    t.tee = byte(1);
    t.snp = byte(6);
  }
  t.microcode = byte(7);
  return t;
}

uint64_t EncodeSnpTcb(SnpProduct product, const SnpTcb& t) {
  auto at = [](uint8_t v, int i) { return uint64_t{v} << (8 * i); };
  if (product == SnpProduct::kTurin) {
    return at(t.fmc, 0) | at(t.bootloader, 1) | at(t.tee, 2) | at(t.snp, 3) | at(t.microcode, 7);
  }
  return at(t.bootloader, 0) | at(t.tee, 1) | at(t.snp, 6) | at(t.microcode, 7);
}

bool SnpTcbAtLeast(SnpProduct product, uint64_t actual, uint64_t minimum) {
  const SnpTcb a = DecodeSnpTcb(product, actual), m = DecodeSnpTcb(product, minimum);
  return a.fmc >= m.fmc && a.bootloader >= m.bootloader && a.tee >= m.tee && a.snp >= m.snp &&
         a.microcode >= m.microcode;
}

StatusOr<SnpReport> ParseSnpReport(std::span<const uint8_t> b) {
  if (b.size() != kSnpReportSize) {
    return IntegrityError("snp: the report is " + std::to_string(b.size()) + " bytes, expected " +
                          std::to_string(kSnpReportSize));
  }
  SnpReport r;
  r.version = LoadU32(&b[0x000]);
  if (r.version != 2 && r.version != 3 && r.version != 5) {
    return IntegrityError("snp: report version " + std::to_string(r.version) + " is not supported (2, 3, 5)");
  }
  r.guest_svn = LoadU32(&b[0x004]);
  r.policy = LoadU64(&b[0x008]);
  r.family_id = Take<16>(b, 0x010);
  r.image_id = Take<16>(b, 0x020);
  r.vmpl = LoadU32(&b[0x030]);
  r.signature_algo = LoadU32(&b[0x034]);
  if (r.signature_algo != 1) {
    return IntegrityError("snp: report signature_algo " + std::to_string(r.signature_algo) +
                          " is not 1 (ECDSA P-384 with SHA-384)");
  }
  if ((r.policy & kSnpPolicyReservedOne) == 0) return IntegrityError("snp: report policy bit 17 (must be one) is zero");
  r.current_tcb = LoadU64(&b[0x038]);
  r.platform_info = LoadU64(&b[0x040]);
  r.signer_info = LoadU32(&b[0x048]);
  r.report_data = Take<64>(b, 0x050);
  r.measurement = Take<48>(b, 0x090);
  r.host_data = Take<32>(b, 0x0C0);
  r.id_key_digest = Take<48>(b, 0x0E0);
  r.author_key_digest = Take<48>(b, 0x110);
  r.report_id = Take<32>(b, 0x140);
  r.report_id_ma = Take<32>(b, 0x160);
  r.reported_tcb = LoadU64(&b[0x180]);
  if (r.version >= 3) {
    r.cpuid_family = b[0x188];
    r.cpuid_model = b[0x189];
    r.cpuid_stepping = b[0x18A];
  }
  r.chip_id = Take<64>(b, 0x1A0);
  r.committed_tcb = LoadU64(&b[0x1E0]);
  r.current_build = b[0x1E8];
  r.current_minor = b[0x1E9];
  r.current_major = b[0x1EA];
  r.committed_build = b[0x1EC];
  r.committed_minor = b[0x1ED];
  r.committed_major = b[0x1EE];
  r.launch_tcb = LoadU64(&b[0x1F0]);
  if (r.version >= 5) {
    r.launch_mit_vector = LoadU64(&b[0x1F8]);
    r.current_mit_vector = LoadU64(&b[0x200]);
  }
  r.signature_r = Take<kRsSize>(b, kSnpSignedSize);
  r.signature_s = Take<kRsSize>(b, kSnpSignedSize + kRsSize);
  return r;
}

const SnpTrust& DefaultSnpTrust() {
  static const SnpTrust* trust = new SnpTrust{{
      {"Milan", kArkMilanSpkiSha256},
      {"Genoa", kArkGenoaSpkiSha256},
      {"Turin", kArkTurinSpkiSha256},
  }};
  return *trust;
}

StatusOr<HardwareVerdict> VerifySnpReport(std::span<const uint8_t> report, const SnpCollateral& collateral,
                                          int64_t now_unix, const SnpTrust& trust) {
  ASSIGN_OR_RETURN(SnpReport r, ParseSnpReport(report));
  HardwareVerdict v;
  v.type = "snp";
  v.checks.push_back("report format: version " + std::to_string(r.version) + ", ECDSA P-384 with SHA-384");

  const uint8_t signing_key = r.signing_key();
  if (signing_key == static_cast<uint8_t>(SnpSigningKey::kNone)) {
    return IntegrityError("snp: the report is not signed (signer_info signing_key 7)");
  }
  if (signing_key != static_cast<uint8_t>(SnpSigningKey::kVcek) &&
      signing_key != static_cast<uint8_t>(SnpSigningKey::kVlek)) {
    return IntegrityError("snp: signer_info signing_key " + std::to_string(signing_key) + " is reserved");
  }
  ASSIGN_OR_RETURN(Chain chain, LoadChain(collateral, signing_key == static_cast<uint8_t>(SnpSigningKey::kVlek)));
  RETURN_IF_ERROR(CheckChain(chain, trust, v.checks));
  int64_t expires = std::min({chain.ark->not_after_unix(), chain.intermediate->not_after_unix(),
                              chain.endorsement->not_after_unix()});
  RETURN_IF_ERROR(CheckCrls(chain, collateral, now_unix, v, expires));
  RETURN_IF_ERROR(CheckReportSignature(chain, report, r));
  v.checks.push_back("report signature by the " + chain.endorsement_role + " (ECDSA P-384, SHA-384)");
  RETURN_IF_ERROR(CheckCertificateMatchesReport(chain, r, v));
  RETURN_IF_ERROR(CheckValidity(chain, now_unix, v));

  v.collateral_expires_unix = expires;
  v.debug = r.debug();
  if (v.debug) v.warnings.push_back("DEBUG guest (policy bit 19): the host can read and change its memory");
  v.tcb_status = TcbStatus::kNotEvaluated;
  AddClaims(r, chain, v);
  return v;
}

bool SnpVcekFitsReport(const crypto::Certificate& vcek, SnpProduct product, const SnpReport& report) {
  const SnpTcb reported = DecodeSnpTcb(product, report.reported_tcb);
  for (const Spl& spl : kSpls) {
    if (spl.field == &SnpTcb::fmc && !HasFmc(product)) continue;
    auto ext = vcek.Extension(spl.oid);
    auto value = ext ? DerSmallUnsigned(*ext) : std::nullopt;
    if (!value || *value != reported.*spl.field) return false;
  }
  auto ext = vcek.Extension(kOidHwId);
  auto hwid = ext ? HwIdBytes(*ext, report.chip_id.size()) : std::nullopt;
  return hwid && std::equal(hwid->begin(), hwid->end(), report.chip_id.begin());
}

StatusOr<std::vector<SnpCertificateTableEntry>> ParseSnpCertificateTable(std::span<const uint8_t> table) {
  constexpr size_t kEntry = 24, kMaxTable = 64 * 1024;
  std::vector<SnpCertificateTableEntry> out;
  std::vector<uint64_t> offsets;
  if (table.size() > kMaxTable) return IntegrityError("snp: the certificate table is larger than 64 KiB");
  for (size_t at = 0;; at += kEntry) {
    if (at + kEntry > table.size()) return IntegrityError("snp: the certificate table has no terminating entry");
    auto e = table.subspan(at, kEntry);
    if (std::all_of(e.begin(), e.end(), [](uint8_t b) { return b == 0; })) break;
    auto u32 = [&](size_t o) {
      return uint32_t{e[o]} | uint32_t{e[o + 1]} << 8 | uint32_t{e[o + 2]} << 16 | uint32_t{e[o + 3]} << 24;
    };
    uint64_t offset = u32(16), length = u32(20);
    if (offset + length > table.size()) {
      return IntegrityError("snp: certificate table entry " + std::to_string(out.size()) + " ends past the table");
    }
    SnpCertificateTableEntry entry;
    std::copy(e.begin(), e.begin() + 16, entry.guid.begin());
    entry.data.assign(table.begin() + static_cast<ptrdiff_t>(offset),
                      table.begin() + static_cast<ptrdiff_t>(offset + length));
    out.push_back(std::move(entry));
    offsets.push_back(offset);
  }
  // The data lies after the entries (checked once their number is known).
  const size_t entries_end = (out.size() + 1) * kEntry;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!out[i].data.empty() && offsets[i] < entries_end) {
      return IntegrityError("snp: certificate table entry " + std::to_string(i) + " points into the entries");
    }
  }
  return out;
}

}  // namespace cloister::attest
