// libFuzzer target on the LAS socket codec (untrusted: any local process
// may connect and send anything), on the relayed reply's parser (the
// runtime reads what a LAS hands it) and the batch splitter (the LAS reads
// what the CAS answers), on the volume commit report's parser (the LAS and
// the CAS read what any program sends), and on the base64 decoder the CAS
// applies to evidence that arrives at its attestation endpoint.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attest/volume_commit.h"
#include "base/bytes.h"
#include "las/wire.h"

using namespace cloister;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (size >= las::kRequestSize) {
    if (auto r = las::DecodeRequest(in.first(las::kRequestSize)); r.ok()) {
      // A header that decodes encodes back to the same bytes (a relayed
      // one differs only in its kind).
      auto again = las::EncodeRequest(r->report_data);
      again[6] = static_cast<uint8_t>(r->kind);
      if (!std::equal(again.begin(), again.end(), data)) __builtin_trap();
      // A relayed request's tail: what decodes encodes back to the same bytes.
      if (r->kind == las::RequestKind::kRelayedAttestation &&
          las::DecodeRelayTail(in.subspan(las::kRequestSize), &*r).ok()) {
        auto whole = las::EncodeRelayedRequest(r->report_data, r->key, r->config_id);
        if (whole.size() != size || !std::equal(whole.begin(), whole.end(), data)) __builtin_trap();
      }
      // A volume commit's tail likewise.
      if (r->kind == las::RequestKind::kVolumeCommit &&
          las::DecodeCommitTail(in.subspan(las::kRequestSize), &*r).ok()) {
        auto whole = las::EncodeVolumeCommitRequest(r->commit_report);
        if (!whole.ok() || whole->size() != size || !std::equal(whole->begin(), whole->end(), data)) __builtin_trap();
      }
    }
  }
  // A commit report: what parses is within every documented bound, and the
  // bytes it signs are framed by those bounds.
  {
    volume_commit::Request report;
    std::string why;
    if (volume_commit::ParseRequest(std::string_view(reinterpret_cast<const char*>(data), size), &report, &why)) {
      if (report.token.empty() || report.token.size() > volume_commit::kMaxToken ||
          !volume_commit::IsVolumeName(report.volume) || report.signature.empty() ||
          report.signature.size() > volume_commit::kMaxSignature || report.key[0] != 0x04 ||
          size > volume_commit::kMaxBody) {
        __builtin_trap();
      }
      auto signed_bytes = volume_commit::SignedBytes(report.token, report.volume, report.seq, report.tag);
      if (signed_bytes.size() != volume_commit::kLabel.size() + 4 + report.token.size() + 4 + report.volume.size() + 8 +
                                     report.tag.size()) {
        __builtin_trap();
      }
      (void)volume_commit::VerifySignature(report, &why);
    }
  }
  // The CAS's signed reply, which the runtime parses from what a LAS hands it.
  relay::Reply reply;
  std::string error;
  if (relay::Parse(in, &reply, &error)) {
    if (reply.unsigned_part.size() + 2 + reply.signature.size() != size) __builtin_trap();
  }
  // The CAS's batch of replies, which the LAS splits: whatever splits
  // encodes back to the same bytes. The count it must hold is read from the
  // input itself, so that matching counts are reached.
  if (size >= 4) {
    const size_t expected = static_cast<size_t>(data[0]) << 24 | static_cast<size_t>(data[1]) << 16 |
                            static_cast<size_t>(data[2]) << 8 | data[3];
    std::vector<std::span<const uint8_t>> parts;
    if (relay::DecodeBatch(in, expected, &parts, &error)) {
      std::vector<std::vector<uint8_t>> copies;
      for (auto part : parts) copies.emplace_back(part.begin(), part.end());
      auto again = relay::EncodeBatch(copies);
      if (again.size() != size || !std::equal(again.begin(), again.end(), data)) __builtin_trap();
    }
  }
  if (size >= las::kResponseHeaderSize) (void)las::DecodeResponseHeader(in.first(las::kResponseHeaderSize));
  if (auto r = las::DecodeResponse(in); r.ok()) {
    if (r->body.size() + las::kResponseHeaderSize != size) __builtin_trap();
    if (r->status == las::ResponseStatus::kCasAnswer) {
      // What splits encodes back to the same bytes.
      if (auto answer = las::DecodeCasAnswer(r->body); answer.ok()) {
        auto again = las::EncodeCasAnswer(answer->http_status, answer->body);
        if (!again.ok() || again->size() != size || !std::equal(again->begin(), again->end(), data)) __builtin_trap();
      }
    }
  }
  if (auto b = Base64Decode(std::string_view(reinterpret_cast<const char*>(data), size))) {
    if (b->size() > size / 4 * 3) __builtin_trap();
    // Decoding what was encoded gives the bytes back.
    auto back = Base64Decode(Base64Encode(*b));
    if (!back || *back != *b) __builtin_trap();
  }
  return 0;
}
