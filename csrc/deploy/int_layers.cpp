// The integer layers (see int_layers.h): calls of the integer mnq ops through the dispatcher, their constants, and
// their Store layout.
#include "csrc/deploy/int_layers.h"

#include <ATen/ATen.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "csrc/deploy/int_fused.h"
#include "csrc/deploy/int_matmul.h"
#include "csrc/ops.h"
#include "kernels/common.h"

namespace mnq {
namespace deploy {
namespace {

using T = at::Tensor;

[[noreturn]] void model_fail(const std::string& msg) { throw std::invalid_argument("integer model: " + msg); }

std::atomic<bool> g_float32{false};

// What the fake-quant model's next QuantAct reads back from an op output q on scale s: the op stores the float32
// value fl32(q·s) and the quantizer recovers the code round(fl32(q·s) / s) in float64 (kernels/quant.h). Exact for
// |q| < 2^24; the I-ViT / I-BERT LayerNorm (up to 2^30) and I-BERT GELU outputs can lose their low bits.
at::Tensor through_float32(const at::Tensor& q, const at::Tensor& s) {
  if (!g_float32) return q;
  const at::Tensor sd = s.to(q.device(), at::kDouble);
  return at::round((q.to(at::kDouble) * sd).to(at::kFloat).to(at::kDouble) / sd).to(q.scalar_type());
}

void check_method(const std::string& name, const std::string& method, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (method == a) return;
  }
  model_fail("value '" + name + ".method' = '" + method + "' is not a method this layer runs in integers");
}

}  // namespace

void set_float32_emulation(bool on) { g_float32 = on; }

ProfileScope::~ProfileScope() {
  if (!prof_) return;
  const auto end = std::chrono::steady_clock::now();
  prof_->seconds[key_] += std::chrono::duration<double>(end - start_).count();
}

// ---- Requant ----

Requant Requant::of(const at::Tensor& scale_in, double scale_out, int64_t bits) {
  const at::Tensor s = scale_in.detach().to(at::kCPU, at::kDouble).contiguous().reshape({-1});
  Requant r;
  r.bits = bits;
  r.m = at::empty({s.numel()}, at::kLong);
  r.k = at::empty({s.numel()}, at::kLong);
  for (int64_t c = 0; c < s.numel(); ++c) {
    const double ratio = s.data_ptr<double>()[c] / scale_out;  // as `requant` (csrc/ops/quant.cpp requant_side)
    if (!std::isfinite(ratio) || ratio == 0) model_fail("a requantization ratio is not finite and nonzero");
    const kernels::Dyadic d = kernels::dyadic(ratio);
    r.m.data_ptr<int64_t>()[c] = d.m;
    r.k.data_ptr<int64_t>()[c] = d.k;
  }
  return r;
}

at::Tensor narrow_codes(const at::Tensor& q, int64_t bits) {
  const at::ScalarType t = bits <= 8 ? at::kChar : bits <= 16 ? at::kShort : q.scalar_type();
  return q.scalar_type() == t ? q : q.to(t);
}

// requant_dyadic's kernels without its per-call host read of (m, k): check_pairs validated them at conversion or
// load, so a CUDA forward never waits for the device here. Off the CPU fused program the codes go on in their
// narrowest dtype (its clamp makes that exact), so the integer op that reads them needs no range check: with a
// dtype that can leave the op's range it would read a flag back from the device (csrc/checks.h needs_range_check).
// The CPU fused paths keep the int32 codes their epilogues take.
at::Tensor Requant::operator()(const at::Tensor& q) const {
  const at::Tensor out = ops::requant_dyadic_prechecked(q, m, k, bits, std::nullopt, std::nullopt, std::nullopt);
  return q.is_cpu() && fused() ? out : narrow_codes(out, bits);
}

at::Tensor Requant::add(const at::Tensor& q, const at::Tensor& q_id, const Requant& id) const {
  const at::Tensor out = ops::requant_dyadic_prechecked(q, m, k, bits, q_id, id.m, id.k);
  return q.is_cpu() && fused() ? out : narrow_codes(out, bits);
}

// The stored width of a dyadic pair (format version 2, store.h). dyadic(r) of SPEC §0 gives
// m = floor(mant·2^31 + 1/2) with mant ∈ [0.5, 1), so m ∈ [2^30, 2^31], and m = 2^31 is replaced by 2^30:
// |m| ∈ [2^30, 2^31 − 1] (m carries the sign of r: requant's input scale may be negative, as I-BERT GELU's S_out
// is for a negative per-channel factor), which int32 holds. k = 31 − exp is any int for a double r, but
// requant_dyadic runs k ∈ [−32, 120] only (multipliers between 2^−89 and 2^63, kernels/common.h requant's exact
// range), which int8 holds. check_pairs enforces both at conversion and at load (files of either version), so a
// pair outside them is an error naming the tensor, never a wrapped or refused value at inference.
namespace {

constexpr int64_t kMinM = int64_t(1) << 30, kMaxM = (int64_t(1) << 31) - 1, kMinK = -32, kMaxK = 120;

void check_pairs(const std::string& name, const at::Tensor& m, const at::Tensor& k) {
  const int64_t* mp = m.data_ptr<int64_t>();
  const int64_t* kp = k.data_ptr<int64_t>();
  for (int64_t c = 0; c < m.numel(); ++c) {
    if (std::abs(mp[c]) < kMinM || std::abs(mp[c]) > kMaxM) {
      model_fail("tensor '" + name + ".m' holds " + std::to_string(mp[c]) + " at " + std::to_string(c) +
           ", |m| outside [2^30, 2^31 - 1] (SPEC §0 dyadic)");
    }
    if (kp[c] < kMinK || kp[c] > kMaxK) {
      model_fail("tensor '" + name + ".k' holds " + std::to_string(kp[c]) + " at " + std::to_string(c) + ", outside [" +
           std::to_string(kMinK) + ", " + std::to_string(kMaxK) + "] (a multiplier beyond 2^-89..2^63)");
    }
  }
}

}  // namespace

void Requant::write(Store& s, const std::string& name) const {
  check_pairs(name, m, k);
  s.put_narrowed(name + ".m", m, at::kInt);
  s.put_narrowed(name + ".k", k, at::kChar);
  s.set(name + ".bits", bits);
}

Requant Requant::read(const Store& s, const std::string& name, int64_t channels) {
  Requant r;
  r.m = s.narrowed(name + ".m", at::kLong, at::kInt, {channels}, true);
  r.k = s.narrowed(name + ".k", at::kLong, at::kChar, {r.m.numel()});
  check_pairs(name, r.m, r.k);
  r.bits = s.integer(name + ".bits");
  if (r.bits < 2 || r.bits > 32) model_fail("value '" + name + ".bits' must be in [2, 32]");
  return r;
}

void Requant::to(at::Device d) {
  m = m.to(d);
  k = k.to(d);
}

// ---- IntLinear ----

at::Tensor IntLinear::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "linear");
  const int64_t K = weight.size(1), N = weight.size(0);
  std::vector<int64_t> out_shape(q.sizes().begin(), q.sizes().end());
  out_shape.back() = N;
  at::Tensor acc = int_mm(q.reshape({-1, K}), IntRange::bits(in_bits), weight_kn.defined() ? weight_kn : weight.t());
  if (wide) acc = acc.to(at::kLong);
  if (bias.defined()) acc.add_(bias);
  return acc.view(out_shape);
}

void IntLinear::write(Store& s, const std::string& name) const {
  s.put(name + ".weight", weight);
  if (bias.defined()) s.put(name + ".bias", bias);
  s.set(name + ".in_bits", in_bits);
}

IntLinear IntLinear::read(const Store& s, const std::string& name, int64_t in_features, int64_t out_features,
                          bool has_bias) {
  IntLinear l;
  l.weight = s.tensor(name + ".weight", at::kChar, {out_features, in_features});
  if (has_bias) l.bias = s.vector(name + ".bias", at::kInt, out_features);
  l.in_bits = s.integer(name + ".in_bits");
  if (l.in_bits < 2 || l.in_bits > 16) model_fail("value '" + name + ".in_bits' must be in [2, 16]");
  // int32 holds the accumulator when K·2^(a−1)·2^7 + max|bias| < 2^31.
  double bound = static_cast<double>(in_features) * std::ldexp(1.0, int(l.in_bits - 1)) * 128.0;
  if (has_bias) bound += static_cast<double>(l.bias.abs().max().item<int32_t>());
  l.wide = bound >= 2147483647.0 || l.in_bits > 8;
  return l;
}

void IntLinear::to(at::Device d) {
  weight = weight.to(d);
  weight_kn = d.is_cpu() ? at::Tensor() : weight.t().contiguous();
  if (bias.defined()) bias = bias.to(d);
}

// ---- IntNorm ----

at::Tensor IntNorm::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "layernorm");
  if (method == "fqvit") return ops::ptf_layernorm_prepared(narrow_codes(to_ptf(q), to_ptf.bits), ptf, scale_next);
  auto [codes, s] = method == "ivit" ? ops::ilayernorm_prepared(q, scale_in, ln)
                                     : ops::ibert_layernorm_prepared(q, scale_in, ln);
  return through_float32(codes, s);
}

void IntNorm::write(Store& s, const std::string& name) const {
  s.set(name + ".method", method);
  s.put(name + ".weight", gamma);
  s.put(name + ".bias", beta);
  if (method == "fqvit") {
    to_ptf.write(s, name + ".ptf");
    s.put_narrowed(name + ".ptf.alpha", alpha, at::kChar);  // α ∈ {0, 1, 2, 3} (ptf_layernorm checks it)
    s.set(name + ".ptf.s_base", s_base);
    s.set(name + ".scale_next", scale_next);
  } else {
    s.set(name + ".scale_in", scale_in);
  }
}

IntNorm IntNorm::read(const Store& s, const std::string& name, int64_t channels) {
  IntNorm n;
  n.method = s.text(name + ".method");
  check_method(name, n.method, {"ivit", "ibert", "fqvit"});
  n.gamma = s.vector(name + ".weight", at::kFloat, channels);
  n.beta = s.vector(name + ".bias", at::kFloat, channels);
  if (n.method == "fqvit") {
    n.to_ptf = Requant::read(s, name + ".ptf", channels);
    n.alpha = s.narrowed(name + ".ptf.alpha", at::kLong, at::kChar, {channels});
    n.s_base = s.number(name + ".ptf.s_base");
    n.scale_next = s.number(name + ".scale_next");
    n.ptf = ops::ptf_layernorm_consts(n.alpha, n.s_base, n.gamma, n.beta, n.scale_next);
  } else {
    n.scale_in = s.number(name + ".scale_in");
    n.ln = ops::ln_affine(n.method == "ivit" ? "ilayernorm" : "ibert_layernorm", n.gamma, n.beta);
  }
  return n;
}

void IntNorm::to(at::Device d) {  // γ, β and α stay on the CPU (save writes them; the forward reads the constants)
  if (ln.bias_int.defined()) ln = ops::LnAffine{ln.bias_int.to(d), ln.s_out.to(d)};
  if (ptf.shift.defined()) ptf = ops::PtfConsts{ptf.shift.to(d), ptf.values.to(d)};
  if (to_ptf.m.defined()) to_ptf.to(d);
}

// ---- IntSoftmax ----

at::Tensor IntSoftmax::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "softmax");
  if (method == "ivit") {
    return std::get<0>(ops::shiftmax(q, scale, out_bits, 15));
  }
  if (method == "ibert") {
    return std::get<0>(ops::ibert_softmax(q, scale, out_bits));
  }
  // Log-Int-Softmax: the value 2^−code is the integer 2^(c_max − code) on scale 2^−c_max, 0 where masked.
  auto [code, mask] = ops::log_int_softmax(q, scale, out_bits);
  const int64_t c_max = (int64_t(1) << out_bits) - 1;
  const at::Tensor shift = (c_max - code.to(at::kInt)).clamp_min(0);
  return at::bitwise_left_shift(at::ones_like(shift), shift).masked_fill_(mask, 0);
}

double IntSoftmax::out_scale() const {
  if (method == "ivit") return std::ldexp(1.0, -int(out_bits - 1));
  if (method == "ibert") return std::ldexp(1.0, -int(out_bits));
  return std::ldexp(1.0, -int((int64_t(1) << out_bits) - 1));
}

IntRange IntSoftmax::out_range() const {
  if (method == "fqvit") return {0, int64_t(1) << ((int64_t(1) << out_bits) - 1)};  // 2^(c_max − code)
  if (method == "ivit") return {0, (int64_t(1) << (out_bits - 1)) - 1};  // floor(e·f / 2^(32−b)), e·f < 2^31
  return {0, int64_t(1) << out_bits};  // I-BERT: e·f ≤ 2^32 (one dominant element gives 2^b)
}

void IntSoftmax::write(Store& s, const std::string& name) const {
  s.set(name + ".method", method);
  s.set(name + ".scale", scale);
  s.set(name + ".out_bits", out_bits);
}

IntSoftmax IntSoftmax::read(const Store& s, const std::string& name) {
  IntSoftmax m;
  m.method = s.text(name + ".method");
  check_method(name, m.method, {"ivit", "ibert", "fqvit"});
  m.scale = s.number(name + ".scale");
  m.out_bits = s.integer(name + ".out_bits");
  const int64_t hi = m.method == "fqvit" ? 4 : 16;  // LIS codes up to 2^4−1 keep 2^(2^b−1) in int32
  if (m.out_bits < 2 || m.out_bits > hi) model_fail("value '" + name + ".out_bits' must be in [2, " + std::to_string(hi) + "]");
  return m;
}

// ---- IntGelu ----

at::Tensor IntGelu::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "gelu");
  if (method == "ivit") {
    return std::get<0>(ops::shift_gelu(q, scale, 8, 23));
  }
  if (method == "fqvit") return lut.index({q.to(at::kLong) + lut.size(0) / 2});
  auto [codes, s] = ops::ibert_gelu_prepared(q, consts);
  return through_float32(codes, s);
}

void IntGelu::write(Store& s, const std::string& name) const {
  s.set(name + ".method", method);
  if (method == "ivit") {
    s.set(name + ".scale", scale);
  } else if (method == "ibert") {
    s.put(name + ".scale", channel_scale);
  } else {
    s.put(name + ".lut", lut);
  }
}

IntGelu IntGelu::read(const Store& s, const std::string& name, int64_t channels) {
  IntGelu g;
  g.method = s.text(name + ".method");
  check_method(name, g.method, {"ivit", "ibert", "fqvit"});
  if (g.method == "ivit") {
    g.scale = s.number(name + ".scale");
    // ShiftGELU of an 8-bit code q depends on q and its row's maximum m only (SPEC §3.2): table[m + 128][q + 128],
    // computed by the op itself on the rows min(−128 … 127, m) (whose maximum is m). A scale the op refuses leaves
    // no table: the op then reports it at the first forward, as without the table.
    try {
      const at::Tensor codes = at::arange(-128, 128, at::kInt);
      const at::Tensor rows = at::minimum(codes.view({1, 256}), codes.view({256, 1})).to(at::kChar);
      g.table = g(rows, nullptr).to(at::kInt).contiguous();
    } catch (const std::exception&) {
      g.table = at::Tensor();
    }
  } else if (g.method == "ibert") {
    g.channel_scale = s.vector(name + ".scale", at::kDouble, channels);
    g.consts = ops::ibert_gelu_consts(g.channel_scale, channels);
  } else {
    g.lut = s.tensor(name + ".lut", at::kInt, {-1});
    const int64_t n = g.lut.numel();
    if (n < 4 || n > 256 || (n & (n - 1))) model_fail("tensor '" + name + ".lut' must have 2^b entries, b in [2, 8]");
  }
  return g;
}

void IntGelu::to(at::Device d) {  // channel_scale stays on the CPU (save writes it; the forward reads consts)
  if (consts.consts.defined()) {
    consts = ops::IbertGeluConsts{consts.consts.to(d), consts.scales.to(d), consts.s_out.to(d)};
  }
  if (lut.defined()) lut = lut.to(d);
}

}  // namespace deploy
}  // namespace mnq
