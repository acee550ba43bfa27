#include "runtime/volumes.h"

#include <atomic>

namespace cloister::runtime {
namespace {

std::atomic<const std::vector<VolumeMount>*> g_volumes{nullptr};

}  // namespace

void InstallVolumes(std::vector<VolumeMount> mounts) {
  // Released on purpose: readers may hold references until the process ends.
  auto* v = new std::vector<VolumeMount>(std::move(mounts));
  const std::vector<VolumeMount>* expected = nullptr;
  if (!g_volumes.compare_exchange_strong(expected, v, std::memory_order_acq_rel)) delete v;
}

const std::vector<VolumeMount>& InstalledVolumes() {
  static const std::vector<VolumeMount> kNone;
  const std::vector<VolumeMount>* v = g_volumes.load(std::memory_order_acquire);
  return v != nullptr ? *v : kNone;
}

}  // namespace cloister::runtime
