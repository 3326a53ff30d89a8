// Progress events and the stderr line; see progress.h.
#include "csrc/analysis/progress.h"

#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>

namespace mnq {
namespace analysis {

ProgressCallback progress_line() {
  // On a terminal the line is redrawn in place; into a file or pipe (logs, CI) only each phase's last line is
  // written, so the log holds one line per phase instead of a run of carriage returns.
  const bool tty = isatty(fileno(stderr)) != 0;
  return [tty](const ProgressEvent& e) {
    const bool last = e.batch == e.batches;
    if (!tty && !last) return;
    const double rate = e.seconds > 0 ? static_cast<double>(e.images) / e.seconds : 0.0;
    fmt::print(stderr, "{}[mnq-analyze] {:<16} {:>5}/{:<5} batches {:>9.1f} img/s{}", tty ? "\r" : "", e.phase,
               e.batch, e.batches, rate, last ? "\n" : "");
    std::fflush(stderr);
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
