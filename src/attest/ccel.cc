#include "attest/ccel.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "crypto/x509.h"

namespace cloister::attest {
namespace {

constexpr uint16_t kAlgSha384 = 0x000C;
constexpr uint32_t kEvNoAction = 0x00000003;
constexpr size_t kMaxEventData = 1 << 20;
constexpr size_t kMaxEvents = 1 << 16;
constexpr char kSpecId[] = "Spec ID Event03";

uint32_t U32(std::span<const uint8_t> b, size_t at) { return LoadU32(b.data() + at); }
uint16_t U16(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] | b[at + 1] << 8); }

bool AllFiller(std::span<const uint8_t> rest) {
  return std::all_of(rest.begin(), rest.end(), [](uint8_t b) { return b == 0xFF; }) ||
         std::all_of(rest.begin(), rest.end(), [](uint8_t b) { return b == 0x00; });
}

}  // namespace

StatusOr<CcelReplay> ReplayCcel(std::span<const uint8_t> log) {
  // The first event, SHA-1 layout: index, type, 20-byte digest, size, data.
  if (log.size() < 32) return IntegrityError("event log: shorter than its first event");
  const uint32_t first_type = U32(log, 4);
  const uint32_t first_size = U32(log, 28);
  if (first_type != kEvNoAction || first_size < 24 + 4 || first_size > log.size() - 32) {
    return IntegrityError("event log: the first event is not a Spec ID event");
  }
  std::span<const uint8_t> spec = log.subspan(32, first_size);
  if (std::memcmp(spec.data(), kSpecId, sizeof kSpecId) != 0) {
    return IntegrityError("event log: the first event is not \"Spec ID Event03\" (not a crypto-agile log)");
  }
  const uint32_t algorithms = U32(spec, 24);
  if (algorithms == 0 || algorithms > 16 || 28 + 4 * static_cast<size_t>(algorithms) > spec.size()) {
    return IntegrityError("event log: bad algorithm count in the Spec ID event");
  }
  std::map<uint16_t, size_t> digest_size;
  for (uint32_t i = 0; i < algorithms; ++i) {
    uint16_t alg = U16(spec, 28 + 4 * i);
    uint16_t size = U16(spec, 30 + 4 * i);
    if (size == 0 || size > 64 || !digest_size.emplace(alg, size).second) {
      return IntegrityError("event log: bad digest size in the Spec ID event");
    }
  }
  auto sha384 = digest_size.find(kAlgSha384);
  if (sha384 == digest_size.end() || sha384->second != 48) {
    return IntegrityError("event log: the log has no SHA-384 digests");
  }

  CcelReplay out;
  size_t at = 32 + first_size;
  while (at < log.size()) {
    if (AllFiller(log.subspan(at))) break;
    const std::string which = "event log: event " + std::to_string(out.events.size() + 1);
    if (out.events.size() >= kMaxEvents) return IntegrityError("event log: too many events");
    if (log.size() - at < 12) return IntegrityError(which + " is truncated");
    CcelEvent e;
    e.mr_index = U32(log, at);
    e.type = U32(log, at + 4);
    const uint32_t count = U32(log, at + 8);
    at += 12;
    if (count == 0 || count > algorithms) return IntegrityError(which + ": bad digest count");
    for (uint32_t i = 0; i < count; ++i) {
      if (log.size() - at < 2) return IntegrityError(which + " is truncated");
      const uint16_t alg = U16(log, at);
      auto size = digest_size.find(alg);
      if (size == digest_size.end()) return IntegrityError(which + ": digest algorithm not in the Spec ID event");
      at += 2;
      if (log.size() - at < size->second) return IntegrityError(which + " is truncated");
      if (alg == kAlgSha384) e.sha384.assign(log.begin() + static_cast<ptrdiff_t>(at), log.begin() + static_cast<ptrdiff_t>(at + 48));
      at += size->second;
    }
    if (log.size() - at < 4) return IntegrityError(which + " is truncated");
    const uint32_t size = U32(log, at);
    at += 4;
    if (size > kMaxEventData || size > log.size() - at) return IntegrityError(which + ": data length runs past the log");
    e.data.assign(log.begin() + static_cast<ptrdiff_t>(at), log.begin() + static_cast<ptrdiff_t>(at + size));
    at += size;
    if (e.type != kEvNoAction && e.mr_index >= 1 && e.mr_index <= 4) {
      if (e.sha384.empty()) return IntegrityError(which + " extends RTMR" + std::to_string(e.mr_index - 1) + " without a SHA-384 digest");
      auto& rtmr = out.rtmr[e.mr_index - 1];
      Bytes both(rtmr.begin(), rtmr.end());
      both.insert(both.end(), e.sha384.begin(), e.sha384.end());
      Bytes next = crypto::Hash(crypto::HashAlg::kSha384, both);
      std::copy(next.begin(), next.end(), rtmr.begin());
    } else if (e.type != kEvNoAction && e.mr_index > 4) {
      return IntegrityError(which + ": measurement register index " + std::to_string(e.mr_index) + " is not a TDX one");
    }
    out.events.push_back(std::move(e));
  }
  return out;
}

Status CheckCcelMatchesQuote(const CcelReplay& replay, HardwareVerdict& verdict) {
  if (verdict.type != "tdx") return InvalidArgument("an event log explains TDX RTMRs, not " + verdict.type + " evidence");
  for (size_t i = 0; i < 4; ++i) {
    const std::string name = "rtmr" + std::to_string(i);
    const std::string* quoted = verdict.Find(name);
    if (quoted == nullptr) return IntegrityError("event log: the quote has no " + name);
    if (*quoted != HexEncode(replay.rtmr[i])) {
      return IntegrityError("event log: it replays to an RTMR" + std::to_string(i) + " other than the quote's (" +
                            HexEncode(replay.rtmr[i]).substr(0, 16) + "... against " + quoted->substr(0, 16) + "...)");
    }
  }
  verdict.checks.push_back("event log (" + std::to_string(replay.events.size()) +
                           " events) replays to the quote's RTMR0-3");
  return Status::Ok();
}

}  // namespace cloister::attest
