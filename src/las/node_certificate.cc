#include "las/node_certificate.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>

#include "crypto/certificate.h"
#include "crypto/ossl_ptr.h"

namespace cloister::las {
namespace {

using crypto::OsslPtr;

OsslPtr<X509> ParsePem(const std::string& pem) {
  OsslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return OsslPtr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

StatusOr<CertificateValidity> ValidityOfFacts(const crypto::CertificateFacts& f) {
  if (f.not_after_unix < f.not_before_unix) return InvalidArgument("the certificate's validity period is empty");
  return CertificateValidity{f.not_before_unix, f.not_after_unix};
}

}  // namespace

StatusOr<CertificateValidity> ValidityOf(const std::string& certificate_pem) {
  ASSIGN_OR_RETURN(crypto::CertificateFacts facts, crypto::ReadCertificate(certificate_pem));
  return ValidityOfFacts(facts);
}

StatusOr<NodeCertificate> CheckNodeCertificate(const std::string& certificate_pem, const std::string& node_id,
                                               const std::string& ca_certificate_pem, const std::string& what) {
  OsslPtr<X509> cert = ParsePem(certificate_pem);
  if (!cert) return InvalidArgument(what + " is not a PEM certificate");
  auto facts = crypto::ReadCertificate(certificate_pem);
  if (!facts.ok()) return InvalidArgument(what + ": " + facts.status().message());
  if (facts->key_id != node_id) return IntegrityError(what + " is not a certificate for this node's key (node.key)");
  if (!ca_certificate_pem.empty()) {
    OsslPtr<X509> ca = ParsePem(ca_certificate_pem);
    EVP_PKEY* ca_key = ca ? X509_get0_pubkey(ca.get()) : nullptr;
    if (ca_key == nullptr) return InvalidArgument("the CA certificate that came with " + what + " does not parse");
    if (X509_verify(cert.get(), ca_key) != 1) {
      return IntegrityError(what + " is not signed by the CAS's node CA (ca.crt)");
    }
  }
  auto validity = ValidityOfFacts(*facts);
  if (!validity.ok()) return validity.status().WithContext(what);
  return NodeCertificate{certificate_pem, *validity};
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
