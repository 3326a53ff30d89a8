// Data-parallel collectives on torch's c10d process group (csrc/dist/dist.h).
#include "csrc/dist/dist.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <map>
#include <mutex>
#include <tuple>

namespace mnq {
namespace dist {
namespace {

std::mutex g_mutex;
c10::intrusive_ptr<c10d::ProcessGroup> g_group;

c10::intrusive_ptr<c10d::ProcessGroup> group() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  return g_group;
}

void allreduce(const at::Tensor& t, c10d::ReduceOp::RedOpType op) {
  const auto g = group();
  if (!g || g->getSize() <= 1) return;
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp(op);
  g->allreduce(v, o)->wait();
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

void clear_group() { set_group({}); }

bool active() {
  const auto g = group();
  return g && g->getSize() > 1;
}

int rank() {
  const auto g = group();
  return g ? g->getRank() : 0;
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
  g->barrier()->wait();
}

}  // namespace dist
}  // namespace mnq
