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
#include <stdexcept>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroup;
class Store;
}  // namespace c10d

namespace mnq {
namespace dist {

// The job's group (nullptr: one process). Set before the first collective; the same on every rank.
void set_group(c10::intrusive_ptr<c10d::ProcessGroup> group);
void clear_group();
// The rendezvous store of the group (torch.distributed's default store), used only to tell which ranks still
// answer when a collective fails (below). Optional: without it a failure names no rank.
void set_store(c10::intrusive_ptr<c10d::Store> store);
// The collectives' timeout (`dist.timeout_s`): a rank that does not join a collective within it makes the others'
// collective fail. Given to every collective (c10d's per-operation timeout); 0: the group's default (on the
// shared-memory path, torch's default of 1800 s).
void set_timeout(double seconds);
double timeout_s();  // 0 until set_timeout
// Collective (every rank calls it after set_group and set_store): when every rank of the group runs on this host,
// the CPU all-reduces and barriers go through a shared-memory segment (csrc/dist/shm.h) instead of the group's
// backend; tensors on a GPU and CPU tensors above 64 MiB still take the backend. Returns whether they do (the same
// on every rank). `on` false: the backend for all (MNQ_DIST_SHM=0). set_group drops the segment.
bool enable_local(bool on);
// Which path the collectives take, in words (for the job's log line and the benchmark).
std::string path();

// The collectives this process made since its group was set: how many (of them through shared memory), the bytes
// it reduced, the wall time spent in them, and of that the time spent waiting for the last rank to arrive (the
// slower rank's lag; measured on the shared-memory path only). Cumulative: a caller subtracts two readings.
struct Stats {
  int64_t collectives = 0;
  int64_t shm_collectives = 0;
  int64_t bytes = 0;
  double wall_s = 0;
  double wait_s = 0;
};
Stats stats();
Stats operator-(Stats a, const Stats& b);

// Totals per label that a caller records (the trainer: each stage's training passes, from two stats() readings,
// with the pass's wall and process CPU seconds), read back by the benchmark through the bindings. `steps`: what
// the caller counts them per. Recorded on one process too (no collectives then).
struct Record {
  int64_t steps = 0;
  double wall_s = 0;
  double cpu_s = 0;
  Stats stats;
};
void record(const std::string& label, const Record& delta);
std::vector<std::pair<std::string, Record>> records();

bool active();    // a group with more than one rank is set
int rank();       // 0 without a group
int world_size(); // 1 without a group
// Whether the group has a backend for tensors of this device type (a "cpu:gloo,cuda:nccl" group has both), so
// host values can be agreed on without a device round trip.
bool supports(c10::DeviceType type);

// The mean over ranks of each tensor, in place (gradients): the tensors are packed into flat buckets of at most
// `bucket_bytes` per dtype and device (one all-reduce each, in the order given), summed, divided by the world
// size and copied back. Undefined tensors are skipped.
void allreduce_mean(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = int64_t{25} << 20);

// In place: the sum over ranks (observers' error sums).
void allreduce_sum(const at::Tensor& t);

// In place, together (one all-reduce): lo becomes the minimum and hi the maximum over ranks (observers' ranges).
void allreduce_min_max(const at::Tensor& lo, const at::Tensor& hi);

// In place: the maximum over ranks (flags that every rank must agree on, e.g. a time budget spent).
void allreduce_max(const at::Tensor& t);

// Every rank waits for all (checkpoints, the end of a stage).
void barrier();

// Throws std::runtime_error naming `what` when the tensors (every rank: the same list, e.g. a model's parameters
// and buffers) are not bit-identical on every rank: a 64-bit checksum of their bytes (position-weighted sums of
// 32-bit words, wrapping) is compared with one all-reduce. Data-parallel training keeps every rank's weights and
// quantizer state identical by construction; this is the check that it did. No-op on one process.
void check_identical(const std::vector<at::Tensor>& tensors, const std::string& what);
int64_t checksum(const std::vector<at::Tensor>& tensors);  // the checksum itself (any process)

// A failed collective (a rank died, or hung past the timeout) is raised as CollectiveError: "data-parallel
// <op> failed on rank r of N (<backend's reason>); rank(s) k did not answer within s s: dead or hung". Which ranks
// answer is asked through the store: each failing rank sets its key "mnq/dist_failed/<rank>" and waits a few
// seconds for the others' keys; a rank whose key never comes is the one named.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace dist
}  // namespace mnq
