// Stochastic depth ("drop-path", Huang et al., 2016) as timm's DropPath (timm/layers/drop.py): in training each
// sample's residual branch is kept with probability keep = 1 − p and then scaled by 1/keep, else zeroed; in eval
// (or p = 0) the branch passes unchanged. Block i of n has p_i = linspace(0, rate, n)[i] (timm's dpr; Swin counts
// the blocks of all stages).
//
// The per-sample mask is drawn on the CPU from torch's default CPU generator (which the trainer checkpoints) and
// then moved to the branch's device, so a CUDA run draws the same masks as a CPU run and a resumed stage
// continues the uninterrupted one's stream. For a CUDA branch the mask is drawn into pinned memory and copied
// with non_blocking = true (device.h): the step does not wait for the GPU to catch up with the host. In a
// data-parallel job (csrc/dist) x is one rank's equal shard of the global batch: the global mask is drawn and the
// rank's slice kept (the one-process masks, and the same generator state on every rank).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace mnq {
namespace models {

// timm's rates: torch.linspace(0, rate, n) in float32, as doubles.
std::vector<double> drop_path_rates(double rate, int64_t n);

// x [B, ...] → x · mask[B] / keep in training with p > 0; x otherwise.
at::Tensor drop_path(const at::Tensor& x, double p, bool training);

}  // namespace models
}  // namespace mnq
