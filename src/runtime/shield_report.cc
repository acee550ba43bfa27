#include "runtime/shield_report.h"

#include <algorithm>
#include <chrono>

#include "attest/volume_commit.h"
#include "runtime/las_client.h"
#include "runtime/log.h"

namespace cloister::runtime::shield {

CommitReporter::CommitReporter(Reporting reporting, std::vector<std::string> names, std::vector<bool> writable)
    : reporting_(std::move(reporting)),
      names_(std::move(names)),
      writable_(std::move(writable)),
      pending_(names_.size()) {
  if (!reporting_.token.empty() && reporting_.key != nullptr) thread_ = std::thread([this] { Run(); });
}

CommitReporter::~CommitReporter() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  EVP_PKEY_free(reporting_.key);
}

void CommitReporter::Post(size_t v, uint64_t seq, const volume::Tag& tag) {
  if (!thread_.joinable() || v >= pending_.size() || !writable_[v]) return;
  bool was_idle;
  {
    std::lock_guard<std::mutex> l(mu_);
    Pending& p = pending_[v];
    if (p.due && p.seq >= seq) return;
    was_idle = std::none_of(pending_.begin(), pending_.end(), [](const Pending& q) { return q.due; });
    p = Pending{true, seq, tag};
  }
  // Only a thread that had nothing to report waits for a post. Once
  // something is due, the thread waits for the interval or a pause, or is
  // sending, and takes the newest pending commit when it looks again: waking
  // it for every commit (a database makes hundreds a second) would cost a
  // context switch each, on the path of the fsync that made the commit.
  if (was_idle) cv_.notify_all();
}

bool CommitReporter::Drain(int ms) {
  std::unique_lock<std::mutex> l(mu_);
  ++urgent_;
  cv_.notify_all();
  bool done = cv_.wait_for(l, std::chrono::milliseconds(ms), [this] {
    return std::none_of(pending_.begin(), pending_.end(), [](const Pending& p) { return p.due; });
  });
  --urgent_;
  return done;
}

std::string CommitReporter::Send(size_t v, uint64_t seq, const volume::Tag& tag, bool* final) {
  *final = false;
  std::string body, error;
  if (!volume_commit::BuildRequest(reporting_.token, reporting_.point, names_[v], seq, tag, reporting_.key, &body,
                                   &error)) {
    *final = true;
    return "cannot make the report: " + error;
  }
  Result<CasAnswer> answer = SendCommitReport(reporting_.las_socket, body);
  if (!answer.ok()) return answer.error();
  const CasAnswer& a = answer.value();
  if (a.http_status != 200) {
    // 4xx: the CAS will not take this report, whatever the number of tries.
    *final = a.http_status >= 400 && a.http_status < 500;
    return "the CAS answered " + std::to_string(a.http_status) + ": " + PeerText(a.body);
  }
  if (!volume_commit::VerifyReceipt(a.body, reporting_.cas_pin, reporting_.token, names_[v], seq, tag, &error)) {
    return "the CAS's receipt does not verify: " + error;
  }
  return "";
}

void CommitReporter::Run() {
  int pause_ms = 0;
  std::string last_error;
  auto last_start = std::chrono::steady_clock::time_point();
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    auto due = [this] { return std::any_of(pending_.begin(), pending_.end(), [](const Pending& p) { return p.due; }); };
    if (pause_ms > 0) {
      cv_.wait_for(l, std::chrono::milliseconds(pause_ms), [this] { return stop_; });
    } else {
      cv_.wait(l, [&] { return stop_ || due(); });
      cv_.wait_until(l, last_start + std::chrono::milliseconds(reporting_.min_interval_ms),
                     [this] { return stop_ || urgent_ > 0; });
    }
    if (stop_) return;
    last_start = std::chrono::steady_clock::now();
    for (size_t v = 0; v < pending_.size(); ++v) {
      if (!pending_[v].due) continue;
      Pending p = pending_[v];
      l.unlock();
      bool final = false;
      std::string error = Send(v, p.seq, p.tag, &final);
      l.lock();
      Pending& now = pending_[v];
      if (error.empty()) {
        DebugLog("shield: the CAS recorded commit %llu of volume %s", static_cast<unsigned long long>(p.seq),
                 names_[v].c_str());
        if (now.seq == p.seq) now.due = false;
        pause_ms = 0;
        last_error.clear();
      } else {
        std::string line = "cannot report commit " + std::to_string(p.seq) + " of volume " + names_[v] +
                           " to the CAS: " + error;
        if (final) {
          // Retrying cannot help; a later commit is reported afresh.
          Log(line);
          if (now.seq == p.seq) now.due = false;
        } else {
          if (error != last_error) Log(line + " (retrying)");
          last_error = error;
          pause_ms = std::clamp(pause_ms * 2, 200, 30000);
        }
      }
    }
    cv_.notify_all();
  }
}

}  // namespace cloister::runtime::shield
