#include "las/node_evidence.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "crypto/x509.h"

namespace cloister::las {
namespace {

using nlohmann::json;

constexpr std::string_view kBindingLabel = "cloister node evidence v1";

std::string Errno(int e) { return std::strerror(e); }

// ---- configfs-tsm ----

// A report's outblob and auxblob: the kernel caps both at 32 KiB today;
// the bound only keeps a misbehaving file from filling memory.
constexpr size_t kMaxBlob = 256 * 1024;
constexpr size_t kMaxSmallAttribute = 64;

class PosixTsmFs final : public TsmFs {
 public:
  Status MakeDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0700) != 0) return Unavailable(Errno(errno));
    return Status::Ok();
  }
  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return Unavailable(Errno(errno));
    return Status::Ok();
  }
  Status WriteAttribute(const std::string& path, std::span<const uint8_t> data) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? NotFound(Errno(errno)) : Unavailable(Errno(errno));
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int e = n < 0 ? errno : EIO;
        ::close(fd);
        return Unavailable(Errno(e));
      }
      done += static_cast<size_t>(n);
    }
    // configfs hands a binary attribute to its owner when the file is
    // released; close() reports what it can of that.
    if (::close(fd) != 0) return Unavailable(Errno(errno));
    return Status::Ok();
  }
  StatusOr<Bytes> ReadAttribute(const std::string& path, size_t max) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? NotFound(Errno(errno)) : Unavailable(Errno(errno));
    Bytes out;
    uint8_t buf[4096];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int e = errno;
        ::close(fd);
        return Unavailable(Errno(e));
      }
      if (n == 0) break;
      if (out.size() + static_cast<size_t>(n) > max) {
        ::close(fd);
        return IntegrityError("longer than " + std::to_string(max) + " bytes");
      }
      out.insert(out.end(), buf, buf + n);
    }
    ::close(fd);
    return out;
  }
};

std::string TrimNewline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Copies `text` into SecretBytes and wipes the string's buffer.
SecretBytes IntoSecret(std::string& text) {
  SecretBytes out(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  SecureZero(text.data(), text.size());
  text.clear();
  return out;
}

StatusOr<Bytes> NodeIdBytes(const std::string& node_id) {
  auto id = HexDecode(node_id);
  if (!id || id->size() != 32) return InvalidArgument("the node id is not 64 hex digits");
  return *id;
}

Status CheckChallenge(const std::string& type, const NodeChallenge& c) {
  if (c.challenge.size() != kNodeChallengeSize) {
    return InvalidArgument(type + ": the challenge is not " + std::to_string(kNodeChallengeSize) + " bytes");
  }
  return Status::Ok();
}

class TsmNodeEvidence final : public NodeEvidenceSource {
 public:
  TsmNodeEvidence(std::string type, std::string dir, TsmFs& fs)
      : type_(std::move(type)), provider_(type_ == "tdx" ? "tdx_guest" : "sev_guest"), dir_(std::move(dir)), fs_(fs) {}

  const std::string& type() const override { return type_; }

  StatusOr<SecretBytes> Gather(const ChallengeFn& challenge, const std::string& node_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Bytes id, NodeIdBytes(node_id));
    // A name of our own: entries are per writer, and a name another
    // process also picked would mix two requests in one entry (which the
    // generation check below would catch, but only after the fact). The
    // entry is made before the CAS is asked, so that a node without
    // configfs-tsm fails without using up a challenge.
    Bytes random(8);
    RETURN_IF_ERROR(crypto::RandomBytes(random));
    const std::string entry = dir_ + "/cloister-las-" + HexEncode(random);
    if (Status s = fs_.MakeDir(entry); !s.ok()) {
      return Unavailable(type_ + ": cannot create a report in " + dir_ + " (configfs-tsm): " + s.message());
    }
    struct RemoveEntry {
      TsmFs& fs;
      const std::string& path;
      ~RemoveEntry() { (void)fs.RemoveDir(path); }
    } remove{fs_, entry};

    ASSIGN_OR_RETURN(NodeChallenge c, challenge(json{{"type", type_}}.dump()));
    RETURN_IF_ERROR(CheckChallenge(type_, c));
    const crypto::Digest b = NodeEvidenceBinding(c.challenge, id);
    Bytes inblob(b.begin(), b.end());
    inblob.resize(64, 0);
    if (Status s = fs_.WriteAttribute(entry + "/inblob", inblob); !s.ok()) {
      return Unavailable(type_ + ": cannot write inblob of " + entry + ": " + s.message());
    }
    ASSIGN_OR_RETURN(uint64_t generation, Generation(entry));
    auto outblob = fs_.ReadAttribute(entry + "/outblob", kMaxBlob);
    if (!outblob.ok()) {
      return Unavailable(type_ + ": cannot read outblob of " + entry + ": " + outblob.status().message());
    }
    if (outblob->empty()) return IntegrityError(type_ + ": outblob of " + entry + " is empty");
    Bytes auxblob;
    if (type_ == "snp") {
      // The host's certificate table, when the host gave one.
      auto aux = fs_.ReadAttribute(entry + "/auxblob", kMaxBlob);
      if (aux.ok()) {
        auxblob = std::move(*aux);
      } else if (aux.status().code() != StatusCode::kNotFound) {
        return Unavailable(type_ + ": cannot read auxblob of " + entry + ": " + aux.status().message());
      }
    }
    ASSIGN_OR_RETURN(uint64_t after, Generation(entry));
    if (after != generation) {
      return IntegrityError(type_ + ": the report's generation changed from " + std::to_string(generation) + " to " +
                            std::to_string(after) + " while it was read (another writer used " + entry + ")");
    }
    auto provider = fs_.ReadAttribute(entry + "/provider", kMaxSmallAttribute);
    if (!provider.ok()) {
      return Unavailable(type_ + ": cannot read provider of " + entry + ": " + provider.status().message());
    }
    std::string name = TrimNewline(std::string(provider->begin(), provider->end()));
    if (name != provider_) {
      return FailedPrecondition(type_ + ": the configfs-tsm provider is '" + name + "', not " + provider_ +
                                " (is this node a " + (type_ == "tdx" ? "TDX" : "SEV-SNP") + " guest?)");
    }

    json e = {{"type", type_}, {"challenge", HexEncode(c.challenge)}};
    if (type_ == "tdx") {
      e["quote"] = Base64Encode(*outblob);
    } else {
      e["report"] = Base64Encode(*outblob);
      if (!auxblob.empty()) e["auxblob"] = Base64Encode(auxblob);
    }
    std::string text = e.dump();
    return IntoSecret(text);
  }

 private:
  StatusOr<uint64_t> Generation(const std::string& entry) {
    auto raw = fs_.ReadAttribute(entry + "/generation", kMaxSmallAttribute);
    if (!raw.ok()) return Unavailable(type_ + ": cannot read generation of " + entry + ": " + raw.status().message());
    std::string text = TrimNewline(std::string(raw->begin(), raw->end()));
    if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos) {
      return IntegrityError(type_ + ": generation of " + entry + " is not a number");
    }
    return std::stoull(text);
  }

  const std::string type_;
  const std::string provider_;
  const std::string dir_;
  TsmFs& fs_;
  std::mutex mu_;
};

// ---- TPM 2.0 through tpm2-tss ESAPI ----

constexpr uint32_t kEkCertRsaIndex = 0x01c00002;
constexpr uint32_t kEkCertEccIndex = 0x01c0000a;
constexpr size_t kPcrCount = 24;
constexpr int kQuoteAttempts = 3;
// The TCG EK Credential Profile's authPolicy of the default EK templates:
// PolicySecret(TPM_RH_ENDORSEMENT).
constexpr uint8_t kEkPolicy[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                   0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                   0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

std::string RcText(TSS2_RC rc) {
  const char* text = Tss2_RC_Decode(rc);
  return text != nullptr ? std::string(text) : "TSS2 error " + std::to_string(rc);
}

std::string NvIndexText(uint32_t index) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", index);
  return buf;
}

struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <typename T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

// The activated credential, wiped before ESYS frees it.
struct WipeDigest {
  void operator()(TPM2B_DIGEST* p) const {
    if (p == nullptr) return;
    SecureZero(p, sizeof(*p));
    Esys_Free(p);
  }
};

// A connection to the TPM: the TCTI and the ESAPI context on it.
class EsysConnection {
 public:
  static StatusOr<std::unique_ptr<EsysConnection>> Open(const std::string& tcti) {
    auto c = std::unique_ptr<EsysConnection>(new EsysConnection());
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &c->tcti_);
    if (rc != TSS2_RC_SUCCESS) {
      return Unavailable("tpm: cannot open the TPM at " + tcti + ": " + RcText(rc));
    }
    rc = Esys_Initialize(&c->ctx_, c->tcti_, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      return Unavailable("tpm: cannot talk to the TPM at " + tcti + ": " + RcText(rc));
    }
    return c;
  }
  ~EsysConnection() {
    if (ctx_ != nullptr) Esys_Finalize(&ctx_);
    if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
  }
  ESYS_CONTEXT* ctx() const { return ctx_; }

 private:
  EsysConnection() = default;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* ctx_ = nullptr;
};

// A transient object or session, flushed from the TPM when destroyed (a
// TPM without a resource manager keeps them until it restarts otherwise).
class Transient {
 public:
  explicit Transient(ESYS_CONTEXT* ctx) : ctx_(ctx) {}
  ~Transient() {
    if (handle_ != ESYS_TR_NONE) (void)Esys_FlushContext(ctx_, handle_);
  }
  Transient(const Transient&) = delete;
  Transient& operator=(const Transient&) = delete;
  ESYS_TR* out() { return &handle_; }
  ESYS_TR get() const { return handle_; }

 private:
  ESYS_CONTEXT* ctx_;
  ESYS_TR handle_ = ESYS_TR_NONE;
};

// A policy session satisfying the EK's policy, PolicySecret with the
// endorsement hierarchy (its authorization assumed empty, as TPMs ship).
// A session serves one command: the TPM resets its policy after use.
Status StartEkPolicy(ESYS_CONTEXT* ctx, Transient& session, const char* what) {
  TPMT_SYM_DEF symmetric{};
  symmetric.algorithm = TPM2_ALG_NULL;
  TSS2_RC rc = Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr,
                                     TPM2_SE_POLICY, &symmetric, TPM2_ALG_SHA256, session.out());
  if (rc != TSS2_RC_SUCCESS) {
    return Unavailable(std::string("tpm: cannot start a policy session to ") + what + ": " + RcText(rc));
  }
  // Kept open after its command, so that ~Transient flushes it whatever
  // happened (ESAPI would otherwise forget it on its own).
  rc = Esys_TRSess_SetAttributes(ctx, session.get(), TPMA_SESSION_CONTINUESESSION, 0xff);
  if (rc == TSS2_RC_SUCCESS) {
    rc = Esys_PolicySecret(ctx, ESYS_TR_RH_ENDORSEMENT, session.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           nullptr, nullptr, nullptr, 0, nullptr, nullptr);
  }
  if (rc != TSS2_RC_SUCCESS) {
    return Unavailable(std::string("tpm: PolicySecret with the endorsement hierarchy failed (") + what +
                       "): " + RcText(rc));
  }
  return Status::Ok();
}

// The DER certificate at the start of an NV index's content (EK
// certificates may be followed by padding), or nullopt.
std::optional<Bytes> LeadingDer(std::span<const uint8_t> nv) {
  if (nv.size() < 2 || nv[0] != 0x30) return std::nullopt;
  size_t len = 0, header = 2;
  if (nv[1] < 0x80) {
    len = nv[1];
  } else {
    size_t n = nv[1] & 0x7f;
    if (n == 0 || n > 3 || nv.size() < 2 + n) return std::nullopt;
    for (size_t i = 0; i < n; ++i) len = (len << 8) | nv[2 + i];
    header += n;
  }
  if (header + len > nv.size()) return std::nullopt;
  return Bytes(nv.begin(), nv.begin() + static_cast<std::ptrdiff_t>(header + len));
}

std::string CertificatePem(std::span<const uint8_t> der) {
  std::string b64 = Base64Encode(der);
  std::string pem = "-----BEGIN CERTIFICATE-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  pem += "-----END CERTIFICATE-----\n";
  return pem;
}

// The largest NV read the TPM takes at once (TPM2_PT_NV_BUFFER_MAX), or
// 512 when it will not say.
uint16_t NvBufferMax(ESYS_CONTEXT* ctx) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                  TPM2_PT_NV_BUFFER_MAX, 1, &more, &raw);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  if (rc != TSS2_RC_SUCCESS || data->data.tpmProperties.count < 1 ||
      data->data.tpmProperties.tpmProperty[0].property != TPM2_PT_NV_BUFFER_MAX) {
    return 512;
  }
  uint32_t v = data->data.tpmProperties.tpmProperty[0].value;
  return static_cast<uint16_t>(v < 64 ? 64 : (v > 1024 ? 1024 : v));
}

// The certificate in NV index `index`, as DER; the error says why not.
StatusOr<Bytes> ReadEkCertificate(ESYS_CONTEXT* ctx, uint32_t index) {
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) return NotFound(RcText(rc));
  struct CloseNv {
    ESYS_CONTEXT* ctx;
    ESYS_TR* nv;
    ~CloseNv() { (void)Esys_TR_Close(ctx, nv); }
  } close{ctx, &nv};
  TPM2B_NV_PUBLIC* raw_public = nullptr;
  rc = Esys_NV_ReadPublic(ctx, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw_public, nullptr);
  EsysPtr<TPM2B_NV_PUBLIC> pub(raw_public);
  if (rc != TSS2_RC_SUCCESS) return Unavailable(RcText(rc));
  const TPMA_NV attributes = pub->nvPublic.attributes;
  const uint16_t size = pub->nvPublic.dataSize;
  if (size == 0) return FailedPrecondition("the index is empty");
  // EK certificate indices are readable with their own (empty)
  // authorization or the owner's (empty unless the owner set one).
  ESYS_TR auth = nv;
  if ((attributes & TPMA_NV_AUTHREAD) == 0 && (attributes & TPMA_NV_OWNERREAD) != 0) auth = ESYS_TR_RH_OWNER;
  const uint16_t chunk = NvBufferMax(ctx);
  Bytes out;
  out.reserve(size);
  while (out.size() < size) {
    uint16_t n = static_cast<uint16_t>(std::min<size_t>(chunk, size - out.size()));
    TPM2B_MAX_NV_BUFFER* raw_data = nullptr;
    rc = Esys_NV_Read(ctx, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, static_cast<uint16_t>(out.size()),
                      &raw_data);
    EsysPtr<TPM2B_MAX_NV_BUFFER> data(raw_data);
    if (rc != TSS2_RC_SUCCESS) return Unavailable(RcText(rc));
    if (data->size == 0 || data->size > n) return IntegrityError("the TPM returned a read of the wrong size");
    out.insert(out.end(), data->buffer, data->buffer + data->size);
  }
  auto der = LeadingDer(out);
  if (!der) return IntegrityError("the index does not hold a DER certificate");
  auto cert = crypto::Certificate::FromDer(*der);
  if (!cert.ok()) return IntegrityError("the index does not hold a certificate: " + cert.status().message());
  return *der;
}

// The TCG EK Credential Profile's default templates: L-1 (RSA 2048) and
// L-2 (ECC NIST P-256). A restricted decryption key with AES-128-CFB,
// usable only through PolicySecret(TPM_RH_ENDORSEMENT), and zeroed unique
// fields of full size, so that every TPM derives the key its certificate is
// for.
TPM2B_PUBLIC EkTemplate(bool rsa) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                       TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.authPolicy.size = sizeof(kEkPolicy);
  std::memcpy(p.authPolicy.buffer, kEkPolicy, sizeof(kEkPolicy));
  if (rsa) {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
    p.unique.rsa.size = 256;
  } else {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.eccDetail.symmetric.keyBits.aes = 128;
    p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 32;
    p.unique.ecc.y.size = 32;
  }
  return t;
}

// The AK: a restricted ECDSA P-256 / SHA-256 signing key, made in this TPM
// and never to leave it, with an empty authorization value.
TPM2B_PUBLIC AkTemplate() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                       TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

StatusOr<Bytes> MarshalPublic(const TPM2B_PUBLIC& pub) {
  Bytes out(sizeof(TPM2B_PUBLIC));
  size_t offset = 0;
  TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, out.data(), out.size(), &offset);
  if (rc != TSS2_RC_SUCCESS) return IntegrityError("tpm: cannot marshal a public area: " + RcText(rc));
  out.resize(offset);
  return out;
}

// A TPM2B the CAS sent, which must unmarshal exactly.
template <typename T, TSS2_RC (*Unmarshal)(const uint8_t*, size_t, size_t*, T*)>
StatusOr<T> UnmarshalExact(std::span<const uint8_t> bytes, const char* what) {
  T out{};
  size_t offset = 0;
  TSS2_RC rc = Unmarshal(bytes.data(), bytes.size(), &offset, &out);
  if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
    return IntegrityError(std::string("tpm: the CAS's ") + what + " is not a well-formed TPM2B");
  }
  return out;
}

// What one quote gives: the raw TPMS_ATTEST, its marshalled signature and
// the PCR values (index order) whose digest it carries.
struct Quote {
  Bytes attest;
  Bytes signature;
  std::array<Bytes, kPcrCount> pcrs;
};

// Reads the SHA-256 bank's PCRs 0 to 23. A TPM returns at most 8 digests
// per TPM2_PCR_Read, so they are asked for 8 at a time; a TPM that answers
// fewer is asked again for the rest.
StatusOr<std::array<Bytes, kPcrCount>> ReadPcrs(ESYS_CONTEXT* ctx) {
  std::array<Bytes, kPcrCount> values;
  uint32_t missing = (1u << kPcrCount) - 1;
  for (size_t group = 0; group < 3;) {
    const uint32_t want = missing & (0xffu << (8 * group));
    if (want == 0) {
      ++group;
      continue;
    }
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (int i = 0; i < 3; ++i) sel.pcrSelections[0].pcrSelect[i] = static_cast<uint8_t>(want >> (8 * i));
    UINT32 counter = 0;
    TPML_PCR_SELECTION* raw_out = nullptr;
    TPML_DIGEST* raw_digests = nullptr;
    TSS2_RC rc = Esys_PCR_Read(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter, &raw_out, &raw_digests);
    EsysPtr<TPML_PCR_SELECTION> out(raw_out);
    EsysPtr<TPML_DIGEST> digests(raw_digests);
    if (rc != TSS2_RC_SUCCESS) return Unavailable("tpm: cannot read the SHA-256 PCRs: " + RcText(rc));
    uint32_t got = 0;
    size_t next = 0;
    for (uint32_t b = 0; b < out->count; ++b) {
      const TPMS_PCR_SELECTION& s = out->pcrSelections[b];
      if (s.hash != TPM2_ALG_SHA256) return IntegrityError("tpm: TPM2_PCR_Read answered for another bank");
      for (uint32_t i = 0; i < 8u * s.sizeofSelect && i < 32; ++i) {
        if ((s.pcrSelect[i / 8] & (1u << (i % 8))) == 0) continue;
        if (i >= kPcrCount || (want & (1u << i)) == 0 || next >= digests->count) {
          return IntegrityError("tpm: TPM2_PCR_Read answered for PCRs that were not asked for");
        }
        const TPM2B_DIGEST& d = digests->digests[next++];
        if (d.size != 32) return IntegrityError("tpm: a SHA-256 PCR value is not 32 bytes");
        values[i].assign(d.buffer, d.buffer + d.size);
        got |= 1u << i;
      }
    }
    if (got == 0) {
      return FailedPrecondition("tpm: the TPM returns no SHA-256 PCR values (is the SHA-256 bank active?)");
    }
    missing &= ~got;
  }
  return values;
}

// Quotes PCRs 0 to 23 of the SHA-256 bank with `nonce`, and reads them.
StatusOr<Quote> QuotePcrs(ESYS_CONTEXT* ctx, ESYS_TR ak, std::span<const uint8_t> nonce) {
  TPM2B_DATA qualifying{};
  qualifying.size = static_cast<uint16_t>(nonce.size());
  std::memcpy(qualifying.buffer, nonce.data(), nonce.size());
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;  // the AK's own: ECDSA with SHA-256
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
  sel.pcrSelections[0].sizeofSelect = 3;
  sel.pcrSelections[0].pcrSelect[0] = sel.pcrSelections[0].pcrSelect[1] = sel.pcrSelections[0].pcrSelect[2] = 0xff;

  for (int attempt = 1;; ++attempt) {
    TPM2B_ATTEST* raw_quoted = nullptr;
    TPMT_SIGNATURE* raw_signature = nullptr;
    TSS2_RC rc = Esys_Quote(ctx, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &scheme, &sel,
                            &raw_quoted, &raw_signature);
    EsysPtr<TPM2B_ATTEST> quoted(raw_quoted);
    EsysPtr<TPMT_SIGNATURE> signature(raw_signature);
    if (rc != TSS2_RC_SUCCESS) return Unavailable("tpm: the quote failed: " + RcText(rc));
    ASSIGN_OR_RETURN(auto pcrs, ReadPcrs(ctx));

    TPMS_ATTEST attest{};
    size_t offset = 0;
    rc = Tss2_MU_TPMS_ATTEST_Unmarshal(quoted->attestationData, quoted->size, &offset, &attest);
    if (rc != TSS2_RC_SUCCESS || offset != quoted->size || attest.magic != TPM2_GENERATED_VALUE ||
        attest.type != TPM2_ST_ATTEST_QUOTE) {
      return IntegrityError("tpm: the TPM's quote is not a TPMS_ATTEST of a quote");
    }
    crypto::Sha256Hasher h;
    for (const Bytes& v : pcrs) h.Update(v);
    const crypto::Digest digest = h.Finish();
    const TPM2B_DIGEST& quoted_digest = attest.attested.quote.pcrDigest;
    if (quoted_digest.size == digest.size() && std::memcmp(quoted_digest.buffer, digest.data(), digest.size()) == 0) {
      Quote q;
      q.attest.assign(quoted->attestationData, quoted->attestationData + quoted->size);
      q.signature.resize(sizeof(TPMT_SIGNATURE));
      offset = 0;
      rc = Tss2_MU_TPMT_SIGNATURE_Marshal(signature.get(), q.signature.data(), q.signature.size(), &offset);
      if (rc != TSS2_RC_SUCCESS) return IntegrityError("tpm: cannot marshal the quote's signature: " + RcText(rc));
      q.signature.resize(offset);
      q.pcrs = std::move(pcrs);
      return q;
    }
    // A PCR was extended between the quote and the read (an IMA log grows
    // all the time): quote again.
    if (attempt == kQuoteAttempts) {
      return Unavailable("tpm: the PCRs kept changing between the quote and reading them (" +
                         std::to_string(kQuoteAttempts) + " attempts)");
    }
  }
}

class TpmNodeEvidence final : public NodeEvidenceSource {
 public:
  explicit TpmNodeEvidence(std::string tcti) : tcti_(std::move(tcti)) {}

  const std::string& type() const override { return type_; }

  StatusOr<SecretBytes> Gather(const ChallengeFn& challenge, const std::string& node_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Bytes id, NodeIdBytes(node_id));
    ASSIGN_OR_RETURN(auto tpm, EsysConnection::Open(tcti_));
    ESYS_CONTEXT* ctx = tpm->ctx();

    // 1. The EK certificate decides the EK's type: RSA where there is one.
    bool rsa = true;
    auto cert = ReadEkCertificate(ctx, kEkCertRsaIndex);
    if (!cert.ok()) {
      auto ecc = ReadEkCertificate(ctx, kEkCertEccIndex);
      if (!ecc.ok()) {
        return FailedPrecondition("tpm: cannot read the EK certificate from NV index " + NvIndexText(kEkCertRsaIndex) +
                                  ": " + cert.status().message() + " (nor from " + NvIndexText(kEkCertEccIndex) + ": " +
                                  ecc.status().message() + ")");
      }
      cert = std::move(ecc);
      rsa = false;
    }
    const uint32_t cert_index = rsa ? kEkCertRsaIndex : kEkCertEccIndex;

    Transient ek(ctx);
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcrs{};
    const TPM2B_PUBLIC ek_template = EkTemplate(rsa);
    TPM2B_PUBLIC* raw_ek_public = nullptr;
    TSS2_RC rc =
        Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                           &ek_template, &outside, &creation_pcrs, ek.out(), &raw_ek_public, nullptr, nullptr, nullptr);
    EsysPtr<TPM2B_PUBLIC> ek_public(raw_ek_public);
    if (rc != TSS2_RC_SUCCESS) {
      return Unavailable(std::string("tpm: cannot create the ") + (rsa ? "RSA" : "ECC") +
                         " EK in the endorsement hierarchy: " + RcText(rc));
    }

    // 2. The AK under the EK.
    TPM2B_PRIVATE* raw_ak_private = nullptr;
    TPM2B_PUBLIC* raw_ak_public = nullptr;
    {
      Transient session(ctx);
      RETURN_IF_ERROR(StartEkPolicy(ctx, session, "create the AK"));
      const TPM2B_PUBLIC ak_template = AkTemplate();
      rc = Esys_Create(ctx, ek.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &ak_template, &outside,
                       &creation_pcrs, &raw_ak_private, &raw_ak_public, nullptr, nullptr, nullptr);
    }
    EsysPtr<TPM2B_PRIVATE> ak_private(raw_ak_private);
    EsysPtr<TPM2B_PUBLIC> ak_public(raw_ak_public);
    if (rc != TSS2_RC_SUCCESS) return Unavailable("tpm: cannot create the AK under the EK: " + RcText(rc));
    Transient ak(ctx);
    {
      Transient session(ctx);
      RETURN_IF_ERROR(StartEkPolicy(ctx, session, "load the AK"));
      rc = Esys_Load(ctx, ek.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, ak_private.get(), ak_public.get(),
                     ak.out());
    }
    if (rc != TSS2_RC_SUCCESS) return Unavailable("tpm: cannot load the AK: " + RcText(rc));

    // 3. The challenge, for this EK and AK.
    ASSIGN_OR_RETURN(Bytes ek_bytes, MarshalPublic(*ek_public));
    ASSIGN_OR_RETURN(Bytes ak_bytes, MarshalPublic(*ak_public));
    json request = {{"type", "tpm"},
                    {"ek_certificate", CertificatePem(*cert)},
                    {"ek_public", Base64Encode(ek_bytes)},
                    {"ak_public", Base64Encode(ak_bytes)}};
    ASSIGN_OR_RETURN(NodeChallenge c, challenge(request.dump()));
    RETURN_IF_ERROR(CheckChallenge(type_, c));
    auto credential =
        UnmarshalExact<TPM2B_ID_OBJECT, Tss2_MU_TPM2B_ID_OBJECT_Unmarshal>(c.credential_blob, "credential_blob");
    if (!credential.ok()) return credential.status();
    auto encrypted = UnmarshalExact<TPM2B_ENCRYPTED_SECRET, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal>(
        c.encrypted_secret, "encrypted_secret");
    if (!encrypted.ok()) return encrypted.status();

    // 4. Activation: the TPM recovers the CAS's secret only if the EK is
    // the one the credential was made for and the AK has the Name it was
    // bound to.
    std::unique_ptr<TPM2B_DIGEST, WipeDigest> secret;
    {
      Transient session(ctx);
      RETURN_IF_ERROR(StartEkPolicy(ctx, session, "activate the credential"));
      TPM2B_DIGEST* raw_secret = nullptr;
      rc = Esys_ActivateCredential(ctx, ak.get(), ek.get(), ESYS_TR_PASSWORD, session.get(), ESYS_TR_NONE, &*credential,
                                   &*encrypted, &raw_secret);
      secret.reset(raw_secret);
    }
    if (rc != TSS2_RC_SUCCESS) {
      return Unavailable("tpm: credential activation failed (the CAS's credential is not for this TPM's EK (NV " +
                         NvIndexText(cert_index) + ") and AK, or the TPM refused): " + RcText(rc));
    }
    if (secret->size == 0) return IntegrityError("tpm: credential activation returned an empty secret");

    const crypto::Digest b = NodeEvidenceBinding(c.challenge, id);
    ASSIGN_OR_RETURN(Quote quote, QuotePcrs(ctx, ak.get(), b));

    // 5. E. Built by hand into a buffer reserved up front, so that the only
    // copies of the secret are ones that get wiped.
    std::string secret_b64 = Base64Encode(std::span<const uint8_t>(secret->buffer, secret->size));
    secret.reset();
    const std::string head = R"({"type": "tpm", "challenge": ")" + HexEncode(c.challenge) + R"(", "secret": ")";
    std::string tail = R"(", "quote": ")" + Base64Encode(quote.attest) + R"(", "signature": ")" +
                       Base64Encode(quote.signature) + R"(", "pcrs": {)";
    for (size_t i = 0; i < kPcrCount; ++i) {
      tail += (i == 0 ? "\"" : ", \"") + std::to_string(i) + "\": \"" + HexEncode(quote.pcrs[i]) + "\"";
    }
    tail += "}}";
    std::string e;
    e.reserve(head.size() + secret_b64.size() + tail.size());
    e += head;
    e += secret_b64;
    e += tail;
    SecureZero(secret_b64.data(), secret_b64.size());
    return IntoSecret(e);
    // ~Transient flushes the AK, then the EK; ~EsysConnection closes.
  }

 private:
  const std::string type_ = "tpm";
  const std::string tcti_;
  std::mutex mu_;
};

}  // namespace

crypto::Digest NodeEvidenceBinding(std::span<const uint8_t> challenge, std::span<const uint8_t> node_id) {
  crypto::Sha256Hasher h;
  h.Update(kBindingLabel);
  h.Update(challenge);
  h.Update(node_id);
  return h.Finish();
}

TsmFs& TsmFs::Posix() {
  static PosixTsmFs fs;
  return fs;
}

std::unique_ptr<NodeEvidenceSource> NewTsmNodeEvidence(const std::string& type, std::string dir, TsmFs& fs) {
  return std::make_unique<TsmNodeEvidence>(type, std::move(dir), fs);
}

std::unique_ptr<NodeEvidenceSource> NewTpmNodeEvidence(std::string tcti) {
  return std::make_unique<TpmNodeEvidence>(std::move(tcti));
}

StatusOr<std::unique_ptr<NodeEvidenceSource>> NewNodeEvidenceSource(const std::string& type,
                                                                    const std::string& tpm_tcti,
                                                                    const std::string& tsm_dir) {
  if (type == "token") return std::unique_ptr<NodeEvidenceSource>();
  if (type == "tpm") return NewTpmNodeEvidence(tpm_tcti);
  if (type == "tdx" || type == "snp") return NewTsmNodeEvidence(type, tsm_dir, TsmFs::Posix());
  return InvalidArgument("node evidence '" + type + "' is not one of token, tpm, tdx, snp");
}

}  // namespace cloister::las
