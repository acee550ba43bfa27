#include "las/cas_node_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace cloister::las
