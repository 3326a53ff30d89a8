// Streaming SQNR (SPEC §7); see sqnr.h.
#include "csrc/analysis/sqnr.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "csrc/dist/dist.h"

namespace mnq {
namespace analysis {

namespace {

void check_split(const at::Tensor& x, int64_t images) {
  TORCH_CHECK_VALUE(images > 0, "SqnrAccumulator: a batch needs at least one image, got ", images);
  TORCH_CHECK_VALUE(x.numel() % images == 0, "SqnrAccumulator: a tensor of shape ", x.sizes(),
                    " does not split into ", images, " images");
}

// sqrt(Σ v_d²) over one image's n values, v_d = float64(x_d) or float64(fl32(x_d − y_d)), in the order of ATen's
// vectorized CPU norm of a contiguous float64 row (ReduceOpsKernel.cpp, norm_kernel_tensor_iterator_impl, p = 2, a
// last-dim reduction, Vectorized<double> of 4 lanes): lane j sums the squares of the elements d ≡ j (mod 4) of the
// leading multiple of 4, each step acc + v·v — which GCC contracts into one fused multiply-add when -march gives it
// FMA (this file is built with -march=native; ATen's kernel is contracted the same way: the test checks the bits
// against it); the lanes fold left to right; the remaining n mod 4 squares add one by one. Bit-identical to the
// reference expression (image_norms_reference), which first converts the tensor (or the float32 difference) to
// float64 — a pass that writes and rereads 2x the data — and which this fuses with the subtraction: one read of x
// and y.
// R images at once (rows of n values, consecutive in memory): each image's sums are exactly that sequence of
// operations; interleaving R images only gives the processor R·4 independent sums instead of one chain of 4 (a
// float64 add has several cycles of latency, which bounds a one-image loop).
template <bool kDiff, int R>
void rows_norm(const float* x, const float* y, int64_t n, double* out) {
  auto value = [&](int64_t d) {
    return static_cast<double>(kDiff ? static_cast<float>(x[d] - y[d]) : x[d]);
  };
  double acc[R][4] = {};
  const int64_t body = n - n % 4;
  for (int64_t d = 0; d < body; d += 4) {
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < 4; ++j) {
        const double v = value(r * n + d + j);
        acc[r][j] = acc[r][j] + v * v;
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    double s = acc[r][0];
    for (int j = 1; j < 4; ++j) s = s + acc[r][j];
    for (int64_t d = body; d < n; ++d) {
      const double v = value(r * n + d);
      s = s + v * v;
    }
    out[r] = std::sqrt(s);
  }
}

#if defined(__AVX512F__)
// Eight images at once, two per register (lanes 0–3: image 2p's four sums, lanes 4–7: image 2p + 1's), each lane
// the same sequence of operations as rows_norm's: this file is compiled for the build machine (-march), where GCC
// contracts rows_norm's acc + v·v into one fused multiply-add, so the lanes use _mm512_fmadd_pd and the remainder
// std::fma. rows_norm<kDiff, 4>, compiled to scalar loads and shuffles, took ~2.4 cycles per value.
template <bool kDiff>
void rows_norm8(const float* x, const float* y, int64_t n, double* out) {
  __m512d acc[4];
  for (auto& a : acc) a = _mm512_setzero_pd();
  const int64_t body = n - n % 4;
  for (int64_t d = 0; d < body; d += 4) {
    for (int p = 0; p < 4; ++p) {
      const int64_t o0 = 2 * p * n + d, o1 = o0 + n;
      __m128 a = _mm_loadu_ps(x + o0), b = _mm_loadu_ps(x + o1);
      if constexpr (kDiff) {
        a = _mm_sub_ps(a, _mm_loadu_ps(y + o0));
        b = _mm_sub_ps(b, _mm_loadu_ps(y + o1));
      }
      const __m512d v = _mm512_cvtps_pd(_mm256_insertf128_ps(_mm256_castps128_ps256(a), b, 1));
      acc[p] = _mm512_fmadd_pd(v, v, acc[p]);
    }
  }
  alignas(64) double lanes[8];
  for (int p = 0; p < 4; ++p) {
    _mm512_store_pd(lanes, acc[p]);
    for (int h = 0; h < 2; ++h) {
      const int64_t r = 2 * p + h;
      const double* l = lanes + 4 * h;
      double s = l[0];
      for (int j = 1; j < 4; ++j) s = s + l[j];
      for (int64_t d = body; d < n; ++d) {
        const double v = static_cast<double>(kDiff ? static_cast<float>(x[r * n + d] - y[r * n + d]) : x[r * n + d]);
        s = std::fma(v, v, s);
      }
      out[r] = std::sqrt(s);
    }
  }
}
#endif

template <bool kDiff>
void image_rows(const float* x, const float* y, int64_t n, int64_t begin, int64_t end, double* out) {
  int64_t i = begin;
#if defined(__AVX512F__)
  for (; i + 8 <= end; i += 8) rows_norm8<kDiff>(x + i * n, kDiff ? y + i * n : nullptr, n, out + i);
#endif
  for (; i + 4 <= end; i += 4) rows_norm<kDiff, 4>(x + i * n, kDiff ? y + i * n : nullptr, n, out + i);
  for (; i < end; ++i) rows_norm<kDiff, 1>(x + i * n, kDiff ? y + i * n : nullptr, n, out + i);
}

}  // namespace

at::Tensor image_norms_reference(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  const at::Tensor xf = x.detach().reshape({images, -1});
  if (!y.defined()) return at::linalg_vector_norm(xf, 2, {1}, false, at::kDouble);
  // The difference is one rounding of the exact difference of two float32 values (relative error 2^-24).
  const at::Tensor yf = y.detach().to(xf.device(), xf.scalar_type()).reshape({images, -1});
  return at::linalg_vector_norm(xf - yf, 2, {1}, false, at::kDouble);
}

at::Tensor image_norms(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  const bool cpu_float = x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                         (!y.defined() || (y.device().is_cpu() && y.scalar_type() == at::kFloat));
  if (!cpu_float || x.numel() == 0) return image_norms_reference(x, y, images);
  const at::Tensor xc = x.detach().contiguous();
  const at::Tensor yc = y.defined() ? y.detach().contiguous() : at::Tensor();
  const int64_t n = xc.numel() / images;
  at::Tensor out = at::empty({images}, xc.options().dtype(at::kDouble));
  const float* xp = xc.data_ptr<float>();
  const float* yp = yc.defined() ? yc.data_ptr<float>() : nullptr;
  double* op = out.data_ptr<double>();
  // One image per task, as ATen splits its row reduction (the value of a row never depends on the threads).
  at::parallel_for(0, images, std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(n, 1)),
                   [&](int64_t begin, int64_t end) {
                     if (yp) {
                       image_rows<true>(xp, yp, n, begin, end, op);
                     } else {
                       image_rows<false>(xp, nullptr, n, begin, end, op);
                     }
                   });
  return out;
}

at::Tensor SqnrAccumulator::signal_norms(const at::Tensor& x, int64_t images) {
  check_split(x, images);
  // Flatten per image; float64 accumulation of the norms (a float32 sum of 10^6 squares loses ~3 digits).
  return image_norms(x, at::Tensor(), images);
}

void SqnrAccumulator::add(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  add(x, signal_norms(x, images), y, images);
}

void SqnrAccumulator::add(const at::Tensor& x, const at::Tensor& signal, const at::Tensor& y, int64_t images) {
  check_split(x, images);
  TORCH_CHECK_VALUE(x.numel() == y.numel(), "SqnrAccumulator: the full-precision tensor has shape ", x.sizes(),
                    " but the quantized one ", y.sizes(), "; they must hold the same number of values");
  TORCH_CHECK_VALUE(signal.numel() == images, "SqnrAccumulator: ", signal.numel(), " signal norms for ", images,
                    " images");
  const at::Tensor error = image_norms(x, y, images);
  // zero error → +∞ whatever the signal (0/0 included)
  const at::Tensor ratio = at::where(error == 0, std::numeric_limits<double>::infinity(), signal / error);
  const at::Tensor s = ratio.sum();
  sum_ = sum_.defined() ? sum_ + s : s;
  images_ += images;
}

double SqnrAccumulator::mean_ratio() const {
  TORCH_CHECK(images_ > 0, "SqnrAccumulator: no image was added");
  return sum_.item<double>() / static_cast<double>(images_);
}

double SqnrAccumulator::db() const { return 20.0 * std::log10(mean_ratio()); }

int64_t allreduce_accumulators(const std::vector<SqnrAccumulator*>& accs, int64_t images) {
  if (!mnq::dist::active()) return images;
  at::Device device(at::kCPU);
  for (const SqnrAccumulator* a : accs) {
    if (a->sum_.defined()) device = a->sum_.device();
  }
  // [sums…, counts…, images]: counts below 2^53 are exact in float64.
  const at::TensorOptions f64 = at::TensorOptions(device).dtype(at::kDouble);
  std::vector<at::Tensor> parts;
  for (const SqnrAccumulator* a : accs) parts.push_back(a->sum_.defined() ? a->sum_.reshape({1}) : at::zeros({1}, f64));
  std::vector<double> counts;
  for (const SqnrAccumulator* a : accs) counts.push_back(double(a->images_));
  counts.push_back(double(images));
  parts.push_back(at::tensor(counts, at::kDouble).to(device));
  const at::Tensor all = at::cat(parts);
  mnq::dist::allreduce_sum(all);
  const int64_t n = int64_t(accs.size());
  const at::Tensor c = all.narrow(0, n, n + 1).to(at::kCPU);
  const double* cp = c.data_ptr<double>();
  for (int64_t k = 0; k < n; ++k) {
    accs[size_t(k)]->sum_ = all[k];
    accs[size_t(k)]->images_ = int64_t(cp[k]);
  }
  return int64_t(cp[n]);
}

double sqnr_db(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  SqnrAccumulator acc;
  acc.add(x, y, images);
  return acc.db();
}

double delta_sqnr(double sqnr_in, double sqnr_out) {
  const double inf = std::numeric_limits<double>::infinity();
  if (sqnr_in == inf) return sqnr_out == inf ? 0.0 : -inf;
  return sqnr_out - sqnr_in;
}

}  // namespace analysis
}  // namespace mnq
