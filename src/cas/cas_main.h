// `cloister-cas`: flags and config file, the state directory, the CAS's
// TLS identity, unsealing at start, serving until SIGTERM or SIGINT.
#pragma once

namespace cloister::cas {
int CasMain(int argc, char** argv);
}
