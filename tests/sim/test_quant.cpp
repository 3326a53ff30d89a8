// The quantizer kernels (quant.cuh: quantize / ptf_quantize, requant with and without the residual, the PtfAct
// statistic) in the simulator, through their launch_* functions, against elementwise references from quant.h that
// take each element's channel from ChannelLayout::channel (the CPU's division), not from the kernels' ChannelIndex.
#include "kernels/quant.cuh"
#include "rowwise.h"

using namespace mnq::kernels;
using namespace mnq::simtest;

namespace {

// [outer, C, inner] shapes: per tensor (C = 1), channels on the last dim, on the first, in the middle.
struct Shape {
  i64 outer, C, inner;
  i64 numel() const { return outer * C * inner; }
};
const std::vector<Shape> kShapes = {
    {1, 1, 1},   {17, 1, 1},  {1, 1, 4099}, {13, 197, 1}, {3, 769, 1}, {11, 33, 1},
    {1, 17, 33}, {1, 64, 31}, {5, 3, 31},   {7, 33, 17},  {2, 1, 97},  {1, 65536, 1},
};

// Float inputs: values around the scale's range, with ties, zeros of both signs, ±inf and far-out values.
std::vector<float> quant_inputs(std::mt19937_64& rng, i64 n, double scale, i64 hi) {
  std::uniform_real_distribution<double> u(-1.5 * static_cast<double>(hi), 1.5 * static_cast<double>(hi));
  std::vector<float> x(static_cast<size_t>(n));
  for (i64 i = 0; i < n; ++i) {
    switch (rng() % 16) {
      case 0:
        x[i] = static_cast<float>((std::floor(u(rng)) + 0.5) * scale);
        break;  // a tie (up to float rounding)
      case 1:
        x[i] = (i % 2 ? 1.0f : -1.0f) * std::numeric_limits<float>::infinity();
        break;
      case 2:
        x[i] = (i % 2 ? 0.0f : -0.0f);
        break;
      case 3:
        x[i] = (i % 2 ? 3e38f : -3e38f);
        break;
      default:
        x[i] = static_cast<float>(u(rng) * scale);
    }
  }
  return x;
}

template <class Out>
bool ref_quantize(const float* x, const double* scale, const Out& out, const QuantizeParams& p) {
  bool ok = true;
  for (i64 i = 0; i < p.numel; ++i) {
    const double s = scale[p.layout.channel(i)];
    i64 q = 0;
    if (!quantize_code(x[i], s, p.lo, p.hi, q)) {
      if (!no_code(out, i)) ok = false;
      continue;
    }
    out.store(i, q, s);
  }
  return ok;
}

// Both output forms of one quantize call: codes (NaN reported through the flag) and fake-quant values (NaN → NaN,
// unchecked).
bool quantize_both(const std::vector<float>& x, const std::vector<double>& scale, const QuantizeParams& p, int* flag) {
  const size_t n = static_cast<size_t>(p.numel);
  run_both<float>(
      n, [](float* o) { return FakeOut{o}; },
      [&](FakeOut o) { return launch_quantize(x.data(), scale.data(), o, p, nullptr, nullptr); },
      [&](FakeOut o) { return ref_quantize(x.data(), scale.data(), o, p); }, "quantize (fake)");
  return run_both<int32_t>(
      n, [](int32_t* o) { return CodeOut{o}; },
      [&](CodeOut o) { return launch_quantize(x.data(), scale.data(), o, p, flag, nullptr); },
      [&](CodeOut o) { return ref_quantize(x.data(), scale.data(), o, p); }, "quantize (codes)");
}

std::vector<double> random_scales(std::mt19937_64& rng, i64 C) {
  std::uniform_real_distribution<double> lg(std::log(1e-4), std::log(10.0));
  std::vector<double> s(static_cast<size_t>(C));
  for (auto& v : s) v = std::exp(lg(rng));
  return s;
}

TEST_CASE("sim: quantize kernel equals its elementwise reference", "[sim][quantize]") {
  std::mt19937_64 rng(31);
  for (const Shape& sh : kShapes) {
    for (const int bits : {2, 8, 16, 32}) {
      if (sh.numel() > 8192 && bits != 8) continue;  // time: the long row once
      const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
      const auto scale = random_scales(rng, sh.C);
      const QuantizeParams p{sh.numel(), ChannelLayout{sh.C, sh.inner}, lo, hi};
      auto x = quant_inputs(rng, sh.numel(), scale[0], hi);
      INFO("[" << sh.outer << ", " << sh.C << ", " << sh.inner << "], " << bits << " bits");
      Flag f;
      REQUIRE(quantize_both(x, scale, p, f.get()));
      REQUIRE(f.mem == 0);
      // A NaN at the last element, then at the first: reported by the code form only.
      for (const i64 at : {sh.numel() - 1, i64(0)}) {
        auto y = x;
        y[at] = std::numeric_limits<float>::quiet_NaN();
        Flag g;
        REQUIRE_FALSE(quantize_both(y, scale, p, g.get()));
        REQUIRE(g.mem == 1);
      }
    }
  }
  const int64_t before = launches();
  Flag f;
  REQUIRE(quantize_both({}, {1.0}, QuantizeParams{0, ChannelLayout{1, 1}, -128, 127}, f.get()));
  REQUIRE(quantize_both({}, {1.0, 2.0}, QuantizeParams{0, ChannelLayout{2, 0}, -128, 127}, f.get()));  // [0, 2, 0]
  REQUIRE(launches() == before);
}

TEST_CASE("sim: ptf_quantize (per-channel power-of-two scales on the last dim) equals its reference",
          "[sim][quantize]") {
  std::mt19937_64 rng(32);
  for (const i64 C : {i64(1), i64(17), i64(197), i64(768)}) {
    for (const int bits : {4, 8}) {
      const double s_base = 0.013;
      std::vector<double> scale(static_cast<size_t>(C));
      for (auto& s : scale) s = std::ldexp(s_base, static_cast<int>(rng() % 4));  // csrc/ops/quant.cpp ptf_scales
      const i64 rows = 13, hi = (i64(1) << (bits - 1)) - 1;
      const QuantizeParams p{rows * C, ChannelLayout{C, 1}, -hi - 1, hi};
      const auto x = quant_inputs(rng, rows * C, 4 * s_base, hi);
      INFO(rows << " x " << C << ", " << bits << " bits");
      Flag f;
      REQUIRE(quantize_both(x, scale, p, f.get()));
    }
  }
}

// The grid-stride loop with a grid smaller than the data (the launcher caps it at 524280 blocks, out of a test's
// reach), on a layout whose channel needs both divisions.
TEST_CASE("sim: quantize grid-stride loop covers the data with a small grid", "[sim][quantize]") {
  std::mt19937_64 rng(33);
  const Shape sh{7, 33, 17};
  const auto scale = random_scales(rng, sh.C);
  const QuantizeParams p{sh.numel(), ChannelLayout{sh.C, sh.inner}, -128, 127};
  const auto x = quant_inputs(rng, sh.numel(), scale[0], 127);
  std::vector<int32_t> got(static_cast<size_t>(sh.numel()), 0x55), want(got);
  int flag = 0;
  MNQ_LAUNCH(quantize_kernel, 2, 256, 0, nullptr)
  (x.data(), scale.data(), CodeOut{got.data()}, p, channel_index(p.layout), &flag);
  check_cuda(cudaGetLastError(), "quantize_kernel");
  REQUIRE(ref_quantize(x.data(), scale.data(), CodeOut{want.data()}, p));
  require_same(got, want, "quantize, 2 blocks");
}

// csrc/cpu/requant.cpp requant_range: the exact per-element loop.
template <class In, class IdIn, class Out>
bool ref_requant(const In& in, const IdIn& id, DyadicArray d, DyadicArray d_id, double out_scale, const Out& out,
                 const RequantParams& p) {
  bool ok = true;
  for (i64 i = 0; i < p.numel; ++i) {
    const i64 c = p.in_layout.channel(i);
    const i64 cid = p.id_layout.channel(i);
    i64 q = 0, qid = 0;
    if (!in.load(i, c, q) || (p.has_identity && !id.load(i, cid, qid))) {
      ok = no_code(out, i) && ok;
      continue;
    }
    const i64 r =
        p.has_identity ? requant_code(q, d.at(c), qid, d_id.at(cid), p.lo, p.hi) : requant_code(q, d.at(c), p.lo, p.hi);
    out.store(i, r, out_scale);
  }
  return ok;
}

// Dyadic multipliers of random ratios S_in[c] / S_out over 40 decades, both signs (I-BERT's GELU and LayerNorm
// outputs have negative scales): shifts k from below 0 (saturating) to past 92.
struct Multipliers {
  std::vector<double> scale;  // S_in[c]
  std::vector<i64> m, k;
  Multipliers(std::mt19937_64& rng, i64 C, double out_scale) {
    std::uniform_real_distribution<double> lg(-28.0, 12.0);
    for (i64 c = 0; c < C; ++c) {
      const double r = (rng() % 4 ? 1.0 : -1.0) * std::pow(10.0, lg(rng));
      scale.push_back(r * out_scale);
      const Dyadic d = dyadic(r);
      m.push_back(d.m);
      k.push_back(d.k);
    }
  }
  DyadicArray dyadics() const { return DyadicArray{m.data(), k.data()}; }
};

template <class In, class IdIn>
bool requant_both(const In& in, const IdIn& id, const Multipliers& a, const Multipliers& b, double out_scale,
                  const RequantParams& p, int* flag) {
  const size_t n = static_cast<size_t>(p.numel);
  if constexpr (std::is_same_v<In, RequantFloatIn>) {
    return run_both<float>(
        n, [](float* o) { return FakeOut{o}; },
        [&](FakeOut o) { return launch_requant(in, id, a.dyadics(), b.dyadics(), &out_scale, o, p, flag, nullptr); },
        [&](FakeOut o) { return ref_requant(in, id, a.dyadics(), b.dyadics(), out_scale, o, p); }, "requant_qat");
  } else {
    return run_both<int32_t>(
        n, [](int32_t* o) { return CodeOut{o}; },
        [&](CodeOut o) { return launch_requant(in, id, a.dyadics(), b.dyadics(), &out_scale, o, p, flag, nullptr); },
        [&](CodeOut o) { return ref_requant(in, id, a.dyadics(), b.dyadics(), out_scale, o, p); }, "requant");
  }
}

TEST_CASE("sim: requant kernel equals its elementwise reference", "[sim][requant]") {
  std::mt19937_64 rng(34);
  const double out_scale = 0.037;
  for (const Shape& sh : kShapes) {
    if (sh.inner != 1 && sh.C != 1) continue;  // requant's channels are on the last dim
    if (sh.numel() > 8192) continue;           // time: the long row is quantize's
    const i64 C = sh.C, n = sh.numel();
    for (const bool per_channel_in : {false, true}) {
      for (const int residual : {0, 1, 2}) {  // none, per-tensor identity scale, per-channel identity scale
        const Multipliers a(rng, per_channel_in ? C : 1, out_scale), b(rng, residual == 2 ? C : 1, out_scale);
        for (const int bits : {8, 16, 32}) {
          const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
          const RequantParams p{n,
                                ChannelLayout{per_channel_in ? C : 1, 1},
                                ChannelLayout{residual == 2 ? C : 1, 1},
                                lo,
                                hi,
                                residual != 0};
          INFO("[" << sh.outer << ", " << C << ", " << sh.inner << "], " << bits << " bits, "
                   << (per_channel_in ? "per-channel" : "per-tensor") << " input, residual " << residual);
          for_each_int_dtype([&](auto tag) {
            using T = decltype(tag);
            const auto q = random_codes<T>(rng, static_cast<size_t>(n), INT64_MIN, INT64_MAX);
            const auto qid = random_codes<int16_t>(rng, static_cast<size_t>(n), INT64_MIN, INT64_MAX);
            INFO(dtype_name<T>() << " codes");
            Flag f;
            REQUIRE(requant_both(RequantIntIn<T>{q.data()}, RequantIntIn<int16_t>{qid.data()}, a, b, out_scale, p,
                                 f.get()));
            REQUIRE(f.mem == 0);
          });
          // Fake-quant input x = q·S_in[c]: NaN and codes beyond 2^62 give NaN, never an error.
          std::vector<float> x(static_cast<size_t>(n)), xid(static_cast<size_t>(n));
          std::uniform_int_distribution<i64> code(-(i64(1) << 22), i64(1) << 22);
          for (i64 i = 0; i < n; ++i) {
            x[i] = static_cast<float>(static_cast<double>(code(rng)) * a.scale[per_channel_in ? i % C : 0]);
            xid[i] = static_cast<float>(static_cast<double>(code(rng)) * b.scale[residual == 2 ? i % C : 0]);
          }
          x[n - 1] = std::numeric_limits<float>::quiet_NaN();
          xid[0] = 3e38f;
          REQUIRE(requant_both(RequantFloatIn{x.data(), a.scale.data()}, RequantFloatIn{xid.data(), b.scale.data()}, a,
                               b, out_scale, p, nullptr));
        }
      }
    }
  }
  // Code outputs from float input (not a combination the ops use): a NaN is reported through the flag.
  const Multipliers a(rng, 1, out_scale);
  std::vector<float> x(33, 1.0f);
  x[32] = std::numeric_limits<float>::quiet_NaN();
  const RequantParams p{33, ChannelLayout{1, 1}, ChannelLayout{1, 1}, -128, 127, false};
  const RequantFloatIn in{x.data(), a.scale.data()};
  std::vector<int32_t> out(33);
  Flag f;
  REQUIRE_FALSE(launch_requant(in, in, a.dyadics(), a.dyadics(), &out_scale, CodeOut{out.data()}, p, f.get(), nullptr));
  REQUIRE(f.mem == 1);
  const int64_t before = launches();
  const RequantParams empty{0, ChannelLayout{1, 1}, ChannelLayout{1, 1}, -128, 127, false};
  REQUIRE(launch_requant(in, in, a.dyadics(), a.dyadics(), &out_scale, CodeOut{nullptr}, empty, f.get(), nullptr));
  REQUIRE(launches() == before);
}

TEST_CASE("sim: requant grid-stride loop covers the data with a small grid", "[sim][requant]") {
  std::mt19937_64 rng(35);
  const i64 C = 197, n = 29 * C;
  const Multipliers a(rng, C, 0.5), b(rng, C, 0.5);
  const RequantParams p{n, ChannelLayout{C, 1}, ChannelLayout{C, 1}, -128, 127, true};
  const auto q = random_codes<int32_t>(rng, static_cast<size_t>(n), INT32_MIN, INT32_MAX);
  const auto qid = random_codes<int32_t>(rng, static_cast<size_t>(n), -1000, 1000);
  std::vector<int32_t> got(static_cast<size_t>(n), 0x55), want(got);
  const RequantIntIn<int32_t> in{q.data()}, id{qid.data()};
  int flag = 0;
  const double one = 1.0;
  MNQ_LAUNCH(requant_kernel, 3, 256, 0, nullptr)
  (in, id, a.dyadics(), b.dyadics(), &one, CodeOut{got.data()}, p, channel_index(p.in_layout),
   channel_index(p.id_layout), &flag);
  check_cuda(cudaGetLastError(), "requant_kernel");
  REQUIRE(ref_requant(in, id, a.dyadics(), b.dyadics(), 1.0, CodeOut{want.data()}, p));
  require_same(got, want, "requant, 3 blocks");
}

TEST_CASE("sim: ptf_alpha_error kernel equals the per-channel row-order sums", "[sim][ptf_alpha_error]") {
  std::mt19937_64 rng(36);
  std::normal_distribution<double> nd(0.0, 1.0);
  const double s_base = 0.011;
  for (const i64 C : {i64(0), i64(1), i64(17), i64(128), i64(129), i64(769)}) {
    for (const i64 rows : {i64(0), i64(1), i64(13), i64(197)}) {
      for (const int bits : {4, 8}) {
        const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
        std::vector<float> x(static_cast<size_t>(rows * C));
        for (auto& v : x) v = static_cast<float>(nd(rng) * (rng() % 8 ? 0.3 : 20.0));  // some far outside: clamped
        std::vector<double> got(static_cast<size_t>(C * 4), -1.0), want(got);
        for (i64 c = 0; c < C; ++c) {
          for (int a = 0; a < 4; ++a) {
            double acc = 0.0;
            for (i64 r = 0; r < rows; ++r) {
              acc += quant_sq_error(x[r * C + c], s_base * static_cast<double>(1 << a), lo, hi);
            }
            want[c * 4 + a] = acc;
          }
        }
        const int64_t before = launches();
        launch_ptf_alpha_error(x.data(), rows, C, &s_base, lo, hi, got.data(), nullptr);
        REQUIRE(launches() == before + (C > 0 ? 1 : 0));  // C = 0: no launch (a grid of 0 blocks is invalid)
        INFO(rows << " x " << C << ", " << bits << " bits");
        require_same(got, want, "ptf_alpha_error");
      }
    }
  }
}

// The CUDA fake-quant path takes its scales as they are (no host check): the kernels validate them.
TEST_CASE("sim: quantize with an invalid device scale gives NaN (codes: reported) for that channel only",
          "[sim][quantize][device-scale]") {
  std::mt19937_64 rng(37);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const double bad : {0.0, -0.0, -0.5, inf, -inf, nan}) {
    const i64 C = 5, n = 7 * C;
    std::vector<double> scale = {0.1, bad, 0.02, 1.5, 3e-5};
    const auto x = quant_inputs(rng, n, 0.1, 127);
    const QuantizeParams p{n, ChannelLayout{C, 1}, -128, 127};
    std::vector<float> got(static_cast<size_t>(n), 7.0f);
    REQUIRE(launch_quantize(x.data(), scale.data(), FakeOut{got.data()}, p, nullptr, nullptr));
    std::vector<double> good = scale;
    good[1] = 1.0;
    std::vector<float> want(static_cast<size_t>(n));
    ref_quantize(x.data(), good.data(), FakeOut{want.data()}, p);
    for (i64 i = 0; i < n; ++i) {
      INFO("scale " << bad << ", element " << i);
      if (i % C == 1) {
        REQUIRE(std::isnan(got[i]));
      } else {
        REQUIRE(std::memcmp(&got[i], &want[i], sizeof(float)) == 0);
      }
    }
    std::vector<int32_t> codes(static_cast<size_t>(n));
    Flag f;
    REQUIRE_FALSE(launch_quantize(x.data(), scale.data(), CodeOut{codes.data()}, p, f.get(), nullptr));
    REQUIRE(f.mem == 1);
  }
}

// launch_requant_dyadics (the CUDA requant's multipliers from device scales) equals the host's dyadic(S_in / S_out)
// bit for bit, and marks a channel with an invalid scale or an out-of-range ratio.
TEST_CASE("sim: requant multipliers computed on the device equal the host's", "[sim][requant][device-scale]") {
  std::mt19937_64 rng(38);
  std::uniform_real_distribution<double> lg(-40.0, 40.0);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const double s_out : {0.037, 1.0, 3e-9, 2.5e7, 0.1 + 0.2, std::ldexp(1.0, -30)}) {
    const i64 C = 1000;
    std::vector<double> s(static_cast<size_t>(C));
    for (auto& v : s) v = (rng() % 4 ? 1.0 : -1.0) * std::pow(10.0, lg(rng)) * (rng() % 3 ? 1.0 : s_out);
    s[0] = s_out;                                  // ratio 1
    s[1] = std::nextafter(2.0 * s_out, 0.0);       // mantissa rounds up to 2^31: m = 2^30, k − 1
    s[2] = std::numeric_limits<double>::denorm_min();
    std::vector<i64> m(static_cast<size_t>(C), -7), k(m);
    launch_requant_dyadics(s.data(), C, &s_out, m.data(), k.data(), nullptr);
    for (i64 c = 0; c < C; ++c) {
      const Dyadic d = dyadic(s[c] / s_out);
      INFO("S_in " << s[c] << ", S_out " << s_out);
      REQUIRE(m[c] == d.m);
      REQUIRE(k[c] == d.k);
    }
  }
  std::vector<double> s = {0.0, -0.0, inf, -inf, nan, 1e300, 0.5};
  const double tiny = 1e-300;
  std::vector<i64> m(s.size()), k(s.size());
  launch_requant_dyadics(s.data(), static_cast<i64>(s.size()), &tiny, m.data(), k.data(), nullptr);
  for (size_t c = 0; c + 1 < s.size(); ++c) REQUIRE(k[c] == kNoDyadic);  // invalid scales; 1e300 / 1e-300 = inf
  REQUIRE(k.back() != kNoDyadic);
  for (const double bad_out : {0.0, -1.0, inf, nan}) {
    const std::vector<double> one = {0.5};
    std::vector<i64> m1(1), k1(1);
    launch_requant_dyadics(one.data(), 1, &bad_out, m1.data(), k1.data(), nullptr);
    REQUIRE(k1[0] == kNoDyadic);
  }
}

// A channel whose multiplier is marked (an invalid device scale) gives NaN in every element of the channel and
// leaves the others exact; fake quant never touches the flag, codes report.
TEST_CASE("sim: requant with an invalid device scale gives NaN for that channel only", "[sim][requant][device-scale]") {
  std::mt19937_64 rng(39);
  const i64 C = 33, n = 7 * C;
  const double out_scale = 0.037;
  for (const bool residual : {false, true}) {
    Multipliers a(rng, C, out_scale), b(rng, C, out_scale);
    std::vector<float> x(static_cast<size_t>(n)), xid(static_cast<size_t>(n));
    std::uniform_int_distribution<i64> code(-1000, 1000);
    for (i64 i = 0; i < n; ++i) {
      x[i] = static_cast<float>(static_cast<double>(code(rng)) * a.scale[i % C]);
      xid[i] = static_cast<float>(static_cast<double>(code(rng)) * b.scale[i % C]);
    }
    std::vector<double> sa = a.scale, sb = b.scale;
    sa[3] = 0.0;                                     // input scale of channel 3
    sb[C - 1] = std::numeric_limits<double>::quiet_NaN();  // identity scale of the last channel (a tail lane)
    std::vector<i64> ma(static_cast<size_t>(C)), ka(ma), mb(ma), kb(ma);
    launch_requant_dyadics(sa.data(), C, &out_scale, ma.data(), ka.data(), nullptr);
    launch_requant_dyadics(sb.data(), C, &out_scale, mb.data(), kb.data(), nullptr);
    const RequantParams p{n, ChannelLayout{C, 1}, ChannelLayout{C, 1}, -128, 127, residual};
    std::vector<float> got(static_cast<size_t>(n)), want(got);
    Flag f;
    REQUIRE(launch_requant(RequantFloatIn{x.data(), sa.data()}, RequantFloatIn{xid.data(), sb.data()},
                           DyadicArray{ma.data(), ka.data()}, DyadicArray{mb.data(), kb.data()}, &out_scale,
                           FakeOut{got.data()}, p, nullptr, nullptr));
    ref_requant(RequantFloatIn{x.data(), a.scale.data()}, RequantFloatIn{xid.data(), b.scale.data()}, a.dyadics(),
                b.dyadics(), out_scale, FakeOut{want.data()}, p);
    for (i64 i = 0; i < n; ++i) {
      const i64 c = i % C;
      INFO("residual " << residual << ", element " << i);
      if (c == 3 || (residual && c == C - 1)) {
        REQUIRE(std::isnan(got[i]));
      } else {
        REQUIRE(std::memcmp(&got[i], &want[i], sizeof(float)) == 0);
      }
    }
    REQUIRE(f.mem == 0x5a5a5a5a);  // untouched
  }
}

TEST_CASE("sim: ptf_alpha_error with an invalid device s_base gives NaN sums", "[sim][ptf_alpha_error][device-scale]") {
  std::vector<float> x(13 * 17, 0.25f);
  for (const double bad : {0.0, -0.011, std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN()}) {
    std::vector<double> err(17 * 4, 1.0);
    launch_ptf_alpha_error(x.data(), 13, 17, &bad, -128, 127, err.data(), nullptr);
    for (const double e : err) REQUIRE(std::isnan(e));
  }
}

}  // namespace
