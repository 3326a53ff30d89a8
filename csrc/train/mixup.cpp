// Mixup / CutMix per batch; see mixup.h.
#include "csrc/train/mixup.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

#include "csrc/data/random.h"

namespace mnq {
namespace train {
namespace {

at::Tensor smoothed_one_hot(const at::Tensor& labels, int64_t num_classes, double smoothing) {
  const double off = smoothing / double(num_classes), on = 1.0 - smoothing + off;
  return at::full({labels.size(0), num_classes}, off, labels.options().dtype(at::kFloat))
      .scatter_(1, labels.view({-1, 1}), on);
}

}  // namespace

void check_labels(const at::Tensor& labels, int64_t num_classes, const char* who) {
  TORCH_CHECK_VALUE(labels.device().is_cpu() && labels.scalar_type() == at::kLong, who,
                    ": expected int64 labels on the CPU, got ", labels.scalar_type(), " on ", labels.device());
  const at::Tensor l = labels.contiguous();
  const int64_t* p = l.data_ptr<int64_t>();
  for (int64_t i = 0; i < l.numel(); ++i) {
    TORCH_CHECK_VALUE(p[i] >= 0 && p[i] < num_classes, who, ": labels outside 0..", num_classes - 1, " (label ", p[i],
                      " at position ", i, ")");
  }
}

uint64_t mix_seed(uint64_t data_seed, int64_t epoch, int64_t batch) {
  // A salt keeps these streams apart from the loader's per-image seeds of the same (epoch, position).
  using data::rnd::splitmix64;
  return splitmix64(splitmix64(data_seed ^ 0x6d697875702d6375ULL) ^
                    splitmix64((uint64_t(epoch) << 32) ^ uint64_t(batch)));
}

MixedBatch mix_batch(const at::Tensor& images, const at::Tensor& labels, int64_t num_classes,
                     const MixupOptions& o, uint64_t seed, const at::Tensor& partner_images,
                     const at::Tensor& partner_labels) {
  TORCH_CHECK_VALUE(images.dim() == 4 && labels.dim() == 1 && labels.size(0) == images.size(0),
                    "mix_batch: expected images [B, C, H, W] and labels [B], got ", images.sizes(), " and ",
                    labels.sizes());
  // Labels on the CPU are checked here; labels on a GPU are not read back (a sync per step): the loader checked
  // them when it made the batch.
  if (labels.device().is_cpu()) check_labels(labels, num_classes, "mix_batch");
  const bool partners = partner_images.defined();
  TORCH_CHECK_VALUE(!partners || (partner_labels.defined() && partner_images.sizes() == images.sizes() &&
                                  partner_labels.sizes() == labels.sizes()),
                    "mix_batch: partner images and labels must match the batch's shapes");
  std::mt19937_64 rng(seed);
  MixedBatch out;
  // timm's _params_per_batch: one draw for `prob`, one for the switch when both methods are on, then λ.
  if (o.enabled() && data::rnd::unit(rng) < o.prob) {
    if (o.mixup_alpha > 0 && o.cutmix_alpha > 0) {
      out.cutmix = data::rnd::unit(rng) < o.switch_prob;
    } else {
      out.cutmix = o.cutmix_alpha > 0;
    }
    const double alpha = out.cutmix ? o.cutmix_alpha : o.mixup_alpha;
    out.lam = data::rnd::beta(rng, alpha, alpha);
  }
  const at::Tensor flipped = (partners ? partner_images : images).flip(0);
  if (out.lam == 1.0) {
    out.cutmix = false;
    out.images = images.clone();
  } else if (out.cutmix) {
    const int64_t H = images.size(2), W = images.size(3);
    const double ratio = std::sqrt(1.0 - out.lam);
    const int64_t cut_h = int64_t(double(H) * ratio), cut_w = int64_t(double(W) * ratio);
    const int64_t cy = data::rnd::randint(rng, 0, H - 1), cx = data::rnd::randint(rng, 0, W - 1);
    const int64_t y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, H), y1 = std::clamp<int64_t>(cy + (cut_h + 1) / 2, 0, H);
    const int64_t x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, W), x1 = std::clamp<int64_t>(cx + (cut_w + 1) / 2, 0, W);
    out.images = images.clone();
    out.images.slice(2, y0, y1).slice(3, x0, x1).copy_(flipped.slice(2, y0, y1).slice(3, x0, x1));
    out.lam = 1.0 - double((y1 - y0) * (x1 - x0)) / double(H * W);
    out.box[0] = y0;
    out.box[1] = y1;
    out.box[2] = x0;
    out.box[3] = x1;
  } else {
    out.images = images * float(out.lam) + flipped * float(1.0 - out.lam);
  }
  const at::Tensor y = smoothed_one_hot(labels, num_classes, o.label_smoothing);
  if (out.lam != 1.0) {
    const at::Tensor py = partners ? smoothed_one_hot(partner_labels, num_classes, o.label_smoothing) : y;
    out.targets = y * float(out.lam) + py.flip(0) * float(1.0 - out.lam);
  } else {
    out.targets = y;
  }
  return out;
}

at::Tensor soft_target_cross_entropy(const at::Tensor& logits, const at::Tensor& targets) {
  return (-targets * at::log_softmax(logits, -1)).sum(-1).mean();
}

}  // namespace train
}  // namespace mnq
