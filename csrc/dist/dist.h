// Data-parallel support: the process group of a job that runs on several processes (torchrun), and the
// collectives mnq's layers and trainer need. With no group set (one process) every function is a no-op, so
// single-process code pays nothing.
//
// The group is torch's own (c10d: Gloo on CPU, NCCL on CUDA), created by torch.distributed from torchrun's
// environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE) and handed to
// C++ once (python/mnq/distributed.py init_from_env → set_group), so the rendezvous is torch's, not a copy of it.
// Collectives run on the tensors' device and return when done; they read no value back to the host.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <cstdint>
#include <vector>

namespace c10d {
class ProcessGroup;
}

namespace mnq {
namespace dist {

// The job's group (nullptr: one process). Set before the first collective; the same on every rank.
void set_group(c10::intrusive_ptr<c10d::ProcessGroup> group);
void clear_group();
bool active();    // a group with more than one rank is set
int rank();       // 0 without a group
int world_size(); // 1 without a group

// The mean over ranks of each tensor, in place (gradients): the tensors are packed into flat buckets of at most
// `bucket_bytes` per dtype and device (one all-reduce each, in the order given), summed, divided by the world
// size and copied back. Undefined tensors are skipped.
void allreduce_mean(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = int64_t{25} << 20);

// In place: the sum over ranks (observers' error sums).
void allreduce_sum(const at::Tensor& t);

// In place, together (one all-reduce): lo becomes the minimum and hi the maximum over ranks (observers' ranges).
void allreduce_min_max(const at::Tensor& lo, const at::Tensor& hi);

// Every rank waits for all (checkpoints, the end of a stage).
void barrier();

}  // namespace dist
}  // namespace mnq
