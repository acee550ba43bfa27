#include "image/oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "attest/measure.h"
#include "base/bytes.h"
#include "image/archive_util.h"

namespace cloister::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max = size_t{64} << 20) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot be read");
  std::ostringstream out;
  out << in.rdbuf();
  std::string s = out.str();
  if (s.size() > max) return InvalidArgument(path + ": larger than " + std::to_string(max >> 20) + " MiB");
  return s;
}

StatusOr<json> ParseJsonFile(const std::string& path, const std::string& what) {
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(what + " is not valid JSON");
  return j;
}

Status WriteFileAtomically(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create " + tmp, errno);
  const char* p = data.data();
  size_t n = data.size();
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return ErrnoStatus("write " + tmp, e);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return ErrnoStatus("write " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus("rename " + tmp, errno);
  return Status::Ok();
}

// Unpacks the tar file `archive_path` into the directory `dir`, refusing
// absolute names, `..` and writes through symbolic links.
Status Unpack(const std::string& archive_path, const std::string& dir) {
  std::unique_ptr<struct archive, ArchiveReadDeleter> in(archive_read_new());
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return ArchiveError(in.get(), archive_path);
  }
  std::unique_ptr<struct archive, ArchiveWriteDeleter> out(archive_write_disk_new());
  // Names are checked here (the destination itself is absolute); only
  // files and directories are written, never through a symbolic link.
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  struct archive_entry* e = nullptr;
  while (true) {
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) return ArchiveError(in.get(), archive_path);
    const mode_t type = archive_entry_filetype(e);
    if (type != AE_IFREG && type != AE_IFDIR) {
      return InvalidArgument(archive_path + ": " + archive_entry_pathname(e) +
                             " is neither a file nor a directory; not an image archive");
    }
    const std::string inner = archive_entry_pathname(e);
    if (inner.empty() || inner[0] == '/' || inner == ".." || inner.rfind("../", 0) == 0 ||
        inner.find("/../") != std::string::npos || (inner.size() >= 3 && inner.substr(inner.size() - 3) == "/..")) {
      return InvalidArgument(archive_path + ": the entry " + inner + " points outside the archive");
    }
    const std::string name = dir + "/" + inner;
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    if (archive_write_header(out.get(), e) != ARCHIVE_OK) return ArchiveError(out.get(), name);
    const void* buf;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(in.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(out.get(), buf, size, offset) != ARCHIVE_OK) {
        return ArchiveError(out.get(), name);
      }
    }
    if (r != ARCHIVE_EOF) return ArchiveError(in.get(), archive_path);
    if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) return ArchiveError(out.get(), name);
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) return ArchiveError(out.get(), dir);
  return Status::Ok();
}

// A tar file built from files on disk (the archive forms of an image).
class TarBuilder {
 public:
  Status Open(const std::string& path) {
    a_.reset(archive_write_new());
    archive_write_set_format_pax_restricted(a_.get());
    if (archive_write_open_filename(a_.get(), path.c_str()) != ARCHIVE_OK) return ArchiveError(a_.get(), path);
    path_ = path;
    return Status::Ok();
  }
  Status AddDir(const std::string& name) {
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFDIR);
    archive_entry_set_perm(e.get(), 0755);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return ArchiveError(a_.get(), path_);
    return Status::Ok();
  }
  Status AddFile(const std::string& name, const std::string& src) {
    int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open " + src, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return ErrnoStatus("stat " + src, e);
    }
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), st.st_size);
    Status s;
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) s = ArchiveError(a_.get(), path_);
    std::vector<char> buf(size_t{1} << 20);
    while (s.ok()) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) s = ErrnoStatus("read " + src, errno);
      if (n <= 0) break;
      if (archive_write_data(a_.get(), buf.data(), static_cast<size_t>(n)) != n) s = ArchiveError(a_.get(), path_);
    }
    ::close(fd);
    return s;
  }
  Status AddBytes(const std::string& name, std::string_view data) {
    std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) return ArchiveError(a_.get(), path_);
    if (archive_write_data(a_.get(), data.data(), data.size()) != static_cast<la_ssize_t>(data.size())) {
      return ArchiveError(a_.get(), path_);
    }
    return Status::Ok();
  }
  Status Close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) return ArchiveError(a_.get(), path_);
    return Status::Ok();
  }

 private:
  std::unique_ptr<struct archive, ArchiveWriteDeleter> a_;
  std::string path_;
};

bool IsHexDigest(std::string_view d) {
  if (d.size() != 7 + 64 || d.substr(0, 7) != "sha256:") return false;
  for (char c : d.substr(7)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A descriptor of the layout at `layout`, its blob checked.
StatusOr<Blob> CheckedBlob(const std::string& layout, const json& desc, const std::string& what, bool check = true) {
  if (!desc.is_object() || !desc.contains("digest") || !desc["digest"].is_string() || !desc.contains("size") ||
      !desc["size"].is_number_unsigned()) {
    return InvalidArgument(what + ": a descriptor without a digest or size");
  }
  Blob b;
  b.digest = desc["digest"].get<std::string>();
  b.size = desc["size"].get<uint64_t>();
  b.media_type = desc.value("mediaType", "");
  if (!IsHexDigest(b.digest)) return InvalidArgument(what + ": unsupported digest " + b.digest + " (sha256 only)");
  b.path = layout + "/blobs/sha256/" + b.digest.substr(7);
  if (!check) {
    std::error_code ec;
    if (!fs::is_regular_file(b.path, ec)) return NotFound(what + ": blob " + b.digest + " is missing");
    return b;
  }
  ASSIGN_OR_RETURN(Blob actual, DigestFile(b.path));
  if (actual.size != b.size || actual.digest != b.digest) {
    return IntegrityError(what + ": blob " + b.digest + " does not match its digest or size");
  }
  return b;
}

std::string HostArchitecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#else
  return "";
#endif
}

StatusOr<Image> ReadManifest(const std::string& layout, const json& desc, const std::string& what, bool check_layers) {
  ASSIGN_OR_RETURN(Blob mblob, CheckedBlob(layout, desc, what));
  ASSIGN_OR_RETURN(json m, ParseJsonFile(mblob.path, what + " manifest"));
  std::string mt = m.value("mediaType", mblob.media_type);
  if (mt == kOciIndex || mt == "application/vnd.docker.distribution.manifest.list.v2+json") {
    // A multi-platform image: the host's platform.
    const std::string arch = HostArchitecture();
    for (const auto& d : m.value("manifests", json::array())) {
      const json p = d.value("platform", json::object());
      if (p.value("os", "") == "linux" && p.value("architecture", "") == arch) {
        return ReadManifest(layout, d, what, check_layers);
      }
    }
    return NotFound(what + ": the image index has no manifest for linux/" + arch);
  }
  if (mt != kOciManifest && mt != "application/vnd.docker.distribution.manifest.v2+json") {
    return InvalidArgument(what + ": unsupported manifest type " + (mt.empty() ? "(none)" : mt));
  }
  if (!m.contains("config") || !m.contains("layers") || !m["layers"].is_array()) {
    return InvalidArgument(what + ": the manifest has no config or layers");
  }
  Image img;
  ASSIGN_OR_RETURN(img.config_blob, CheckedBlob(layout, m["config"], what + " config"));
  ASSIGN_OR_RETURN(img.config, ParseJsonFile(img.config_blob.path, what + " config"));
  size_t i = 0;
  for (const auto& l : m["layers"]) {
    ASSIGN_OR_RETURN(Blob b, CheckedBlob(layout, l, what + " layer " + std::to_string(i), check_layers));
    ASSIGN_OR_RETURN(b.media_type, NormaliseLayerType(b.media_type));
    img.layers.push_back(std::move(b));
    ++i;
  }
  if (m.contains("annotations")) img.manifest_annotations = m["annotations"];
  return img;
}

StatusOr<Image> ReadOciLayout(const std::string& layout, const std::string& tag, const std::string& what,
                              bool check_layers) {
  ASSIGN_OR_RETURN(json index, ParseJsonFile(layout + "/index.json", what + " index.json"));
  const json manifests = index.value("manifests", json::array());
  const json* chosen = nullptr;
  std::string names;
  for (const auto& d : manifests) {
    std::string name;
    if (d.contains("annotations") && d["annotations"].contains(kRefNameAnnotation)) {
      name = d["annotations"][std::string(kRefNameAnnotation)].get<std::string>();
    }
    names += (names.empty() ? "" : ", ") + (name.empty() ? "(untagged)" : name);
    if (tag.empty() ? manifests.size() == 1 : name == tag) chosen = &d;
  }
  if (chosen == nullptr) {
    if (manifests.empty()) return NotFound(what + ": the layout holds no image");
    if (tag.empty()) return InvalidArgument(what + ": the layout holds several images (" + names + "); name one as DIR:TAG");
    return NotFound(what + ": no image tagged " + tag + " (there are: " + names + ")");
  }
  return ReadManifest(layout, *chosen, what, check_layers);
}

StatusOr<Image> ReadDockerArchive(const std::string& dir, const std::string& tag, const std::string& what) {
  ASSIGN_OR_RETURN(json m, ParseJsonFile(dir + "/manifest.json", what + " manifest.json"));
  if (!m.is_array() || m.empty()) return InvalidArgument(what + ": manifest.json lists no image");
  const json* chosen = nullptr;
  for (const auto& item : m) {
    bool match = tag.empty() ? m.size() == 1 : false;
    for (const auto& t : item.value("RepoTags", json::array())) {
      if (t.is_string() && t.get<std::string>() == tag) match = true;
    }
    if (match) chosen = &item;
  }
  if (chosen == nullptr) {
    return tag.empty() ? InvalidArgument(what + ": the archive holds several images; name one as FILE:NAME:TAG")
                       : NotFound(what + ": no image tagged " + tag);
  }
  auto inside = [&](const std::string& rel) -> StatusOr<std::string> {
    if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos) {
      return InvalidArgument(what + ": manifest.json names " + rel + ", outside the archive");
    }
    return dir + "/" + rel;
  };
  Image img;
  ASSIGN_OR_RETURN(std::string config_path, inside(chosen->value("Config", "")));
  ASSIGN_OR_RETURN(img.config_blob, DigestFile(config_path));
  img.config_blob.media_type = std::string(kOciConfig);
  ASSIGN_OR_RETURN(img.config, ParseJsonFile(config_path, what + " config"));
  const json diff_ids = img.config.contains("rootfs") ? img.config["rootfs"].value("diff_ids", json::array())
                                                      : json::array();
  for (const auto& l : chosen->value("Layers", json::array())) {
    ASSIGN_OR_RETURN(std::string p, inside(l.get<std::string>()));
    ASSIGN_OR_RETURN(Blob b, DigestFile(p));
    // The layer files are tars, compressed or not: tell by their first bytes.
    uint8_t magic[4] = {0, 0, 0, 0};
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      size_t got = std::fread(magic, 1, sizeof magic, f);
      std::fclose(f);
      (void)got;
    }
    if (magic[0] == 0x1f && magic[1] == 0x8b) {
      b.media_type = std::string(kOciLayerGzip);
    } else if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
      b.media_type = std::string(kOciLayerZstd);
    } else {
      b.media_type = std::string(kOciLayerTar);
    }
    // An uncompressed layer file's digest is its diff ID: check it.
    const size_t i = img.layers.size();
    if (b.media_type == kOciLayerTar && i < diff_ids.size() && diff_ids[i] != b.digest) {
      return IntegrityError(what + ": layer " + std::to_string(i) + " does not match the config's diff ID");
    }
    img.layers.push_back(std::move(b));
  }
  if (diff_ids.size() != img.layers.size()) {
    return InvalidArgument(what + ": the config lists " + std::to_string(diff_ids.size()) + " layers, manifest.json " +
                           std::to_string(img.layers.size()));
  }
  return img;
}

}  // namespace

StatusOr<ImageRef> ParseImageRef(std::string_view text) {
  ImageRef ref;
  std::string_view rest;
  auto starts = [&](std::string_view p) {
    if (text.substr(0, p.size()) != p) return false;
    rest = text.substr(p.size());
    return true;
  };
  if (starts("oci:")) {
    ref.transport = Transport::kOciDir;
  } else if (starts("oci-archive:")) {
    ref.transport = Transport::kOciArchive;
  } else if (starts("docker-archive:")) {
    ref.transport = Transport::kDockerArchive;
  } else {
    return InvalidArgument(std::string(text) + ": an image is oci:DIR[:TAG], oci-archive:FILE[:TAG] or "
                           "docker-archive:FILE[:NAME:TAG]");
  }
  size_t colon = rest.find(':');
  ref.path = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) ref.tag = std::string(rest.substr(colon + 1));
  if (ref.path.empty()) return InvalidArgument(std::string(text) + ": no path");
  if (colon != std::string_view::npos && ref.tag.empty()) return InvalidArgument(std::string(text) + ": empty tag");
  if (ref.transport == Transport::kDockerArchive && !ref.tag.empty() && ref.tag.find(':') == std::string::npos) {
    return InvalidArgument(std::string(text) + ": a docker-archive reference is NAME:TAG");
  }
  return ref;
}

std::string ImageRefToString(const ImageRef& ref) {
  std::string t = ref.transport == Transport::kOciDir       ? "oci:"
                  : ref.transport == Transport::kOciArchive ? "oci-archive:"
                                                            : "docker-archive:";
  return t + ref.path + (ref.tag.empty() ? "" : ":" + ref.tag);
}

StatusOr<std::string> NormaliseLayerType(std::string_view mt) {
  if (mt == kOciLayerTar || mt == kOciLayerGzip || mt == kOciLayerZstd) return std::string(mt);
  if (mt == "application/vnd.docker.image.rootfs.diff.tar.gzip") return std::string(kOciLayerGzip);
  if (mt == "application/vnd.docker.image.rootfs.diff.tar") return std::string(kOciLayerTar);
  return InvalidArgument("unsupported layer media type " + std::string(mt.empty() ? "(none)" : mt));
}

std::string DigestString(const crypto::Digest& d) { return "sha256:" + HexEncode(d); }

StatusOr<Blob> DigestFile(const std::string& path) {
  ASSIGN_OR_RETURN(attest::FileMeasurement m, attest::MeasureFile(path));
  Blob b;
  b.digest = "sha256:" + m.sha256;
  b.size = m.size;
  b.path = path;
  return b;
}

StatusOr<Image> ReadImage(const ImageRef& ref, const std::string& work_dir, bool check_layers) {
  const std::string what = ImageRefToString(ref);
  if (ref.transport == Transport::kOciDir) {
    if (!fs::is_regular_file(ref.path + "/oci-layout")) {
      return NotFound(what + ": not an OCI image layout (no oci-layout file)");
    }
    return ReadOciLayout(ref.path, ref.tag, what, check_layers);
  }
  if (!fs::is_regular_file(ref.path)) return NotFound(what + ": no such file");
  const std::string dir = work_dir + "/source";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("create " + dir + ": " + ec.message());
  RETURN_IF_ERROR(Unpack(ref.path, dir));
  if (ref.transport == Transport::kOciArchive) {
    if (!fs::is_regular_file(dir + "/oci-layout")) return InvalidArgument(what + ": not an OCI archive (no oci-layout)");
    return ReadOciLayout(dir, ref.tag, what, check_layers);
  }
  return ReadDockerArchive(dir, ref.tag, what);
}

StatusOr<ImageWriter> ImageWriter::Begin(const ImageRef& ref, const std::string& work_dir) {
  ImageWriter w;
  w.ref_ = ref;
  w.layout_ = ref.transport == Transport::kOciDir ? ref.path : work_dir + "/dest";
  std::error_code ec;
  fs::create_directories(w.layout_ + "/blobs/sha256", ec);
  if (ec) return IoError("create " + w.layout_ + "/blobs/sha256: " + ec.message());
  if (ref.transport == Transport::kOciDir) {
    if (fs::exists(ref.path + "/index.json") && !fs::is_regular_file(ref.path + "/oci-layout")) {
      return FailedPrecondition(ref.path + " has an index.json but is not an OCI image layout");
    }
  }
  return w;
}

std::string ImageWriter::TempBlobPath() {
  return layout_ + "/blobs/sha256/.incoming-" + std::to_string(::getpid()) + "-" + std::to_string(temp_counter_++);
}

StatusOr<Blob> ImageWriter::Adopt(const Blob& blob, bool copy) {
  Blob out = blob;
  out.path = layout_ + "/blobs/sha256/" + blob.digest.substr(7);
  if (out.path == blob.path) return out;
  std::error_code ec;
  if (fs::exists(out.path, ec)) {
    // Same digest, same bytes (checked when it was written or read).
    if (!copy) fs::remove(blob.path, ec);
    return out;
  }
  if (copy) {
    // Blobs are never written in place: a second name for the same file
    // is as good as a copy, when both are on one file system.
    if (::link(blob.path.c_str(), out.path.c_str()) == 0) return out;
    const std::string tmp = TempBlobPath();
    fs::copy_file(blob.path, tmp, ec);
    if (ec) return IoError("copy " + blob.path + ": " + ec.message());
    if (::rename(tmp.c_str(), out.path.c_str()) != 0) return ErrnoStatus("rename " + tmp, errno);
  } else if (::rename(blob.path.c_str(), out.path.c_str()) != 0) {
    return ErrnoStatus("rename " + blob.path, errno);
  }
  return out;
}

StatusOr<std::string> ImageWriter::Finish(const json& config, const std::vector<Blob>& layers,
                                          const json& manifest_annotations) {
  // The configuration: its bytes are what its digest names.
  const std::string config_text = config.dump();
  const crypto::Digest cd = crypto::Sha256(AsBytes(config_text));
  Blob cblob{std::string(kOciConfig), DigestString(cd), config_text.size(),
             layout_ + "/blobs/sha256/" + HexEncode(cd)};
  RETURN_IF_ERROR(WriteFileAtomically(cblob.path, config_text));
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifest},
                   {"config", {{"mediaType", cblob.media_type}, {"digest", cblob.digest}, {"size", cblob.size}}},
                   {"layers", json::array()}};
  for (const Blob& l : layers) {
    manifest["layers"].push_back({{"mediaType", l.media_type}, {"digest", l.digest}, {"size", l.size}});
  }
  if (manifest_annotations.is_object() && !manifest_annotations.empty()) {
    manifest["annotations"] = manifest_annotations;
  }
  const std::string manifest_text = manifest.dump();
  const crypto::Digest md = crypto::Sha256(AsBytes(manifest_text));
  const std::string manifest_digest = DigestString(md);
  RETURN_IF_ERROR(WriteFileAtomically(layout_ + "/blobs/sha256/" + HexEncode(md), manifest_text));

  if (ref_.transport == Transport::kDockerArchive) {
    // docker save's form: manifest.json, the configuration, one tar per layer.
    json dm = json::array();
    json item = {{"Config", HexEncode(cd) + ".json"}, {"RepoTags", json::array()}, {"Layers", json::array()}};
    if (!ref_.tag.empty()) item["RepoTags"].push_back(ref_.tag);
    for (const Blob& l : layers) item["Layers"].push_back(l.digest.substr(7) + ".tar");
    dm.push_back(item);
    TarBuilder tar;
    const std::string tmp = ref_.path + ".tmp";
    RETURN_IF_ERROR(tar.Open(tmp));
    RETURN_IF_ERROR(tar.AddBytes(HexEncode(cd) + ".json", config_text));
    std::set<std::string> added;
    for (const Blob& l : layers) {
      if (added.insert(l.digest).second) RETURN_IF_ERROR(tar.AddFile(l.digest.substr(7) + ".tar", l.path));
    }
    RETURN_IF_ERROR(tar.AddBytes("manifest.json", dm.dump()));
    RETURN_IF_ERROR(tar.Close());
    if (::rename(tmp.c_str(), ref_.path.c_str()) != 0) return ErrnoStatus("rename " + tmp, errno);
    return manifest_digest;
  }

  // index.json: this image under its tag, replacing an image of the same tag.
  json index = {{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", json::array()}};
  const std::string index_path = layout_ + "/index.json";
  if (ref_.transport == Transport::kOciDir && fs::exists(index_path)) {
    ASSIGN_OR_RETURN(json old, ParseJsonFile(index_path, ImageRefToString(ref_) + " index.json"));
    for (const auto& d : old.value("manifests", json::array())) {
      std::string name;
      if (d.contains("annotations") && d["annotations"].contains(kRefNameAnnotation)) {
        name = d["annotations"][std::string(kRefNameAnnotation)].get<std::string>();
      }
      if (!ref_.tag.empty() && name == ref_.tag) continue;
      if (ref_.tag.empty() && name.empty()) continue;
      index["manifests"].push_back(d);
    }
  }
  json desc = {{"mediaType", kOciManifest}, {"digest", manifest_digest}, {"size", manifest_text.size()}};
  if (!ref_.tag.empty()) desc["annotations"] = {{std::string(kRefNameAnnotation), ref_.tag}};
  index["manifests"].push_back(desc);
  RETURN_IF_ERROR(WriteFileAtomically(layout_ + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  RETURN_IF_ERROR(WriteFileAtomically(index_path, index.dump()));
  if (ref_.transport == Transport::kOciDir) return manifest_digest;

  // oci-archive: the layout as one tar.
  TarBuilder tar;
  const std::string tmp = ref_.path + ".tmp";
  RETURN_IF_ERROR(tar.Open(tmp));
  RETURN_IF_ERROR(tar.AddFile("oci-layout", layout_ + "/oci-layout"));
  RETURN_IF_ERROR(tar.AddFile("index.json", index_path));
  RETURN_IF_ERROR(tar.AddDir("blobs"));
  RETURN_IF_ERROR(tar.AddDir("blobs/sha256"));
  RETURN_IF_ERROR(tar.AddFile("blobs/sha256/" + cblob.digest.substr(7), cblob.path));
  RETURN_IF_ERROR(tar.AddFile("blobs/sha256/" + manifest_digest.substr(7),
                              layout_ + "/blobs/sha256/" + manifest_digest.substr(7)));
  std::set<std::string> added;
  for (const Blob& l : layers) {
    if (added.insert(l.digest).second) RETURN_IF_ERROR(tar.AddFile("blobs/sha256/" + l.digest.substr(7), l.path));
  }
  RETURN_IF_ERROR(tar.Close());
  if (::rename(tmp.c_str(), ref_.path.c_str()) != 0) return ErrnoStatus("rename " + tmp, errno);
  return manifest_digest;
}

}  // namespace cloister::image
