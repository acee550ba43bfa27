#include "las/relay_batcher.h"

#include <algorithm>

namespace cloister::las {

RelayBatcher::RelayBatcher(SendFn send, size_t max_in_flight, size_t max_batch)
    : send_(std::move(send)), max_in_flight_(std::max<size_t>(1, max_in_flight)),
      max_batch_(std::max<size_t>(1, max_batch)) {}

StatusOr<Bytes> RelayBatcher::Relay(const RelayStart& start) {
  Waiter me{&start};
  std::unique_lock<std::mutex> l(mu_);
  waiting_.push_back(&me);
  while (!me.done) {
    if (in_flight_ >= max_in_flight_ || waiting_.empty()) {
      // Our start is in a request another thread sent, or every slot is
      // taken: the next answer may be ours or free a slot.
      answered_.wait(l);
      continue;
    }
    // A free slot: send what waits, oldest first (ours among them unless
    // more than a batch is ahead of it).
    std::vector<Waiter*> batch;
    while (!waiting_.empty() && batch.size() < max_batch_) {
      batch.push_back(waiting_.front());
      waiting_.pop_front();
    }
    ++in_flight_;
    ++counts_.requests;
    counts_.starts += batch.size();
    counts_.largest = std::max(counts_.largest, batch.size());
    l.unlock();
    std::vector<const RelayStart*> starts;
    starts.reserve(batch.size());
    for (Waiter* w : batch) starts.push_back(w->start);
    std::vector<StatusOr<Bytes>> results = send_(starts);
    l.lock();
    --in_flight_;
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i]->result = i < results.size() && results.size() == batch.size()
                             ? std::move(results[i])
                             : StatusOr<Bytes>(InternalError("the relay returned a wrong number of replies"));
      batch[i]->done = true;
    }
    answered_.notify_all();
  }
  return std::move(me.result);
}

RelayBatcher::Counts RelayBatcher::counts() const {
  std::lock_guard<std::mutex> l(mu_);
  return counts_;
}

}  // namespace cloister::las
