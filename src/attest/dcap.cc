#include "attest/dcap.h"

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "crypto/x509.h"

namespace cloister::attest {
namespace {

using crypto::Certificate;
using crypto::Crl;
using crypto::HashAlg;
using crypto::PublicKey;
using json = nlohmann::json;
using CertPtr = std::shared_ptr<const Certificate>;

constexpr size_t kHeaderSize = 48;
constexpr size_t kSgxBodySize = 384;
constexpr size_t kTd10BodySize = 584;
constexpr size_t kTd15BodySize = 648;
constexpr uint32_t kTeeSgx = 0;
constexpr uint32_t kTeeTdx = 0x81;
constexpr uint16_t kEcdsaP256 = 2;
constexpr std::array<uint8_t, 16> kIntelQeVendor = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                                    0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};
// Certification data types (Intel's quote library names them).
constexpr uint16_t kCertPckChain = 5;
constexpr uint16_t kCertQeReport = 6;
// The signature data holds at most a few certificates; anything larger is
// not a quote.
constexpr uint32_t kMaxSigData = 64 * 1024;

constexpr char kSgxExtension[] = "1.2.840.113741.1.13.1";

StatusOr<Bytes> FromHex(std::string_view h, const std::string& what) {
  std::optional<Bytes> b = HexDecode(h);
  if (!b) return IntegrityError(what + ": not hex");
  return std::move(*b);
}

// ---- little-endian reader with bounds ----

class Reader {
 public:
  Reader(std::span<const uint8_t> b, size_t at = 0) : b_(b), at_(at) {}
  size_t at() const { return at_; }
  size_t left() const { return at_ <= b_.size() ? b_.size() - at_ : 0; }
  bool Need(size_t n) const { return left() >= n; }
  uint16_t U16() {
    uint16_t v = static_cast<uint16_t>(b_[at_] | b_[at_ + 1] << 8);
    at_ += 2;
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = v << 8 | b_[at_ + static_cast<size_t>(i)];
    at_ += 4;
    return v;
  }
  template <size_t N>
  void Copy(std::array<uint8_t, N>& out) {
    std::memcpy(out.data(), b_.data() + at_, N);
    at_ += N;
  }
  std::span<const uint8_t> Take(size_t n) {
    auto s = b_.subspan(at_, n);
    at_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> b_;
  size_t at_;
};

void ParseSgxBody(std::span<const uint8_t> b, SgxReportBody& r) {
  Reader in(b);
  in.Copy(r.cpusvn);
  r.miscselect = in.U32();
  in.Take(12);
  in.Copy(r.isvextprodid);
  in.Copy(r.attributes);
  in.Copy(r.mrenclave);
  in.Take(32);
  in.Copy(r.mrsigner);
  in.Take(32);
  in.Copy(r.configid);
  r.isvprodid = in.U16();
  r.isvsvn = in.U16();
  r.configsvn = in.U16();
  in.Take(42);
  in.Copy(r.isvfamilyid);
  in.Copy(r.report_data);
}

void ParseTdBody(std::span<const uint8_t> b, TdReportBody& r) {
  Reader in(b);
  in.Copy(r.tee_tcb_svn);
  in.Copy(r.mrseam);
  in.Copy(r.mrsignerseam);
  in.Copy(r.seamattributes);
  in.Copy(r.tdattributes);
  in.Copy(r.xfam);
  in.Copy(r.mrtd);
  in.Copy(r.mrconfigid);
  in.Copy(r.mrowner);
  in.Copy(r.mrownerconfig);
  for (auto& m : r.rtmr) in.Copy(m);
  in.Copy(r.report_data);
  r.tdx15 = b.size() == kTd15BodySize;
  if (r.tdx15) {
    in.Copy(r.tee_tcb_svn2);
    in.Copy(r.mrservicetd);
  }
}

// QE report, its signature, the auth data, then one certification data
// block: the layout inside v3 signature data and inside a v4/v5 type-6
// block.
Status ParseQeSection(Reader& in, DcapQuote& q, const char* where) {
  if (!in.Need(kSgxBodySize + 64 + 2)) return IntegrityError(std::string("dcap: ") + where + " is too short for a QE report");
  auto raw = in.Take(kSgxBodySize);
  std::copy(raw.begin(), raw.end(), q.qe_report_raw.begin());
  ParseSgxBody(raw, q.qe_report);
  in.Copy(q.qe_report_signature);
  uint16_t auth = in.U16();
  if (!in.Need(auth)) return IntegrityError(std::string("dcap: QE auth data length runs past the ") + where);
  auto a = in.Take(auth);
  q.qe_auth_data.assign(a.begin(), a.end());
  if (!in.Need(6)) return IntegrityError(std::string("dcap: no certification data in the ") + where);
  q.cert_type = in.U16();
  uint32_t size = in.U32();
  if (!in.Need(size)) return IntegrityError(std::string("dcap: certification data length runs past the ") + where);
  auto c = in.Take(size);
  q.cert_data.assign(c.begin(), c.end());
  if (in.left() != 0) return IntegrityError(std::string("dcap: bytes after the certification data in the ") + where);
  return Status::Ok();
}

// ---- JSON: the exact bytes of a member, for signatures ----

size_t SkipWs(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// Index just past the JSON value starting at i, or npos if malformed.
size_t SkipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') {
    for (++i; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
      } else if (s[i] == '"') {
        return i + 1;
      }
    }
    return std::string_view::npos;
  }
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < s.size(); ++i) {
      char c = s[i];
      if (c == '"') {
        size_t e = SkipValue(s, i);
        if (e == std::string_view::npos) return e;
        i = e - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return std::string_view::npos;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' && s[i] != '\r' &&
         s[i] != '\t') {
    ++i;
  }
  return i;
}

// The raw text of the top-level member `key` of the object in `text`.
StatusOr<std::string_view> RawMember(std::string_view text, std::string_view key, const std::string& what) {
  size_t i = SkipWs(text, 0);
  if (i >= text.size() || text[i] != '{') return IntegrityError(what + " is not a JSON object");
  i = SkipWs(text, i + 1);
  while (i < text.size() && text[i] != '}') {
    if (text[i] != '"') return IntegrityError(what + " is not well-formed JSON");
    size_t kend = SkipValue(text, i);
    if (kend == std::string_view::npos) return IntegrityError(what + " is not well-formed JSON");
    std::string_view k = text.substr(i + 1, kend - i - 2);
    i = SkipWs(text, kend);
    if (i >= text.size() || text[i] != ':') return IntegrityError(what + " is not well-formed JSON");
    i = SkipWs(text, i + 1);
    size_t vend = SkipValue(text, i);
    if (vend == std::string_view::npos) return IntegrityError(what + " is not well-formed JSON");
    if (k == key) return text.substr(i, vend - i);
    i = SkipWs(text, vend);
    if (i < text.size() && text[i] == ',') i = SkipWs(text, i + 1);
  }
  return IntegrityError(what + " has no \"" + std::string(key) + "\"");
}

// Typed access to parsed JSON without exceptions.
const json* Member(const json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  return it == o.end() ? nullptr : &*it;
}
StatusOr<std::string> Str(const json& o, const char* key, const std::string& what) {
  const json* v = Member(o, key);
  if (v == nullptr || !v->is_string()) return IntegrityError(what + ": \"" + key + "\" is missing or not a string");
  return v->get<std::string>();
}
StatusOr<int64_t> Int(const json& o, const char* key, const std::string& what) {
  const json* v = Member(o, key);
  if (v == nullptr || !v->is_number_integer()) {
    return IntegrityError(what + ": \"" + key + "\" is missing or not an integer");
  }
  return v->get<int64_t>();
}

// ---- signed collateral ----

struct SignedJson {
  json body;
  int64_t issue = 0, next_update = 0;
};

// Verifies a TCB Info or QE Identity response and returns its parsed body.
StatusOr<SignedJson> VerifySignedJson(const std::string& response, const char* member, const Bytes& chain_bytes,
                                      const DcapTrust& trust, int64_t now, const std::string& what,
                                      HardwareVerdict& v) {
  ASSIGN_OR_RETURN(std::string_view raw, RawMember(response, member, what));
  // The signature is a JSON string of hex digits (nothing to unescape):
  // taken from the raw text too, without parsing the whole response.
  ASSIGN_OR_RETURN(std::string_view sig_text, RawMember(response, "signature", what));
  if (sig_text.size() < 2 || sig_text.front() != '"' || sig_text.back() != '"') {
    return IntegrityError(what + ": \"signature\" is not a string");
  }
  ASSIGN_OR_RETURN(Bytes sig, FromHex(sig_text.substr(1, sig_text.size() - 2), what + " signature"));
  if (sig.size() != 64) return IntegrityError(what + ": signature is not 64 bytes");
  if (chain_bytes.empty()) return IntegrityError(what + ": no issuer chain given");
  ASSIGN_OR_RETURN(auto chain, Certificate::ParseBundle(chain_bytes));
  // The signer is the certificate that is not a CA; its issuer must be a
  // pinned root.
  CertPtr signer, root;
  for (const auto& c : chain) {
    if (c->is_ca()) {
      root = c;
    } else {
      signer = c;
    }
  }
  if (!signer || !root) return IntegrityError(what + ": issuer chain lacks the signing certificate or the root");
  auto pin = root->SpkiSha256();
  bool pinned = std::any_of(trust.root_spki_sha256.begin(), trust.root_spki_sha256.end(),
                            [&](const auto& p) { return CRYPTO_memcmp(p.data(), pin.data(), pin.size()) == 0; });
  if (!pinned) return IntegrityError(what + ": issuer chain ends at " + root->name() + ", which is not a trusted root");
  Status s = root->VerifyIssuedBy(*root);
  if (s.ok()) s = signer->VerifyIssuedBy(*root);
  if (!s.ok()) return IntegrityError(what + ": " + s.message());
  RETURN_IF_ERROR(root->CheckValidAt(now));
  RETURN_IF_ERROR(signer->CheckValidAt(now));
  ASSIGN_OR_RETURN(auto key, signer->Key());
  std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  Status vs = key->VerifyEcdsaRaw(HashAlg::kSha256, data, std::span<const uint8_t>(sig.data(), 32),
                                  std::span<const uint8_t>(sig.data() + 32, 32));
  if (!vs.ok()) return IntegrityError(what + ": signature by " + signer->name() + " does not verify");
  v.checks.push_back(what + " signed by " + signer->name() + " (chained to " + root->name() + ")");
  SignedJson out;
  out.body = json::parse(raw, nullptr, false);
  if (out.body.is_discarded() || !out.body.is_object()) return IntegrityError(what + " body is not a JSON object");
  ASSIGN_OR_RETURN(std::string issue, Str(out.body, "issueDate", what));
  ASSIGN_OR_RETURN(std::string next, Str(out.body, "nextUpdate", what));
  ASSIGN_OR_RETURN(out.issue, crypto::ParseRfc3339(issue));
  ASSIGN_OR_RETURN(out.next_update, crypto::ParseRfc3339(next));
  if (now < out.issue) return FailedPrecondition(what + " is not valid before " + issue);
  if (now > out.next_update) {
    v.warnings.push_back(what + " expired at " + next + " (verified at " + crypto::FormatRfc3339(now) + ")");
  }
  if (v.collateral_expires_unix == 0 || out.next_update < v.collateral_expires_unix) {
    v.collateral_expires_unix = out.next_update;
  }
  return out;
}

// ---- the PCK certificate's SGX extension ----

struct PckInfo {
  std::array<uint8_t, 16> components{};
  int pcesvn = -1;
  Bytes cpusvn, fmspc, pceid;
  int sgx_type = -1;
};

// The extension is a SEQUENCE of SEQUENCE { OID, value }, nested once for
// the TCB. Parsed with OpenSSL's generic ASN.1 types.
struct SeqFree {
  void operator()(ASN1_SEQUENCE_ANY* p) const { sk_ASN1_TYPE_pop_free(p, ASN1_TYPE_free); }
};
using Seq = std::unique_ptr<ASN1_SEQUENCE_ANY, SeqFree>;

Seq ParseSeq(const uint8_t* p, size_t n) {
  const unsigned char* q = p;
  ASN1_SEQUENCE_ANY* s = d2i_ASN1_SEQUENCE_ANY(nullptr, &q, static_cast<long>(n));
  if (s != nullptr && q != p + n) {
    sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
    return nullptr;
  }
  return Seq(s);
}

std::string OidText(const ASN1_OBJECT* o) {
  char buf[80];
  int n = OBJ_obj2txt(buf, sizeof buf, o, 1);
  return n > 0 && static_cast<size_t>(n) < sizeof buf ? std::string(buf, static_cast<size_t>(n)) : "";
}

// Calls fn(oid, value) for each SEQUENCE { OID, value } in `seq`.
template <typename Fn>
bool ForEachPair(const ASN1_SEQUENCE_ANY* seq, Fn fn) {
  for (int i = 0; i < sk_ASN1_TYPE_num(seq); ++i) {
    const ASN1_TYPE* t = sk_ASN1_TYPE_value(seq, i);
    if (t->type != V_ASN1_SEQUENCE) return false;
    Seq pair = ParseSeq(t->value.sequence->data, static_cast<size_t>(t->value.sequence->length));
    if (!pair || sk_ASN1_TYPE_num(pair.get()) != 2) return false;
    const ASN1_TYPE* oid = sk_ASN1_TYPE_value(pair.get(), 0);
    if (oid->type != V_ASN1_OBJECT) return false;
    if (!fn(OidText(oid->value.object), sk_ASN1_TYPE_value(pair.get(), 1))) return false;
  }
  return true;
}

bool IntOf(const ASN1_TYPE* t, int* out) {
  if (t->type != V_ASN1_INTEGER && t->type != V_ASN1_ENUMERATED) return false;
  long v = t->type == V_ASN1_ENUMERATED ? ASN1_ENUMERATED_get(t->value.enumerated) : ASN1_INTEGER_get(t->value.integer);
  if (v < 0 || v > 65535) return false;
  *out = static_cast<int>(v);
  return true;
}

bool BytesOf(const ASN1_TYPE* t, Bytes* out) {
  if (t->type != V_ASN1_OCTET_STRING) return false;
  out->assign(t->value.octet_string->data, t->value.octet_string->data + t->value.octet_string->length);
  return true;
}

StatusOr<PckInfo> ReadPckExtension(const Certificate& pck) {
  auto ext = pck.Extension(kSgxExtension);
  if (!ext) return IntegrityError("dcap: the PCK certificate has no SGX extension");
  Seq top = ParseSeq(ext->data(), ext->size());
  if (!top) return IntegrityError("dcap: the PCK certificate's SGX extension is malformed");
  PckInfo info;
  const std::string base = std::string(kSgxExtension) + ".";
  bool ok = ForEachPair(top.get(), [&](const std::string& oid, const ASN1_TYPE* value) {
    if (oid == base + "2") {
      if (value->type != V_ASN1_SEQUENCE) return false;
      Seq tcb = ParseSeq(value->value.sequence->data, static_cast<size_t>(value->value.sequence->length));
      if (!tcb) return false;
      return ForEachPair(tcb.get(), [&](const std::string& c, const ASN1_TYPE* cv) {
        const std::string prefix = base + "2.";
        if (c.rfind(prefix, 0) != 0) return true;
        int n = std::atoi(c.c_str() + prefix.size());
        if (n >= 1 && n <= 16) {
          int svn = 0;
          if (!IntOf(cv, &svn) || svn > 255) return false;
          info.components[static_cast<size_t>(n - 1)] = static_cast<uint8_t>(svn);
        } else if (n == 17) {
          return IntOf(cv, &info.pcesvn);
        } else if (n == 18) {
          return BytesOf(cv, &info.cpusvn);
        }
        return true;
      });
    }
    if (oid == base + "3") return BytesOf(value, &info.pceid);
    if (oid == base + "4") return BytesOf(value, &info.fmspc);
    if (oid == base + "5") return IntOf(value, &info.sgx_type);
    return true;
  });
  if (!ok || info.pcesvn < 0 || info.fmspc.size() != 6 || info.pceid.size() != 2) {
    return IntegrityError("dcap: the PCK certificate's SGX extension is malformed or incomplete");
  }
  return info;
}

// ---- TCB evaluation ----

StatusOr<TcbStatus> LevelStatus(const json& level, const std::string& what) {
  ASSIGN_OR_RETURN(std::string s, Str(level, "tcbStatus", what));
  auto st = ParseTcbStatus(s);
  if (!st.ok()) return IntegrityError(what + ": " + st.status().message());
  return *st;
}

void AddAdvisories(const json& level, HardwareVerdict& v) {
  const json* ids = Member(level, "advisoryIDs");
  if (ids == nullptr || !ids->is_array()) return;
  for (const auto& id : *ids) {
    if (!id.is_string()) continue;
    std::string s = id.get<std::string>();
    if (std::find(v.advisories.begin(), v.advisories.end(), s) == v.advisories.end()) v.advisories.push_back(s);
  }
}

// The SVNs of one TCB level's components ("sgxtcbcomponents" in version 3,
// "sgxtcbcompNNsvn" in version 2).
StatusOr<std::array<int, 16>> LevelComponents(const json& tcb, const char* array_name, int version,
                                              const std::string& what) {
  std::array<int, 16> out{};
  if (version >= 3) {
    const json* comps = Member(tcb, array_name);
    if (comps == nullptr || !comps->is_array() || comps->size() != 16) {
      return IntegrityError(what + ": a TCB level's " + array_name + " is not 16 entries");
    }
    for (size_t i = 0; i < 16; ++i) {
      ASSIGN_OR_RETURN(int64_t svn, Int((*comps)[i], "svn", what));
      out[i] = static_cast<int>(svn);
    }
  } else {
    for (size_t i = 0; i < 16; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "sgxtcbcomp%02zusvn", i + 1);
      ASSIGN_OR_RETURN(int64_t svn, Int(tcb, name, what));
      out[i] = static_cast<int>(svn);
    }
  }
  return out;
}

// QVL's convergence of the platform status with the QE's (and the TDX
// module's): an out-of-date QE or module makes the platform out of date.
TcbStatus Converge(TcbStatus platform, TcbStatus other) {
  if (other == TcbStatus::kRevoked) return TcbStatus::kRevoked;
  if (other != TcbStatus::kOutOfDate) return platform;
  switch (platform) {
    case TcbStatus::kUpToDate:
    case TcbStatus::kSWHardeningNeeded:
    case TcbStatus::kTDRelaunchAdvised:
      return TcbStatus::kOutOfDate;
    case TcbStatus::kConfigurationNeeded:
    case TcbStatus::kConfigurationAndSWHardeningNeeded:
    case TcbStatus::kTDRelaunchAdvisedConfigurationNeeded:
      return TcbStatus::kOutOfDateConfigurationNeeded;
    default:
      return platform;
  }
}

bool MaskedEqual(std::span<const uint8_t> actual, const Bytes& expected, const Bytes& mask) {
  if (expected.size() != actual.size() || mask.size() != actual.size()) return false;
  for (size_t i = 0; i < actual.size(); ++i) {
    if ((actual[i] & mask[i]) != (expected[i] & mask[i])) return false;
  }
  return true;
}

// QE Identity: the QE is Intel's, and its TCB level.
StatusOr<TcbStatus> EvaluateQe(const DcapQuote& q, const SignedJson& id, HardwareVerdict& v) {
  const std::string what = "QE Identity";
  const json& b = id.body;
  ASSIGN_OR_RETURN(std::string ident, Str(b, "id", what));
  const char* expected = q.is_tdx() ? "TD_QE" : "QE";
  if (ident != expected) return IntegrityError("dcap: QE Identity is for \"" + ident + "\", not " + expected);
  ASSIGN_OR_RETURN(std::string mrsigner, Str(b, "mrsigner", what));
  ASSIGN_OR_RETURN(Bytes mrs, FromHex(mrsigner, what + " mrsigner"));
  if (mrs.size() != 32 || CRYPTO_memcmp(mrs.data(), q.qe_report.mrsigner.data(), 32) != 0) {
    return IntegrityError("dcap: the QE's MRSIGNER " + HexEncode(q.qe_report.mrsigner) + " is not the one QE Identity names");
  }
  ASSIGN_OR_RETURN(int64_t prodid, Int(b, "isvprodid", what));
  if (prodid != q.qe_report.isvprodid) return IntegrityError("dcap: the QE's ISVPRODID is not the one QE Identity names");
  // MISCSELECT as its 4 little-endian report bytes, ATTRIBUTES as 16.
  ASSIGN_OR_RETURN(std::string ms, Str(b, "miscselect", what));
  ASSIGN_OR_RETURN(std::string msm, Str(b, "miscselectMask", what));
  ASSIGN_OR_RETURN(Bytes msb, FromHex(ms, what));
  ASSIGN_OR_RETURN(Bytes msmb, FromHex(msm, what));
  // Compared as the report's raw (little-endian) bytes, as QE Identity
  // writes them.
  uint8_t misc[4];
  for (int i = 0; i < 4; ++i) misc[i] = static_cast<uint8_t>(q.qe_report.miscselect >> (8 * i));
  if (!MaskedEqual(misc, msb, msmb)) return IntegrityError("dcap: the QE's MISCSELECT does not match QE Identity");
  ASSIGN_OR_RETURN(std::string at, Str(b, "attributes", what));
  ASSIGN_OR_RETURN(std::string atm, Str(b, "attributesMask", what));
  ASSIGN_OR_RETURN(Bytes atb, FromHex(at, what));
  ASSIGN_OR_RETURN(Bytes atmb, FromHex(atm, what));
  if (!MaskedEqual(q.qe_report.attributes, atb, atmb)) {
    return IntegrityError("dcap: the QE's ATTRIBUTES do not match QE Identity");
  }
  v.checks.push_back("QE matches QE Identity " + ident + " (MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES)");
  const json* levels = Member(b, "tcbLevels");
  if (levels == nullptr || !levels->is_array()) return IntegrityError(what + ": no tcbLevels");
  for (const auto& level : *levels) {
    const json* tcb = Member(level, "tcb");
    if (tcb == nullptr) return IntegrityError(what + ": a TCB level has no tcb");
    ASSIGN_OR_RETURN(int64_t isvsvn, Int(*tcb, "isvsvn", what));
    if (q.qe_report.isvsvn >= isvsvn) {
      ASSIGN_OR_RETURN(TcbStatus st, LevelStatus(level, what));
      AddAdvisories(level, v);
      v.checks.push_back("QE TCB level (ISVSVN " + std::to_string(q.qe_report.isvsvn) + "): " +
                         std::string(TcbStatusName(st)));
      return st;
    }
  }
  v.checks.push_back("QE TCB: ISVSVN " + std::to_string(q.qe_report.isvsvn) + " is below every level");
  return TcbStatus::kOutOfDate;
}

// The TDX module's identity and TCB level (TCB Info version 3).
StatusOr<TcbStatus> EvaluateTdxModule(const DcapQuote& q, const json& info, HardwareVerdict& v) {
  const std::string what = "TCB Info";
  const uint8_t isvsvn = q.td.tee_tcb_svn[0];
  const uint8_t major = q.td.tee_tcb_svn[1];
  const json* module = Member(info, "tdxModule");
  auto check_seam = [&](const json& m, const std::string& name) -> Status {
    ASSIGN_OR_RETURN(std::string signer, Str(m, "mrsigner", what));
    ASSIGN_OR_RETURN(Bytes sb, FromHex(signer, what));
    if (sb.size() != 48 || CRYPTO_memcmp(sb.data(), q.td.mrsignerseam.data(), 48) != 0) {
      return IntegrityError("dcap: MRSIGNERSEAM is not the one TCB Info names for " + name);
    }
    ASSIGN_OR_RETURN(std::string attr, Str(m, "attributes", what));
    ASSIGN_OR_RETURN(std::string mask, Str(m, "attributesMask", what));
    ASSIGN_OR_RETURN(Bytes ab, FromHex(attr, what));
    ASSIGN_OR_RETURN(Bytes mb, FromHex(mask, what));
    if (!MaskedEqual(q.td.seamattributes, ab, mb)) {
      return IntegrityError("dcap: SEAMATTRIBUTES do not match TCB Info for " + name);
    }
    return Status::Ok();
  };
  if (major == 0) {
    // TDX 1.0 style: one module description, no identities to choose from.
    if (module != nullptr) RETURN_IF_ERROR(check_seam(*module, "the TDX module"));
    v.checks.push_back("TDX module matches TCB Info");
    return TcbStatus::kUpToDate;
  }
  char name[16];
  std::snprintf(name, sizeof name, "TDX_%02X", major);
  const json* ids = Member(info, "tdxModuleIdentities");
  if (ids == nullptr || !ids->is_array()) return IntegrityError("dcap: TCB Info has no tdxModuleIdentities");
  for (const auto& id : *ids) {
    ASSIGN_OR_RETURN(std::string n, Str(id, "id", what));
    if (n != name) continue;
    RETURN_IF_ERROR(check_seam(id, name));
    const json* levels = Member(id, "tcbLevels");
    if (levels == nullptr || !levels->is_array()) return IntegrityError(what + ": " + name + " has no tcbLevels");
    for (const auto& level : *levels) {
      const json* tcb = Member(level, "tcb");
      if (tcb == nullptr) return IntegrityError(what + ": a TCB level has no tcb");
      ASSIGN_OR_RETURN(int64_t min, Int(*tcb, "isvsvn", what));
      if (isvsvn >= min) {
        ASSIGN_OR_RETURN(TcbStatus st, LevelStatus(level, what));
        AddAdvisories(level, v);
        v.checks.push_back(std::string("TDX module ") + name + " TCB level: " + std::string(TcbStatusName(st)));
        return st;
      }
    }
    v.checks.push_back(std::string("TDX module ") + name + ": ISVSVN below every level");
    return TcbStatus::kOutOfDate;
  }
  return IntegrityError(std::string("dcap: TCB Info has no identity for TDX module ") + name);
}

StatusOr<TcbStatus> EvaluatePlatform(const DcapQuote& q, const PckInfo& pck, const SignedJson& info,
                                     HardwareVerdict& v) {
  const std::string what = "TCB Info";
  const json& b = info.body;
  ASSIGN_OR_RETURN(int64_t version, Int(b, "version", what));
  if (version < 2 || version > 3) return IntegrityError("dcap: TCB Info version " + std::to_string(version));
  const char* expected = q.is_tdx() ? "TDX" : "SGX";
  // Version 2 TCB Info has no id (SGX only).
  if (version >= 3) {
    ASSIGN_OR_RETURN(std::string ident, Str(b, "id", what));
    if (ident != expected) return IntegrityError("dcap: TCB Info is for " + ident + ", not " + expected);
  }
  if (q.is_tdx() && version < 3) return IntegrityError("dcap: TDX needs TCB Info version 3");
  ASSIGN_OR_RETURN(std::string fmspc, Str(b, "fmspc", what));
  ASSIGN_OR_RETURN(std::string pceid, Str(b, "pceId", what));
  if (AsciiLower(fmspc) != HexEncode(pck.fmspc)) {
    return IntegrityError("dcap: TCB Info is for FMSPC " + AsciiLower(fmspc) + ", the PCK certificate's is " + HexEncode(pck.fmspc));
  }
  if (AsciiLower(pceid) != HexEncode(pck.pceid)) return IntegrityError("dcap: TCB Info's PCE-ID is not the PCK certificate's");
  const json* levels = Member(b, "tcbLevels");
  if (levels == nullptr || !levels->is_array()) return IntegrityError(what + ": no tcbLevels");
  for (const auto& level : *levels) {
    const json* tcb = Member(level, "tcb");
    if (tcb == nullptr) return IntegrityError(what + ": a TCB level has no tcb");
    ASSIGN_OR_RETURN(auto comps, LevelComponents(*tcb, "sgxtcbcomponents", static_cast<int>(version), what));
    ASSIGN_OR_RETURN(int64_t pcesvn, Int(*tcb, "pcesvn", what));
    bool ok = pck.pcesvn >= pcesvn;
    for (size_t i = 0; ok && i < 16; ++i) ok = pck.components[i] >= comps[i];
    if (ok && q.is_tdx()) {
      ASSIGN_OR_RETURN(auto tdx, LevelComponents(*tcb, "tdxtcbcomponents", 3, what));
      // With a module major version, bytes 0 and 1 are the module's own
      // ISVSVN and version, judged by its identity instead.
      for (size_t i = q.td.tee_tcb_svn[1] > 0 ? 2 : 0; ok && i < 16; ++i) ok = q.td.tee_tcb_svn[i] >= tdx[i];
    }
    if (!ok) continue;
    ASSIGN_OR_RETURN(TcbStatus st, LevelStatus(level, what));
    AddAdvisories(level, v);
    std::string date;
    if (const json* d = Member(level, "tcbDate"); d != nullptr && d->is_string()) date = " of " + d->get<std::string>();
    v.checks.push_back(std::string(q.is_tdx() ? "TDX" : "SGX") + " platform TCB level" + date + ": " +
                       std::string(TcbStatusName(st)));
    return st;
  }
  v.checks.push_back("no TCB level in TCB Info matches the platform");
  return TcbStatus::kNotSupported;
}

// ---- the PCK chain ----

struct PckChain {
  CertPtr pck, ca, root;
};

StatusOr<PckChain> BuildPckChain(const std::vector<CertPtr>& certs, const DcapTrust& trust, int64_t now,
                                 HardwareVerdict& v) {
  PckChain c;
  for (const auto& cert : certs) {
    if (!cert->is_ca()) {
      if (c.pck) return IntegrityError("dcap: more than one leaf certificate in the PCK chain");
      c.pck = cert;
    }
  }
  if (!c.pck) return IntegrityError("dcap: no PCK certificate in the certification data");
  auto find_issuer = [&](const Certificate& child) -> CertPtr {
    for (const auto& cert : certs) {
      if (cert->is_ca() && cert->subject_cn() == child.issuer_cn() && cert.get() != &child) return cert;
    }
    return nullptr;
  };
  c.ca = find_issuer(*c.pck);
  if (!c.ca) return IntegrityError("dcap: the PCK certificate's issuer " + c.pck->issuer_cn() + " is not in the chain");
  c.root = find_issuer(*c.ca);
  if (!c.root) return IntegrityError("dcap: the issuer of " + c.ca->name() + " is not in the chain");
  auto pin = c.root->SpkiSha256();
  bool pinned = std::any_of(trust.root_spki_sha256.begin(), trust.root_spki_sha256.end(),
                            [&](const auto& p) { return CRYPTO_memcmp(p.data(), pin.data(), pin.size()) == 0; });
  if (!pinned) return IntegrityError("dcap: the PCK chain ends at " + c.root->name() + ", which is not a trusted root");
  for (const auto& [child, parent] : {std::pair{c.pck, c.ca}, std::pair{c.ca, c.root}, std::pair{c.root, c.root}}) {
    Status s = child->VerifyIssuedBy(*parent);
    if (!s.ok()) return IntegrityError("dcap: " + s.message());
    RETURN_IF_ERROR(child->CheckValidAt(now));
  }
  v.checks.push_back("PCK certificate chain " + c.pck->name() + " <- " + c.ca->name() + " <- " + c.root->name() +
                     " (pinned), valid at " + crypto::FormatRfc3339(now));
  return c;
}

// The PCK certificate and its CAs: from the quote, or for quotes that carry
// only a PPID, as given.
StatusOr<std::vector<CertPtr>> PckCertificates(const DcapQuote& q, const Bytes& given) {
  if (q.cert_type == kCertPckChain) return Certificate::ParseBundle(q.cert_data);
  if (!given.empty()) return Certificate::ParseBundle(given);
  return IntegrityError("dcap: the quote carries certification data type " + std::to_string(q.cert_type) +
                        ", not the PCK chain, and no PCK certificate was given");
}

Status CheckCrls(const PckChain& chain, const DcapCollateral& col, int64_t now, HardwareVerdict& v) {
  if (col.root_ca_crl.empty() || col.pck_crls.empty()) {
    v.warnings.push_back("no CRLs given: revocation of the PCK chain not checked");
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(auto root_crl, Crl::Parse(col.root_ca_crl));
  Status s = root_crl->VerifyIssuedBy(*chain.root);
  if (!s.ok()) return IntegrityError("dcap: root CA CRL: " + s.message());
  std::unique_ptr<Crl> pck_crl;
  for (const Bytes& b : col.pck_crls) {
    ASSIGN_OR_RETURN(auto crl, Crl::Parse(b));
    if (crl->issuer_cn() == chain.ca->subject_cn()) {
      pck_crl = std::move(crl);
      break;
    }
  }
  if (!pck_crl) return IntegrityError("dcap: no CRL of " + chain.ca->name() + " among the PCK CRLs given");
  s = pck_crl->VerifyIssuedBy(*chain.ca);
  if (!s.ok()) return IntegrityError("dcap: PCK CRL: " + s.message());
  for (const Crl* crl : {root_crl.get(), pck_crl.get()}) {
    Status cur = crl->CheckCurrentAt(now);
    if (!cur.ok()) v.warnings.push_back(cur.message());
    if (crl->next_update_unix() != 0 &&
        (v.collateral_expires_unix == 0 || crl->next_update_unix() < v.collateral_expires_unix)) {
      v.collateral_expires_unix = crl->next_update_unix();
    }
  }
  if (root_crl->Revokes(*chain.ca)) return IntegrityError("dcap: " + chain.ca->name() + " is revoked by the root CA's CRL");
  if (pck_crl->Revokes(*chain.pck)) return IntegrityError("dcap: the PCK certificate is revoked by " + chain.ca->name());
  v.checks.push_back("CRLs of " + chain.root->name() + " and " + chain.ca->name() + ": nothing in the chain revoked");
  v.revocation_checked = true;
  return Status::Ok();
}

void AddClaims(const DcapQuote& q, const PckInfo* pck, HardwareVerdict& v) {
  auto add = [&](const char* name, std::string value) { v.claims.push_back({name, std::move(value)}); };
  if (q.is_tdx()) {
    const TdReportBody& t = q.td;
    add("mrtd", HexEncode(t.mrtd));
    for (int i = 0; i < 4; ++i) v.claims.push_back({"rtmr" + std::to_string(i), HexEncode(t.rtmr[static_cast<size_t>(i)])});
    add("mrseam", HexEncode(t.mrseam));
    add("mrsignerseam", HexEncode(t.mrsignerseam));
    add("seamattributes", HexEncode(t.seamattributes));
    add("tdattributes", HexEncode(t.tdattributes));
    add("xfam", HexEncode(t.xfam));
    add("mrconfigid", HexEncode(t.mrconfigid));
    add("mrowner", HexEncode(t.mrowner));
    add("mrownerconfig", HexEncode(t.mrownerconfig));
    add("tee_tcb_svn", HexEncode(t.tee_tcb_svn));
    if (t.tdx15) {
      add("tee_tcb_svn2", HexEncode(t.tee_tcb_svn2));
      add("mrservicetd", HexEncode(t.mrservicetd));
    }
    add("report_data", HexEncode(t.report_data));
  } else {
    const SgxReportBody& r = q.sgx;
    add("mrenclave", HexEncode(r.mrenclave));
    add("mrsigner", HexEncode(r.mrsigner));
    add("isvprodid", std::to_string(r.isvprodid));
    add("isvsvn", std::to_string(r.isvsvn));
    add("attributes", HexEncode(r.attributes));
    char misc[16];
    std::snprintf(misc, sizeof misc, "%08x", r.miscselect);
    add("miscselect", misc);
    add("cpusvn", HexEncode(r.cpusvn));
    add("configid", HexEncode(r.configid));
    add("configsvn", std::to_string(r.configsvn));
    add("isvextprodid", HexEncode(r.isvextprodid));
    add("isvfamilyid", HexEncode(r.isvfamilyid));
    add("report_data", HexEncode(r.report_data));
  }
  if (pck != nullptr) {
    add("fmspc", HexEncode(pck->fmspc));
    add("pceid", HexEncode(pck->pceid));
    add("pcesvn", std::to_string(pck->pcesvn));
  }
}

}  // namespace

StatusOr<DcapQuote> ParseDcapQuote(std::span<const uint8_t> quote) {
  DcapQuote q;
  Reader in(quote);
  if (!in.Need(kHeaderSize)) return IntegrityError("dcap: shorter than a quote header");
  q.version = in.U16();
  uint16_t key_type = in.U16();
  q.tee_type = in.U32();
  q.qe_svn = in.U16();
  q.pce_svn = in.U16();
  in.Copy(q.qe_vendor_id);
  in.Take(20);  // user data
  if (q.version < 3 || q.version > 5) return IntegrityError("dcap: unsupported quote version " + std::to_string(q.version));
  if (key_type != kEcdsaP256) return IntegrityError("dcap: attestation key type " + std::to_string(key_type) + " is not ECDSA P-256");
  if (q.version == 3) {
    if (q.tee_type != 0) return IntegrityError("dcap: version 3 quote with a non-zero TEE type field");
  } else if (q.tee_type != kTeeSgx && q.tee_type != kTeeTdx) {
    return IntegrityError("dcap: unknown TEE type " + std::to_string(q.tee_type));
  }
  size_t body_size = 0;
  if (q.version == 5) {
    if (!in.Need(6)) return IntegrityError("dcap: version 5 quote shorter than its body header");
    uint16_t body_type = in.U16();
    uint32_t size = in.U32();
    const bool tdx_body = body_type == 2 || body_type == 3;
    if (body_type == 1 ? (q.tee_type != kTeeSgx || size != kSgxBodySize)
                       : (!tdx_body || q.tee_type != kTeeTdx ||
                          size != (body_type == 2 ? kTd10BodySize : kTd15BodySize))) {
      return IntegrityError("dcap: body type " + std::to_string(body_type) + " with size " + std::to_string(size) +
                            " does not fit TEE type " + std::to_string(q.tee_type));
    }
    body_size = size;
  } else {
    body_size = q.is_tdx() ? kTd10BodySize : kSgxBodySize;
  }
  if (!in.Need(body_size + 4)) return IntegrityError("dcap: quote shorter than its report body");
  auto body = in.Take(body_size);
  if (q.is_tdx()) {
    ParseTdBody(body, q.td);
  } else {
    ParseSgxBody(body, q.sgx);
  }
  q.signed_size = in.at();
  uint32_t sig_len = in.U32();
  if (sig_len > kMaxSigData || !in.Need(sig_len)) {
    return IntegrityError("dcap: signature data length " + std::to_string(sig_len) + " runs past the quote");
  }
  q.trailing_bytes = in.left() - sig_len;
  Reader sig(in.Take(sig_len));
  if (!sig.Need(128)) return IntegrityError("dcap: signature data too short");
  sig.Copy(q.signature);
  sig.Copy(q.attestation_key);
  if (q.version == 3) {
    RETURN_IF_ERROR(ParseQeSection(sig, q, "signature data"));
  } else {
    if (!sig.Need(6)) return IntegrityError("dcap: no certification data");
    uint16_t type = sig.U16();
    uint32_t size = sig.U32();
    if (type != kCertQeReport) return IntegrityError("dcap: outer certification data type " + std::to_string(type) + ", expected 6");
    if (size != sig.left()) return IntegrityError("dcap: outer certification data length does not match the signature data");
    Reader inner(sig.Take(size));
    RETURN_IF_ERROR(ParseQeSection(inner, q, "QE certification data"));
  }
  if (q.version == 3 && sig.left() != 0) return IntegrityError("dcap: bytes after the certification data");
  return q;
}

const DcapTrust& DefaultDcapTrust() {
  // SHA-256 of the SubjectPublicKeyInfo of "CN=Intel SGX Root CA,
  // O=Intel Corporation, L=Santa Clara, ST=CA, C=US" (valid 2018-05-21 to
  // 2049-12-31), the root of Intel's SGX and TDX attestation PKI.
  static const DcapTrust trust{{{0xa0, 0xaf, 0x03, 0x12, 0x89, 0xf5, 0xd5, 0xd4, 0x13, 0x2f, 0x91,
                                 0x86, 0x06, 0x8a, 0x7f, 0xc1, 0x36, 0x28, 0x63, 0x3b, 0xa2, 0x35,
                                 0x77, 0x74, 0x72, 0xe2, 0x9b, 0x6b, 0x6c, 0x67, 0xa4, 0x9e}}};
  return trust;
}

StatusOr<DcapCollateral> DcapCollateralFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return IntegrityError("collateral JSON is not an object");
  const std::string what = "collateral JSON";
  DcapCollateral c;
  auto wrap = [&](const char* body_key, const char* sig_key, const char* member, std::string* out) -> Status {
    ASSIGN_OR_RETURN(std::string body, Str(j, body_key, what));
    ASSIGN_OR_RETURN(std::string sig, Str(j, sig_key, what));
    // The signed bytes are the string as given; the response form puts
    // them, unchanged, inside an object next to the signature.
    *out = std::string("{\"") + member + "\":" + body + ",\"signature\":\"" + sig + "\"}";
    return Status::Ok();
  };
  RETURN_IF_ERROR(wrap("tcb_info", "tcb_info_signature", "tcbInfo", &c.tcb_info_json));
  RETURN_IF_ERROR(wrap("qe_identity", "qe_identity_signature", "enclaveIdentity", &c.qe_identity_json));
  auto pem = [&](const char* key, Bytes* out) -> Status {
    ASSIGN_OR_RETURN(std::string s, Str(j, key, what));
    out->assign(s.begin(), s.end());
    return Status::Ok();
  };
  RETURN_IF_ERROR(pem("tcb_info_issuer_chain", &c.tcb_info_issuer_chain));
  RETURN_IF_ERROR(pem("qe_identity_issuer_chain", &c.qe_identity_issuer_chain));
  ASSIGN_OR_RETURN(std::string root_crl, Str(j, "root_ca_crl", what));
  ASSIGN_OR_RETURN(c.root_ca_crl, FromHex(root_crl, what + " root_ca_crl"));
  ASSIGN_OR_RETURN(std::string pck_crl, Str(j, "pck_crl", what));
  ASSIGN_OR_RETURN(Bytes pck_crl_der, FromHex(pck_crl, what + " pck_crl"));
  c.pck_crls.push_back(std::move(pck_crl_der));
  return c;
}

StatusOr<DcapPlatform> ReadDcapPlatform(std::span<const uint8_t> quote, const Bytes& pck_certificates) {
  ASSIGN_OR_RETURN(DcapQuote q, ParseDcapQuote(quote));
  ASSIGN_OR_RETURN(std::vector<CertPtr> certs, PckCertificates(q, pck_certificates));
  for (const CertPtr& c : certs) {
    if (c->is_ca()) continue;
    ASSIGN_OR_RETURN(PckInfo pck, ReadPckExtension(*c));
    return DcapPlatform{HexEncode(pck.fmspc), q.is_tdx()};
  }
  return IntegrityError("dcap: no PCK certificate in the certification data");
}

StatusOr<HardwareVerdict> VerifyDcapQuote(std::span<const uint8_t> quote, const DcapCollateral* collateral,
                                          int64_t now, const DcapTrust& trust) {
  ASSIGN_OR_RETURN(DcapQuote q, ParseDcapQuote(quote));
  HardwareVerdict v;
  v.type = q.is_tdx() ? "tdx" : "sgx";
  if (std::memcmp(q.qe_vendor_id.data(), kIntelQeVendor.data(), kIntelQeVendor.size()) != 0) {
    return IntegrityError("dcap: the quoting enclave is not Intel's (QE vendor " + HexEncode(q.qe_vendor_id) + ")");
  }
  v.checks.push_back("quote version " + std::to_string(q.version) + ", " + (q.is_tdx() ? "TDX" : "SGX") +
                     (q.is_tdx() && q.td.tdx15 ? " 1.5" : "") + " body, ECDSA P-256 attestation key, Intel QE" +
                     (q.trailing_bytes ? " (" + std::to_string(q.trailing_bytes) + " bytes after the quote ignored)" : ""));

  // 2. The PCK chain.
  ASSIGN_OR_RETURN(std::vector<CertPtr> certs,
                   PckCertificates(q, collateral != nullptr ? collateral->pck_certificate_chain : Bytes{}));
  ASSIGN_OR_RETURN(PckChain chain, BuildPckChain(certs, trust, now, v));
  ASSIGN_OR_RETURN(PckInfo pck, ReadPckExtension(*chain.pck));
  // 3. Revocation.
  if (collateral != nullptr) RETURN_IF_ERROR(CheckCrls(chain, *collateral, now, v));
  // 4. The QE report, signed by the PCK key.
  ASSIGN_OR_RETURN(auto pck_key, chain.pck->Key());
  if (!pck_key->VerifyEcdsaRaw(HashAlg::kSha256, q.qe_report_raw,
                               std::span<const uint8_t>(q.qe_report_signature.data(), 32),
                               std::span<const uint8_t>(q.qe_report_signature.data() + 32, 32))
           .ok()) {
    return IntegrityError("dcap: the QE report's signature does not verify with the PCK certificate's key");
  }
  v.checks.push_back("QE report signed by the PCK key");
  // 5. The QE vouches for the attestation key.
  Bytes bound(q.attestation_key.begin(), q.attestation_key.end());
  bound.insert(bound.end(), q.qe_auth_data.begin(), q.qe_auth_data.end());
  Bytes h = crypto::Hash(HashAlg::kSha256, bound);
  std::array<uint8_t, 32> zero{};
  if (CRYPTO_memcmp(h.data(), q.qe_report.report_data.data(), 32) != 0 ||
      CRYPTO_memcmp(zero.data(), q.qe_report.report_data.data() + 32, 32) != 0) {
    return IntegrityError("dcap: the QE report data does not bind the attestation key and QE auth data");
  }
  v.checks.push_back("QE report data = SHA-256(attestation key || QE auth data)");
  // 6. The quote itself.
  auto att_key = PublicKey::FromEcPoint("P-256", std::span<const uint8_t>(q.attestation_key.data(), 32),
                                        std::span<const uint8_t>(q.attestation_key.data() + 32, 32));
  if (!att_key.ok()) return IntegrityError("dcap: the attestation key is not a P-256 point");
  if (!(*att_key)
           ->VerifyEcdsaRaw(HashAlg::kSha256, quote.subspan(0, q.signed_size),
                            std::span<const uint8_t>(q.signature.data(), 32),
                            std::span<const uint8_t>(q.signature.data() + 32, 32))
           .ok()) {
    return IntegrityError("dcap: the quote signature does not verify with the attestation key");
  }
  v.checks.push_back("quote signed by the attestation key (" + std::to_string(q.signed_size) + " bytes)");
  v.debug = q.is_tdx() ? q.td.debug() : q.sgx.debug();
  AddClaims(q, &pck, v);
  if (collateral == nullptr) {
    v.warnings.push_back("no collateral given: TCB not evaluated, revocation not checked");
    return v;
  }
  // 7. TCB.
  ASSIGN_OR_RETURN(SignedJson info, VerifySignedJson(collateral->tcb_info_json, "tcbInfo",
                                                     collateral->tcb_info_issuer_chain, trust, now, "TCB Info", v));
  ASSIGN_OR_RETURN(SignedJson qe_id,
                   VerifySignedJson(collateral->qe_identity_json, "enclaveIdentity",
                                    collateral->qe_identity_issuer_chain.empty() ? collateral->tcb_info_issuer_chain
                                                                                 : collateral->qe_identity_issuer_chain,
                                    trust, now, "QE Identity", v));
  ASSIGN_OR_RETURN(TcbStatus platform, EvaluatePlatform(q, pck, info, v));
  ASSIGN_OR_RETURN(TcbStatus qe, EvaluateQe(q, qe_id, v));
  TcbStatus status = platform;
  if (platform != TcbStatus::kNotSupported) {
    if (q.is_tdx()) {
      ASSIGN_OR_RETURN(TcbStatus module, EvaluateTdxModule(q, info.body, v));
      status = Converge(status, module);
    }
    status = Converge(status, qe);
  }
  v.tcb_status = status;
  return v;
}

}  // namespace cloister::attest
