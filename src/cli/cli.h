// The `cloister` command line: a table of command groups, exit codes
// defined in one place, and the single place where a Status becomes an
// error line on stderr.
#pragma once

#include <cstdint>
#include <string>

#include "cloister/status.h"

namespace CLI {
class App;
}

namespace cloister::cli {

// Exit codes (documented in docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,      // I/O errors, missing files, anything else
  kExitUsage = 2,      // bad command line (reported by the argument parser)
  kExitIntegrity = 3,  // something did not authenticate (tampering, wrong key)
  kExitStale = 4,      // authentic but not the expected state (rollback)
};

int ExitCodeFor(const Status& s);

// Prints "cloister: <context>: <message>" to stderr and returns the exit code.
int Fail(const std::string& context, const Status& s);

// Progress on stderr for long operations: only when stderr is a terminal and
// CI is not set, at most a few updates per second.
class Progress {
 public:
  explicit Progress(std::string verb);
  ~Progress();
  void Add(uint64_t bytes, uint64_t files);
  void Finish();

 private:
  void Print(bool final);
  std::string verb_;
  bool enabled_;
  bool printed_ = false;
  uint64_t bytes_ = 0, files_ = 0;
  int64_t start_ns_, last_ns_;
};

std::string HumanBytes(double bytes);

// Command groups register their subcommands on the app.
void RegisterVolumeCommands(CLI::App& app, int* exit_code);
void RegisterIdentityCommands(CLI::App& app, int* exit_code);
void RegisterSessionCommands(CLI::App& app, int* exit_code);
void RegisterCasCommands(CLI::App& app, int* exit_code);
void RegisterMeasureCommand(CLI::App& app, int* exit_code);
void RegisterNodeCommands(CLI::App& app, int* exit_code);
void RegisterRunCommand(CLI::App& app, int* exit_code);
void RegisterAttestCommands(CLI::App& app, int* exit_code);
void RegisterImageCommands(CLI::App& app, int* exit_code);

// The runtime library: `flag` if given, else CLOISTER_RUNTIME, else next to
// the cloister executable, else in ../lib/cloister relative to it.
StatusOr<std::string> FindRuntime(const std::string& flag);


int Main(int argc, char** argv);

}  // namespace cloister::cli
