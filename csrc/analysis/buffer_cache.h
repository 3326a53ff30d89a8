// Reuse of large CPU buffers while an analysis runs. Every forward of the analyzer allocates the same activation
// tensors batch after batch (a few MB each for the MNIST presets, tens of MB at 224²); glibc returns such blocks to
// the kernel when they are freed (mmap, or the trimmed heap top), so each new batch touches fresh pages and pays a
// page fault per 4 KiB — measured at ~15% of the analyzer's CPU time (vit_mnist_tiny, 1 thread). While a
// CpuBufferCacheScope lives, the process's CPU allocator (c10::GetCPUAllocator) is one that keeps freed blocks of
// 256 KiB and more (sizes rounded up to 64 KiB) and hands them out again for a request of the same rounded size;
// the cache is bounded (kMaxCachedBytes) and emptied when the last scope ends. Values are unaffected: a tensor's
// contents never depend on where its memory came from (every ATen op writes its whole output).
//
// The allocator outlives every scope (a process-lifetime object): a tensor allocated inside a scope and freed after
// it goes back to the system. Scopes nest and may overlap across threads (a count); the allocator is swapped only
// when the count goes 0 → 1 and 1 → 0, and only if the current CPU allocator has c10's default priority (another
// library's allocator of higher priority is left alone and nothing is cached). c10 documents SetCPUAllocator as an
// initialization-time call: a thread allocating at the instant of the swap reads either allocator (both valid).
// Inside a scope the profiler's CPU memory reports (DefaultCPUAllocator's) are not made.
#pragma once

#include <cstddef>

namespace mnq {
namespace analysis {

class CpuBufferCacheScope {
 public:
  CpuBufferCacheScope();
  ~CpuBufferCacheScope();
  CpuBufferCacheScope(const CpuBufferCacheScope&) = delete;
  CpuBufferCacheScope& operator=(const CpuBufferCacheScope&) = delete;
};

// The largest total of cached (free) bytes; a block freed beyond it goes back to the system.
constexpr size_t kMaxCachedBytes = size_t(1) << 30;

// What the cache did since the process started (for tests and benchmarks).
struct CpuBufferCacheStats {
  size_t hits = 0;          // allocations served from the cache
  size_t misses = 0;        // cacheable allocations that went to the system
  size_t cached_bytes = 0;  // free bytes held now
};
CpuBufferCacheStats cpu_buffer_cache_stats();

}  // namespace analysis
}  // namespace mnq
