// Random erasing (Zhong et al., 2020) with timm's defaults (timm/data/random_erasing.py, RandomErasing with
// mode 'pixel', count 1), applied to a normalised float image [C, H, W]: with probability p, up to 10 tries draw
// a target area U(0.02, 1/3)·H·W and an aspect ratio exp(U(log 0.3, log 1/0.3)), h = round(√(area·aspect)),
// w = round(√(area/aspect)); the first box with h < H and w < W is placed at a uniform top ∈ [0, H − h],
// left ∈ [0, W − w] and every value in it (all channels) replaced by a N(0, 1) draw — noise in the normalised
// space. When no try fits, the image is unchanged. The draws come from the caller's RNG (data/random.h).
#pragma once

#include <cstdint>
#include <optional>
#include <random>

#include "csrc/data/dataset.h"

namespace mnq {
namespace data {

struct ErasedBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// Erases in place; returns the erased box (nullopt: not applied, or no try fitted).
std::optional<ErasedBox> random_erase(float* image, const ImageShape& shape, double prob, std::mt19937_64& rng);

}  // namespace data
}  // namespace mnq
