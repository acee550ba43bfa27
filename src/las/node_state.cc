#include "las/node_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

#include "crypto/identity.h"
#include "os/secret_file.h"

namespace cloister::las {
namespace {

constexpr size_t kMaxCertificateFile = 64 * 1024;
constexpr int kNodeKeyDays = 3650;  // the self-signed TLS certificate; the CAS ignores its dates

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status WriteAll(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write", errno);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// A small file (a certificate); kNotFound if it does not exist.
StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(path + " does not exist");
    return ErrnoStatus(path, errno);
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxCertificateFile) {
      ::close(fd);
      return InvalidArgument(path + " is larger than " + std::to_string(kMaxCertificateFile) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

Status WriteFileAtomically(const std::string& path, std::span<const uint8_t> data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return ErrnoStatus(tmp, errno);
  Status s = WriteAll(fd, data);
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoStatus("fsync " + tmp, errno);
  if (::close(fd) != 0 && s.ok()) s = ErrnoStatus("close " + tmp, errno);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus("rename " + tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s.WithContext("writing " + path);
  }
  // The rename is durable only once the directory is.
  int dfd = ::open(DirOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoStatus("writing " + path + ": open directory", errno);
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) return ErrnoStatus("writing " + path + ": fsync directory", err);
  return Status::Ok();
}

StatusOr<StateDir> StateDir::Open(const std::string& path) {
  if (path.empty()) return InvalidArgument("the state directory path is empty");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus("state directory " + path, errno);
    if (::mkdir(path.c_str(), 0700) != 0) return ErrnoStatus("creating state directory " + path, errno);
    return StateDir(path);
  }
  if (!S_ISDIR(st.st_mode)) return InvalidArgument("state directory " + path + " is not a directory");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return PermissionDenied("state directory " + path + " is accessible by other users (mode " + mode +
                            "); run: chmod 700 " + path);
  }
  return StateDir(path);
}

StatusOr<NodeKey> StateDir::LoadOrCreateNodeKey(bool* created) const {
  *created = false;
  const std::string key_path = File("node.key"), self_path = File("node-self.crt");
  struct stat st;
  if (::lstat(key_path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(key_path, errno);
    ASSIGN_OR_RETURN(crypto::NewIdentity id, crypto::CreateIdentity(kNodeKeyDays));
    RETURN_IF_ERROR(WriteFileAtomically(self_path, AsBytes(id.certificate_pem)));
    RETURN_IF_ERROR(os::WriteNewSecretFile(key_path, id.private_key_pem.UnsafeBytes()));
    *created = true;
  }
  NodeKey out;
  ASSIGN_OR_RETURN(out.tls.private_key_pem, os::ReadPrivateFile(key_path, 64 * 1024));
  auto self = ReadSmallFile(self_path);
  if (!self.ok()) {
    if (self.status().code() == StatusCode::kNotFound) {
      return FailedPrecondition(self_path + " is missing next to " + key_path +
                                "; the node key cannot be used without it");
    }
    return self.status();
  }
  out.tls.certificate_pem = std::move(*self);
  auto key_id = crypto::IdentityOfPrivateKey(out.tls.private_key_pem);
  if (!key_id.ok()) return key_id.status().WithContext(key_path);
  auto cert_id = crypto::IdentityOfCertificate(out.tls.certificate_pem);
  if (!cert_id.ok()) return cert_id.status().WithContext(self_path);
  if (*key_id != *cert_id) return IntegrityError(self_path + " does not belong to " + key_path);
  out.node_id = *key_id;
  return out;
}

StatusOr<std::optional<NodeCertificate>> StateDir::LoadNodeCertificate(const std::string& node_id) const {
  auto cert = ReadSmallFile(File("node.crt"));
  if (!cert.ok()) {
    if (cert.status().code() == StatusCode::kNotFound) return std::optional<NodeCertificate>();
    return cert.status();
  }
  auto ca = ReadSmallFile(File("ca.crt"));
  if (!ca.ok()) return ca.status().WithContext("node.crt exists but the CA certificate cannot be read");
  ASSIGN_OR_RETURN(NodeCertificate c, CheckNodeCertificate(*cert, node_id, *ca, File("node.crt")));
  // The LAS wrote node.crt when it received the certificate. A time stamp
  // in the future (a clock that was ahead, a copied directory) counts as
  // "now", so it can only make the next renewal come sooner.
  struct stat st;
  if (::stat(File("node.crt").c_str(), &st) == 0) {
    c.received_at = std::min<int64_t>(st.st_mtim.tv_sec, static_cast<int64_t>(std::time(nullptr)));
  }
  return std::optional<NodeCertificate>(std::move(c));
}

Status StateDir::StoreCertificates(const std::string& node_certificate_pem,
                                   const std::string& ca_certificate_pem) const {
  // The CA changes only if the CAS was set up anew; skipping the unchanged
  // file leaves no moment in which ca.crt and node.crt disagree.
  auto old_ca = ReadSmallFile(File("ca.crt"));
  if (!old_ca.ok() || *old_ca != ca_certificate_pem) {
    RETURN_IF_ERROR(WriteFileAtomically(File("ca.crt"), AsBytes(ca_certificate_pem)));
  }
  return WriteFileAtomically(File("node.crt"), AsBytes(node_certificate_pem));
}

NodeCredentials::NodeCredentials(SecretBytes key_pem, std::string node_id, NodeCertificate certificate)
    : key_pem_(std::move(key_pem)),
      node_id_(std::move(node_id)),
      certificate_(std::make_shared<const NodeCertificate>(std::move(certificate))) {
  auto signer = crypto::P256Signer::New(key_pem_);
  if (signer.ok()) signer_ = std::move(*signer);
}

std::shared_ptr<const NodeCertificate> NodeCredentials::certificate() const {
  std::lock_guard<std::mutex> lock(mu_);
  return certificate_;
}

void NodeCredentials::ReplaceCertificate(NodeCertificate certificate) {
  auto next = std::make_shared<const NodeCertificate>(std::move(certificate));
  std::lock_guard<std::mutex> lock(mu_);
  certificate_ = std::move(next);
}

}  // namespace cloister::las
