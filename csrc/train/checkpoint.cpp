#include "csrc/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstring>
#include <map>
#include <stdexcept>

#include "csrc/models/weights.h"

namespace mnq {
namespace train {
namespace {

using models::NamedTensors;

// Parameter name of every optimizer parameter, by TensorImpl (the key of the optimizer's state map).
std::map<const void*, std::string> param_names(const torch::nn::Module& module) {
  std::map<const void*, std::string> names;
  for (const auto& p : module.named_parameters()) names[p.value().unsafeGetTensorImpl()] = p.key();
  return names;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("checkpoint " + path + ": " + what);
}

}  // namespace

nlohmann::json TrainState::to_json() const {
  return {{"epoch", epoch},
          {"batch", batch},
          {"step", step},
          {"elapsed_s", elapsed_s},
          {"part_loss", part_loss},
          {"part_correct", part_correct},
          {"part_seen", part_seen},
          {"best_top1", best_top1},
          {"best_epoch", best_epoch},
          {"finished", finished},
          {"budget_spent", budget_spent},
          {"history", history}};
}

TrainState TrainState::from_json(const nlohmann::json& j) {
  TrainState s;
  s.epoch = j.at("epoch");
  s.batch = j.at("batch");
  s.step = j.at("step");
  s.elapsed_s = j.at("elapsed_s");
  s.part_loss = j.at("part_loss");
  s.part_correct = j.at("part_correct");
  s.part_seen = j.at("part_seen");
  s.best_top1 = j.at("best_top1");
  s.best_epoch = j.at("best_epoch");
  s.finished = j.at("finished");
  s.budget_spent = j.at("budget_spent");
  s.history = j.at("history");
  return s;
}

void save_checkpoint(const std::string& path, const torch::nn::Module& module, torch::optim::AdamW& optimizer,
                     const TrainState& state) {
  NamedTensors out;
  for (const auto& p : module.named_parameters()) out.emplace_back("model." + p.key(), p.value().detach());
  for (const auto& b : module.named_buffers()) out.emplace_back("model." + b.key(), b.value());
  const auto names = param_names(module);
  for (const auto& [impl, st] : optimizer.state()) {
    const auto it = names.find(impl);
    if (it == names.end()) throw std::logic_error("save_checkpoint: an optimizer parameter is not in the module");
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*st);
    out.emplace_back("optim." + it->second + ".exp_avg", s.exp_avg());
    out.emplace_back("optim." + it->second + ".exp_avg_sq", s.exp_avg_sq());
    out.emplace_back("optim." + it->second + ".step", at::scalar_tensor(s.step(), at::kLong));
  }
  out.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  const std::string json = state.to_json().dump();
  at::Tensor bytes = at::empty({int64_t(json.size())}, at::kByte);
  std::memcpy(bytes.data_ptr<uint8_t>(), json.data(), json.size());
  out.emplace_back("state.json", bytes);
  if (!state.eval_hits.empty()) {
    at::Tensor hits = at::empty({int64_t(state.eval_hits.size())}, at::kByte);
    std::memcpy(hits.data_ptr<uint8_t>(), state.eval_hits.data(), state.eval_hits.size());
    out.emplace_back("eval.hits", hits);
  }
  models::write_safetensors(path, out);
}

TrainState load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::AdamW& optimizer) {
  std::map<std::string, at::Tensor> file;
  for (auto& [k, v] : models::read_safetensors(path)) file[k] = v;
  auto take = [&](const std::string& key, const at::Tensor& like) {
    const auto it = file.find(key);
    if (it == file.end()) fail(path, "missing '" + key + "' (a checkpoint of another model or plan?)");
    if (it->second.sizes() != like.sizes()) {
      fail(path,
           "'" + key + "' has shape " + c10::str(it->second.sizes()) + ", the model has " + c10::str(like.sizes()));
    }
    at::Tensor t = it->second;
    file.erase(it);
    return t;
  };
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters()) p.value().copy_(take("model." + p.key(), p.value()));
  for (auto& b : module.named_buffers()) b.value().copy_(take("model." + b.key(), b.value()));
  // Optimizer state for every parameter the file has one for (none before the first step).
  const auto names = param_names(module);
  auto& states = optimizer.state();
  states.clear();
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      const std::string name = names.at(p.unsafeGetTensorImpl());
      if (!file.count("optim." + name + ".step")) continue;
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(take("optim." + name + ".step", at::scalar_tensor(0, at::kLong)).item<int64_t>());
      s->exp_avg(take("optim." + name + ".exp_avg", p).to(p.device(), /*non_blocking=*/false, /*copy=*/true));
      s->exp_avg_sq(take("optim." + name + ".exp_avg_sq", p).to(p.device(), false, true));
      states[p.unsafeGetTensorImpl()] = std::move(s);
    }
  }
  const auto rng = file.find("rng.cpu");
  if (rng == file.end()) fail(path, "missing 'rng.cpu'");
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng->second);
  file.erase(rng);
  const auto st = file.find("state.json");
  if (st == file.end()) fail(path, "missing 'state.json'");
  const std::string json(reinterpret_cast<const char*>(st->second.data_ptr<uint8_t>()), size_t(st->second.numel()));
  file.erase(st);
  std::vector<uint8_t> hits;
  if (const auto h = file.find("eval.hits"); h != file.end()) {
    if (h->second.scalar_type() != at::kByte || h->second.dim() != 1) {
      fail(path, "'eval.hits' must be a 1-D uint8 tensor, got " + c10::str(h->second.scalar_type(), " ",
                                                                              h->second.sizes()));
    }
    const at::Tensor t = h->second.contiguous();
    hits.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
    file.erase(h);
  }
  if (!file.empty()) fail(path, "unexpected key '" + file.begin()->first + "' (a checkpoint of another model?)");
  try {
    TrainState state = TrainState::from_json(nlohmann::json::parse(json));
    state.eval_hits = std::move(hits);
    return state;
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("bad state.json: ") + e.what());
  }
}

}  // namespace train
}  // namespace mnq
