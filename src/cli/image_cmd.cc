// `cloister image protect`: turn a container image into a confidential one
// (src/image/protect.h), then write the session that admits it for review
// or create it in the CAS.
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "cli/cas_conn.h"
#include "cli/cli.h"
#include "image/protect.h"
#include "os/secret_file.h"

namespace cloister::cli {
namespace {

namespace fs = std::filesystem;

struct ProtectArgs {
  std::string from, to, session, service, binary, command, workdir, cas_key, las_socket = "/run/cloister/las.sock";
  std::string runtime, session_out, work_dir;
  std::vector<std::string> encrypt, authenticate, env, allow, tolerate, secrets;
  bool command_set = false, workdir_set = false, upload = false;
  CasConnArgs conn;
};

// A scratch directory, removed with everything in it when this goes away.
class ScratchDir {
 public:
  ~ScratchDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  Status Create(const std::string& parent) {
    std::string tmpl = (parent.empty() ? std::string(fs::temp_directory_path()) : parent) + "/cloister-image-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoStatus("create a work directory in " + Parent(tmpl), errno);
    path_ = tmpl;
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  static std::string Parent(const std::string& p) { return p.substr(0, p.rfind('/')); }
  std::string path_;
};

Status Protect(const ProtectArgs& a) {
  if (a.session_out.empty() && !a.upload) {
    return InvalidArgument("the session holds the volumes' keys: give --session-out FILE, --upload, or both");
  }
  if (a.upload && a.conn.addr.empty() && std::getenv("CLOISTER_CAS_ADDR") == nullptr) {
    return InvalidArgument("--upload needs --cas HOST:PORT (or CLOISTER_CAS_ADDR)");
  }
  if (!a.session_out.empty() && fs::exists(a.session_out)) {
    return AlreadyExists(a.session_out + " exists; the session is written to a new file only");
  }
  image::ProtectOptions o;
  ASSIGN_OR_RETURN(o.from, image::ParseImageRef(a.from));
  ASSIGN_OR_RETURN(o.to, image::ParseImageRef(a.to));
  for (const std::string& d : a.encrypt) o.dirs.push_back({d, true});
  for (const std::string& d : a.authenticate) o.dirs.push_back({d, false});
  o.session = a.session;
  o.service = a.service;
  o.binary = a.binary;
  if (a.command_set) o.command = a.command;
  if (a.workdir_set) o.workdir = a.workdir;
  for (const std::string& kv : a.env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("--env " + kv + ": expected KEY=VALUE");
    o.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  o.cas_key = a.cas_key.empty() ? std::string(std::getenv("CLOISTER_CAS_KEY") ? std::getenv("CLOISTER_CAS_KEY") : "")
                                : a.cas_key;
  if (o.cas_key.size() != 64 || o.cas_key.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return InvalidArgument("--cas-key (or CLOISTER_CAS_KEY) must be the CAS key's hash, 64 hex digits");
  }
  o.las_socket = a.las_socket;
  ASSIGN_OR_RETURN(o.runtime_file, FindRuntime(a.runtime));
  for (const std::string& nk : a.secrets) {
    size_t colon = nk.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == nk.size()) {
      return InvalidArgument("--secret " + nk + ": expected NAME:KIND, e.g. db_password:ascii");
    }
    o.secrets.emplace_back(nk.substr(0, colon), nk.substr(colon + 1));
  }
  o.allow = a.allow;
  o.tolerate = a.tolerate;
  ScratchDir scratch;
  RETURN_IF_ERROR(scratch.Create(a.work_dir));
  o.work_dir = scratch.path();

  Progress progress("protected");
  ASSIGN_OR_RETURN(image::ProtectResult r,
                   image::Protect(o, [&](uint64_t bytes, uint64_t files) { progress.Add(bytes, files); }));
  progress.Finish();

  if (!a.session_out.empty()) RETURN_IF_ERROR(os::WriteNewSecretFile(a.session_out, r.session_yaml.UnsafeBytes()));
  std::string created;
  if (a.upload) {
    CasConnArgs conn = a.conn;
    conn.key_hash = o.cas_key;
    ASSIGN_OR_RETURN(auto client, ConnectCas(conn, true));
    std::string body =
        nlohmann::json{{"document", std::string(reinterpret_cast<const char*>(r.session_yaml.UnsafeBytes().data()),
                                                r.session_yaml.size())}}
            .dump();
    auto resp = client->Post("/v1/sessions", body);
    OPENSSL_cleanse(body.data(), body.size());
    ASSIGN_OR_RETURN(nlohmann::json j, ApiResult(resp, "session for " + a.to));
    created = "created session " + j.value("name", "") + ": version " + std::to_string(j.value("version", 0ull)) +
              ", hash " + j.value("hash", "");
  }

  std::printf("image %s: %s\n", image::ImageRefToString(o.to).c_str(), r.manifest_digest.c_str());
  std::printf("program %s: %s\n", r.binary.c_str(), r.binary_sha256.c_str());
  std::printf("runtime %s: %s\n", std::string(image::kRuntimeInImage).c_str(), r.runtime_sha256.c_str());
  for (const auto& v : r.volumes) {
    std::printf("volume %s at %s (%s): %llu files, %s, tag %s\n", v.name.c_str(), v.path.c_str(),
                v.encrypt ? "encrypted" : "authenticated", static_cast<unsigned long long>(v.files),
                HumanBytes(static_cast<double>(v.bytes)).c_str(), v.tag.c_str());
  }
  std::printf("layers: %zu, %zu rewritten, 1 added\n", r.layers, r.layers_rewritten);
  if (!a.session_out.empty()) std::printf("session %s/%s written to %s\n", a.session.c_str(), a.service.c_str(),
                                          a.session_out.c_str());
  if (!created.empty()) std::printf("%s\n", created.c_str());
  return Status::Ok();
}

}  // namespace

void RegisterImageCommands(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ProtectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "protect", "Turn a container image into a confidential one: directories become volumes, the runtime is preloaded");
  cmd->add_option("--from", a->from, "Source image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]")
      ->required();
  cmd->add_option("--to", a->to, "Output image, in the same forms")->required();
  cmd->add_option("--session", a->session, "The session's name (in the CAS)")->required();
  cmd->add_option("--service", a->service, "The service's name in the session")->required();
  cmd->add_option("--encrypt", a->encrypt, "A directory of the image to turn into an encrypted volume (repeatable)");
  cmd->add_option("--authenticate", a->authenticate,
                  "A directory to turn into an authenticated-only volume: integrity, no encryption (repeatable)");
  cmd->add_option("--binary", a->binary, "The program to measure (default: the command's program, resolved in the image)");
  cmd->add_option("--command", a->command, "The command line (default: the image's ENTRYPOINT and CMD)")
      ->each([a](const std::string&) { a->command_set = true; });
  cmd->add_option("--env", a->env, "KEY=VALUE for the service's environment, over the image's ENV (repeatable)");
  cmd->add_option("--workdir", a->workdir, "The working directory (default: the image's WorkingDir)")
      ->each([a](const std::string&) { a->workdir_set = true; });
  cmd->add_option("--las-socket", a->las_socket, "Where the runtime finds the LAS inside the container")
      ->capture_default_str();
  cmd->add_option("--runtime", a->runtime, "The runtime library to put into the image (default: as for cloister run)");
  cmd->add_option("--allow", a->allow, "Evidence types the session accepts: sim, tpm, tdx, snp, sgx (repeatable)");
  cmd->add_option("--tolerate", a->tolerate, "Weaknesses the session accepts, e.g. simulation (repeatable)");
  cmd->add_option("--secret", a->secrets,
                  "NAME:KIND, a secret the CAS generates for a placeholder in --env or --command (repeatable)");
  cmd->add_option("--session-out", a->session_out, "Write the session document to this new file (mode 0600)");
  cmd->add_flag("--upload", a->upload, "Create the session in the CAS (--cas, --identity)");
  cmd->add_option("--work-dir", a->work_dir, "Where to keep intermediate files (default: $TMPDIR or /tmp)");
  cmd->add_option("--cas", a->conn.addr, "The CAS client API, HOST:PORT (for --upload)");
  cmd->add_option("--cas-key", a->cas_key, "The pinned CAS key (hex SHA-256), also put into the image");
  cmd->add_option("--identity", a->conn.identity, "Identity directory for --upload");
  cmd->callback([a, exit_code]() {
    Status s = Protect(*a);
    if (!s.ok()) *exit_code = Fail("image protect", s);
  });
}

}  // namespace cloister::cli
