#include "cli/cas_conn.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

namespace cloister::cli {

void AddCasConnOptions(CLI::App& cmd, CasConnArgs& args, bool identity) {
  cmd.add_option("--cas", args.addr, "CAS API address host:port (or CLOISTER_CAS_ADDR)");
  cmd.add_option("--cas-key", args.key_hash, "Pinned CAS key hash, 64 hex (or CLOISTER_CAS_KEY)");
  if (identity) cmd.add_option("--identity", args.identity, "Identity directory (default: ~/.config/cloister)");
  cmd.add_flag("--json", args.json, "Machine-readable output");
}

std::string DefaultIdentityDir() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/cloister";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.config/cloister";
  return ".cloister";
}

StatusOr<std::unique_ptr<net::ApiClient>> ConnectCas(const CasConnArgs& args, bool with_identity) {
  std::string addr = args.addr, key = args.key_hash;
  if (addr.empty()) {
    if (const char* e = std::getenv("CLOISTER_CAS_ADDR"); e && *e) addr = e;
  }
  if (key.empty()) {
    if (const char* e = std::getenv("CLOISTER_CAS_KEY"); e && *e) key = e;
  }
  if (addr.empty()) return InvalidArgument("no CAS address: pass --cas HOST:PORT or set CLOISTER_CAS_ADDR");
  if (key.empty()) {
    return InvalidArgument("no CAS key to pin: pass --cas-key HASH or set CLOISTER_CAS_KEY (printed by cloister-cas at start)");
  }
  if (!with_identity) return net::ApiClient::New(addr, key, nullptr);
  std::string dir = args.identity.empty() ? DefaultIdentityDir() : args.identity;
  auto id = net::LoadTlsIdentity(dir, "identity");
  if (!id.ok()) {
    if (id.status().code() == StatusCode::kNotFound) {
      return NotFound("no identity in " + dir + " (create one with `cloister identity create`)");
    }
    return id.status().WithContext("identity");
  }
  return net::ApiClient::New(addr, key, &*id);
}

void PrintProblem(const std::string& source, int line, int column, const std::string& path,
                  const std::string& message) {
  std::fprintf(stderr, "%s%s%d:%d: %s: %s\n", source.c_str(), source.empty() ? "" : ":", line, column, path.c_str(),
               message.c_str());
}

StatusOr<nlohmann::json> ApiResult(const StatusOr<net::HttpResponse>& r, const std::string& source) {
  if (!r.ok()) return r.status();
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status >= 200 && r->status < 300) {
    if (j.is_discarded()) return InternalError("the CAS sent a response that is not JSON");
    return j;
  }
  std::string msg = "HTTP " + std::to_string(r->status);
  StatusCode code = StatusCode::kInternal;
  if (!j.is_discarded() && j.is_object()) {
    msg = j.value("error", msg);
    std::string c = j.value("code", "");
    static const std::pair<const char*, StatusCode> kCodes[] = {
        {"invalid-argument", StatusCode::kInvalidArgument}, {"not-found", StatusCode::kNotFound},
        {"already-exists", StatusCode::kAlreadyExists},     {"permission-denied", StatusCode::kPermissionDenied},
        {"failed-precondition", StatusCode::kFailedPrecondition}, {"stale", StatusCode::kStale},        {"integrity", StatusCode::kIntegrity},
        {"resource-exhausted", StatusCode::kResourceExhausted}, {"unavailable", StatusCode::kUnavailable},
        {"unauthenticated", StatusCode::kUnauthenticated},
    };
    for (const auto& [name, value] : kCodes) {
      if (c == name) code = value;
    }
    if (j.contains("problems") && j["problems"].is_array()) {
      for (const auto& p : j["problems"]) {
        PrintProblem(source, p.value("line", 0), p.value("column", 0), p.value("path", ""), p.value("message", ""));
      }
    }
  }
  return Status(code, msg);
}

}  // namespace cloister::cli
