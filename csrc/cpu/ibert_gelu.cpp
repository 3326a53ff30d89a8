// CPU I-BERT i-GELU: rows of the last dim in parallel, the channel constants indexed by column. All integer math
// is kernels/ibert_gelu.h; the row loop is vectorized per instruction set (csrc/cpu/vectorize.h), and with AVX-512
// (isa.h), int32 or float32 input takes the explicit path of ibert_gelu_simd.h (same values).
#include "csrc/ops/ibert_gelu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "csrc/cpu/ibert_gelu_simd.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/vectorize.h"
#include "csrc/dispatch.h"
#include "kernels/channel_io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Rows [r0, r1); false if a code was outside [p.lo, p.hi] (channel_io.h loads 0 in its place). The params are
// copied to locals: the int64 output stores could otherwise alias them, which forces reloads and blocks vectorizing.
template <class In, class Out>
MNQ_CPU_CLONES bool rows(In in, Out out, IbertGeluParams p, int64_t r0, int64_t r1) {
  const int64_t cols = p.cols, lo = p.lo, hi = p.hi;
  const i64 *b = p.b, *c = p.c, *one = p.one;
  i64 ok = 1;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    for (int64_t j = 0; j < cols; ++j) {
      out.store(base + j, j, kernels::ibert_gelu(in.load(base + j, j, lo, hi, ok), b[j], c[j], one[j]));
    }
  }
  return ok != 0;
}

// simd_in / simd_out (int32 or float32 input): the AVX-512 rows when isa() allows them.
template <class In, class Out>
bool run(In in, Out out, const IbertGeluParams& p, const IbertGeluIn* simd_in = nullptr,
         const IbertGeluOut* simd_out = nullptr) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 32768 / p.cols);
  const bool simd = simd_in != nullptr && isa() == Isa::kAvx512;
  const IbertGeluPlan plan = simd ? ibert_gelu_plan(*simd_in, *simd_out, p) : IbertGeluPlan{false, false};
  at::parallel_for(0, p.numel / p.cols, grain, [&](int64_t r0, int64_t r1) {
    const bool ok = simd ? ibert_gelu_rows(*simd_in, *simd_out, p, plan, r0, r1) : rows(in, out, p, r0, r1);
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ibert_gelu(const at::Tensor& in, const at::Tensor& out, const IbertGeluParams& p, const double* inv_scale,
                const double* out_scale) {
  if (in.scalar_type() == at::kFloat) {
    const IbertGeluIn si{nullptr, in.data_ptr<float>(), inv_scale};
    const IbertGeluOut so{nullptr, out.data_ptr<float>(), out_scale};
    return run(FloatInC{in.data_ptr<float>(), inv_scale}, FloatOutC{out.data_ptr<float>(), out_scale}, p, &si, &so);
  }
  if (in.scalar_type() == at::kInt) {
    const IbertGeluIn si{in.data_ptr<int32_t>(), nullptr, nullptr};
    const IbertGeluOut so{out.data_ptr<int64_t>(), nullptr, nullptr};
    return run(IntInC<int32_t>{in.data_ptr<int32_t>()}, IntOutC<int64_t>{out.data_ptr<int64_t>()}, p, &si, &so);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_gelu", [&] {
    return run(IntInC<scalar_t>{in.data_ptr<scalar_t>()}, IntOutC<int64_t>{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
