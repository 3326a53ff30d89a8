// Fused CPU paths of the deploy engine (issue 11's speed goal): the requantization after an integer matmul done in
// its epilogue (kernels/int_requant.h), and the attention core (q@kᵀ → scores requant → softmax → @v → requant)
// per (image, head) on cache-resident tiles, reading q, k and v straight from the qkv codes and writing the codes
// proj reads. Every result equals the unfused program's (the requant_dyadic op, int_bmm) bit for bit:
// tests/cpp/deploy/test_deploy.cpp checks the kernels against kernels/common.h requant and tests/python/test_deploy.py
// the whole models. Where a precondition fails (a CUDA tensor, a pair outside the fast range, a wide accumulator)
// the callers take the unfused path.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "csrc/deploy/int_layers.h"
#include "csrc/deploy/profile.h"

namespace mnq {
namespace deploy {

// On by default; off, the engine runs the unfused program everywhere (the bit-exactness tests and the benchmark's
// before/after compare the two in one process). Process-wide.
void set_fused(bool on);
bool fused();

// True when `r` can run in the fused epilogue (CPU pairs with |m| < 2^31, 1 ≤ k ≤ 62).
bool fusable(const Requant& r);

// clamp(round((q [+ bias]) · m/2^k)) over the last dimension, q int32 or int64 (CPU, any shape), bias int32 [C]
// or undefined, as `out` dtype (int8 when the codes feed a matmul, else int32). Rows whose values exceed the fast
// path's 2^31 bound are computed by the exact 128-bit kernel. Requires fusable(r).
at::Tensor requant_fused(const at::Tensor& q, const at::Tensor& bias, const Requant& r, at::ScalarType out);

// requant_fused into `out` (contiguous, q's element count, int8 or int32), no bias.
void requant_into(const at::Tensor& q, const Requant& r, at::Tensor& out);

// requant(act, op(x)) for an op that works row by row on the last dimension (a LayerNorm, a GELU), in blocks of
// rows whose op output fits in L2 (≈ 256 KiB), each requantized while in cache — one pass over the op's (int64)
// output in memory fewer. Requires fusable(act) and a CPU x; the result equals requant(act, op(x)).
at::Tensor rows_then_requant(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& op,
                             const Requant& act, at::ScalarType out, Profile* prof);

// requant(act, shift_gelu(q)) of int8 codes by IntGelu::table (ShiftGELU of a code given its row's maximum): the
// row maximum, one lookup per code, the requant epilogue, in one pass. Requires fusable(act).
at::Tensor gelu_table_act(const at::Tensor& table, const at::Tensor& q, const Requant& act, at::ScalarType out,
                          Profile* prof);

// clamp(requant(q, r) + requant(id, rid)) (the fused residual add) when requant_add_fusable: CPU, q int8 or int32,
// id int32 of q's shape, both requants per tensor and fusable. Output int32.
bool requant_add_fusable(const at::Tensor& q, const at::Tensor& id, const Requant& r, const Requant& rid);
at::Tensor requant_add_fused(const at::Tensor& q, const at::Tensor& id, const Requant& r, const Requant& rid);

// A residual add after a layer: clamp(requant(codes, r) + requant(id, r_id)) onto the stream (int32).
struct Residual {
  const Requant& r;
  const Requant& r_id;
  const at::Tensor& id;
};

// act(linear(q)): the int8 GEMM in blocks of rows, each block's accumulators requantized while in cache; with
// `res`, the residual add too (requant_add of the act codes and res->id), in the same epilogue where
// requant_add_fusable holds. Falls back to the unfused path where a precondition fails.
at::Tensor linear_act(const IntLinear& l, const at::Tensor& q, const Requant& act, at::ScalarType out, Profile* prof,
                      const Residual* res = nullptr);

// The attention core of IntAttention on the CPU: qkv int8 codes [B, N, 3C] (B windows for Swin) → the av_act codes
// [B, N, C] (int8). False (nothing computed) when a precondition fails; the caller then runs the unfused program.
bool attention_core(const struct IntAttention& attn, const at::Tensor& qkv, int64_t heads, at::Tensor& out,
                    Profile* prof);

}  // namespace deploy
}  // namespace mnq
