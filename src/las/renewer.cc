#include "las/renewer.h"

#include <chrono>
#include <cstdio>

namespace cloister::las {
namespace {

int64_t RealTimeSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Renewer::Renewer(NodeCredentials& credentials, const StateDir& state, RenewFn renew, ClockFn clock,
                 std::string evidence)
    : credentials_(credentials),
      state_(state),
      renew_(std::move(renew)),
      clock_(clock ? std::move(clock) : ClockFn(RealTimeSeconds)),
      evidence_(std::move(evidence)) {}

Renewer::~Renewer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Renewer::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    Loop();
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    changed_.notify_all();
  });
}

bool Renewer::Stop(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  changed_.notify_all();
  if (!thread_.joinable()) return true;
  if (!changed_.wait_for(lock, wait, [this] { return finished_; })) return false;
  lock.unlock();
  thread_.join();
  return true;
}

RenewalPlan Renewer::RunOnce() {
  auto current = credentials_.certificate();
  RenewalPlan plan = PlanRenewal(*current, clock_());
  if (!plan.renew_now) return plan;

  auto issued = renew_();
  if (!issued.ok()) {
    const Status& s = issued.status();
    const int64_t now = clock_();
    // The short retry interval exists to save a certificate that is about
    // to expire. A revoked node (403) will never renew, and an expired
    // certificate has nothing left to save: once a minute is enough, and
    // keeps the log readable.
    if (s.code() == StatusCode::kPermissionDenied || now > current->validity.not_after) {
      plan.next_check_seconds = kMaxCheckSeconds;
    }
    const std::string expiry = (now > current->validity.not_after ? "expired at " : "expires at ") +
                               Rfc3339(current->validity.not_after);
    if (s.code() == StatusCode::kPermissionDenied && evidence_.empty()) {
      std::fprintf(stderr,
                   "cloister-las: the CAS refused to renew the node certificate: this node is revoked or unknown "
                   "(%s); the certificate %s; retrying in %lld s\n",
                   s.message().c_str(), expiry.c_str(), static_cast<long long>(plan.next_check_seconds));
    } else if (s.code() == StatusCode::kPermissionDenied) {
      // With evidence, a refusal may also be about the evidence: the CAS's
      // reason says which.
      std::fprintf(stderr,
                   "cloister-las: the CAS refused to renew the node certificate with %s evidence: %s; the certificate "
                   "%s; retrying in %lld s\n",
                   evidence_.c_str(), s.message().c_str(), expiry.c_str(),
                   static_cast<long long>(plan.next_check_seconds));
    } else {
      std::fprintf(stderr,
                   "cloister-las: renewing the node certificate failed: %s; the certificate %s; retrying in %lld s\n",
                   s.message().c_str(), expiry.c_str(), static_cast<long long>(plan.next_check_seconds));
    }
    return plan;
  }
  Status stored = state_.StoreCertificates(issued->certificate.pem, issued->ca_certificate_pem);
  if (!stored.ok()) {
    // Still use it: it is valid, and the evidence needs a fresh one more
    // than the disk does. The next start renews again if need be.
    std::fprintf(stderr, "cloister-las: storing the renewed node certificate failed: %s\n",
                 stored.message().c_str());
  }
  const int64_t not_after = issued->certificate.validity.not_after;
  issued->certificate.received_at = clock_();
  credentials_.ReplaceCertificate(std::move(issued->certificate));
  std::fprintf(stderr, "cloister-las: renewed the node certificate%s%s%s; valid until %s\n",
               evidence_.empty() ? "" : " with ", evidence_.c_str(), evidence_.empty() ? "" : " evidence",
               Rfc3339(not_after).c_str());
  return PlanRenewal(*credentials_.certificate(), clock_());
}

void Renewer::Loop() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    RenewalPlan plan = RunOnce();
    std::unique_lock<std::mutex> lock(mu_);
    if (changed_.wait_for(lock, std::chrono::seconds(plan.next_check_seconds), [this] { return stopping_; })) return;
  }
}

}  // namespace cloister::las
