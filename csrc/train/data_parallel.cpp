// Data-parallel jobs; see data_parallel.h.
#include "csrc/train/data_parallel.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <string>

#include "csrc/config/config.h"
#include "csrc/dist/dist.h"
#include "csrc/train/train_config.h"
#include "csrc/util/atomic_file.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {

namespace dp {
namespace {

at::Device g_device(at::kCPU);  // where host values go for a collective: the CPU when the group has a CPU backend

// A host value as a tensor the group can reduce.
at::Tensor host_values(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(g_device); }

// FNV-1a of the resolved config: ranks that were started with different configs or flags would compute different
// jobs (and deadlock in mismatched collectives); this says so at once instead.
int64_t text_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return int64_t(h >> 1);  // non-negative, so −h is representable
}

}  // namespace

bool active() { return dist::active(); }
int rank() { return dist::rank(); }
int world() { return dist::world_size(); }

void begin_job(const JobStart& job) {
  g_device = dist::supports(at::kCPU) ? at::Device(at::kCPU) : job.device;
  dist::set_timeout(job.timeout_s);
  const bool follower = dist::rank() != 0;
  util::set_publishing(!follower);
  log::set_muted(follower);
  if (!dist::active()) return;
  const int n = dist::world_size();
  if (job.global_batch % n != 0) {
    throw config::Error("data.batch_size",
                        fmt::format("{} does not split evenly over the {} processes of this job (it is the global "
                                    "batch; each process takes batch_size / {})",
                                    job.global_batch, n, n));
  }
  // One MAX all-reduce of [h, −h]: every rank's hash equals the maximum and the minimum.
  const int64_t h = text_hash(job.config_yaml);
  const at::Tensor t = host_values({h, -h});
  dist::allreduce_max(t);
  const at::Tensor c = t.to(at::kCPU);
  if (c[0].item<int64_t>() != h || -c[1].item<int64_t>() != h) {
    throw std::runtime_error(fmt::format("data-parallel: rank {} was started with another config than some other "
                                         "rank (every process must get the same --config, --set and flags)",
                                         dist::rank()));
  }
  log::info("data-parallel: {} processes, global batch {} = {} × {} per process, collective timeout {} s; "
            "collectives: {}",
            n, job.global_batch, n, job.global_batch / n, job.timeout_s, dist::path());
}

data::LoaderOptions sharded(data::LoaderOptions o, bool partners) {
  o.shard = dist::rank();
  o.shards = dist::world_size();
  o.partners = partners && o.shards > 1;
  return o;
}

bool mixes(const TrainConfig& cfg) { return cfg.mixup > 0 || cfg.cutmix > 0; }

void average_gradients(const torch::nn::Module& module) {
  if (!dist::active()) return;
  std::vector<at::Tensor> grads;
  for (const auto& p : module.parameters()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  dist::allreduce_mean(grads);
}

void check_identical(const torch::nn::Module& module, const std::string& what) {
  if (!dist::active()) return;
  std::vector<at::Tensor> state = module.parameters();
  for (const at::Tensor& b : module.buffers()) state.push_back(b);
  dist::check_identical(state, what);
}

void reduce_steps(const at::Tensor& values) {
  if (!dist::active()) return;
  // Equal shards: the global mean loss is the mean of the ranks' means; the hits add up.
  dist::allreduce_sum(values);
  values.select(1, 0).div_(dist::world_size());
}

void sum_over_ranks(at::Tensor& values) {
  if (!dist::active()) return;
  at::Tensor t = values.to(g_device);  // exact: float64 sums of integer counts below 2^53
  dist::allreduce_sum(t);
  values = t.to(values.device());
}

bool any_rank(bool flag) {
  if (!dist::active()) return flag;
  const at::Tensor t = host_values({int64_t(flag)});
  dist::allreduce_max(t);
  return t.to(at::kCPU).item<int64_t>() != 0;
}

std::pair<at::Tensor, at::Tensor> gather_eval(const at::Tensor& sums, const at::Tensor& hits,
                                              const at::Tensor& positions, int64_t n) {
  if (!dist::active()) return {sums, hits};
  // Each rank scatters its hits into a zero vector of the whole test set: the sum over ranks holds every image's
  // hit at its position (each position belongs to exactly one rank). int32: Gloo and NCCL both sum it.
  at::Tensor all = at::zeros({n}, hits.options().dtype(at::kInt));
  all.index_copy_(0, positions, hits.to(at::kInt));
  const at::Tensor s = sums.clone();
  dist::allreduce_sum(all);
  dist::allreduce_sum(s);
  return {s, all.to(at::kByte)};
}

namespace {

double clock_s(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

PassCollectives::PassCollectives()
    : start_(dist::stats()), wall0_(clock_s(CLOCK_MONOTONIC)), cpu0_(clock_s(CLOCK_PROCESS_CPUTIME_ID)) {}

void PassCollectives::end(const std::string& stage, int64_t steps) const {
  if (steps <= 0) return;
  const dist::Stats d = dist::stats() - start_;
  dist::record(stage, {steps, clock_s(CLOCK_MONOTONIC) - wall0_, clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0_, d});
  if (!dist::active()) return;
  const double n = double(steps);
  // The wait for the slowest rank is measured on the shared-memory path only.
  const std::string wait = d.shm_collectives == 0 ? std::string()
                           : fmt::format(" (of which {:.2f} ms waiting for the slowest rank)", 1e3 * d.wait_s / n);
  log::info("{}: data-parallel collectives per step: {:.1f} ({:.1f} in shared memory), {:.0f} KiB, {:.2f} ms{}", stage,
            double(d.collectives) / n, double(d.shm_collectives) / n, double(d.bytes) / n / 1024, 1e3 * d.wall_s / n,
            wait);
}

bool restarted_by_torchrun() {
  const char* c = std::getenv("TORCHELASTIC_RESTART_COUNT");
  return c != nullptr && std::atoi(c) > 0;
}

std::string rank_suffix() {
  return dist::active() ? fmt::format(" (rank {} of {})", dist::rank(), dist::world_size()) : "";
}

}  // namespace dp
}  // namespace train
}  // namespace mnq
