// What the LAS does for one request: measure the calling process and sign
// `sim` evidence for it with the node key (docs/protocol.md, sections 2 and
// 3), or carry a volume commit report to the CAS (section 7). It takes a decoded request and the caller's kernel-reported
// credentials and never sees a socket; the socket server does the I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/bytes.h"
#include "las/cas_node_client.h"
#include "las/node_state.h"
#include "las/process_measurer.h"
#include "las/wire.h"

namespace cloister::las {

// The caller as SO_PEERCRED reports it, in the LAS's PID and user
// namespaces. pid 0: the caller is not visible in the LAS's PID namespace.
struct PeerCredentials {
  uint32_t pid = 0;
  uint32_t uid = 0;
};

struct Reply {
  bool granted = false;
  Bytes evidence;       // when granted
  Bytes cas_reply;      // when granted a relayed request: the CAS's signed reply; a commit: the CAS's body
  uint16_t cas_status = 0;  // when granted a volume commit: the CAS's HTTP status
  std::string refusal;  // when not: the message for the caller
  // For the request log: the first hex digits of the executable's
  // measurement (empty if it was not measured) and whether a runtime was.
  std::string executable_prefix;
  bool has_runtime = false;
};

// Handles one decoded request; implemented by EvidenceService, and by fakes
// in tests of the socket server.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual Reply Handle(const EvidenceRequest& request, const PeerCredentials& peer) = 0;
};

class EvidenceService : public RequestHandler {
 public:
  // Nanoseconds since the UNIX epoch; stamped into evidence as issued_at.
  using ClockFn = std::function<int64_t()>;
  // Carries a relayed request to the CAS (POST /v1/attest/relay) and
  // returns the CAS's signed reply, or why the CAS could not be asked.
  // Called from several worker threads at once.
  using RelayFn = std::function<StatusOr<Bytes>(const std::string& config_id, std::span<const uint8_t> evidence,
                                                const relay::Point& key)>;

  // Carries a volume commit report to the CAS (POST /v1/volumes/commit)
  // and returns the CAS's answer, whatever its status, or why the CAS could
  // not be asked. Called from several worker threads at once.
  using CommitFn = std::function<StatusOr<CasAnswer>(const std::string& report)>;

  // Both references must outlive the service. `clock` empty: real time.
  // `relay` empty: relayed requests are refused; `commit` empty: commits are.
  EvidenceService(const NodeCredentials& credentials, ProcessMeasurer& measurer, ClockFn clock = {},
                  RelayFn relay = {}, CommitFn commit = {});

  // Refuses when the node certificate is not valid now, when the process is
  // gone or cannot be measured; otherwise signs evidence with `peer`'s pid
  // and uid, the process's measurements and the request's report data.
  // A relayed request's evidence then goes to the CAS, and its reply back.
  // A volume commit is checked for its form (volume_commit::ParseRequest)
  // and carried to the CAS as it came; nothing of the caller is measured
  // and nothing signed: the report proves itself to the CAS.
  Reply Handle(const EvidenceRequest& request, const PeerCredentials& peer) override;

 private:
  const NodeCredentials& credentials_;
  ProcessMeasurer& measurer_;
  ClockFn clock_;
  RelayFn relay_;
  CommitFn commit_;
};

}  // namespace cloister::las
