// The isolated mode's input (analyzer.h): the full-precision input of a layer put on the grid of the input the
// quantized layer received.
#pragma once

#include <ATen/core/Tensor.h>

namespace mnq {
namespace analysis {

// x_fp put on the grid of xq (scale S, per tensor or per channel of the last dim; undefined: xq is a float input and
// x_fp is returned reshaped): the codes round(x_fp / S), clamped to the range [min, max] of xq's own codes
// round(xq / S) in this call, times S, in xq's dtype and shape. The clamp stands for the saturation of the
// quantizer that fed the layer (whose bit-width the layer does not know): xq's extreme codes are the quantizer's
// limits whenever it saturated, and they keep the codes inside the op's declared range (Swin's shift-mask codes,
// far below the quantizer's range, included). Every quotient is one float64 division, rounded half to even.
at::Tensor on_grid(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq);

// The same by the tensor expression of the definition (any device and dtype): the reference of the tests.
at::Tensor on_grid_reference(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq);

// on_grid's clamp range: the minimum and maximum of xq's codes round(xq / S), float64 scalar tensors on xq's device
// (scale defined). A data-parallel analysis all-reduces it over the ranks (dist::allreduce_min_max) so that every
// rank clamps its shard of a batch to the range of the whole batch, as one process does.
struct CodeRange {
  at::Tensor lo, hi;
};
CodeRange code_range(const at::Tensor& scale, const at::Tensor& xq);

// on_grid with its clamp range given: on_grid(x_fp, scale, xq) == on_grid(x_fp, scale, xq, code_range(scale, xq)).
at::Tensor on_grid(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq, const CodeRange& range);

}  // namespace analysis
}  // namespace mnq
