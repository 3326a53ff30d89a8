// Data-parallel collectives on torch's c10d process group (csrc/dist/dist.h).
#include "csrc/dist/dist.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

#include "csrc/dist/shm.h"

namespace mnq {
namespace dist {
namespace {

std::mutex g_mutex;
c10::intrusive_ptr<c10d::ProcessGroup> g_group;
c10::intrusive_ptr<c10d::Store> g_store;
double g_timeout_s = 0;
std::shared_ptr<LocalGroup> g_local;  // the intra-host path (shm.h), when every rank is on this host
std::string g_local_why;              // why there is none
int64_t g_local_setups = 0;           // the store keys of each set-up differ
Stats g_gloo;                         // the collectives that went to the group's backend
std::vector<std::pair<std::string, Record>> g_records;

// The default collective timeout while dist.timeout_s is unset: torch.distributed's default group timeout.
constexpr double kDefaultTimeoutS = 1800;

// Tensors up to this size take the intra-host path (in 1 MiB chunks); larger ones go to Gloo.
constexpr int64_t kLocalMaxBytes = int64_t{64} << 20;

c10::intrusive_ptr<c10d::ProcessGroup> group() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_group;
}

std::shared_ptr<LocalGroup> local() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_local;
}

double effective_timeout_s() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_timeout_s > 0 ? g_timeout_s : kDefaultTimeoutS;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
  const bool reducible = op == c10d::ReduceOp::SUM || op == c10d::ReduceOp::MAX || op == c10d::ReduceOp::MIN;
  if (const auto l = local(); l && reducible && LocalGroup::handles(t) && int64_t(t.nbytes()) <= kLocalMaxBytes) {
    if (t.numel() == 0) return;
    const LocalOp lop = op == c10d::ReduceOp::SUM   ? LocalOp::kSum
                        : op == c10d::ReduceOp::MAX ? LocalOp::kMax
                                                    : LocalOp::kMin;
    l->allreduce(t, lop, effective_timeout_s());
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp(op);
  o.timeout = op_timeout();
  run(g, [&] { return g->allreduce(v, o); }, "all-reduce");
  const std::lock_guard<std::mutex> lock(g_mutex);
  ++g_gloo.collectives;
  g_gloo.bytes += int64_t(t.nbytes());
  g_gloo.wall_s += seconds_since(t0);
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
  g_local.reset();  // a new group: its own segment (enable_local)
  g_local_why = "not enabled";
  g_gloo = Stats();
}

bool enable_local(bool on) {
  const auto g = group();
  c10::intrusive_ptr<c10d::Store> store;
  {
    const std::lock_guard<std::mutex> lock(g_mutex);
    store = g_store;
    g_local.reset();
    g_local_why = !on                         ? "disabled (MNQ_DIST_SHM=0)"
                  : !g || g->getSize() <= 1 ? "one process"
                  : !store                  ? "no store"
                                            : "";
    if (!g_local_why.empty()) return false;
  }
  // Collective over the store: every rank takes the same decision (shm.h). The key names the group's set-up.
  std::string why;
  const std::string key = "mnq/shm/" + std::to_string(g_local_setups++);
  std::unique_ptr<LocalGroup> l = LocalGroup::create(*store, key, g->getRank(), g->getSize(), &why);
  const std::lock_guard<std::mutex> lock(g_mutex);
  g_local = std::move(l);
  g_local_why = g_local ? "" : why;
  return bool(g_local);
}

std::string path() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_group || g_group->getSize() <= 1) return "one process";
  const std::string backend = g_group->getBackendName();
  return g_local ? "intra-host shared memory (CPU tensors up to 64 MiB), " + backend + " otherwise"
                 : backend + " (no shared memory: " + g_local_why + ")";
}

Stats stats() {
  Stats s;
  {
    const std::lock_guard<std::mutex> lock(g_mutex);
    s = g_gloo;
  }
  if (const auto l = local()) {
    const LocalStats ls = l->stats();
    s.collectives += ls.collectives;
    s.shm_collectives = ls.collectives;
    s.bytes += ls.bytes;
    s.wall_s += ls.wall_s;
    s.wait_s = ls.wait_s;
  }
  return s;
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

Stats operator-(Stats a, const Stats& b) {
  a.collectives -= b.collectives;
  a.shm_collectives -= b.shm_collectives;
  a.bytes -= b.bytes;
  a.wall_s -= b.wall_s;
  a.wait_s -= b.wait_s;
  return a;
}

void record(const std::string& label, const Record& delta) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  auto it = std::find_if(g_records.begin(), g_records.end(), [&](const auto& r) { return r.first == label; });
  if (it == g_records.end()) it = g_records.insert(g_records.end(), {label, Record{}});
  Record& r = it->second;
  const Stats& d = delta.stats;
  r.steps += delta.steps;
  r.wall_s += delta.wall_s;
  r.cpu_s += delta.cpu_s;
  r.stats.collectives += d.collectives;
  r.stats.shm_collectives += d.shm_collectives;
  r.stats.bytes += d.bytes;
  r.stats.wall_s += d.wall_s;
  r.stats.wait_s += d.wait_s;
}

std::vector<std::pair<std::string, Record>> records() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_records;
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
  if (const auto l = local(); l && LocalGroup::handles_min_max(lo, hi)) {
    return l->allreduce_min_max(lo, hi, effective_timeout_s());
  }
  // max(−lo) = −min(lo): one MAX all-reduce of [−lo, hi].
  at::Tensor both = at::stack({lo.neg(), hi});
  allreduce(both, c10d::ReduceOp::MAX);
  lo.copy_(both[0].neg());
  hi.copy_(both[1]);
}

void barrier() {
  const auto g = group();
  if (!g || g->getSize() <= 1) return;
  if (const auto l = local()) return l->barrier(effective_timeout_s());
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
