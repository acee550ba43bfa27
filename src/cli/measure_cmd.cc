// `cloister measure FILE...`: the measurement a session lists for a program
// (hex SHA-256 of the file), as the LAS computes it at every start.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "attest/measure.h"
#include "cli/cli.h"

namespace cloister::cli {

void RegisterMeasureCommand(CLI::App& app, int* exit_code) {
  struct Args {
    std::vector<std::string> files;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  app.add_option("file", args->files, "Program files to measure")->required();
  app.add_flag("--json", args->json, "Machine-readable output");
  app.callback([args, exit_code]() {
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& f : args->files) {
      auto m = attest::MeasureFile(f);
      if (!m.ok()) {
        *exit_code = Fail("measure", m.status());
        return;
      }
      if (args->json) {
        out.push_back({{"file", f}, {"sha256", m->sha256}, {"size", m->size}});
      } else {
        std::printf("%s  %s\n", m->sha256.c_str(), f.c_str());
      }
    }
    if (args->json) std::printf("%s\n", out.dump(2).c_str());
  });
}

}  // namespace cloister::cli
