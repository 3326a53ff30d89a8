// The one log of every job: concise lines on stderr ("[12:34:56] message"), mirrored into the run folder's
// train.log once a run folder is open, and progress bars for long loops (the trainer's epochs, evaluations and
// calibrations, the analyzer's phases: analysis/progress.h). Both share one lock, so a log line never lands in
// the middle of a bar: the bar is erased, the line printed, the bar redrawn. Its includers need FMT_HEADER_ONLY
// (defined by the analysis and trainer libraries, and for log.cpp itself).
//
// Formatting is fmt's. spdlog is not used: Debian's spdlog 1.10 is built against fmt 9, and LibTorch ships fmt 12
// headers that shadow /usr/include/fmt in any file that sees torch's include path, where spdlog does not compile.
// mnq uses LibTorch's fmt headers header-only (FMT_HEADER_ONLY, see CMakeLists.txt).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <string>

namespace mnq {
namespace log {

void write(const std::string& line);     // one timestamped line
void set_file(const std::string& path);  // also append lines to `path` ("" closes it)
void set_quiet(bool quiet);              // no progress bars (tests)
// A data-parallel rank other than 0 (csrc/train/data_parallel.h): no lines, no bars; only error() prints.
void set_muted(bool muted);
void error(const std::string& line);  // one timestamped line, also when muted

template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  write(fmt::format(f, std::forward<Args>(args)...));
}

// "1:02:03" / "4:05" for a duration in seconds.
std::string duration(double seconds);

// A one-line progress bar on stderr: label, bar, count/total, rate (units/s), elapsed, ETA and a status text
// (e.g. the running loss). Redrawn at most 5 times a second on a terminal; when stderr is not a terminal, a
// plain line every 30 s and the final line (concise logs under CI / nohup).
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "img");
  ~Progress();                                             // finishes the bar if done() was not called
  void update(int64_t n, const std::string& status = "");  // n more units done
  void done(const std::string& status = "");               // final line with the totals
  double elapsed() const;
  double rate() const;  // units per second so far

 private:
  std::string line(const std::string& status) const;
  std::string label_, unit_, status_;
  int64_t total_, count_ = 0;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace log
}  // namespace mnq
