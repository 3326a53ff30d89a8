// `seeds: [s0, s1, …]`: the whole job repeated per seed. Seed s is the job with data.seed = s in
// <output.dir>/seed<s>/ (its own config.yaml, train.log, fp/, plans/, runs and results: a complete single-seed run
// folder that `mnq-train --config <output.dir>/seed<s>/config.yaml` would also produce), so every stage that
// draws from the seed — the training subset, the data order, the initialisation, the pretraining, the calibration
// and the analyzer — is repeated, and --resume continues each seed from its own checkpoints (finished seeds are
// read back, not retrained). The seeds run in the order given; after each one, <output.dir>/results.md and
// results.json (pooled.h) are rewritten with every seed reached.
#pragma once

#include <string>

#include "csrc/jobs/train_job.h"

namespace mnq {
namespace train {

// The folder of seed `seed` under `dir`.
std::string seed_dir(const std::string& dir, int64_t seed);
// The single-seed job of `seed`: data.seed = seed, output.dir = seed_dir(...), no `seeds`.
JobConfig seed_job(const JobConfig& config, int64_t seed);

// JobResult::rows: the pooled rows are in results.md/json; here the rows of the last seed reached.
JobResult run_seeds(const JobConfig& config, const JobOptions& options);

}  // namespace train
}  // namespace mnq
