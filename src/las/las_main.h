// `cloister-las`: flags, the state directory, joining the CAS on first
// start, the evidence socket and certificate renewal, serving until SIGTERM
// or SIGINT. Exit codes: 0 after a clean stop, 1 on a failure (one line
// "cloister-las: ..." on stderr), 2 on a usage error.
#pragma once

namespace cloister::las {
int LasMain(int argc, char** argv);
}
