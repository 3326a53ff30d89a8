// Weights and checkpoints as safetensors files (https://huggingface.co/docs/safetensors): 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian data. The same
// files are read and written by Python's `safetensors` package, so timm weights exported by
// scripts/export_timm.py load by name, and a C++ checkpoint (parameters + quantizer buffers) is a Python one.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <utility>
#include <vector>

namespace mnq {
namespace models {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Every tensor of a safetensors file, in file order (CPU). Throws std::invalid_argument naming the file.
NamedTensors read_safetensors(const std::string& path);
// Writes CPU copies of `tensors` (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL) atomically (temp file, rename).
void write_safetensors(const std::string& path, const NamedTensors& tensors);

// Loads a file into `module` by name. Every parameter must be present with the module's shape; a buffer is
// loaded when present and, unless `require_buffers`, may be absent (a timm file has none). A name the module
// does not have is an error. Errors name the file, the key and both shapes.
void load_weights(torch::nn::Module& module, const std::string& path, bool require_buffers = false);
// Writes every parameter and buffer of `module` (a checkpoint that load_weights(..., true) restores exactly).
void save_weights(const torch::nn::Module& module, const std::string& path);
// Copies every parameter of `dst` from the parameter of the same name in `src` (e.g. a full-precision model into
// its quantized twin: both carry timm's parameter names); buffers are left alone. Throws naming the key when
// `src` lacks a parameter or its shape differs.
void copy_parameters(const torch::nn::Module& src, torch::nn::Module& dst);

}  // namespace models
}  // namespace mnq
