// SQNR as SPEC §7 defines it, streamed over batches so memory does not grow with the number of images:
//   SQNR(x, y) = 20·log10( mean_i ‖x_i‖₂ / ‖x_i − y_i‖₂ )  dB,
// i over images, x_i the full-precision tensor of image i, y_i the quantized one, both flattened. An image
// whose error is exactly zero has an infinite ratio, so the mean and the SQNR are +∞ (SPEC: "zero error → +∞").
// The per-image norms are reduced on the tensors' device in float64; only the running sum of ratios (one
// float64 scalar, kept on the device so no batch waits for a host sync) and the image count are stored.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace mnq {
namespace analysis {

class SqnrAccumulator {
 public:
  // Adds the images of one batch: x and y hold `images` images, batch-major in their leading dimension(s)
  // (x.numel() divisible by images; e.g. Swin's window scores [B·nW, heads, N, N]). Throws naming both shapes
  // when x and y differ in size.
  void add(const at::Tensor& x, const at::Tensor& y, int64_t images);
  // The same with x's per-image norms ‖x_i‖₂ given (signal_norms(x, images)): the analyzer scores several quantized
  // tensors against one full-precision tensor and computes its norms once per batch.
  void add(const at::Tensor& x, const at::Tensor& signal, const at::Tensor& y, int64_t images);
  // The same with both per-image norms given (image_norms_fused): signal ‖x_i‖₂ and error ‖x_i − y_i‖₂, float64
  // [images] each.
  // The errors add() throws for x and y (a split that does not divide x, a different number of values).
  static void check(const at::Tensor& x, const at::Tensor& y, int64_t images);
  void add_norms(const at::Tensor& signal, const at::Tensor& error, int64_t images);
  // ‖x_i‖₂ per image (float64 [images]), as add computes them.
  static at::Tensor signal_norms(const at::Tensor& x, int64_t images);
  int64_t images() const { return images_; }
  // mean_i ‖x_i‖/‖x_i − y_i‖ (+∞ if any image has zero error); throws when no image was added.
  double mean_ratio() const;
  double db() const;

 private:
  friend int64_t allreduce_accumulators(const std::vector<SqnrAccumulator*>& accs, int64_t images);
  at::Tensor sum_;  // float64 scalar on the inputs' device
  int64_t images_ = 0;
};

// Data-parallel analysis (csrc/dist): each rank measured its shard of every calibration batch; every accumulator
// becomes the sum over ranks of its ratio sums and image counts (one all-reduce on the sums' device), i.e. the
// one-process accumulator of the global batches up to float64 summation order. Returns the sum over ranks of
// `images`. No-op (returns `images`) on one process. Every rank passes the same accumulators in the same order.
int64_t allreduce_accumulators(const std::vector<SqnrAccumulator*>& accs, int64_t images);

// Per-image norms, float64 [images]: ‖x_i‖₂ (y undefined) or ‖x_i − y_i‖₂ with the difference rounded to x's dtype
// (y converted to x's device and dtype first). image_norms_reference is the tensor expression (x or x − y to
// float64, then linalg_vector_norm); image_norms computes the same bits in one read of x and y for CPU float32
// tensors (any other input takes the reference). "The same bits" holds for a contiguous x: on a strided x ATen's
// norm reduces the rows in another order, while image_norms reads a contiguous copy (the contiguous tensor's bits).
at::Tensor image_norms_reference(const at::Tensor& x, const at::Tensor& y, int64_t images);
at::Tensor image_norms(const at::Tensor& x, const at::Tensor& y, int64_t images);

// Several norms against one x in one read of it: signal = image_norms(x, {}, images) when `signal`, error[k] =
// image_norms(x, y_k, images) for each defined y_k — the same bits (CPU float32: the eight-image rows compute every
// stream's sums in its own order; anything else takes the reference per stream). Throws as SqnrAccumulator::add when
// x does not split into `images` images or a y_k holds another number of values.
struct FusedNorms {
  at::Tensor signal;
  at::Tensor error[2];
};
FusedNorms image_norms_fused(const at::Tensor& x, const at::Tensor& y0, const at::Tensor& y1, bool signal,
                             int64_t images);

// SQNR in dB of one batch of `images` images (a convenience over SqnrAccumulator).
double sqnr_db(const at::Tensor& x, const at::Tensor& y, int64_t images);

// ΔSQNR = SQNR_out − SQNR_in (SPEC §7), with the infinities made explicit: an exact output of an exact input
// loses nothing (0); an inexact output of an exact input loses everything (−∞); an exact output gains +∞.
double delta_sqnr(double sqnr_in, double sqnr_out);

}  // namespace analysis
}  // namespace mnq
