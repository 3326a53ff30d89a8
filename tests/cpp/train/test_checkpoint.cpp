// Checkpoints read back are checked against the job before anything is restored (checkpoint.h): hand-edited
// progress fields, a step that disagrees with the batches per epoch, missing optimizer state, a wrong RNG state, a
// weight of another dtype, a checkpoint trained for another stage: each a one-line error naming the file and the
// field, and the model left as it was.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "csrc/models/factory.h"
#include "csrc/models/weights.h"
#include "csrc/train/checkpoint.h"
#include "train_test_util.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::TempDir;
using nlohmann::json;

namespace {

constexpr int64_t kPerEpoch = 4, kBatch = 8;

// A model, its optimizer after 6 steps (epoch 1, batch 2 of 4), and a checkpoint of it: made once for the file.
struct Base {
  TempDir dir{"ckpt"};
  std::string path = dir / "checkpoint.safetensors";
  models::Model model = [] {
    at::set_num_threads(1);
    at::manual_seed(0);
    return models::create_fp("vit_mnist_tiny");
  }();
  torch::optim::AdamW opt{model.module->parameters()};
  json trained_for = {{"stage", "qat"}, {"bits", 8}, {"plan", {{"all", "ivit"}}}};

  Base() {
    for (int i = 0; i < 6; ++i) {
      opt.zero_grad();
      model(at::randn({2, 1, 28, 28})).square().mean().backward();
      opt.step();
    }
    TrainState st;
    st.epoch = 1;
    st.batch = 2;
    st.step = 6;
    st.part_seen = 16;
    st.part_correct = 3;
    st.part_loss = 30.5;
    st.best_top1 = 0.25;
    st.best_epoch = 1;
    st.history = {HistoryEntry::from_json({{"epoch", 1.0}, {"train_loss", 2.0}, {"train_top1", 0.1}, {"lr", 1e-3},
                                           {"val_loss", 2.1}, {"val_top1", 0.25}, {"val_top5", 0.6}, {"val_n", 4},
                                           {"epoch_s", 0.5}, {"train_img_s", 64.0}, {"elapsed_s", 0.5}})};
    st.trained_for = trained_for;
    save_checkpoint(path, *model.module, opt, st);
  }
};

Base& base() {
  static Base b;
  return b;
}

// A copy of the base checkpoint to edit, loaded into the base model (a refused load changes nothing of it).
struct Fixture {
  Base& b = base();
  models::Model& model = b.model;
  json trained_for = b.trained_for;
  std::string path;

  Fixture() {
    static int counter = 0;
    path = b.dir / ("edited" + std::to_string(counter++) + ".safetensors");
    std::filesystem::copy_file(b.path, path, std::filesystem::copy_options::overwrite_existing);
  }

  CheckpointExpect expect() const { return {trained_for, kPerEpoch, kBatch}; }

  // Rewrites the checkpoint: `edit` changes the tensors (by name) and state.json.
  void edit(const std::function<void(std::map<std::string, at::Tensor>&, json&)>& change) {
    std::map<std::string, at::Tensor> t;
    for (auto& [k, v] : models::read_safetensors(path)) t[k] = v;
    const at::Tensor s = t.at("state.json");
    json j = json::parse(std::string(reinterpret_cast<const char*>(s.data_ptr<uint8_t>()), size_t(s.numel())));
    change(t, j);
    const std::string text = j.dump();
    at::Tensor bytes = at::empty({int64_t(text.size())}, at::kByte);
    std::memcpy(bytes.data_ptr<uint8_t>(), text.data(), text.size());
    t["state.json"] = bytes;
    models::write_safetensors(path, models::NamedTensors(t.begin(), t.end()));
  }
  void set(const std::string& key, const json& value) {
    edit([&](auto&, json& j) { j[key] = value; });
  }
};

}  // namespace

TEST_CASE("checkpoint: a saved stage loads back exactly", "[checkpoint]") {
  Fixture f;
  const at::Tensor w = f.model.module->named_parameters()["head.weight"].clone();
  const at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  at::randn({100});  // moves the generator on
  {
    torch::NoGradGuard no_grad;
    f.model.module->named_parameters()["head.weight"].add_(1.0);  // and the weights
  }
  torch::optim::AdamW opt2(f.model.module->parameters());
  const TrainState st = load_checkpoint(f.path, *f.model.module, opt2, f.expect());
  CHECK(st.epoch == 1);
  CHECK(st.batch == 2);
  CHECK(st.step == 6);
  CHECK(st.trained_for == f.trained_for);
  CHECK(opt2.state().size() == f.b.opt.state().size());
  CHECK(at::equal(f.model.module->named_parameters()["head.weight"], w));
  CHECK(at::equal(at::detail::getDefaultCPUGenerator().get_state(), rng));
}

TEST_CASE("checkpoint: edited or foreign progress fields are refused naming the field", "[checkpoint]") {
  Fixture f;
  const at::Tensor before = f.model.module->named_parameters()["head.weight"].clone();
  auto refused = [&](const std::string& what) {
    torch::optim::AdamW opt(f.model.module->parameters());
    CHECK_THROWS_WITH(load_checkpoint(f.path, *f.model.module, opt, f.expect()),
                      Catch::StartsWith("checkpoint " + f.path + ": ") && Catch::Contains(what));
  };
  const std::vector<std::tuple<std::string, json, std::string>> cases = {
      {"batch", 1e12, "field 'batch' must be an integer, got 1000000000000.0"},
      {"batch", -1, "field 'batch' is -1, must lie in [0, 3]"},
      {"batch", 4, "field 'batch' is 4, must lie in [0, 3]"},
      {"epoch", -2, "field 'epoch' is -2"},
      {"epoch", "1", "field 'epoch' must be an integer"},
      {"epoch", uint64_t(1) << 63, "field 'epoch' is out of range"},
      {"step", 7, "field 'step' is 7 but epoch 1 × 4 batches per epoch + batch 2"},
      {"epoch", int64_t(1) << 62, "field 'step' is 6 but epoch 4611686018427387904 × 4"},
      {"part_seen", 17, "field 'part_seen' is 17, must lie in [0, 16]"},
      {"part_correct", 20, "field 'part_correct' is 20"},
      {"part_loss", -1.0, "field 'part_loss'"},
      {"elapsed_s", nullptr, "field 'elapsed_s' must be a number"},
      {"best_top1", 1.5, "field 'best_top1'"},
      {"finished", 1, "field 'finished' must be true or false"},
      {"history", json::array({{{"epoch", 1}}}), "field 'history[0].train_loss' is missing"},
      {"trained_for", {{"stage", "qat"}, {"bits", 6}, {"plan", {{"all", "ivit"}}}},
       "was trained for bits = 6, this job asks for 8; resume refused"},
      {"trained_for", nullptr, "field 'trained_for' is missing"},
      {"optim_params", 3, "optimizer state for"},
  };
  for (const auto& [key, value, message] : cases) {
    INFO(key << " = " << value.dump());
    Fixture g;
    g.set(key, value);
    torch::optim::AdamW opt(g.model.module->parameters());
    CHECK_THROWS_WITH(load_checkpoint(g.path, *g.model.module, opt, g.expect()),
                      Catch::StartsWith("checkpoint " + g.path + ": ") && Catch::Contains(message));
  }
  // A missing field, and the plan of another run.
  f.edit([](auto&, json& j) { j.erase("batch"); });
  refused("field 'batch' is missing");
  f.edit([](auto&, json& j) { j["batch"] = 2; j["trained_for"]["plan"]["blocks.0.attn.softmax"] = "ibert"; });
  refused("was trained for plan.blocks.0.attn.softmax = \"ibert\", this job asks for (none)");
  CHECK(at::equal(f.model.module->named_parameters()["head.weight"], before));  // nothing restored
}

TEST_CASE("checkpoint: missing optimizer state, a wrong RNG state or a recast weight are refused", "[checkpoint]") {
  auto refused = [](Fixture& f, const std::string& what) {
    torch::optim::AdamW opt(f.model.module->parameters());
    CHECK_THROWS_WITH(load_checkpoint(f.path, *f.model.module, opt, f.expect()),
                      Catch::StartsWith("checkpoint " + f.path + ": ") && Catch::Contains(what));
  };
  {
    Fixture f;  // every optimizer tensor removed
    f.edit([](auto& t, json&) { std::erase_if(t, [](const auto& kv) { return kv.first.rfind("optim.", 0) == 0; }); });
    refused(f, "optimizer state for 0 parameters, state.json's optim_params says");
  }
  {
    Fixture f;  // ... and optim_params edited to match: step 6 with no optimizer state
    f.edit([](auto& t, json& j) {
      std::erase_if(t, [](const auto& kv) { return kv.first.rfind("optim.", 0) == 0; });
      j["optim_params"] = 0;
    });
    refused(f, "the optimizer state is incomplete");
  }
  {
    Fixture f;  // one moment of one parameter removed
    f.edit([](auto& t, json&) { t.erase("optim.head.weight.exp_avg_sq"); });
    refused(f, "missing 'optim.head.weight.exp_avg_sq'");
  }
  {
    Fixture f;
    f.edit([](auto& t, json&) { t["optim.head.weight.step"] = at::scalar_tensor(7, at::kLong); });
    refused(f, "'optim.head.weight.step' is 7, must lie in [1, step = 6]");
  }
  {
    Fixture f;
    f.edit([](auto& t, json&) { t["rng.cpu"] = t["rng.cpu"].slice(0, 0, 100).clone(); });
    refused(f, "'rng.cpu' is Byte [100], the CPU generator's state is Byte");
  }
  {
    Fixture f;
    f.edit([](auto& t, json&) { t["model.head.weight"] = t["model.head.weight"].to(at::kInt); });
    refused(f, "'model.head.weight' is Int [10, 64], the model's is Float [10, 64]");
  }
  {
    Fixture f;
    f.edit([](auto& t, json&) { t["extra"] = at::zeros({1}); });
    refused(f, "unexpected key 'extra'");
  }
}

TEST_CASE("checkpoint: check_trained_for reads only the stage identity", "[checkpoint]") {
  Fixture f;
  CHECK_NOTHROW(check_trained_for(f.path, f.trained_for));
  CHECK_NOTHROW(check_trained_for(f.b.dir / "absent.safetensors", f.trained_for));
  json other = f.trained_for;
  other["plan"]["all"] = "fqvit";
  CHECK_THROWS_WITH(check_trained_for(f.path, other),
                    Catch::Contains("was trained for plan.all = \"ivit\", this job asks for \"fqvit\""));
}
