// `cloister identity create|show`: the client identity an operator uses to
// talk to the CAS (a P-256 key and a self-signed certificate; the identity
// is the SHA-256 of the public key).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cas_conn.h"
#include "cli/cli.h"
#include "cli/keyfile.h"
#include "crypto/identity.h"

namespace cloister::cli {
namespace {

struct IdentityArgs {
  std::string dir;
  int days = 825;
  bool json = false;
};

std::string DefaultDir() { return DefaultIdentityDir(); }

Status MakeDirs(const std::string& dir) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    cur = dir.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus("mkdir " + cur, errno);
  }
  return Status::Ok();
}

void Print(const IdentityArgs& a, const std::string& id, const std::string& dir) {
  if (a.json) {
    nlohmann::json j{{"identity", id}, {"key", dir + "/identity.key"}, {"certificate", dir + "/identity.crt"}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", id.c_str());
  }
}

Status Create(const IdentityArgs& a) {
  std::string dir = a.dir.empty() ? DefaultDir() : a.dir;
  if (a.days < 1 || a.days > 3650) return InvalidArgument("--days must be from 1 to 3650");
  RETURN_IF_ERROR(MakeDirs(dir));
  ASSIGN_OR_RETURN(crypto::NewIdentity id, crypto::CreateIdentity(a.days));
  Status s = WriteNewSecretFile(dir + "/identity.key", id.private_key_pem.UnsafeBytes());
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists(dir + "/identity.key exists: an identity is never overwritten");
  }
  RETURN_IF_ERROR(s);
  std::ofstream crt(dir + "/identity.crt", std::ios::trunc);
  crt << id.certificate_pem;
  crt.close();
  if (!crt) return IoError("writing " + dir + "/identity.crt failed");
  Print(a, id.id, dir);
  return Status::Ok();
}

Status Show(const IdentityArgs& a) {
  std::string dir = a.dir.empty() ? DefaultDir() : a.dir;
  std::ifstream in(dir + "/identity.crt");
  if (!in) return NotFound("no identity in " + dir + " (create one with `cloister identity create`)");
  std::string pem((std::istreambuf_iterator<char>(in)), {});
  ASSIGN_OR_RETURN(std::string id, crypto::IdentityOfCertificate(pem));
  Print(a, id, dir);
  return Status::Ok();
}

}  // namespace

void RegisterIdentityCommands(CLI::App& app, int* exit_code) {
  struct Sub {
    const char* name;
    const char* help;
    Status (*run)(const IdentityArgs&);
  };
  static constexpr Sub kSubs[] = {
      {"create", "Create a client identity (P-256 key, mode 0600, and certificate); prints its id", Create},
      {"show", "Print the id of an identity (SHA-256 of its public key)", Show},
  };
  for (const Sub& s : kSubs) {
    auto args = std::make_shared<IdentityArgs>();
    CLI::App* c = app.add_subcommand(s.name, s.help);
    c->add_option("--identity", args->dir, "Identity directory (default: ~/.config/cloister)");
    if (std::string(s.name) == "create") {
      c->add_option("--days", args->days, "Certificate validity in days")->capture_default_str()->check(
          CLI::Range(1, 3650));
    }
    c->add_flag("--json", args->json, "Machine-readable output");
    auto run = s.run;
    c->callback([args, run, exit_code]() {
      Status st = run(*args);
      if (!st.ok()) *exit_code = Fail("identity", st);
    });
  }
}

}  // namespace cloister::cli
