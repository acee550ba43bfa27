#include "crypto/signature.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/identity.h"
#include "crypto/ossl_ptr.h"

namespace cloister::crypto {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[32] = {};
  size_t len = 0;
  return EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &len) == 1 &&
         std::string(group, len) == "prime256v1";
}

}  // namespace

StatusOr<std::unique_ptr<P256Signer>> P256Signer::New(const SecretBytes& private_key_pem) {
  auto pem = private_key_pem.UnsafeBytes();
  OsslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  OsslPtr<EVP_PKEY> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!key) return InvalidArgument("the signing key is not a PEM private key");
  if (!IsP256(key.get())) return InvalidArgument("the signing key is not a P-256 key");
  std::unique_ptr<P256Signer> s(new P256Signer());
  ASSIGN_OR_RETURN(s->id_, IdentityOfKey(key.get()));
  s->key_ = key.release();
  return s;
}

P256Signer::~P256Signer() { EVP_PKEY_free(key_); }

StatusOr<Bytes> SignP256(const SecretBytes& private_key_pem, std::span<const uint8_t> data) {
  ASSIGN_OR_RETURN(auto signer, P256Signer::New(private_key_pem));
  return signer->Sign(data);
}

StatusOr<Bytes> P256Signer::Sign(std::span<const uint8_t> data) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data.data(), data.size()) != 1) {
    ERR_clear_error();
    return InternalError("cannot sign");
  }
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, data.data(), data.size()) != 1) {
    ERR_clear_error();
    return InternalError("cannot sign");
  }
  sig.resize(len);
  return sig;
}

StatusOr<std::shared_ptr<const P256Verifier>> P256Verifier::FromCertificate(const std::string& certificate_pem) {
  OsslPtr<BIO> bio(BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size())));
  OsslPtr<X509> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!cert) return IntegrityError("the certificate is not PEM X.509");
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (key == nullptr || !IsP256(key)) return IntegrityError("the certificate's key is not a P-256 key");
  std::shared_ptr<P256Verifier> v(new P256Verifier());
  ASSIGN_OR_RETURN(v->id_, IdentityOfKey(key));
  if (EVP_PKEY_up_ref(key) != 1) return InternalError("cannot keep the certificate's key");
  v->key_ = key;
  return std::shared_ptr<const P256Verifier>(std::move(v));
}

P256Verifier::~P256Verifier() { EVP_PKEY_free(key_); }

Status P256Verifier::Verify(std::span<const uint8_t> data, std::span<const uint8_t> signature) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  int ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_) == 1
               ? EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), data.data(), data.size())
               : -1;
  ERR_clear_error();
  if (ok != 1) return IntegrityError("the signature does not verify");
  return Status::Ok();
}

Status VerifyP256(const std::string& certificate_pem, std::span<const uint8_t> data,
                  std::span<const uint8_t> signature) {
  ASSIGN_OR_RETURN(auto verifier, P256Verifier::FromCertificate(certificate_pem));
  return verifier->Verify(data, signature);
}

}  // namespace cloister::crypto
