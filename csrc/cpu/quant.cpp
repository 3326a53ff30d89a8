// CPU quantizers: elementwise loops in parallel chunks over the scalar math of kernels/quant.h. The PtfAct
// statistic is parallel over channels, each summing its rows in order (the same order as the CUDA kernel).
#include "csrc/ops/quant.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "csrc/dispatch.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;
constexpr int64_t kGrain = 32768;

template <class Out>
bool quantize_loop(const float* x, const double* scale, Out out, const QuantizeParams& p) {
  std::atomic<bool> all_ok{true};
  at::parallel_for(0, p.numel, kGrain, [&](int64_t i0, int64_t i1) {
    bool ok = true;
    for (int64_t i = i0; i < i1; ++i) {
      const double s = scale[p.layout.channel(i)];
      i64 q = 0;
      if (quantize_code(x[i], s, p.lo, p.hi, q)) {
        out.store(i, q, s);
      } else {
        ok = no_code(out, i) && ok;
      }
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

template <class In, class IdIn, class Out>
bool requant_loop(In in, IdIn id, DyadicArray d, DyadicArray d_id, double out_scale, Out out,
                  const RequantParams& p) {
  std::atomic<bool> all_ok{true};
  at::parallel_for(0, p.numel, kGrain, [&](int64_t i0, int64_t i1) {
    bool ok = true;
    for (int64_t i = i0; i < i1; ++i) {
      const i64 c = p.in_layout.channel(i);
      const i64 cid = p.id_layout.channel(i);
      i64 q = 0, qid = 0;
      const bool have = in.load(i, c, q) && (!p.has_identity || id.load(i, cid, qid));
      if (!have) {
        ok = no_code(out, i) && ok;
        continue;
      }
      const i64 r = p.has_identity ? requant_code(q, d.at(c), qid, d_id.at(cid), p.lo, p.hi)
                                   : requant_code(q, d.at(c), p.lo, p.hi);
      out.store(i, r, out_scale);
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

template <class Out>
bool requant_out(const RequantSide& in, const RequantSide* id, Out out, double out_scale, const RequantParams& p) {
  return with_requant_loader(in, [&](auto in_loader) {
    if (id == nullptr) {
      return requant_loop(in_loader, in_loader, dyadics(in), dyadics(in), out_scale, out, p);
    }
    return with_requant_loader(*id, [&](auto id_loader) {
      return requant_loop(in_loader, id_loader, dyadics(in), dyadics(*id), out_scale, out, p);
    });
  });
}

}  // namespace

bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const QuantizeParams& p) {
  const float* xp = x.data_ptr<float>();
  const double* sp = scale.data_ptr<double>();
  if (out.scalar_type() == at::kFloat) return quantize_loop(xp, sp, FakeOut{out.data_ptr<float>()}, p);
  return quantize_loop(xp, sp, CodeOut{out.data_ptr<int32_t>()}, p);
}

bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const RequantParams& p) {
  if (out.scalar_type() == at::kFloat) return requant_out(in, id, FakeOut{out.data_ptr<float>()}, out_scale, p);
  return requant_out(in, id, CodeOut{out.data_ptr<int32_t>()}, out_scale, p);
}

void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err) {
  const int64_t C = x.size(-1);
  const int64_t rows = C == 0 ? 0 : x.numel() / C;
  const float* xp = x.data_ptr<float>();
  double* ep = err.data_ptr<double>();
  // Channels in parallel; rows in order within each channel (row-major sweep over a block of channels, so the
  // reads stay contiguous while every channel's sum keeps the CUDA kernel's order).
  at::parallel_for(0, C, 64, [&](int64_t c0, int64_t c1) {
    std::vector<double> acc(static_cast<size_t>(c1 - c0) * 4, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const float v = xp[r * C + c];
        for (int a = 0; a < 4; ++a) {
          acc[(c - c0) * 4 + a] += quant_sq_error(v, s_base * static_cast<double>(1 << a), lo, hi);
        }
      }
    }
    for (int64_t j = 0; j < (c1 - c0) * 4; ++j) ep[c0 * 4 + j] = acc[j];
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
