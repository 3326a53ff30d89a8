// The CPU buffer cache of the analyzer; see buffer_cache.h.
#include "csrc/analysis/buffer_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <mutex>
#include <unordered_map>
#include <vector>

namespace mnq {
namespace analysis {
namespace {

constexpr size_t kMinCachedBytes = size_t(256) << 10;  // smaller blocks come from glibc's heap without faults
constexpr size_t kRoundBytes = size_t(64) << 10;       // one activation shape keeps one size

void release(void* p);

// All state behind one mutex: allocations and frees come from the intra-op threads too.
struct State {
  std::mutex mu;
  int active = 0;                     // live scopes
  bool installed = false;             // our allocator is the process's CPU allocator
  c10::Allocator* previous = nullptr;  // the one we replaced
  std::unordered_map<void*, size_t> sizes;               // every live or cached block of ours ≥ kMinCachedBytes
  std::unordered_map<size_t, std::vector<void*>> free;   // cached blocks by size
  CpuBufferCacheStats stats;
};

State& state() {
  static State* s = new State();  // never destroyed: tensors may be freed during static destruction
  return *s;
}

// c10's CPU allocation (64-byte aligned, alloc_cpu / free_cpu) with a free list for the large blocks.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < kMinCachedBytes) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &release, cpu};
    }
    const size_t size = (n + kRoundBytes - 1) / kRoundBytes * kRoundBytes;
    State& s = state();
    {
      std::lock_guard<std::mutex> lock(s.mu);
      auto it = s.free.find(size);
      if (it != s.free.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        s.stats.cached_bytes -= size;
        ++s.stats.hits;
        return {p, p, &release, cpu};
      }
      ++s.stats.misses;
    }
    void* p = c10::alloc_cpu(size);
    std::lock_guard<std::mutex> lock(s.mu);
    s.sizes[p] = size;
    return {p, p, &release, cpu};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingCpuAllocator& allocator() {
  static CachingCpuAllocator* a = new CachingCpuAllocator();  // outlives every tensor it allocated
  return *a;
}

// The deleter of every block: a large block is cached while a scope is active and the bound allows, else freed.
void release(void* p) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.sizes.find(p);
    if (it != s.sizes.end()) {
      const size_t size = it->second;
      if (s.active > 0 && s.stats.cached_bytes + size <= kMaxCachedBytes) {
        s.free[size].push_back(p);
        s.stats.cached_bytes += size;
        return;
      }
      s.sizes.erase(it);
    }
  }
  c10::free_cpu(p);
}

}  // namespace

CpuBufferCacheScope::CpuBufferCacheScope() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.active++ > 0) return;
  s.previous = c10::GetCPUAllocator();
  // Priority 0, c10's default: if a higher-priority allocator is installed, this does nothing and we stay out.
  c10::SetCPUAllocator(&allocator(), 0);
  s.installed = c10::GetCPUAllocator() == &allocator();
}

CpuBufferCacheScope::~CpuBufferCacheScope() {
  State& s = state();
  std::vector<void*> drop;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (--s.active > 0) return;
    if (s.installed) c10::SetCPUAllocator(s.previous, 0);
    s.installed = false;
    for (auto& [size, blocks] : s.free) {
      for (void* p : blocks) {
        s.sizes.erase(p);
        drop.push_back(p);
      }
    }
    s.free.clear();
    s.stats.cached_bytes = 0;
  }
  for (void* p : drop) c10::free_cpu(p);
}

CpuBufferCacheStats cpu_buffer_cache_stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.stats;
}

}  // namespace analysis
}  // namespace mnq
