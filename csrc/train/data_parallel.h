// Data-parallel jobs: one `mnq-train` job on N processes (torchrun), with the results of one process.
//
// The process group is torch's (csrc/dist), joined in Python before the job starts (mnq.cli / mnq.train call
// mnq.distributed.init_from_env when torchrun's variables are set). Everything here is a no-op on one process.
//
// What makes N processes compute the one-process job:
//  - data: `data.batch_size` stays the global batch; each rank loads its equal slice of every batch (the loader's
//    shard, data/loader.h), with the one-process order and per-image augmentations (functions of seed, epoch and
//    global position); Mixup / CutMix pair across slices (each rank also loads its mirrored partner slice);
//    drop-path draws the global batch's mask and keeps the rank's part (models/drop_path.h). So the global
//    batch is the same set of augmented images whatever N is, and --resume works with another N.
//  - gradients: averaged over ranks after backward (dist::allreduce_mean, flat buckets). With equal slices the
//    mean of the ranks' mean losses is the global mean loss, so every rank steps with the global gradient (up to
//    float summation order) and the weights stay identical across ranks.
//  - quantizers: every observer all-reduces its batch statistics (min/max, PTF α error sums: nn/quant.cpp), in
//    pretraining, calibration, QAT and the analyzer's calibrations; the analyzer's SQNR sums are all-reduced
//    (analysis/sqnr.h), so every rank derives the same plan.
//  - evaluation: sharded; the per-image top-1 hits and per-batch sums are gathered into the one-process order,
//    so results.md/json and their paired tests have the same rows.
//  - host decisions (read-backs of the losses, the divergence stop, a time budget) are taken on all-reduced values
//    at the same steps on every rank, so no rank leaves a collective the others are still in.
//  - files: rank 0 alone publishes (util::set_publishing) and logs (log::set_muted); the others compute the same
//    bytes and discard them. Checkpoints stay atomic. Errors are printed by every rank, naming it.
//  - faults: a collective that fails (a rank died, or hung past `dist.timeout_s`) raises dist::CollectiveError
//    naming the ranks that did not answer; the job exits non-zero. Under torchrun --max-restarts a restarted
//    job resumes from its last checkpoints by itself (restarted_by_torchrun).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/data/loader.h"
#include "csrc/dist/dist.h"

namespace mnq {
namespace train {

struct TrainConfig;

namespace dp {

// What begin_job needs of a job (csrc/jobs/train_job.cpp fills it from the JobConfig).
struct JobStart {
  at::Device device{at::kCPU};  // where the job runs (run_job's choice)
  double timeout_s = 600;       // dist.timeout_s
  int64_t global_batch = 0;     // data.batch_size: the global batch
  std::string config_yaml;      // the resolved job config (config::to_yaml): every rank must run the same
};

// At the start of run_job (after validate): the collectives' timeout; on ranks other than 0, no files and no logs;
// checks that data.batch_size splits evenly and that every rank runs the same (resolved) config.
void begin_job(const JobStart& job);

bool active();   // more than one process
int rank();      // 0 on one process
int world();     // 1 on one process

// This rank's shard of `o` (unchanged on one process); `partners`: also the Mixup / CutMix partner slices.
data::LoaderOptions sharded(data::LoaderOptions o, bool partners = false);
// Whether a stage mixes batches (its partner slices are needed).
bool mixes(const TrainConfig& cfg);

// After backward: every parameter's gradient becomes the mean over ranks (flat buckets, one all-reduce each).
void average_gradients(const torch::nn::Module& module);

// Throws naming `what` unless every rank holds bit-identical parameters and buffers (quantizer state) in `module`
// (dist::check_identical; the trainer checks before every checkpoint).
void check_identical(const torch::nn::Module& module, const std::string& what);

// The trainer's pending steps [steps, 2] (float64: the rank's mean loss, its top-1 hits), in place: the global
// mean loss and the global hits.
void reduce_steps(const at::Tensor& values);

// Sums `values` (float64 host values, e.g. counts of an evaluation pass over this rank's shard) over the ranks, in
// place; unchanged on one process.
void sum_over_ranks(at::Tensor& values);

// Whether `flag` is true on any rank (one MAX all-reduce of a host value; a time budget spent on one rank stops
// all of them at the same step).
bool any_rank(bool flag);

// Evaluation: this rank's per-batch [loss sum, top-5 hits] rows (`sums` [batches, 2] float64) and its top-1 hits
// (`hits` [n_local] uint8) at the epoch positions `positions` [n_local] int64, all on one device; returns the
// global rows (the ranks' sums) and the global hits [n] in position order. One process: returned unchanged.
std::pair<at::Tensor, at::Tensor> gather_eval(const at::Tensor& sums, const at::Tensor& hits,
                                              const at::Tensor& positions, int64_t n);

// The cost of one training pass: constructed at its start; end() records its wall and process CPU seconds and
// its collectives under the stage's name (dist::record, read back by scripts/bench_train.py) and, data-parallel,
// logs the collectives per step (count, time, the wait for the slowest rank).
class PassCollectives {
 public:
  PassCollectives();
  void end(const std::string& stage, int64_t steps) const;

 private:
  dist::Stats start_;
  double wall0_, cpu0_;
};

// Whether this process is a restart by torchrun's elastic agent (TORCHELASTIC_RESTART_COUNT > 0): the job then
// continues from its checkpoints as with --resume.
bool restarted_by_torchrun();

// "" on one process, " (rank r of N)" otherwise: appended to error lines.
std::string rank_suffix();

}  // namespace dp
}  // namespace train
}  // namespace mnq
