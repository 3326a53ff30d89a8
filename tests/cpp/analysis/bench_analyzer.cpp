// Benchmark: the analyzer's wall time against one full-precision forward pass over the same calibration set, in
// the same run (a ratio; the analyzer costs 2·methods + 1 passes, see csrc/analysis/analyzer.h, and a quantized
// pass is slower than a float one), with the time of each phase. Random weights and images (the time does not
// depend on their values).
//   mnq_bench_analyzer [--preset vit_mnist_tiny] [--batches 8] [--batch-size 32] [--bits 8] [--device cpu|cuda]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <limits>
#include <map>

#include "csrc/analysis/analyzer.h"
#include "csrc/analysis/buffer_cache.h"
#include "csrc/models/presets.h"
#include "csrc/models/swin.h"

using namespace mnq;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("mnq analyzer benchmark: analyze() vs one float forward pass", "mnq_bench_analyzer");
  std::string preset = "vit_mnist_tiny", device_name = "cpu";
  int64_t batches = 8, batch_size = 32, bits = 8, threads = 0;
  app.add_option("--preset", preset, "model preset");
  app.add_option("--batches", batches, "calibration batches");
  app.add_option("--batch-size", batch_size, "images per batch");
  app.add_option("--bits", bits, "W/A bits");
  app.add_option("--device", device_name, "cpu or cuda");
  app.add_option("--threads", threads, "intra-op threads (0: LibTorch's default)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  const at::Device device(device_name);

  int64_t img = 0, chans = 0;
  if (models::preset_family(preset) == models::Family::kViT) {
    const auto c = models::vit_preset(preset);
    img = c.img_size;
    chans = c.in_chans;
  } else {
    const auto c = models::swin_preset(preset);
    img = c.img_size;
    chans = c.in_chans;
  }
  at::manual_seed(0);
  models::Model fp = models::create_fp(preset);
  fp.module->to(device);
  fp.module->eval();
  std::vector<at::Tensor> images;
  for (int64_t i = 0; i < batches; ++i) images.push_back(at::randn({batch_size, chans, img, img}).to(device));
  const analysis::BatchSource calib{batches, [&](int64_t i) { return images[i]; }};

  at::NoGradGuard no_grad;
  double t_fp = 0;
  {
    // The least of 3 passes, under the CPU buffer cache the analyzer runs under (without it a pass may pay a page
    // fault per 4 KiB of each large buffer, by the heap's state: buffer_cache.h).
    analysis::CpuBufferCacheScope reuse_buffers;
    fp.forward(images[0]).sum().item<float>();  // warm-up (and a device sync)
    t_fp = std::numeric_limits<double>::infinity();
    for (int pass = 0; pass < 3; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      at::Tensor last;
      for (const auto& x : images) last = fp.forward(x);
      last.sum().item<float>();  // waits for the device
      t_fp = std::min(t_fp, seconds_since(t0));
    }
  }

  analysis::AnalyzerConfig config;
  config.calib_batches = batches;
  config.progress = false;
  std::map<std::string, double> phase_seconds;
  const auto t0 = std::chrono::steady_clock::now();
  const analysis::Report r = analysis::analyze(fp, bits, config, calib, {}, [&](const analysis::ProgressEvent& e) {
    phase_seconds[e.phase] = e.seconds;
  });
  const double t_an = seconds_since(t0);

  fmt::print("preset {} W/A {} on {}: {} batches x {} images, {} threads\n", preset, bits, device.str(), batches,
             batch_size, at::get_num_threads());
  fmt::print("  float forward pass over the set: {:9.3f} s  (least of 3)\n", t_fp);
  for (const auto& [phase, s] : phase_seconds) fmt::print("  {:<31} {:9.3f} s\n", phase, s);
  fmt::print("  analyze() total:                 {:9.3f} s  ({} calibration + {} measurement passes)\n", t_an,
             r.calibration_passes, r.measurement_passes);
  fmt::print("  ratio analyze / float pass:      {:9.1f}\n", t_an / t_fp);
  return 0;
}
