#include "las/node_certificate.h"

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <ctime>

#include "crypto/identity.h"
#include "crypto/ossl_ptr.h"

namespace cloister::las {
namespace {

using crypto::OsslPtr;

OsslPtr<X509> ParsePem(const std::string& pem) {
  OsslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return OsslPtr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

bool ToUnix(const ASN1_TIME* t, int64_t& out) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return false;
  out = static_cast<int64_t>(timegm(&tm));
  return true;
}

StatusOr<CertificateValidity> ValidityOfX509(X509* cert) {
  CertificateValidity v;
  if (!ToUnix(X509_get0_notBefore(cert), v.not_before) || !ToUnix(X509_get0_notAfter(cert), v.not_after)) {
    return InvalidArgument("the certificate's validity period does not parse");
  }
  if (v.not_after < v.not_before) return InvalidArgument("the certificate's validity period is empty");
  return v;
}

}  // namespace

StatusOr<CertificateValidity> ValidityOf(const std::string& certificate_pem) {
  OsslPtr<X509> cert = ParsePem(certificate_pem);
  if (!cert) return InvalidArgument("not a PEM certificate");
  return ValidityOfX509(cert.get());
}

StatusOr<NodeCertificate> CheckNodeCertificate(const std::string& certificate_pem, const std::string& node_id,
                                               const std::string& ca_certificate_pem, const std::string& what) {
  OsslPtr<X509> cert = ParsePem(certificate_pem);
  if (!cert) return InvalidArgument(what + " is not a PEM certificate");
  auto id = crypto::IdentityOfCertificate(certificate_pem);
  if (!id.ok()) return InvalidArgument(what + ": " + id.status().message());
  if (*id != node_id) return IntegrityError(what + " is not a certificate for this node's key (node.key)");
  if (!ca_certificate_pem.empty()) {
    OsslPtr<X509> ca = ParsePem(ca_certificate_pem);
    EVP_PKEY* ca_key = ca ? X509_get0_pubkey(ca.get()) : nullptr;
    if (ca_key == nullptr) return InvalidArgument("the CA certificate that came with " + what + " does not parse");
    if (X509_verify(cert.get(), ca_key) != 1) {
      return IntegrityError(what + " is not signed by the CAS's node CA (ca.crt)");
    }
  }
  auto validity = ValidityOfX509(cert.get());
  if (!validity.ok()) return validity.status().WithContext(what);
  return NodeCertificate{certificate_pem, *validity};
}

std::string Rfc3339(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm = {};
  char buf[32];
  if (gmtime_r(&t, &tm) == nullptr || std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    return std::to_string(unix_seconds);
  }
  return buf;
}

RenewalPlan PlanRenewal(const NodeCertificate& certificate, int64_t now) {
  const CertificateValidity& validity = certificate.validity;
  // A receipt time that is not between notBefore and now is not believable
  // (a clock that jumped): then notBefore it is, which renews sooner.
  int64_t start = validity.not_before;
  if (certificate.received_at > start && certificate.received_at <= now) {
    start = std::min(certificate.received_at, validity.not_after);
  }
  const int64_t lifetime = std::max<int64_t>(validity.not_after - start, 1);
  const int64_t remaining = validity.not_after - now;
  RenewalPlan plan;
  // remaining < lifetime / 2, without rounding lifetime down.
  plan.renew_now = remaining * 2 < lifetime;
  plan.next_check_seconds = std::clamp<int64_t>(remaining / 4, kMinCheckSeconds, kMaxCheckSeconds);
  return plan;
}

}  // namespace cloister::las
