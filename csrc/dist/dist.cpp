// Data-parallel collectives on torch's c10d process group (csrc/dist/dist.h).
#include "csrc/dist/dist.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

namespace mnq {
namespace dist {
namespace {

std::mutex g_mutex;
c10::intrusive_ptr<c10d::ProcessGroup> g_group;
c10::intrusive_ptr<c10d::Store> g_store;
double g_timeout_s = 0;

c10::intrusive_ptr<c10d::ProcessGroup> group() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_group;
}

// How long a failing rank waits for the others to report their own failure of the same collective: a live peer
// of a dead rank fails at once (its connection closed), so a few seconds tell the dead from the live.
constexpr double kReportWaitS = 5.0;

// The ranks that did not report a failure through the store within kReportWaitS (or the timeout, if shorter).
std::string unanswered(const c10::intrusive_ptr<c10d::Store>& store, int me, int world, double timeout) {
  if (!store) return "";
  const auto key = [](int r) { return "mnq/dist_failed/" + std::to_string(r); };
  try {
    store->set(key(me), std::vector<uint8_t>{1});
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(timeout > 0 ? std::min(kReportWaitS, timeout) : kReportWaitS);
    std::vector<int> missing;
    for (;;) {
      missing.clear();
      for (int r = 0; r < world; ++r) {
        if (r != me && !store->check({key(r)})) missing.push_back(r);
      }
      if (missing.empty() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (missing.empty()) return "";
    std::string ranks;
    for (int r : missing) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    return "; rank" + std::string(missing.size() > 1 ? "s " : " ") + ranks + " did not answer: dead or hung";
  } catch (const std::exception&) {
    // The store is served by rank 0 unless torchrun's agent serves it: gone with rank 0.
    return "; the rendezvous store does not answer either: rank 0 (its host) is dead or hung";
  }
}

// Starts a collective (`start` returns its Work) and waits for it; a failure becomes a CollectiveError naming this
// rank and the ranks that did not answer.
template <class Start>
void run(const c10::intrusive_ptr<c10d::ProcessGroup>& g, Start&& start, const char* op) {
  try {
    start()->wait();
  } catch (const std::exception& e) {
    c10::intrusive_ptr<c10d::Store> store;
    double timeout = 0;
    {
      const std::lock_guard<std::mutex> lock(g_mutex);
      store = g_store;
      timeout = g_timeout_s;
    }
    std::string reason = e.what();
    if (const auto* c = dynamic_cast<const c10::Error*>(&e)) reason = c->what_without_backtrace();
    if (const size_t nl = reason.find('\n'); nl != std::string::npos) reason.resize(nl);
    throw CollectiveError("data-parallel " + std::string(op) + " failed on rank " + std::to_string(g->getRank()) +
                          " of " + std::to_string(g->getSize()) + " (" + reason + ")" +
                          unanswered(store, g->getRank(), g->getSize(), timeout) +
                          (timeout > 0 ? " (dist.timeout_s = " + std::to_string(int64_t(timeout)) + ")" : ""));
  }
}

// Each collective's timeout: dist.timeout_s once set, else the group's own (c10d's kUnsetTimeout). Per operation,
// since Gloo cannot change a group's default timeout after its creation (in Python, before the config is read).
std::chrono::milliseconds op_timeout() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_timeout_s > 0 ? std::chrono::milliseconds(int64_t(g_timeout_s * 1000.0)) : c10d::kUnsetTimeout;
}

void allreduce(const at::Tensor& t, c10d::ReduceOp::RedOpType op) {
  const auto g = group();
  if (!g || g->getSize() <= 1) return;
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp(op);
  o.timeout = op_timeout();
  run(g, [&] { return g->allreduce(v, o); }, "all-reduce");
}

// One bucket: tensors of one dtype and device, packed flat, all-reduced once, unpacked.
void reduce_bucket(const std::vector<at::Tensor>& bucket, int world) {
  std::vector<at::Tensor> flat;
  flat.reserve(bucket.size());
  for (const at::Tensor& t : bucket) flat.push_back(t.reshape(-1));
  at::Tensor packed = at::cat(flat);
  allreduce(packed, c10d::ReduceOp::SUM);
  packed.div_(world);
  int64_t at = 0;
  for (const at::Tensor& t : bucket) {
    const int64_t n = t.numel();
    t.copy_(packed.narrow(0, at, n).view_as(t));
    at += n;
  }
}

}  // namespace

void set_group(c10::intrusive_ptr<c10d::ProcessGroup> g) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_group = std::move(g);
}

void clear_group() {
  set_group({});
  set_store({});
}

void set_store(c10::intrusive_ptr<c10d::Store> store) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_store = std::move(store);
}

void set_timeout(double seconds) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_timeout_s = seconds;
}

double timeout_s() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_timeout_s;
}

bool active() {
  const auto g = group();
  return g && g->getSize() > 1;
}

int rank() {
  const auto g = group();
  return g ? g->getRank() : 0;
}

bool supports(c10::DeviceType type) {
  const auto g = group();
  return g && g->hasBackendForDeviceType(type);
}

int world_size() {
  const auto g = group();
  return g ? g->getSize() : 1;
}

void allreduce_mean(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  if (!active()) return;
  const int world = world_size();
  // Buckets in first-appearance order of (dtype, device), each filled in the order given: the same packing on
  // every rank, since every rank holds the same parameters.
  std::vector<std::vector<at::Tensor>> open;
  std::vector<int64_t> bytes;
  std::vector<std::tuple<at::ScalarType, at::Device>> keys;
  for (const at::Tensor& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    const auto key = std::make_tuple(t.scalar_type(), t.device());
    size_t k = 0;
    while (k < keys.size() && keys[k] != key) ++k;
    if (k == keys.size()) {
      keys.push_back(key);
      open.emplace_back();
      bytes.push_back(0);
    }
    const int64_t nb = t.numel() * static_cast<int64_t>(t.element_size());
    if (!open[k].empty() && bytes[k] + nb > bucket_bytes) {
      reduce_bucket(open[k], world);
      open[k].clear();
      bytes[k] = 0;
    }
    open[k].push_back(t);
    bytes[k] += nb;
  }
  for (const auto& b : open) {
    if (!b.empty()) reduce_bucket(b, world);
  }
}

void allreduce_sum(const at::Tensor& t) { allreduce(t, c10d::ReduceOp::SUM); }

void allreduce_max(const at::Tensor& t) { allreduce(t, c10d::ReduceOp::MAX); }

void allreduce_min_max(const at::Tensor& lo, const at::Tensor& hi) {
  if (!active()) return;
  // max(−lo) = −min(lo): one MAX all-reduce of [−lo, hi].
  at::Tensor both = at::stack({lo.neg(), hi});
  allreduce(both, c10d::ReduceOp::MAX);
  lo.copy_(both[0].neg());
  hi.copy_(both[1]);
}

void barrier() {
  const auto g = group();
  if (!g || g->getSize() <= 1) return;
  c10d::BarrierOptions o;
  o.timeout = op_timeout();
  run(g, [&] { return g->barrier(o); }, "barrier");
}

namespace {

// Σ_i word_i · (2i + 1) over the tensor's bytes read as 32-bit words (bytes when the size is not a multiple of 4),
// in int64 with wrap-around: any single changed word changes it (odd multipliers are invertible mod 2^64).
at::Tensor words_checksum(const at::Tensor& t) {
  at::Tensor c = t.detach().contiguous().reshape(-1);
  if (c.storage_offset() != 0) c = c.clone();  // a word view needs an aligned start
  const int64_t bytes = c.numel() * int64_t(c.element_size());
  const at::Tensor raw = c.view(at::kByte);
  const at::Tensor words = (bytes % 4 == 0 ? raw.view(at::kInt) : raw).to(at::kLong);
  const at::Tensor weights = at::arange(words.numel(), words.options()).mul_(2).add_(1);
  return (words * weights).sum();
}

}  // namespace

int64_t checksum(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> sums;
  for (const at::Tensor& t : tensors) {
    if (t.defined() && t.numel() > 0) sums.push_back(words_checksum(t).to(at::kCPU));
  }
  if (sums.empty()) return 0;
  return words_checksum(at::stack(sums)).item<int64_t>();
}

void check_identical(const std::vector<at::Tensor>& tensors, const std::string& what) {
  const auto g = group();
  if (!g || g->getSize() <= 1) return;
  const int64_t c = checksum(tensors);
  // MAX of [c, −c]: the maximum and the minimum over ranks; every rank equal iff both are c. (−c of INT64_MIN
  // wraps to itself: then only the maximum decides, still a sound check on every other value.)
  at::Tensor both = at::tensor({c, int64_t(0 - uint64_t(c))}, at::kLong);
  if (!g->hasBackendForDeviceType(at::kCPU)) {
    for (const at::Tensor& t : tensors) {
      if (t.defined()) {
        both = both.to(t.device());
        break;
      }
    }
  }
  allreduce(both, c10d::ReduceOp::MAX);
  const at::Tensor h = both.to(at::kCPU);
  const int64_t hi = h[0].item<int64_t>(), lo = int64_t(0 - uint64_t(h[1].item<int64_t>()));
  if (hi != c || lo != c) {
    throw std::runtime_error("data-parallel: " + what + " differ between ranks (rank " + std::to_string(g->getRank()) +
                             " of " + std::to_string(g->getSize()) + " holds checksum " + std::to_string(c) +
                             ", the ranks' range is " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  }
}

}  // namespace dist
}  // namespace mnq
