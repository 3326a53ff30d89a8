// The integer transformer block (see int_blocks.h); the statements of csrc/models/qblocks.cpp and qswin.cpp on
// integer codes.
#include "csrc/deploy/int_blocks.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "csrc/ops.h"
#include "csrc/deploy/int_fused.h"
#include "csrc/deploy/int_matmul.h"
#include "csrc/models/swin.h"

namespace mnq {
namespace deploy {

// On the CPU the fused epilogue (int_fused.h), whose b ≤ 8-bit codes come as int8, ready for the next matmul.
at::Tensor requant(const Requant& r, const at::Tensor& q, Profile* prof) {
  ProfileScope scope(prof, "requant");
  if (q.is_cpu() && (q.scalar_type() == at::kInt || q.scalar_type() == at::kLong) && fusable(r)) {
    return requant_fused(q, at::Tensor(), r, codes_dtype(r));
  }
  return r(q);
}

at::Tensor requant_of(const Requant& r, const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& op,
                      Profile* prof) {
  if (x.is_cpu() && fusable(r)) return rows_then_requant(x, op, r, codes_dtype(r), prof);
  return requant(r, op(x), prof);
}

at::ScalarType codes_dtype(const Requant& r) { return r.bits <= 8 ? at::kChar : at::kInt; }

at::Tensor requant_add(const Requant& r, const at::Tensor& q, const at::Tensor& q_id, const Requant& id,
                       Profile* prof) {
  ProfileScope scope(prof, "requant");
  if (requant_add_fusable(q, q_id, r, id)) return requant_add_fused(q, q_id, r, id);
  return r.add(q, q_id, id);
}

// ---- IntPatchEmbed ----

at::Tensor IntPatchEmbed::patches(const at::Tensor& images, Profile* prof) const {
  TORCH_CHECK_VALUE(images.dim() == 4 && images.size(1) == in_chans && images.size(2) % patch == 0 &&
                        images.size(3) % patch == 0,
                    "integer model: expected images [B, ", in_chans, ", H, W] with H, W multiples of ", patch,
                    ", got shape ", images.sizes());
  at::Tensor q;
  {
    ProfileScope scope(prof, "quantize_input");
    // a CPU scale: the op reads it in place (on CUDA it then copies it to the device once per forward)
    const at::Tensor s = at::full({}, input_scale, at::kDouble);
    q = ops::quantize(images.to(at::kFloat), s, input_bits);
  }
  const int64_t B = images.size(0), Hp = images.size(2) / patch, Wp = images.size(3) / patch;
  ProfileScope scope(prof, "other");
  const at::Tensor p = q.to(at::kChar).view({B, in_chans, Hp, patch, Wp, patch}).permute({0, 2, 4, 1, 3, 5});
  return p.reshape({B * Hp * Wp, in_chans * patch * patch});
}

at::Tensor IntPatchEmbed::operator()(const at::Tensor& images, const Requant& act, Profile* prof) const {
  const int64_t B = images.size(0), Hp = images.size(2) / patch, Wp = images.size(3) / patch;
  return linear_act(proj, patches(images, prof), act, codes_dtype(act), prof).view({B, Hp, Wp, -1});
}

void IntPatchEmbed::write(Store& s) const {
  s.set("qact_input.scale", input_scale);
  s.set("qact_input.bits", input_bits);
  proj.write(s, "patch_embed.proj");
}

IntPatchEmbed IntPatchEmbed::read(const Store& s, int64_t in_chans, int64_t patch, int64_t dim) {
  IntPatchEmbed e;
  e.input_scale = s.number("qact_input.scale");
  e.input_bits = s.integer("qact_input.bits");
  if (e.input_bits < 2 || e.input_bits > 8) throw std::invalid_argument("integer model: value 'qact_input.bits' must be in [2, 8]");
  e.patch = patch;
  e.in_chans = in_chans;
  e.proj = IntLinear::read(s, "patch_embed.proj", in_chans * patch * patch, dim, true);
  return e;
}

// ---- IntNormAct ----

at::Tensor IntNormAct::operator()(const at::Tensor& x, Profile* prof) const {
  return requant_of(act, x, [&](const at::Tensor& t) { return norm(t, prof); }, prof);
}

void IntNormAct::write(Store& s, const std::string& norm_name, const std::string& act_name) const {
  norm.write(s, norm_name);
  act.write(s, act_name);
}

IntNormAct IntNormAct::read(const Store& s, const std::string& norm_name, const std::string& act_name,
                            int64_t channels) {
  return IntNormAct{IntNorm::read(s, norm_name, channels), Requant::read(s, act_name, channels)};
}

void IntNormAct::to(at::Device d) {
  norm.to(d);
  act.to(d);
}

// ---- IntAttention ----

at::Tensor IntAttention::operator()(const at::Tensor& x, const BlockShape& shape, Profile* prof,
                                    const Residual* res) const {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), H = shape.heads, hd = C / H;
  at::Tensor h = linear_act(qkv, x, qkv_act, codes_dtype(qkv_act), prof);
  at::Tensor fused;
  if (attention_core(*this, h, H, fused, prof)) {
    return linear_act(proj, fused, proj_act, codes_dtype(proj_act), prof, res);
  }
  at::Tensor q, k, v;
  {
    ProfileScope scope(prof, "attn_matmul");
    const auto parts = h.to(at::kChar).view({B, N, 3, H, hd}).permute({2, 0, 1, 3, 4}).unbind(0);
    q = parts[0].transpose(1, 2).reshape({B * H, N, hd});
    k = parts[1].transpose(1, 2).reshape({B * H, N, hd});
    v = parts[2].transpose(1, 2).reshape({B * H, N, hd});
  }
  at::Tensor a;
  {
    ProfileScope scope(prof, "attn_matmul");
    a = int_bmm(q, IntRange::bits(bits), k.transpose(1, 2)).view({B, H, N, N});
  }
  if (bias_codes.defined()) {
    a = requant_add(scores_act, a, bias_codes.expand_as(a), bias_act, prof);
  } else {
    a = requant(scores_act, a, prof);
  }
  if (mask_codes.defined()) {
    const int64_t nw = mask_codes.size(0);
    a = (a.view({-1, nw, H, N, N}) + mask_codes.unsqueeze(1).unsqueeze(0)).view({B, H, N, N});
  }
  a = softmax(a, prof);
  at::Tensor o;
  {
    ProfileScope scope(prof, "attn_matmul");
    o = int_bmm(a.view({B * H, N, N}), softmax.out_range(), v).view({B, H, N, hd}).transpose(1, 2).reshape({B, N, C});
  }
  o = requant(av_act, o, prof);
  return linear_act(proj, o, proj_act, codes_dtype(proj_act), prof, res);
}

void IntAttention::write(Store& s, const std::string& n) const {
  qkv.write(s, n + ".qkv");
  qkv_act.write(s, n + ".qact_qkv");
  scores_act.write(s, n + ".qact_scores");
  softmax.write(s, n + ".softmax");
  av_act.write(s, n + ".qact_av");
  proj.write(s, n + ".proj");
  proj_act.write(s, n + ".qact_proj");
  s.set(n + ".bits", bits);
  if (bias_codes.defined()) {
    bias_act.write(s, n + ".qact_bias");
    s.put_narrowed(n + ".qact_bias.codes", bias_codes, at::kShort);  // codes of the 16-bit qact_bias (qswin.cpp)
  }
  if (mask_codes.defined()) s.put(n + ".mask_codes", mask_codes);
}

IntAttention IntAttention::read(const Store& s, const std::string& n, const BlockShape& shape) {
  const int64_t C = shape.dim;
  IntAttention a;
  a.qkv = IntLinear::read(s, n + ".qkv", C, 3 * C, true);
  a.qkv_act = Requant::read(s, n + ".qact_qkv", 3 * C);
  a.scores_act = Requant::read(s, n + ".qact_scores", 1);
  a.softmax = IntSoftmax::read(s, n + ".softmax");
  a.av_act = Requant::read(s, n + ".qact_av", 1);
  a.proj = IntLinear::read(s, n + ".proj", C, C, true);
  a.proj_act = Requant::read(s, n + ".qact_proj", C);
  a.bits = s.integer(n + ".bits");
  if (a.bits < 2 || a.bits > 8) throw std::invalid_argument("integer model: value '" + n + ".bits' must be in [2, 8]");
  if (shape.window > 0) {
    const int64_t w2 = shape.window * shape.window;
    a.bias_act = Requant::read(s, n + ".qact_bias", 1);
    a.bias_codes = s.narrowed(n + ".qact_bias.codes", at::kInt, at::kShort, {1, shape.heads, w2, w2});
    if (shape.shift > 0) a.mask_codes = s.tensor(n + ".mask_codes", at::kInt, {shape.num_windows(), w2, w2});
  }
  return a;
}

void IntAttention::to(at::Device d) {
  qkv.to(d);
  proj.to(d);
  for (Requant* r : {&qkv_act, &scores_act, &av_act, &proj_act}) r->to(d);
  if (bias_codes.defined()) {
    bias_act.to(d);
    bias_codes = bias_codes.to(d);
  }
  if (mask_codes.defined()) mask_codes = mask_codes.to(d);
}

// ---- IntMlp ----

at::Tensor IntMlp::operator()(const at::Tensor& x, Profile* prof, const Residual* res) const {
  at::Tensor h = fc1_act ? linear_act(fc1, x, *fc1_act, codes_dtype(*fc1_act), prof) : fc1(x, prof);
  if (gelu.table.defined() && h.is_cpu() && h.scalar_type() == at::kChar && fusable(gelu_act)) {
    h = gelu_table_act(gelu.table, h, gelu_act, codes_dtype(gelu_act), prof);
  } else if (gelu.method == "fqvit") {
    h = gelu(h, prof);
  } else {
    h = requant_of(gelu_act, h, [&](const at::Tensor& t) { return gelu(t, prof); }, prof);
  }
  return linear_act(fc2, h, fc2_act, codes_dtype(fc2_act), prof, res);
}

void IntMlp::write(Store& s, const std::string& n) const {
  fc1.write(s, n + ".fc1");
  if (fc1_act) fc1_act->write(s, n + ".qact_fc1");
  gelu.write(s, n + ".gelu");
  if (gelu.method != "fqvit") gelu_act.write(s, n + ".qact_gelu");
  fc2.write(s, n + ".fc2");
  fc2_act.write(s, n + ".qact_fc2");
}

IntMlp IntMlp::read(const Store& s, const std::string& n, const BlockShape& shape) {
  IntMlp m;
  m.fc1 = IntLinear::read(s, n + ".fc1", shape.dim, shape.hidden, true);
  m.gelu = IntGelu::read(s, n + ".gelu", shape.hidden);
  if (m.gelu.method != "ibert") m.fc1_act = Requant::read(s, n + ".qact_fc1", shape.hidden);
  if (m.gelu.method != "fqvit") m.gelu_act = Requant::read(s, n + ".qact_gelu", shape.hidden);
  m.fc2 = IntLinear::read(s, n + ".fc2", shape.hidden, shape.dim, true);
  m.fc2_act = Requant::read(s, n + ".qact_fc2", shape.dim);
  return m;
}

void IntMlp::to(at::Device d) {
  fc1.to(d);
  fc2.to(d);
  if (fc1_act) fc1_act->to(d);
  gelu.to(d);
  if (gelu_act.m.defined()) gelu_act.to(d);
  fc2_act.to(d);
}

// ---- IntBlock ----

at::Tensor IntBlock::operator()(const at::Tensor& x, Profile* prof) const {
  at::Tensor h = requant_of(norm1_act, x, [&](const at::Tensor& t) { return norm1(t, prof); }, prof);
  at::Tensor x2;
  if (shape.window > 0) {
    const int64_t H = x.size(1), W = x.size(2), sh = shape.shift, w = shape.window;
    {
      ProfileScope scope(prof, "other");
      if (sh > 0) h = at::roll(h, {-sh, -sh}, {1, 2});
      h = models::window_partition(h, w);
    }
    h = attn(h, shape, prof);
    {
      ProfileScope scope(prof, "other");
      h = models::window_reverse(h, w, H, W);
      if (sh > 0) h = at::roll(h, {sh, sh}, {1, 2});
    }
    x2 = requant_add(res1, h, x, res1_id, prof);
  } else {
    const Residual r1{res1, res1_id, x};
    x2 = attn(h, shape, prof, &r1);
  }
  h = requant_of(norm2_act, x2, [&](const at::Tensor& t) { return norm2(t, prof); }, prof);
  const Residual r2{res2, res2_id, x2};
  return mlp(h, prof, &r2);
}

void IntBlock::write(Store& s, const std::string& n) const {
  norm1.write(s, n + ".norm1");
  norm1_act.write(s, n + ".qact_norm1");
  attn.write(s, n + ".attn");
  res1.write(s, n + ".qact_res1");
  res1_id.write(s, n + ".qact_res1.identity");
  norm2.write(s, n + ".norm2");
  norm2_act.write(s, n + ".qact_norm2");
  mlp.write(s, n + ".mlp");
  res2.write(s, n + ".qact_res2");
  res2_id.write(s, n + ".qact_res2.identity");
}

IntBlock IntBlock::read(const Store& s, const std::string& n, const BlockShape& shape) {
  IntBlock b;
  b.shape = shape;
  b.norm1 = IntNorm::read(s, n + ".norm1", shape.dim);
  b.norm1_act = Requant::read(s, n + ".qact_norm1", b.norm1.method == "fqvit" ? 1 : shape.dim);
  b.attn = IntAttention::read(s, n + ".attn", shape);
  b.res1 = Requant::read(s, n + ".qact_res1", 1);
  b.res1_id = Requant::read(s, n + ".qact_res1.identity", 1);
  b.norm2 = IntNorm::read(s, n + ".norm2", shape.dim);
  b.norm2_act = Requant::read(s, n + ".qact_norm2", b.norm2.method == "fqvit" ? 1 : shape.dim);
  b.mlp = IntMlp::read(s, n + ".mlp", shape);
  b.res2 = Requant::read(s, n + ".qact_res2", 1);
  b.res2_id = Requant::read(s, n + ".qact_res2.identity", 1);
  return b;
}

void IntBlock::to(at::Device d) {
  norm1.to(d);
  norm2.to(d);
  norm1_act.to(d);
  norm2_act.to(d);
  attn.to(d);
  mlp.to(d);
  for (Requant* r : {&res1, &res1_id, &res2, &res2_id}) r->to(d);
}

}  // namespace deploy
}  // namespace mnq
