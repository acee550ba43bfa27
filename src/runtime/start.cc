// The runtime's entry: __libc_start_main is interposed so that main can be
// wrapped. The real __libc_start_main still does all of glibc's start-up
// (including the program's constructors); only when it calls main does the
// runtime attest, and main runs with the arguments, environment and working
// directory the CAS granted — or never, if anything fails.

#include "runtime/start.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "runtime/cas_client.h"
#include "runtime/config.h"
#include "runtime/injected_files.h"
#include "runtime/las_client.h"
#include "runtime/log.h"
#include "runtime/relayed.h"
#include "runtime/shield_client.h"
#include "runtime/volumes.h"

extern char** environ;

namespace cloister::runtime {
namespace {

using MainFn = int (*)(int, char**, char**);
using StartMainFn = int (*)(MainFn, int, char**, MainFn, void (*)(), void (*)(), void*);

// Written once by __libc_start_main before the program runs any code of
// its own; read by WrappedMain on the same thread.
MainFn g_real_main = nullptr;

// Copies `strings` into a null-terminated array of C strings that lives
// until the process ends (main, environ and getenv keep pointing into it).
char** PermanentArray(const std::vector<SecretString>& strings) {
  auto** array = static_cast<char**>(std::calloc(strings.size() + 1, sizeof(char*)));
  if (array == nullptr) FailClosed("out of memory");
  for (size_t i = 0; i < strings.size(); ++i) {
    array[i] = static_cast<char*>(std::malloc(strings[i].size() + 1));
    if (array[i] == nullptr) FailClosed("out of memory");
    std::memcpy(array[i], strings[i].c_str(), strings[i].size() + 1);
  }
  return array;
}

// Keeps secrets out of core files and out of reach of same-user debuggers
// from here on. Done after the LAS has answered, so after it measured this
// process (it reads /proc/PID/exe, which a non-dumpable process hides from
// non-root readers), and before the request that brings the grant.
void ProtectMemory() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    FailClosed(std::string("cannot make this process non-dumpable: ") + std::strerror(errno));
  }
  rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    FailClosed(std::string("cannot disable core dumps: ") + std::strerror(errno));
  }
}

// The attestation over the runtime's own TLS connection (docs/protocol.md
// section 5). The steps overlap where they can: the CAS works on its half
// of the TLS handshake while the key is made; the LAS measures this
// process and signs while the certificate is made and the handshake
// completes. Only the HTTP request needs the evidence. A failure to reach
// the CAS is reported only after the LAS has had its say (below).
Result<HttpResponse> AttestDirect(const Settings& settings, std::vector<uint8_t>* evidence_out, ClientIdentity* key_out) {
  Result<std::unique_ptr<CasConnection>> cas = CasConnection::Begin(settings);
  if (!cas.ok()) return cas.failure();
  Result<Done> hello = cas.value()->Hello();

  Result<ClientIdentity> identity = CreateClientKey();
  if (!identity.ok()) return identity.failure();
  DebugLog("fresh P-256 key made");

  Result<std::unique_ptr<LasRequest>> las = LasRequest::Send(settings.las_socket, identity.value().report_data);
  if (!las.ok()) return las.failure();
  DebugLog("asked the LAS at %s for evidence", settings.las_socket.c_str());

  Result<Done> certified = CertifyClientKey(identity.value());
  if (!certified.ok()) return certified.failure();
  DebugLog("self-signed certificate for the key made");

  Result<Done> handshake = hello.ok() ? cas.value()->Handshake(identity.value()) : hello;
  Result<std::vector<uint8_t>> evidence = las.value()->Receive();
  // A failure of the LAS is reported first: it is the more basic problem,
  // and without evidence the CAS could not have granted anything anyway.
  if (!evidence.ok()) return evidence.failure();
  *evidence_out = evidence.value();
  const std::string type = EvidenceTypeName(evidence.value());
  const std::string evidence_note = " (evidence: " + type + ")";
  DebugLog("evidence from the LAS: %zu bytes (evidence: %s)", evidence.value().size(), type.c_str());
  if (!handshake.ok()) return Fail(handshake.error() + evidence_note);

  ProtectMemory();
  DebugLog("process made non-dumpable, core dumps off");

  std::string request = BuildAttestRequest(settings.cas, settings.config_id, evidence.value());
  Result<HttpResponse> response = cas.value()->Exchange(request);
  if (!response.ok()) return Fail(response.error() + evidence_note);
  *key_out = std::move(identity.value());
  return response;
}

// The attestation relayed by the LAS (docs/protocol.md section 6): one
// request on the LAS's socket carries the fresh key and the config id; the
// LAS adds its evidence, asks the CAS over its own long-lived connection
// and brings back the CAS's signed reply with the grant sealed to the key.
// No TLS handshake in this process.
Result<HttpResponse> AttestRelayed(const Settings& settings, std::vector<uint8_t>* evidence_out, ClientIdentity* key_out) {
  Result<ClientIdentity> identity = CreateClientKey();
  if (!identity.ok()) return identity.failure();
  DebugLog("fresh P-256 key made");
  Result<std::unique_ptr<LasRequest>> las = LasRequest::SendRelayed(
      settings.las_socket, identity.value().report_data, identity.value().point, settings.config_id);
  if (!las.ok()) return las.failure();
  DebugLog("asked the LAS at %s to relay the attestation", settings.las_socket.c_str());
  Result<RelayedAnswer> answer = las.value()->ReceiveRelayed();
  if (!answer.ok()) return answer.failure();
  *evidence_out = std::move(answer.value().evidence);
  const std::string evidence_note = " (evidence: " + EvidenceTypeName(*evidence_out) + ")";
  DebugLog("relayed answer: %zu bytes of evidence, %zu bytes from the CAS", evidence_out->size(),
           answer.value().cas_reply.size());
  // The LAS has measured this process; the grant is opened only after this.
  ProtectMemory();
  DebugLog("process made non-dumpable, core dumps off");
  Result<HttpResponse> response = OpenRelayedReply(answer.value().cas_reply, settings, identity.value());
  if (!response.ok()) return Fail(response.error() + evidence_note);
  *key_out = std::move(identity.value());
  return response;
}

// What a program this one execs needs in its environment to start as the
// same service (shield_exec.h): the settings this start read, and the
// runtime itself in LD_PRELOAD.
std::vector<std::string> ExecVariables() {
  std::vector<std::string> vars;
  for (const char* name :
       {"CLOISTER_CONFIG_ID", "CLOISTER_LAS_SOCKET", "CLOISTER_CAS_ADDR", "CLOISTER_CAS_KEY", "CLOISTER_LOG"}) {
    const char* v = ::getenv(name);
    if (v != nullptr) vars.push_back(std::string(name) + "=" + v);
  }
  Dl_info self{};
  if (::dladdr(reinterpret_cast<void*>(&ExecVariables), &self) != 0 && self.dli_fname != nullptr) {
    vars.push_back(std::string("LD_PRELOAD=") + self.dli_fname);
  }
  return vars;
}

// CLOISTER_SHIELD: this program was exec'd by a process of a protected
// program and is to join its file shield; -1 when not set.
int InheritedShield(const char* value) {
  if (value == nullptr) return -1;
  char* end = nullptr;
  long fd = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || fd < 0 || fd > 1 << 20) {
    FailClosed("CLOISTER_SHIELD='" + std::string(value).substr(0, 20) + "' is not a descriptor number");
  }
  return static_cast<int>(fd);
}

}  // namespace

Launch AttestAndConfigure(int argc, char** argv, char** envp) {
  // A program exec'd by a protected one runs with the arguments and the
  // environment it received, if its ticket names exactly these.
  const int inherited = InheritedShield(::getenv(std::string(shield::kShieldVariable).c_str()));
  shield::JoinDigest exec_digest{};
  if (inherited >= 0) exec_digest = shield::ExecDigest(argv, envp);
  Result<Settings> read = ReadSettings([](const char* name) { return ::getenv(name); });
  StartDebugLog(read.ok() && read.value().debug);
  if (!read.ok()) FailClosed(read.error());
  const Settings& settings = read.value();
  DebugLog("attesting as CLOISTER_CONFIG_ID=%s with the LAS at %s and the CAS %s", settings.config_id.c_str(),
           settings.las_socket.c_str(), settings.relayed ? "it relays to" : ("at " + settings.cas.text).c_str());

  // No configuration file: a host-provided OPENSSL_CONF must not load
  // providers or engines into the runtime. No atexit handler: the
  // program's exit is none of the runtime's business. No tables of legacy
  // algorithm names (everything here is fetched from the provider by name):
  // filling them is a third of a millisecond of every start. The first
  // call decides these once and for all; error strings stay loadable, for
  // failure messages.
  constexpr uint64_t kOpensslInit = OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT |
                                    OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS;
  // libssl only for the direct attestation; a relayed one needs libcrypto.
  if (OPENSSL_init_crypto(kOpensslInit, nullptr) != 1 ||
      (!settings.relayed && OPENSSL_init_ssl(kOpensslInit, nullptr) != 1)) {
    FailClosed("cannot initialise OpenSSL");
  }

  ReplyContext ctx{settings.cas.text, settings.config_id, "", {}, settings.relayed ? settings.las_socket : ""};
  std::vector<uint8_t> evidence;
  // The fresh key also signs the reports of volume commits (shield_report.h).
  ClientIdentity key;
  Result<HttpResponse> response =
      settings.relayed ? AttestRelayed(settings, &evidence, &key) : AttestDirect(settings, &evidence, &key);
  ctx.evidence_type = EvidenceTypeName(evidence);
  ctx.evidence = evidence;
  if (!response.ok()) FailClosed(response.error());
  DebugLog("the CAS answered %d (%zu bytes)", response.value().status, response.value().body.size());

  Result<Grant> granted = ParseCasReply(response.value().status, response.value().body, ctx);
  // The raw reply holds every secret of the grant; the parsed copies are
  // all that is needed from here on.
  OPENSSL_cleanse(response.value().body.data(), response.value().body.size());
  response.value().body.clear();
  if (!granted.ok()) FailClosed(granted.error());
  Grant& grant = granted.value();
  const std::string evidence_note = " (evidence: " + ctx.evidence_type + ")";
  DebugLog("granted: session %s, service %s, %zu injected files, %zu volumes (evidence: %s)", grant.session.c_str(),
           grant.service.c_str(), grant.files.size(), grant.volumes.size(), ctx.evidence_type.c_str());

  // Everything that can fail is checked before anything takes effect.
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  size_t file_count = grant.files.size();
  Result<std::unique_ptr<InjectedFiles>> files = InjectedFiles::New(std::move(grant.files), now);
  if (!files.ok()) {
    FailClosed(CasName(ctx) + " sent a malformed grant: " + files.error() + evidence_note);
  }
  std::vector<SecretString> args;
  std::vector<SecretString> env;
  if (inherited >= 0) {
    for (int i = 0; i < argc; ++i) args.emplace_back(argv[i]);
    for (char** e = envp; e != nullptr && *e != nullptr; ++e) {
      if (!shield::IsRuntimeVariable(*e)) env.emplace_back(*e);
    }
  } else {
    args = BuildArguments(grant.command, argc, argv);
    env = BuildEnvironment(grant.environment, envp);
  }
  if (args.empty()) FailClosed("the program would start without any argument (not even its name)");
  size_t volume_count = grant.volumes.size();
  if (inherited >= 0 && volume_count == 0) {
    FailClosed("this program was exec'd by a protected program, but service " + grant.service +
               " mounts no volume, so it cannot join that program's file shield" + evidence_note);
  }
  InstallVolumes(std::move(grant.volumes));
  if (volume_count > 0) shield::SetExecVariables(ExecVariables());
  if (inherited >= 0) {
    // The working directory is the ticket's, or the inherited one.
    Result<Done> joined = shield::Join(InstalledVolumes(), inherited, exec_digest);
    if (!joined.ok()) FailClosed(joined.error() + evidence_note);
    DebugLog("joined the file shield of the program that exec'd this one");
  } else {
    // The volume server opens every volume (and refuses a stale one) before
    // the working directory, which may be on a volume, is entered.
    shield::Reporting reporting;
    reporting.token = grant.volume_token;
    reporting.point = key.point;
    reporting.key = key.key.release();
    reporting.cas_pin = settings.cas_key;
    reporting.las_socket = settings.las_socket;
    Result<Done> shielded = shield::Start(InstalledVolumes(), std::move(reporting));
    if (!shielded.ok()) FailClosed(shielded.error() + evidence_note);
    if (volume_count > 0) DebugLog("file shield started for %zu volumes", volume_count);
    if (!grant.pwd.empty() && ::chdir(grant.pwd.c_str()) != 0) {
      FailClosed("cannot change to the session's working directory " + grant.pwd + ": " + std::strerror(errno));
    }
  }
  InstallInjectedFiles(std::move(files.value()));

  Launch launch;
  launch.argc = static_cast<int>(args.size());
  launch.argv = PermanentArray(args);
  launch.envp = PermanentArray(env);
  const bool pwd_unchanged = grant.pwd.empty() || inherited >= 0;
  DebugLog("applied: %d arguments, %zu environment variables, %zu injected files, %zu volumes, working directory %s",
           launch.argc, env.size(), file_count, volume_count, pwd_unchanged ? "unchanged" : grant.pwd.c_str());
  return launch;
}

namespace {

int WrappedMain(int argc, char** argv, char** envp) {
  Launch launch;
  try {
    launch = AttestAndConfigure(argc, argv, envp);
  } catch (const std::exception& e) {
    FailClosed(std::string("internal error: ") + e.what());
  } catch (...) {
    FailClosed("internal error");
  }
  environ = launch.envp;
  // glibc read the host's TZ while attestation formatted certificate
  // times; localtime_r would keep using it. Re-read it from the new
  // environment, as if the program had just started with it.
  ::tzset();
  // Messages of err(3), error(3) and glibc name the program as main sees it.
  program_invocation_name = launch.argv[0];
  const char* slash = std::strrchr(launch.argv[0], '/');
  program_invocation_short_name = slash != nullptr ? const_cast<char*>(slash + 1) : launch.argv[0];
  DebugLog("calling main");
  return g_real_main(launch.argc, launch.argv, launch.envp);
}

}  // namespace
}  // namespace cloister::runtime

// glibc's start routine; crt1.o of every dynamically linked program calls
// it with the program's main. `init` is unused since glibc 2.34 (then
// null) and passed on unchanged for older programs.
extern "C" __attribute__((visibility("default"))) int __libc_start_main(cloister::runtime::MainFn main, int argc,
                                                                        char** argv, cloister::runtime::MainFn init,
                                                                        void (*fini)(), void (*rtld_fini)(),
                                                                        void* stack_end) {
  using cloister::runtime::StartMainFn;
  auto real = reinterpret_cast<StartMainFn>(::dlsym(RTLD_NEXT, "__libc_start_main"));
  if (real == nullptr) cloister::runtime::FailClosed("cannot find glibc's __libc_start_main");
  cloister::runtime::g_real_main = main;
  return real(cloister::runtime::WrappedMain, argc, argv, init, fini, rtld_fini, stack_end);
}
