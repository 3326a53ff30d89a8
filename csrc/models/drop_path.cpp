// Stochastic depth; see drop_path.h.
#include "csrc/models/drop_path.h"

#include <ATen/CPUGeneratorImpl.h>

#include "csrc/dist/dist.h"
#include "csrc/models/device.h"

namespace mnq {
namespace models {

std::vector<double> drop_path_rates(double rate, int64_t n) {
  const at::Tensor r = at::linspace(0.0, rate, n, at::kFloat).to(at::kDouble);
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + n);
}

at::Tensor drop_path(const at::Tensor& x, double p, bool training) {
  if (p <= 0.0 || !training || x.numel() == 0) return x;
  const double keep = 1.0 - p;
  std::vector<int64_t> shape(size_t(x.dim()), 1);
  // Data-parallel (equal shards of a global batch, csrc/train/data_parallel.h): every rank draws the global batch's
  // mask and keeps its own slice, so the masks are the one-process masks and every rank's generator stays in step.
  const int64_t world = dist::world_size(), local = x.size(0);
  shape[0] = local * world;
  // Drawn on the host (pinned when x is on a CUDA device), copied without waiting: see drop_path.h.
  at::Tensor mask = at::empty(shape, host_staging(x.scalar_type(), x.device()));
  mask.bernoulli_(keep, at::detail::getDefaultCPUGenerator());
  if (world > 1) mask = mask.narrow(0, local * dist::rank(), local);
  if (keep > 0.0) mask.div_(keep);
  return x * to_device_async(mask, x.device());
}

}  // namespace models
}  // namespace mnq
