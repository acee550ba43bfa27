// Tells the CAS about each commit of the volume server (docs/protocol.md
// section 7), so that at the next start the CAS hands out the newest tag
// and an older volume is refused.
//
// A report is signed with the fresh key this start attested with and
// carries the CAS's token from the grant; it travels through the LAS, and
// the CAS's receipt, signed with the key CLOISTER_CAS_KEY pins, proves it
// was recorded. Reports go out from a thread of their own, newest commit
// first: a commit does not wait for the CAS. Only the last commit of each
// volume matters, so commits made while a report is out, or within the
// minimum interval after the last one, are folded into the next one (a
// database commits hundreds of times a second; the CAS signs and stores
// each report). Someone waiting for the CAS (Drain) ends the interval at
// once. A failed report is retried, with a growing pause.
#pragma once

#include <openssl/evp.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "attest/relay_reply.h"
#include "cloister/volume.h"

namespace cloister::runtime::shield {

struct Reporting {
  std::vector<uint8_t> token;  // the grant's volume_token; empty: no reports
  relay::Point point{};        // the fresh key's uncompressed point
  EVP_PKEY* key = nullptr;     // the fresh key's private half (owned)
  relay::Hash cas_pin{};       // CLOISTER_CAS_KEY
  std::string las_socket;      // where the LAS carries the reports
  int min_interval_ms = 100;   // between the starts of two reports
};

class CommitReporter {
 public:
  // `names[v]` is the session's name of volume v; `writable[v]` whether
  // its commits are reported at all.
  CommitReporter(Reporting reporting, std::vector<std::string> names, std::vector<bool> writable);
  ~CommitReporter();
  CommitReporter(const CommitReporter&) = delete;
  CommitReporter& operator=(const CommitReporter&) = delete;

  // A commit of volume `v` that the CAS should hear about.
  void Post(size_t v, uint64_t seq, const volume::Tag& tag);
  // Waits until the CAS has acknowledged every posted commit, or `ms`
  // milliseconds passed. True if nothing is left to report.
  bool Drain(int ms);

 private:
  struct Pending {
    bool due = false;
    uint64_t seq = 0;
    volume::Tag tag{};
  };

  void Run();
  // One report; an empty string on success, else why it failed. `final`
  // is set when retrying would not help.
  std::string Send(size_t v, uint64_t seq, const volume::Tag& tag, bool* final);

  Reporting reporting_;
  std::vector<std::string> names_;
  std::vector<bool> writable_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> pending_;
  bool stop_ = false;
  int urgent_ = 0;  // callers in Drain
  std::thread thread_;
};

}  // namespace cloister::runtime::shield
