// `cloister cas init|unseal|status|join-token create|collateral`: operating
// the CAS's seal, tokens for nodes to join, and the collateral that hardware
// evidence is verified with. Shares are
// printed once by init and read from standard input by unseal, never taken
// from the command line.
#include <dirent.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/secret.h"
#include "os/secret_file.h"
#include "base/clock.h"
#include "cli/cas_conn.h"
#include "cli/cli.h"

namespace cloister::cli {
namespace {

using nlohmann::json;

struct CasArgs {
  CasConnArgs conn;
  int shares = 5;
  int threshold = 3;
  std::string ttl = "1h";
  std::string out;
  std::vector<std::string> paths;  // collateral import
};

// "90", "90s", "30m", "12h", "7d" as seconds; nullopt if malformed.
std::optional<int64_t> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  int64_t unit = 1;
  std::string digits = text;
  switch (text.back()) {
    case 's': unit = 1; digits.pop_back(); break;
    case 'm': unit = 60; digits.pop_back(); break;
    case 'h': unit = 3600; digits.pop_back(); break;
    case 'd': unit = 86400; digits.pop_back(); break;
    default: break;
  }
  if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(digits) * unit;
}

// A single-use token for a LAS to join the CAS. It is a secret: written to
// a new 0600 file with --out (what cloister-las --join-token-file reads),
// or printed alone on standard output.
Status JoinTokenCreate(const CasArgs& a) {
  auto ttl = ParseDuration(a.ttl);
  if (!ttl) return InvalidArgument("--ttl must be a duration such as 600, 30m, 12h or 7d");
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  json body = {{"ttl_seconds", *ttl}};
  ASSIGN_OR_RETURN(json j, ApiResult(client->Post("/v1/join-tokens", body.dump())));
  std::string token = j.value("token", "");
  j["token"] = "";
  std::string expires = Rfc3339(j.value("expires", int64_t{0}));
  Status st = Status::Ok();
  if (!a.out.empty()) {
    std::string line = token + "\n";
    st = os::WriteNewSecretFile(a.out, AsBytes(line));
    SecureZero(line.data(), line.size());
    if (st.ok()) std::fprintf(stderr, "join token written to %s (single use, expires %s)\n", a.out.c_str(), expires.c_str());
  } else if (a.conn.json) {
    json out = {{"token", token}, {"expires", j.value("expires", int64_t{0})}};
    std::string text = out.dump(2);
    std::printf("%s\n", text.c_str());
    SecureZero(text.data(), text.size());
    out["token"] = "";
  } else {
    std::printf("%s\n", token.c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "single use, expires %s\n", expires.c_str());
  }
  SecureZero(token.data(), token.size());
  return st;
}

// Collateral files are small (a TCB Info is tens of KiB); a directory is
// read one level deep, in name order, skipping hidden files.
constexpr size_t kMaxCollateralFile = 4 << 20;

Status ReadCollateralFile(const std::string& path, json& files) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return NotFound(path + ": no such file or directory");
  if (st.st_size > static_cast<off_t>(kMaxCollateralFile)) return InvalidArgument(path + ": larger than 4 MiB");
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in && !in.eof()) return IoError("cannot read " + path);
  std::string data = buf.str();
  files.push_back({{"name", path}, {"content", Base64Encode(AsBytes(data))}});
  return Status::Ok();
}

Status CollateralImport(const CasArgs& a) {
  json files = json::array();
  for (const std::string& p : a.paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) return NotFound(p + ": no such file or directory");
    if (!S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(ReadCollateralFile(p, files));
      continue;
    }
    DIR* d = ::opendir(p.c_str());
    if (d == nullptr) return IoError("cannot list " + p);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      std::string full = p + "/" + n;
      if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) RETURN_IF_ERROR(ReadCollateralFile(full, files));
    }
  }
  if (files.empty()) return InvalidArgument("no files to import");
  size_t count = files.size();
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Post("/v1/collateral", json{{"files", std::move(files)}}.dump())));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("%zu files: %zu pieces added or updated, %zu already held\n", count, j.value("added", size_t{0}),
              j.value("unchanged", size_t{0}));
  for (const auto& n : j.value("unrecognised", json::array())) {
    std::printf("not collateral, skipped: %s\n", n.get<std::string>().c_str());
  }
  return Status::Ok();
}

Status CollateralList(const CasArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, true));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/collateral")));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  const json list = j.value("collateral", json::array());
  if (list.empty()) {
    std::printf("no collateral (import some with `cloister cas collateral import`)\n");
    return Status::Ok();
  }
  int64_t now = UnixNow();
  std::printf("%-18s %-29s %-7s %s\n", "KIND", "NEXT UPDATE", "SOURCE", "SUBJECT");
  for (const json& e : list) {
    int64_t next = e.value("next_update", int64_t{0});
    std::string when = next == 0 ? "-" : Rfc3339(next) + (next < now ? " (past)" : "");
    std::printf("%-18s %-29s %-7s %s\n", e.value("kind", "").c_str(), when.c_str(),
                e.value("source", "") == "import" ? "import" : "pccs", e.value("subject", "").c_str());
  }
  return Status::Ok();
}

void PrintSeal(const json& j) {
  std::string state = j.value("state", "");
  if (state == "sealed" && j.contains("threshold")) {
    std::printf("sealed: %d of %d shares entered\n", j.value("progress", 0), j.value("threshold", 0));
  } else {
    std::printf("%s\n", state.c_str());
  }
}

Status Init(const CasArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, false));
  json body = {{"shares", a.shares}, {"threshold", a.threshold}};
  ASSIGN_OR_RETURN(json j, ApiResult(client->Post("/v1/init", body.dump())));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("The CAS is initialized and sealed. Give each share to a different operator;\n"
              "any %d of them unseal the CAS (`cloister cas unseal`). They are shown only now.\n\n",
              a.threshold);
  for (const auto& s : j["shares"]) std::printf("%s\n", s.get<std::string>().c_str());
  return Status::Ok();
}

Status Unseal(const CasArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, false));
  std::string line;
  if (isatty(STDIN_FILENO)) {
    // A share typed on a terminal is not echoed.
    std::fprintf(stderr, "share: ");
    termios old;
    bool quiet = tcgetattr(STDIN_FILENO, &old) == 0;
    if (quiet) {
      termios no_echo = old;
      no_echo.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSAFLUSH, &no_echo);
    }
    std::getline(std::cin, line);
    if (quiet) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fprintf(stderr, "\n");
  } else {
    std::getline(std::cin, line);
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) {
    return InvalidArgument("no share on standard input");
  }
  json body = {{"share", line}};
  std::string text = body.dump();
  SecureZero(line.data(), line.size());
  auto r = client->Post("/v1/unseal", text);
  SecureZero(text.data(), text.size());
  ASSIGN_OR_RETURN(json j, ApiResult(r));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintSeal(j);
  }
  return Status::Ok();
}

Status StatusCmd(const CasArgs& a) {
  ASSIGN_OR_RETURN(auto client, ConnectCas(a.conn, false));
  ASSIGN_OR_RETURN(json j, ApiResult(client->Get("/v1/cas")));
  if (a.conn.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("CAS key %s\nstate   ", j.value("key_hash", "").c_str());
  PrintSeal(j);
  return Status::Ok();
}

}  // namespace

void RegisterCasCommands(CLI::App& app, int* exit_code) {
  struct Sub {
    const char* name;
    const char* help;
    Status (*run)(const CasArgs&);
  };
  static constexpr Sub kSubs[] = {
      {"init", "Initialize a new CAS: create its keyring and print N key shares", Init},
      {"unseal", "Enter one key share (read from standard input)", Unseal},
      {"status", "Show the CAS key and whether it is sealed", StatusCmd},
  };
  {
    CLI::App* tokens = app.add_subcommand("join-token", "Join tokens for nodes (CAS administrators)");
    tokens->require_subcommand(1);
    auto args = std::make_shared<CasArgs>();
    CLI::App* c = tokens->add_subcommand("create", "Create a single-use token with which a LAS joins the CAS");
    AddCasConnOptions(*c, args->conn);
    c->add_option("--ttl", args->ttl, "How long the token is good for: 600, 30m, 12h, 7d")->capture_default_str();
    c->add_option("--out", args->out, "Write the token to this new file (mode 0600) instead of standard output");
    c->callback([args, exit_code]() {
      Status st = JoinTokenCreate(*args);
      if (!st.ok()) *exit_code = Fail("cas join-token create", st);
    });
  }
  {
    CLI::App* coll = app.add_subcommand("collateral", "Collateral for hardware evidence (CAS administrators)");
    coll->require_subcommand(1);
    auto args = std::make_shared<CasArgs>();
    CLI::App* c = coll->add_subcommand(
        "import", "Import Intel (TCB Info, QE Identity, CRLs, chains) and AMD (VCEK, ASK, ARK, CRL) collateral files");
    AddCasConnOptions(*c, args->conn);
    c->add_option("paths", args->paths, "Files, or directories whose files are all imported")->required();
    c->callback([args, exit_code]() {
      Status st = CollateralImport(*args);
      if (!st.ok()) *exit_code = Fail("cas collateral import", st);
    });
    auto largs = std::make_shared<CasArgs>();
    CLI::App* l = coll->add_subcommand("list", "List the collateral the CAS holds");
    AddCasConnOptions(*l, largs->conn);
    l->callback([largs, exit_code]() {
      Status st = CollateralList(*largs);
      if (!st.ok()) *exit_code = Fail("cas collateral list", st);
    });
  }
  for (const Sub& s : kSubs) {
    auto args = std::make_shared<CasArgs>();
    CLI::App* c = app.add_subcommand(s.name, s.help);
    AddCasConnOptions(*c, args->conn, /*identity=*/false);
    if (std::string(s.name) == "init") {
      c->add_option("--shares", args->shares, "Number of key shares (N)")->capture_default_str()->check(CLI::Range(1, 255));
      c->add_option("--threshold", args->threshold, "Shares needed to unseal (M)")->capture_default_str()->check(
          CLI::Range(1, 255));
    }
    auto run = s.run;
    std::string context = std::string("cas ") + s.name;
    c->callback([args, run, exit_code, context]() {
      Status st = run(*args);
      if (!st.ok()) *exit_code = Fail(context, st);
    });
  }
}

}  // namespace cloister::cli
