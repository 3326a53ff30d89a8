#include "csrc/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>

#include "csrc/models/weights.h"

namespace mnq {
namespace train {
namespace {

using models::NamedTensors;
using nlohmann::json;

// Parameter name of every optimizer parameter, by TensorImpl (the key of the optimizer's state map).
std::map<const void*, std::string> param_names(const torch::nn::Module& module) {
  std::map<const void*, std::string> names;
  for (const auto& p : module.named_parameters()) names[p.value().unsafeGetTensorImpl()] = p.key();
  return names;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("checkpoint " + path + ": " + what);
}

std::string describe(const at::Tensor& t) { return c10::str(t.scalar_type(), " ", t.sizes()); }

// The first key path where `have` and `want` differ ("" when equal).
std::string first_difference(const json& have, const json& want, const std::string& prefix) {
  if (have.is_object() && want.is_object()) {
    for (const auto& [k, v] : want.items()) {
      const std::string key = prefix.empty() ? k : prefix + "." + k;
      if (!have.contains(k)) return key;
      if (std::string d = first_difference(have[k], v, key); !d.empty()) return d;
    }
    for (const auto& [k, v] : have.items()) {
      if (!want.contains(k)) return prefix.empty() ? k : prefix + "." + k;
    }
    return "";
  }
  return have == want ? "" : (prefix.empty() ? "(all)" : prefix);
}

const json* at_path(const json& j, const std::string& path) {
  const json* p = &j;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string k = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    // plan keys (layer names) contain dots: try the longest key first
    if (p->is_object() && p->contains(path.substr(start))) return &(*p)[path.substr(start)];
    if (!p->is_object() || !p->contains(k)) return nullptr;
    p = &(*p)[k];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return p;
}

void check_trained_for_json(const std::string& path, const json& have, const json& want) {
  if (want.is_null()) return;
  if (have.is_null()) {
    fail(path, "field 'trained_for' is missing (a checkpoint of an older mnq): it cannot be checked against this "
               "job, so it is not resumed; start a new output.dir");
  }
  const std::string key = first_difference(have, want, "");
  if (key.empty()) return;
  const json* a = at_path(have, key);
  const json* b = at_path(want, key);
  fail(path, "was trained for " + key + " = " + (a ? a->dump() : "(none)") + ", this job asks for " +
                 (b ? b->dump() : "(none)") + "; resume refused (restore the job's config or use another output.dir)");
}

std::pair<TrainState, int64_t> parse_state(const std::string& path, const at::Tensor& bytes,
                                           const CheckpointExpect& expect) {
  if (bytes.scalar_type() != at::kByte || bytes.dim() != 1) {
    fail(path, "'state.json' must be a 1-D uint8 tensor, got " + describe(bytes));
  }
  const at::Tensor t = bytes.contiguous();
  const std::string text(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), size_t(t.numel()));
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(path, std::string("'state.json' is not valid JSON: ") + e.what());
  }
  TrainState s = TrainState::from_json(j, path, expect.batches_per_epoch, expect.batch_size);
  check_trained_for_json(path, s.trained_for, expect.trained_for);
  const auto it = j.find("optim_params");
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0) {
    fail(path, "field 'optim_params' is missing or not a non-negative integer");
  }
  return {std::move(s), it->get<int64_t>()};
}

}  // namespace

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
  json j = state.to_json();
  j["optim_params"] = int64_t(optimizer.state().size());
  const std::string text = j.dump();
  at::Tensor bytes = at::empty({int64_t(text.size())}, at::kByte);
  std::memcpy(bytes.data_ptr<uint8_t>(), text.data(), text.size());
  out.emplace_back("state.json", bytes);
  if (!state.eval_hits.empty()) {
    at::Tensor hits = at::empty({int64_t(state.eval_hits.size())}, at::kByte);
    std::memcpy(hits.data_ptr<uint8_t>(), state.eval_hits.data(), state.eval_hits.size());
    out.emplace_back("eval.hits", hits);
  }
  models::write_safetensors(path, out);
}

TrainState load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::AdamW& optimizer,
                           const CheckpointExpect& expect) {
  std::map<std::string, at::Tensor> file;
  for (auto& [k, v] : models::read_safetensors(path)) file[k] = v;
  auto take = [&](const std::string& key) {
    const auto it = file.find(key);
    if (it == file.end()) fail(path, "missing '" + key + "'");
    at::Tensor t = it->second;
    file.erase(it);
    return t;
  };
  // A tensor standing for `like`: same shape and dtype (a weight stored as int32 is refused, not cast).
  auto take_like = [&](const std::string& key, const at::Tensor& like) {
    if (!file.count(key)) fail(path, "missing '" + key + "' (a checkpoint of another model or plan?)");
    at::Tensor t = take(key);
    if (t.sizes() != like.sizes() || t.scalar_type() != like.scalar_type()) {
      fail(path, "'" + key + "' is " + describe(t) + ", the model's is " + describe(like));
    }
    return t;
  };

  // 1. Validate everything; nothing of the module, optimizer or generator changes before all of it passed.
  auto [state, optim_params] = parse_state(path, take("state.json"), expect);
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
  for (auto& p : module.named_parameters()) copies.emplace_back(p.value(), take_like("model." + p.key(), p.value()));
  for (auto& b : module.named_buffers()) copies.emplace_back(b.value(), take_like("model." + b.key(), b.value()));
  const auto names = param_names(module);
  std::map<void*, std::unique_ptr<torch::optim::AdamWParamState>> states;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      const std::string prefix = "optim." + names.at(p.unsafeGetTensorImpl());
      const bool any = file.count(prefix + ".step") || file.count(prefix + ".exp_avg") ||
                       file.count(prefix + ".exp_avg_sq");
      if (!any) continue;  // a parameter that never had a gradient has no AdamW state
      const at::Tensor step = take(prefix + ".step");
      if (step.dim() != 0 || step.scalar_type() != at::kLong) {
        fail(path, "'" + prefix + ".step' must be a 0-d int64 tensor, got " + describe(step));
      }
      const int64_t n = step.item<int64_t>();
      if (n < 1 || n > state.step) {
        fail(path, "'" + prefix + ".step' is " + std::to_string(n) + ", must lie in [1, step = " +
                       std::to_string(state.step) + "]");
      }
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(n);
      s->exp_avg(take_like(prefix + ".exp_avg", p.detach()).to(p.device(), /*non_blocking=*/false, /*copy=*/true));
      s->exp_avg_sq(take_like(prefix + ".exp_avg_sq", p.detach()).to(p.device(), false, true));
      states[p.unsafeGetTensorImpl()] = std::move(s);
    }
  }
  if (int64_t(states.size()) != optim_params || (state.step > 0 && states.empty())) {
    fail(path, "optimizer state for " + std::to_string(states.size()) + " parameters, state.json's optim_params says " +
                   std::to_string(optim_params) + " (step " + std::to_string(state.step) +
                   "): the optimizer state is incomplete");
  }
  if (!file.count("rng.cpu")) fail(path, "missing 'rng.cpu' (the CPU generator's state)");
  const at::Tensor rng = take("rng.cpu");
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const at::Tensor like = gen.get_state();
  if (rng.scalar_type() != at::kByte || rng.sizes() != like.sizes()) {
    fail(path, "'rng.cpu' is " + describe(rng) + ", the CPU generator's state is " + describe(like));
  }
  if (file.count("eval.hits")) {
    const at::Tensor h = take("eval.hits").contiguous();
    if (h.scalar_type() != at::kByte || h.dim() != 1) fail(path, "'eval.hits' must be a 1-D uint8 tensor, got " + describe(h));
    state.eval_hits.assign(h.data_ptr<uint8_t>(), h.data_ptr<uint8_t>() + h.numel());
  }
  if (!file.empty()) fail(path, "unexpected key '" + file.begin()->first + "' (a checkpoint of another model?)");

  // 2. Apply.
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
  auto& target = optimizer.state();
  target.clear();
  for (auto& [impl, s] : states) target[impl] = std::move(s);
  gen.set_state(rng);
  return state;
}

void check_trained_for(const std::string& path, const json& expected) {
  if (!std::filesystem::exists(path)) return;
  for (auto& [k, v] : models::read_safetensors(path)) {
    if (k != "state.json") continue;
    const at::Tensor t = v.contiguous();
    if (t.scalar_type() != at::kByte) break;
    json j;
    try {
      j = json::parse(std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), size_t(t.numel())));
    } catch (const json::exception&) {
      break;  // load_checkpoint names the problem
    }
    check_trained_for_json(path, j.is_object() && j.contains("trained_for") ? j["trained_for"] : json(), expected);
  }
}

}  // namespace train
}  // namespace mnq
