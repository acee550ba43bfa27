#include "las/cas_node_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "crypto/identity.h"

namespace cloister::las {
namespace {

using nlohmann::json;

SecretBytes Secret(const std::string& s) {
  return SecretBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

const std::string kHex64(64, 'a');

TEST(JoinTokenTest, AcceptsATokenWithSurroundingWhitespace) {
  auto t = ParseJoinToken(Secret("  cloister-join-v1:" + kHex64 + "\n"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->Equals(Secret("cloister-join-v1:" + kHex64)));
}

TEST(JoinTokenTest, RefusesOtherContentWithoutQuotingIt) {
  for (const std::string& bad : {std::string(""), "cloister-join-v1:" + kHex64.substr(1),
                                "cloister-join-v1:" + kHex64 + "0", "cloister-join-v2:" + kHex64,
                                "cloister-join-v1:" + kHex64.substr(1) + "g", "cloister-join-v1: " + kHex64.substr(1),
                                "cloister-unseal-key-v1:" + kHex64}) {
    auto t = ParseJoinToken(Secret(bad));
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().message().find(kHex64.substr(0, 8)), std::string::npos);
  }
}

TEST(NodeNameTest, ValidatesAndSanitizes) {
  EXPECT_TRUE(IsValidNodeName("worker-1.example_a"));
  EXPECT_FALSE(IsValidNodeName(""));
  EXPECT_FALSE(IsValidNodeName("with space"));
  EXPECT_FALSE(IsValidNodeName("q\"uote"));
  EXPECT_FALSE(IsValidNodeName(std::string(65, 'a')));
  EXPECT_TRUE(IsValidNodeName(std::string(64, 'a')));
  EXPECT_EQ(SanitizeNodeName("host name/ü"), "host-name---");
  EXPECT_EQ(SanitizeNodeName(std::string(100, 'h')), std::string(64, 'h'));
  EXPECT_EQ(SanitizeNodeName(""), "node");
  EXPECT_TRUE(IsValidNodeName(SanitizeNodeName("a\"b\\c\n")));
}

net::HttpResponse Response(int status, const json& body) {
  return net::HttpResponse{status, body.dump(), "application/json"};
}

TEST(IssuedCertificateTest, AcceptsACertificateForThisNodeFromItsCa) {
  auto node = crypto::CreateIdentity(1);
  ASSERT_TRUE(node.ok());
  // Self-signed: the node's own certificate stands in for one the CA signed.
  json body = {{"node_id", node->id},
               {"certificate", node->certificate_pem},
               {"ca_certificate", node->certificate_pem},
               {"expires", "2030-01-01T00:00:00Z"}};
  auto issued = ParseIssuedCertificate(Response(200, body), node->id);
  ASSERT_TRUE(issued.ok()) << issued.status().ToString();
  EXPECT_EQ(issued->certificate.pem, node->certificate_pem);
  EXPECT_EQ(issued->ca_certificate_pem, node->certificate_pem);
  EXPECT_GT(issued->certificate.validity.not_after, issued->certificate.validity.not_before);
}

TEST(IssuedCertificateTest, RefusesCertificatesThatAreNotThisNodesOrNotFromTheCa) {
  auto node = crypto::CreateIdentity(1);
  auto other = crypto::CreateIdentity(1);
  ASSERT_TRUE(node.ok() && other.ok());
  json wrong_id = {{"node_id", other->id},
                   {"certificate", node->certificate_pem},
                   {"ca_certificate", node->certificate_pem}};
  json wrong_cert = {{"node_id", node->id},
                     {"certificate", other->certificate_pem},
                     {"ca_certificate", other->certificate_pem}};
  json wrong_ca = {{"node_id", node->id},
                   {"certificate", node->certificate_pem},
                   {"ca_certificate", other->certificate_pem}};
  json missing = {{"node_id", node->id}, {"certificate", node->certificate_pem}};
  json not_strings = {{"node_id", 5}, {"certificate", true}, {"ca_certificate", nullptr}};
  for (const json& body : {wrong_id, wrong_cert, wrong_ca, missing, not_strings, json::array()}) {
    auto r = ParseIssuedCertificate(Response(200, body), node->id);
    ASSERT_FALSE(r.ok()) << body.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kIntegrity) << r.status().ToString();
  }
  EXPECT_FALSE(ParseIssuedCertificate(net::HttpResponse{200, "not json", ""}, node->id).ok());
}

TEST(IssuedCertificateTest, CarriesTheCasErrorText) {
  auto r401 = ParseIssuedCertificate(Response(401, {{"error", "the join token is not valid"}}), "id");
  EXPECT_EQ(r401.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(r401.status().message(), "the join token is not valid");
  auto r403 = ParseIssuedCertificate(Response(403, {{"error", "node is revoked"}}), "id");
  EXPECT_EQ(r403.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r403.status().message(), "node is revoked");
  auto r503 = ParseIssuedCertificate(net::HttpResponse{503, "<html>", "text/html"}, "id");
  EXPECT_EQ(r503.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r503.status().message().find("503"), std::string::npos);
  auto odd = ParseIssuedCertificate(Response(401, {{"error", 42}}), "id");
  EXPECT_EQ(odd.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(odd.status().message(), "HTTP 401");
}

TEST(NodeChallengeTest, AcceptsTheAnswerOfEachType) {
  const std::string hex = std::string(62, '0') + "ff";
  auto tdx = ParseNodeChallenge(Response(200, {{"challenge", hex}, {"expires", 1763900000}}), "tdx");
  ASSERT_TRUE(tdx.ok()) << tdx.status().ToString();
  EXPECT_EQ(tdx->challenge.size(), 32u);
  EXPECT_EQ(tdx->challenge.back(), 0xff);
  EXPECT_EQ(tdx->expires, 1763900000);
  EXPECT_TRUE(tdx->credential_blob.empty());
  auto tpm = ParseNodeChallenge(Response(200, {{"challenge", hex},
                                               {"expires", 1763900000},
                                               {"credential_blob", Base64Encode(Bytes{0, 2, 1, 2})},
                                               {"encrypted_secret", Base64Encode(Bytes{0, 1, 9})}}),
                                "tpm");
  ASSERT_TRUE(tpm.ok()) << tpm.status().ToString();
  EXPECT_EQ(tpm->credential_blob, (Bytes{0, 2, 1, 2}));
  EXPECT_EQ(tpm->encrypted_secret, (Bytes{0, 1, 9}));
}

TEST(NodeChallengeTest, RefusesAnythingElse) {
  const std::string hex(64, 'a');
  const std::string blob = Base64Encode(Bytes{0, 1, 2});
  struct Case {
    json body;
    std::string type;
  };
  for (const Case& c : std::vector<Case>{
           {json::array(), "tdx"},
           {{{"expires", 1}}, "tdx"},
           {{{"challenge", hex.substr(2)}, {"expires", 1}}, "tdx"},
           {{{"challenge", hex + "aa"}, {"expires", 1}}, "snp"},
           {{{"challenge", std::string(64, 'g')}, {"expires", 1}}, "snp"},
           {{{"challenge", 5}, {"expires", 1}}, "snp"},
           {{{"challenge", hex}}, "tdx"},
           {{{"challenge", hex}, {"expires", "1"}}, "tdx"},
           {{{"challenge", hex}, {"expires", 0}}, "tdx"},
           {{{"challenge", hex}, {"expires", 1.5}}, "tdx"},
           {{{"challenge", hex}, {"expires", 1}}, "tpm"},
           {{{"challenge", hex}, {"expires", 1}, {"credential_blob", blob}}, "tpm"},
           {{{"challenge", hex}, {"expires", 1}, {"credential_blob", blob}, {"encrypted_secret", "not base64!"}},
            "tpm"},
           {{{"challenge", hex}, {"expires", 1}, {"credential_blob", ""}, {"encrypted_secret", blob}}, "tpm"},
           {{{"challenge", hex}, {"expires", 1}, {"credential_blob", blob}, {"encrypted_secret", blob}}, "tdx"},
       }) {
    auto r = ParseNodeChallenge(Response(200, c.body), c.type);
    ASSERT_FALSE(r.ok()) << c.type << " " << c.body.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kIntegrity) << r.status().ToString();
    EXPECT_EQ(r.status().message().rfind("the CAS's challenge is malformed: ", 0), 0u) << r.status().message();
  }
  EXPECT_FALSE(ParseNodeChallenge(net::HttpResponse{200, "not json", ""}, "tdx").ok());
}

TEST(NodeChallengeTest, CarriesTheCasRefusal) {
  auto r403 = ParseNodeChallenge(
      Response(403, {{"error", "tpm: the EK certificate \"x\" does not chain to a trusted EK CA"}}), "tpm");
  EXPECT_EQ(r403.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r403.status().message(), "challenge refused: tpm: the EK certificate \"x\" does not chain to a trusted EK CA");
  auto r401 = ParseNodeChallenge(Response(401, {{"error", "no client certificate"}}), "tdx");
  EXPECT_EQ(r401.status().code(), StatusCode::kUnauthenticated);
  auto r429 = ParseNodeChallenge(Response(429, {{"error", "too many open challenges"}}), "tdx");
  EXPECT_EQ(r429.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r429.status().message(), "challenge refused: too many open challenges (HTTP 429)");
}

}  // namespace
}  // namespace cloister::las
