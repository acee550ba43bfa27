#include "attest/collateral.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "crypto/x509.h"

namespace cloister::attest {
namespace {

using json = nlohmann::json;

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

bool IsAmdName(const std::string& cn) {
  return StartsWith(cn, "ARK-") || StartsWith(cn, "SEV-") || StartsWith(cn, "ASK-") || StartsWith(cn, "ASVK-");
}

void Append(Bytes& to, const Bytes& from) {
  // PEM blocks need a line break between files; DER needs nothing.
  if (!to.empty() && to.back() != '\n' && !from.empty() && from.front() == '-') to.push_back('\n');
  to.insert(to.end(), from.begin(), from.end());
}

}  // namespace

StatusOr<CollateralSet> ClassifyCollateral(const std::vector<CollateralFile>& files) {
  CollateralSet set;
  for (const CollateralFile& f : files) {
    const std::string text(f.bytes.begin(), f.bytes.end());
    size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '{') {
      json j = json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return IntegrityError(f.name + ": not a well-formed JSON object");
      if (j.contains("tcbInfo")) {
        set.tcb_infos.push_back(text);
      } else if (j.contains("enclaveIdentity")) {
        set.qe_identities.push_back(text);
      } else if (j.contains("tcb_info") && j.contains("qe_identity")) {
        // The one-file form: split into its parts.
        ASSIGN_OR_RETURN(DcapCollateral c, DcapCollateralFromJson(text));
        set.tcb_infos.push_back(c.tcb_info_json);
        set.qe_identities.push_back(c.qe_identity_json);
        if (set.tcb_signing_chain.empty()) set.tcb_signing_chain = c.tcb_info_issuer_chain;
        if (set.intel_root_ca_crl.empty()) set.intel_root_ca_crl = c.root_ca_crl;
        for (Bytes& crl : c.pck_crls) set.intel_pck_crls.push_back(std::move(crl));
      } else {
        set.unrecognised.push_back(f.name);
      }
      continue;
    }
    // A CRL?
    if (auto crl = crypto::Crl::Parse(f.bytes); crl.ok()) {
      const std::string& issuer = (*crl)->issuer_cn();
      if (issuer == "Intel SGX Root CA") {
        set.intel_root_ca_crl = f.bytes;
      } else if (StartsWith(issuer, "Intel SGX PCK")) {
        set.intel_pck_crls.push_back(f.bytes);
      } else if (IsAmdName(issuer)) {
        set.amd_crls.push_back(f.bytes);
      } else {
        set.unrecognised.push_back(f.name);
      }
      continue;
    }
    // Certificates?
    auto certs = crypto::Certificate::ParseBundle(f.bytes);
    if (!certs.ok()) {
      if (text.find("-----BEGIN") != std::string::npos) return IntegrityError(f.name + ": " + certs.status().message());
      set.unrecognised.push_back(f.name);
      continue;
    }
    bool intel_signing = false, intel_pck = false, amd = false;
    for (const auto& c : *certs) {
      intel_signing |= c->subject_cn() == "Intel SGX TCB Signing";
      intel_pck |= StartsWith(c->subject_cn(), "Intel SGX PCK");
      amd |= IsAmdName(c->subject_cn());
    }
    if (intel_signing) {
      set.tcb_signing_chain = f.bytes;
    } else if (intel_pck) {
      Append(set.pck_certificates, f.bytes);
    } else if (amd) {
      set.amd_certificates.push_back(f.bytes);
    } else {
      set.unrecognised.push_back(f.name);
    }
  }
  return set;
}

StatusOr<DcapCollateral> SelectDcapCollateral(const CollateralSet& set, const std::string& fmspc_hex, bool tdx) {
  DcapCollateral c;
  const std::string want_id = tdx ? "TDX" : "SGX";
  int64_t best_issue = -1;
  for (const std::string& t : set.tcb_infos) {
    json j = json::parse(t, nullptr, false);
    const json* info = j.is_object() && j.contains("tcbInfo") ? &j["tcbInfo"] : nullptr;
    if (info == nullptr || !info->is_object()) continue;
    auto get = [&](const char* k) -> std::string {
      auto it = info->find(k);
      return it != info->end() && it->is_string() ? it->get<std::string>() : "";
    };
    // Version 2 TCB Info has no id and is for SGX.
    std::string id = get("id");
    if (id.empty()) id = "SGX";
    if (id != want_id || AsciiLower(get("fmspc")) != AsciiLower(fmspc_hex)) continue;
    // The newest one wins when several are given.
    auto issue = crypto::ParseRfc3339(get("issueDate"));
    int64_t when = issue.ok() ? *issue : 0;
    if (when > best_issue) {
      best_issue = when;
      c.tcb_info_json = t;
    }
  }
  if (c.tcb_info_json.empty()) {
    return NotFound("no TCB Info for " + want_id + " FMSPC " + AsciiLower(fmspc_hex) + " in the collateral");
  }
  const std::string want_qe = tdx ? "TD_QE" : "QE";
  best_issue = -1;
  for (const std::string& q : set.qe_identities) {
    json j = json::parse(q, nullptr, false);
    const json* id = j.is_object() && j.contains("enclaveIdentity") ? &j["enclaveIdentity"] : nullptr;
    if (id == nullptr || !id->is_object()) continue;
    auto it = id->find("id");
    if (it == id->end() || !it->is_string() || it->get<std::string>() != want_qe) continue;
    auto d = id->find("issueDate");
    auto issue = d != id->end() && d->is_string() ? crypto::ParseRfc3339(d->get<std::string>()) : StatusOr<int64_t>(0);
    int64_t when = issue.ok() ? *issue : 0;
    if (when > best_issue) {
      best_issue = when;
      c.qe_identity_json = q;
    }
  }
  if (c.qe_identity_json.empty()) return NotFound("no QE Identity for " + want_qe + " in the collateral");
  if (set.tcb_signing_chain.empty()) return NotFound("no Intel SGX TCB Signing certificate chain in the collateral");
  c.tcb_info_issuer_chain = set.tcb_signing_chain;
  c.qe_identity_issuer_chain = set.tcb_signing_chain;
  c.root_ca_crl = set.intel_root_ca_crl;
  c.pck_crls = set.intel_pck_crls;
  c.pck_certificate_chain = set.pck_certificates;
  return c;
}

StatusOr<SnpCollateral> SelectSnpCollateral(const CollateralSet& set) {
  SnpCollateral c;
  std::vector<Bytes> cas;
  for (const Bytes& file : set.amd_certificates) {
    ASSIGN_OR_RETURN(auto certs, crypto::Certificate::ParseBundle(file));
    for (const auto& cert : certs) {
      const std::string& cn = cert->subject_cn();
      if (cn == "SEV-VCEK" || cn == "SEV-VLEK") {
        if (!c.endorsement_certificate.empty() && c.endorsement_certificate != cert->der()) {
          return InvalidArgument("more than one VCEK/VLEK certificate in the collateral");
        }
        c.endorsement_certificate = cert->der();
      } else if (std::find(cas.begin(), cas.end(), cert->der()) == cas.end()) {
        cas.push_back(cert->der());
      }
    }
  }
  if (c.endorsement_certificate.empty()) return NotFound("no VCEK or VLEK certificate in the collateral");
  // Concatenated DER: one bundle, whatever form the files had.
  for (const Bytes& der : cas) c.ca_bundle.insert(c.ca_bundle.end(), der.begin(), der.end());
  c.crls = set.amd_crls;
  return c;
}

}  // namespace cloister::attest
