// What every long-running Cloister service (CAS, LAS) does first, before
// any thread starts: it holds keys, so no core files and no ptrace attach
// by other processes of its user; files it creates are for its user alone
// (umask 077); a closed peer is an error, not a signal; and SIGTERM/SIGINT
// are blocked in every thread so that the main thread takes them with
// sigwait and stops cleanly.
#pragma once

#include <signal.h>

namespace cloister::os {

// Applies the above and returns the set {SIGTERM, SIGINT} to sigwait on.
sigset_t PrepareServiceProcess();

}  // namespace cloister::os
