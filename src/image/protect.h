// `cloister image protect`: an OCI image in, a confidential image out.
//
// The chosen directories of the image become protected volumes at the same
// paths: their final content (all layers merged, whiteouts applied) is
// sealed into a volume, every entry at or below them is removed from every
// layer that held one (those layers are rewritten; the others are copied
// as they are), and a new top layer holds the volumes and the runtime
// library. The configuration preloads the runtime. The session that admits
// the image names the measured program, its command, environment and
// working directory, and each volume's key and first tag. See docs/image.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/secret.h"
#include "cloister/status.h"
#include "image/oci.h"

namespace cloister::image {

struct ProtectDir {
  std::string path;     // absolute path in the image
  bool encrypt = true;  // false: authenticated only
};

struct ProtectOptions {
  ImageRef from, to;
  std::vector<ProtectDir> dirs;
  std::string session, service;
  std::string binary;                  // empty: the command's program, resolved in the image
  std::optional<std::string> command;  // a command line as in a session (docs/policy.md section 5)
  std::vector<std::pair<std::string, std::string>> env;  // added to / replacing the image's
  std::optional<std::string> workdir;
  std::string cas_key;                 // hex SHA-256 pin of the CAS, for the image's environment
  std::string las_socket = "/run/cloister/las.sock";
  std::string runtime_file;            // the runtime library to put into the image
  std::vector<std::string> allow, tolerate;  // security.attestation of the session
  // Secrets the session defines for placeholders in --env or --command:
  // (name, kind), e.g. ("db_password", "ascii"); the CAS generates them.
  std::vector<std::pair<std::string, std::string>> secrets;
  std::string work_dir;                // scratch space; removed by the caller
  // A memory file system where the volumes are built when they fit in its
  // free space (with an eighth and 64 MiB to spare); otherwise, or if
  // empty, they are built in work_dir.
  std::string memory_dir = "/dev/shm";
};

// Where the runtime library goes in the image.
inline constexpr std::string_view kRuntimeInImage = "/opt/cloister/lib/libcloister-runtime.so";

struct ProtectedVolume {
  std::string name, path;
  bool encrypt = true;
  std::string tag;  // hex
  uint64_t files = 0, bytes = 0;
};

struct ProtectResult {
  std::string manifest_digest;
  std::string binary;          // the measured program, as resolved in the image
  std::string binary_sha256, runtime_sha256;
  std::vector<ProtectedVolume> volumes;
  size_t layers = 0, layers_rewritten = 0;
  uint64_t bytes_read = 0;     // uncompressed layer content read
  // The session document. It holds the volume keys: a secret.
  SecretBytes session_yaml;
};

// Called now and then with what was processed so far (uncompressed layer
// bytes and entries).
using ProgressFn = std::function<void(uint64_t bytes, uint64_t files)>;

StatusOr<ProtectResult> Protect(const ProtectOptions& opts, const ProgressFn& progress);

// A volume name for a directory path: "/var/lib/mysql" -> "var_lib_mysql".
std::string VolumeNameFor(std::string_view path);

}  // namespace cloister::image
