// The client side of the LAS socket (docs/protocol.md section 3): one
// 40-byte request with the report data, one response with evidence or a
// refusal. The codec is pure and bounded; LasRequest does the I/O.
//
// Also the little the runtime reads from the evidence itself (its type and
// measurements, to name them in messages); the CAS is the one that
// verifies it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attest/relay_reply.h"
#include "runtime/io.h"
#include "runtime/result.h"

namespace cloister::runtime {

inline constexpr size_t kLasRequestSize = 40;
inline constexpr size_t kLasResponseHeaderSize = 12;
inline constexpr uint32_t kMaxLasEvidence = 65536;
inline constexpr uint32_t kMaxLasMessage = 1024;
// A relayed answer: evidence and the CAS's reply with their lengths.
inline constexpr uint32_t kMaxLasRelayed = 4 + kMaxLasEvidence + 4 + relay::kMaxPayload + 4096;
// The whole exchange with the LAS, connect included.
inline constexpr int kLasTimeoutMs = 5000;

using ReportData = std::array<uint8_t, 32>;

// The CAS's answer to a volume commit report, as the LAS carried it.
struct CasAnswer {
  int http_status = 0;
  std::string body;
};
inline constexpr uint32_t kMaxCommitReport = 16384;
inline constexpr uint32_t kMaxCasAnswer = 2 + 16384;

// Carries a volume commit report (the JSON body of POST /v1/volumes/commit,
// docs/protocol.md section 7) through the LAS at `socket_path`: the 40-byte
// request with kind 3 and no report data, the report's length (u32) and the
// report; the answer has status 3, the CAS's HTTP status (u16) and body.
// Fails, naming the socket, if the LAS refuses or cannot be reached.
Result<CasAnswer> SendCommitReport(const std::string& socket_path, std::string_view report);

std::array<uint8_t, kLasRequestSize> EncodeLasRequest(const ReportData& report_data);

// A relayed request (docs/protocol.md section 6): the 40-byte request with
// kind 2, the fresh key's point, the config id's length (u16) and the
// config id.
std::vector<uint8_t> EncodeRelayedLasRequest(const ReportData& report_data, const relay::Point& key,
                                             std::string_view config_id);

struct LasResponseHeader {
  bool refused = false;  // status 1: a UTF-8 message follows, not evidence
  bool relayed = false;  // status 2: evidence and the CAS's reply follow
  uint32_t length = 0;   // bytes that follow; within the bound of the status
};

// What the LAS sends back for a relayed request.
struct RelayedAnswer {
  std::vector<uint8_t> evidence;   // checked as Receive checks it
  std::vector<uint8_t> cas_reply;  // not checked yet: see runtime/relayed.h
};

// Checks magic, version, status and the length bound of the status.
Result<LasResponseHeader> ParseLasResponseHeader(std::span<const uint8_t, kLasResponseHeaderSize> header);

// One request to the LAS, in two steps: Send connects and sends it (the
// LAS then measures this process and signs), Receive reads the answer. In
// between, the caller is free to do other work, such as the TLS handshake
// with the CAS. Both steps together take at most kLasTimeoutMs.
class LasRequest {
 public:
  // Connects to the LAS listening on `socket_path` and asks for evidence
  // carrying `report_data`. Fails, naming the socket, if the LAS is
  // unreachable or does not take the request.
  static Result<std::unique_ptr<LasRequest>> Send(const std::string& socket_path, const ReportData& report_data);
  // The same for a relayed attestation: the LAS also carries the evidence,
  // `key` and `config_id` to the CAS and brings back its reply.
  static Result<std::unique_ptr<LasRequest>> SendRelayed(const std::string& socket_path, const ReportData& report_data,
                                                         const relay::Point& key, std::string_view config_id);

  ~LasRequest();
  LasRequest(const LasRequest&) = delete;
  LasRequest& operator=(const LasRequest&) = delete;

  // The evidence. Failures name the socket: refused (with the LAS's
  // message), timed out, or a malformed answer. The evidence is also
  // checked to be Cloister evidence carrying the report data, so that a
  // confused LAS is reported here rather than as a refusal by the CAS.
  Result<std::vector<uint8_t>> Receive();
  // After SendRelayed: the evidence, checked as above, and the CAS's reply.
  Result<RelayedAnswer> ReceiveRelayed();

 private:
  LasRequest(std::string socket_path, const ReportData& report_data, int fd);
  static Result<std::unique_ptr<LasRequest>> Connect(const std::string& socket_path, const ReportData& report_data,
                                                     std::span<const uint8_t> request);
  // Reads the answer; its body in `body`, which must be of the kind asked.
  Result<Done> ReadAnswer(bool relayed, std::vector<uint8_t>* body);
  // Checks that `evidence` is Cloister evidence over this request's report data.
  Result<Done> CheckEvidence(std::span<const uint8_t> evidence) const;

  std::string socket_path_;
  ReportData report_data_;
  int fd_;
  Deadline deadline_;
};

// Send and Receive in one.
Result<std::vector<uint8_t>> RequestEvidence(const std::string& socket_path, const ReportData& report_data);

// The evidence type (byte 6 of Cloister evidence) as a name, e.g. "sim";
// "type N" for a type this runtime does not know, "" if `evidence` is too
// short to say.
std::string EvidenceTypeName(std::span<const uint8_t> evidence);

// Hex of the executable and runtime measurements of `sim` evidence (bytes
// 39..70 and 71..102), or false if `evidence` is too short.
bool EvidenceMeasurements(std::span<const uint8_t> evidence, std::string* executable, std::string* runtime);

}  // namespace cloister::runtime
