// `cloister cas init|unseal|status`: operating the CAS's seal. Shares are
// printed once by init and read from standard input by unseal, never taken
// from the command line.
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/secret.h"
#include "cli/cas_conn.h"
#include "cli/cli.h"

namespace cloister::cli {
namespace {

using nlohmann::json;

struct CasArgs {
  CasConnArgs conn;
  int shares = 5;
  int threshold = 3;
};

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
