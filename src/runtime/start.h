// Attested start: everything the runtime does between the moment glibc
// hands it control (__libc_start_main, interposed in start.cc) and the
// program's main. docs/runtime.md describes the steps for users;
// docs/protocol.md sections 3 and 5 are the exchanges.
#pragma once

#include "runtime/secret.h"

namespace cloister::runtime {

// What main is called with after a granted start.
struct Launch {
  int argc = 0;
  char** argv = nullptr;
  char** envp = nullptr;
};

// Attests this process and applies the configuration the CAS grants: the
// new arguments and environment are returned (in memory that is never
// freed), the working directory is changed, injected files and volumes are
// installed. Never returns on failure: it prints one line and exits with
// kFailClosedStatus, before main could run.
Launch AttestAndConfigure(int argc, char** argv, char** envp);

}  // namespace cloister::runtime
