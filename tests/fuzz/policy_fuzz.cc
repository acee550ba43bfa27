// libFuzzer target over the session-policy entry points that face network
// input: Parse (YAML adapter, limits, validation), RedactedText,
// FindPlaceholders and SplitCommand, and for documents that parse, the
// rest of what the CAS runs on them (fingerprints, import checks, parsing
// the redacted copy again).
//
//   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCLOISTER_FUZZ=ON -DCLOISTER_TESTS=OFF
//   make -C build-fuzz policy_fuzz
//   ./build-fuzz/policy_fuzz -dict=tests/policy/policy_fuzz.dict -max_total_time=60 tests/policy
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/policy.h"

using namespace cloister;          // NOLINT
using namespace cloister::policy;  // NOLINT

namespace {

// `redacted` with every "<redacted>" marker replaced by one byte that no
// secret of interest contains, so that a search for a secret cannot match
// across or inside a marker.
std::string WithoutMarkers(std::string s) {
  constexpr std::string_view kMarker = "<redacted>";
  for (size_t at = s.find(kMarker); at != std::string::npos; at = s.find(kMarker, at + 1)) {
    s.replace(at, kMarker.size(), "\x01");
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  ParseResult r = Parse(text);
  if (r.policy.has_value() == !r.errors.empty()) __builtin_trap();  // exactly one of the two
  for (const PolicyError& e : r.errors) (void)FormatError(e);

  const std::string redacted = RedactedText(text);
  (void)FindPlaceholders(text);
  (void)SplitCommand(text);

  if (!r.policy) return 0;
  const Policy& p = *r.policy;

  // The redacted copy never shows an explicit value it promises to hide.
  const std::string shown = WithoutMarkers(redacted);
  for (const Secret& s : p.secrets) {
    (void)s.Fingerprint();
    if (!s.value || s.value->size() < 6) continue;
    std::string_view v(reinterpret_cast<const char*>(s.value->UnsafeBytes().data()), s.value->size());
    if (v.find('\x01') == std::string_view::npos && shown.find(v) != std::string::npos) __builtin_trap();
  }
  // The redacted copy is what `show` returns; clients parse it again.
  (void)Parse(redacted);

  // Imports against a store in which every session is this document.
  const std::string hash = DocumentHash(text);
  SessionLookup lookup = [&](const std::string&) -> std::optional<ExporterView> { return ExporterView{hash, &p}; };
  (void)CheckImports(p, hash, text, lookup);
  return 0;
}
