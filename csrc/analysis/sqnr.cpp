// Streaming SQNR (SPEC §7); see sqnr.h.
#include "csrc/analysis/sqnr.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

#include "csrc/dist/dist.h"

namespace mnq {
namespace analysis {

namespace {

void check_split(const at::Tensor& x, int64_t images) {
  TORCH_CHECK_VALUE(images > 0, "SqnrAccumulator: a batch needs at least one image, got ", images);
  TORCH_CHECK_VALUE(x.numel() % images == 0, "SqnrAccumulator: a tensor of shape ", x.sizes(),
                    " does not split into ", images, " images");
}

}  // namespace

at::Tensor SqnrAccumulator::signal_norms(const at::Tensor& x, int64_t images) {
  check_split(x, images);
  // Flatten per image; float64 accumulation of the norms (a float32 sum of 10^6 squares loses ~3 digits).
  return at::linalg_vector_norm(x.detach().reshape({images, -1}), 2, {1}, false, at::kDouble);
}

void SqnrAccumulator::add(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  add(x, signal_norms(x, images), y, images);
}

void SqnrAccumulator::add(const at::Tensor& x, const at::Tensor& signal, const at::Tensor& y, int64_t images) {
  check_split(x, images);
  TORCH_CHECK_VALUE(x.numel() == y.numel(), "SqnrAccumulator: the full-precision tensor has shape ", x.sizes(),
                    " but the quantized one ", y.sizes(), "; they must hold the same number of values");
  TORCH_CHECK_VALUE(signal.numel() == images, "SqnrAccumulator: ", signal.numel(), " signal norms for ", images,
                    " images");
  // The difference is one rounding of the exact difference of two float32 values (relative error 2^-24).
  const at::Tensor xf = x.detach().reshape({images, -1});
  const at::Tensor yf = y.detach().to(xf.device(), xf.scalar_type()).reshape({images, -1});
  const at::Tensor error = at::linalg_vector_norm(xf - yf, 2, {1}, false, at::kDouble);
  // zero error → +∞ whatever the signal (0/0 included)
  const at::Tensor ratio = at::where(error == 0, std::numeric_limits<double>::infinity(), signal / error);
  const at::Tensor s = ratio.sum();
  sum_ = sum_.defined() ? sum_ + s : s;
  images_ += images;
}

double SqnrAccumulator::mean_ratio() const {
  TORCH_CHECK(images_ > 0, "SqnrAccumulator: no image was added");
  return sum_.item<double>() / static_cast<double>(images_);
}

double SqnrAccumulator::db() const { return 20.0 * std::log10(mean_ratio()); }

int64_t allreduce_accumulators(const std::vector<SqnrAccumulator*>& accs, int64_t images) {
  if (!mnq::dist::active()) return images;
  at::Device device(at::kCPU);
  for (const SqnrAccumulator* a : accs) {
    if (a->sum_.defined()) device = a->sum_.device();
  }
  // [sums…, counts…, images]: counts below 2^53 are exact in float64.
  const at::TensorOptions f64 = at::TensorOptions(device).dtype(at::kDouble);
  std::vector<at::Tensor> parts;
  for (const SqnrAccumulator* a : accs) parts.push_back(a->sum_.defined() ? a->sum_.reshape({1}) : at::zeros({1}, f64));
  std::vector<double> counts;
  for (const SqnrAccumulator* a : accs) counts.push_back(double(a->images_));
  counts.push_back(double(images));
  parts.push_back(at::tensor(counts, at::kDouble).to(device));
  const at::Tensor all = at::cat(parts);
  mnq::dist::allreduce_sum(all);
  const int64_t n = int64_t(accs.size());
  const at::Tensor c = all.narrow(0, n, n + 1).to(at::kCPU);
  const double* cp = c.data_ptr<double>();
  for (int64_t k = 0; k < n; ++k) {
    accs[size_t(k)]->sum_ = all[k];
    accs[size_t(k)]->images_ = int64_t(cp[k]);
  }
  return int64_t(cp[n]);
}

double sqnr_db(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  SqnrAccumulator acc;
  acc.add(x, y, images);
  return acc.db();
}

double delta_sqnr(double sqnr_in, double sqnr_out) {
  const double inf = std::numeric_limits<double>::infinity();
  if (sqnr_in == inf) return sqnr_out == inf ? 0.0 : -inf;
  return sqnr_out - sqnr_in;
}

}  // namespace analysis
}  // namespace mnq
