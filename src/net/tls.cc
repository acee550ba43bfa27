#include "net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>
#include <fstream>
#include <memory>

#include "crypto/ossl_ptr.h"
#include "base/bytes.h"
#include "crypto/crypto.h"
#include "os/secret_file.h"

namespace cloister::net {
namespace {

template <typename T>
using Ptr = crypto::OsslPtr<T>;

// The DER SubjectPublicKeyInfo is taken as the certificate carries it:
// re-encoding the key (i2d_PUBKEY) would give the same bytes but costs an
// encoder context under OpenSSL's global locks, on every request.
std::optional<std::string> KeyHashOf(X509* cert) {
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(cert);
  if (spki == nullptr) return std::nullopt;
  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(spki, &der);
  if (n <= 0) return std::nullopt;
  crypto::Digest d = crypto::Sha256(std::span<const uint8_t>(der, static_cast<size_t>(n)));
  OPENSSL_free(der);
  return HexEncode(d);
}

std::string OpensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

Status UseIdentity(SSL_CTX& ctx, const TlsIdentity& id) {
  Ptr<BIO> cbio(BIO_new_mem_buf(id.certificate_pem.data(), static_cast<int>(id.certificate_pem.size())));
  auto kb = id.private_key_pem.UnsafeBytes();
  Ptr<BIO> kbio(BIO_new_mem_buf(kb.data(), static_cast<int>(kb.size())));
  if (!cbio || !kbio) return InternalError("out of memory");
  Ptr<X509> cert(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument("the certificate is not PEM X.509");
  if (!key) return InvalidArgument("the private key is not a PEM private key");
  if (SSL_CTX_use_certificate(&ctx, cert.get()) != 1 || SSL_CTX_use_PrivateKey(&ctx, key.get()) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    return InvalidArgument("the certificate and the private key do not match: " + OpensslError());
  }
  return Status::Ok();
}

// The server accepts any certificate: possession of its key is proven by the
// handshake (TLS 1.3 CertificateVerify, which OpenSSL checks whatever this
// says), and the identity is the key, not a name an issuer vouched for.
// Installed as the whole verification (SSL_CTX_set_cert_verify_callback),
// so OpenSSL does not build and check a chain that means nothing here.
int AcceptAnyClient(X509_STORE_CTX*, void*) { return 1; }

// Where a context keeps its pin, so that the pin is freed with the context.
int PinIndex() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);
      });
  return index;
}

thread_local bool pin_mismatch = false;

// The whole verification of the server (SSL_CTX_set_cert_verify_callback,
// `arg` the pin): the leaf's key hash must be the pinned one. Chains and
// names mean nothing here; the pin is the whole trust decision, so OpenSSL
// builds no chain. The server's CertificateVerify is checked regardless.
int VerifyPinned(X509_STORE_CTX* store, void* arg) {
  auto* pin = static_cast<const std::string*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (pin == nullptr || leaf == nullptr) return 0;
  auto got = KeyHashOf(leaf);
  if (!got || got->size() != pin->size() || !ConstantTimeEquals(AsBytes(*got), AsBytes(*pin))) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    pin_mismatch = true;
    return 0;
  }
  X509_STORE_CTX_set_error(store, X509_V_OK);
  return 1;
}

}  // namespace

StatusOr<TlsIdentity> LoadTlsIdentity(const std::string& dir, const std::string& stem) {
  TlsIdentity id;
  std::ifstream crt(dir + "/" + stem + ".crt");
  if (!crt) return NotFound("no certificate " + dir + "/" + stem + ".crt");
  id.certificate_pem.assign(std::istreambuf_iterator<char>(crt), {});
  ASSIGN_OR_RETURN(id.private_key_pem, os::ReadPrivateFile(dir + "/" + stem + ".key", 64 * 1024));
  return id;
}

Status ConfigureServerContext(SSL_CTX& ctx, const TlsIdentity& id) {
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_3_VERSION) != 1) return InternalError("cannot require TLS 1.3");
  RETURN_IF_ERROR(UseIdentity(ctx, id));
  SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(&ctx, AcceptAnyClient, nullptr);
  // No renegotiation exists in TLS 1.3; tickets stay on for keep-alive
  // reconnects. Compression is off by default in OpenSSL 3.
  return Status::Ok();
}

std::optional<std::string> PeerIdentity(const SSL* ssl) {
  if (ssl == nullptr) return std::nullopt;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return std::nullopt;
  return KeyHashOf(cert);
}

std::optional<std::string> PeerCertificatePem(const SSL* ssl) {
  if (ssl == nullptr) return std::nullopt;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return std::nullopt;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return std::nullopt;
  std::optional<std::string> out;
  if (PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    out = std::string(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

Status ConfigureClientContext(SSL_CTX& ctx, const std::string& pinned_key_hash, const TlsIdentity* client) {
  auto pin = HexDecode(pinned_key_hash);
  if (!pin || pin->size() != 32) {
    return InvalidArgument("the CAS key must be 64 hex digits (the SHA-256 of its public key)");
  }
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_3_VERSION) != 1) return InternalError("cannot require TLS 1.3");
  if (client != nullptr) RETURN_IF_ERROR(UseIdentity(ctx, *client));
  auto* stored = new std::string(HexEncode(*pin));  // lower case, as KeyHashOf writes it
  if (SSL_CTX_set_ex_data(&ctx, PinIndex(), stored) != 1) {
    delete stored;
    return InternalError("cannot attach the CAS key pin");
  }
  SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(&ctx, VerifyPinned, stored);
  return Status::Ok();
}

bool TakePinMismatch() {
  bool was = pin_mismatch;
  pin_mismatch = false;
  return was;
}

}  // namespace cloister::net
