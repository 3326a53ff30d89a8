// mnq-bench-train: images/s of a training step (forward + backward + AdamW) and of evaluation, for the FP model
// and its quantized twins (QAT fake-quant) of one preset, on random images, and of the data loader (bench.h).
// Prints a table with each rate relative to the FP row of the same kind. Used to size configs/fashion_mnist.yaml;
// scripts/bench_train.py runs the same measurement through mnq._mnq.bench_train.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <sstream>

#include "csrc/data/fashion_mnist.h"
#include "csrc/jobs/bench.h"
#include "csrc/util/log.h"

int main(int argc, char** argv) {
  using namespace mnq;
  CLI::App app{"mnq-bench-train: img/s of FP and QAT training steps, evaluation, and the data loader"};
  train::BenchOptions o;
  std::string methods = "ivit,ibert,fqvit";
  int64_t threads = 0;
  o.fashion_root = data::kFashionMnistRoot;
  app.add_option("--preset", o.preset, "model preset")->capture_default_str();
  app.add_option("--batch", o.batch, "images per step")->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps per row")->capture_default_str();
  app.add_option("--bits", o.bits, "W/A bits of the quantized models")->capture_default_str();
  app.add_option("--methods", methods, "uniform plans to time, comma-separated")->capture_default_str();
  app.add_option("--threads", threads, "torch threads (0: default)")->capture_default_str();
  app.add_option("--device", o.device, "cpu | cuda")->capture_default_str();
  app.add_option("--data", o.data, "loader rows: fashion_mnist | synthetic | none")->capture_default_str();
  app.add_option("--workers", o.workers, "loader threads")->capture_default_str();
  app.add_option("--fashion-root", o.fashion_root, "Fashion-MNIST folder")->capture_default_str();
  app.add_option("--loader-images", o.loader_images, "images read in the loader rows")->capture_default_str();
  app.add_option("--image-folder", o.image_folder, "also time an ImageNet-style folder (root with train/)");
  app.add_option("--img-size", o.img_size, "image-folder crop size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) at::set_num_threads(int(threads));
  mnq::log::set_quiet(true);
  o.methods.clear();
  std::stringstream ss(methods);
  for (std::string m; std::getline(ss, m, ',');) {
    if (!m.empty()) o.methods.push_back(m);
  }
  try {
    fmt::print("{}", train::bench_table(train::bench_train(o)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "mnq-bench-train: {}\n", e.what());
    return 2;
  }
  return 0;
}
