#include "csrc/train/metrics.h"

#include <torch/torch.h>

#include "csrc/train/log.h"

namespace mnq {
namespace train {

at::Device model_device(const models::Model& model) {
  const auto params = model.module->parameters();
  return params.empty() ? at::Device(at::kCPU) : params.front().device();
}

EvalMetrics evaluate(const models::Model& model, const data::Loader& loader, const std::string& label) {
  model.module->eval();
  torch::NoGradGuard no_grad;
  EvalMetrics m;
  double loss = 0;
  int64_t correct1 = 0, correct5 = 0, n = 0;
  Progress bar(label, loader.num_images());
  auto pass = loader.pass(0);
  const at::Device device = model_device(model);
  while (auto b = pass->next()) {
    const at::Tensor labels = b->labels.to(device);
    const at::Tensor logits = model(b->images.to(device));
    loss += torch::nn::functional::cross_entropy(
                logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                .item<double>();
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    const at::Tensor top = std::get<1>(logits.topk(k, 1));  // [B, k], best first
    const at::Tensor hit = top.eq(labels.unsqueeze(1));  // [B, k]
    const at::Tensor top1 = hit.select(1, 0).to(at::kCPU, at::kByte).contiguous();  // [B]
    correct1 += top1.sum().item<int64_t>();
    m.hits.insert(m.hits.end(), top1.data_ptr<uint8_t>(), top1.data_ptr<uint8_t>() + top1.numel());
    correct5 += hit.any(1).sum().item<int64_t>();
    n += b->labels.size(0);
    bar.update(b->labels.size(0), fmt::format("top-1 {:.2f}%", 100.0 * double(correct1) / double(n)));
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
