// Collateral for hardware evidence (docs/cas.md, "Collateral for hardware
// evidence"): the pieces an operator imports and a PCCS serves, kept in the
// sealed store, and the choice of the pieces that verify one quote or
// report. Nothing here is trusted: the verifiers check every signature and
// chain; this only keeps the newest copy of each piece and finds the right
// ones.
#include <httplib.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "attest/dcap.h"
#include "attest/snp.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "cas/service.h"
#include "cas/service_internal.h"
#include "crypto/crypto.h"
#include "crypto/x509.h"

namespace cloister::cas {
namespace {

using nlohmann::json;
using namespace internal;  // NOLINT

// Fetches for one platform are at most this often, whatever the outcome:
// a CAS that sees many joins of a node whose collateral the PCCS lacks must
// not turn each into a request.
constexpr int64_t kPccsRetrySeconds = 60;
constexpr size_t kMaxCollateralFile = 4 << 20;

struct Piece {
  std::string kind, subject;
  Bytes bytes;
  int64_t issued = 0, next_update = 0;
};

int64_t DateField(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return 0;
  auto t = crypto::ParseRfc3339(it->get<std::string>());
  return t.ok() ? *t : 0;
}

std::string Fingerprint(const Bytes& b) { return HexEncode(crypto::Sha256(b)).substr(0, 16); }

// The names of the certificates in a bundle, for an operator to recognise it.
std::string CertificateNames(const Bytes& bundle) {
  auto certs = crypto::Certificate::ParseBundle(bundle);
  if (!certs.ok()) return "certificates";
  std::string names;
  for (const auto& c : *certs) names += (names.empty() ? "" : ", ") + c->name();
  return names;
}

Piece CrlPiece(const char* kind, const Bytes& bytes) {
  Piece p{kind, "", bytes};
  if (auto crl = crypto::Crl::Parse(bytes); crl.ok()) {
    p.subject = (*crl)->issuer_cn();
    p.issued = (*crl)->this_update_unix();
    p.next_update = (*crl)->next_update_unix();
  }
  return p;
}

// One file into the pieces it holds (a one-file JSON collateral holds
// several). Unrecognised files are named in `unrecognised`.
Status SplitFile(const attest::CollateralFile& file, std::vector<Piece>& out, std::vector<std::string>& unrecognised) {
  ASSIGN_OR_RETURN(attest::CollateralSet set, attest::ClassifyCollateral({file}));
  for (const std::string& t : set.tcb_infos) {
    json j = json::parse(t, nullptr, false);
    const json& info = j["tcbInfo"];
    std::string id = info.value("id", "SGX");
    Piece p{"tcb-info", id + " fmspc " + AsciiLower(info.value("fmspc", "")), ToBytes(t)};
    p.issued = DateField(info, "issueDate");
    p.next_update = DateField(info, "nextUpdate");
    out.push_back(std::move(p));
  }
  for (const std::string& q : set.qe_identities) {
    json j = json::parse(q, nullptr, false);
    const json& id = j["enclaveIdentity"];
    Piece p{"qe-identity", id.value("id", "QE"), ToBytes(q)};
    p.issued = DateField(id, "issueDate");
    p.next_update = DateField(id, "nextUpdate");
    out.push_back(std::move(p));
  }
  if (!set.tcb_signing_chain.empty()) {
    Piece p{"tcb-signing-chain", "Intel SGX TCB Signing", set.tcb_signing_chain};
    if (auto certs = crypto::Certificate::ParseBundle(set.tcb_signing_chain); certs.ok() && !certs->empty()) {
      p.issued = certs->front()->not_before_unix();
    }
    out.push_back(std::move(p));
  }
  if (!set.intel_root_ca_crl.empty()) out.push_back(CrlPiece("root-ca-crl", set.intel_root_ca_crl));
  for (const Bytes& crl : set.intel_pck_crls) out.push_back(CrlPiece("pck-crl", crl));
  for (const Bytes& crl : set.amd_crls) out.push_back(CrlPiece("amd-crl", crl));
  // Certificate files are kept whole (a chain is one file), one per content.
  if (!set.pck_certificates.empty()) {
    out.push_back(Piece{"pck-certificates",
                        CertificateNames(set.pck_certificates) + " sha256:" + Fingerprint(set.pck_certificates),
                        set.pck_certificates});
  }
  for (const Bytes& b : set.amd_certificates) {
    out.push_back(Piece{"amd-certificate", CertificateNames(b) + " sha256:" + Fingerprint(b), b});
  }
  for (const std::string& n : set.unrecognised) unrecognised.push_back(n);
  return Status::Ok();
}

std::string PieceKey(const Piece& p) { return p.kind + "\n" + p.subject; }

json PieceRecord(const Piece& p, const std::string& source) {
  return {{"kind", p.kind},       {"subject", p.subject},         {"source", source}, {"added", Now()},
          {"issued", p.issued},   {"next_update", p.next_update}, {"data", Base64Encode(p.bytes)}};
}

// The next update of a TCB Info or QE Identity response (0 if unknown).
int64_t NextUpdate(const std::string& response, const char* object) {
  json j = json::parse(response, nullptr, false);
  if (!j.is_object() || !j.contains(object) || !j[object].is_object()) return 0;
  return DateField(j[object], "nextUpdate");
}

// The certificates of an SEV-SNP certificate table. Entries are recognised
// by their content, not their GUID: what is not a certificate is skipped.
StatusOr<std::vector<std::shared_ptr<const crypto::Certificate>>> AuxblobCertificates(std::span<const uint8_t> blob) {
  std::vector<std::shared_ptr<const crypto::Certificate>> out;
  if (blob.empty()) return out;
  ASSIGN_OR_RETURN(auto entries, attest::ParseSnpCertificateTable(blob));
  for (const attest::SnpCertificateTableEntry& e : entries) {
    auto cert = crypto::Certificate::FromDer(e.data);
    if (cert.ok()) out.push_back(*cert);
  }
  return out;
}

}  // namespace

Status CasService::LoadCollateral() {
  ASSIGN_OR_RETURN(auto rows, store_->Scan(kCollateral));
  std::vector<attest::CollateralFile> files;
  std::vector<CollateralEntry> entries;
  for (auto& [key, value] : rows) {
    ASSIGN_OR_RETURN(json rec, ParseRecord(value, "collateral"));
    auto data = Base64Decode(rec.value("data", ""));
    if (!data) return IntegrityError("stored collateral " + key + " is not base64");
    files.push_back({rec.value("kind", "") + " " + rec.value("subject", ""), std::move(*data)});
    entries.push_back(CollateralEntry{rec.value("kind", ""), rec.value("subject", ""), rec.value("source", ""),
                                      rec.value("added", ""), rec.value("next_update", int64_t{0})});
  }
  ASSIGN_OR_RETURN(attest::CollateralSet set, attest::ClassifyCollateral(files));
  std::lock_guard<std::mutex> l(collateral_mu_);
  collateral_ = std::make_shared<const attest::CollateralSet>(std::move(set));
  collateral_entries_ = std::move(entries);
  return Status::Ok();
}

StatusOr<CollateralImportResult> CasService::AddCollateral(const std::vector<attest::CollateralFile>& files,
                                                           const std::string& source) {
  CollateralImportResult result;
  std::vector<Piece> pieces;
  for (const attest::CollateralFile& f : files) {
    if (f.bytes.size() > kMaxCollateralFile) return InvalidArgument(f.name + ": larger than 4 MiB");
    RETURN_IF_ERROR(SplitFile(f, pieces, result.unrecognised).WithContext(f.name));
  }
  std::vector<Store::Write> writes;
  std::set<std::string> seen;
  for (const Piece& p : pieces) {
    std::string key = PieceKey(p);
    ASSIGN_OR_RETURN(auto existing, store_->GetVersioned(kCollateral, key));
    if (existing) {
      ASSIGN_OR_RETURN(json old, ParseRecord(existing->value, "collateral"));
      auto old_bytes = Base64Decode(old.value("data", ""));
      // The same bytes, or an older issue of what the CAS holds: kept as is.
      if ((old_bytes && *old_bytes == p.bytes) || old.value("issued", int64_t{0}) > p.issued) {
        ++result.unchanged;
        continue;
      }
    }
    if (!seen.insert(key).second) {
      // Twice in one import: the later file wins.
      writes.erase(std::remove_if(writes.begin(), writes.end(), [&](const Store::Write& w) { return w.key == key; }),
                   writes.end());
      --result.added;
    }
    writes.push_back(Store::Write{kCollateral, key, ToBytes(PieceRecord(p, source).dump()), std::nullopt});
    ++result.added;
  }
  if (!writes.empty()) {
    RETURN_IF_ERROR(store_->Apply(writes).status());
    RETURN_IF_ERROR(LoadCollateral());
  }
  return result;
}

StatusOr<CollateralImportResult> CasService::ImportCollateral(const std::string& caller,
                                                              const std::vector<attest::CollateralFile>& files) {
  RETURN_IF_ERROR(RequireUnsealed());
  RETURN_IF_ERROR(RequireAdmin(caller));
  if (files.empty()) return InvalidArgument("no collateral files given");
  return AddCollateral(files, "import");
}

StatusOr<std::vector<CollateralEntry>> CasService::ListCollateral(const std::string& caller) {
  RETURN_IF_ERROR(RequireUnsealed());
  RETURN_IF_ERROR(RequireAdmin(caller));
  std::lock_guard<std::mutex> l(collateral_mu_);
  return collateral_entries_;
}

void CasService::SetPccs(std::string url, std::string ca_file) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  pccs_url_ = std::move(url);
  pccs_ca_file_ = std::move(ca_file);
}

Status CasService::FetchDcapCollateral(const std::string& fmspc_hex, bool tdx) {
  std::lock_guard<std::mutex> fetch(pccs_mu_);
  const std::string what = std::string(tdx ? "TDX" : "SGX") + " fmspc " + AsciiLower(fmspc_hex);
  int64_t now = UnixNow();
  int64_t& last = pccs_last_try_[what];
  if (last != 0 && now - last < kPccsRetrySeconds) {
    return Unavailable("the PCCS was asked for " + what + " less than a minute ago");
  }
  last = now;
  httplib::Client client(pccs_url_);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  client.enable_server_certificate_verification(true);
  if (!pccs_ca_file_.empty()) client.set_ca_cert_path(pccs_ca_file_.c_str());
  const std::string base = tdx ? "/tdx/certification/v4" : "/sgx/certification/v4";
  std::vector<attest::CollateralFile> files;
  // GET `path`; the body and, URL-decoded, the issuer chain header.
  auto get = [&](const std::string& path, const char* chain_header, bool required) -> Status {
    auto res = client.Get(path);
    if (!res) return Unavailable("the PCCS at " + pccs_url_ + ": " + httplib::to_string(res.error()));
    if (res->status == 404 && !required) return Status::Ok();
    if (res->status != 200) {
      return Unavailable("the PCCS answered " + std::to_string(res->status) + " to GET " + path);
    }
    Bytes body = ToBytes(res->body);
    // Some PCCS versions send CRLs as hex text.
    if (!body.empty() && std::all_of(res->body.begin(), res->body.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
      if (auto raw = HexDecode(res->body)) body = std::move(*raw);
    }
    files.push_back({"PCCS " + path, std::move(body)});
    for (const char* h : {chain_header, "SGX-PCK-CRL-Issuer-Chain"}) {
      if (h != nullptr && res->has_header(h)) {
        files.push_back({"PCCS " + path + " " + h, ToBytes(httplib::detail::decode_url(res->get_header_value(h), false))});
      }
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(get(base + "/tcb?fmspc=" + AsciiLower(fmspc_hex), "TCB-Info-Issuer-Chain", true));
  RETURN_IF_ERROR(get(base + "/qe/identity", "SGX-Enclave-Identity-Issuer-Chain", true));
  RETURN_IF_ERROR(get("/sgx/certification/v4/pckcrl?ca=processor&encoding=der", nullptr, false));
  RETURN_IF_ERROR(get("/sgx/certification/v4/pckcrl?ca=platform&encoding=der", nullptr, false));
  RETURN_IF_ERROR(get("/sgx/certification/v4/rootcacrl", nullptr, false));
  auto added = AddCollateral(files, pccs_url_);
  if (!added.ok()) return added.status().WithContext("collateral from the PCCS");
  return Status::Ok();
}

StatusOr<attest::DcapCollateral> CasService::DcapCollateralForQuote(std::span<const uint8_t> quote) {
  auto snapshot = [this] {
    std::lock_guard<std::mutex> l(collateral_mu_);
    return collateral_;
  };
  std::shared_ptr<const attest::CollateralSet> set = snapshot();
  if (!set) return FailedPrecondition("the CAS is sealed");
  ASSIGN_OR_RETURN(attest::DcapPlatform platform, attest::ReadDcapPlatform(quote, set->pck_certificates));
  auto chosen = attest::SelectDcapCollateral(*set, platform.fmspc, platform.tdx);
  bool current = chosen.ok() && NextUpdate(chosen->tcb_info_json, "tcbInfo") > UnixNow() &&
                 NextUpdate(chosen->qe_identity_json, "enclaveIdentity") > UnixNow();
  if (current || pccs_url_.empty()) return chosen;
  Status fetched = FetchDcapCollateral(platform.fmspc, platform.tdx);
  if (!fetched.ok()) {
    // What the CAS holds, even out of date, is better than nothing: the
    // verdict says it expired and the policy decides.
    if (chosen.ok()) return chosen;
    return NotFound(chosen.status().message() + "; " + fetched.message());
  }
  set = snapshot();
  return attest::SelectDcapCollateral(*set, platform.fmspc, platform.tdx);
}

StatusOr<attest::SnpCollateral> CasService::SnpCollateralForReport(std::span<const uint8_t> report,
                                                                   std::span<const uint8_t> auxblob) {
  std::shared_ptr<const attest::CollateralSet> set;
  {
    std::lock_guard<std::mutex> l(collateral_mu_);
    set = collateral_;
  }
  if (!set) return FailedPrecondition("the CAS is sealed");
  ASSIGN_OR_RETURN(attest::SnpReport r, attest::ParseSnpReport(report));
  ASSIGN_OR_RETURN(auto certs, AuxblobCertificates(auxblob));
  const size_t from_node = certs.size();
  for (const Bytes& file : set->amd_certificates) {
    auto held = crypto::Certificate::ParseBundle(file);
    if (held.ok()) certs.insert(certs.end(), held->begin(), held->end());
  }
  // The product comes from the CA chain (the ASK/ARK names it); the report
  // itself says it only from version 3 on.
  std::optional<attest::SnpProduct> product;
  for (const auto& c : certs) {
    const std::string& cn = c->subject_cn();
    for (const char* prefix : {"ARK-", "ASK-", "ASVK-"}) {
      if (cn.rfind(prefix, 0) == 0 && !product) product = attest::ParseSnpProduct(cn.substr(std::string(prefix).size()));
    }
  }
  attest::SnpCollateral out;
  std::vector<Bytes> cas;
  for (size_t i = 0; i < certs.size(); ++i) {
    const crypto::Certificate& c = *certs[i];
    if (c.subject_cn() == "SEV-VCEK" || c.subject_cn() == "SEV-VLEK") {
      // The node's own table names its key; of the CAS's, the one for this
      // chip and TCB (a VLEK names no chip: the first one).
      bool pick = i < from_node || c.subject_cn() == "SEV-VLEK" || (product && attest::SnpVcekFitsReport(c, *product, r));
      if (pick && out.endorsement_certificate.empty()) out.endorsement_certificate = c.der();
    } else if (std::find(cas.begin(), cas.end(), c.der()) == cas.end()) {
      cas.push_back(c.der());
    }
  }
  if (out.endorsement_certificate.empty()) {
    return NotFound("snp: no VCEK or VLEK for chip " + HexEncode(r.chip_id).substr(0, 16) +
                    "... and this TCB: import it with `cloister cas collateral import` or let the node send it");
  }
  for (const Bytes& der : cas) out.ca_bundle.insert(out.ca_bundle.end(), der.begin(), der.end());
  out.crls = set->amd_crls;
  return out;
}

}  // namespace cloister::cas
