// RandAugment: timm's string, its magnitude → argument maps and the per-image policy; see rand_augment.h.
#include "csrc/data/rand_augment.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "csrc/data/augment_ops.h"
#include "csrc/data/random.h"

namespace mnq {
namespace data {
namespace {

[[noreturn]] void bad(const std::string& spec, const std::string& what) {
  throw std::invalid_argument("RandAugment '" + spec + "': " + what +
                              " (expected e.g. rand-m9-mstd0.5-inc1: rand, then m<int>, n<int>, mstd<float>, "
                              "mmax<int>, p<float>, inc<0|1>, separated by '-')");
}

double parse_number(const std::string& spec, const std::string& key, const std::string& text, bool integer) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(v) || (integer && v != std::floor(v))) {
    bad(spec, "'" + key + "' needs " + (integer ? "an integer" : "a number") + ", got '" + text + "'");
  }
  return v;
}

// timm's _randomly_negate: −v when a uniform draw exceeds ½.
double random_sign(double v, std::mt19937_64& rng) { return rnd::unit(rng) > 0.5 ? -v : v; }

}  // namespace

RandAugmentConfig parse_rand_augment(const std::string& spec) {
  RandAugmentConfig c;
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t dash = spec.find('-', start);
    parts.push_back(spec.substr(start, dash == std::string::npos ? std::string::npos : dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  if (parts[0] != "rand") bad(spec, "must start with 'rand'");
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (!p.empty() && p[0] == 't') bad(spec, "transform sets ('" + p + "') are not supported");
    const size_t digit = std::find_if(p.begin(), p.end(), [](unsigned char ch) { return std::isdigit(ch); }) - p.begin();
    const std::string key = p.substr(0, digit), val = p.substr(std::min(digit, p.size()));
    if (key.empty() || val.empty()) bad(spec, "section '" + p + "' is not <key><number>");
    if (key == "m") {
      c.magnitude = int64_t(parse_number(spec, key, val, true));
    } else if (key == "n") {
      c.num_ops = int64_t(parse_number(spec, key, val, true));
    } else if (key == "mstd") {
      c.magnitude_std = parse_number(spec, key, val, false);
      if (c.magnitude_std > 100) c.magnitude_std = std::numeric_limits<double>::infinity();  // timm: uniform
    } else if (key == "mmax") {
      c.magnitude_max = int64_t(parse_number(spec, key, val, true));
    } else if (key == "p") {
      c.prob = parse_number(spec, key, val, false);
    } else if (key == "inc") {
      const double v = parse_number(spec, key, val, true);
      if (v != 0 && v != 1) bad(spec, "'inc' must be 0 or 1");
      c.increasing = v == 1;
    } else {
      bad(spec, "unknown section '" + p + "' (transform sets 't…' are not supported)");
    }
  }
  if (c.magnitude_max < 1) bad(spec, "'mmax' must be at least 1");
  if (c.magnitude < 0 || c.magnitude > c.magnitude_max) {
    bad(spec, "'m' must be in 0.." + std::to_string(c.magnitude_max));
  }
  if (c.num_ops < 1 || c.num_ops > 16) bad(spec, "'n' must be in 1..16");
  if (!(c.prob >= 0 && c.prob <= 1)) bad(spec, "'p' must be in [0, 1]");
  return c;
}

const char* aug_op_name(AugOp op, bool increasing) {
  switch (op) {
    case AugOp::kAutoContrast: return "AutoContrast";
    case AugOp::kEqualize: return "Equalize";
    case AugOp::kInvert: return "Invert";
    case AugOp::kRotate: return "Rotate";
    case AugOp::kPosterize: return increasing ? "PosterizeIncreasing" : "Posterize";
    case AugOp::kSolarize: return increasing ? "SolarizeIncreasing" : "Solarize";
    case AugOp::kSolarizeAdd: return "SolarizeAdd";
    case AugOp::kColor: return increasing ? "ColorIncreasing" : "Color";
    case AugOp::kContrast: return increasing ? "ContrastIncreasing" : "Contrast";
    case AugOp::kBrightness: return increasing ? "BrightnessIncreasing" : "Brightness";
    case AugOp::kSharpness: return increasing ? "SharpnessIncreasing" : "Sharpness";
    case AugOp::kShearX: return "ShearX";
    case AugOp::kShearY: return "ShearY";
    case AugOp::kTranslateXRel: return "TranslateXRel";
    case AugOp::kTranslateYRel: return "TranslateYRel";
  }
  return "?";
}

RandAugment::RandAugment(RandAugmentConfig config, Filter interpolation, std::vector<uint8_t> fill)
    : config_(config), interpolation_(interpolation), fill_(std::move(fill)) {}

void RandAugment::apply_op(Image& img, AugOp op, double m, std::mt19937_64& rng) const {
  const double level = m / 10.0;
  const bool inc = config_.increasing;
  // The enhance factor: increasing ops move away from 1 (no change) in a random direction.
  auto enhance = [&] { return inc ? std::max(0.1, 1.0 + random_sign(level * 0.9, rng)) : level * 1.8 + 0.1; };
  switch (op) {
    case AugOp::kAutoContrast: aug::autocontrast(img); break;
    case AugOp::kEqualize: aug::equalize(img); break;
    case AugOp::kInvert: aug::invert(img); break;
    case AugOp::kRotate: {
      const double deg = random_sign(level * 30.0, rng);
      aug::affine(img, aug::rotate(deg, img.width, img.height), interpolation_, fill_);
      break;
    }
    case AugOp::kPosterize: {
      const int bits = int(level * 4.0);  // Python's int(): m >= 0, so the floor
      aug::posterize(img, inc ? 4 - bits : bits);
      break;
    }
    case AugOp::kSolarize: {
      const int t = std::min(256, int(level * 256.0));
      aug::solarize(img, inc ? 256 - t : t);
      break;
    }
    case AugOp::kSolarizeAdd: aug::solarize_add(img, std::min(128, int(level * 110.0)), 128); break;
    case AugOp::kColor: aug::color(img, enhance()); break;
    case AugOp::kContrast: aug::contrast(img, enhance()); break;
    case AugOp::kBrightness: aug::brightness(img, enhance()); break;
    case AugOp::kSharpness: aug::sharpness(img, enhance()); break;
    case AugOp::kShearX: aug::affine(img, aug::shear_x(random_sign(level * 0.3, rng)), interpolation_, fill_); break;
    case AugOp::kShearY: aug::affine(img, aug::shear_y(random_sign(level * 0.3, rng)), interpolation_, fill_); break;
    case AugOp::kTranslateXRel: {
      const double dx = random_sign(level * 0.45, rng) * double(img.width);
      aug::affine(img, aug::translate(dx, 0), interpolation_, fill_);
      break;
    }
    case AugOp::kTranslateYRel: {
      const double dy = random_sign(level * 0.45, rng) * double(img.height);
      aug::affine(img, aug::translate(0, dy), interpolation_, fill_);
      break;
    }
  }
}

void RandAugment::operator()(Image& img, std::mt19937_64& rng) const {
  if (fill_.size() != size_t(img.channels)) {
    throw std::invalid_argument("RandAugment: " + std::to_string(fill_.size()) + " fill values for an image of " +
                                std::to_string(img.channels) + " channels");
  }
  // timm draws the N ops first (numpy choice with replacement), then applies each with probability p.
  std::vector<AugOp> ops(static_cast<size_t>(config_.num_ops));
  for (auto& op : ops) op = AugOp(rnd::randint(rng, 0, kNumAugOps - 1));
  for (AugOp op : ops) {
    if (config_.prob < 1.0 && rnd::unit(rng) > config_.prob) continue;
    double m = double(config_.magnitude);
    if (std::isinf(config_.magnitude_std)) {
      m = rnd::uniform(rng, 0.0, m);
    } else if (config_.magnitude_std > 0) {
      m += config_.magnitude_std * rnd::normal(rng);
    }
    m = std::clamp(m, 0.0, double(config_.magnitude_max));
    apply_op(img, op, m, rng);
  }
}

std::vector<uint8_t> mean_fill(const std::vector<double>& mean) {
  std::vector<uint8_t> fill;
  for (double m : mean) fill.push_back(uint8_t(std::clamp(std::nearbyint(255.0 * m), 0.0, 255.0)));
  return fill;
}

}  // namespace data
}  // namespace mnq
