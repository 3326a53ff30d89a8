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

void check_sizes(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK_VALUE(x.numel() == y.numel(), "SqnrAccumulator: the full-precision tensor has shape ", x.sizes(),
                    " but the quantized one ", y.sizes(), "; they must hold the same number of values");
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
// std::fma. Up to three streams share one read of x: the signal (kSig, v = x) and K differences (v = fl32(x − y_k)).
// Each step reads eight consecutive values of each image (one 256-bit load) and applies them to the pair's register
// in their order: values d..d+3 (lanes [a0..a3, b0..b3]), then d+4..d+7; a row with n mod 8 ≥ 4 ends with one step of
// four. The accumulators are named variables (an array indexed in a loop was kept in memory by GCC: every FMA then
// went through a store and a reload).
#define MNQ_ALWAYS_INLINE inline __attribute__((always_inline))

struct Pairs {  // one stream's sums of the eight images: pP holds images 2P and 2P + 1
  __m512d p0 = _mm512_setzero_pd(), p1 = _mm512_setzero_pd(), p2 = _mm512_setzero_pd(), p3 = _mm512_setzero_pd();
};

// acc + lo², then + hi² for the eight values of images a and b (float32, 256-bit each).
MNQ_ALWAYS_INLINE __m512d fma8(__m512d acc, __m256 a, __m256 b) {
  const __m512d lo = _mm512_cvtps_pd(_mm256_permute2f128_ps(a, b, 0x20));  // a0..a3, b0..b3
  const __m512d hi = _mm512_cvtps_pd(_mm256_permute2f128_ps(a, b, 0x31));  // a4..a7, b4..b7
  return _mm512_fmadd_pd(hi, hi, _mm512_fmadd_pd(lo, lo, acc));
}

MNQ_ALWAYS_INLINE __m512d fma4(__m512d acc, __m128 a, __m128 b) {
  const __m512d v = _mm512_cvtps_pd(_mm256_insertf128_ps(_mm256_castps128_ps256(a), b, 1));
  return _mm512_fmadd_pd(v, v, acc);
}

// Folds one stream's sums (lanes left to right, then the tail d ∈ [body, n) one by one) into out[0..8). The sums
// are stored here, after the loop: the accumulators' address never escapes, so they stay in registers.
template <bool kDiff>
MNQ_ALWAYS_INLINE void fold8(__m512d p0, __m512d p1, __m512d p2, __m512d p3, const float* x, const float* y,
                             int64_t n, int64_t body, double* out) {
  alignas(64) double lanes[32];
  _mm512_store_pd(lanes, p0);
  _mm512_store_pd(lanes + 8, p1);
  _mm512_store_pd(lanes + 16, p2);
  _mm512_store_pd(lanes + 24, p3);
  for (int r = 0; r < 8; ++r) {
    const double* l = lanes + 4 * r;
    double s = l[0];
    for (int j = 1; j < 4; ++j) s = s + l[j];
    for (int64_t d = body; d < n; ++d) {
      const double v = static_cast<double>(kDiff ? static_cast<float>(x[r * n + d] - y[r * n + d]) : x[r * n + d]);
      s = std::fma(v, v, s);
    }
    out[r] = std::sqrt(s);
  }
}

// sig[0..8) = ‖x_r‖ (kSig), e_k[0..8) = ‖x_r − y_k,r‖ (k < K) for the eight rows of n values at x, y0, y1.
template <bool kSig, int K>
void rows_norm8(const float* x, const float* y0, const float* y1, int64_t n, double* sig, double* e0, double* e1) {
  Pairs s, a, b;
  auto pair8 = [&](int64_t o, __m512d& sp, __m512d& ap, __m512d& bp) __attribute__((always_inline)) {
    const __m256 xa = _mm256_loadu_ps(x + o), xb = _mm256_loadu_ps(x + o + n);
    if constexpr (kSig) sp = fma8(sp, xa, xb);
    if constexpr (K >= 1) {
      ap = fma8(ap, _mm256_sub_ps(xa, _mm256_loadu_ps(y0 + o)), _mm256_sub_ps(xb, _mm256_loadu_ps(y0 + o + n)));
    }
    if constexpr (K >= 2) {
      bp = fma8(bp, _mm256_sub_ps(xa, _mm256_loadu_ps(y1 + o)), _mm256_sub_ps(xb, _mm256_loadu_ps(y1 + o + n)));
    }
  };
  auto pair4 = [&](int64_t o, __m512d& sp, __m512d& ap, __m512d& bp) __attribute__((always_inline)) {
    const __m128 xa = _mm_loadu_ps(x + o), xb = _mm_loadu_ps(x + o + n);
    if constexpr (kSig) sp = fma4(sp, xa, xb);
    if constexpr (K >= 1) ap = fma4(ap, _mm_sub_ps(xa, _mm_loadu_ps(y0 + o)), _mm_sub_ps(xb, _mm_loadu_ps(y0 + o + n)));
    if constexpr (K >= 2) bp = fma4(bp, _mm_sub_ps(xa, _mm_loadu_ps(y1 + o)), _mm_sub_ps(xb, _mm_loadu_ps(y1 + o + n)));
  };
  const int64_t body8 = n - n % 8, body = n - n % 4;
  for (int64_t d = 0; d < body8; d += 8) {
    pair8(d, s.p0, a.p0, b.p0);
    pair8(2 * n + d, s.p1, a.p1, b.p1);
    pair8(4 * n + d, s.p2, a.p2, b.p2);
    pair8(6 * n + d, s.p3, a.p3, b.p3);
  }
  if (body8 < body) {
    pair4(body8, s.p0, a.p0, b.p0);
    pair4(2 * n + body8, s.p1, a.p1, b.p1);
    pair4(4 * n + body8, s.p2, a.p2, b.p2);
    pair4(6 * n + body8, s.p3, a.p3, b.p3);
  }
  if constexpr (kSig) fold8<false>(s.p0, s.p1, s.p2, s.p3, x, nullptr, n, body, sig);
  if constexpr (K >= 1) fold8<true>(a.p0, a.p1, a.p2, a.p3, x, y0, n, body, e0);
  if constexpr (K >= 2) fold8<true>(b.p0, b.p1, b.p2, b.p3, x, y1, n, body, e1);
}
#undef MNQ_ALWAYS_INLINE
#endif

template <bool kDiff>
void image_rows(const float* x, const float* y, int64_t n, int64_t begin, int64_t end, double* out) {
  for (int64_t i = begin; i + 4 <= end; i += 4) rows_norm<kDiff, 4>(x + i * n, kDiff ? y + i * n : nullptr, n, out + i);
  for (int64_t i = begin + (end - begin) / 4 * 4; i < end; ++i) {
    rows_norm<kDiff, 1>(x + i * n, kDiff ? y + i * n : nullptr, n, out + i);
  }
}

// Images [begin, end) of every requested stream: sig (may be null), e0 / e1 with y0 / y1 (null when absent).
template <bool kSig, int K>
void image_rows_fused(const float* x, const float* y0, const float* y1, int64_t n, int64_t begin, int64_t end,
                      double* sig, double* e0, double* e1) {
  int64_t i = begin;
#if defined(__AVX512F__)
  for (; i + 8 <= end; i += 8) {
    const int64_t o = i * n;
    rows_norm8<kSig, K>(x + o, K >= 1 ? y0 + o : nullptr, K >= 2 ? y1 + o : nullptr, n, kSig ? sig + i : nullptr,
                        K >= 1 ? e0 + i : nullptr, K >= 2 ? e1 + i : nullptr);
  }
#endif
  if (i == end) return;
  if constexpr (kSig) image_rows<false>(x, nullptr, n, i, end, sig);
  if constexpr (K >= 1) image_rows<true>(x, y0, n, i, end, e0);
  if constexpr (K >= 2) image_rows<true>(x, y1, n, i, end, e1);
}

bool cpu_float(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

}  // namespace

at::Tensor image_norms_reference(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  const at::Tensor xf = x.detach().reshape({images, -1});
  if (!y.defined()) return at::linalg_vector_norm(xf, 2, {1}, false, at::kDouble);
  // The difference is one rounding of the exact difference of two float32 values (relative error 2^-24).
  const at::Tensor yf = y.detach().to(xf.device(), xf.scalar_type()).reshape({images, -1});
  return at::linalg_vector_norm(xf - yf, 2, {1}, false, at::kDouble);
}

at::Tensor image_norms(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  const FusedNorms f = y.defined() ? image_norms_fused(x, y, at::Tensor(), false, images)
                                   : image_norms_fused(x, at::Tensor(), at::Tensor(), true, images);
  return y.defined() ? f.error[0] : f.signal;
}

FusedNorms image_norms_fused(const at::Tensor& x, const at::Tensor& y0, const at::Tensor& y1, bool signal,
                             int64_t images) {
  FusedNorms r;
  check_split(x, images);
  for (const at::Tensor* y : {&y0, &y1}) {
    if (y->defined()) check_sizes(x, *y);
  }
  const bool fast = cpu_float(x) && x.numel() > 0 && (!y0.defined() || cpu_float(y0)) &&
                    (!y1.defined() || cpu_float(y1));
  if (!fast) {
    if (signal) r.signal = image_norms_reference(x, at::Tensor(), images);
    if (y0.defined()) r.error[0] = image_norms_reference(x, y0, images);
    if (y1.defined()) r.error[1] = image_norms_reference(x, y1, images);
    return r;
  }
  // The tensors the layers pass are contiguous already: contiguous() returns them (no copy).
  const at::Tensor xc = x.detach().contiguous();
  const at::Tensor a = y0.defined() ? y0.detach().contiguous() : at::Tensor();
  const at::Tensor b = y1.defined() ? y1.detach().contiguous() : at::Tensor();
  const int64_t n = xc.numel() / images;
  const at::TensorOptions f64 = xc.options().dtype(at::kDouble);
  if (signal) r.signal = at::empty({images}, f64);
  if (a.defined()) r.error[0] = at::empty({images}, f64);
  if (b.defined()) r.error[1] = at::empty({images}, f64);
  const float* xp = xc.data_ptr<float>();
  const float* p0 = a.defined() ? a.data_ptr<float>() : nullptr;
  const float* p1 = b.defined() ? b.data_ptr<float>() : nullptr;
  double* sp = signal ? r.signal.data_ptr<double>() : nullptr;
  double* e0 = a.defined() ? r.error[0].data_ptr<double>() : nullptr;
  double* e1 = b.defined() ? r.error[1].data_ptr<double>() : nullptr;
  // y1 without y0 takes y0's slot.
  if (!p0 && p1) {
    std::swap(p0, p1);
    std::swap(e0, e1);
  }
  const int K = (p0 ? 1 : 0) + (p1 ? 1 : 0);
  // One image per task, as ATen splits its row reduction (the value of a row never depends on the threads).
  at::parallel_for(0, images, std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(n, 1)),
                   [&](int64_t begin, int64_t end) {
                     if (sp) {
                       if (K == 0) image_rows_fused<true, 0>(xp, p0, p1, n, begin, end, sp, e0, e1);
                       if (K == 1) image_rows_fused<true, 1>(xp, p0, p1, n, begin, end, sp, e0, e1);
                       if (K == 2) image_rows_fused<true, 2>(xp, p0, p1, n, begin, end, sp, e0, e1);
                     } else {
                       if (K == 1) image_rows_fused<false, 1>(xp, p0, p1, n, begin, end, sp, e0, e1);
                       if (K == 2) image_rows_fused<false, 2>(xp, p0, p1, n, begin, end, sp, e0, e1);
                     }
                   });
  return r;
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
  check_sizes(x, y);
  add_norms(signal, image_norms(x, y, images), images);
}

void SqnrAccumulator::check(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  check_split(x, images);
  check_sizes(x, y);
}

void SqnrAccumulator::add_norms(const at::Tensor& signal, const at::Tensor& error, int64_t images) {
  TORCH_CHECK_VALUE(images > 0, "SqnrAccumulator: a batch needs at least one image, got ", images);
  TORCH_CHECK_VALUE(signal.numel() == images, "SqnrAccumulator: ", signal.numel(), " signal norms for ", images,
                    " images");
  TORCH_CHECK_VALUE(error.numel() == images, "SqnrAccumulator: ", error.numel(), " error norms for ", images,
                    " images");
  // zero error → +∞ whatever the signal (0/0 included)
  at::Tensor ratio;
  if (signal.device().is_cpu() && error.device().is_cpu() && signal.scalar_type() == at::kDouble &&
      error.scalar_type() == at::kDouble && signal.is_contiguous() && error.is_contiguous()) {
    // the same quotients written by one loop (the tensor expression below costs three ops and two temporaries)
    ratio = at::empty({images}, signal.options());
    const double* sp = signal.data_ptr<double>();
    const double* ep = error.data_ptr<double>();
    double* rp = ratio.data_ptr<double>();
    for (int64_t i = 0; i < images; ++i) rp[i] = ep[i] == 0 ? std::numeric_limits<double>::infinity() : sp[i] / ep[i];
  } else {
    ratio = at::where(error == 0, std::numeric_limits<double>::infinity(), signal / error);
  }
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
