#include "cli/keyfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/bytes.h"
#include "cloister/volume.h"
#include "crypto/crypto.h"

namespace cloister::cli {
namespace {

constexpr char kPrefix[] = "cloister-volume-key-v1:";
constexpr size_t kPrefixLen = sizeof(kPrefix) - 1;

}  // namespace

StatusOr<SecretBytes> ReadKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus("key file " + path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("key file " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return PermissionDenied("key file " + path + " is accessible by other users (mode " + mode +
                            "); run: chmod 600 " + path);
  }
  SecretBytes buf(256);
  ssize_t n = ::read(fd, buf.UnsafeMutableBytes().data(), buf.size());
  ::close(fd);
  if (n < 0) return ErrnoStatus("key file " + path, errno);
  std::string_view text(reinterpret_cast<const char*>(buf.UnsafeBytes().data()), static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (text.size() != kPrefixLen + 2 * volume::kVolumeKeySize || text.compare(0, kPrefixLen, kPrefix) != 0) {
    return InvalidArgument("key file " + path + " is not a Cloister volume key");
  }
  SecretBytes key(volume::kVolumeKeySize);
  auto out = key.UnsafeMutableBytes();
  for (size_t i = 0; i < out.size(); ++i) {
    auto byte = HexDecode(text.substr(kPrefixLen + 2 * i, 2));
    if (!byte) return InvalidArgument("key file " + path + " is not a Cloister volume key");
    out[i] = (*byte)[0];
  }
  return key;
}

Status WriteNewSecretFile(const std::string& path, std::span<const uint8_t> data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ErrnoStatus(path, errno);
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (ok) {
    // The file must survive a power loss as surely as what it protects.
    size_t slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, std::max<size_t>(slash, 1));
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && ::fsync(dfd) == 0;
    err = errno;
    if (dfd >= 0) ::close(dfd);
  }
  if (!ok) {
    ::unlink(path.c_str());
    return ErrnoStatus("writing " + path, err);
  }
  return Status::Ok();
}

StatusOr<SecretBytes> ReadOrCreateKeyFile(const std::string& path, bool* created) {
  *created = false;
  auto key = crypto::RandomSecret(volume::kVolumeKeySize);
  if (!key.ok()) return key.status();
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBytes text(kPrefixLen + 2 * volume::kVolumeKeySize + 1);
  auto t = text.UnsafeMutableBytes();
  std::memcpy(t.data(), kPrefix, kPrefixLen);
  auto k = key->UnsafeBytes();
  for (size_t i = 0; i < k.size(); ++i) {
    t[kPrefixLen + 2 * i] = static_cast<uint8_t>(kDigits[k[i] >> 4]);
    t[kPrefixLen + 2 * i + 1] = static_cast<uint8_t>(kDigits[k[i] & 0xf]);
  }
  t[t.size() - 1] = '\n';
  Status s = WriteNewSecretFile(path, t);
  if (s.code() == StatusCode::kAlreadyExists) return ReadKeyFile(path);
  if (!s.ok()) return s.WithContext("key file");
  *created = true;
  return key;
}

}  // namespace cloister::cli
