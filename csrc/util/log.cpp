#include "csrc/util/log.h"

#include <unistd.h>

#include <cmath>
#include <ctime>
#include <fstream>
#include <mutex>

namespace mnq {
namespace log {
namespace {

struct Sink {
  std::mutex mu;
  std::ofstream file;
  std::string bar;  // the bar currently drawn on stderr ("" when none)
  bool quiet = false;
  bool muted = false;  // a data-parallel rank other than 0: only errors (log::error)
  bool tty = ::isatty(2) != 0;
};

Sink& sink() {
  static Sink s;
  return s;
}

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
  return buf;
}

// Draws `bar` in place of the current one (caller holds the lock).
void draw(Sink& s, const std::string& bar) {
  if (s.quiet || s.muted || !s.tty) return;
  fmt::print(stderr, "\r\033[2K{}", bar);
  std::fflush(stderr);
  s.bar = bar;
}

}  // namespace

namespace {
void emit(Sink& s, const std::string& line) {
  const std::string text = fmt::format("[{}] {}", timestamp(), line);
  if (!s.bar.empty()) fmt::print(stderr, "\r\033[2K");
  fmt::print(stderr, "{}\n", text);
  if (!s.bar.empty()) fmt::print(stderr, "{}", s.bar);
  std::fflush(stderr);
  if (s.file.is_open()) s.file << text << '\n' << std::flush;
}
}  // namespace

void write(const std::string& line) {
  Sink& s = sink();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.muted) emit(s, line);
}

void error(const std::string& line) {
  Sink& s = sink();
  std::lock_guard<std::mutex> lock(s.mu);
  emit(s, line);
}

void set_muted(bool muted) {
  Sink& s = sink();
  std::lock_guard<std::mutex> lock(s.mu);
  s.muted = muted;
}

void set_file(const std::string& path) {
  Sink& s = sink();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.file.is_open()) s.file.close();
  if (!path.empty()) s.file.open(path, std::ios::app);
}

void set_quiet(bool quiet) {
  Sink& s = sink();
  std::lock_guard<std::mutex> lock(s.mu);
  s.quiet = quiet;
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t t = int64_t(std::llround(seconds));
  const int64_t h = t / 3600, m = (t / 60) % 60, sec = t % 60;
  return h > 0 ? fmt::format("{}:{:02}:{:02}", h, m, sec) : fmt::format("{}:{:02}", m, sec);
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_) done(status_);
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::rate() const {
  const double t = elapsed();
  return t > 0 ? double(count_) / t : 0.0;
}

std::string Progress::line(const std::string& status) const {
  constexpr int kWidth = 24;
  const double frac = total_ > 0 ? std::min(1.0, double(count_) / double(total_)) : 0.0;
  const int full = int(frac * kWidth);
  std::string bar(size_t(full), '#');
  bar.resize(kWidth, '.');
  const double r = rate();
  const double eta = r > 0 ? double(total_ - count_) / r : NAN;
  return fmt::format("{} [{}] {:3.0f}% {}/{} {} | {:.0f} {}/s | {} < {}{}{}", label_, bar, 100 * frac, count_, total_,
                     unit_, r, unit_, log::duration(elapsed()), log::duration(eta), status.empty() ? "" : " | ",
                     status);
}

void Progress::update(int64_t n, const std::string& status) {
  count_ += n;
  status_ = status;
  const auto now = std::chrono::steady_clock::now();
  Sink& s = sink();
  if (!s.tty) {
    // Not a terminal (a log file, CI): a plain line every 30 s, so long loops still show they are alive.
    if (s.quiet || now - last_draw_ < std::chrono::seconds(30) || count_ >= total_) return;
    last_draw_ = now;
    log::write(line(status));
    return;
  }
  if (now - last_draw_ < std::chrono::milliseconds(200) && count_ < total_) return;
  last_draw_ = now;
  std::lock_guard<std::mutex> lock(s.mu);
  draw(s, line(status));
}

void Progress::done(const std::string& status) {
  finished_ = true;
  const std::string text = line(status.empty() ? status_ : status);
  Sink& s = sink();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.bar.empty()) fmt::print(stderr, "\r\033[2K");
    s.bar.clear();
  }
  if (!sink().quiet) log::write(text);
}

}  // namespace log
}  // namespace mnq
