#include "cas/metrics.h"

#include <cstdio>

namespace cloister::cas {

void Metrics::Observe(const std::string& route, const std::string& method, int status, double seconds) {
  std::lock_guard<std::mutex> l(mu_);
  ++requests_[{route, method, status}];
  Histogram& h = latency_[route];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render(const std::string& extra) const {
  std::string out;
  char buf[512];
  std::lock_guard<std::mutex> l(mu_);
  out += "# HELP cloister_cas_requests_total API requests by route, method and status.\n";
  out += "# TYPE cloister_cas_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    std::snprintf(buf, sizeof(buf), "cloister_cas_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                  route.c_str(), method.c_str(), status, static_cast<unsigned long long>(n));
    out += buf;
  }
  out += "# HELP cloister_cas_request_duration_seconds API request latency by route.\n";
  out += "# TYPE cloister_cas_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      std::snprintf(buf, sizeof(buf), "cloister_cas_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route.c_str(), kBuckets[i], static_cast<unsigned long long>(h.counts[i]));
      out += buf;
    }
    std::snprintf(buf, sizeof(buf),
                  "cloister_cas_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                  "cloister_cas_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                  "cloister_cas_request_duration_seconds_count{route=\"%s\"} %llu\n",
                  route.c_str(), static_cast<unsigned long long>(h.count), route.c_str(), h.sum, route.c_str(),
                  static_cast<unsigned long long>(h.count));
    out += buf;
  }
  out += extra;
  return out;
}

}  // namespace cloister::cas
