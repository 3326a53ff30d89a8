#include "csrc/util/fault.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace mnq {
namespace util {
namespace {

std::atomic<int64_t> g_passed{0};

struct FaultEnv {
  int64_t kill_at = 0;  // 0: never
  int trace_fd = -1;
  FaultEnv() {
    if (const char* at = std::getenv("MNQ_FAULT_AT"); at != nullptr && *at != '\0') {
      char* end = nullptr;
      const long long n = std::strtoll(at, &end, 10);
      kill_at = (end != nullptr && *end == '\0' && n > 0) ? n : 0;
    }
    if (const char* trace = std::getenv("MNQ_FAULT_TRACE"); trace != nullptr && *trace != '\0') {
      trace_fd = ::open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    }
  }
};

const FaultEnv& env() {
  static const FaultEnv e;  // read once, on the first write of the process
  return e;
}

}  // namespace

void fault_point(const char* kind, const std::string& path) {
  const int64_t n = g_passed.fetch_add(1, std::memory_order_relaxed) + 1;
  const FaultEnv& e = env();
  if (e.trace_fd >= 0) {
    const std::string line = std::to_string(n) + " " + kind + " " + path + "\n";
    (void)!::write(e.trace_fd, line.data(), line.size());
  }
  if (n == e.kill_at) ::raise(SIGKILL);
}

int64_t fault_points_passed() { return g_passed.load(std::memory_order_relaxed); }

}  // namespace util
}  // namespace mnq
