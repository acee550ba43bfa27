#include "crypto/identity.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "crypto/ossl_ptr.h"
#include "crypto/crypto.h"

namespace cloister::crypto {
namespace {

template <typename T>
using Ptr = OsslPtr<T>;

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

StatusOr<std::string> IdentityOfKey(const EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return InternalError("cannot encode the public key");
  Digest d = Sha256(std::span<const uint8_t>(der, static_cast<size_t>(n)));
  OPENSSL_free(der);
  return HexEncode(d);
}

StatusOr<NewIdentity> CreateIdentity(int days) {
  Ptr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return InternalError("P-256 key generation failed");
  NewIdentity out;
  ASSIGN_OR_RETURN(out.id, IdentityOfKey(key.get()));

  Ptr<X509> cert(X509_new());
  uint8_t serial[16];
  RETURN_IF_ERROR(RandomBytes(serial));
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  std::string cn = "cloister identity " + out.id.substr(0, 16);
  X509_NAME* name = X509_get_subject_name(cert.get());
  bool ok = cert && bn && X509_set_version(cert.get(), 2) == 1 &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400) != nullptr &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()),
                                       -1, -1, 0) == 1 &&
            X509_set_issuer_name(cert.get(), name) == 1 && X509_set_pubkey(cert.get(), key.get()) == 1 &&
            X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  BN_free(bn);
  if (!ok) return InternalError("certificate creation failed");

  Ptr<BIO> cbio(BIO_new(BIO_s_mem()));
  Ptr<BIO> kbio(BIO_new(BIO_s_secmem()));
  if (!cbio || !kbio || PEM_write_bio_X509(cbio.get(), cert.get()) != 1 ||
      PEM_write_bio_PKCS8PrivateKey(kbio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return InternalError("PEM encoding failed");
  }
  out.certificate_pem = BioString(cbio.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(kbio.get(), &data);
  out.private_key_pem = SecretBytes(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n));
  return out;
}

StatusOr<std::string> IdentityOfCertificate(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument("not a PEM certificate");
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (key == nullptr) return InvalidArgument("the certificate has no usable public key");
  return IdentityOfKey(key);
}

StatusOr<std::string> IdentityOfPrivateKey(const SecretBytes& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.UnsafeBytes().data(), static_cast<int>(pem.size())));
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return InvalidArgument("not a PEM private key");
  return IdentityOfKey(key.get());
}

}  // namespace cloister::crypto
