// Relayed starts that arrive while the LAS's requests to the CAS are out
// wait and then go together, in one request (POST /v1/attest/relay/batch).
// A start that finds a request slot free goes at once, alone or with those
// already waiting, so batching never delays a start: it only replaces the
// queue a busy CAS connection would form anyway. At most `max_in_flight`
// requests are out at a time; each carries at most `max_batch` starts.
//
// The thread whose start opens a request sends it itself (the send
// function may use thread-local connections) and hands every start of the
// batch its own result.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "base/bytes.h"
#include "cloister/status.h"
#include "las/cas_node_client.h"

namespace cloister::las {

class RelayBatcher {
 public:
  // Sends the starts and returns exactly one result per start, in order.
  using SendFn = std::function<std::vector<StatusOr<Bytes>>(const std::vector<const RelayStart*>& starts)>;

  RelayBatcher(SendFn send, size_t max_in_flight, size_t max_batch);
  RelayBatcher(const RelayBatcher&) = delete;
  RelayBatcher& operator=(const RelayBatcher&) = delete;

  // Relays one start and waits for its result. Called from many threads.
  StatusOr<Bytes> Relay(const RelayStart& start);

  struct Counts {
    uint64_t requests = 0;  // requests sent
    uint64_t starts = 0;    // starts carried by them
    size_t largest = 0;     // the most starts one request carried
  };
  Counts counts() const;

 private:
  struct Waiter {
    const RelayStart* start;
    bool done = false;
    StatusOr<Bytes> result = InternalError("not answered");
  };

  const SendFn send_;
  const size_t max_in_flight_, max_batch_;
  mutable std::mutex mu_;
  std::condition_variable answered_;
  std::deque<Waiter*> waiting_;  // not yet in a request
  size_t in_flight_ = 0;
  Counts counts_;
};

}  // namespace cloister::las
