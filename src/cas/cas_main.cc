#include "cas/cas_main.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <yaml-cpp/yaml.h>

#include "base/bytes.h"
#include "cas/http_api.h"
#include "cas/service.h"
#include "net/http_client.h"
#include "crypto/identity.h"
#include "crypto/x509.h"
#include "os/daemon.h"
#include "os/secret_file.h"

namespace cloister::cas {
namespace {

constexpr char kUnsealKeyPrefix[] = "cloister-unseal-key-v1:";

struct Config {
  std::string state_dir;
  std::string config_file;
  std::string unseal_key_file;
  std::string ports_file;
  ServerOptions server;
  std::vector<std::string> admins;
  int64_t node_certificate_seconds = 86400;
  std::string pccs_url, pccs_ca_file;
  // PEM files of the TPM manufacturers' CAs that EK certificates must
  // chain to (docs/protocol.md section 4.1).
  std::vector<std::string> tpm_ek_ca_files;
  bool validate_only = false;
};

int Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "cloister-cas: %s%s%s\n", what.c_str(), what.empty() ? "" : ": ", s.message().c_str());
  return 1;
}

// Applies a YAML config file; flags given on the command line win.
Status LoadConfigFile(const std::string& path, Config& c, const CLI::App& app) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("config file " + path + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) return InvalidArgument("config file " + path + " must be a YAML mapping");
  auto str = [&](const char* key, const char* flag, std::string& out) -> Status {
    if (!root[key]) return Status::Ok();
    if (!root[key].IsScalar()) return InvalidArgument("config file " + path + ": " + key + " must be a string");
    if (app.count(flag) == 0) out = root[key].as<std::string>();
    return Status::Ok();
  };
  for (const auto& kv : root) {
    std::string k = kv.first.as<std::string>();
    if (k != "state_dir" && k != "api_listen" && k != "attest_listen" && k != "unseal_key_file" && k != "threads" &&
        k != "log_requests" && k != "read_timeout_seconds" && k != "admins" && k != "node_certificate_seconds" &&
        k != "pccs_url" && k != "pccs_ca_file" && k != "tpm_ek_cas") {
      return InvalidArgument("config file " + path + ": unknown field '" + k +
                             "' (allowed: state_dir, api_listen, attest_listen, unseal_key_file, threads, "
                             "read_timeout_seconds, log_requests, admins, node_certificate_seconds, pccs_url, pccs_ca_file, "
                             "tpm_ek_cas)");
    }
  }
  RETURN_IF_ERROR(str("state_dir", "--state-dir", c.state_dir));
  RETURN_IF_ERROR(str("api_listen", "--api-listen", c.server.api_listen));
  RETURN_IF_ERROR(str("attest_listen", "--attest-listen", c.server.attest_listen));
  RETURN_IF_ERROR(str("unseal_key_file", "--unseal-key-file", c.unseal_key_file));
  RETURN_IF_ERROR(str("pccs_url", "--pccs-url", c.pccs_url));
  RETURN_IF_ERROR(str("pccs_ca_file", "--pccs-ca-file", c.pccs_ca_file));
  try {
    if (root["threads"] && app.count("--threads") == 0) c.server.threads = root["threads"].as<int>();
    if (root["read_timeout_seconds"]) c.server.read_timeout_seconds = root["read_timeout_seconds"].as<int>();
    if (root["log_requests"]) c.server.log_requests = root["log_requests"].as<bool>();
    if (root["node_certificate_seconds"] && app.count("--node-certificate-seconds") == 0) {
      c.node_certificate_seconds = root["node_certificate_seconds"].as<int64_t>();
    }
    if (root["admins"]) {
      if (!root["admins"].IsSequence()) return InvalidArgument("config file " + path + ": admins must be a list");
      for (const auto& a : root["admins"]) c.admins.push_back(a.as<std::string>());
    }
    // One file or a list of files; --tpm-ek-ca replaces them.
    if (const YAML::Node cas = root["tpm_ek_cas"]; cas && app.count("--tpm-ek-ca") == 0) {
      if (cas.IsScalar()) {
        c.tpm_ek_ca_files.push_back(cas.as<std::string>());
      } else if (cas.IsSequence()) {
        for (const auto& f : cas) c.tpm_ek_ca_files.push_back(f.as<std::string>());
      } else {
        return InvalidArgument("config file " + path + ": tpm_ek_cas must be a file name or a list of them");
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument("config file " + path + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return Status::Ok();
}

// The CAS's TLS identity: created on first start, then always the same key,
// whose hash clients pin.
StatusOr<std::pair<net::TlsIdentity, std::string>> LoadOrCreateIdentity(const std::string& dir) {
  std::string key = dir + "/cas.key", crt = dir + "/cas.crt";
  struct stat st;
  if (::stat(key.c_str(), &st) != 0) {
    ASSIGN_OR_RETURN(crypto::NewIdentity id, crypto::CreateIdentity(3650));
    std::ofstream out(crt, std::ios::trunc);
    out << id.certificate_pem;
    out.close();
    if (!out) return IoError("cannot write " + crt);
    RETURN_IF_ERROR(os::WriteNewSecretFile(key, id.private_key_pem.UnsafeBytes()));
    std::fprintf(stderr, "cloister-cas: created the CAS identity in %s\n", dir.c_str());
  }
  ASSIGN_OR_RETURN(net::TlsIdentity id, net::LoadTlsIdentity(dir, "cas"));
  ASSIGN_OR_RETURN(std::string hash, crypto::IdentityOfPrivateKey(id.private_key_pem));
  ASSIGN_OR_RETURN(std::string cert_hash, crypto::IdentityOfCertificate(id.certificate_pem));
  if (hash != cert_hash) return IntegrityError(crt + " does not belong to " + key);
  return std::make_pair(std::move(id), hash);
}

// The TPM EK CAs: every certificate of every file (PEM bundles or DER).
StatusOr<std::vector<std::shared_ptr<const crypto::Certificate>>> LoadTpmEkCas(const std::vector<std::string>& files) {
  std::vector<std::shared_ptr<const crypto::Certificate>> out;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return IoError("tpm_ek_cas: cannot read " + f);
    Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto certs = crypto::Certificate::ParseBundle(bytes);
    if (!certs.ok()) return InvalidArgument("tpm_ek_cas: " + f + " holds no certificates: " + certs.status().message());
    // Pinned by the operator: each is trusted as it is, root or not.
    for (auto& cert : *certs) out.push_back(std::move(cert));
  }
  return out;
}

}  // namespace

int CasMain(int argc, char** argv) {
  Config c;
  c.server.api_listen = "0.0.0.0:8081";
  c.server.attest_listen = "0.0.0.0:18765";
  CLI::App app{"cloister-cas: the Cloister configuration and attestation service"};
  app.add_option("--config", c.config_file, "YAML config file (flags override it)");
  app.add_option("--state-dir", c.state_dir, "State directory: keyring, encrypted database, TLS identity");
  app.add_option("--api-listen", c.server.api_listen, "Client API address (HTTPS)")->capture_default_str();
  app.add_option("--attest-listen", c.server.attest_listen, "Attestation endpoint address (TLS)")->capture_default_str();
  app.add_option("--unseal-key-file", c.unseal_key_file,
                 "Development: unseal at start with this key file (created, mode 0600, if missing)");
  app.add_option("--threads", c.server.threads, "Connections served at once")->capture_default_str();
  app.add_option("--admin", c.admins,
                 "Identity (64 hex) allowed to create join tokens and list and revoke nodes; repeatable");
  app.add_option("--node-certificate-seconds", c.node_certificate_seconds,
                 "Validity of the certificates issued to nodes")
      ->capture_default_str();
  app.add_option("--tpm-ek-ca", c.tpm_ek_ca_files,
                 "PEM file of TPM manufacturer CAs that EK certificates must chain to (tpm node evidence); "
                 "repeatable");
  app.add_option("--ports-file", c.ports_file, "Write the bound ports as JSON to this file (for port 0)");
  app.add_option("--pccs-url", c.pccs_url,
                 "PCCS-compatible URL to fetch Intel collateral from when the CAS holds none that is current");
  app.add_option("--pccs-ca-file", c.pccs_ca_file, "PEM CA certificates that verify the PCCS (default: the system's)");
  app.add_flag("--validate", c.validate_only, "Check the configuration and the state directory, then exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // usage errors exit 2, as `cloister` does
  }
  if (!c.config_file.empty()) {
    if (Status s = LoadConfigFile(c.config_file, c, app); !s.ok()) return Die("", s);
  }
  if (c.state_dir.empty()) return Die("", InvalidArgument("--state-dir (or state_dir in --config) is required"));
  if (c.server.threads < 4 || c.server.threads > 4096) return Die("", InvalidArgument("--threads must be 4..4096"));
  if (c.server.read_timeout_seconds < 1 || c.server.read_timeout_seconds > 300) {
    return Die("", InvalidArgument("read_timeout_seconds must be 1..300"));
  }
  for (const std::string& a : c.admins) {
    auto raw = HexDecode(a);
    if (!raw || raw->size() != 32) {
      return Die("", InvalidArgument("admin " + a + " is not an identity (64 hex digits, `cloister identity show`)"));
    }
  }
  if (c.node_certificate_seconds < 60 || c.node_certificate_seconds > 366 * 86400) {
    return Die("", InvalidArgument("node_certificate_seconds must be 60 seconds to 366 days"));
  }
  if (!c.pccs_url.empty() && c.pccs_url.rfind("https://", 0) != 0 && c.pccs_url.rfind("http://127.", 0) != 0 &&
      c.pccs_url.rfind("http://localhost", 0) != 0) {
    return Die("", InvalidArgument("pccs_url must be an https:// URL (plain http only on loopback)"));
  }
  for (const std::string* addr : {&c.server.api_listen, &c.server.attest_listen}) {
    if (auto hp = net::ParseHostPort(*addr); !hp.ok()) return Die("", hp.status());
  }
  auto tpm_ek_cas = LoadTpmEkCas(c.tpm_ek_ca_files);
  if (!tpm_ek_cas.ok()) return Die("", tpm_ek_cas.status());

  // The CAS holds every tenant's secrets in memory.
  sigset_t stop = os::PrepareServiceProcess();
  struct stat st;
  bool fresh = ::stat(c.state_dir.c_str(), &st) != 0;
  if (!fresh && !S_ISDIR(st.st_mode)) {
    return Die("", InvalidArgument("state directory " + c.state_dir + " is not a directory"));
  }
  if (!fresh && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Die("", PermissionDenied("state directory " + c.state_dir + " is accessible by other users (mode " + mode +
                                    "); run: chmod 700 " + c.state_dir));
  }
  if (c.validate_only) {
    // Checks only; creates nothing.
    std::string what = fresh ? "a new state directory will be created" : "state directory present";
    if (!fresh) {
      auto id = net::LoadTlsIdentity(c.state_dir, "cas");
      if (id.ok()) {
        auto hash = crypto::IdentityOfPrivateKey(id->private_key_pem);
        if (!hash.ok()) return Die("CAS identity", hash.status());
        what += ", CAS key " + *hash;
      } else if (id.status().code() != StatusCode::kNotFound) {
        return Die("CAS identity", id.status());
      }
    }
    if (!c.unseal_key_file.empty() && ::stat(c.unseal_key_file.c_str(), &st) == 0) {
      auto key = os::ReadKeyFile(c.unseal_key_file, kUnsealKeyPrefix, 32, "unseal key");
      if (!key.ok()) return Die("", key.status());
    }
    std::printf("configuration ok: %s\n", what.c_str());
    return 0;
  }
  auto service = CasService::Open(c.state_dir);
  if (!service.ok()) return Die("", service.status());
  (*service)->SetAdmins(c.admins);
  (*service)->SetLogAttestations(c.server.log_requests);
  (*service)->SetNodeCertificateSeconds(c.node_certificate_seconds);
  (*service)->SetTpmEkCas(std::move(*tpm_ek_cas));
  (*service)->SetPccs(c.pccs_url, c.pccs_ca_file);
  auto identity = LoadOrCreateIdentity(c.state_dir);
  if (!identity.ok()) return Die("CAS identity", identity.status());
  const std::string& key_hash = identity->second;
  if (!c.unseal_key_file.empty()) {
    bool created = false;
    auto key = os::ReadOrCreateKeyFile(c.unseal_key_file, kUnsealKeyPrefix, 32, "unseal key", &created);
    if (!key.ok()) return Die("", key.status());
    if (created) std::fprintf(stderr, "cloister-cas: created unseal key file %s (development only)\n", c.unseal_key_file.c_str());
    if (Status s = (*service)->InitializeOrUnsealWithKey(*key); !s.ok()) return Die("unseal", s);
  }
  auto server = CasServer::New(**service, identity->first, key_hash, c.server);
  if (!server.ok()) return Die("", server.status());
  if (Status s = (*server)->Start(); !s.ok()) return Die("", s);

  std::printf("CAS key %s\n", key_hash.c_str());
  std::printf("API on %s (port %d), attestation on %s (port %d), state %s\n", c.server.api_listen.c_str(),
              (*server)->api_port(), c.server.attest_listen.c_str(), (*server)->attest_port(),
              std::string(SealStateName((*service)->GetSealStatus().state)).c_str());
  std::fflush(stdout);
  if (!c.ports_file.empty()) {
    std::string tmp = c.ports_file + ".tmp";
    std::ofstream out(tmp, std::ios::trunc);
    out << "{\"api\": " << (*server)->api_port() << ", \"attest\": " << (*server)->attest_port() << ", \"key_hash\": \""
        << key_hash << "\"}\n";
    out.close();
    if (!out || std::rename(tmp.c_str(), c.ports_file.c_str()) != 0) {
      return Die("", IoError("cannot write " + c.ports_file));
    }
  }
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "cloister-cas: stopping (signal %d)\n", sig);
  (*server)->Stop();
  return 0;
}

}  // namespace cloister::cas
