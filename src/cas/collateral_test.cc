// The CAS's collateral store: import by administrators, the newest piece
// kept, survival across a restart, the choice of collateral for a quote or
// report, and fetching from a PCCS (a fake one on loopback that serves the
// vectors' collateral).
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "attest/dcap.h"
#include "attest/snp.h"
#include "attest/test_vectors.h"
#include "cas/service.h"
#include "crypto/crypto.h"
#include "crypto/x509.h"

namespace cloister::cas {
namespace {

using attest::testing::ReadVector;
using attest::testing::ReadVectorText;

const std::string kAdmin(64, 'a');
const std::string kOther(64, 'b');

int64_t At(const char* t) { return *crypto::ParseRfc3339(t); }
Bytes ToBytesForTest(const std::string& s) { return Bytes(s.begin(), s.end()); }

attest::CollateralFile VectorFile(const std::string& relative) { return {relative, ReadVector(relative)}; }

std::vector<attest::CollateralFile> TdxCollateralFiles() {
  std::vector<attest::CollateralFile> files;
  for (const char* f : {"tcbInfo.json", "qeIdentity.json", "tcbchain.pem", "pck_crl.der", "root_ca_crl.der",
                        "pckcrlchain.pem"}) {
    files.push_back(VectorFile(std::string("dcap-qvl/tdx_quote.") + f));
  }
  return files;
}

class CollateralTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cas-collateral-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto key = crypto::RandomSecret(32);
    ASSERT_TRUE(key.ok());
    master_ = *key;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<CasService> OpenUnsealed() {
    auto s = CasService::Open(dir_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    Status st = (*s)->InitializeOrUnsealWithKey(master_);
    EXPECT_TRUE(st.ok()) << st.ToString();
    (*s)->SetAdmins({kAdmin});
    return std::move(*s);
  }

  std::string dir_;
  SecretBytes master_;
};

const CollateralEntry* FindEntry(const std::vector<CollateralEntry>& list, const std::string& kind) {
  for (const CollateralEntry& e : list) {
    if (e.kind == kind) return &e;
  }
  return nullptr;
}

TEST_F(CollateralTest, ImportIsForAdministratorsAndKeepsEachPieceOnce) {
  CLOISTER_REQUIRE_VECTORS();
  auto svc = OpenUnsealed();
  auto files = TdxCollateralFiles();
  files.push_back({"notes.txt", ToBytesForTest("not collateral")});
  EXPECT_EQ(svc->ImportCollateral(kOther, files).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(svc->ImportCollateral(kAdmin, {}).status().code(), StatusCode::kInvalidArgument);

  auto first = svc->ImportCollateral(kAdmin, files);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // TCB Info, QE Identity, the signing chain, two CRLs; the PCK CRL chain
  // holds the Platform/Processor CA and the root (PCK CA certificates).
  EXPECT_GE(first->added, 5u);
  EXPECT_EQ(first->unchanged, 0u);
  ASSERT_EQ(first->unrecognised.size(), 1u);
  EXPECT_EQ(first->unrecognised[0], "notes.txt");

  auto again = svc->ImportCollateral(kAdmin, files);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->added, 0u);
  EXPECT_EQ(again->unchanged, first->added);

  EXPECT_EQ(svc->ListCollateral(kOther).status().code(), StatusCode::kPermissionDenied);
  auto list = svc->ListCollateral(kAdmin);
  ASSERT_TRUE(list.ok());
  const CollateralEntry* tcb = FindEntry(*list, "tcb-info");
  ASSERT_NE(tcb, nullptr);
  EXPECT_EQ(tcb->subject, "TDX fmspc b0c06f000000");
  EXPECT_EQ(tcb->source, "import");
  EXPECT_EQ(tcb->next_update_unix, At("2025-07-19T10:16:03Z"));
  ASSERT_NE(FindEntry(*list, "qe-identity"), nullptr);
  EXPECT_EQ(FindEntry(*list, "qe-identity")->subject, "TD_QE");
  ASSERT_NE(FindEntry(*list, "root-ca-crl"), nullptr);
  EXPECT_EQ(FindEntry(*list, "root-ca-crl")->subject, "Intel SGX Root CA");

  // Kept in the sealed store: a restarted CAS holds the same.
  svc.reset();
  auto reopened = OpenUnsealed();
  auto after = reopened->ListCollateral(kAdmin);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), list->size());
}

TEST_F(CollateralTest, AnOlderIssueDoesNotReplaceANewerOne) {
  CLOISTER_REQUIRE_VECTORS();
  auto svc = OpenUnsealed();
  std::string tcb = ReadVectorText("dcap-qvl/tdx_quote.tcbInfo.json");
  // The same document with an older issue date: what the CAS holds stays.
  std::string older = tcb;
  size_t at = older.find("\"issueDate\":\"2025-06");
  ASSERT_NE(at, std::string::npos);
  older.replace(at + 13, 4, "2024");  // "issueDate":"2025-06... -> 2024-06
  ASSERT_TRUE(svc->ImportCollateral(kAdmin, {{"new", ToBytesForTest(tcb)}}).ok());
  auto r = svc->ImportCollateral(kAdmin, {{"old", ToBytesForTest(older)}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->added, 0u);
  EXPECT_EQ(r->unchanged, 1u);
}

TEST_F(CollateralTest, ChoosesTheCollateralThatVerifiesAQuote) {
  CLOISTER_REQUIRE_VECTORS();
  auto svc = OpenUnsealed();
  Bytes quote = ReadVector("dcap-qvl/tdx_quote");
  auto none = svc->DcapCollateralForQuote(quote);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("b0c06f000000"), std::string::npos) << none.status().message();

  ASSERT_TRUE(svc->ImportCollateral(kAdmin, TdxCollateralFiles()).ok());
  auto c = svc->DcapCollateralForQuote(quote);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto v = attest::VerifyDcapQuote(quote, &*c, At("2025-07-01T00:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->tcb_status, attest::TcbStatus::kUpToDate);
  EXPECT_TRUE(v->revocation_checked);

  // The SGX quote of another platform finds nothing for its FMSPC.
  auto sgx = svc->DcapCollateralForQuote(ReadVector("dcap-qvl/sgx_quote"));
  EXPECT_EQ(sgx.status().code(), StatusCode::kNotFound);
}

// A PCCS on loopback that serves the vectors' TDX collateral as the PCCS
// API (v4) does: JSON bodies with URL-encoded issuer chains in headers,
// CRLs as DER or, for the root CA CRL, as hex text.
class FakePccs {
 public:
  FakePccs() {
    const std::string tcb_chain = ReadVectorText("dcap-qvl/tdx_quote.tcbchain.pem");
    const std::string tcb = ReadVectorText("dcap-qvl/tdx_quote.tcbInfo.json");
    const std::string qe = ReadVectorText("dcap-qvl/tdx_quote.qeIdentity.json");
    const Bytes pck_crl = ReadVector("dcap-qvl/tdx_quote.pck_crl.der");
    const Bytes root_crl = ReadVector("dcap-qvl/tdx_quote.root_ca_crl.der");
    const std::string crl_chain = ReadVectorText("dcap-qvl/tdx_quote.pckcrlchain.pem");
    server_.Get("/tdx/certification/v4/tcb", [=, this](const httplib::Request& req, httplib::Response& res) {
      ++requests_;
      if (req.get_param_value("fmspc") != "b0c06f000000") {
        res.status = 404;
        return;
      }
      res.set_header("TCB-Info-Issuer-Chain", httplib::detail::encode_query_param(tcb_chain));
      res.set_content(tcb, "application/json");
    });
    server_.Get("/tdx/certification/v4/qe/identity", [=, this](const httplib::Request&, httplib::Response& res) {
      ++requests_;
      res.set_header("SGX-Enclave-Identity-Issuer-Chain", httplib::detail::encode_query_param(tcb_chain));
      res.set_content(qe, "application/json");
    });
    server_.Get("/sgx/certification/v4/pckcrl", [=, this](const httplib::Request&, httplib::Response& res) {
      ++requests_;
      res.set_header("SGX-PCK-CRL-Issuer-Chain", httplib::detail::encode_query_param(crl_chain));
      res.set_content(std::string(pck_crl.begin(), pck_crl.end()), "application/pkix-crl");
    });
    server_.Get("/sgx/certification/v4/rootcacrl", [=, this](const httplib::Request&, httplib::Response& res) {
      ++requests_;
      res.set_content(HexEncode(root_crl), "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakePccs() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0};
};

TEST_F(CollateralTest, FetchesMissingCollateralFromThePccsAndKeepsIt) {
  CLOISTER_REQUIRE_VECTORS();
  FakePccs pccs;
  auto svc = OpenUnsealed();
  svc->SetPccs(pccs.url() + "/", "");
  Bytes quote = ReadVector("dcap-qvl/tdx_quote");
  auto c = svc->DcapCollateralForQuote(quote);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(pccs.requests(), 5);
  auto v = attest::VerifyDcapQuote(quote, &*c, At("2025-07-01T00:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->tcb_status, attest::TcbStatus::kUpToDate);
  EXPECT_TRUE(v->revocation_checked);  // both CRLs came from the PCCS

  auto list = svc->ListCollateral(kAdmin);
  ASSERT_TRUE(list.ok());
  const CollateralEntry* tcb = FindEntry(*list, "tcb-info");
  ASSERT_NE(tcb, nullptr);
  EXPECT_EQ(tcb->source, pccs.url());
  ASSERT_NE(FindEntry(*list, "root-ca-crl"), nullptr);

  // The vectors' collateral is past its nextUpdate, so the CAS would ask
  // again, but not within a minute: it answers with what it holds.
  auto again = svc->DcapCollateralForQuote(quote);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(pccs.requests(), 5);
  EXPECT_EQ(again->tcb_info_json, c->tcb_info_json);
}

TEST_F(CollateralTest, AnUnreachablePccsIsNamedWhenNothingIsHeld) {
  CLOISTER_REQUIRE_VECTORS();
  auto svc = OpenUnsealed();
  int port = 0;
  {
    FakePccs gone;  // a port that was just free
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  svc->SetPccs("http://127.0.0.1:" + std::to_string(port), "");
  auto c = svc->DcapCollateralForQuote(ReadVector("dcap-qvl/tdx_quote"));
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("the PCCS at http://127.0.0.1:"), std::string::npos) << c.status().message();
}

// An SEV-SNP certificate table with one entry per certificate.
Bytes CertificateTable(const std::vector<Bytes>& certs) {
  Bytes table;
  size_t offset = (certs.size() + 1) * 24;
  Bytes body;
  for (const Bytes& c : certs) {
    Bytes entry(16, 0x11);  // the GUID is not looked at
    for (uint64_t v : {offset + body.size(), static_cast<uint64_t>(c.size())}) {
      for (int i = 0; i < 4; ++i) entry.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    table.insert(table.end(), entry.begin(), entry.end());
    body.insert(body.end(), c.begin(), c.end());
  }
  table.resize(table.size() + 24, 0);
  table.insert(table.end(), body.begin(), body.end());
  return table;
}

TEST_F(CollateralTest, FindsTheVcekOfTheReportsChip) {
  CLOISTER_REQUIRE_VECTORS();
  auto svc = OpenUnsealed();
  Bytes report = ReadVector("snp/go-sev-guest/attestation.bin");
  EXPECT_EQ(svc->SnpCollateralForReport(report, {}).status().code(), StatusCode::kNotFound);

  // Another chip's VCEK is not taken.
  ASSERT_TRUE(svc->ImportCollateral(kAdmin, {VectorFile("trustee/snp/test-vcek.der"),
                                             VectorFile("snp/go-sev-guest/ask_ark_milan.pem")})
                  .ok());
  auto other = svc->SnpCollateralForReport(report, {});
  EXPECT_EQ(other.status().code(), StatusCode::kNotFound);
  EXPECT_NE(other.status().message().find("no VCEK or VLEK for chip"), std::string::npos);
  // With the VCEKs of two chips held, the one of the report's chip is chosen.
  ASSERT_TRUE(svc->ImportCollateral(kAdmin, {VectorFile("snp/go-sev-guest/vcek.testcer")}).ok());
  auto c = svc->SnpCollateralForReport(report, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto v = attest::VerifySnpReport(report, *c, At("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->type, "snp");
}

TEST_F(CollateralTest, TakesTheVcekFromTheNodesCertificateTable) {
  CLOISTER_REQUIRE_VECTORS();
  auto svc = OpenUnsealed();
  Bytes report = ReadVector("snp/go-sev-guest/attestation.bin");
  auto vcek = crypto::Certificate::ParseBundle(ReadVector("snp/go-sev-guest/vcek.testcer"));
  ASSERT_TRUE(vcek.ok());
  auto cas = crypto::Certificate::ParseBundle(ReadVector("snp/go-sev-guest/ask_ark_milan.pem"));
  ASSERT_TRUE(cas.ok());
  std::vector<Bytes> ders = {vcek->front()->der()};
  for (const auto& c : *cas) ders.push_back(c->der());
  Bytes table = CertificateTable(ders);
  auto c = svc->SnpCollateralForReport(report, table);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto v = attest::VerifySnpReport(report, *c, At("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(v.ok()) << v.status().ToString();

  // A table whose entry points past its end, or without its last entry.
  Bytes bad = table;
  bad[16] = 0xff;
  bad[17] = 0xff;
  EXPECT_EQ(svc->SnpCollateralForReport(report, bad).status().code(), StatusCode::kIntegrity);
  Bytes cut(table.begin(), table.begin() + 24);
  EXPECT_EQ(svc->SnpCollateralForReport(report, cut).status().code(), StatusCode::kIntegrity);
}

}  // namespace
}  // namespace cloister::cas
