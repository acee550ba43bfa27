#include "crypto/identity.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace cloister::crypto {
namespace {

TEST(IdentityTest, CertificateIsSelfSignedAndCarriesTheIdentity) {
  auto id = CreateIdentity(365);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->id.size(), 64u);
  EXPECT_EQ(*IdentityOfCertificate(id->certificate_pem), id->id);
  EXPECT_EQ(*IdentityOfPrivateKey(id->private_key_pem), id->id);

  BIO* bio = BIO_new_mem_buf(id->certificate_pem.data(), static_cast<int>(id->certificate_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(cert)), 1) << "self-signature verifies";
  EXPECT_EQ(X509_check_issued(cert, cert), X509_V_OK);
  char cn[128];
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  EXPECT_EQ(std::string(cn), "cloister identity " + id->id.substr(0, 16));
  X509_free(cert);
  BIO_free(bio);

  auto other = CreateIdentity(1);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->id, id->id);
  EXPECT_FALSE(IdentityOfCertificate("garbage").ok());
}

}  // namespace
}  // namespace cloister::crypto
