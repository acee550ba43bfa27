// The LAS's state directory and the node credentials held in memory.
//
// State directory (mode 0700; refused when group or others can access it):
//   node.key       the node's P-256 private key (PKCS#8 PEM, 0600), made on
//                  first start; the node id is the hash of its public key
//   node-self.crt  a self-signed certificate for node.key: the TLS client
//                  certificate the LAS presents to the CAS
//   node.crt       the node certificate the CAS issued (join, renewal); its
//                  presence means "this node has joined"
//   ca.crt         the CAS's node CA certificate, as returned with node.crt
// Certificates are replaced atomically (temporary file, fsync, rename,
// fsync of the directory), so a crash leaves the old or the new one.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "base/secret.h"
#include "cloister/status.h"
#include "crypto/signature.h"
#include "las/node_certificate.h"
#include "net/tls.h"

namespace cloister::las {

// Writes `data` to `path` so that, after a crash, `path` holds either its
// old content or all of `data`. The file gets the process umask's mode.
Status WriteFileAtomically(const std::string& path, std::span<const uint8_t> data);

struct NodeKey {
  net::TlsIdentity tls;  // node-self.crt + node.key
  std::string node_id;   // hex SHA-256 of the public key
};

class StateDir {
 public:
  // Creates the directory (0700) if missing; refuses an existing one that
  // is not a directory or that group or others can access.
  static StatusOr<StateDir> Open(const std::string& path);

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Loads node.key and node-self.crt, or creates both when node.key does
  // not exist (`*created` says which). The self-signed certificate is
  // written first, so a node.key never exists without it.
  StatusOr<NodeKey> LoadOrCreateNodeKey(bool* created) const;

  // node.crt and ca.crt, or nullopt when node.crt does not exist. The
  // certificate is checked against the node key and the CA.
  StatusOr<std::optional<NodeCertificate>> LoadNodeCertificate(const std::string& node_id) const;

  // Replaces ca.crt, then node.crt (node.crt last: it marks a completed
  // join).
  Status StoreCertificates(const std::string& node_certificate_pem, const std::string& ca_certificate_pem) const;

 private:
  explicit StateDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// The node key and the current node certificate, shared by the request
// workers and the renewal thread. The certificate is swapped whole, so a
// reader always sees one consistent certificate.
class NodeCredentials {
 public:
  NodeCredentials(SecretBytes key_pem, std::string node_id, NodeCertificate certificate);
  NodeCredentials(const NodeCredentials&) = delete;
  NodeCredentials& operator=(const NodeCredentials&) = delete;

  const SecretBytes& key_pem() const { return key_pem_; }
  // The key parsed once, or null if it did not parse (then callers use
  // key_pem(), which reports why).
  const crypto::P256Signer* signer() const { return signer_.get(); }
  const std::string& node_id() const { return node_id_; }

  std::shared_ptr<const NodeCertificate> certificate() const;
  void ReplaceCertificate(NodeCertificate certificate);

 private:
  const SecretBytes key_pem_;
  std::unique_ptr<crypto::P256Signer> signer_;
  const std::string node_id_;
  mutable std::mutex mu_;
  std::shared_ptr<const NodeCertificate> certificate_;  // guarded by mu_
};

}  // namespace cloister::las
