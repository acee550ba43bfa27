// The event log of a TDX guest (the ACPI CCEL table's log area): what the
// firmware, boot loader and kernel measured into RTMR0-3, one event at a
// time. Replaying it explains a quote's RTMRs: a verifier that trusts the
// quote (dcap.h) and finds that the log replays to the same RTMRs can judge
// the individual events (a kernel's hash, its command line) instead of
// opaque 48-byte values.
//
// Format: TCG PC Client Platform Firmware Profile, crypto-agile log. The
// first event is in the SHA-1 layout and carries "Spec ID Event03" with the
// digest algorithms and sizes the rest uses; every further event is
// {MR index u32, type u32, digest count u32, {algorithm u16, digest}*,
// size u32, data}, little-endian. In a CCEL log the index is the TDX
// measurement register: 0 MRTD, 1-4 RTMR0-3. An RTMR starts at zero and
// each event extends it: RTMR = SHA-384(RTMR || event's SHA-384 digest).
// EV_NO_ACTION events extend nothing. The log area ends in 0xFF (or zero)
// filler. Pure; every length is checked against the bytes there are.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "attest/hardware.h"
#include "base/bytes.h"
#include "cloister/status.h"

namespace cloister::attest {

struct CcelEvent {
  uint32_t mr_index = 0;  // 0 MRTD, 1-4 RTMR0-3
  uint32_t type = 0;      // EV_* of the TCG profile
  Bytes sha384;           // empty if the event has no SHA-384 digest
  Bytes data;
};

struct CcelReplay {
  std::vector<CcelEvent> events;
  std::array<std::array<uint8_t, 48>, 4> rtmr{};  // RTMR0-3 after every event
};

// kIntegrity, naming the event and field, for a malformed log; also when an
// event that extends an RTMR has no SHA-384 digest.
StatusOr<CcelReplay> ReplayCcel(std::span<const uint8_t> log);

// Does the replay give the RTMRs of a verified TDX quote? kIntegrity naming
// the first RTMR that differs (a log that does not belong to the quote, or
// was changed). On success adds a line to `verdict.checks`.
Status CheckCcelMatchesQuote(const CcelReplay& replay, HardwareVerdict& verdict);

}  // namespace cloister::attest
