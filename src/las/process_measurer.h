// Measures a local process for its evidence (docs/protocol.md, section 3):
// the executable (/proc/PID/exe) and the Cloister runtime library mapped
// into it, if any.
//
// Every file is reached through a descriptor of the /proc/PID directory
// opened first. That descriptor stays bound to the process it was opened
// for: if the process exits and its PID is reused while we work, reads
// through it fail instead of describing the newcomer. So the executable,
// the maps and the runtime all belong to one process.
//
// The runtime library is opened through /proc/PID/map_files/START-END when
// the LAS may (that opens exactly the mapped file, even one deleted or
// replaced on disk since; the kernel allows it to CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE), else by the mapping's path resolved inside the
// process's own root directory (/proc/PID/root), which is what the path
// means for a process in a container. Either way the opened file is
// accepted only if its device and inode equal those the maps line shows.
#pragma once

#include <cstdint>
#include <string>

#include "attest/evidence.h"
#include "cloister/status.h"
#include "las/measure_cache.h"

namespace cloister::las {

struct ProcessMeasurement {
  attest::Sha256Value executable{};
  attest::Sha256Value runtime{};  // all zero when no runtime is mapped
  bool has_runtime = false;
};

class ProcessMeasurer {
 public:
  struct Options {
    std::string proc_root = "/proc";
    // Tests turn this off to exercise the path fallback when they run with
    // the capabilities that make map_files work.
    bool use_map_files = true;
  };

  // `cache` must outlive the measurer.
  ProcessMeasurer(MeasurementCache& cache, Options options);
  explicit ProcessMeasurer(MeasurementCache& cache) : ProcessMeasurer(cache, Options()) {}

  // Measures process `pid`. Errors carry a message for the caller:
  //   kNotFound           "process N is gone"
  //   otherwise           "cannot measure the executable of process N: ..."
  //                       "cannot measure the runtime library of process N: ..."
  StatusOr<ProcessMeasurement> Measure(uint32_t pid);

 private:
  StatusOr<attest::Sha256Value> MeasureRuntime(int pid_dir, uint32_t pid, bool* found);
  MeasurementCache& cache_;
  const Options options_;
};

}  // namespace cloister::las
