// RandAugment (Cubuk et al., 2019) with timm's conventions (timm/data/auto_augment.py, rand_augment_transform),
// configured by timm's string, e.g. "rand-m9-mstd0.5-inc1" (SPEC §8's "RandAugment m9", DeiT's setting):
//   m<int>      magnitude M, 0..(mmax) (default 10)
//   n<int>      ops per image N (default 2), each chosen uniformly, with replacement, from the op list
//   mstd<float> magnitude noise: each applied op draws its magnitude from N(M, mstd²) (mstd > 100: U(0, M)),
//               clipped to [0, mmax]
//   mmax<int>   magnitude upper bound (default 10)
//   p<float>    probability of applying each chosen op (default 0.5)
//   inc<0|1>    the "increasing" op list, whose severity grows with the magnitude (default 0)
// Op list (inc1): AutoContrast, Equalize, Invert, Rotate, PosterizeIncreasing, SolarizeIncreasing, SolarizeAdd,
// ColorIncreasing, ContrastIncreasing, BrightnessIncreasing, SharpnessIncreasing, ShearX, ShearY, TranslateXRel,
// TranslateYRel (inc0: Posterize, Solarize, Color, Contrast, Brightness, Sharpness in place of the increasing
// ones). Arguments at magnitude m (level = m/10), each signed op negated with probability ½:
//   Rotate ±30·level degrees; ShearX/Y ±0.3·level; TranslateX/YRel ±0.45·level of the width/height;
//   PosterizeIncreasing 4 − int(4·level) bits; SolarizeIncreasing threshold 256 − min(256, int(256·level));
//   SolarizeAdd +min(128, int(110·level)) below 128; *Increasing enhance factor max(0.1, 1 ± 0.9·level);
//   (inc0: Posterize int(4·level) bits, Solarize min(256, int(256·level)), enhance factor 1.8·level + 0.1).
// As timm's create_transform: the geometric ops resample with the data's interpolation (bilinear or bicubic)
// and fill with the normalisation mean as a colour, round(255·mean) per channel ((124, 116, 104) for ImageNet);
// TranslateXRel/YRel use translate_pct 0.45. The draws come from the caller's RNG (data/random.h), so an image's
// augmentation is a function of its seed.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "csrc/data/image.h"

namespace mnq {
namespace data {

struct RandAugmentConfig {
  int64_t magnitude = 10;
  int64_t num_ops = 2;
  double magnitude_std = 0;  // +inf: uniform in [0, magnitude]
  int64_t magnitude_max = 10;
  double prob = 0.5;
  bool increasing = false;
};

// Parses a timm RandAugment string; throws std::invalid_argument saying which part is wrong.
RandAugmentConfig parse_rand_augment(const std::string& spec);

enum class AugOp {
  kAutoContrast,
  kEqualize,
  kInvert,
  kRotate,
  kPosterize,
  kSolarize,
  kSolarizeAdd,
  kColor,
  kContrast,
  kBrightness,
  kSharpness,
  kShearX,
  kShearY,
  kTranslateXRel,
  kTranslateYRel,
};
inline constexpr int kNumAugOps = 15;
const char* aug_op_name(AugOp op, bool increasing);

class RandAugment {
 public:
  // fill: one value per channel (the channels of the images it will see).
  RandAugment(RandAugmentConfig config, Filter interpolation, std::vector<uint8_t> fill);
  void operator()(Image& img, std::mt19937_64& rng) const;
  // One op at magnitude `magnitude` (already drawn and clipped); signs are drawn from `rng`.
  void apply_op(Image& img, AugOp op, double magnitude, std::mt19937_64& rng) const;
  const RandAugmentConfig& config() const { return config_; }

 private:
  RandAugmentConfig config_;
  Filter interpolation_;
  std::vector<uint8_t> fill_;
};

// timm's fill colour for a normalisation mean: min(255, round(255·mean[c])) (Python's round: half to even).
std::vector<uint8_t> mean_fill(const std::vector<double>& mean);

}  // namespace data
}  // namespace mnq
