// Progress events and their display through the log; see progress.h.
#include "csrc/analysis/progress.h"

#include <fmt/format.h>

#include <memory>

#include "csrc/util/log.h"

namespace mnq {
namespace analysis {

ProgressCallback progress_line() {
  // One bar per phase: created at the phase's first batch, finished (its final line logged) at its last.
  auto bar = std::make_shared<std::unique_ptr<log::Progress>>();
  return [bar](const ProgressEvent& e) {
    if (!*bar || e.batch == 1) *bar = std::make_unique<log::Progress>("analyzer " + e.phase, e.batches, "batch");
    const double rate = e.seconds > 0 ? static_cast<double>(e.images) / e.seconds : 0.0;
    const std::string status = fmt::format("{:.1f} img/s", rate);
    if (e.batch < e.batches) {
      (*bar)->update(1, status);
      return;
    }
    (*bar)->update(1);
    (*bar)->done(status);
    bar->reset();
  };
}

ProgressCallback with_progress_line(bool show, ProgressCallback callback) {
  if (!show) return callback;
  return [line = progress_line(), callback = std::move(callback)](const ProgressEvent& e) {
    line(e);
    if (callback) callback(e);
  };
}

PhaseProgress::PhaseProgress(std::string phase, int64_t batches, ProgressCallback callback)
    : callback_(std::move(callback)), start_(std::chrono::steady_clock::now()) {
  event_.phase = std::move(phase);
  event_.batches = batches;
}

void PhaseProgress::step(int64_t images) {
  event_.batch += 1;
  event_.images += images;
  event_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (callback_) callback_(event_);
}

}  // namespace analysis
}  // namespace mnq
