// Random draws for the augmentations, from a std::mt19937_64 the caller seeds (the per-image RNG of the loader,
// or the trainer's per-batch RNG). The std:: distributions are implementation-defined (libstdc++ and libc++
// turn the same engine state into different numbers), so every draw is written here from raw 64-bit outputs:
// the same seed gives the same augmentation with any standard library, which resume and the tests rely on.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace mnq {
namespace data {
namespace rnd {

// SplitMix64's finaliser: a bijection of 64-bit integers that decorrelates neighbouring inputs, used to derive
// independent seeds from (seed, epoch, position) tuples (the loader's per-image seeds, the trainer's per-batch
// Mixup/CutMix seeds).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, 1): the top 53 bits of one engine output.
inline double unit(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

inline double uniform(std::mt19937_64& rng, double lo, double hi) { return lo + (hi - lo) * unit(rng); }

// Uniform integer in [lo, hi] (both ends included, as Python's random.randint). The modulo bias is below 2^-40
// for the ranges used here (image sides, class counts).
inline int64_t randint(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return lo + int64_t(rng() % uint64_t(hi - lo + 1));
}

// Standard normal by Box–Muller (two uniform draws per value; the second value is dropped so each call uses a
// fixed number of draws).
inline double normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - unit(rng);  // (0, 1]: log(u1) is finite
  const double u2 = unit(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 uses Gamma(shape + 1)·U^(1/shape).
inline double gamma(std::mt19937_64& rng, double shape) {
  if (shape < 1.0) {
    const double g = gamma(rng, shape + 1.0);
    return g * std::pow(1.0 - unit(rng), 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - unit(rng);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

// Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
inline double beta(std::mt19937_64& rng, double a, double b) {
  const double x = gamma(rng, a), y = gamma(rng, b);
  return x + y > 0 ? x / (x + y) : 0.5;
}

}  // namespace rnd
}  // namespace data
}  // namespace mnq
