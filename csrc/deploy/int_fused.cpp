// Fused CPU paths of the deploy engine (see int_fused.h). Compiled with -march=native -O3 (CMakeLists.txt) for the
// AVX-512 row epilogues of int_epilogue.h; the attention core is int_attention.cpp.
#include "csrc/deploy/int_fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <vector>

#include "csrc/deploy/int_blocks.h"
#include "csrc/deploy/int_epilogue.h"

namespace mnq {
namespace deploy {
namespace {

std::atomic<bool> g_fused{true};

// Rows of `in` (n wide) → rows of `out`, in parallel.
template <typename TI, typename TO>
void requant_rows(const TI* in, const epilogue::Pairs& r, int64_t rows, int64_t n, TO* out) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) epilogue::row(in + i * n, static_cast<const int32_t*>(nullptr), r, n, out + i * n);
  });
}

}  // namespace

void set_fused(bool on) { g_fused = on; }
bool fused() { return g_fused; }

bool fusable(const Requant& r) {
  return g_fused && r.m.defined() && r.m.is_cpu() && r.k.is_cpu() && r.bits <= 32 &&
         kernels::fast_requant_ok(r.m.data_ptr<int64_t>(), r.k.data_ptr<int64_t>(), r.m.numel());
}

void requant_into(const at::Tensor& q_in, const Requant& r, at::Tensor& out) {
  TORCH_CHECK(out.scalar_type() == at::kChar || out.scalar_type() == at::kInt, "requant_fused: int8 or int32 output");
  TORCH_CHECK(out.scalar_type() == at::kInt || r.bits <= 8, "requant_fused: int8 output of ", r.bits, "-bit codes");
  TORCH_CHECK(q_in.scalar_type() == at::kInt || q_in.scalar_type() == at::kLong,
              "requant_fused: int32 or int64 input, got ", q_in.scalar_type());
  TORCH_CHECK(out.is_contiguous() && out.numel() == q_in.numel(), "requant_into: a contiguous output of q's size");
  const at::Tensor q = q_in.contiguous();
  const int64_t n = q.dim() == 0 ? 1 : q.size(-1), rows = n == 0 ? 0 : q.numel() / n;
  const epilogue::Pairs p = epilogue::pairs_of(r);
  auto run = [&](auto* in) {
    if (out.scalar_type() == at::kChar) {
      requant_rows(in, p, rows, n, out.data_ptr<int8_t>());
    } else {
      requant_rows(in, p, rows, n, out.data_ptr<int32_t>());
    }
  };
  if (q.scalar_type() == at::kInt) {
    run(q.data_ptr<int32_t>());
  } else {
    run(q.data_ptr<int64_t>());
  }
}

at::Tensor requant_fused(const at::Tensor& q_in, const at::Tensor& bias, const Requant& r, at::ScalarType out_type) {
  // a bias is added in int64 first (the sum may pass 2^31; such values take the exact kernel)
  const at::Tensor q = bias.defined() ? q_in.to(at::kLong) + bias : q_in;
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(out_type));
  requant_into(q, r, out);
  return out;
}

at::Tensor rows_then_requant(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& op,
                             const Requant& act, at::ScalarType out_type, Profile* prof) {
  const int64_t C = x.dim() == 0 ? 1 : x.size(-1), rows = C == 0 ? 0 : x.numel() / C;
  const int64_t block = std::max<int64_t>(64, (int64_t(1) << 15) / std::max<int64_t>(C, 1));
  TORCH_CHECK(g_fused && x.is_cpu() && fusable(act), "rows_then_requant: requires fusable(act) on the CPU");
  if (rows <= block) {
    const at::Tensor y = op(x);
    ProfileScope scope(prof, "requant");
    return requant_fused(y, at::Tensor(), act, out_type);
  }
  const at::Tensor x2 = x.reshape({rows, C});
  at::Tensor out;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const at::Tensor y = op(x2.slice(0, r0, std::min(rows, r0 + block)));
    ProfileScope scope(prof, "requant");
    if (!out.defined()) out = at::empty({rows, y.size(-1)}, x.options().dtype(out_type));
    at::Tensor part = out.slice(0, r0, r0 + y.size(0));
    requant_into(y, act, part);
  }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  if (!shape.empty()) shape.back() = out.size(-1);
  return out.view(shape);
}

at::Tensor gelu_table_act(const at::Tensor& table, const at::Tensor& q_in, const Requant& act,
                          at::ScalarType out_type, Profile* prof) {
  ProfileScope scope(prof, "gelu");
  TORCH_CHECK(q_in.scalar_type() == at::kChar && table.scalar_type() == at::kInt && table.numel() == 256 * 256,
              "gelu_table_act: int8 codes and an int32 [256, 256] table");
  const at::Tensor q = q_in.contiguous();
  const int64_t n = q.size(-1), rows = q.numel() / n;
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(out_type));
  const epilogue::Pairs p = epilogue::pairs_of(act);
  const int32_t* t = table.data_ptr<int32_t>();
  const int8_t* qp = q.data_ptr<int8_t>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> g(static_cast<size_t>(n));
    for (int64_t i = r0; i < r1; ++i) {
      const int8_t* row = qp + i * n;
      int8_t m = -128;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, row[j]);
      const int32_t* tm = t + (int64_t(m) + 128) * 256 + 128;  // the table row of maximum m, at code 0
      for (int64_t j = 0; j < n; ++j) g[size_t(j)] = tm[row[j]];
      if (out_type == at::kChar) {
        epilogue::row(g.data(), static_cast<const int32_t*>(nullptr), p, n, out.data_ptr<int8_t>() + i * n);
      } else {
        epilogue::row(g.data(), static_cast<const int32_t*>(nullptr), p, n, out.data_ptr<int32_t>() + i * n);
      }
    }
  });
  return out;
}

bool requant_add_fusable(const at::Tensor& q, const at::Tensor& id, const Requant& r, const Requant& rid) {
  return q.is_cpu() && (q.scalar_type() == at::kChar || q.scalar_type() == at::kInt) && id.scalar_type() == at::kInt &&
         q.sizes() == id.sizes() && fusable(r) && fusable(rid) && r.m.numel() == 1 && rid.m.numel() == 1;
}

at::Tensor requant_add_fused(const at::Tensor& q_in, const at::Tensor& id_in, const Requant& r, const Requant& rid) {
  const at::Tensor q = q_in.contiguous(), id = id_in.contiguous();
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(at::kInt));
  const epilogue::Pairs p = epilogue::pairs_of(r);
  const int32_t m_id = int32_t(rid.m.data_ptr<int64_t>()[0]), k_id = int32_t(rid.k.data_ptr<int64_t>()[0]);
  const int64_t n = q.numel();
  const int32_t* ip = id.data_ptr<int32_t>();
  int32_t* op = out.data_ptr<int32_t>();
  constexpr int64_t kChunk = 16384;
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t j = c * kChunk, len = std::min(kChunk, n - j);
      if (q.scalar_type() == at::kChar) {
        epilogue::add_row(q.data_ptr<int8_t>() + j, ip + j, p, m_id, k_id, len, op + j);
      } else {
        epilogue::add_row(q.data_ptr<int32_t>() + j, ip + j, p, m_id, k_id, len, op + j);
      }
    }
  });
  return out;
}

at::Tensor linear_act(const IntLinear& l, const at::Tensor& q, const Requant& act, at::ScalarType out_type,
                      Profile* prof, const Residual* res) {
  if (!g_fused || !q.is_cpu() || l.wide || l.in_bits > 8 || !fusable(act)) {
    at::Tensor h;
    {
      ProfileScope scope(prof, "requant");
      h = act(l(q, prof));
    }
    h = out_type == at::kChar ? h.to(at::kChar) : h;
    return res ? requant_add(res->r, h, res->id, res->r_id, prof) : h;
  }
  ProfileScope scope(prof, "linear");
  const int64_t K = l.weight.size(1), N = l.weight.size(0);
  std::vector<int64_t> out_shape(q.sizes().begin(), q.sizes().end());
  out_shape.back() = N;
  const at::Tensor a = (q.scalar_type() == at::kChar ? q : q.to(at::kChar)).reshape({-1, K});
  const int64_t M = a.size(0);
  // the residual add in the same epilogue (int32 stream codes) where requant_add would take its fused path
  const at::Tensor id = res ? res->id.contiguous() : at::Tensor();
  const bool add = res && id.is_cpu() && id.scalar_type() == at::kInt && id.numel() == M * N && id.size(-1) == N &&
                   fusable(res->r) && fusable(res->r_id) && res->r.m.numel() == 1 && res->r_id.m.numel() == 1;
  if (res && !add) return requant_add(res->r, linear_act(l, q, act, out_type, prof), res->id, res->r_id, prof);
  at::Tensor out = at::empty({M, N}, q.options().dtype(add ? at::kInt : out_type));
  const at::Tensor wt = l.weight.t();
  const epilogue::Pairs p = epilogue::pairs_of(act);
  const epilogue::Pairs pr = add ? epilogue::pairs_of(res->r) : epilogue::Pairs{};
  const int32_t m_id = add ? int32_t(res->r_id.m.data_ptr<int64_t>()[0]) : 0;
  const int32_t k_id = add ? int32_t(res->r_id.k.data_ptr<int64_t>()[0]) : 0;
  const int32_t* bias = l.bias.defined() ? l.bias.data_ptr<int32_t>() : nullptr;
  // Blocks of rows whose int32 accumulators fit in L2 (≈ 256 KiB); one GEMM call per block.
  const int64_t block = std::clamp<int64_t>((int64_t(1) << 16) / std::max<int64_t>(N, 1), 16, 4096);
  at::parallel_for(0, (M + block - 1) / block, 1, [&](int64_t b0, int64_t b1) {
    at::Tensor acc = at::empty({block, N}, a.options().dtype(at::kInt));
    std::vector<int32_t> codes(size_t(add ? N : 0));
    for (int64_t bi = b0; bi < b1; ++bi) {
      const int64_t r0 = bi * block, r1 = std::min(M, r0 + block);
      at::Tensor acc_b = acc.slice(0, 0, r1 - r0);
      at::_int_mm_out(acc_b, a.slice(0, r0, r1), wt);
      const int32_t* ap = acc_b.data_ptr<int32_t>();
      for (int64_t i = 0; i < r1 - r0; ++i) {
        if (add) {  // the act codes of the row, then clamp(requant(codes) + requant(id)) onto the stream
          epilogue::row(ap + i * N, bias, p, N, codes.data());
          epilogue::add_row(codes.data(), id.data_ptr<int32_t>() + (r0 + i) * N, pr, m_id, k_id, N,
                            out.data_ptr<int32_t>() + (r0 + i) * N);
        } else if (out_type == at::kChar) {
          epilogue::row(ap + i * N, bias, p, N, out.data_ptr<int8_t>() + (r0 + i) * N);
        } else {
          epilogue::row(ap + i * N, bias, p, N, out.data_ptr<int32_t>() + (r0 + i) * N);
        }
      }
    }
  });
  return out.view(out_shape);
}

}  // namespace deploy
}  // namespace mnq
