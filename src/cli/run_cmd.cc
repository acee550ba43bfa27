// `cloister run`: start a program under the runtime. It only sets what the
// runtime reads (CLOISTER_* and LD_PRELOAD) and execs the program; the
// attestation itself happens inside the program, before its main, so that
// nothing this command does can be trusted or needs to be.
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cli/cli.h"

namespace cloister::cli {
namespace {

struct RunArgs {
  std::string cas, cas_key, las, config, runtime;
  std::vector<std::string> program;
};

Status Run(const RunArgs& a) {
  auto env = [](const char* name) { return std::string(std::getenv(name) ? std::getenv(name) : ""); };
  std::string key = a.cas_key.empty() ? env("CLOISTER_CAS_KEY") : a.cas_key;
  std::string las = a.las.empty() ? env("CLOISTER_LAS_SOCKET") : a.las;
  if (las.empty()) las = "/run/cloister/las.sock";
  std::string config = a.config.empty() ? env("CLOISTER_CONFIG_ID") : a.config;
  if (key.empty()) return InvalidArgument("--cas-key (or CLOISTER_CAS_KEY) is required");
  if (config.find('/') == std::string::npos) {
    return InvalidArgument("--config (or CLOISTER_CONFIG_ID) must be SESSION/SERVICE");
  }
  ASSIGN_OR_RETURN(std::string runtime, FindRuntime(a.runtime));
  char resolved[PATH_MAX];
  if (::realpath(runtime.c_str(), resolved) != nullptr) runtime = resolved;
  // Without --cas the LAS relays the attestation; the host's variable must
  // not switch the runtime to a direct connection behind the caller's back.
  if (a.cas.empty()) {
    ::unsetenv("CLOISTER_CAS_ADDR");
  } else {
    ::setenv("CLOISTER_CAS_ADDR", a.cas.c_str(), 1);
  }
  ::setenv("CLOISTER_CAS_KEY", key.c_str(), 1);
  ::setenv("CLOISTER_LAS_SOCKET", las.c_str(), 1);
  ::setenv("CLOISTER_CONFIG_ID", config.c_str(), 1);
  ::setenv("LD_PRELOAD", runtime.c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& s : a.program) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  int err = errno;
  return ErrnoStatus("cannot run " + a.program[0], err);
}

}  // namespace

static bool IsFile(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The runtime library (cli.h): --runtime, else CLOISTER_RUNTIME, else next to this
// binary, else in ../lib/cloister relative to it (an installed layout).
StatusOr<std::string> FindRuntime(const std::string& flag) {
  if (!flag.empty()) {
    if (!IsFile(flag)) return NotFound("no runtime library at " + flag);
    return flag;
  }
  if (const char* env = std::getenv("CLOISTER_RUNTIME"); env != nullptr && *env != '\0') {
    if (!IsFile(env)) return NotFound(std::string("no runtime library at ") + env + " (CLOISTER_RUNTIME)");
    return std::string(env);
  }
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/'));
    for (const std::string& candidate :
         {dir + "/libcloister-runtime.so", dir + "/../lib/cloister/libcloister-runtime.so"}) {
      if (IsFile(candidate)) return candidate;
    }
  }
  return NotFound("cannot find libcloister-runtime.so next to cloister; pass --runtime PATH");
}

void RegisterRunCommand(CLI::App& c, int* exit_code) {
  auto args = std::make_shared<RunArgs>();
  // Not CLOISTER_CAS_ADDR: for the other commands it names the client API
  // (8081), and the attestation endpoint is another port.
  c.add_option("--cas", args->cas,
               "Attest over the program's own TLS connection to this CAS attestation endpoint, host:port (its port "
               "18765); without it the LAS relays the attestation to its CAS");
  c.add_option("--cas-key", args->cas_key, "The CAS's key hash, 64 hex (or CLOISTER_CAS_KEY)");
  c.add_option("--las", args->las, "The LAS socket (or CLOISTER_LAS_SOCKET; default /run/cloister/las.sock)");
  c.add_option("--config", args->config, "SESSION/SERVICE to start as (or CLOISTER_CONFIG_ID)");
  c.add_option("--runtime", args->runtime, "The runtime library (default: next to cloister, or CLOISTER_RUNTIME)");
  c.add_option("program", args->program, "-- PROGRAM [ARGS...]: the program; its arguments come from the session")
      ->required();
  c.footer("Example: cloister run --cas-key HASH --las /run/cloister/las.sock --config demo/app -- python3\n"
           "The program's arguments, environment and working directory come from the session; what is given\n"
           "here is ignored (see docs/runtime.md).");
  c.callback([args, exit_code]() {
    Status st = Run(*args);
    if (!st.ok()) *exit_code = Fail("run", st);
  });
}

}  // namespace cloister::cli
