// The command-line front end of every mnq job (mnq-train, mnq-analyze), on CLI11:
//   <name> --config job.yaml [--set a.b=c ...] [--print-config] [--help]
// --help ends with every config key, its type, default and help (config::describe). The resolved config (file,
// then overrides, validated) is printed before the job runs, so a log always says what ran.
#pragma once

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "csrc/config/config.h"

namespace mnq {
namespace config {

// The one line a user sees for an error: a c10::Error (TORCH_CHECK in torch or an op) without the C++
// backtrace that its what() carries.
inline std::string error_message(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

template <typename T>
int run_cli(int argc, char** argv, const std::string& name, const std::string& about,
            const std::function<int(const T&)>& run, const std::function<void(CLI::App&)>& extra = {}) {
  CLI::App app(about, name);
  std::string path;
  std::vector<std::string> sets;
  bool print_only = false;
  app.add_option("-c,--config", path, "the job's YAML file")->required();
  app.add_option("-s,--set", sets, "override one key, e.g. --set train.epochs=2 (repeatable; value is YAML)");
  app.add_flag("--print-config", print_only, "print the resolved config and exit");
  if (extra) extra(app);
  app.footer("Config keys (type = default):\n" + describe<T>());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  T cfg;
  try {
    cfg = load<T>(path, sets);
  } catch (const Error& e) {
    std::cerr << name << ": config error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {  // a reader's bug, reported rather than an abort
    std::cerr << name << ": config error: " << error_message(e) << "\n";
    return 2;
  }
  std::cout << "# resolved config (" << path << (sets.empty() ? "" : " + --set") << ")\n" << to_yaml(cfg) << std::flush;
  if (print_only) return 0;
  try {
    return run(cfg);
  } catch (const Error& e) {
    std::cerr << name << ": config error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << error_message(e) << "\n";
    return 1;
  }
}

}  // namespace config
}  // namespace mnq
