// What the `session` and `cas` command groups share: the connection flags
// (--cas, --cas-key, --identity, or CLOISTER_CAS_ADDR / CLOISTER_CAS_KEY),
// the client, and the translation of API error bodies into a Status.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cloister/status.h"
#include "net/http_client.h"

namespace CLI {
class App;
}

namespace cloister::cli {

struct CasConnArgs {
  std::string addr;      // --cas or CLOISTER_CAS_ADDR
  std::string key_hash;  // --cas-key or CLOISTER_CAS_KEY
  std::string identity;  // --identity (default ~/.config/cloister)
  bool json = false;
};

// Adds --cas, --cas-key, --json and (if `identity`) --identity to a subcommand.
void AddCasConnOptions(CLI::App& cmd, CasConnArgs& args, bool identity = true);

// The default identity directory ($XDG_CONFIG_HOME/cloister or ~/.config/cloister).
std::string DefaultIdentityDir();

// A client for the CAS; `with_identity` loads and presents the identity.
StatusOr<std::unique_ptr<net::ApiClient>> ConnectCas(const CasConnArgs& args, bool with_identity);

// One problem of a session document on stderr: "<source>:<line>:<column>: <path>: <message>"
// (no "<source>:" when source is empty).
void PrintProblem(const std::string& source, int line, int column, const std::string& path,
                  const std::string& message);

// The JSON body of a 2xx response, or the API's error as a Status (with its
// "problems" printed to stderr one per line, "<source>:<line>:<column>: <path>: <message>").
StatusOr<nlohmann::json> ApiResult(const StatusOr<net::HttpResponse>& r, const std::string& source = "");

}  // namespace cloister::cli
