#include "csrc/jobs/bench.h"

#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <ctime>
#include <stdexcept>

#include "csrc/data/fashion_mnist.h"
#include "csrc/data/image_folder.h"
#include "csrc/data/loader.h"
#include "csrc/data/rand_augment.h"
#include "csrc/jobs/datasets.h"
#include "csrc/jobs/job_config.h"
#include "csrc/models/factory.h"
#include "csrc/models/op_counter.h"
#include "csrc/models/weights.h"
#include "csrc/nn/layers.h"

namespace mnq {
namespace train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU seconds used by this process (all threads): on a machine shared with other jobs, images per CPU-second
// stay meaningful when images per wall-second do not.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Images of the model's input shape made up from the index (no file, no decoding): the loader rows then time the
// loader's own work (threads, batching, copies).
class SyntheticImages : public data::Dataset {
 public:
  SyntheticImages(int64_t n, data::ImageShape shape, int64_t classes) : n_(n), shape_(shape), classes_(classes) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return classes_; }
  data::ImageShape shape() const override { return shape_; }
  int64_t label(int64_t index) const override { return index % classes_; }
  void load(int64_t index, uint64_t seed, float* out) const override {
    uint64_t x = uint64_t(index) * 0x9E3779B97F4A7C15ull ^ seed;
    for (int64_t i = 0; i < shape_.numel(); ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;  // an LCG: cheap, deterministic
      out[i] = float(x >> 40) * (1.0f / float(1 << 24)) - 0.5f;
    }
  }
  std::string describe() const override { return "synthetic (" + std::to_string(n_) + " images)"; }

 private:
  int64_t n_;
  data::ImageShape shape_;
  int64_t classes_;
};

}  // namespace

BenchResult bench_train(const BenchOptions& o) {
  if (o.batch <= 0) throw std::invalid_argument("bench: batch must be positive, got " + std::to_string(o.batch));
  if (o.steps <= 0) throw std::invalid_argument("bench: steps must be positive, got " + std::to_string(o.steps));
  for (const std::string& m : o.methods) {
    if (!is_plan_method(m))
      throw std::invalid_argument("bench: methods: unknown method '" + m + "' (ivit, ibert, fqvit)");
  }
  if (o.data != "fashion_mnist" && o.data != "synthetic" && o.data != "none") {
    throw std::invalid_argument("bench: data must be fashion_mnist, synthetic or none, got '" + o.data + "'");
  }
  if (o.device != "cpu" && o.device != "cuda") {
    throw std::invalid_argument("bench: device must be cpu or cuda, got '" + o.device + "'");
  }
  if (o.device == "cuda" && !at::hasCUDA()) throw std::invalid_argument("bench: device cuda, but no usable GPU");
  const bool cuda = o.device == "cuda";
  const at::Device device(cuda ? at::kCUDA : at::kCPU);
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };

  BenchResult result;
  result.options = o;
  result.threads = at::get_num_threads();
  const ModelShape shape = model_shape(o.preset, {});  // throws listing the presets
  at::manual_seed(0);
  const models::Model fp = models::create_fp(o.preset);
  fp.module->to(device);
  const at::Tensor x = at::randn({o.batch, shape.in_chans, shape.img_size, shape.img_size}).to(device);
  const at::Tensor y = at::randint(0, shape.num_classes, {o.batch}, at::kLong).to(device);

  // Rate of `steps` calls of `step` on the batch, after `warmup` untimed calls; then the host reads of one more
  // (untimed) call.
  auto rate = [&](auto&& step, BenchRow row) {
    for (int64_t i = 0; i < o.warmup; ++i) step();
    sync();
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    for (int64_t i = 0; i < o.steps; ++i) step();
    sync();
    const double images = double(o.batch * o.steps);
    row.img_s = images / seconds_since(t0);
    row.img_cpu_s = images / std::max(cpu_seconds() - c0, 1e-9);
    {
      models::OpCounter reads;
      step();
      row.host_reads = reads.count();
    }
    sync();
    return row;
  };
  double fp_train = 0, fp_eval = 0;
  auto time_model = [&](const models::Model& m, const std::string& label, const std::string& method) {
    torch::optim::AdamW opt(m.module->parameters(), torch::optim::AdamWOptions(1e-5));
    m.module->train();
    BenchRow tr = rate(
        [&] {
          auto loss = torch::nn::functional::cross_entropy(m(x), y);
          opt.zero_grad();
          loss.backward();
          opt.step();
        },
        {label + " train step", "train", method});
    m.module->eval();
    nn::FrozenWeightsScope frozen;  // as the trainer's evaluation (train/metrics.cpp): weights quantized once
    BenchRow ev = rate(
        [&] {
          torch::NoGradGuard g;
          m(x);
        },
        {label + " eval", "eval", method});
    if (method == "fp") {
      fp_train = tr.img_s;
      fp_eval = ev.img_s;
    }
    tr.vs_fp = tr.img_s / fp_train;
    ev.vs_fp = ev.img_s / fp_eval;
    result.rows.push_back(tr);
    result.rows.push_back(ev);
  };
  time_model(fp, "FP", "fp");
  for (const std::string& method : o.methods) {
    const models::Model q = models::create_quant(o.preset, {o.bits, models::Plan::uniform(method)});
    models::copy_parameters(*fp.module, *q.module);
    q.module->to(device);
    time_model(q, "QAT W" + std::to_string(o.bits) + " " + method, method);
  }

  auto time_loader = [&](const std::string& label, std::shared_ptr<data::Dataset> ds) {
    ds = data::subset(ds, o.loader_images, 0);
    const data::Loader loader(ds, {o.batch, true, false, o.workers, 4, 0, cuda});  // pinned for a GPU, as mnq-train
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    int64_t n = 0;
    auto pass = loader.pass(0);
    while (auto b = pass->next()) n += b->labels.size(0);
    BenchRow row{"loader " + label + " (" + std::to_string(o.workers) + " workers)", "loader", label};
    row.img_s = double(n) / seconds_since(t0);
    row.img_cpu_s = double(n) / std::max(cpu_seconds() - c0, 1e-9);
    result.rows.push_back(row);
  };
  // SPEC §8's per-image augmentations (the job defaults: RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25)
  // in "aug" rows beside the plain loaders.
  const data::RandAugmentConfig ra = data::parse_rand_augment("rand-m9-mstd0.5-inc1");
  if (o.data == "fashion_mnist") {
    for (const bool augment : {false, true}) {
      auto ds = std::make_shared<data::FashionMnist>(o.fashion_root.empty() ? data::kFashionMnistRoot : o.fashion_root,
                                                     "train", std::vector<double>{0.286}, std::vector<double>{0.353});
      if (augment) ds->set_augmentation(ra, data::Filter::kBicubic, 0.25);
      time_loader(augment ? "fashion_mnist aug" : "fashion_mnist", ds);
    }
  } else if (o.data == "synthetic") {
    time_loader("synthetic", std::make_shared<SyntheticImages>(
                                 o.loader_images, data::ImageShape{shape.in_chans, shape.img_size, shape.img_size},
                                 shape.num_classes));
  }
  if (!o.image_folder.empty()) {
    data::ImageFolderOptions f;
    f.img_size = o.img_size;
    time_loader("image_folder", std::make_shared<data::ImageFolder>(o.image_folder, "train", f));
    f.rand_augment = ra;
    f.random_erasing = 0.25;
    time_loader("image_folder aug", std::make_shared<data::ImageFolder>(o.image_folder, "train", f));
  }
  return result;
}

std::string bench_table(const BenchResult& r) {
  const BenchOptions& o = r.options;
  std::string out = fmt::format("preset {}, batch {}, W/A {} for QAT, {} torch threads, device {}, {} timed steps\n\n",
                                o.preset, o.batch, o.bits, r.threads, o.device, o.steps);
  out += fmt::format("| {:<38} | {:>10} | {:>10} | {:>10} | {:>10} |\n|{:-<40}|{:->12}|{:->12}|{:->12}|{:->12}|\n",
                     "what", "img/s", "img/CPU-s", "vs FP", "host reads", "", "", "", "", "");
  for (const BenchRow& row : r.rows) {
    const bool loader = row.kind == "loader";
    out += fmt::format("| {:<38} | {:>10.0f} | {:>10.0f} | {:>10} | {:>10} |\n", row.name, row.img_s, row.img_cpu_s,
                       loader ? "" : fmt::format("{:.2f}", row.vs_fp), loader ? "" : std::to_string(row.host_reads));
  }
  out +=
      "\nimg/s: wall clock; img/CPU-s: per second of CPU time of this process (all threads), which stays comparable "
      "when\nother jobs share the machine; vs FP: img/s over the FP row of the same kind (train step or eval), same "
      "run;\nhost reads: tensor values read back to the host in one more step (each a device sync on a GPU).\n";
  return out;
}

}  // namespace train
}  // namespace mnq
