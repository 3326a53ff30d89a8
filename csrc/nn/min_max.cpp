// channel_min_max; see min_max.h.
#include "csrc/nn/min_max.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mnq {
namespace nn {

namespace {

// Rows of `width` values into the running per-lane min, max and check (check turns NaN when a value is NaN or
// infinite: v·0). The value is p's, or with kSum the float32 sum p + q (what at::add stores). Plain loops over
// restrict pointers, so the compiler vectorizes them (compare-and-blend).
template <bool kSum>
void accumulate(const float* __restrict p, const float* __restrict q, int64_t rows, int64_t width,
                float* __restrict lo, float* __restrict hi, float* __restrict check) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict row = p + r * width;
    const float* __restrict row_q = kSum ? q + r * width : nullptr;
    for (int64_t j = 0; j < width; ++j) {
      float v = row[j];
      if constexpr (kSum) v = v + row_q[j];
      lo[j] = v < lo[j] ? v : lo[j];
      hi[j] = v > hi[j] ? v : hi[j];
      check[j] = check[j] + v * 0.0f;
    }
  }
}

// channel_min_max of p, or of p + q elementwise (q not null), n values.
bool min_max(const float* p, const float* q, int64_t n, int64_t C, std::vector<float>& mn, std::vector<float>& mx) {
  const int64_t width = C >= 64 ? C : C * (64 / C);
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> lo(size_t(width), inf), hi(size_t(width), -inf), check(size_t(width), 0.0f);
  const int64_t body = n - n % width;
  if (q == nullptr) {
    accumulate<false>(p, nullptr, body / width, width, lo.data(), hi.data(), check.data());
    accumulate<false>(p + body, nullptr, 1, n - body, lo.data(), hi.data(), check.data());  // the last rows
  } else {
    accumulate<true>(p, q, body / width, width, lo.data(), hi.data(), check.data());
    accumulate<true>(p + body, q + body, 1, n - body, lo.data(), hi.data(), check.data());
  }
  for (const float c : check) {
    if (c != 0.0f) {
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(q == nullptr ? p[i] : p[i] + q[i])) return false;
      }
      break;
    }
  }
  mn.assign(size_t(C), inf);
  mx.assign(size_t(C), -inf);
  for (int64_t j = 0; j < width; ++j) {
    const size_t c = size_t(j % C);
    mn[c] = std::min(mn[c], lo[size_t(j)]);
    mx[c] = std::max(mx[c], hi[size_t(j)]);
  }
  return true;
}

}  // namespace

// One pass in memory order over `width` independent accumulators (a multiple of C, at least 64 where C < 64, so a
// per-tensor reduction vectorizes too), folded per channel at the end. A NaN or an infinity shows in `check`; then
// the values are scanned once more for a NaN (infinities are ordinary values of the min and max).
bool channel_min_max(const at::Tensor& x, int64_t C, std::vector<float>& mn, std::vector<float>& mx) {
  const at::Tensor t = x.contiguous();
  return min_max(t.data_ptr<float>(), nullptr, t.numel(), C, mn, mx);
}

bool sum_min_max(const at::Tensor& x, const at::Tensor& y, float& mn, float& mx) {
  if (!x.sizes().equals(y.sizes()) || x.numel() == 0) return false;
  const at::Tensor a = x.contiguous(), b = y.contiguous();
  std::vector<float> lo, hi;
  if (!min_max(a.data_ptr<float>(), b.data_ptr<float>(), a.numel(), 1, lo, hi)) return false;
  mn = lo[0];
  mx = hi[0];
  return true;
}

}  // namespace nn
}  // namespace mnq
