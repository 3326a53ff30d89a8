// Device helpers of the libraries above the ops (models, analysis, train), so that a training step on a GPU does
// not wait for the host and a job's float math does not depend on the GPU it ran on (STYLE rule 16).
//
// Host → device: values drawn on the host (drop-path masks from the checkpointed CPU generator, loader batches)
// are staged in page-locked memory when their target is a CUDA device and copied with non_blocking = true: the
// copy is queued on the current stream and the host goes on (torch's pinned-memory allocator keeps the block
// until the copy has run). Pinned memory is requested only for a CUDA target, so a CPU-only machine never needs
// CUDA for it; on the CPU nothing is copied.
//
// Full FP32: on Ampere and newer GPUs cuDNN convolutions use TF32 by default (torch.backends.cudnn.allow_tf32),
// and cuBLAS may (allow_tf32, set_float32_matmul_precision), rounding the float operands of the patch
// convolution and of every linear layer to a 10-bit mantissa. A sensitivity plan or a QAT run would then depend
// on the device (and with torch.set_float32_matmul_precision("medium") oneDNN matmuls on the CPU use bfloat16).
// The trainer and the analyzer pin full IEEE FP32 at the start of a job, process-wide: torch's precision settings
// cannot be saved and restored reliably once both its legacy and its newer (fp32_precision) API have been used.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace mnq {
namespace models {

struct Model;  // models/factory.h

// Where a model's parameters live (the CPU for a model without any): batches and inputs are moved there.
at::Device model_device(const Model& model);

// Options of a CPU tensor that will be copied to `target`: page-locked when `target` is a CUDA device.
at::TensorOptions host_staging(at::ScalarType dtype, at::Device target);

// `host` (a CPU tensor) on `target` without waiting: a non-blocking copy (asynchronous from pinned memory; from
// pageable memory CUDA stages it before returning, still safe to free). `host` itself when `target` is the CPU.
at::Tensor to_device_async(const at::Tensor& host, at::Device target);

// Sets cuBLAS and cuDNN to full FP32 (TF32 off) and the float32 matmul precision to "highest", process-wide.
void pin_full_fp32();
// Whether the current settings are full FP32 (what pin_full_fp32 sets).
bool full_fp32_pinned();
// The current settings in words for a job's log line, e.g. "float32 matmul precision highest, TF32 off (cuBLAS,
// cuDNN)".
std::string fp32_settings();

}  // namespace models
}  // namespace mnq
