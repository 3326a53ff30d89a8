#include "csrc/train/metrics.h"

#include <torch/torch.h>

#include <vector>

#include "csrc/models/device.h"
#include "csrc/nn/layers.h"
#include "csrc/train/data_parallel.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {

EvalMetrics evaluate(const models::Model& model, const data::Loader& loader, const std::string& label) {
  model.module->eval();
  torch::NoGradGuard no_grad;
  nn::FrozenWeightsScope frozen;  // the weights do not change during an evaluation: each quantized once
  EvalMetrics m;
  double loss = 0;
  int64_t correct1 = 0, correct5 = 0, n = 0;
  log::Progress bar(label, loader.num_images());
  auto pass = loader.pass(0);
  const at::Device device = models::model_device(model);
  // Per batch, on the device: [loss sum, top-5 hits] (float64, exact) and the top-1 hits; read back once after the
  // pass, so no batch waits for the host (a GPU runs ahead). The host adds the loss sums in batch order.
  // Data-parallel: the loader yields this rank's slice of each batch; the positions of its images in the epoch's
  // order place its hits in the gathered, one-process order (dp::gather_eval).
  std::vector<at::Tensor> sums, top1s;
  std::vector<int64_t> positions;
  const int64_t batch_size = loader.options().batch_size;
  int64_t batch = 0;
  while (auto b = pass->next()) {
    const auto [first, count] = loader.shard_range(batch);
    const int64_t global_count = std::min(batch_size, loader.num_images() - batch * batch_size);
    ++batch;
    n += global_count;
    bar.update(global_count);
    if (count == 0) {  // a last batch smaller than the number of ranks
      sums.push_back(at::zeros({2}, at::TensorOptions(device).dtype(at::kDouble)));
      continue;
    }
    for (int64_t k = 0; k < count; ++k) positions.push_back(first + k);
    const at::Tensor labels = models::to_device_async(b->labels, device);
    const at::Tensor logits = model(models::to_device_async(b->images, device));
    const at::Tensor batch_loss = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    const at::Tensor top = std::get<1>(logits.topk(k, 1));  // [B, k], best first
    const at::Tensor hit = top.eq(labels.unsqueeze(1));     // [B, k]
    sums.push_back(at::stack({batch_loss.to(at::kDouble), hit.any(1).sum().to(at::kDouble)}));
    top1s.push_back(hit.select(1, 0).to(at::kByte));  // [B]
  }
  if (!sums.empty()) {
    const at::Tensor local_hits =
        top1s.empty() ? at::zeros({0}, at::TensorOptions(device).dtype(at::kByte)) : at::cat(top1s);
    const auto [all_sums, all_hits] =
        dp::gather_eval(at::stack(sums), local_hits, at::tensor(positions, at::kLong).to(device), n);
    const at::Tensor s = all_sums.to(at::kCPU).contiguous();  // [batches, 2]
    const at::Tensor hits = all_hits.to(at::kCPU).contiguous();  // [n]
    const double* p = s.data_ptr<double>();
    for (int64_t i = 0; i < s.size(0); ++i) {
      loss += p[2 * i];
      correct5 += int64_t(p[2 * i + 1]);
    }
    const uint8_t* h = hits.data_ptr<uint8_t>();
    m.hits.assign(h, h + hits.numel());
    for (uint8_t v : m.hits) correct1 += v;
  }
  m.n = n;
  if (n > 0) {
    m.loss = loss / double(n);
    m.top1 = double(correct1) / double(n);
    m.top5 = double(correct5) / double(n);
  }
  bar.done(fmt::format("loss {:.4f} top-1 {:.2f}% top-5 {:.2f}%", m.loss, 100 * m.top1, 100 * m.top5));
  return m;
}

}  // namespace train
}  // namespace mnq
