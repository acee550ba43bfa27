// Container images on disk, in the three forms `cloister image protect`
// reads and writes: an OCI image layout directory (`oci:DIR[:TAG]`), the
// same layout as one tar file (`oci-archive:FILE[:TAG]`), and the tar file
// `docker save` / `podman save` write (`docker-archive:FILE[:NAME:TAG]`).
// See docs/image.md.
//
// Reading unpacks an archive into a work directory so that every blob is a
// file; writing builds an OCI layout directory and, for the archive forms,
// packs it. Digests are checked when a blob is read, never trusted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloister/status.h"
#include "crypto/crypto.h"

namespace cloister::image {

enum class Transport { kOciDir, kOciArchive, kDockerArchive };

struct ImageRef {
  Transport transport = Transport::kOciDir;
  std::string path;
  // oci / oci-archive: the `org.opencontainers.image.ref.name` of the
  // manifest; docker-archive: the repository:tag in `RepoTags`.
  std::string tag;
};

// Parses "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]", "docker-archive:FILE[:NAME:TAG]".
StatusOr<ImageRef> ParseImageRef(std::string_view text);
std::string ImageRefToString(const ImageRef& ref);

// Media types (OCI image spec; Docker's schema 2 ones are read as these).
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

struct Blob {
  std::string media_type;
  std::string digest;  // "sha256:<64 hex>"
  uint64_t size = 0;
  std::string path;    // the file holding its bytes
};

struct Image {
  nlohmann::json config;     // the parsed image configuration
  Blob config_blob;
  std::vector<Blob> layers;  // bottom first; media types normalised to OCI's
  nlohmann::json manifest_annotations = nullptr;
};

// Reads the image `ref` names. Archives are unpacked below `work_dir`
// (which must exist); a layout directory is read in place. Every blob's
// size and digest are checked against its descriptor, the layers' only if
// `check_layers` (a caller that reads them all checks them as it reads).
StatusOr<Image> ReadImage(const ImageRef& ref, const std::string& work_dir, bool check_layers = true);

// "sha256:<hex>" of a file, and its size.
StatusOr<Blob> DigestFile(const std::string& path);
std::string DigestString(const crypto::Digest& d);

// Where an image being written keeps its blobs: `<layout>/blobs/sha256/`.
// For an `oci:` destination the layout is the destination directory; for
// the archive forms a directory below `work_dir`.
class ImageWriter {
 public:
  static StatusOr<ImageWriter> Begin(const ImageRef& ref, const std::string& work_dir);

  // The path a new blob should be written to before Adopt; unique per call.
  std::string TempBlobPath();
  // Moves (or, for a blob elsewhere, copies) `blob.path` into the blob
  // directory under its digest and returns the blob with its new path.
  StatusOr<Blob> Adopt(const Blob& blob, bool copy);

  // Writes the configuration and the manifest, and the index (oci), the
  // archive (oci-archive) or manifest.json (docker-archive). Returns the
  // manifest's digest.
  StatusOr<std::string> Finish(const nlohmann::json& config, const std::vector<Blob>& layers,
                               const nlohmann::json& manifest_annotations);

 private:
  ImageRef ref_;
  std::string layout_;  // the OCI layout directory being filled
  uint64_t temp_counter_ = 0;
};

// Normalises a layer media type: Docker's schema 2 layer types become
// OCI's; unknown or foreign (non-distributable) types are refused.
StatusOr<std::string> NormaliseLayerType(std::string_view media_type);

}  // namespace cloister::image
