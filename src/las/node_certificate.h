// The node certificate the CAS issues to a LAS (docs/protocol.md, section
// 4): reading its validity, checking it belongs to the node key and to the
// CA it came with, and deciding when to renew it. All pure; "now" is always
// a parameter.
#pragma once

#include <cstdint>
#include <string>

#include "base/clock.h"  // Rfc3339, for the messages about validity
#include "cloister/status.h"

namespace cloister::las {

// Seconds since the UNIX epoch, both inclusive bounds as X.509 has them.
struct CertificateValidity {
  int64_t not_before = 0;
  int64_t not_after = 0;
};

// A node certificate as the LAS holds it: the PEM it puts into evidence,
// the validity it checks before signing, and when the LAS received it (the
// modification time of node.crt for one read from disk; 0 if unknown).
struct NodeCertificate {
  std::string pem;
  CertificateValidity validity;
  int64_t received_at = 0;
};

// The validity period of a PEM certificate.
StatusOr<CertificateValidity> ValidityOf(const std::string& certificate_pem);

// Parses `certificate_pem`, checks that its public key is the node key
// (`node_id` = hex SHA-256 of the key's DER SubjectPublicKeyInfo), and that
// its signature verifies under the key of `ca_certificate_pem` (when that is
// not empty). `what` names the certificate in errors ("node.crt").
StatusOr<NodeCertificate> CheckNodeCertificate(const std::string& certificate_pem, const std::string& node_id,
                                               const std::string& ca_certificate_pem, const std::string& what);


// When to renew (docs/protocol.md, section 4: when less than half of the
// certificate's validity is left) and when to look again.
//
// The validity counts from when the certificate was received, not from its
// notBefore, whenever that is later: the CAS backdates notBefore (by five
// minutes) to tolerate clocks that are behind, and counting from there
// would make a certificate issued for less than ten minutes look more than
// half used up the moment it arrives, so it would be renewed at every
// check. For a day-long certificate the difference is a few minutes. A
// receipt time after `now` (a clock that jumped back) is ignored.
struct RenewalPlan {
  bool renew_now = false;
  int64_t next_check_seconds = 60;
};

// The check interval is a quarter of what is left, between 5 and 60
// seconds: often enough to renew well before expiry even for short-lived
// certificates, rarely enough that a failing CAS is not hammered.
inline constexpr int64_t kMinCheckSeconds = 5;
inline constexpr int64_t kMaxCheckSeconds = 60;
RenewalPlan PlanRenewal(const NodeCertificate& certificate, int64_t now);

}  // namespace cloister::las
