#include "attest/hardware.h"

#include <array>
#include <utility>

namespace cloister::attest {
namespace {

constexpr std::array<std::pair<TcbStatus, std::string_view>, 11> kNames = {{
    {TcbStatus::kUpToDate, "UpToDate"},
    {TcbStatus::kSWHardeningNeeded, "SWHardeningNeeded"},
    {TcbStatus::kConfigurationNeeded, "ConfigurationNeeded"},
    {TcbStatus::kConfigurationAndSWHardeningNeeded, "ConfigurationAndSWHardeningNeeded"},
    {TcbStatus::kOutOfDate, "OutOfDate"},
    {TcbStatus::kOutOfDateConfigurationNeeded, "OutOfDateConfigurationNeeded"},
    {TcbStatus::kTDRelaunchAdvised, "TDRelaunchAdvised"},
    {TcbStatus::kTDRelaunchAdvisedConfigurationNeeded, "TDRelaunchAdvisedConfigurationNeeded"},
    {TcbStatus::kRevoked, "Revoked"},
    {TcbStatus::kNotSupported, "NotSupported"},
    {TcbStatus::kNotEvaluated, "NotEvaluated"},
}};

}  // namespace

std::string_view TcbStatusName(TcbStatus s) {
  for (const auto& [status, name] : kNames) {
    if (status == s) return name;
  }
  return "Unknown";
}

StatusOr<TcbStatus> ParseTcbStatus(std::string_view name) {
  for (const auto& [status, n] : kNames) {
    // NotSupported and NotEvaluated are ours, not values Intel's JSON uses.
    if (n == name && status != TcbStatus::kNotSupported && status != TcbStatus::kNotEvaluated) return status;
  }
  return IntegrityError("unknown TCB status \"" + std::string(name.substr(0, 64)) + "\"");
}

const std::string* HardwareVerdict::Find(std::string_view name) const {
  for (const Claim& c : claims) {
    if (c.name == name) return &c.value;
  }
  return nullptr;
}

}  // namespace cloister::attest
