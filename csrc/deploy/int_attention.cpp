// The attention core of the deploy engine on the CPU (see int_fused.h): per (image or window, head), q·kᵀ on the
// packed int8 dot products of int_dot.h, the scores requant (with Swin's relative-position bias as a fused add and
// the shift mask on the scores' scale) as the products' epilogue, the softmax op over all heads, then a·v and the
// av requant, writing the int8 codes proj reads. Compiled with -march=native -O3 (CMakeLists.txt).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "csrc/deploy/int_blocks.h"
#include "csrc/deploy/int_dot.h"
#include "csrc/deploy/int_epilogue.h"
#include "csrc/deploy/int_fused.h"

namespace mnq {
namespace deploy {

bool attention_core(const IntAttention& attn, const at::Tensor& qkv, int64_t H, at::Tensor& out, Profile* prof) {
  const int64_t B = qkv.size(0), N = qkv.size(1), C = qkv.size(2) / 3, hd = C / H;
  const IntRange av_range = attn.softmax.out_range();
  const double a_max = double(std::max(-av_range.lo, av_range.hi));
  if (!fused() || !qkv.is_cpu() || qkv.scalar_type() != at::kChar || !qkv.is_contiguous() || attn.av_act.bits > 8 ||
      !fusable(attn.scores_act) || !fusable(attn.av_act) || (attn.bias_codes.defined() && !fusable(attn.bias_act)) ||
      double(N) * a_max * 128.0 >= 2147483648.0 || attn.scores_act.m.numel() != 1 || attn.av_act.m.numel() != 1 ||
      (attn.bias_codes.defined() && attn.bias_act.m.numel() != 1)) {
    return false;
  }
  const int8_t* base = qkv.data_ptr<int8_t>();
  const int64_t ld = 3 * C;  // row stride of the qkv codes
  const epilogue::Pairs sp = epilogue::pairs_of(attn.scores_act);
  const int32_t m_b = attn.bias_codes.defined() ? int32_t(attn.bias_act.m.item<int64_t>()) : 0;
  const int32_t k_b = attn.bias_codes.defined() ? int32_t(attn.bias_act.k.item<int64_t>()) : 0;
  const int32_t* bias = attn.bias_codes.defined() ? attn.bias_codes.data_ptr<int32_t>() : nullptr;  // [1, H, N, N]
  const int32_t* mask = attn.mask_codes.defined() ? attn.mask_codes.data_ptr<int32_t>() : nullptr;  // [nW, N, N]
  const int64_t nw = attn.mask_codes.defined() ? attn.mask_codes.size(0) : 1;
  const epilogue::Pairs vp = epilogue::pairs_of(attn.av_act);
  out = at::empty({B, N, C}, qkv.options().dtype(at::kChar));
  int8_t* op = out.data_ptr<int8_t>();
  const int64_t G = B * H, Np = (N + 15) / 16 * 16, hp = (hd + 15) / 16 * 16;
  // Tiles in groups whose scores fit in L2 (≈ 256 KiB): each group's scores are computed, pass the softmax op in
  // one call and are multiplied with v while still in cache (the softmax is row-wise: grouping changes nothing).
  const int64_t group = std::clamp<int64_t>((int64_t(1) << 16) / (N * N), 1, G);
  std::atomic<int64_t> softmax_ns{0};
  const auto t0 = std::chrono::steady_clock::now();
  at::parallel_for(0, (G + group - 1) / group, 1, [&](int64_t c0, int64_t c1) {
    DotScratch scratch;
    std::vector<int32_t> acc(size_t(N * std::max(Np, hp)));
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t g0 = c * group, g1 = std::min(G, g0 + group);
      at::Tensor scores = at::empty({g1 - g0, N, N}, qkv.options().dtype(at::kInt));
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t b = g / H, h = g % H;
        const int8_t* q = base + b * N * ld + h * hd;
        dot_abt_s8(q, ld, q + C, ld, N, N, hd, acc.data(), Np, scratch);  // q·kᵀ, k = q + C
        int32_t* s = scores.data_ptr<int32_t>() + (g - g0) * N * N;
        for (int64_t i = 0; i < N; ++i) {
          if (bias) {
            epilogue::add_row(acc.data() + i * Np, bias + (h * N + i) * N, sp, m_b, k_b, N, s + i * N);
          } else {
            epilogue::row(acc.data() + i * Np, nullptr, sp, N, s + i * N);
          }
          if (mask) {
            const int32_t* mr = mask + ((b % nw) * N + i) * N;
            for (int64_t j = 0; j < N; ++j) s[i * N + j] += mr[j];
          }
        }
      }
      const auto ts = std::chrono::steady_clock::now();
      const at::Tensor a = attn.softmax(scores, nullptr).contiguous();  // int32 [g1 − g0, N, N]
      TORCH_CHECK(a.scalar_type() == at::kInt, "attention_core: the softmax gave ", a.scalar_type());
      if (prof) softmax_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - ts).count();
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t b = g / H, h = g % H;
        const int8_t* v = base + b * N * ld + 2 * C + h * hd;
        // a·v, |Σ| ≤ N·a_max·128 < 2^31 (checked above)
        dot_ab_s8(a.data_ptr<int32_t>() + (g - g0) * N * N, N, v, ld, N, hd, N, acc.data(), hp, scratch);
        for (int64_t i = 0; i < N; ++i) {
          epilogue::row(acc.data() + i * hp, nullptr, vp, hd, op + (b * N + i) * C + h * hd);
        }
      }
    }
  });
  if (prof) {  // the softmax calls ran inside the parallel loop: their time is reported as "softmax"
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double soft = 1e-9 * double(softmax_ns.load()) / double(std::max<int64_t>(1, at::get_num_threads()));
    prof->seconds["softmax"] += soft;
    prof->seconds["attn_matmul"] += total - soft;
  }
  return true;
}

}  // namespace deploy
}  // namespace mnq
