// mnq-train's command line: the config front end (--config, --set, --print-config, --help) plus the trainer's
// own flags.
#include "csrc/config/cli.h"

#include <cstdlib>

#include "csrc/jobs/train_job.h"
#include "csrc/train/data_parallel.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {

int cli_main(int argc, char** argv) {
  JobOptions options;
  auto extra = [&](CLI::App& app) {
    app.add_flag("--resume", options.resume,
                 "continue the run folder's stages from their checkpoints (finished runs are kept)");
    app.add_option("--stop-after-epochs", options.stop_after_epochs,
                   "stop after this many epochs in this session, as if killed (continue with --resume)");
    app.add_flag("--quiet", options.quiet, "no progress bars");
  };
  // Config errors propagate to run_cli (which prints them and returns 2); other errors are logged, so they also
  // reach the run folder's train.log, and return 1.
  auto run = [&](const JobConfig& config) {
    log::set_muted(dp::rank() != 0);  // data-parallel: rank 0 alone logs (dp::begin_job)
    // torchrun --max-restarts: a restarted job continues from its checkpoints by itself.
    if (dp::restarted_by_torchrun() && !options.resume) {
      options.resume = true;
      log::info("restarted by torchrun (TORCHELASTIC_RESTART_COUNT={}): resuming from the checkpoints",
                std::getenv("TORCHELASTIC_RESTART_COUNT"));
    }
    try {
      const JobResult r = run_job(config, options);
      if (!r.finished) log::info("stopped before the end of the job; continue with --resume");
      return 0;
    } catch (const config::Error&) {
      throw;
    } catch (const std::exception& e) {
      log::error(fmt::format("error{}: {}", dp::rank_suffix(), config::error_message(e)));  // every rank says it
      return 1;
    }
  };
  return config::run_cli<JobConfig>(argc, argv, "mnq-train",
                                    "Quantization-aware training of ViT/DeiT/Swin with integer non-linear layers "
                                    "(full-precision pretraining or checkpoint, calibration, QAT, comparison table)",
                                    run, extra);
}

}  // namespace train
}  // namespace mnq
