#include "csrc/train/integer_eval.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "csrc/deploy/integer_model.h"
#include "csrc/models/device.h"
#include "csrc/train/data_parallel.h"
#include "csrc/train/metrics.h"
#include "csrc/util/atomic_file.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kFnvOffset = 14695981039346656037ull, kFnvPrime = 1099511628211ull;

void fnv(uint64_t& h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
}

void fnv_tensor(uint64_t& h, const std::string& name, const at::Tensor& t) {
  fnv(h, name.data(), name.size() + 1);
  const std::string type = c10::toString(t.scalar_type());
  fnv(h, type.data(), type.size() + 1);
  for (int64_t s : t.sizes()) fnv(h, &s, sizeof s);
  const at::Tensor c = t.detach().to(at::kCPU).contiguous();
  fnv(h, c.data_ptr(), size_t(c.numel()) * c.element_size());
}

// One pass over the test set with both models: per batch, [integer top-1 hits, top-1 agreements, equal logits,
// equal images] as float64 sums (exact), added up after the pass. The integer model runs on the CPU, its tested
// device (the engine's CUDA path has not run on a GPU yet); a CUDA fake-quant model's logits are copied to the CPU
// per batch (an evaluation, not a training step).
IntegerMetrics evaluate_both(const models::Model& model, const deploy::IntegerModel& imodel, const data::Loader& val,
                             const std::string& name) {
  torch::NoGradGuard no_grad;
  const at::Device device = models::model_device(model);
  log::Progress bar(name + " integer eval", val.num_images());
  auto pass = val.pass(0);
  std::vector<at::Tensor> sums;
  int64_t n = 0;
  bool distilled = false;
  const int64_t batch_size = val.options().batch_size;
  int64_t batch = 0;
  while (auto b = pass->next()) {
    bar.update(std::min(batch_size, val.num_images() - batch++ * batch_size));  // the global batch's images
    if (b->labels.size(0) == 0) continue;  // data-parallel: a last batch smaller than the number of ranks
    const at::Tensor& labels = b->labels;
    const at::Tensor fake = model(models::to_device_async(b->images, device)).to(at::kCPU);  // [B, K] float32
    auto [q, s] = imodel.forward_int(b->images);
    const at::Tensor logits = deploy::IntegerModel::dequantize(q, s);
    const at::Tensor top1 = logits.argmax(1);
    std::vector<at::Tensor> row = {top1.eq(labels).sum().to(at::kDouble), top1.eq(fake.argmax(1)).sum().to(at::kDouble)};
    distilled = q.dim() == 3;
    if (!distilled) {
      // The fake-quant head is a float32 GEMM of codes: its logits are acc·S up to float rounding, and the code
      // round(logits/S) is the accumulator both paths compute (tests/python/deploy_util.py does the same).
      const at::Tensor equal = at::round(fake.to(at::kDouble) / s).to(at::kLong).eq(q.to(at::kLong));  // [B, K]
      row.push_back(equal.sum().to(at::kDouble));
      row.push_back(equal.all(1).sum().to(at::kDouble));
    } else {
      row.push_back(at::zeros({}, logits.options().dtype(at::kDouble)));
      row.push_back(at::zeros({}, logits.options().dtype(at::kDouble)));
    }
    sums.push_back(at::stack(row));
    n += b->labels.size(0);
  }
  // Data-parallel: each rank evaluated its shard of every batch; the counts add up to the whole test set's.
  at::Tensor total = at::zeros({5}, at::kDouble);
  if (!sums.empty()) total.narrow(0, 0, 4).copy_(at::stack(sums).sum(0).to(at::kCPU));
  total[4] = double(n);
  dp::sum_over_ranks(total);
  total = total.contiguous();
  n = int64_t(total[4].item<double>());
  distilled = distilled || imodel.distilled();
  IntegerMetrics m;
  m.n = n;
  if (n > 0) {
    const double* t = total.data_ptr<double>();
    m.top1 = t[0] / double(n);
    m.top1_agree = t[1] / double(n);
    if (!distilled) {
      m.equal_logits = t[2] / double(n * imodel.num_classes());
      m.equal_images = t[3] / double(n);
    }
  }
  bar.done(fmt::format("top-1 {:.2f}%, same top-1 as fake quant {:.2f}%", 100 * m.top1, 100 * m.top1_agree));
  return m;
}

}  // namespace

nlohmann::json IntegerMetrics::to_json() const {
  if (!skipped.empty()) return {{"skipped", skipped}};
  auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  return {{"top1", top1},
          {"top1_agree", top1_agree},
          {"equal_logits", opt(equal_logits)},
          {"equal_images", opt(equal_images)},
          {"test_images", n},
          {"weights_hash", weights_hash}};
}

IntegerMetrics IntegerMetrics::from_json(const nlohmann::json& j, const std::string& path) {
  IntegerMetrics m;
  try {
    auto opt = [&](const char* key) {
      const auto& v = j.at(key);
      return v.is_null() ? std::optional<double>() : std::optional<double>(v.get<double>());
    };
    m.top1 = j.at("top1").get<double>();
    m.top1_agree = j.at("top1_agree").get<double>();
    m.equal_logits = opt("equal_logits");
    m.equal_images = opt("equal_images");
    m.n = j.at("test_images").get<int64_t>();
    m.weights_hash = j.at("weights_hash").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not an integer model's evaluation (" + e.what() + ")");
  }
  return m;
}

std::string weights_hash(const torch::nn::Module& module) {
  uint64_t h = kFnvOffset;
  for (const auto& p : module.named_parameters(true)) fnv_tensor(h, p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) fnv_tensor(h, b.key(), b.value());
  return fmt::format("{:016x}", h);
}

IntegerMetrics export_integer_model(const models::Model& model, const data::Loader& val, const std::string& run_dir,
                                    const std::string& name) {
  model.module->eval();
  if (model.bits > 8) {
    IntegerMetrics m;
    m.skipped = fmt::format("W/A {} > 8: the integer engine takes at most 8 bits", model.bits);
    log::info("{}: no integer model ({})", name, m.skipped);
    return m;
  }
  const std::string file = run_dir + "/model.int.safetensors", doc = run_dir + "/model.int.json";
  const std::string hash = weights_hash(*model.module);
  if (fs::exists(doc) && fs::exists(file)) {
    const IntegerMetrics saved = IntegerMetrics::from_json(nlohmann::json::parse(util::read_file(doc), nullptr, false),
                                                           doc);
    if (saved.weights_hash == hash && saved.n == val.num_images()) {
      log::info("{}: integer model already exported ({})", name, file);
      return saved;
    }
  }
  deploy::IntegerModel imodel = deploy::convert(model);
  imodel.save(file);
  IntegerMetrics m = evaluate_both(model, imodel, val, name);
  m.weights_hash = hash;
  util::write_file_atomic(doc, m.to_json().dump(2) + "\n");
  log::info("{}: integer model {}: top-1 {:.2f}%, top-1 as fake quant on {:.2f}% of {} images, equal logits {}",
            name, file, 100 * m.top1, 100 * m.top1_agree, m.n,
            m.equal_logits ? fmt::format("{:.3f}%", 100 * *m.equal_logits) : std::string("n/a (distilled)"));
  return m;
}

}  // namespace train
}  // namespace mnq
