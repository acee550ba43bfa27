// The session's volume mounts, as the CAS granted them at start: where each
// protected volume is mounted, its key and the tag the CAS expects. The
// file shield (the next stage of the runtime) serves the files under these
// paths from the volume library; for now the runtime only keeps them.
//
// Installed once before main and read-only afterwards, so readers on any
// thread need no lock. The keys stay in memory for the life of the process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/secret.h"

namespace cloister::runtime {

struct VolumeMount {
  std::string name;           // the volume's name in the session
  std::string path;           // mount path: absolute and normal
  SecretBytes key;            // 32 bytes
  std::vector<uint8_t> tag;   // 32 bytes the CAS expects, or empty before the first commit
  std::string update_policy;  // e.g. "rollback-protected", as the CAS sent it
};

// Stores the mounts for the process; the first call wins.
void InstallVolumes(std::vector<VolumeMount> mounts);

// The installed mounts; empty before InstallVolumes.
const std::vector<VolumeMount>& InstalledVolumes();

}  // namespace cloister::runtime
