#include "attest/hw_policy.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "crypto/x509.h"

namespace cloister::attest {
namespace {

bool Has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Long hex values are shortened in reasons: enough to recognise them.
std::string Short(const std::string& v) { return v.size() > 24 ? v.substr(0, 16) + "..." : v; }

bool ParseDecimal(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next < v) return false;
    v = next;
  }
  *out = v;
  return true;
}

// The tolerations a TCB status needs; empty for UpToDate; nullopt for a
// status nothing can make acceptable.
std::optional<std::vector<std::string>> Needed(TcbStatus s) {
  switch (s) {
    case TcbStatus::kUpToDate:
      return std::vector<std::string>{};
    case TcbStatus::kSWHardeningNeeded:
      return std::vector<std::string>{"sw-hardening-needed"};
    case TcbStatus::kConfigurationNeeded:
      return std::vector<std::string>{"configuration-needed"};
    case TcbStatus::kConfigurationAndSWHardeningNeeded:
      return std::vector<std::string>{"configuration-needed", "sw-hardening-needed"};
    case TcbStatus::kOutOfDate:
    case TcbStatus::kTDRelaunchAdvised:
      return std::vector<std::string>{"outdated-tcb"};
    case TcbStatus::kOutOfDateConfigurationNeeded:
    case TcbStatus::kTDRelaunchAdvisedConfigurationNeeded:
      return std::vector<std::string>{"outdated-tcb", "configuration-needed"};
    default:
      return std::nullopt;
  }
}

}  // namespace

HardwareDecision JudgeHardwareVerdict(const HardwareVerdict& v, const HardwareRequirements& r, int64_t now_unix) {
  HardwareDecision d;
  std::vector<std::string> refusals, tolerated;

  if (auto it = r.expect.find(v.type); it != r.expect.end()) {
    for (const auto& [name, accepted] : it->second.one_of) {
      const std::string* value = v.Find(name);
      if (value == nullptr) {
        refusals.push_back("the evidence has no " + name + ", which the policy expects");
        continue;
      }
      bool ok = std::any_of(accepted.begin(), accepted.end(),
                            [&](const std::string& a) { return AsciiLower(a) == AsciiLower(*value); });
      if (!ok) refusals.push_back(name + " " + Short(*value) + " is not one the policy accepts");
    }
    for (const auto& [name, minimum] : it->second.at_least) {
      const std::string* value = v.Find(name);
      uint64_t n = 0;
      if (value == nullptr || !ParseDecimal(*value, &n)) {
        refusals.push_back("the evidence has no number " + name + ", for which the policy sets a minimum");
      } else if (n < minimum) {
        refusals.push_back(name + " " + *value + " is below the policy's minimum " + std::to_string(minimum));
      }
    }
  }

  if (v.debug) {
    if (Has(r.tolerate, "debug")) {
      tolerated.push_back("debug mode tolerated");
    } else {
      refusals.push_back("the " + v.type + " TEE runs in debug mode (its host can read its memory); not tolerated");
    }
  }

  if (v.type == "sgx" || v.type == "tdx") {
    if (v.tcb_status == TcbStatus::kNotEvaluated) {
      refusals.push_back("the TCB was not evaluated (no collateral)");
    } else if (!v.revocation_checked) {
      refusals.push_back("revocation was not checked (no CRLs)");
    } else {
      auto needed = Needed(v.tcb_status);
      const std::string status(TcbStatusName(v.tcb_status));
      if (!needed) {
        refusals.push_back("TCB status " + status + " is never accepted");
      } else {
        std::vector<std::string> missing;
        for (const std::string& t : *needed) {
          if (!Has(r.tolerate, t)) missing.push_back(t);
        }
        if (!missing.empty()) {
          std::string list;
          for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
          refusals.push_back("TCB status " + status + " needs tolerate: [" + list + "]");
        } else if (!needed->empty()) {
          tolerated.push_back("TCB status " + status + " tolerated");
        }
        if (!needed->empty()) {
          for (const std::string& a : v.advisories) {
            if (!Has(r.ignore_advisories, a)) refusals.push_back("advisory " + a + " is not in ignore_advisories");
          }
        }
      }
    }
  }

  if (v.collateral_expires_unix != 0 && now_unix > v.collateral_expires_unix) {
    const std::string when = crypto::FormatRfc3339(v.collateral_expires_unix);
    if (Has(r.tolerate, "outdated-tcb")) {
      tolerated.push_back("collateral expired at " + when + " tolerated");
    } else {
      refusals.push_back("the collateral expired at " + when + " (tolerate: [outdated-tcb] accepts that)");
    }
  }

  d.accepted = refusals.empty();
  d.reasons = d.accepted ? std::move(tolerated) : std::move(refusals);
  return d;
}

}  // namespace cloister::attest
