#include "os/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/bytes.h"
#include "crypto/crypto.h"

namespace cloister::os {

StatusOr<SecretBytes> ReadPrivateFile(const std::string& path, size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return PermissionDenied(path + " is accessible by other users (mode " + mode + "); run: chmod 600 " + path);
  }
  if (static_cast<uint64_t>(st.st_size) > max_size) {
    ::close(fd);
    return InvalidArgument(path + " is larger than " + std::to_string(max_size) + " bytes");
  }
  SecretBytes buf(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.UnsafeMutableBytes().data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return n == 0 ? IoError(path + " changed while being read") : ErrnoStatus(path, err);
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return buf;
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

StatusOr<SecretBytes> ReadKeyFile(const std::string& path, std::string_view prefix, size_t size,
                                  std::string_view what) {
  auto file = ReadPrivateFile(path, prefix.size() + 2 * size + 2);
  if (!file.ok()) {
    if (file.status().code() == StatusCode::kInvalidArgument) {
      return InvalidArgument(std::string(what) + " file " + path + " is not a Cloister " + std::string(what));
    }
    return file.status().WithContext(std::string(what) + " file");
  }
  auto all = file->UnsafeBytes();
  std::string_view text(reinterpret_cast<const char*>(all.data()), all.size());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  Status bad = InvalidArgument(std::string(what) + " file " + path + " is not a Cloister " + std::string(what));
  if (text.size() != prefix.size() + 2 * size || text.substr(0, prefix.size()) != prefix) return bad;
  SecretBytes key(size);
  auto out = key.UnsafeMutableBytes();
  for (size_t i = 0; i < size; ++i) {
    auto byte = HexDecode(text.substr(prefix.size() + 2 * i, 2));
    if (!byte) return bad;
    out[i] = (*byte)[0];
  }
  return key;
}

StatusOr<SecretBytes> ReadOrCreateKeyFile(const std::string& path, std::string_view prefix, size_t size,
                                          std::string_view what, bool* created) {
  *created = false;
  ASSIGN_OR_RETURN(SecretBytes key, crypto::RandomSecret(size));
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBytes text(prefix.size() + 2 * size + 1);
  auto t = text.UnsafeMutableBytes();
  std::memcpy(t.data(), prefix.data(), prefix.size());
  auto k = key.UnsafeBytes();
  for (size_t i = 0; i < k.size(); ++i) {
    t[prefix.size() + 2 * i] = static_cast<uint8_t>(kDigits[k[i] >> 4]);
    t[prefix.size() + 2 * i + 1] = static_cast<uint8_t>(kDigits[k[i] & 0xf]);
  }
  t[t.size() - 1] = '\n';
  Status s = WriteNewSecretFile(path, t);
  if (s.code() == StatusCode::kAlreadyExists) return ReadKeyFile(path, prefix, size, what);
  if (!s.ok()) return s.WithContext(std::string(what) + " file");
  *created = true;
  return key;
}

}  // namespace cloister::os
