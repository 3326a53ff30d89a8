// mnq-infer: evaluates an integer model file on a dataset and prints top-1 / top-5 (when labels exist) and
// images/s, with a progress line on stderr.
//   mnq-infer --model m.safetensors --data job.yaml      the val/test split of a job's `data:` section
//   mnq-infer --model m.safetensors --images DIR         DIR/<class>/<image>.jpg (classes: sorted folder names)
//   mnq-infer --model m.safetensors --idx FILE [--labels FILE]   IDX images (e.g. t10k-images-idx3-ubyte.gz)
// Options: --threads N (torch intra-op threads), --device cpu|cuda, --batch N, --limit N (a seeded N-image subset).
// An executable of its own (not in libmnq_deploy): it reads job configs and datasets (csrc/train, csrc/data),
// which the deploy library does not depend on.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "csrc/config/config.h"
#include "csrc/data/fashion_mnist.h"
#include "csrc/data/idx.h"
#include "csrc/data/image_folder.h"
#include "csrc/data/loader.h"
#include "csrc/deploy/integer_model.h"
#include "csrc/jobs/datasets.h"
#include "csrc/jobs/job_config.h"

namespace mnq {
namespace deploy {
namespace {

struct Options {
  std::string model, data, images, idx, labels, device = "cpu";
  int64_t threads = 1, batch = 256, limit = 0;
  std::vector<double> mean, std;
};

// The dataset named by the options and whether its labels are real.
std::pair<std::shared_ptr<data::Dataset>, bool> open_dataset(const Options& o, const IntegerModel& m) {
  const train::ModelShape shape{m.img_size(), m.in_chans(), m.num_classes()};
  if (!o.data.empty()) {
    const YAML::Node root = YAML::LoadFile(o.data);
    const YAML::Node section = root["data"] ? root["data"] : root;
    train::DataConfig d = config::from_node<train::DataConfig>(section);
    d.validate("data");
    return {train::make_datasets(d, shape).val, true};
  }
  if (!o.images.empty()) {
    const std::filesystem::path dir = std::filesystem::absolute(o.images).lexically_normal();
    data::ImageFolderOptions fo;
    fo.img_size = shape.img_size;
    fo.channels = shape.in_chans;
    fo.train_augment = false;
    if (!o.mean.empty()) fo.mean = o.mean;
    if (!o.std.empty()) fo.std = o.std;
    const std::string split = dir.filename().string();
    return {std::make_shared<data::ImageFolder>(dir.parent_path().string(), split, fo), true};
  }
  const at::Tensor images = data::read_idx_images(o.idx);
  const bool labelled = !o.labels.empty();
  const at::Tensor labels = labelled ? data::read_idx_labels(o.labels) : at::zeros({images.size(0)}, at::kLong);
  if (labels.size(0) != images.size(0)) {
    throw std::invalid_argument(fmt::format("--labels has {} labels for {} images", labels.size(0), images.size(0)));
  }
  return {std::make_shared<data::FashionMnist>(images, labels, o.mean.empty() ? std::vector<double>{0.2860} : o.mean,
                                               o.std.empty() ? std::vector<double>{0.3530} : o.std, o.idx),
          labelled};
}

int run(const Options& o) {
  at::set_num_threads(static_cast<int>(o.threads));
  const at::Device device(o.device);
  if (device.is_cuda() && !at::hasCUDA()) {
    throw std::invalid_argument("--device " + o.device + ": no CUDA device is available to this build and machine");
  }
  IntegerModel m = load_integer_model(o.model);
  m.to(device);
  auto [dataset, labelled] = open_dataset(o, m);
  if (o.limit > 0) dataset = data::subset(dataset, o.limit, 0);
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.workers = 1;
  const data::Loader loader(dataset, lo);
  std::fprintf(stderr, "[mnq-infer] %s (%s, W/A %lld) on %s: %lld images, %s, %lld thread(s)\n", o.model.c_str(),
               m.family().c_str(), static_cast<long long>(m.bits()), dataset->describe().c_str(),
               static_cast<long long>(loader.num_images()), device.str().c_str(), static_cast<long long>(o.threads));
  int64_t seen = 0, top1 = 0, top5 = 0, batches = 0;
  double model_seconds = 0;
  const auto start = std::chrono::steady_clock::now();
  auto pass = loader.pass(0);
  while (auto b = pass->next()) {
    const at::Tensor x = b->images.to(device);
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor logits = m.forward(x).cpu();
    model_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    const at::Tensor top = std::get<1>(logits.topk(k, 1));
    const at::Tensor hit = top.eq(b->labels.unsqueeze(1));
    top1 += hit.select(1, 0).sum().item<int64_t>();
    top5 += hit.any(1).sum().item<int64_t>();
    seen += x.size(0);
    ++batches;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\r[mnq-infer] %lld/%lld batches  %.0f img/s", static_cast<long long>(batches),
                 static_cast<long long>(loader.num_batches()), seen / std::max(el, 1e-9));
  }
  std::fprintf(stderr, "\n");
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (labelled && seen > 0) {
    std::printf("top-1 %.2f %%  top-5 %.2f %%  (%lld images)\n", 100.0 * top1 / seen, 100.0 * top5 / seen,
                static_cast<long long>(seen));
  } else {
    std::printf("%lld images (no labels: no accuracy)\n", static_cast<long long>(seen));
  }
  std::printf("%.1f images/s (model only %.1f images/s)\n", seen / std::max(wall, 1e-9),
              seen / std::max(model_seconds, 1e-9));
  return 0;
}

}  // namespace

int infer_main(int argc, char** argv) {
  CLI::App app("Integer-only inference of an mnq integer model file (mnq.deploy)", "mnq-infer");
  Options o;
  app.add_option("-m,--model", o.model, "the integer model (IntegerModel.save / mnq.deploy)")->required();
  auto* data = app.add_option("--data", o.data, "a job YAML: evaluate on the val/test split of its data: section");
  auto* images = app.add_option("--images", o.images, "a folder of class sub-folders of images (ImageFolder)");
  auto* idx = app.add_option("--idx", o.idx, "an IDX images file (.gz or raw)");
  app.add_option("--labels", o.labels, "the IDX labels of --idx (without: no accuracy)")->needs(idx);
  app.add_option("--mean", o.mean, "normalisation mean per channel (--images, --idx)");
  app.add_option("--std", o.std, "normalisation std per channel (--images, --idx)");
  app.add_option("--threads", o.threads, "torch intra-op threads")->check(CLI::Range(1, 1024));
  app.add_option("--device", o.device, "cpu or cuda[:i]");
  app.add_option("--batch", o.batch, "batch size")->check(CLI::Range(1, 1 << 20));
  app.add_option("--limit", o.limit, "evaluate a seeded N-image subset (0: all)")->check(CLI::NonNegativeNumber);
  data->excludes(images)->excludes(idx);
  images->excludes(idx);
  try {
    app.parse(argc, argv);
    if (o.data.empty() && o.images.empty() && o.idx.empty()) {
      throw CLI::RequiredError("one of --data, --images, --idx");
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run(o);
  } catch (const c10::Error& e) {  // one line: torch's message without its C++ backtrace and hints
    const std::string msg = e.what_without_backtrace();
    std::fprintf(stderr, "mnq-infer: error: %s\n", msg.substr(0, msg.find('\n')).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mnq-infer: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace deploy
}  // namespace mnq

int main(int argc, char** argv) { return mnq::deploy::infer_main(argc, argv); }
