#include "cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>

namespace cloister::cli {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One entry per command group: name, help, how it registers itself.
struct CommandGroup {
  const char* name;
  const char* help;
  void (*add)(CLI::App&, int*);
  bool leaf = false;  // a command of its own, not a group of subcommands
};

constexpr CommandGroup kGroups[] = {
    {"volume", "Protected volumes: seal, read, change and verify encrypted directory trees",
     RegisterVolumeCommands},
    {"identity", "Client identities for the CAS API (key and certificate)", RegisterIdentityCommands},
    {"session", "Sessions (policies) in the CAS: create, update, show, list, history, delete, verify",
     RegisterSessionCommands},
    {"cas", "Operate the CAS: init with key shares, unseal, status", RegisterCasCommands},
    {"node", "Nodes (LAS) that joined the CAS: list, revoke", RegisterNodeCommands},
    {"measure", "Print the measurement (SHA-256) a session lists for a program", RegisterMeasureCommand, true},
    {"attest", "Hardware evidence: verify a quote offline against Intel's collateral", RegisterAttestCommands},
    {"image", "Container images: protect one (its directories become volumes, the runtime is preloaded)",
     RegisterImageCommands},
    {"run", "Run a program under the runtime: attest to the CAS, then start it with its session's configuration",
     RegisterRunCommand, true},
};

}  // namespace

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kIntegrity: return kExitIntegrity;
    case StatusCode::kStale: return kExitStale;
    default: return kExitError;
  }
}

int Fail(const std::string& context, const Status& s) {
  std::string msg = s.message();
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "cloister: %s%s%s\n", context.c_str(), context.empty() ? "" : ": ", msg.c_str());
  return ExitCodeFor(s);
}

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

Progress::Progress(std::string verb)
    : verb_(std::move(verb)),
      enabled_(isatty(STDERR_FILENO) && std::getenv("CI") == nullptr),
      start_ns_(NowNs()),
      last_ns_(start_ns_) {}

Progress::~Progress() { Finish(); }

void Progress::Add(uint64_t bytes, uint64_t files) {
  bytes_ += bytes;
  files_ += files;
  if (!enabled_) return;
  int64_t now = NowNs();
  if (now - last_ns_ < 200'000'000) return;
  last_ns_ = now;
  Print(false);
}

void Progress::Print(bool final) {
  double secs = static_cast<double>(NowNs() - start_ns_) / 1e9;
  double rate = secs > 0 ? static_cast<double>(bytes_) / secs : 0;
  std::fprintf(stderr, "\r%s %llu files, %s (%s/s)%s", verb_.c_str(),
               static_cast<unsigned long long>(files_), HumanBytes(static_cast<double>(bytes_)).c_str(),
               HumanBytes(rate).c_str(), final ? "\n" : "   ");
  printed_ = true;
}

void Progress::Finish() {
  if (enabled_ && printed_) {
    Print(true);
    printed_ = false;
  }
  enabled_ = false;
}

int Main(int argc, char** argv) {
  CLI::App app{"cloister: confidential computing for unmodified applications"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cloister 0.1.0");
  int exit_code = kExitOk;
  for (const CommandGroup& g : kGroups) {
    CLI::App* sub = app.add_subcommand(g.name, g.help);
    if (!g.leaf) sub->require_subcommand(1);
    g.add(*sub, &exit_code);
  }
  // CLI11 reports parse errors with exceptions; they stop here.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return exit_code;
}

}  // namespace cloister::cli
