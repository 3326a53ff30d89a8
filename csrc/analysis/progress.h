// Progress of the analyzer's phases: events for a caller-supplied callback, and their display through the log.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace mnq {
namespace analysis {

struct ProgressEvent {
  std::string phase;                           // "calibrate <method>" or "measure"
  int64_t batch = 0, batches = 0, images = 0;  // batches done of `batches`, images so far in this phase
  double seconds = 0;                          // since the phase began
};
using ProgressCallback = std::function<void(const ProgressEvent&)>;

// A callback that shows each phase as a progress bar of the one log (util/log.h: log::Progress, labelled
// "analyzer <phase>", the images per second as its status): redrawn in place on a terminal, and its final line
// logged, so it also reaches the run folder's train.log when mnq-train runs the analyzer (`plan: mixed`).
ProgressCallback progress_line();
// `callback` alone, or (show) progress_line() followed by `callback` (when set): the analyzer's and the plan
// search's display of AnalyzerConfig::progress.
ProgressCallback with_progress_line(bool show, ProgressCallback callback);

// Counts the batches of one phase and reports each to `callback` (when set).
class PhaseProgress {
 public:
  PhaseProgress(std::string phase, int64_t batches, ProgressCallback callback);
  void step(int64_t images);  // one more batch of `images` images done

 private:
  ProgressEvent event_;
  ProgressCallback callback_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace analysis
}  // namespace mnq
