// Op counter; see op_counter.h.
#include "csrc/models/op_counter.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <utility>

namespace mnq {
namespace models {
namespace {

// RecordFunction callbacks are plain function pointers: the one live counter's state is a static object (never
// freed, so a callback still running on another thread never reads freed memory).
struct State {
  std::mutex mu;
  std::atomic<bool> alive{false};
  std::vector<std::string> names;  // written only while no counter is alive
  std::atomic<int64_t> count{0};
};

State& state() {
  static State s;
  return s;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  State& s = state();
  if (!s.alive.load(std::memory_order_acquire)) return nullptr;
  const char* name = fn.name();
  if (std::any_of(s.names.begin(), s.names.end(), [&](const std::string& n) { return n == name; })) {
    s.count.fetch_add(1, std::memory_order_relaxed);
  }
  return nullptr;
}

}  // namespace

OpCounter::OpCounter(std::vector<std::string> names) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  TORCH_CHECK(!s.alive.load(), "OpCounter: another counter is alive (one at a time)");
  s.names = std::move(names);
  s.count.store(0);
  s.alive.store(true, std::memory_order_release);
  handle_ = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_start).needsInputs(false).scopes({at::RecordScope::FUNCTION}));
}

OpCounter::~OpCounter() {
  at::removeCallback(handle_);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.alive.store(false, std::memory_order_release);
}

int64_t OpCounter::count() const { return state().count.load(); }

}  // namespace models
}  // namespace mnq
