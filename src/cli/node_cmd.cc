// `cloister node list|revoke`: the nodes (LAS instances) that joined the
// CAS. For CAS administrators.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "cli/cas_conn.h"
#include "cli/cli.h"

namespace cloister::cli {
namespace {

using nlohmann::json;

struct NodeArgs {
  CasConnArgs conn;
  std::string id;
};

Status List(const NodeArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/nodes")));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  const json& nodes = j["nodes"];
  if (nodes.empty()) {
    std::printf("no nodes have joined (create a token with `cloister cas join-token create`)\n");
    return Status::Ok();
  }
  std::printf("%-64s  %-20s  %-10s  %-14s  %-20s  %-20s  %s\n", "ID", "NAME", "JOINED BY", "TCB", "JOINED",
              "CERTIFICATE UNTIL", "STATE");
  bool token_only = false;
  for (const json& n : nodes) {
    std::string state = n.value("revoked", false) ? "revoked " + n.value("revoked_at", "") : "active";
    // The TCB status of the verdict of the node's latest join or renewal
    // with hardware evidence; "-" for a node that joined with a token alone.
    std::string tcb = n.value("tcb_status", "");
    if (n.value("how", "") == "join-token") token_only = true;
    std::printf("%-64s  %-20s  %-10s  %-14s  %-20s  %-20s  %s\n", n.value("id", "").c_str(),
                n.value("name", "").c_str(), n.value("how", "").c_str(), tcb.empty() ? "-" : tcb.c_str(),
                n.value("joined", "").c_str(), Rfc3339(n.value("expires", int64_t{0})).c_str(), state.c_str());
  }
  if (token_only) {
    std::printf("note: programs on nodes that joined by join-token start with sim evidence, which gives no "
                "protection in use\n");
  }
  return Status::Ok();
}

Status Revoke(const NodeArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Post("/v1/nodes/" + a.id + "/revoke", "{}")));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("revoked node %s: its evidence is refused from now on, and it cannot renew its certificate\n",
                a.id.c_str());
  }
  return Status::Ok();
}

}  // namespace

void RegisterNodeCommands(CLI::App& app, int* exit_code) {
  struct Sub {
    const char* name;
    const char* help;
    Status (*run)(const NodeArgs&);
  };
  static constexpr Sub kSubs[] = {
      {"list", "List the nodes that joined: id, name, how, certificate expiry, revocation", List},
      {"revoke", "Revoke a node: refuse its evidence at once and stop its renewals", Revoke},
  };
  for (const Sub& s : kSubs) {
    auto args = std::make_shared<NodeArgs>();
    CLI::App* c = app.add_subcommand(s.name, s.help);
    AddCasConnOptions(*c, args->conn);
    if (std::string(s.name) == "revoke") {
      c->add_option("id", args->id, "Node id (64 hex, from `cloister node list`)")
          ->required()
          ->check([](const std::string& v) {
            return v.size() == 64 && v.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos
                       ? std::string()
                       : std::string("a node id is 64 hex digits");
          });
    }
    auto run = s.run;
    std::string context = std::string("node ") + s.name;
    c->callback([args, run, exit_code, context]() {
      Status st = run(*args);
      if (!st.ok()) *exit_code = Fail(context, st);
    });
  }
}

}  // namespace cloister::cli
