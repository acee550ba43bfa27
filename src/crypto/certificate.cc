#include "crypto/certificate.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/ossl_ptr.h"

namespace cloister::crypto {
namespace {

template <typename T>
using Ptr = OsslPtr<T>;

StatusOr<Ptr<X509>> ParsePem(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return InvalidArgument("not a PEM certificate");
  return cert;
}

StatusOr<Ptr<EVP_PKEY>> ParseKey(const SecretBytes& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.UnsafeBytes().data(), static_cast<int>(pem.size())));
  Ptr<EVP_PKEY> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return InvalidArgument("not a PEM private key");
  return key;
}

std::string PemOf(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Status SetName(X509* cert, const std::string& cn, bool issuer_too) {
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                 -1, 0) != 1) {
    return InvalidArgument("the common name is not usable in a certificate");
  }
  if (issuer_too && X509_set_issuer_name(cert, name) != 1) return InternalError("cannot set the issuer");
  return Status::Ok();
}

Status SetSerialAndValidity(X509* cert, int64_t not_before, int64_t not_after) {
  uint8_t serial[16];
  RETURN_IF_ERROR(RandomBytes(serial));
  serial[0] &= 0x7f;  // a positive INTEGER
  Ptr<BIGNUM> bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (!bn || X509_set_version(cert, X509_VERSION_3) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr ||
      ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(not_after)) == nullptr) {
    return InternalError("cannot set the serial number and validity");
  }
  return Status::Ok();
}

Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return InternalError("cannot add a certificate extension");
  return Status::Ok();
}

int64_t UnixOf(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

CertificateFacts FactsOf(X509* cert, std::string key_id) {
  CertificateFacts f;
  f.key_id = std::move(key_id);
  f.not_before_unix = UnixOf(X509_get0_notBefore(cert));
  f.not_after_unix = UnixOf(X509_get0_notAfter(cert));
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0) f.common_name = cn;
  return f;
}

}  // namespace

StatusOr<NewIdentity> CreateCertificateAuthority(const std::string& common_name, int64_t now_unix, int days) {
  Ptr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return InternalError("P-256 key generation failed");
  Ptr<X509> cert(X509_new());
  if (!cert) return InternalError("out of memory");
  RETURN_IF_ERROR(SetSerialAndValidity(cert.get(), now_unix - 300, now_unix + static_cast<int64_t>(days) * 86400));
  RETURN_IF_ERROR(SetName(cert.get(), common_name, /*issuer_too=*/true));
  if (X509_set_pubkey(cert.get(), key.get()) != 1) return InternalError("cannot set the public key");
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return InternalError("cannot sign the CA certificate");
  NewIdentity out;
  ASSIGN_OR_RETURN(out.id, IdentityOfKey(key.get()));
  out.certificate_pem = PemOf(cert.get());
  Ptr<BIO> kbio(BIO_new(BIO_s_secmem()));
  if (!kbio || PEM_write_bio_PKCS8PrivateKey(kbio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return InternalError("PEM encoding failed");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(kbio.get(), &data);
  out.private_key_pem = SecretBytes(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n));
  return out;
}

StatusOr<std::string> IssueCertificate(const SecretBytes& ca_key_pem, const std::string& ca_certificate_pem,
                                       const std::string& subject_certificate_pem, const std::string& common_name,
                                       int64_t not_before_unix, int64_t not_after_unix) {
  ASSIGN_OR_RETURN(Ptr<EVP_PKEY> ca_key, ParseKey(ca_key_pem));
  ASSIGN_OR_RETURN(Ptr<X509> ca, ParsePem(ca_certificate_pem));
  ASSIGN_OR_RETURN(Ptr<X509> subject, ParsePem(subject_certificate_pem));
  EVP_PKEY* subject_key = X509_get0_pubkey(subject.get());
  if (subject_key == nullptr) return InvalidArgument("the subject certificate has no usable public key");
  Ptr<X509> cert(X509_new());
  if (!cert) return InternalError("out of memory");
  RETURN_IF_ERROR(SetSerialAndValidity(cert.get(), not_before_unix, not_after_unix));
  RETURN_IF_ERROR(SetName(cert.get(), common_name, /*issuer_too=*/false));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return InternalError("cannot set the issuer or the public key");
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) return InternalError("cannot sign the certificate");
  return PemOf(cert.get());
}

StatusOr<CertificateFacts> ReadCertificate(const std::string& certificate_pem) {
  ASSIGN_OR_RETURN(Ptr<X509> cert, ParsePem(certificate_pem));
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (key == nullptr) return InvalidArgument("the certificate has no usable public key");
  ASSIGN_OR_RETURN(std::string id, IdentityOfKey(key));
  return FactsOf(cert.get(), std::move(id));
}

StatusOr<Bytes> PublicKeyDerOfCertificate(const std::string& certificate_pem) {
  ASSIGN_OR_RETURN(Ptr<X509> cert, ParsePem(certificate_pem));
  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  if (n <= 0) return InvalidArgument("the certificate has no encodable public key");
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

StatusOr<CertificateFacts> VerifyIssuedBy(const std::string& certificate_pem, const std::string& ca_certificate_pem,
                                          int64_t now_unix) {
  ASSIGN_OR_RETURN(Ptr<X509> cert, ParsePem(certificate_pem));
  ASSIGN_OR_RETURN(Ptr<X509> ca, ParsePem(ca_certificate_pem));
  EVP_PKEY* ca_key = X509_get0_pubkey(ca.get());
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (ca_key == nullptr || key == nullptr) return InvalidArgument("a certificate has no usable public key");
  if (X509_verify(cert.get(), ca_key) != 1) return IntegrityError("the certificate was not signed by this CA");
  ASSIGN_OR_RETURN(std::string id, IdentityOfKey(key));
  CertificateFacts f = FactsOf(cert.get(), std::move(id));
  if (now_unix < f.not_before_unix) return FailedPrecondition("the certificate is not yet valid");
  if (now_unix > f.not_after_unix) return FailedPrecondition("the certificate expired");
  return f;
}

}  // namespace cloister::crypto
