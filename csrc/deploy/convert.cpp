// convert: a calibrated fake-quant model (csrc/models) → the Store of its integer model. Every constant is taken
// from the fake-quant modules exactly as their forward computes it (weight scales, bias codes, the float64 scale
// products S_a·S_w, (S_qkv·S_qkv)·d^−½, S_p·S_qkv), so each Requant's (m, k) is the dyadic(S_in/S_out) that the
// fake-quant requant_qat derives for the same pair, and the integer ops run with the same scales.
#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>

#include "csrc/ops.h"
#include "csrc/deploy/int_blocks.h"
#include "csrc/deploy/integer_model.h"
#include "csrc/models/factory.h"
#include "csrc/models/qswin.h"
#include "csrc/models/qvit.h"
#include "csrc/nn/weight_scale.h"

namespace mnq {
namespace deploy {
namespace {

using T = at::Tensor;

[[noreturn]] void convert_fail(const std::string& msg) { throw std::invalid_argument("deploy.convert: " + msg); }

// The modules of a model by their state_dict prefix.
class Modules {
 public:
  explicit Modules(const torch::nn::Module& root) {
    for (const auto& item : root.named_modules("", false)) by_name_[item.key()] = item.value();
  }
  template <class M>
  M& get(const std::string& name) const {
    const auto it = by_name_.find(name);
    if (it == by_name_.end()) convert_fail("the model has no module '" + name + "'");
    M* m = it->second->as<M>();
    if (m == nullptr) convert_fail("module '" + name + "' is not of the expected type");
    return *m;
  }
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }

 private:
  std::map<std::string, std::shared_ptr<torch::nn::Module>> by_name_;
};

double value(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble).reshape({}).item<double>(); }

// A calibrated QuantAct's scale and bits.
struct Act {
  double scale;
  int64_t bits;
};
Act act(const Modules& mods, const std::string& name) {
  auto& a = mods.get<nn::QuantActImpl>(name);
  if (!a.is_initialized()) convert_fail("quantizer '" + name + "' has no calibrated range (calibrate the model first)");
  return {value(a.scale()), a.bits()};
}

at::Tensor scalar(double v) { return at::full({}, v, at::kDouble); }

T quantize(const T& x, const T& scale, int64_t bits, int64_t axis) {
  return ops::quantize(x.detach().to(at::kCPU, at::kFloat), scale, bits, axis);
}

// A QuantLinear / QuantConv2d on input scale s_a: int8 weight codes, int32 bias codes and S_a·S_w, computed as
// csrc/nn/layers.cpp fake_quant_params does.
std::pair<IntLinear, at::Tensor> linear(const at::Tensor& weight, const at::Tensor& bias, int64_t bits, double s_a,
                                        int64_t in_bits) {
  if (bits > 8) convert_fail("weights of " + std::to_string(bits) + " bits: the integer engine takes W/A ≤ 8");
  const at::Tensor w = weight.detach().to(at::kCPU);
  const at::Tensor s_w = nn::weight_scale(w, bits);
  const at::Tensor scale_out = scalar(s_a) * s_w;
  IntLinear l;
  l.weight = quantize(w, s_w, bits, 0).reshape({w.size(0), -1}).to(at::kChar);
  if (bias.defined()) l.bias = quantize(bias, scale_out, 32, -1);
  l.in_bits = in_bits;
  return {l, scale_out};
}

std::pair<IntLinear, at::Tensor> linear(const Modules& mods, const std::string& name, double s_a, int64_t in_bits) {
  auto& m = mods.get<nn::QuantLinearImpl>(name);
  return linear(m.weight, m.bias, m.bits(), s_a, in_bits);
}

// A LayerNorm reading the stream on s_x and followed by the quantizer `act_name`: the integer op's constants and
// its output scale (probed from the integer op itself on one row, so it is the op's own formula).
IntNormAct norm_act(const Modules& mods, const std::string& norm_name, const std::string& act_name, double s_x) {
  auto& ln = mods.get<nn::IntLayerNormImpl>(norm_name);
  const Act a = act(mods, act_name);
  IntNorm n;
  n.method = ln.method();
  n.gamma = ln.weight.detach().to(at::kCPU, at::kFloat).contiguous();
  n.beta = ln.bias.detach().to(at::kCPU, at::kFloat).contiguous();
  const int64_t C = n.gamma.numel();
  at::Tensor s_out;
  const at::Tensor probe = at::zeros({1, C}, at::kInt);
  if (n.method == "fqvit") {
    const auto& ptf = *ln.ptf;
    if (!ptf.is_initialized()) convert_fail("quantizer '" + norm_name + ".ptf' has no calibrated range");
    n.s_base = value(ptf.s_base());
    n.alpha = ptf.alpha().detach().to(at::kCPU, at::kLong).contiguous();
    at::Tensor s_c = at::empty({C}, at::kDouble);
    for (int64_t c = 0; c < C; ++c) {
      s_c.data_ptr<double>()[c] = std::ldexp(n.s_base, static_cast<int>(n.alpha.data_ptr<int64_t>()[c]));
    }
    // PtfAct on the stream: round(q·S_x / S_c) per channel, here the dyadic requant by S_x / S_c.
    n.to_ptf = Requant::of(scalar(s_x).expand({C}) / s_c, 1.0, ptf.bits());
    n.scale_next = a.scale;
    s_out = scalar(a.scale);
  } else {
    n.scale_in = s_x;
    s_out = std::get<1>(n.method == "ivit" ? ops::ilayernorm(probe, s_x, n.gamma, n.beta)
                                           : ops::ibert_layernorm(probe, s_x, n.gamma, n.beta));
  }
  return IntNormAct{n, Requant::of(s_out, a.scale, a.bits)};
}

// The softmax output width the model built (qblocks.cpp: ivit softmax_out_bits, ibert 16, fqvit 4-bit log codes),
// checked against the scale the fake-quant op returns.
IntSoftmax softmax(const Modules& mods, const std::string& name, double s_scores, int64_t ivit_bits) {
  auto& sm = mods.get<nn::IntSoftmaxImpl>(name);
  IntSoftmax out{sm.method(), s_scores, sm.method() == "ivit" ? ivit_bits : (sm.method() == "ibert" ? 16 : 4)};
  const auto probe = sm.forward(at::zeros({1, 1}), scalar(s_scores));
  if (value(probe.second) != out.out_scale()) convert_fail("softmax '" + name + "' has an unexpected output scale");
  return out;
}

struct BlockConversion {
  IntBlock block;
  double s_out;  // the stream's scale after the block
};

// One transformer block (prefix p, e.g. "blocks.3") reading the stream on s_x.
BlockConversion block(const Modules& mods, const std::string& p, double s_x, int64_t ivit_softmax_bits,
                      const BlockShape& shape) {
  IntBlock b;
  b.shape = shape;
  const Act n1 = act(mods, p + ".qact_norm1"), qkv = act(mods, p + ".attn.qact_qkv"),
            sc = act(mods, p + ".attn.qact_scores"), av = act(mods, p + ".attn.qact_av"),
            pr = act(mods, p + ".attn.qact_proj"), r1 = act(mods, p + ".qact_res1"), n2 = act(mods, p + ".qact_norm2"),
            g = act(mods, p + ".mlp.qact_gelu"), f2 = act(mods, p + ".mlp.qact_fc2"), r2 = act(mods, p + ".qact_res2");
  IntNormAct na1 = norm_act(mods, p + ".norm1", p + ".qact_norm1", s_x);
  b.norm1 = na1.norm;
  b.norm1_act = na1.act;
  // attention
  IntAttention& at_ = b.attn;
  at::Tensor s;
  std::tie(at_.qkv, s) = linear(mods, p + ".attn.qkv", n1.scale, n1.bits);
  at_.qkv_act = Requant::of(s, qkv.scale, qkv.bits);
  at_.bits = qkv.bits;
  const double d_scale = std::pow(static_cast<double>(shape.dim / shape.heads), -0.5);
  const double s_scores_in = (qkv.scale * qkv.scale) * d_scale;
  at_.scores_act = Requant::of(scalar(s_scores_in), sc.scale, sc.bits);
  if (shape.window > 0) {
    auto& wa = mods.get<models::QuantWindowAttentionImpl>(p + ".attn");
    const Act qb = act(mods, p + ".attn.qact_bias");
    const models::SwinWindow w(shape.resolution, shape.window, shape.shift);
    const int64_t n = w.relative_position_index.size(0);
    const at::Tensor table = wa.relative_position_bias_table.detach().to(at::kCPU);
    const at::Tensor bias = table.index({w.relative_position_index.view(-1)}).view({n, n, -1});
    at_.bias_codes = quantize(bias.permute({2, 0, 1}).unsqueeze(0).contiguous(), scalar(qb.scale), qb.bits, -1);
    at_.bias_act = Requant::of(scalar(qb.scale), sc.scale, sc.bits);
    if (w.mask.defined()) {  // qswin.cpp: round(mask / step), step = the scores' scale as float32
      const at::Tensor step = scalar(sc.scale).to(at::kFloat);
      at_.mask_codes = at::round(w.mask / step).to(at::kInt);
    }
  }
  at_.softmax = softmax(mods, p + ".attn.softmax", sc.scale, ivit_softmax_bits);
  at_.av_act = Requant::of(scalar(at_.softmax.out_scale() * qkv.scale), av.scale, av.bits);
  std::tie(at_.proj, s) = linear(mods, p + ".attn.proj", av.scale, av.bits);
  at_.proj_act = Requant::of(s, pr.scale, pr.bits);
  b.res1 = Requant::of(scalar(pr.scale), r1.scale, r1.bits);
  b.res1_id = Requant::of(scalar(s_x), r1.scale, r1.bits);
  // MLP
  IntNormAct na2 = norm_act(mods, p + ".norm2", p + ".qact_norm2", r1.scale);
  b.norm2 = na2.norm;
  b.norm2_act = na2.act;
  IntMlp& m = b.mlp;
  std::tie(m.fc1, s) = linear(mods, p + ".mlp.fc1", n2.scale, n2.bits);
  const std::string gm = mods.get<nn::IntGELUImpl>(p + ".mlp.gelu").method();
  at::Tensor s_gelu;
  if (gm == "ivit") {
    const Act f1 = act(mods, p + ".mlp.qact_fc1");
    m.fc1_act = Requant::of(s, f1.scale, f1.bits);
    m.gelu = IntGelu{"ivit", f1.scale, at::Tensor(), at::Tensor(), at::Tensor()};  // table: at read
    s_gelu = scalar(std::get<1>(ops::shift_gelu(at::zeros({1, 1}, at::kInt), f1.scale, 8, 23)));
  } else if (gm == "ibert") {
    m.gelu = IntGelu{"ibert", 0, s.contiguous(), at::Tensor(), at::Tensor()};
    s_gelu = std::get<1>(ops::ibert_gelu(at::zeros({1, s.numel()}, at::kInt), m.gelu.channel_scale));
  } else {  // fqvit: the float GELU on the b-bit codes of qact_fc1, tabulated (int_layers.h IntGelu)
    const Act f1 = act(mods, p + ".mlp.qact_fc1");
    m.fc1_act = Requant::of(s, f1.scale, f1.bits);
    const int64_t half = int64_t(1) << (f1.bits - 1);
    // the fake-quant codes' values, float32(q·S) as kernels/quant.h FakeOut stores them, through at::gelu
    const at::Tensor x = (at::arange(-half, half, at::kDouble) * f1.scale).to(at::kFloat);
    m.gelu = IntGelu{"fqvit", 0, at::Tensor(), quantize(at::gelu(x), scalar(g.scale), g.bits, -1), at::Tensor()};
  }
  if (gm != "fqvit") m.gelu_act = Requant::of(s_gelu, g.scale, g.bits);
  std::tie(m.fc2, s) = linear(mods, p + ".mlp.fc2", g.scale, g.bits);
  m.fc2_act = Requant::of(s, f2.scale, f2.bits);
  b.res2 = Requant::of(scalar(f2.scale), r2.scale, r2.bits);
  b.res2_id = Requant::of(scalar(r1.scale), r2.scale, r2.bits);
  return {b, r2.scale};
}

void check_model(const models::Model& model) {
  if (!model.quantized) convert_fail("the model is full precision; convert takes a quantized model (mnq.models.create with bits)");
  if (model.module->is_training()) convert_fail("the model is in training mode; calibrate it and call eval() first");
  if (model.bits > 8) convert_fail("W/A = " + std::to_string(model.bits) + ": the integer engine takes W/A ≤ 8 (int8 weights)");
}

void header(Store& st, const models::Model& model, const std::string& family, json config) {
  st.set("family", family);
  st.set("preset", model.preset);
  st.set("config", std::move(config));
  st.set("plan", json(model.methods));
  st.set("bits", model.bits);
}

IntPatchEmbed patch_embed(const Modules& mods, int64_t patch) {
  const Act in = act(mods, "qact_input");
  auto& conv = mods.get<nn::QuantConv2dImpl>("patch_embed.proj");
  IntPatchEmbed e;
  e.input_scale = in.scale;
  e.input_bits = in.bits;
  e.patch = patch;
  e.in_chans = conv.weight.size(1);
  std::tie(e.proj, std::ignore) = linear(conv.weight, conv.bias, conv.bits(), in.scale, in.bits);
  return e;
}

at::Tensor conv_scale(const Modules& mods) {
  auto& conv = mods.get<nn::QuantConv2dImpl>("patch_embed.proj");
  return scalar(act(mods, "qact_input").scale) * nn::weight_scale(conv.weight.detach().to(at::kCPU), conv.bits());
}

void write_head(Store& st, const Modules& mods, const std::string& name, double s_a, int64_t a_bits) {
  auto [l, s] = linear(mods, name, s_a, a_bits);
  l.write(st, name);
  st.put(name + ".scale", s);
}

Store convert_vit(const models::Model& model) {
  auto& net = *std::dynamic_pointer_cast<models::QuantVisionTransformerImpl>(model.module);
  const models::ViTConfig& c = net.config();
  const Modules mods(*model.module);
  Store st;
  header(st, model, "vit", json{{"name", c.name}, {"img_size", c.img_size}, {"patch_size", c.patch_size},
                                {"in_chans", c.in_chans}, {"num_classes", c.num_classes},
                                {"embed_dim", c.embed_dim}, {"depth", c.depth}, {"num_heads", c.num_heads},
                                {"mlp_hidden", c.mlp_hidden}, {"distilled", c.distilled}});
  patch_embed(mods, c.patch_size).write(st);
  const Act e = act(mods, "qact_embed"), pos = act(mods, "qact_pos"), pa = act(mods, "qact_pos_add");
  Requant::of(conv_scale(mods), e.scale, e.bits).write(st, "qact_embed");
  at::Tensor prefix = net.cls_token;
  if (c.distilled) prefix = at::cat({net.cls_token, net.dist_token}, 1);
  // 16-bit QuantActs (qvit.cpp): their codes are stored as int16 (store.h; a wider QuantAct fails here, naming it)
  st.put_narrowed("qact_embed.prefix_codes", quantize(prefix, scalar(e.scale), e.bits, -1), at::kShort);
  st.put_narrowed("qact_pos.codes", quantize(net.pos_embed, scalar(pos.scale), pos.bits, -1), at::kShort);
  Requant::of(scalar(e.scale), pa.scale, pa.bits).write(st, "qact_pos_add");
  Requant::of(scalar(pos.scale), pa.scale, pa.bits).write(st, "qact_pos_add.identity");
  double s_x = pa.scale;
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i);
    BlockConversion bc = block(mods, p, s_x, 16, BlockShape{c.embed_dim, c.num_heads, c.mlp_hidden});
    bc.block.write(st, p);
    s_x = bc.s_out;
  }
  norm_act(mods, "norm", "qact_norm", s_x).write(st, "norm", "qact_norm");
  const Act qn = act(mods, "qact_norm");
  write_head(st, mods, "head", qn.scale, qn.bits);
  if (c.distilled) write_head(st, mods, "head_dist", qn.scale, qn.bits);
  return st;
}

Store convert_swin(const models::Model& model) {
  auto& net = *std::dynamic_pointer_cast<models::QuantSwinTransformerImpl>(model.module);
  const models::SwinConfig& c = net.config();
  const Modules mods(*model.module);
  Store st;
  header(st, model, "swin", json{{"name", c.name}, {"img_size", c.img_size}, {"patch_size", c.patch_size},
                                 {"in_chans", c.in_chans}, {"num_classes", c.num_classes},
                                 {"embed_dim", c.embed_dim}, {"depths", c.depths}, {"num_heads", c.num_heads},
                                 {"window_size", c.window_size}});
  patch_embed(mods, c.patch_size).write(st);
  const Act e = act(mods, "qact_embed");
  Requant::of(conv_scale(mods), e.scale, e.bits).write(st, "qact_embed");
  norm_act(mods, "patch_embed.norm", "qact_patch_norm", e.scale).write(st, "patch_embed.norm", "qact_patch_norm");
  double s_x = act(mods, "qact_patch_norm").scale;
  int64_t res = c.img_size / c.patch_size, dim = c.embed_dim;
  for (size_t stg = 0; stg < c.depths.size(); ++stg) {
    const std::string l = "layers." + std::to_string(stg) + ".";
    if (stg > 0) {
      const std::string d = l + "downsample";
      norm_act(mods, d + ".norm", d + ".qact_norm", s_x).write(st, d + ".norm", d + ".qact_norm");
      const Act qn = act(mods, d + ".qact_norm"), out = act(mods, d + ".qact_out");
      auto [red, s] = linear(mods, d + ".reduction", qn.scale, qn.bits);
      red.write(st, d + ".reduction");
      Requant::of(s, out.scale, out.bits).write(st, d + ".qact_out");
      s_x = out.scale;
      res /= 2;
      dim *= 2;
    }
    for (int64_t i = 0; i < c.depths[stg]; ++i) {
      const models::SwinWindow w(res, c.window_size, i % 2 == 0 ? 0 : c.window_size / 2);
      const std::string p = l + "blocks." + std::to_string(i);
      BlockConversion bc = block(mods, p, s_x, 8, BlockShape{dim, c.num_heads[stg], 4 * dim, w.window, w.shift, res});
      bc.block.write(st, p);
      s_x = bc.s_out;
    }
  }
  norm_act(mods, "norm", "qact_norm", s_x).write(st, "norm", "qact_norm");
  const Act qn = act(mods, "qact_norm"), pool = act(mods, "qact_pool");
  // qact_pool quantizes the token mean Σq·S/(H·W): one multiplier for S/(H·W) → S_pool on the sum of codes.
  Requant::of(scalar(qn.scale / static_cast<double>(res * res)), pool.scale, pool.bits).write(st, "qact_pool");
  write_head(st, mods, "head.fc", pool.scale, pool.bits);
  return st;
}

}  // namespace

IntegerModel convert(const models::Model& model) {
  check_model(model);
  at::NoGradGuard no_grad;
  Store st = model.family == models::Family::kViT ? convert_vit(model) : convert_swin(model);
  return IntegerModel::from_store(std::move(st));
}

}  // namespace deploy
}  // namespace mnq
