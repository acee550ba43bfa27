// The background thread that keeps the node certificate fresh: it looks at
// the current certificate every PlanRenewal(...).next_check_seconds, and
// once less than half of its validity is left it asks the CAS for a new one,
// stores it (node.crt, atomically) and hands it to NodeCredentials, so
// evidence signed from then on carries it. A node that joined with hardware
// evidence (docs/protocol.md section 4.1) renews with fresh evidence every
// time: the RenewFn gathers it (a new challenge, a new quote) before it asks.
// A failed renewal is logged (one line on stderr; a 403 says the node is
// revoked or unknown, or that the CAS refused its evidence) and tried again
// at the next check, or after a minute when the CAS refused or the
// certificate has expired already.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "cloister/status.h"
#include "las/cas_node_client.h"
#include "las/node_state.h"

namespace cloister::las {

class Renewer {
 public:
  // One renewal round trip to the CAS (RenewWithCas over a fresh client,
  // after GatherNodeEvidence when the node uses hardware evidence).
  using RenewFn = std::function<StatusOr<IssuedCertificate>()>;
  // Seconds since the UNIX epoch.
  using ClockFn = std::function<int64_t()>;

  // All references must outlive the renewer. `clock` empty: real time.
  // `evidence`: the node evidence type the RenewFn renews with ("tpm",
  // "tdx", "snp"), named in the log lines; empty for a join token alone.
  Renewer(NodeCredentials& credentials, const StateDir& state, RenewFn renew, ClockFn clock = {},
          std::string evidence = {});
  ~Renewer();  // Stop(), waiting as long as it takes
  Renewer(const Renewer&) = delete;
  Renewer& operator=(const Renewer&) = delete;

  void Start();
  // Asks the thread to end and waits up to `wait` for it. False if it is
  // still inside a call to the CAS (whose own timeouts are long); the caller
  // may then exit the process without waiting: every file the renewer
  // writes is replaced atomically.
  bool Stop(std::chrono::milliseconds wait);

  // One round, for tests and for the thread: renews if the plan says so.
  // Returns the plan for the next check.
  RenewalPlan RunOnce();

 private:
  void Loop();

  NodeCredentials& credentials_;
  const StateDir& state_;
  RenewFn renew_;
  ClockFn clock_;
  const std::string evidence_;
  std::mutex mu_;
  std::condition_variable changed_;
  bool stopping_ = false;  // guarded by mu_
  bool finished_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace cloister::las
