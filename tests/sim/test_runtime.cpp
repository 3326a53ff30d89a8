// The simulator itself (cuda_sim.h): lock-step warp collectives, the bugs it must catch, launch configurations the
// CUDA runtime rejects, and the warp reductions of kernels/cuda_utils.cuh against sequential folds.
#include <algorithm>
#include <numeric>

#include "kernels/cuda_utils.cuh"
#include "sim_util.h"

using namespace mnq::kernels;
using mnq::sim::KernelBug;
using mnq::simtest::launches;

namespace {

// Every lane records what each kind of collective gives it.
__global__ void collectives_kernel(int64_t* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t v = 1000 * static_cast<int64_t>(threadIdx.x) + 7;
  int64_t* o = out + 8 * threadIdx.x;
  o[0] = __shfl_xor_sync(kFullMask, v, 5);
  o[1] = __shfl_sync(kFullMask, v, 3);
  o[2] = __shfl_down_sync(kFullMask, v, 4);
  o[3] = __shfl_up_sync(kFullMask, v, 4);
  o[4] = __all_sync(kFullMask, lane < 31);
  o[5] = __any_sync(kFullMask, lane == 31);
  o[6] = __ballot_sync(kFullMask, lane % 3 == 0);
  o[7] = static_cast<int64_t>(__shfl_xor_sync(kFullMask, static_cast<double>(v) / 8, 31) * 8);
}

TEST_CASE("sim: warp collectives exchange values in lock step", "[sim][runtime]") {
  std::vector<int64_t> out(8 * 64, -1);
  MNQ_LAUNCH(collectives_kernel, 1, 64, 0, nullptr)(out.data());
  REQUIRE(cudaGetLastError() == cudaSuccess);
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32, base = t - lane;
    auto val = [&](int l) { return 1000 * static_cast<int64_t>(base + l) + 7; };
    const int64_t* o = out.data() + 8 * t;
    CHECK(o[0] == val(lane ^ 5));
    CHECK(o[1] == val(3));
    CHECK(o[2] == val(lane + 4 < 32 ? lane + 4 : lane));
    CHECK(o[3] == val(lane >= 4 ? lane - 4 : lane));
    CHECK(o[4] == 0);
    CHECK(o[5] == 1);
    CHECK(o[6] == ballot);
    CHECK(o[7] == val(lane ^ 31));
  }
}

__global__ void reduce_kernel(int64_t* out) { out[threadIdx.x] = warp_sum(static_cast<int64_t>(threadIdx.x)); }

// The classic bug: half the warp returns, the other half reduces.
__global__ void divergent_exit_kernel(int64_t* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = warp_sum(1);
}

TEST_CASE("sim: a collective after part of the warp returned is a kernel bug", "[sim][runtime]") {
  std::vector<int64_t> out(32);
  REQUIRE_THROWS_WITH(
      MNQ_LAUNCH(divergent_exit_kernel, 1, 32, 0, nullptr)(out.data()),
      Catch::Contains("divergent exit") && Catch::Contains("lane(s) 16,17") && Catch::Contains("cuda_utils.cuh"));
  // The simulator is usable again after the throw.
  std::vector<int64_t> ok(64, 0);
  MNQ_LAUNCH(reduce_kernel, 1, 64, 0, nullptr)(ok.data());
  REQUIRE(ok[33] == (32 + 63) * 32 / 2);
}

TEST_CASE("sim: a collective in a partial warp is a kernel bug", "[sim][runtime]") {
  std::vector<int64_t> out(64);
  REQUIRE_THROWS_WITH(MNQ_LAUNCH(reduce_kernel, 1, 48, 0, nullptr)(out.data()),
                      Catch::Contains("past the block's last thread"));
  MNQ_LAUNCH(reduce_kernel, 2, 64, 0, nullptr)(out.data());  // whole warps: fine (out is written twice)
  REQUIRE(out[0] == (0 + 31) * 32 / 2);
  REQUIRE(out[40] == (32 + 63) * 32 / 2);
}

__global__ void two_sites_kernel(int* out) {
  if (threadIdx.x == 0) {
    out[0] = __any_sync(kFullMask, 1);
  } else {
    out[threadIdx.x] = __any_sync(kFullMask, 0);
  }
}

__global__ void half_mask_kernel(int* out) { out[threadIdx.x] = __all_sync(0x0000ffffu, 1); }

TEST_CASE("sim: lanes at different collectives, and partial masks, are rejected", "[sim][runtime]") {
  std::vector<int> out(32);
  REQUIRE_THROWS_WITH(MNQ_LAUNCH(two_sites_kernel, 1, 32, 0, nullptr)(out.data()),
                      Catch::Contains("divergent warp collectives"));
  REQUIRE_THROWS_WITH(MNQ_LAUNCH(half_mask_kernel, 1, 32, 0, nullptr)(out.data()),
                      Catch::Contains("full-mask collectives only"));
}

__global__ void count_kernel(int* n) { atomicAdd(n, 1); }

TEST_CASE("sim: launch configurations the CUDA runtime rejects set the last error and run nothing", "[sim][runtime]") {
  int n = 0;
  const struct {
    dim3 grid, block;
    size_t smem;
  } bad[] = {
      {dim3(0), dim3(32), 0},           {dim3(1, 0), dim3(32), 0},          {dim3(1), dim3(0), 0},
      {dim3(1), dim3(1025), 0},         {dim3(1), dim3(32, 32, 2), 0},      {dim3(1), dim3(1, 1, 65), 0},
      {dim3(1, 65536), dim3(32), 0},    {dim3(1, 1, 65536), dim3(32), 0},   {dim3(2147483648u), dim3(32), 0},
      {dim3(0xffffffffu), dim3(32), 0}, {dim3(1), dim3(32), 48 * 1024 + 1},
  };
  for (const auto& b : bad) {
    MNQ_LAUNCH(count_kernel, b.grid, b.block, b.smem, nullptr)(&n);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    REQUIRE(cudaGetLastError() == cudaSuccess);  // reading it clears it
    MNQ_LAUNCH(count_kernel, b.grid, b.block, b.smem, nullptr)(&n);
    REQUIRE_THROWS_AS(check_cuda(cudaGetLastError(), "count_kernel launch"), CudaError);
  }
  REQUIRE(n == 0);
  MNQ_LAUNCH(count_kernel, dim3(3, 2, 1), dim3(4, 2, 3), 0, nullptr)(&n);
  check_cuda(cudaGetLastError(), "count_kernel launch");
  REQUIRE(n == 3 * 2 * 4 * 2 * 3);
}

TEST_CASE("sim: row_blocks saturates, so too many rows fail the launch instead of wrapping", "[sim][runtime]") {
  REQUIRE(row_blocks(0) == 0);
  REQUIRE(row_blocks(9) == 2);
  REQUIRE(row_blocks(int64_t(8) * 2147483647) == 2147483647u);
  REQUIRE(row_blocks((int64_t(1) << 35) + 8) == 0xffffffffu);  // was 2^32 + 1 → 1 block
}

__global__ void index_kernel(unsigned* out) {
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

TEST_CASE("sim: threadIdx, blockIdx, blockDim and gridDim cover a 3-D launch once each", "[sim][runtime]") {
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  std::vector<unsigned> out(3 * 2 * 2 * 64, ~0u);
  const int64_t before = launches();
  MNQ_LAUNCH(index_kernel, grid, block, 0, nullptr)(out.data());
  REQUIRE(launches() == before + 1);
  for (unsigned i = 0; i < out.size(); ++i) REQUIRE(out[i] == (i / 64) * 1000 + i % 64);
}

// The reductions of cuda_utils.cuh against sequential folds, on random lane values.
__global__ void reductions_kernel(const int64_t* in, int64_t cap, int64_t* out) {
  const int t = threadIdx.x;
  const int64_t v = in[t];
  out[6 * t + 0] = warp_max(v);
  out[6 * t + 1] = warp_min(v);
  out[6 * t + 2] = warp_sum(v >> 8);
  const int64_t u = static_cast<int64_t>(static_cast<uint64_t>(v) >> 3);  // < 2^61
  out[6 * t + 3] = warp_sum_sat(u < cap ? u : cap, cap);
  const i128 w = warp_sum128(static_cast<i128>(v) << 40);
  out[6 * t + 4] = static_cast<int64_t>(w >> 64);
  out[6 * t + 5] = static_cast<int64_t>(w);
}

TEST_CASE("sim: warp reductions equal sequential folds", "[sim][runtime]") {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 20; ++round) {
    std::vector<int64_t> in(64), out(6 * 64);
    for (auto& x : in) x = static_cast<int64_t>(rng());
    if (round == 0) in[5] = INT64_MIN;
    const int64_t cap = round % 2 ? (int64_t(1) << 61) : (int64_t(1) << 40);
    MNQ_LAUNCH(reductions_kernel, 1, 64, 0, nullptr)(in.data(), cap, out.data());
    for (int w = 0; w < 2; ++w) {
      const auto b = in.begin() + 32 * w, e = b + 32;
      int64_t sum = 0, sat = 0;
      i128 wide = 0;
      for (auto it = b; it != e; ++it) {
        sum += *it >> 8;
        const int64_t u = static_cast<int64_t>(static_cast<uint64_t>(*it) >> 3);
        sat = std::min(cap, sat + std::min(u, cap));  // min(Σ, cap), in order
        wide += static_cast<i128>(*it) << 40;
      }
      for (int l = 0; l < 32; ++l) {
        const int64_t* o = out.data() + 6 * (32 * w + l);
        REQUIRE(o[0] == *std::max_element(b, e));
        REQUIRE(o[1] == *std::min_element(b, e));
        REQUIRE(o[2] == sum);
        REQUIRE(o[3] == sat);
        REQUIRE(o[4] == static_cast<int64_t>(wide >> 64));
        REQUIRE(o[5] == static_cast<int64_t>(wide));
      }
    }
  }
}

TEST_CASE("sim: ErrorFlag clears the caller's memory and reads it back", "[sim][runtime]") {
  int mem = 123;
  {
    ErrorFlag f(&mem, nullptr);
    REQUIRE(mem == 0);
    REQUIRE(f.ok());
    report(f.get());
    REQUIRE_FALSE(f.ok());
  }
  ErrorFlag none(nullptr, nullptr);
  REQUIRE(none.get() == nullptr);
  REQUIRE(none.ok());
}

}  // namespace
