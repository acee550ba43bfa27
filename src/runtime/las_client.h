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
#include <vector>

#include "runtime/io.h"
#include "runtime/result.h"

namespace cloister::runtime {

inline constexpr size_t kLasRequestSize = 40;
inline constexpr size_t kLasResponseHeaderSize = 12;
inline constexpr uint32_t kMaxLasEvidence = 65536;
inline constexpr uint32_t kMaxLasMessage = 1024;
// The whole exchange with the LAS, connect included.
inline constexpr int kLasTimeoutMs = 5000;

using ReportData = std::array<uint8_t, 32>;

std::array<uint8_t, kLasRequestSize> EncodeLasRequest(const ReportData& report_data);

struct LasResponseHeader {
  bool refused = false;  // status 1: a UTF-8 message follows, not evidence
  uint32_t length = 0;   // bytes that follow; within the bound of the status
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

  ~LasRequest();
  LasRequest(const LasRequest&) = delete;
  LasRequest& operator=(const LasRequest&) = delete;

  // The evidence. Failures name the socket: refused (with the LAS's
  // message), timed out, or a malformed answer. The evidence is also
  // checked to be Cloister evidence carrying the report data, so that a
  // confused LAS is reported here rather than as a refusal by the CAS.
  Result<std::vector<uint8_t>> Receive();

 private:
  LasRequest(std::string socket_path, const ReportData& report_data, int fd);

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
