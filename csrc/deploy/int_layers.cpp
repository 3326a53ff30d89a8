// The integer layers (see int_layers.h): calls of the integer mnq ops through the dispatcher, their constants, and
// their Store layout.
#include "csrc/deploy/int_layers.h"

#include <ATen/ATen.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "csrc/autograd/ste.h"
#include "csrc/deploy/int_matmul.h"
#include "kernels/common.h"

namespace mnq {
namespace deploy {
namespace {

using autograd::op_handle;
using T = at::Tensor;
using OptT = std::optional<at::Tensor>;

T requant_dyadic(const T& q, const T& m, const T& k, int64_t bits, const OptT& id, const OptT& m_id,
                 const OptT& k_id) {
  static auto op = op_handle<T(const T&, const T&, const T&, int64_t, const OptT&, const OptT&, const OptT&)>(
      "requant_dyadic");
  return op.call(q, m, k, bits, id, m_id, k_id);
}

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("integer model: " + msg); }

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
  fail("value '" + name + ".method' = '" + method + "' is not a method this layer runs in integers");
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
    if (!std::isfinite(ratio) || ratio == 0) fail("a requantization ratio is not finite and nonzero");
    const kernels::Dyadic d = kernels::dyadic(ratio);
    r.m.data_ptr<int64_t>()[c] = d.m;
    r.k.data_ptr<int64_t>()[c] = d.k;
  }
  return r;
}

at::Tensor Requant::operator()(const at::Tensor& q) const {
  return requant_dyadic(q, m, k, bits, std::nullopt, std::nullopt, std::nullopt);
}

at::Tensor Requant::add(const at::Tensor& q, const at::Tensor& q_id, const Requant& id) const {
  return requant_dyadic(q, m, k, bits, q_id, id.m, id.k);
}

void Requant::write(Store& s, const std::string& name) const {
  s.put(name + ".m", m);
  s.put(name + ".k", k);
  s.set(name + ".bits", bits);
}

Requant Requant::read(const Store& s, const std::string& name, int64_t channels) {
  Requant r;
  r.m = s.vector(name + ".m", at::kLong, channels, true);
  r.k = s.vector(name + ".k", at::kLong, r.m.numel());
  r.bits = s.integer(name + ".bits");
  if (r.bits < 2 || r.bits > 32) fail("value '" + name + ".bits' must be in [2, 32]");
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
  at::Tensor acc = int_mm(q.reshape({-1, K}), IntRange::bits(in_bits), weight.t());
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
  if (l.in_bits < 2 || l.in_bits > 16) fail("value '" + name + ".in_bits' must be in [2, 16]");
  // int32 holds the accumulator when K·2^(a−1)·2^7 + max|bias| < 2^31.
  double bound = static_cast<double>(in_features) * std::ldexp(1.0, int(l.in_bits - 1)) * 128.0;
  if (has_bias) bound += static_cast<double>(l.bias.abs().max().item<int32_t>());
  l.wide = bound >= 2147483647.0 || l.in_bits > 8;
  return l;
}

void IntLinear::to(at::Device d) {
  weight = weight.to(d);
  if (bias.defined()) bias = bias.to(d);
}

// ---- IntNorm ----

at::Tensor IntNorm::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "layernorm");
  if (method == "ivit") {
    static auto op = op_handle<std::tuple<T, T>(const T&, double, const T&, const T&)>("ilayernorm");
    auto [codes, s] = op.call(q, scale_in, gamma, beta);
    return through_float32(codes, s);
  }
  if (method == "ibert") {
    static auto op = op_handle<std::tuple<T, T>(const T&, double, const T&, const T&)>("ibert_layernorm");
    auto [codes, s] = op.call(q, scale_in, gamma, beta);
    return through_float32(codes, s);
  }
  static auto op =
      op_handle<std::tuple<T, double>(const T&, const T&, double, const T&, const T&, double)>("ptf_layernorm");
  return std::get<0>(op.call(to_ptf(q), alpha, s_base, gamma, beta, scale_next));
}

void IntNorm::write(Store& s, const std::string& name) const {
  s.set(name + ".method", method);
  s.put(name + ".weight", gamma);
  s.put(name + ".bias", beta);
  if (method == "fqvit") {
    to_ptf.write(s, name + ".ptf");
    s.put(name + ".ptf.alpha", alpha);
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
    n.alpha = s.vector(name + ".ptf.alpha", at::kLong, channels);
    n.s_base = s.number(name + ".ptf.s_base");
    n.scale_next = s.number(name + ".scale_next");
  } else {
    n.scale_in = s.number(name + ".scale_in");
  }
  return n;
}

void IntNorm::to(at::Device d) {
  gamma = gamma.to(d);
  beta = beta.to(d);
  if (alpha.defined()) alpha = alpha.to(d);
  if (to_ptf.m.defined()) to_ptf.to(d);
}

// ---- IntSoftmax ----

at::Tensor IntSoftmax::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "softmax");
  if (method == "ivit") {
    static auto op = op_handle<std::tuple<T, double>(const T&, double, int64_t, int64_t)>("shiftmax");
    return std::get<0>(op.call(q, scale, out_bits, 15));
  }
  if (method == "ibert") {
    static auto op = op_handle<std::tuple<T, double>(const T&, double, int64_t)>("ibert_softmax");
    return std::get<0>(op.call(q, scale, out_bits));
  }
  // Log-Int-Softmax: the value 2^−code is the integer 2^(c_max − code) on scale 2^−c_max, 0 where masked.
  static auto op = op_handle<std::tuple<T, T>(const T&, double, int64_t)>("log_int_softmax");
  auto [code, mask] = op.call(q, scale, out_bits);
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
  if (m.out_bits < 2 || m.out_bits > hi) fail("value '" + name + ".out_bits' must be in [2, " + std::to_string(hi) + "]");
  return m;
}

// ---- IntGelu ----

at::Tensor IntGelu::operator()(const at::Tensor& q, Profile* prof) const {
  ProfileScope scope(prof, "gelu");
  if (method == "ivit") {
    static auto op = op_handle<std::tuple<T, double>(const T&, double, int64_t, int64_t)>("shift_gelu");
    return std::get<0>(op.call(q, scale, 8, 23));
  }
  if (method == "fqvit") return lut.index({q.to(at::kLong) + lut.size(0) / 2});
  static auto op = op_handle<std::tuple<T, T>(const T&, const T&)>("ibert_gelu");
  auto [codes, s] = op.call(q, channel_scale);
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
  } else {
    g.lut = s.tensor(name + ".lut", at::kInt, {-1});
    const int64_t n = g.lut.numel();
    if (n < 4 || n > 256 || (n & (n - 1))) fail("tensor '" + name + ".lut' must have 2^b entries, b in [2, 8]");
  }
  return g;
}

void IntGelu::to(at::Device d) {
  if (channel_scale.defined()) channel_scale = channel_scale.to(d);
  if (lut.defined()) lut = lut.to(d);
}

}  // namespace deploy
}  // namespace mnq
