#include "cli/keyfile.h"

#include "cloister/volume.h"

namespace cloister::cli {
namespace {
constexpr char kPrefix[] = "cloister-volume-key-v1:";
}  // namespace

StatusOr<SecretBytes> ReadKeyFile(const std::string& path) {
  return os::ReadKeyFile(path, kPrefix, volume::kVolumeKeySize, "key");
}

StatusOr<SecretBytes> ReadOrCreateKeyFile(const std::string& path, bool* created) {
  return os::ReadOrCreateKeyFile(path, kPrefix, volume::kVolumeKeySize, "key", created);
}

}  // namespace cloister::cli
