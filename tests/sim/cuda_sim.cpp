// The simulator's scheduler (see cuda_sim.h): blocks and warps in sequence, the lanes of a warp as fibers that
// meet at every warp collective.
#include "cuda_sim.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>
#include <vector>

namespace mnq {
namespace sim {
namespace {

constexpr int kWarpSize = 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr size_t kStackBytes = 256 * 1024;  // per lane; kernels keep a few hundred bytes of locals

enum class LaneState { kRunning, kWaiting, kExited };

struct Lane {
  ucontext_t ctx;
  LaneState state = LaneState::kExited;
  // The collective it waits at, and its part in it.
  Op op = Op::kAll;
  unsigned mask = 0;
  uint64_t value = 0;
  int arg = 0;
  int width = 0;
  const char* file = nullptr;
  unsigned line = 0;
  unsigned column = 0;
  uint64_t result = 0;
};

struct Warp {
  Lane lanes[kWarpSize];
  std::unique_ptr<char[]> stacks{new char[kStackBytes * kWarpSize]};
  ucontext_t scheduler;
  ucontext_t blank;  // getcontext() of the launch, copied into each new lane
  int current = 0;   // the running lane
  void (*body)(const void*) = nullptr;
  const void* obj = nullptr;
};

struct State {
  cudaError_t last_error = cudaSuccess;
  Stats stats;
  std::unique_ptr<Warp> warp;  // the one warp being run (reused: its stacks are allocated once)
  bool in_kernel = false;
};

thread_local State g;

std::string where(const Lane& l) {
  std::ostringstream o;
  o << (l.file ? l.file : "?") << ":" << l.line << ":" << l.column;
  return o.str();
}

const char* op_name(Op op) {
  switch (op) {
    case Op::kShflXor:
      return "__shfl_xor_sync";
    case Op::kShfl:
      return "__shfl_sync";
    case Op::kShflDown:
      return "__shfl_down_sync";
    case Op::kShflUp:
      return "__shfl_up_sync";
    case Op::kAll:
      return "__all_sync";
    case Op::kAny:
      return "__any_sync";
    case Op::kBallot:
      return "__ballot_sync";
  }
  return "?";
}

void lane_entry() {
  Warp& w = *g.warp;
  w.body(w.obj);
  w.lanes[w.current].state = LaneState::kExited;
  // returning switches to uc_link, the scheduler
}

void set_thread_idx(int tid) {
  threadIdx = uint3{tid % blockDim.x, (tid / blockDim.x) % blockDim.y, tid / (blockDim.x * blockDim.y)};
}

// The results of a collective every lane of the warp waits at (all lanes checked to agree on it).
void exchange(Warp& w) {
  Lane* l = w.lanes;
  const Op op = l[0].op;
  if (op == Op::kAll || op == Op::kAny || op == Op::kBallot) {
    uint64_t ballot = 0;
    for (int i = 0; i < kWarpSize; ++i) ballot |= (l[i].value != 0 ? uint64_t(1) : 0) << i;
    const uint64_t r = op == Op::kBallot ? ballot : (op == Op::kAll ? ballot == 0xffffffffu : ballot != 0);
    for (int i = 0; i < kWarpSize; ++i) l[i].result = r;
    return;
  }
  for (int i = 0; i < kWarpSize; ++i) {
    int src = i;
    switch (op) {
      case Op::kShflXor:
        src = i ^ l[i].arg;
        break;
      case Op::kShfl:
        src = l[i].arg;
        break;
      case Op::kShflDown:
        src = i + l[i].arg;
        break;
      case Op::kShflUp:
        src = i - l[i].arg;
        break;
      default:
        break;
    }
    // Out of the warp: shfl_down/up keep the lane's own value; shfl/xor wrap modulo the width (as CUDA does).
    if (op == Op::kShflDown || op == Op::kShflUp) {
      if (src < 0 || src >= kWarpSize) src = i;
    } else {
      src = ((src % kWarpSize) + kWarpSize) % kWarpSize;
    }
    l[i].result = l[src].value;
  }
}

[[noreturn]] void bug(const char* kernel, int warp_id, const std::string& what) {
  std::ostringstream o;
  o << "CUDA simulator: kernel " << kernel << ", block (" << blockIdx.x << "," << blockIdx.y << "," << blockIdx.z
    << "), warp " << warp_id << ": " << what;
  throw KernelBug(o.str());
}

// A fresh fiber for lane i running the kernel: a copy of the warp's template context (one getcontext, a system
// call, per launch rather than per lane) given the lane's stack.
void start_lane(Warp& w, int i) {
  Lane& l = w.lanes[i];
  l.ctx = w.blank;
  l.ctx.uc_stack.ss_sp = w.stacks.get() + static_cast<size_t>(i) * kStackBytes;
  l.ctx.uc_stack.ss_size = kStackBytes;
  l.ctx.uc_link = &w.scheduler;
  makecontext(&l.ctx, lane_entry, 0);
  l.state = LaneState::kRunning;
}

// Runs warp `warp_id` of the current block (threads [32·warp_id, min(32·warp_id + 32, n_threads))).
void run_warp(Warp& w, int warp_id, int n_threads, const char* kernel) {
  const int first = warp_id * kWarpSize;
  const int n = std::min(kWarpSize, n_threads - first);
  for (int i = 0; i < kWarpSize; ++i) {
    Lane& l = w.lanes[i];
    l.state = LaneState::kExited;
    if (i < n) start_lane(w, i);  // else no such thread: a partial last warp
  }
  for (;;) {
    int waiting = 0, exited = 0;
    for (int i = 0; i < kWarpSize; ++i) {
      Lane& l = w.lanes[i];
      if (l.state == LaneState::kRunning) {
        w.current = i;
        set_thread_idx(first + i);
        swapcontext(&w.scheduler, &l.ctx);  // back when the lane waits at a collective or has exited
      }
      if (l.state == LaneState::kWaiting) ++waiting;
      if (l.state == LaneState::kExited) ++exited;
    }
    if (waiting == 0) return;  // every lane returned
    // Some lane waits at a collective: every lane of the warp must be at the same one.
    const Lane* at = nullptr;
    std::ostringstream gone;
    for (int i = 0; i < kWarpSize; ++i) {
      const Lane& l = w.lanes[i];
      if (l.state == LaneState::kWaiting && at == nullptr) at = &l;
      if (l.state == LaneState::kExited) gone << (gone.tellp() > 0 ? "," : "") << i;
    }
    std::ostringstream o;
    if (exited > 0) {
      o << op_name(at->op) << " at " << where(*at) << " is reached after lane(s) " << gone.str()
        << (first + kWarpSize > n_threads ? " (past the block's last thread)" : "")
        << " returned from the kernel: a full-mask warp collective needs all 32 lanes (divergent exit)";
      bug(kernel, warp_id, o.str());
    }
    for (int i = 0; i < kWarpSize; ++i) {
      const Lane& l = w.lanes[i];
      if (l.op != at->op || l.line != at->line || l.column != at->column || std::strcmp(l.file, at->file) != 0) {
        o << "lane " << i << " waits at " << op_name(l.op) << " (" << where(l) << ") while lane " << (at - w.lanes)
          << " waits at " << op_name(at->op) << " (" << where(*at) << "): divergent warp collectives";
        bug(kernel, warp_id, o.str());
      }
      if (l.mask != kFull) {
        o << op_name(l.op) << " at " << where(l) << " with mask 0x" << std::hex << l.mask
          << ": the simulator supports full-mask collectives only";
        bug(kernel, warp_id, o.str());
      }
      if (l.width != kWarpSize) {
        o << op_name(l.op) << " at " << where(l) << " with width " << l.width
          << ": the simulator supports width 32 only";
        bug(kernel, warp_id, o.str());
      }
    }
    exchange(w);
    ++g.stats.collectives;
    for (int i = 0; i < kWarpSize; ++i) w.lanes[i].state = LaneState::kRunning;
  }
}

// Not inlined into launch: getcontext returns twice.
__attribute__((noinline)) void init_blank(Warp& w) { getcontext(&w.blank); }

bool valid(dim3 grid, dim3 block, size_t smem) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u && grid.y <= 65535 && grid.z <= 65535 &&
         block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 &&
         threads <= 1024 && smem <= 48 * 1024;
}

}  // namespace

uint64_t collective(Op op, unsigned mask, uint64_t value, int arg, int width, const std::source_location& loc) {
  if (!g.in_kernel) throw KernelBug(std::string(op_name(op)) + " called outside a simulated kernel");
  Warp& w = *g.warp;
  Lane& l = w.lanes[w.current];
  l.op = op;
  l.mask = mask;
  l.value = value;
  l.arg = arg;
  l.width = width;
  l.file = loc.file_name();
  l.line = loc.line();
  l.column = loc.column();
  l.state = LaneState::kWaiting;
  swapcontext(&l.ctx, &w.scheduler);
  return l.result;
}

void launch(dim3 grid, dim3 block, size_t smem, const char* name, void (*body)(const void*), const void* obj) {
  if (g.in_kernel) throw KernelBug(std::string("launch of ") + name + " from inside a kernel");
  if (!valid(grid, block, smem)) {
    g.last_error = cudaErrorInvalidConfiguration;
    ++g.stats.rejected;
    return;
  }
  ++g.stats.launches;
  if (!g.warp) g.warp = std::make_unique<Warp>();
  Warp& w = *g.warp;
  init_blank(w);
  w.body = body;
  w.obj = obj;
  gridDim = grid;
  blockDim = block;
  const int n_threads = static_cast<int>(block.x * block.y * block.z);
  const int n_warps = (n_threads + kWarpSize - 1) / kWarpSize;
  g.in_kernel = true;
  try {
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x) {
          blockIdx = uint3{x, y, z};
          for (int wi = 0; wi < n_warps; ++wi) run_warp(w, wi, n_threads, name);
        }
      }
    }
  } catch (...) {
    g.in_kernel = false;  // the lanes left waiting are abandoned; their stacks are reused by the next launch
    throw;
  }
  g.in_kernel = false;
}

Stats stats() { return g.stats; }

}  // namespace sim
}  // namespace mnq

cudaError_t cudaGetLastError() {
  const cudaError_t e = mnq::sim::g.last_error;
  mnq::sim::g.last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return mnq::sim::g.last_error; }

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
  }
  return "unrecognized error code";
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t) {
  std::memset(p, value, n);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
