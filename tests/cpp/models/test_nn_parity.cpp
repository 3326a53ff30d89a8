// Run by tests/python/test_nn_cpp_parity.py: the C++ twins of mnq.nn's modules, chained as the Python test
// chains them, reproduce its outputs and final buffers bit for bit. MNQ_NN_PARITY is the file it wrote,
// MNQ_NN_METHODS "layernorm,gelu,softmax".
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <sstream>

#include "csrc/models/weights.h"
#include "csrc/nn/layers.h"
#include "csrc/nn/nonlinear.h"
#include "csrc/nn/quant.h"

using namespace mnq::nn;

namespace {

constexpr int64_t kC = 12, kH = 20;

// The Python test's ModuleDict, same names.
struct Chain : torch::nn::Module {
  Chain(const std::string& ln_m, const std::string& gelu_m, const std::string& sm_m) : gelu_method(gelu_m) {
    const int64_t res_bits = ln_m == "ibert" ? 22 : 16;
    act_in = register_module("act_in", QuantAct(res_bits));
    ln = register_module("ln", IntLayerNorm(kC, ln_m));
    act_ln = register_module("act_ln", QuantAct(8));
    fc1 = register_module("fc1", QuantLinear(kC, kH));
    act_fc1 = register_module("act_fc1", QuantAct(8));
    gelu = register_module("gelu", IntGELU(gelu_m));
    act_gelu = register_module("act_gelu", QuantAct(8));
    fc2 = register_module("fc2", QuantLinear(kH, kC));
    act_fc2 = register_module("act_fc2", QuantAct(16));
    act_res = register_module("act_res", QuantAct(res_bits));
    act_sm = register_module("act_sm", QuantAct(8));
    sm = register_module("sm", IntSoftmax(sm_m));
  }

  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& x) {
    auto [x16, s16] = act_in(x);
    auto [y, s] = ln(x16, s16, act_ln->scale());
    std::tie(y, s) = act_ln(y, s);
    auto [h, sh] = fc1(y, s);
    if (gelu_method != "ibert") std::tie(h, sh) = act_fc1(h, sh);
    std::tie(h, sh) = gelu(h, sh);
    std::tie(h, sh) = act_gelu(h, sh);
    std::tie(h, sh) = fc2(h, sh);
    std::tie(h, sh) = act_fc2(h, sh);
    auto [r, sr] = act_res(h, sh, x16, s16);
    auto [a, sa] = act_sm(at::matmul(y, y.transpose(-1, -2)), s * s);
    return {r, sr, sm(a, sa).first};
  }

  std::string gelu_method;
  QuantAct act_in{nullptr}, act_ln{nullptr}, act_fc1{nullptr}, act_gelu{nullptr}, act_fc2{nullptr}, act_res{nullptr},
      act_sm{nullptr};
  IntLayerNorm ln{nullptr};
  QuantLinear fc1{nullptr}, fc2{nullptr};
  IntGELU gelu{nullptr};
  IntSoftmax sm{nullptr};
};

}  // namespace

TEST_CASE("the C++ modules equal mnq.nn on a block-shaped chain", "[.][python]") {
  const char* file = std::getenv("MNQ_NN_PARITY");
  const char* methods = std::getenv("MNQ_NN_METHODS");
  REQUIRE(file != nullptr);
  REQUIRE(methods != nullptr);
  std::vector<std::string> m;
  std::stringstream ss(methods);
  for (std::string part; std::getline(ss, part, ',');) m.push_back(part);
  REQUIRE(m.size() == 3);

  std::map<std::string, at::Tensor> data;
  for (auto& [k, t] : mnq::models::read_safetensors(file)) data[k] = t;
  Chain chain(m[0], m[1], m[2]);
  {
    at::NoGradGuard no_grad;
    for (auto& item : chain.named_parameters()) item.value().copy_(data.at("init." + item.key()));
    for (auto& item : chain.named_buffers()) item.value().copy_(data.at("init." + item.key()));
  }
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    chain.train(step < 2);
    const std::string n = std::to_string(step);
    auto [r, sr, p] = chain.forward(data.at("x" + n));
    REQUIRE(at::equal(r, data.at("r" + n)));
    REQUIRE(at::equal(sr, data.at("sr" + n)));
    REQUIRE(at::equal(p, data.at("p" + n)));
  }
  for (const auto& item : chain.named_buffers()) {
    INFO("buffer " << item.key());
    REQUIRE(at::equal(item.value(), data.at("final." + item.key())));
  }
}
