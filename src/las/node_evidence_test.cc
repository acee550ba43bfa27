#include "las/node_evidence.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "attest/test_swtpm.h"
#include "attest/test_vectors.h"
#include "attest/tpm_quote.h"
#include "crypto/crypto.h"
#include "crypto/x509.h"


namespace cloister::las {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// ---- helpers ----

std::string TempDir(const std::string& name) {
  std::string tmpl = (fs::temp_directory_path() / ("cloister-" + name + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

Bytes ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string ReadText(const std::string& path) {
  Bytes b = ReadFile(path);
  return std::string(b.begin(), b.end());
}

void WriteFile(const std::string& path, std::span<const uint8_t> data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}
void WriteFile(const std::string& path, const std::string& text) { WriteFile(path, AsBytes(text)); }

Bytes RandomBytes(size_t n) {
  Bytes b(n);
  EXPECT_TRUE(crypto::RandomBytes(b).ok());
  return b;
}

SecretBytes SecretOf(const Bytes& b) { return SecretBytes(b.data(), b.size()); }

std::string Text(const SecretBytes& s) {
  auto b = s.UnsafeBytes();
  return std::string(b.begin(), b.end());
}

Bytes Base64(const json& j, const char* key) {
  EXPECT_TRUE(j.contains(key) && j[key].is_string()) << key;
  if (!j.contains(key) || !j[key].is_string()) return {};
  auto b = Base64Decode(j[key].get<std::string>());
  EXPECT_TRUE(b.has_value()) << key;
  return b.value_or(Bytes{});
}

// B of protocol.md section 4.1, computed here on its own rather than with
// NodeEvidenceBinding.
Bytes ExpectedBinding(const Bytes& challenge, const std::string& node_id_hex) {
  Bytes all = Bytes(AsBytes("cloister node evidence v1").begin(), AsBytes("cloister node evidence v1").end());
  all.insert(all.end(), challenge.begin(), challenge.end());
  Bytes id = HexDecode(node_id_hex).value_or(Bytes{});
  all.insert(all.end(), id.begin(), id.end());
  crypto::Digest d = crypto::Sha256(all);
  return Bytes(d.begin(), d.end());
}

const std::string kNodeId = "5f0c1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1";

TEST(NodeEvidenceBindingTest, IsTheHashOfLabelChallengeAndNodeId) {
  Bytes challenge = RandomBytes(32);
  crypto::Digest b = NodeEvidenceBinding(challenge, *HexDecode(kNodeId));
  EXPECT_EQ(Bytes(b.begin(), b.end()), ExpectedBinding(challenge, kNodeId));
  challenge[0] ^= 1;
  crypto::Digest other = NodeEvidenceBinding(challenge, *HexDecode(kNodeId));
  EXPECT_NE(b, other);
}

TEST(NodeEvidenceSourceTest, MadeForEachFlagValue) {
  auto token = NewNodeEvidenceSource("token", kDefaultTpmTcti, kDefaultTsmDir);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, nullptr);
  for (const char* type : {"tpm", "tdx", "snp"}) {
    auto s = NewNodeEvidenceSource(type, kDefaultTpmTcti, kDefaultTsmDir);
    ASSERT_TRUE(s.ok()) << type;
    EXPECT_EQ((*s)->type(), type);
  }
  auto bad = NewNodeEvidenceSource("sim", kDefaultTpmTcti, kDefaultTsmDir);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

// ---- configfs-tsm against a fake report tree ----

// A report directory on disk that plays the kernel's part: a new entry gets
// its attributes at once (inblob, generation, provider, outblob, and
// auxblob when given), as configfs makes them at mkdir; writing inblob
// counts the generation up, as the kernel does. The LAS's code reaches the
// files with its real POSIX calls (TsmFs::Posix()).
class FakeTsm final : public TsmFs {
 public:
  FakeTsm() : dir_(TempDir("tsm")) {}
  ~FakeTsm() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  const std::string& dir() const { return dir_; }

  std::string provider = "tdx_guest";
  Bytes outblob;
  std::optional<Bytes> auxblob;
  // Another writer: the generation moves on while outblob is read.
  bool other_writer = false;

  // What the LAS did.
  std::vector<std::string> made;
  Bytes inblob;
  int removed = 0;

  Status MakeDir(const std::string& path) override {
    RETURN_IF_ERROR(TsmFs::Posix().MakeDir(path));
    made.push_back(path);
    WriteFile(path + "/inblob", std::string());
    WriteFile(path + "/generation", "0\n");
    WriteFile(path + "/provider", provider + "\n");
    WriteFile(path + "/outblob", outblob);
    if (auxblob) WriteFile(path + "/auxblob", *auxblob);
    return Status::Ok();
  }
  Status RemoveDir(const std::string& path) override {
    std::error_code ec;
    for (const char* f : {"inblob", "generation", "provider", "outblob", "auxblob"}) fs::remove(path + "/" + f, ec);
    RETURN_IF_ERROR(TsmFs::Posix().RemoveDir(path));
    ++removed;
    return Status::Ok();
  }
  Status WriteAttribute(const std::string& path, std::span<const uint8_t> data) override {
    RETURN_IF_ERROR(TsmFs::Posix().WriteAttribute(path, data));
    if (fs::path(path).filename() == "inblob") {
      inblob = ReadFile(path);
      Bump(fs::path(path).parent_path().string());
    }
    return Status::Ok();
  }
  StatusOr<Bytes> ReadAttribute(const std::string& path, size_t max) override {
    auto got = TsmFs::Posix().ReadAttribute(path, max);
    if (other_writer && fs::path(path).filename() == "outblob") Bump(fs::path(path).parent_path().string());
    return got;
  }

 private:
  void Bump(const std::string& entry) {
    Bytes g = ReadFile(entry + "/generation");
    int n = std::stoi(std::string(g.begin(), g.end()));
    WriteFile(entry + "/generation", std::to_string(n + 1) + "\n");
  }
  std::string dir_;
};

// A stand-in for the CAS's challenge route: records the request body and
// answers with a fixed challenge.
struct FakeChallenge {
  Bytes challenge = RandomBytes(32);
  std::vector<std::string> requests;
  NodeEvidenceSource::ChallengeFn Fn() {
    return [this](const std::string& body) -> StatusOr<NodeChallenge> {
      requests.push_back(body);
      NodeChallenge c;
      c.challenge = challenge;
      c.expires = std::time(nullptr) + 120;
      return c;
    };
  }
};

TEST(TsmNodeEvidenceTest, TdxSendsTheQuoteOfAReportOverTheBinding) {
  CLOISTER_REQUIRE_VECTORS();
  FakeTsm tsm;
  tsm.outblob = attest::testing::ReadVector("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
  ASSERT_FALSE(tsm.outblob.empty());
  auto source = NewTsmNodeEvidence("tdx", tsm.dir(), tsm);
  FakeChallenge cas;
  auto e = source->Gather(cas.Fn(), kNodeId);
  ASSERT_TRUE(e.ok()) << e.status().ToString();

  ASSERT_EQ(cas.requests.size(), 1u);
  EXPECT_EQ(json::parse(cas.requests[0]), json({{"type", "tdx"}}));
  // inblob: B || 32 zero bytes.
  Bytes want = ExpectedBinding(cas.challenge, kNodeId);
  want.resize(64, 0);
  EXPECT_EQ(tsm.inblob, want);
  // E: the vector's quote, unchanged.
  json j = json::parse(Text(*e));
  EXPECT_EQ(j["type"], "tdx");
  EXPECT_EQ(j["challenge"], HexEncode(cas.challenge));
  EXPECT_EQ(Base64(j, "quote"), tsm.outblob);
  EXPECT_EQ(j.size(), 3u) << j.dump();
  // One entry of its own, removed afterwards.
  ASSERT_EQ(tsm.made.size(), 1u);
  EXPECT_EQ(fs::path(tsm.made[0]).parent_path(), fs::path(tsm.dir()));
  EXPECT_EQ(tsm.removed, 1);
  EXPECT_TRUE(fs::is_empty(tsm.dir()));

  // A renewal makes a new entry with the new challenge.
  cas.challenge = RandomBytes(32);
  ASSERT_TRUE(source->Gather(cas.Fn(), kNodeId).ok());
  ASSERT_EQ(tsm.made.size(), 2u);
  EXPECT_NE(tsm.made[0], tsm.made[1]);
  want = ExpectedBinding(cas.challenge, kNodeId);
  want.resize(64, 0);
  EXPECT_EQ(tsm.inblob, want);
}

TEST(TsmNodeEvidenceTest, SnpSendsTheReportAndTheHostsCertificateTable) {
  CLOISTER_REQUIRE_VECTORS();
  FakeTsm tsm;
  tsm.provider = "sev_guest";
  tsm.outblob = attest::testing::ReadVector("snp/go-sev-guest/attestation.bin");
  tsm.auxblob = attest::testing::ReadVector("snp/go-sev-guest/vcek.testcer");
  auto source = NewTsmNodeEvidence("snp", tsm.dir(), tsm);
  FakeChallenge cas;
  auto e = source->Gather(cas.Fn(), kNodeId);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(json::parse(cas.requests[0]), json({{"type", "snp"}}));
  json j = json::parse(Text(*e));
  EXPECT_EQ(j["type"], "snp");
  EXPECT_EQ(Base64(j, "report"), tsm.outblob);
  EXPECT_EQ(Base64(j, "auxblob"), *tsm.auxblob);

  // Without a certificate table (no auxblob, or an empty one): no field.
  for (std::optional<Bytes> aux : {std::optional<Bytes>(), std::optional<Bytes>(Bytes{})}) {
    tsm.auxblob = aux;
    auto again = source->Gather(cas.Fn(), kNodeId);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    json k = json::parse(Text(*again));
    EXPECT_FALSE(k.contains("auxblob")) << k.dump();
    EXPECT_EQ(Base64(k, "report"), tsm.outblob);
  }
}

TEST(TsmNodeEvidenceTest, RefusesAReportWhoseGenerationChanged) {
  FakeTsm tsm;
  tsm.outblob = Bytes(100, 7);
  tsm.other_writer = true;
  auto e = NewTsmNodeEvidence("tdx", tsm.dir(), tsm)->Gather(FakeChallenge().Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kIntegrity);
  EXPECT_NE(e.status().message().find("tdx: the report's generation changed from 1 to 2"), std::string::npos)
      << e.status().message();
  EXPECT_EQ(tsm.removed, 1);
}

TEST(TsmNodeEvidenceTest, RefusesAnotherProvider) {
  FakeTsm tsm;
  tsm.outblob = Bytes(100, 7);
  tsm.provider = "sev_guest";
  auto e = NewTsmNodeEvidence("tdx", tsm.dir(), tsm)->Gather(FakeChallenge().Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.status().message(),
            "tdx: the configfs-tsm provider is 'sev_guest', not tdx_guest (is this node a TDX guest?)");
  EXPECT_EQ(tsm.removed, 1);

  tsm.provider = "tdx_guest";
  e = NewTsmNodeEvidence("snp", tsm.dir(), tsm)->Gather(FakeChallenge().Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("not sev_guest"), std::string::npos) << e.status().message();
}

TEST(TsmNodeEvidenceTest, SaysWhenThereIsNoConfigfsTsm) {
  FakeChallenge cas;
  auto e = NewTsmNodeEvidence("snp", "/nonexistent/tsm/report", TsmFs::Posix())->Gather(cas.Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(cas.requests.empty());  // no challenge used up
  EXPECT_EQ(e.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(e.status().message().rfind("snp: cannot create a report in /nonexistent/tsm/report (configfs-tsm): ", 0),
            0u)
      << e.status().message();
}

TEST(TsmNodeEvidenceTest, EmptyOutblobIsRefused) {
  FakeTsm tsm;
  auto e = NewTsmNodeEvidence("tdx", tsm.dir(), tsm)->Gather(FakeChallenge().Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("outblob"), std::string::npos) << e.status().message();
}

TEST(TsmNodeEvidenceTest, PassesTheCasRefusalOnAndRemovesItsEntry) {
  FakeTsm tsm;
  tsm.outblob = Bytes(100, 7);
  auto e = NewTsmNodeEvidence("tdx", tsm.dir(), tsm)
               ->Gather([](const std::string&) -> StatusOr<NodeChallenge> { return PermissionDenied("no"); }, kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(e.status().message(), "no");
  EXPECT_TRUE(tsm.inblob.empty());
  EXPECT_EQ(tsm.made.size(), 1u);
  EXPECT_EQ(tsm.removed, 1);
  EXPECT_TRUE(fs::is_empty(tsm.dir()));
}

// ---- TPM, against a software TPM with an EK certificate ----

// The CAS's side of the challenge, done with libcloister's verifiers: the
// EK certificate to the local CA, the EK's key is the certificate's, the AK
// is an attestation key; then a credential for the AK's Name.
struct TpmCas {
  std::string ca_dir;
  Bytes challenge = RandomBytes(32);
  Bytes secret = RandomBytes(32);
  bool wrong_name = false;
  Bytes ak_public;  // from the last request
  std::string error;

  NodeEvidenceSource::ChallengeFn Fn() {
    return [this](const std::string& body) -> StatusOr<NodeChallenge> {
      json r = json::parse(body, nullptr, false);
      if (!r.is_object() || r.value("type", "") != "tpm" || r.size() != 4) return IntegrityError("bad request");
      ASSIGN_OR_RETURN(auto cert, crypto::Certificate::FromPem(r.value("ek_certificate", "")));
      auto root = crypto::Certificate::FromPem(ReadText(ca_dir + "/swtpm-localca-rootca-cert.pem"));
      auto issuer = crypto::Certificate::FromPem(ReadText(ca_dir + "/issuercert.pem"));
      if (!root.ok() || !issuer.ok()) return IntegrityError("the local CA's certificates do not parse");
      std::vector<std::shared_ptr<const crypto::Certificate>> roots{*root}, intermediates{*issuer};
      ASSIGN_OR_RETURN(auto certified, attest::VerifyEkCertificate(*cert, intermediates, roots, std::time(nullptr)));
      ASSIGN_OR_RETURN(attest::TpmPublic ek, attest::ParseTpmPublic(Base64(r, "ek_public")));
      RETURN_IF_ERROR(attest::CheckEkMatchesCertificate(ek, *certified));
      ak_public = Base64(r, "ak_public");
      ASSIGN_OR_RETURN(attest::TpmPublic ak, attest::ParseTpmPublic(ak_public));
      RETURN_IF_ERROR(attest::CheckAkAttributes(ak));
      Bytes name = ak.name;
      if (wrong_name) name.back() ^= 1;
      ASSIGN_OR_RETURN(attest::TpmCredential cred, attest::MakeCredential(ek, name, SecretOf(secret)));
      NodeChallenge c;
      c.challenge = challenge;
      c.expires = std::time(nullptr) + 120;
      c.credential_blob = cred.credential_blob;
      c.encrypted_secret = cred.encrypted_secret;
      return c;
    };
  }
};

#define REQUIRE_SWTPM(tpm)                                                                           \
  if (std::string missing = attest::testing::Swtpm::Missing(true); !missing.empty()) {               \
    GTEST_SKIP() << missing << " is not installed (apt-get install swtpm swtpm-tools gnutls-bin): "  \
                 << "the software-TPM check is skipped";                                             \
  }                                                                                                  \
  attest::testing::Swtpm tpm;                                                                        \
  {                                                                                                  \
    std::string error;                                                                               \
    ASSERT_TRUE(tpm.Start(error, /*with_ek_certificate=*/true)) << error;                            \
  }

TEST(TpmNodeEvidenceTest, ActivatesTheCredentialAndQuotesThePcrsOverTheBinding) {
  REQUIRE_SWTPM(tpm);
  auto source = NewTpmNodeEvidence(tpm.Tcti());
  EXPECT_EQ(source->type(), "tpm");
  for (int round = 0; round < 2; ++round) {  // the join, then a renewal
    SCOPED_TRACE(round);
    TpmCas cas;
    cas.ca_dir = tpm.Path("ca");
    auto e = source->Gather(cas.Fn(), kNodeId);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    json j = json::parse(Text(*e));
    EXPECT_EQ(j["type"], "tpm");
    EXPECT_EQ(j["challenge"], HexEncode(cas.challenge));
    EXPECT_EQ(j.size(), 6u) << j.dump();
    // The activated credential is the CAS's secret.
    EXPECT_EQ(Base64(j, "secret"), cas.secret);
    // The quote verifies with the AK the CAS saw, nonce B, and the PCRs sent.
    attest::TpmQuoteInput in;
    in.ak_public = cas.ak_public;
    in.attest = Base64(j, "quote");
    in.signature = Base64(j, "signature");
    in.nonce = ExpectedBinding(cas.challenge, kNodeId);
    ASSERT_TRUE(j["pcrs"].is_object());
    EXPECT_EQ(j["pcrs"].size(), 24u);
    for (int i = 0; i < 24; ++i) {
      auto v = HexDecode(j["pcrs"].value(std::to_string(i), ""));
      ASSERT_TRUE(v && v->size() == 32) << i;
      in.pcrs.sha256[static_cast<uint32_t>(i)] = *v;
    }
    auto verdict = attest::VerifyTpmQuote(in);
    ASSERT_TRUE(verdict.ok()) << verdict.status().ToString();
    ASSERT_NE(verdict->Find("pcr0"), nullptr);
    EXPECT_EQ(*verdict->Find("pcr0"), j["pcrs"]["0"].get<std::string>());
    // Another nonce does not verify.
    in.nonce[0] ^= 1;
    EXPECT_FALSE(attest::VerifyTpmQuote(in).ok());
  }
  // Nothing left behind in the TPM (it has no resource manager here).
  std::string transient = tpm.Output("tpm2_getcap handles-transient");
  std::string sessions = tpm.Output("tpm2_getcap handles-loaded-session");
  EXPECT_EQ(transient.find("0x"), std::string::npos) << transient;
  EXPECT_EQ(sessions.find("0x"), std::string::npos) << sessions;
}

TEST(TpmNodeEvidenceTest, ACredentialForAnotherAkDoesNotActivate) {
  REQUIRE_SWTPM(tpm);
  TpmCas cas;
  cas.ca_dir = tpm.Path("ca");
  cas.wrong_name = true;
  auto e = NewTpmNodeEvidence(tpm.Tcti())->Gather(cas.Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message().rfind("tpm: credential activation failed", 0), 0u) << e.status().message();
  EXPECT_EQ(e.status().message().find('\n'), std::string::npos);
  // Still nothing left behind.
  std::string transient = tpm.Output("tpm2_getcap handles-transient");
  EXPECT_EQ(transient.find("0x"), std::string::npos) << transient;
}

TEST(TpmNodeEvidenceTest, SaysWhenTheTpmCannotBeReached) {
  auto e = NewTpmNodeEvidence("swtpm:host=127.0.0.1,port=1")->Gather(FakeChallenge().Fn(), kNodeId);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(e.status().message().rfind("tpm: cannot open the TPM at swtpm:host=127.0.0.1,port=1: ", 0), 0u)
      << e.status().message();
}

}  // namespace
}  // namespace cloister::las
