// Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019) per batch, with timm's Mixup in mode 'batch'
// (timm/data/mixup.py; SPEC §8: mixup α 0.8, cutmix α 1.0, prob 1, switch prob 0.5):
//   with probability `prob` the batch is mixed with itself reversed (image i with image B−1−i): when both α are
//   positive, CutMix with probability `switch_prob` else Mixup (only one positive: that one);
//   λ ~ Beta(α, α) of the chosen method;
//   Mixup:  x ← λ·x + (1 − λ)·flip(x);
//   CutMix: a box of side ratio √(1 − λ) (cut = int(side·ratio)) centred at a uniform pixel, clipped to the image,
//           is pasted from flip(x), and λ becomes 1 − box area / image area (timm's correct_lam);
//   targets: λ·smooth(y) + (1 − λ)·smooth(flip(y)), smooth = one-hot with off = ε/K, on = 1 − ε + ε/K (label
//   smoothing ε folded in, K classes). Without mixing (the prob draw failed) λ = 1: the smoothed one-hot targets.
// The draws come from an RNG seeded by (data seed, epoch, batch index) (mix_seed), not torch's generator, so a
// stage resumed mid-epoch mixes its batches exactly as an uninterrupted one. timm requires an even batch; an odd
// one works here too (its middle image is mixed with itself).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace mnq {
namespace train {

struct MixupOptions {
  double mixup_alpha = 0.8;
  double cutmix_alpha = 1.0;
  double prob = 1.0;
  double switch_prob = 0.5;
  double label_smoothing = 0.1;
  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

struct MixedBatch {
  at::Tensor images;   // float [B, C, H, W] (a new tensor; the input is not modified)
  at::Tensor targets;  // float [B, K], rows summing to 1, on the labels' device
  double lam = 1.0;    // weight of the unflipped batch (after the CutMix correction)
  bool cutmix = false;
  int64_t box[4] = {0, 0, 0, 0};  // CutMix box: y0, y1, x0, x1 (half-open)
};

uint64_t mix_seed(uint64_t data_seed, int64_t epoch, int64_t batch);

// Throws c10::ValueError naming `who` and the first label outside 0..num_classes−1 of `labels` (int64 [B] on the
// CPU, e.g. a loader's batch), reading host memory (no tensor op, no device sync).
void check_labels(const at::Tensor& labels, int64_t num_classes, const char* who);

// images float [B, C, H, W], labels int64 [B] in 0..num_classes−1, on one device (the draws are on the host; the
// tensor ops run where the batch is, and are deterministic there; nothing is read back from the device). Labels
// on the CPU are range-checked (check_labels); on a GPU the caller checks them before the copy.
// Data-parallel shards (data::Batch::partner_images): `partner_images` / `partner_labels` are the batch positions
// that `images` pairs with, in batch order (flip(0) of them takes the place of flip(images)), so every shard mixes
// exactly as the global batch does. Undefined: the batch is whole and mixes with itself reversed.
MixedBatch mix_batch(const at::Tensor& images, const at::Tensor& labels, int64_t num_classes,
                     const MixupOptions& options, uint64_t seed, const at::Tensor& partner_images = {},
                     const at::Tensor& partner_labels = {});

// Cross-entropy with soft targets: mean over the batch of −Σ_k t_k · log_softmax(logits)_k.
at::Tensor soft_target_cross_entropy(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace train
}  // namespace mnq
