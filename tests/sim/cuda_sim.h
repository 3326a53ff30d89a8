// A CUDA runtime of our own for the tests: the real kernels/*.cuh compile with the host compiler (MNQ_CUDA_SIM)
// and run on the CPU, so CI exercises every kernel and launcher without a GPU.
//
// Execution model. A launch runs its blocks one after another, and a block's warps one after another; the 32 lanes
// of a warp are fibers (ucontext) on the calling thread. Each lane runs until it reaches a warp collective
// (__shfl*_sync, __all_sync, __any_sync, __ballot_sync) or returns from the kernel. When every lane of the warp is
// waiting at a collective, the values are exchanged and all lanes resume: the warp executes in lock step at every
// collective, as a converged warp does on the GPU. The simulator throws sim::KernelBug (the launch does not return)
// when
//   - a collective is reached while some lane of the warp has already returned (the divergent-exit bug: on a GPU
//     a full-mask collective then waits for a lane that never comes, or reads garbage),
//   - the lanes of a warp wait at different collectives (different call sites or kinds),
//   - a collective names a mask other than 0xffffffff, or a width other than 32.
// Launch configurations the CUDA runtime rejects (a dimension of 0 blocks or threads, more than 1024 threads per
// block, gridDim.x > 2^31 − 1, gridDim.y/z > 65535, more than 48 KiB of dynamic shared memory) are not run; they
// set the error that cudaGetLastError() returns, as the runtime does.
// Memory is host memory: cudaMemsetAsync / cudaMemcpyAsync are memset / memcpy, streams are synchronous, atomics
// are plain read-modify-writes (lanes never run concurrently).
//
// Not modelled: the memory model (no data races can show, since lanes interleave only at collectives), shared
// memory and __syncthreads (no mnq kernel uses them), device intrinsics under __CUDA_ARCH__ (the host branch of
// each MNQ_HOST_DEVICE helper runs instead), nvcc's code generation, speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

#define __global__ inline
#define __device__
#define __host__
#define __forceinline__ inline

namespace mnq {
namespace sim {

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3() = default;
  constexpr dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// A kernel bug the simulator caught (see the header).
struct KernelBug : std::logic_error {
  using std::logic_error::logic_error;
};

enum class Op { kShflXor, kShfl, kShflDown, kShflUp, kAll, kAny, kBallot };

// One lane's part in a warp collective: deposits `value` (and the lane argument of a shuffle), waits for the warp,
// returns the lane's result. Called only from inside a simulated kernel.
uint64_t collective(Op op, unsigned mask, uint64_t value, int arg, int width, const std::source_location& where);

// Runs body(obj) as a kernel over grid × block (see the header); a rejected configuration sets the last error.
void launch(dim3 grid, dim3 block, size_t smem, const char* name, void (*body)(const void*), const void* obj);

// The statistics of the launches so far (tests check that a launch ran, or did not).
struct Stats {
  int64_t launches = 0;     // configurations accepted and run
  int64_t rejected = 0;     // configurations rejected
  int64_t collectives = 0;  // warp collectives completed
};
Stats stats();

template <class F>
struct Launcher {
  dim3 grid, block;
  size_t smem;
  const char* name;
  F kernel;
  // Kernel arguments are copied, as a launch copies them to the device; every lane receives its own copy.
  template <class... Args>
  void operator()(Args... args) const {
    struct Call {
      const F* kernel;
      std::tuple<Args...> args;
    };
    const Call call{&kernel, std::tuple<Args...>(args...)};
    launch(
        grid, block, smem, name,
        [](const void* p) {
          const Call& c = *static_cast<const Call*>(p);
          std::apply(*c.kernel, c.args);
        },
        &call);
  }
};

template <class F>
Launcher<F> launcher(dim3 grid, dim3 block, size_t smem, void* /*stream*/, const char* name, F kernel) {
  return Launcher<F>{grid, block, smem, name, kernel};
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "CUDA shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

}  // namespace sim
}  // namespace mnq

// ---- the CUDA names the kernels use, in the global namespace like the real ones ----

// Set by the scheduler for the running lane. Defined here (constant-initialised inline variables) rather than
// extern: every access is then a plain TLS load, with no TLS-wrapper call.
using dim3 = mnq::sim::dim3;
inline thread_local mnq::sim::uint3 threadIdx{};
inline thread_local mnq::sim::uint3 blockIdx{};
inline thread_local mnq::sim::dim3 blockDim{};
inline thread_local mnq::sim::dim3 gridDim{};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
using cudaStream_t = void*;

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

inline int atomicExch(int* p, int v) {
  const int old = *p;
  *p = v;
  return old;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p += v;
  return old;
}
inline int atomicOr(int* p, int v) {
  const int old = *p;
  *p |= v;
  return old;
}

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                  const std::source_location& where = std::source_location::current()) {
  return mnq::sim::from_bits<T>(
      mnq::sim::collective(mnq::sim::Op::kShflXor, mask, mnq::sim::to_bits(v), lane_mask, width, where));
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32,
              const std::source_location& where = std::source_location::current()) {
  return mnq::sim::from_bits<T>(
      mnq::sim::collective(mnq::sim::Op::kShfl, mask, mnq::sim::to_bits(v), src_lane, width, where));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                   const std::source_location& where = std::source_location::current()) {
  return mnq::sim::from_bits<T>(
      mnq::sim::collective(mnq::sim::Op::kShflDown, mask, mnq::sim::to_bits(v), static_cast<int>(delta), width, where));
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                 const std::source_location& where = std::source_location::current()) {
  return mnq::sim::from_bits<T>(
      mnq::sim::collective(mnq::sim::Op::kShflUp, mask, mnq::sim::to_bits(v), static_cast<int>(delta), width, where));
}
inline int __all_sync(unsigned mask, int pred, const std::source_location& where = std::source_location::current()) {
  return static_cast<int>(mnq::sim::collective(mnq::sim::Op::kAll, mask, pred != 0, 0, 32, where));
}
inline int __any_sync(unsigned mask, int pred, const std::source_location& where = std::source_location::current()) {
  return static_cast<int>(mnq::sim::collective(mnq::sim::Op::kAny, mask, pred != 0, 0, 32, where));
}
inline unsigned __ballot_sync(unsigned mask, int pred,
                              const std::source_location& where = std::source_location::current()) {
  return static_cast<unsigned>(mnq::sim::collective(mnq::sim::Op::kBallot, mask, pred != 0, 0, 32, where));
}
