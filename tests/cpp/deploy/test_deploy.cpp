// The deploy library: exact integer matmuls (digit split), a converted model equal to its fake-quant model on
// random images (integer logits), the file round trip and its error messages. The Fashion-MNIST equality sweep
// over methods and bit widths is tests/python/test_deploy.py.
#include <ATen/ATen.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "csrc/deploy/int_matmul.h"
#include "csrc/deploy/integer_model.h"
#include "csrc/models/factory.h"

using namespace mnq;
namespace fs = std::filesystem;

namespace {

fs::path temp_file(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("mnq_deploy_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

models::Model calibrated(const std::string& preset, int64_t bits, const models::Plan& plan, const at::Tensor& x) {
  at::manual_seed(0);
  models::Model m = models::create_quant(preset, models::QuantOptions{bits, plan});
  at::NoGradGuard no_grad;
  m.module->train();
  for (int i = 0; i < 2; ++i) m.forward(x);
  m.freeze_alpha();
  m.module->eval();
  return m;
}

}  // namespace

TEST_CASE("int_bmm is exact for wide left operands (signed base-256 digits)", "[deploy]") {
  at::manual_seed(1);
  for (int64_t a_max : {int64_t(127), int64_t(128), int64_t(32767), int64_t(65536), int64_t(1) << 20}) {
    const at::Tensor a = at::randint(-a_max, a_max + 1, {3, 17, 33}, at::kInt);
    const at::Tensor b = at::randint(-128, 128, {3, 33, 5}, at::kChar);
    const at::Tensor want = at::matmul(a.to(at::kLong), b.to(at::kLong));
    const at::Tensor got = deploy::int_bmm(a, deploy::IntRange{-a_max, a_max}, b);
    CHECK(at::equal(got.to(at::kLong), want));
  }
  CHECK(deploy::digits_for(deploy::IntRange::bits(8)) == 1);
  CHECK(deploy::digits_for({0, 128}) == 2);
  CHECK(deploy::digits_for({0, 32639}) == 2);
  CHECK(deploy::digits_for({0, 32768}) == 3);
  CHECK(deploy::digits_for({-32896, 0}) == 2);
}

// The CUDA path's products, run on the CPU: the float64 bmm is exact up to K·max|a|·128 < 2^53 and keeps the CPU
// path's accumulator dtype; _int_mm's CUDA shape rules as at::_int_mm_out_cuda checks them (torch 2.x Blas.cpp).
TEST_CASE("the device path of int_bmm is exact and _int_mm's CUDA shape rules hold", "[deploy]") {
  at::manual_seed(2);
  for (int64_t a_max : {int64_t(127), int64_t(32767), int64_t(1) << 16, int64_t(1) << 30}) {
    const at::Tensor a = at::randint(-a_max, a_max + 1, {4, 19, 50}, at::kInt);
    const at::Tensor b = at::randint(-128, 128, {4, 50, 9}, at::kChar);
    const deploy::IntRange r{-a_max, a_max};
    const at::Tensor got = deploy::int_bmm_f64(a, r, b);
    CHECK(at::equal(got.to(at::kLong), at::matmul(a.to(at::kLong), b.to(at::kLong))));
    CHECK(got.scalar_type() == deploy::int_bmm(a, r, b).scalar_type());
  }
  const at::Tensor a = at::ones({2, 3, int64_t(1) << 20}, at::kInt);
  const at::Tensor b = at::ones({2, int64_t(1) << 20, 2}, at::kChar);
  CHECK_THROWS_WITH(deploy::int_bmm_f64(a, deploy::IntRange{0, int64_t(1) << 30}, b), Catch::Contains("2^53"));
  CHECK(deploy::int_mm_shapes_ok(17, 8, 8));
  CHECK_FALSE(deploy::int_mm_shapes_ok(16, 64, 64));  // M = 16: cuBLASLt's int8 GEMM needs M > 16
  CHECK_FALSE(deploy::int_mm_shapes_ok(256, 4, 64));  // Swin's patch embedding (K = 1·2·2)
  CHECK_FALSE(deploy::int_mm_shapes_ok(256, 64, 10));  // a head of 10 classes
}

TEST_CASE("a converted ViT computes the fake-quant model's integer logits and reloads bit-exactly", "[deploy]") {
  const at::Tensor x = at::randn({16, 1, 28, 28});
  const models::Model m = calibrated("vit_mnist_tiny", 8, models::Plan::uniform("ivit"), x);
  deploy::IntegerModel im = deploy::convert(m);
  const at::Tensor probe = at::randn({24, 1, 28, 28});
  auto [q, s] = im.forward_int(probe);
  at::Tensor ref;
  {
    at::NoGradGuard no_grad;
    ref = at::round(m.forward(probe).to(at::kDouble) / s).to(at::kLong);
  }
  const double equal = (q.to(at::kLong) == ref).to(at::kDouble).mean().item<double>();
  CHECK(equal >= 0.9);  // per-image bound of tests/python/test_deploy.py (fake-quant float32, README "Deploy")
  const fs::path path = temp_file("vit.safetensors");
  im.save(path.string());
  const deploy::IntegerModel back = deploy::load_integer_model(path.string());
  auto [q2, s2] = back.forward_int(probe);
  CHECK(at::equal(q, q2));
  CHECK(at::equal(s, s2));
  CHECK_THROWS_WITH(deploy::load_integer_model((path.string() + ".absent")),
                    Catch::Contains("cannot open it for reading"));
  std::ofstream(temp_file("short.safetensors"), std::ios::binary) << "abc";
  CHECK_THROWS_WITH(deploy::load_integer_model(temp_file("short.safetensors").string()),
                    Catch::Contains("truncated"));
}

TEST_CASE("convert rejects full-precision and training-mode models", "[deploy]") {
  models::Model fp = models::create_fp("vit_mnist_tiny");
  fp.module->eval();
  CHECK_THROWS_WITH(deploy::convert(fp), Catch::Contains("full precision"));
  models::Model q = models::create_quant("vit_mnist_tiny", models::QuantOptions{});
  CHECK_THROWS_WITH(deploy::convert(q), Catch::Contains("training mode"));
}
