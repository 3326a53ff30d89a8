// mnq-bench-train: images/s of a training step (forward + backward + AdamW) and of evaluation, for the FP model
// and its quantized twins (QAT fake-quant) of one preset, on random images, and of the data loader. Prints a
// table with each rate relative to the FP step. Used to size configs/fashion_mnist.yaml.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>

#include "csrc/data/fashion_mnist.h"
#include "csrc/data/image_folder.h"
#include "csrc/data/loader.h"
#include "csrc/models/factory.h"
#include "csrc/models/weights.h"
#include "csrc/train/job.h"
#include "csrc/train/log.h"

namespace {

using namespace mnq;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU seconds used by this process (all threads): on a machine shared with other jobs, images per CPU-second
// stay meaningful when images per wall-second do not.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Rate {
  double wall = 0, cpu = 0;  // images per wall second, per CPU second
};

// Rates of `steps` calls of `step` on a batch of `batch` images, after `warmup` untimed calls.
template <class F>
Rate rate(F&& step, int64_t batch, int64_t steps, int64_t warmup = 2) {
  for (int64_t i = 0; i < warmup; ++i) step();
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  for (int64_t i = 0; i < steps; ++i) step();
  const double images = double(batch * steps);
  return {images / seconds_since(t0), images / (cpu_seconds() - c0)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mnq-bench-train: img/s of FP and QAT training steps, evaluation, and the data loader"};
  std::string preset = "vit_mnist_tiny", methods = "ivit,ibert,fqvit", fashion = data::kFashionMnistRoot, folder;
  int64_t batch = 128, steps = 10, bits = 8, threads = 0, workers = 1, img_size = 224, loader_images = 20000;
  app.add_option("--preset", preset, "model preset")->capture_default_str();
  app.add_option("--batch", batch, "images per step")->capture_default_str();
  app.add_option("--steps", steps, "timed steps per row")->capture_default_str();
  app.add_option("--bits", bits, "W/A bits of the quantized models")->capture_default_str();
  app.add_option("--methods", methods, "uniform plans to time, comma-separated")->capture_default_str();
  app.add_option("--threads", threads, "torch threads (0: default)")->capture_default_str();
  app.add_option("--workers", workers, "loader threads")->capture_default_str();
  app.add_option("--fashion-root", fashion, "Fashion-MNIST folder")->capture_default_str();
  app.add_option("--loader-images", loader_images, "images read in the loader rows")->capture_default_str();
  app.add_option("--image-folder", folder, "also time an ImageNet-style folder (root with train/)");
  app.add_option("--img-size", img_size, "image-folder crop size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) at::set_num_threads(int(threads));
  train::log::set_quiet(true);

  std::vector<std::tuple<std::string, Rate, std::string>> rows;  // name, rates, ratio column
  at::manual_seed(0);
  models::Model fp = models::create_fp(preset);
  train::ModelConfig mc;
  mc.preset = preset;
  const train::ModelShape shape = train::model_shape(mc);
  const at::Tensor x = at::randn({batch, shape.in_chans, shape.img_size, shape.img_size});
  const at::Tensor y = at::randint(0, shape.num_classes, {batch}, at::kLong);

  auto time_model = [&](const models::Model& m) {
    torch::optim::AdamW opt(m.module->parameters(), torch::optim::AdamWOptions(1e-5));
    m.module->train();
    const Rate tr = rate(
        [&] {
          auto loss = torch::nn::functional::cross_entropy(m(x), y);
          opt.zero_grad();
          loss.backward();
          opt.step();
        },
        batch, steps);
    m.module->eval();
    const Rate ev = rate(
        [&] {
          torch::NoGradGuard g;
          m(x);
        },
        batch, steps);
    return std::pair<Rate, Rate>{tr, ev};
  };
  const auto [fp_train, fp_eval] = time_model(fp);
  rows.emplace_back("FP train step", fp_train, "1.00");
  rows.emplace_back("FP eval", fp_eval, fmt::format("{:.2f}", fp_eval.wall / fp_train.wall));
  std::stringstream ss(methods);
  for (std::string method; std::getline(ss, method, ',');) {
    models::Model q = models::create_quant(preset, {bits, models::Plan::uniform(method)});
    models::copy_parameters(*fp.module, *q.module);
    const auto [tr, ev] = time_model(q);
    rows.emplace_back(fmt::format("QAT W{} {} train step", bits, method), tr,
                      fmt::format("{:.2f}", tr.wall / fp_train.wall));
    rows.emplace_back(fmt::format("QAT W{} {} eval", bits, method), ev, fmt::format("{:.2f}", ev.wall / fp_train.wall));
  }

  auto time_loader = [&](const std::string& label, std::shared_ptr<data::Dataset> ds) {
    ds = data::subset(ds, loader_images, 0);
    data::Loader loader(ds, {batch, true, false, workers, 4, 0});
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    int64_t n = 0;
    auto pass = loader.pass(0);
    while (auto b = pass->next()) n += b->labels.size(0);
    const Rate r{double(n) / seconds_since(t0), double(n) / (cpu_seconds() - c0)};
    rows.emplace_back(fmt::format("loader {} ({} workers)", label, workers), r, "");
  };
  // SPEC §8's per-image augmentations (the job defaults), timed against the plain loaders.
  const data::RandAugmentConfig ra = data::parse_rand_augment("rand-m9-mstd0.5-inc1");
  auto fashion_set = [&](bool augment) {
    auto ds = std::make_shared<data::FashionMnist>(fashion, "train", std::vector<double>{0.286},
                                                   std::vector<double>{0.353});
    if (augment) ds->set_augmentation(ra, data::Filter::kBicubic, 0.25);
    return ds;
  };
  time_loader("fashion_mnist", fashion_set(false));
  time_loader("fashion_mnist aug", fashion_set(true));
  if (!folder.empty()) {
    data::ImageFolderOptions o;
    o.img_size = img_size;
    time_loader("image_folder train", std::make_shared<data::ImageFolder>(folder, "train", o));
    o.rand_augment = ra;
    o.random_erasing = 0.25;
    time_loader("image_folder train aug", std::make_shared<data::ImageFolder>(folder, "train", o));
  }

  fmt::print("preset {}, batch {}, {} torch threads, {} timed steps\n\n", preset, batch, at::get_num_threads(), steps);
  fmt::print("| {:<46} | {:>10} | {:>10} | {:>10} |\n|{:-<48}|{:->12}|{:->12}|{:->12}|\n", "what", "img/s", "img/CPU-s",
             "vs FP step", "", "", "", "");
  for (const auto& [name, r, ratio] : rows) {
    fmt::print("| {:<46} | {:>10.0f} | {:>10.0f} | {:>10} |\n", name, r.wall, r.cpu, ratio);
  }
  fmt::print(
      "\nimg/s: wall clock; img/CPU-s: per second of CPU time of this process (all threads), which stays\n"
      "comparable when other jobs share the machine. Loader rows \"aug\": SPEC §8's per-image augmentations\n"
      "(RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25).\n");
  return 0;
}
