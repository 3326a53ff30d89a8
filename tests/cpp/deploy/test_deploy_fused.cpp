// The deploy engine's fused CPU epilogue (csrc/deploy/int_fused.h, kernels/int_requant.h) against the exact
// 128-bit requant of kernels/common.h, element by element: every shift 1..62, both signs of the multiplier, exact
// ties, per-channel and per-tensor pairs, int32 and int64 inputs (LayerNorm codes beyond 2^31 take the exact
// path), biases that push the sum past 2^31, int8 and int32 outputs, every row tail length 1..17, and the fused
// residual add. The whole models, fused against unfused: tests/python/test_deploy.py.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <algorithm>

#include "csrc/deploy/int_fused.h"
#include "kernels/common.h"

using namespace mnq;
using namespace mnq::deploy;

namespace {

int64_t reference(int64_t v, int64_t m, int64_t k, int64_t bits) {
  const int64_t lo = -(int64_t(1) << (bits - 1)), hi = (int64_t(1) << (bits - 1)) - 1;
  return std::clamp(kernels::requant(v, kernels::Dyadic{m, int(k)}), lo, hi);
}

Requant pairs(int64_t channels, int64_t bits, int64_t k_lo, int64_t k_hi) {
  Requant r;
  r.bits = bits;
  r.m = at::randint(int64_t(1) << 30, int64_t(1) << 31, {channels}, at::kLong);
  r.m *= at::randint(0, 2, {channels}, at::kLong) * 2 - 1;  // both signs
  r.k = at::randint(k_lo, k_hi + 1, {channels}, at::kLong);
  return r;
}

}  // namespace

TEST_CASE("fused requant equals the exact requant element by element", "[deploy][fused]") {
  at::manual_seed(3);
  for (int64_t n : {1, 7, 8, 9, 16, 17, 50}) {
    for (const bool per_channel : {false, true}) {
      for (int64_t bits : {4, 8, 16}) {
        const Requant r = pairs(per_channel ? n : 1, bits, 1, 62);
        REQUIRE(fusable(r));
        // int32 accumulators over the whole range, plus exact ties: v·m/2^k with v odd, m = 2^30, k = 31
        at::Tensor q32 = at::randint(-(int64_t(1) << 31), (int64_t(1) << 31) - 1, {5, n}, at::kLong).to(at::kInt);
        q32[0] = at::randint(-1000, 1000, {n}, at::kInt);
        at::Tensor q64 = at::randint(-(int64_t(1) << 40), int64_t(1) << 40, {4, n}, at::kLong);
        q64[1] = at::randint(-(int64_t(1) << 20), int64_t(1) << 20, {n}, at::kLong);  // a row in the fast range
        // a row between 2^31 and 2^32 (LayerNorm codes: the 64-bit-lane path of int64 input)
        q64[2] = at::randint(int64_t(1) << 31, int64_t(1) << 32, {n}, at::kLong) * (at::randint(0, 2, {n}, at::kLong) * 2 - 1);
        const at::Tensor bias = at::randint(-(int64_t(1) << 30), int64_t(1) << 30, {n}, at::kInt);
        for (const at::ScalarType out : {at::kChar, at::kInt}) {
          if (out == at::kChar && bits > 8) continue;
          const at::Tensor a = requant_fused(q32, at::Tensor(), r, out).to(at::kLong);
          const at::Tensor b = requant_fused(q32, bias, r, out).to(at::kLong);
          const at::Tensor c = requant_fused(q64, at::Tensor(), r, out).to(at::kLong);
          for (int64_t i = 0; i < q32.size(0); ++i) {
            for (int64_t j = 0; j < n; ++j) {
              const int64_t cj = per_channel ? j : 0;
              const int64_t m = r.m[cj].item<int64_t>(), k = r.k[cj].item<int64_t>();
              const int64_t v = q32[i][j].item<int32_t>();
              REQUIRE(a[i][j].item<int64_t>() == reference(v, m, k, bits));
              REQUIRE(b[i][j].item<int64_t>() == reference(v + bias[j].item<int32_t>(), m, k, bits));
              if (i < q64.size(0)) REQUIRE(c[i][j].item<int64_t>() == reference(q64[i][j].item<int64_t>(), m, k, bits));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("fused requant rounds exact ties to even", "[deploy][fused]") {
  Requant r;
  r.bits = 16;
  r.m = at::full({1}, int64_t(1) << 30, at::kLong);  // ·2^30 / 2^31 = /2
  r.k = at::full({1}, int64_t(31), at::kLong);
  const at::Tensor q = at::arange(-9, 10, at::kInt);
  const at::Tensor got = requant_fused(q, at::Tensor(), r, at::kInt);
  for (int64_t i = 0; i < q.numel(); ++i) {
    const int64_t v = q[i].item<int32_t>();
    REQUIRE(got[i].item<int32_t>() == std::nearbyint(double(v) / 2));  // the default FE_TONEAREST: half to even
  }
  // int64 input between 2^31 and 2^32 (the 64-bit-lane path), 32-bit codes: ties there too
  r.bits = 32;
  const at::Tensor q64 = at::arange(-9, 10, at::kLong) + ((int64_t(1) << 32) - 20);
  const at::Tensor got64 = requant_fused(q64, at::Tensor(), r, at::kInt);
  for (int64_t i = 0; i < q64.numel(); ++i) {
    REQUIRE(got64[i].item<int32_t>() == int64_t(std::nearbyint(double(q64[i].item<int64_t>()) / 2)));
  }
}

TEST_CASE("fused residual add equals the sum of two exact requants", "[deploy][fused]") {
  at::manual_seed(4);
  for (int64_t n : {1, 8, 13, 64}) {
    const Requant r = pairs(1, 16, 1, 62), rid = pairs(1, 16, 1, 62);
    const at::Tensor q = at::randint(-(int64_t(1) << 31), (int64_t(1) << 31) - 1, {3, n}, at::kLong).to(at::kInt);
    const at::Tensor q8 = at::randint(-128, 128, {3, n}, at::kChar);
    const at::Tensor id = at::randint(-(int64_t(1) << 22), int64_t(1) << 22, {3, n}, at::kInt);
    REQUIRE(requant_add_fusable(q, id, r, rid));
    const at::Tensor got = requant_add_fused(q, id, r, rid), got8 = requant_add_fused(q8, id, r, rid);
    const int64_t m = r.m[0].item<int64_t>(), k = r.k[0].item<int64_t>();
    const int64_t mi = rid.m[0].item<int64_t>(), ki = rid.k[0].item<int64_t>();
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        auto expect = [&](int64_t v) {
          const int64_t s = kernels::requant(v, kernels::Dyadic{m, int(k)}) +
                            kernels::requant(id[i][j].item<int32_t>(), kernels::Dyadic{mi, int(ki)});
          return std::clamp<int64_t>(s, -32768, 32767);
        };
        REQUIRE(got[i][j].item<int32_t>() == expect(q[i][j].item<int32_t>()));
        REQUIRE(got8[i][j].item<int32_t>() == expect(q8[i][j].item<int8_t>()));
      }
    }
  }
}
