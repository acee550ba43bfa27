// The CAS's record of every start, granted or refused, kept in its sealed
// store per session: the latest kKeepPerSession records, in chunks of
// kChunk, so appending rewrites one small record and old ones age out.
//
// Appends do not wait for the disk: a writer thread commits what has been
// appended every 50 ms (or sooner when many are pending), in one batch.
// A crash can therefore lose the records of the last moments before it;
// never the attestation itself, whose verdict does not depend on the log.
// Reads flush first, so a record is visible as soon as its start ends.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cas/service.h"
#include "cas/store.h"

namespace cloister::cas {

class AttestationLog {
 public:
  static constexpr size_t kChunk = 64;
  static constexpr size_t kKeepPerSession = 1024;

  explicit AttestationLog(std::shared_ptr<Store> store);
  ~AttestationLog();  // commits what is pending

  void Append(AttestationRecord r);
  // Commits everything appended before the call.
  Status Flush();
  // Forgets every record of `session` (when it is deleted), pending ones too.
  Status Forget(const std::string& session);
  // The latest records of `session`, newest first, at most `limit`.
  StatusOr<std::vector<AttestationRecord>> Latest(const std::string& session, size_t limit);

 private:
  struct Head {
    uint64_t first = 0, last = 0;   // chunk numbers kept
    nlohmann::json open_chunk = nlohmann::json::array();  // chunk `last`
  };
  StatusOr<Head*> HeadOf(const std::string& session);  // flush_mu_ held
  void Run();

  std::shared_ptr<Store> store_;
  std::mutex mu_;  // pending_, stop_
  std::condition_variable wake_;
  std::vector<AttestationRecord> pending_;
  bool stop_ = false;
  std::mutex flush_mu_;  // one flush at a time; guards heads_
  std::map<std::string, Head> heads_;
  std::thread writer_;
};

}  // namespace cloister::cas
