// The device helpers of the model library (models/device.h, op_counter.h) and what they are for: pinned staging
// only for a CUDA target, full FP32 pinned from any starting precision setting, host reads counted (so tests can
// show a path reads nothing back), drop-path drawing its masks without a read, and Swin's window tensors copied to
// a device once rather than on every forward (the cache shown on the meta device, which needs no GPU; the model on
// a GPU where there is one).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/version.h>

#include <catch2/catch.hpp>

#include "csrc/models/device.h"
#include "csrc/models/drop_path.h"
#include "csrc/models/op_counter.h"
#include "csrc/models/swin.h"

using namespace mnq::models;

TEST_CASE("device: host staging is pinned only for a CUDA target; the CPU copies nothing", "[device]") {
  CHECK(!host_staging(at::kFloat, at::kCPU).pinned_memory());
  CHECK(host_staging(at::kFloat, at::Device(at::kCUDA, 0)).pinned_memory());  // options only: nothing allocated
  CHECK(host_staging(at::kHalf, at::kCPU).dtype() == at::kHalf);
  CHECK(host_staging(at::kHalf, at::kCPU).device() == at::Device(at::kCPU));
  const at::Tensor x = at::rand({3, 4});
  CHECK(to_device_async(x, at::kCPU).is_same(x));
  const at::Tensor m = to_device_async(x, at::kMeta);
  CHECK(m.device().is_meta());
  CHECK(m.sizes() == x.sizes());
}

TEST_CASE("device: pin_full_fp32 turns TF32 and reduced-precision matmuls off from any setting", "[device]") {
  at::Context& ctx = at::globalContext();
  auto pinned_by_legacy_getters = [&] {
    return !ctx.allowTF32CuBLAS() && !ctx.allowTF32CuDNN() &&
           ctx.float32MatmulPrecision() == at::Float32MatmulPrecision::HIGHEST;
  };
  SECTION("the settings as they are") {}
  SECTION("legacy flags on") {
    ctx.setAllowTF32CuBLAS(true);
    ctx.setAllowTF32CuDNN(true);
    CHECK(!full_fp32_pinned());
  }
  SECTION("matmul precision medium") {
    ctx.setFloat32MatmulPrecision("medium");
    CHECK(!full_fp32_pinned());
  }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 10)  // enums from 2.10
  SECTION("the newer per-backend API set to TF32 (the legacy setters alone do not undo it)") {
    ctx.setFloat32Precision(at::Float32Backend::GENERIC, at::Float32Op::ALL, at::Float32Precision::TF32);
    ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV, at::Float32Precision::TF32);
    CHECK(!full_fp32_pinned());
  }
#endif
  pin_full_fp32();
  CHECK(full_fp32_pinned());
  CHECK(pinned_by_legacy_getters());
  CHECK(fp32_settings().find("full FP32") == 0);
}

TEST_CASE("op counter: counts host reads, through backward, and nothing on pure tensor code", "[device]") {
  const at::Tensor x = at::rand({8}).requires_grad_();
  {
    OpCounter reads;
    double s = 0;
    for (int i = 0; i < 3; ++i) s += x[i].item<double>();
    CHECK(s > 0);
    CHECK(reads.count() == 3);
    CHECK_THROWS_WITH(OpCounter(), Catch::Contains("one at a time"));
  }
  {
    OpCounter reads;
    const at::Tensor y = (x * 2).exp().sum();
    y.backward();
    CHECK(reads.count() == 0);
  }
  {
    OpCounter copies({"aten::exp"});
    (x * 2).exp().sum().backward();  // exp's backward uses its result: one exp in all
    CHECK(copies.count() == 1);
  }
}

TEST_CASE("drop_path: the training mask is drawn without reading a value back", "[device][drop_path]") {
  at::manual_seed(0);
  const at::Tensor x = at::rand({16, 5, 3});
  OpCounter reads;
  const at::Tensor y = drop_path(x, 0.5, true);
  CHECK(reads.count() == 0);
  CHECK(!at::equal(x, y));
}

TEST_CASE("drop_path: a CUDA branch gets the CPU generator's masks bit for bit", "[device][drop_path][cuda]") {
  if (!at::hasCUDA()) {
    WARN("no usable GPU: the CUDA drop-path test is skipped");
    return;
  }
  const at::Tensor x = at::rand({64, 7, 5}) + 0.5;
  at::manual_seed(11);
  const at::Tensor cpu = drop_path(x, 0.3, true);
  at::manual_seed(11);
  OpCounter reads;
  const at::Tensor cuda = drop_path(x.cuda(), 0.3, true);
  CHECK(reads.count() == 0);
  CHECK(at::equal(cpu, cuda.cpu()));
}

TEST_CASE("Swin windows: index and mask are copied to a device once, then reused", "[device][swin]") {
  const SwinWindow w(14, 7, 3), plain(7, 7, 3);
  CHECK(w.index_on(at::kCPU).is_same(w.relative_position_index));
  CHECK(w.mask_on(at::kCPU).is_same(w.mask));
  const at::Tensor index = w.index_on(at::kMeta), mask = w.mask_on(at::kMeta);
  CHECK(index.device().is_meta());
  CHECK(mask.device().is_meta());
  CHECK(mask.sizes() == w.mask.sizes());
  const SwinWindow copy = w;  // blocks hold copies: they share the cached tensors
  CHECK(copy.index_on(at::kMeta).is_same(index));
  CHECK(w.mask_on(at::kMeta).is_same(mask));
  CHECK(!plain.mask_on(at::kMeta).defined());
  CHECK(plain.index_on(at::kMeta).device().is_meta());
}

TEST_CASE("Swin on a GPU: no window tensor is copied after the first forward", "[device][swin][cuda]") {
  if (!at::hasCUDA()) {
    WARN("no usable GPU: the CUDA Swin test is skipped");
    return;
  }
  SwinConfig c = swin_preset("swin_mnist_tiny");
  SwinTransformer m(c);
  m->to(at::kCUDA);
  const at::Tensor x = at::rand({2, c.in_chans, c.img_size, c.img_size}, at::TensorOptions().device(at::kCUDA));
  int64_t first = 0;
  {
    OpCounter copies({"aten::_to_copy"});
    m->forward(x);
    first = copies.count();
  }
  CHECK(first > 0);  // the index of every block, the mask of the shifted ones
  OpCounter copies({"aten::_to_copy"});
  m->forward(x);
  CHECK(copies.count() == 0);
}
