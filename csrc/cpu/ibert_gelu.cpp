// CPU I-BERT i-GELU: rows of the last dim in parallel, the channel constants indexed by column. All integer math
// is kernels/ibert_gelu.h; the row loop is vectorized per instruction set (csrc/cpu/vectorize.h).
#include "csrc/ops/ibert_gelu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

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

template <class In, class Out>
bool run(In in, Out out, const IbertGeluParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 32768 / p.cols);
  at::parallel_for(0, p.numel / p.cols, grain, [&](int64_t r0, int64_t r1) {
    if (!rows(in, out, p, r0, r1)) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ibert_gelu(const at::Tensor& in, const at::Tensor& out, const IbertGeluParams& p, const double* inv_scale,
                const double* out_scale) {
  if (in.scalar_type() == at::kFloat) {
    return run(FloatInC{in.data_ptr<float>(), inv_scale}, FloatOutC{out.data_ptr<float>(), out_scale}, p);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_gelu", [&] {
    return run(IntInC<scalar_t>{in.data_ptr<scalar_t>()}, IntOutC<int64_t>{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
