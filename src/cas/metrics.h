// Request metrics for /metrics, in the Prometheus text exposition format:
// requests by route, method and status, and a latency histogram by route.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace cloister::cas {

class Metrics {
 public:
  // `route` is a pattern ("/v1/sessions/{name}"), never a raw path, so the
  // label set stays small and holds no names.
  void Observe(const std::string& route, const std::string& method, int status, double seconds);

  // Counters and histograms, followed by `extra` (gauges the caller adds).
  std::string Render(const std::string& extra) const;

  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

}  // namespace cloister::cas
