// The intra-host path of the data-parallel collectives: when every rank of the group runs on this host, small and
// medium CPU all-reduces (observers' min/max and PTF error sums, flags, the losses, the gradient buckets) go
// through one POSIX shared-memory segment instead of Gloo's loopback TCP.
//
// Why: Gloo on loopback costs ~280 µs wall (~170 µs CPU) for an 8-byte all-reduce, and a QAT step of a small ViT
// makes ~50 of them (one per observer, each blocking the forward: SPEC's EMA needs the global batch's range before
// that batch is quantized). Through shared memory a collective is a memcpy, one barrier and a reduction.
//
// The algorithm (one barrier per collective, per chunk of at most slot_bytes):
//   1. each rank copies its chunk into its own slot of the current parity (collective number & 1);
//   2. a sense-reversing barrier: an arrival counter and a generation word; the last rank to arrive resets the
//      counter and bumps the generation; the others wait for the bump (spin a few µs, then yield, then futex:
//      the ranks may share cores with each other and with other jobs, so nobody spins long);
//   3. every rank reduces all slots in rank order 0, 1, …, N−1 into its own tensor: the same operations in the same
//      order on every rank, so every rank's result is bit-identical (a float sum is ((s0 + s1) + s2) + …; with two
//      ranks it equals Gloo's s0 + s1 = s1 + s0 exactly).
//   Two parities of slots make one barrier enough: a rank can write collective k+1's slot while a slower one still
//   reads collective k's, and it cannot reach k+2 (which reuses k's slots) before every rank has arrived at k+1,
//   i.e. finished reading k.
//
// Faults keep Gloo's semantics: a collective waits at most the timeout (dist.timeout_s) and then fails naming the
// ranks that did not arrive; a rank whose process died is noticed within ~50 ms (each rank's keeper thread holds a
// robust process-shared mutex for the life of the group; the kernel releases it as "owner died" when the process
// ends, however it ends); the first rank that fails marks the segment failed, so the others fail at once with its
// reason instead of waiting out their timeouts, and every later collective on the segment fails too.
//
// Set-up (LocalGroup::create, collective over the group's store): rank 0 creates the segment under a random name
// and publishes the name and a random token through the store; every other rank maps it and checks the token (a
// rank on another host cannot open it, or finds another token); each rank reports whether it mapped it; all use
// the segment only if every rank did, else all stay on Gloo. Rank 0 unlinks the name once all have answered, so
// nothing is left in /dev/shm whatever happens later.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace c10d {
class Store;
}

namespace mnq {
namespace dist {

enum class LocalOp { kSum, kMax, kMin };

// What the collectives of this process cost so far (cumulative; dist::stats adds Gloo's).
struct LocalStats {
  int64_t collectives = 0;
  int64_t barriers = 0;  // one per chunk
  int64_t bytes = 0;     // this rank's bytes reduced
  double wall_s = 0;     // in the collectives, from entry to return
  double wait_s = 0;     // of which waiting for the last rank to arrive (the slower rank's lag)
};

class LocalGroup {
 public:
  // Collective: every rank of the group calls it with the same `key` (unique per group in this process's life).
  // Returns the group on every rank, or nullptr on every rank (some rank is on another host or could not map the
  // segment; `why` says why on the rank that knows). Throws on a store failure.
  static std::unique_ptr<LocalGroup> create(c10d::Store& store, const std::string& key, int rank, int world,
                                            std::string* why);
  ~LocalGroup();
  LocalGroup(const LocalGroup&) = delete;
  LocalGroup& operator=(const LocalGroup&) = delete;

  // Whether this tensor takes the shared-memory path: a contiguous CPU tensor of a dtype the reductions know
  // (float32/64, int32/64, uint8, bool). The same answer on every rank for the same tensor shape and dtype.
  static bool handles(const at::Tensor& t);

  // In place: the reduction over ranks. Throws CollectiveError (dist.h) on a fault, naming the ranks.
  void allreduce(const at::Tensor& t, LocalOp op, double timeout_s);
  // In place, in one round: lo becomes the minimum and hi the maximum over ranks (an observer's batch range; no
  // stacking or negating as through a backend). Both handled, of one dtype, and together at most 1 MiB.
  void allreduce_min_max(const at::Tensor& lo, const at::Tensor& hi, double timeout_s);
  static bool handles_min_max(const at::Tensor& lo, const at::Tensor& hi);
  void barrier(double timeout_s);

  LocalStats stats() const { return stats_; }

  struct Segment;  // shm.cpp

 private:
  LocalGroup() = default;
  // One barrier round: arrive, wait for every rank; throws on a fault. `what`: the operation, for messages.
  void arrive_and_wait(const char* what, double timeout_s);
  [[noreturn]] void fail(const char* what, const std::string& reason, double timeout_s);

  int rank_ = 0, world_ = 1;
  void* base_ = nullptr;
  size_t size_ = 0;
  Segment* seg_ = nullptr;
  uint64_t seq_ = 0;  // barriers passed
  LocalStats stats_;
  struct Keeper;
  std::unique_ptr<Keeper> keeper_;
};

}  // namespace dist
}  // namespace mnq
