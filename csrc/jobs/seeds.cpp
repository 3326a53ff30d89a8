#include "csrc/jobs/seeds.h"

#include <fmt/ranges.h>

#include <filesystem>

#include "csrc/config/config.h"
#include "csrc/train/pooled.h"
#include "csrc/util/atomic_file.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {

std::string seed_dir(const std::string& dir, int64_t seed) { return dir + "/seed" + std::to_string(seed); }

JobConfig seed_job(const JobConfig& config, int64_t seed) {
  JobConfig c = config;
  c.seeds.clear();
  c.data.seed = seed;
  c.output.dir = seed_dir(config.output.dir, seed);
  return c;
}

JobResult run_seeds(const JobConfig& config, const JobOptions& options) {
  config.validate("");
  const std::string dir = config.output.dir;
  std::filesystem::create_directories(dir);
  util::remove_stale_temps(dir);
  const std::string yaml = config::to_yaml(config);
  if (!options.resume || !std::filesystem::exists(dir + "/config.yaml")) {
    util::write_file_atomic(dir + "/config.yaml", yaml);
  }
  JobResult result;
  result.dir = dir;
  std::vector<SeedRows> done;
  JobOptions session = options;
  for (const int64_t seed : config.seeds) {
    log::set_file("");  // each seed's job logs into its own folder
    log::set_quiet(options.quiet);
    log::write(fmt::format("mnq-train: seed {} of [{}] in {}", seed, fmt::join(config.seeds, ", "),
                           seed_dir(dir, seed)));
    const JobResult r = run_single_job(seed_job(config, seed), session);
    done.push_back({seed, r.rows});
    write_pooled_results(dir, done);
    result.rows = r.rows;
    session.stop_after_epochs = r.epochs_left;
    result.epochs_left = r.epochs_left;
    if (!r.finished) return result;
  }
  util::write_file_atomic(dir + "/config.yaml", yaml);  // every seed accepted it
  result.finished = true;
  log::set_file(dir + "/train.log");
  log::info("results over seeds [{}] ({}/results.md):\n{}", fmt::join(config.seeds, ", "), dir,
            pooled_markdown(done));
  log::set_file("");
  return result;
}

}  // namespace train
}  // namespace mnq
