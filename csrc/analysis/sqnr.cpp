// Streaming SQNR (SPEC §7); see sqnr.h.
#include "csrc/analysis/sqnr.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

namespace mnq {
namespace analysis {

void SqnrAccumulator::add(const at::Tensor& x, const at::Tensor& y, int64_t images) {
  TORCH_CHECK_VALUE(images > 0, "SqnrAccumulator: a batch needs at least one image, got ", images);
  TORCH_CHECK_VALUE(x.numel() == y.numel(), "SqnrAccumulator: the full-precision tensor has shape ", x.sizes(),
                    " but the quantized one ", y.sizes(), "; they must hold the same number of values");
  TORCH_CHECK_VALUE(x.numel() % images == 0, "SqnrAccumulator: a tensor of shape ", x.sizes(),
                    " does not split into ", images, " images");
  // Flatten per image; float64 accumulation of the norms (a float32 sum of 10^6 squares loses ~3 digits). The
  // difference itself is one rounding of the exact difference of two float32 values (relative error 2^-24).
  const at::Tensor xf = x.detach().reshape({images, -1});
  const at::Tensor yf = y.detach().to(xf.device(), xf.scalar_type()).reshape({images, -1});
  const at::Tensor signal = at::linalg_vector_norm(xf, 2, {1}, false, at::kDouble);
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
