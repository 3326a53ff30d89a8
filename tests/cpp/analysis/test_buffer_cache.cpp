// The analyzer's CPU buffer cache (csrc/analysis/buffer_cache.h): a freed large block is handed out again inside a
// scope, the process's allocator is restored when the last scope ends, and tensors crossing the scope's end are safe.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include <catch2/catch.hpp>

#include "csrc/analysis/buffer_cache.h"

using namespace mnq::analysis;

TEST_CASE("buffer cache: large blocks are reused inside a scope, the allocator restored after", "[buffer_cache]") {
  c10::Allocator* const before = c10::GetCPUAllocator();
  at::Tensor outlives;
  {
    CpuBufferCacheScope scope;
    REQUIRE(c10::GetCPUAllocator() != before);
    {
      CpuBufferCacheScope nested;  // nested scopes share the one cache
      const CpuBufferCacheStats s0 = cpu_buffer_cache_stats();
      const void* first = nullptr;
      {
        const at::Tensor a = at::full({512, 1024}, 2.0f);  // 2 MiB
        first = a.data_ptr();
      }
      CHECK(cpu_buffer_cache_stats().cached_bytes >= size_t(2) << 20);
      const at::Tensor b = at::arange(512 * 1024, at::kFloat);
      CHECK(b.data_ptr() == first);  // the same block, rewritten: a tensor's values never depend on its memory
      CHECK(b[777].item<float>() == 777.0f);
      CHECK(cpu_buffer_cache_stats().hits == s0.hits + 1);
      const at::Tensor small = at::ones({16});  // below the cached size: plain allocation
      CHECK(small.sum().item<float>() == 16.0f);
    }
    CHECK(c10::GetCPUAllocator() != before);  // the outer scope is still live
    outlives = at::ones({1024, 1024});
  }
  CHECK(c10::GetCPUAllocator() == before);
  CHECK(cpu_buffer_cache_stats().cached_bytes == 0);
  CHECK(outlives.sum().item<float>() == 1024.0f * 1024.0f);
  outlives = at::Tensor();  // freed after the scope: back to the system
  CHECK(cpu_buffer_cache_stats().cached_bytes == 0);
}
