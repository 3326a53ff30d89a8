// The sensitivity analyzer on tiny models: a planted difference it must find, agreement with a straightforward
// non-streaming computation of SPEC §7 on the same captured tensors, flat memory, config errors, outputs; full FP32
// pinned.
#include <ATen/ATen.h>
#include <malloc.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "csrc/analysis/analyzer.h"
#include "csrc/models/device.h"
#include "csrc/nn/nonlinear.h"

using namespace mnq;
using namespace mnq::analysis;

namespace {

// `count` batches of `size` random 28×28 images, fixed per seed (batch(i) returns the same tensor every time).
BatchSource random_batches(int64_t count, int64_t size, uint64_t seed = 0) {
  auto data = std::make_shared<std::vector<at::Tensor>>();
  at::manual_seed(seed);
  for (int64_t i = 0; i < count; ++i) data->push_back(at::rand({size, 1, 28, 28}) * 2 - 1);
  return BatchSource{count, [data](int64_t i) { return (*data)[i]; }};
}

AnalyzerConfig quiet_config(int64_t batches) {
  AnalyzerConfig c;
  c.calib_batches = batches;
  c.progress = false;
  return c;
}

models::Model fp_model(const std::string& preset, uint64_t seed = 0) {
  at::manual_seed(seed);
  models::Model fp = models::create_fp(preset);
  fp.module->eval();
  return fp;
}

const MethodScores& scores_of(const LayerReport& l, const std::string& method) {
  for (const auto& s : l.scores) {
    if (s.method == method) return s;
  }
  FAIL("layer " << l.name << " has no scores for " << method);
  throw std::logic_error("unreachable");
}

// One captured tensor pair of one batch: full precision x, quantized y, `images` images.
struct Captured {
  at::Tensor x, y;
  int64_t images;
};

// Straightforward SPEC §7 with explicit float64 loops: per image ‖x_i‖ / ‖x_i − y_i‖, mean, 20·log10.
double reference_sqnr(const std::vector<Captured>& batches) {
  double sum = 0;
  int64_t images = 0;
  for (const auto& c : batches) {
    const at::Tensor x = c.x.contiguous().to(at::kDouble).reshape({-1});
    const at::Tensor y = c.y.contiguous().to(at::kDouble).reshape({-1});
    const double* px = x.data_ptr<double>();
    const double* py = y.data_ptr<double>();
    const int64_t per = x.numel() / c.images;
    for (int64_t i = 0; i < c.images; ++i) {
      double s = 0, e = 0;
      for (int64_t j = i * per; j < (i + 1) * per; ++j) {
        s += px[j] * px[j];
        const double d = static_cast<double>(static_cast<float>(px[j]) - static_cast<float>(py[j]));
        e += d * d;
      }
      sum += e == 0 ? INFINITY : std::sqrt(s) / std::sqrt(e);
      ++images;
    }
  }
  return 20.0 * std::log10(sum / static_cast<double>(images));
}

}  // namespace

TEST_CASE("analyzer: a planted outlier token makes ivit LayerNorms lose; ibert is chosen", "[analyzer]") {
  // One patch token of the position embedding at 3000: the residual stream's 16-bit scale is set by it, so every
  // other token's codes are tiny. I-LayerNorm's fixed 10 Newton steps from 2^16 then stop far above the small
  // rows' std (SPEC §4.1: std ≥ 64), so those rows come out several times too small; I-BERT's 22-bit input and
  // exact isqrt are unaffected. Every LayerNorm carries that token, so all of them pick ibert. (FQ-ViT's 8-bit
  // PtfAct would round those rows to zero, and its uniform model then collapses the attention scores to a range
  // its softmax rejects: fqvit is left out of the candidates here, see the next test for that error.)
  models::Model fp = fp_model("vit_mnist_tiny", 3);
  {
    at::NoGradGuard no_grad;
    fp.module->named_parameters()["pos_embed"].select(1, 5).fill_(3000.0);
  }
  const BatchSource calib = random_batches(3, 8);
  AnalyzerConfig config = quiet_config(3);
  config.softmax = {"ivit", "ibert"};
  config.layernorm = {"ivit", "ibert"};
  config.isolated = "true";  // the isolated ranking too (mode paper scores only the paper mode by default)
  const Report r = analyze(fp, 8, config, calib);
  REQUIRE(r.layers.size() == 17);
  int64_t layernorms = 0;
  for (const auto& l : r.layers) {
    if (l.type != models::OpType::kLayerNorm) continue;
    INFO(l.name << ": ΔSQNR ivit " << scores_of(l, "ivit").delta << ", ibert " << scores_of(l, "ibert").delta
                << "; isolated ivit " << scores_of(l, "ivit").iso_out << ", ibert " << scores_of(l, "ibert").iso_out);
    CHECK(l.chosen == "ibert");
    CHECK(l.margin > 0.0);
    // The paper's ΔSQNR is out − in, and ibert's 22-bit input (SQNR_in ≈ 120 dB) costs it most of its lead
    // (margins of 0.4–16 dB here); fed the same input, ibert's output is ~50 dB better than ivit's.
    CHECK(l.chosen_isolated == "ibert");
    CHECK(l.margin_isolated > 20.0);
    ++layernorms;
  }
  CHECK(layernorms == 9);
  CHECK(r.plan.method_for("norm") == "ibert");

  // With fqvit among the candidates its uniform model fails, and the error says which model and why.
  CHECK_THROWS_WITH(analyze(fp, 8, quiet_config(3), calib),
                    Catch::Contains("uniform 'fqvit' model failed") && Catch::Contains("scale must lie in"));
}

TEST_CASE("analyzer: ΔSQNR equals a non-streaming computation on the same captured tensors", "[analyzer]") {
  models::Model fp = fp_model("vit_mnist_tiny", 1);
  const BatchSource calib = random_batches(3, 4, 7);
  const Report r = analyze(fp, 8, quiet_config(3), calib);

  // Independently: the calibrated uniform ivit model (calibration is deterministic), every layer's input and
  // output captured for every batch, then the plain formula.
  models::Model q = uniform_model(fp, 8, "ivit", calib, 3);
  std::map<std::string, std::vector<Captured>> ins, outs;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> fp_now;
  int64_t images = 0;
  fp.set_tap([&](const std::string& name, const at::Tensor& in, const at::Tensor& out) {
    fp_now[name] = {in.clone(), out.clone()};
  });
  std::vector<std::shared_ptr<torch::nn::Module>> hooked;
  for (const auto& item : q.module->named_modules()) {
    const std::string name = item.key();
    auto observer = [&, name](const nn::LayerCall& c) {
      ins[name].push_back({fp_now.at(name).first, c.x.clone(), images});
      outs[name].push_back({fp_now.at(name).second, c.y.clone(), images});
    };
    if (auto* m = item.value()->as<nn::IntSoftmaxImpl>()) m->set_observer(observer);
    if (auto* m = item.value()->as<nn::IntGELUImpl>()) m->set_observer(observer);
    if (auto* m = item.value()->as<nn::IntLayerNormImpl>()) m->set_observer(observer);
  }
  {
    at::NoGradGuard no_grad;
    for (int64_t b = 0; b < 3; ++b) {
      const at::Tensor x = calib.batch(b);
      images = x.size(0);
      fp.forward(x);
      q.forward(x);
    }
  }
  fp.set_tap({});
  for (const auto& l : r.layers) {
    INFO(l.name);
    const MethodScores& s = scores_of(l, "ivit");
    const double in = reference_sqnr(ins.at(l.name)), out = reference_sqnr(outs.at(l.name));
    CHECK(std::isfinite(in));
    CHECK(s.sqnr_in == Approx(in).margin(1e-6));
    CHECK(s.sqnr_out == Approx(out).margin(1e-6));
    CHECK(s.delta == Approx(out - in).margin(1e-6));
  }
}

TEST_CASE("analyzer: plan, passes, tie rule and both modes are consistent", "[analyzer]") {
  models::Model fp = fp_model("vit_mnist_tiny", 2);
  AnalyzerConfig config = quiet_config(2);
  config.gelu = {"ibert", "ivit"};  // order given does not matter: ties go to ivit first
  config.mode = "isolated";
  int64_t events = 0;
  at::globalContext().setAllowTF32CuBLAS(true);  // analyze() pins full FP32: the plan must not depend on the GPU
  REQUIRE(!models::full_fp32_pinned());
  const Report r = analyze(fp, 6, config, random_batches(5, 4), {}, [&](const ProgressEvent&) { ++events; });
  CHECK(models::full_fp32_pinned());
  CHECK(r.batches == 2);  // min(calib_batches, available)
  CHECK(r.images == 8);
  CHECK(r.calibration_passes == 3);
  CHECK(r.measurement_passes == 4);
  CHECK(events == 3 * 2 + 2);
  const auto layers = models::mixable_layers("vit_mnist_tiny");
  REQUIRE(r.layers.size() == layers.size());
  CHECK(r.plan.resolve([&] {
    std::vector<std::string> names;
    for (const auto& [n, t] : layers) names.push_back(n);
    return names;
  }()).size() == layers.size());
  CHECK(r.plan == r.plan_isolated);
  int64_t disagree = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerReport& l = r.layers[i];
    CHECK(l.name == layers[i].first);
    CHECK(l.scores.size() == (l.type == models::OpType::kGelu ? 2u : 3u));
    CHECK(l.scores[0].method == "ivit");
    std::vector<double> delta, iso;
    for (const auto& s : l.scores) {
      delta.push_back(s.delta);
      iso.push_back(s.iso_out);
      CHECK(s.delta == Approx(s.sqnr_out - s.sqnr_in));
    }
    CHECK(l.chosen == l.scores[argmax_with_margin(delta).first].method);
    CHECK(l.chosen_isolated == l.scores[argmax_with_margin(iso).first].method);
    CHECK(r.plan_paper.method_for(l.name) == l.chosen);
    CHECK(r.plan.method_for(l.name) == l.chosen_isolated);
    disagree += l.chosen != l.chosen_isolated;
  }
  CHECK(static_cast<int64_t>(r.disagreements().size()) == disagree);
  const std::string summary = r.summary();
  CHECK_THAT(summary, Catch::Contains("softmax") && Catch::Contains("gelu") && Catch::Contains("layernorm") &&
                          Catch::Contains("isolated mode"));
}

TEST_CASE("analyzer: Swin windows regroup per image; patch_embed.norm is not scored", "[analyzer]") {
  models::Model fp = fp_model("swin_mnist_tiny", 4);
  AnalyzerConfig config = quiet_config(2);
  config.softmax = {"ivit"};
  config.gelu = {"ivit"};
  config.layernorm = {"ivit"};
  const Report r = analyze(fp, 8, config, random_batches(2, 3));
  const auto layers = models::mixable_layers("swin_mnist_tiny");
  REQUIRE(r.layers.size() == layers.size());
  CHECK(r.calibration_passes == 1);
  for (const auto& l : r.layers) {
    INFO(l.name);
    CHECK(l.name != "patch_embed.norm");
    REQUIRE(l.scores.size() == 1);
    CHECK(l.chosen == "ivit");
    // the full-precision and quantized tensors line up element by element (a window or image mix-up would
    // leave an SQNR near 0 dB)
    CHECK(l.scores[0].sqnr_in > 10.0);
  }
}

namespace {

// Bytes the process has allocated and not freed (glibc: small chunks + mmap'd blocks; LibTorch's CPU allocator
// uses malloc).
int64_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return static_cast<int64_t>(mi.uordblks + mi.hblkhd);
}

// The largest heap in use seen after any measured batch of an analysis over `batches` batches.
int64_t peak_while_measuring(const models::Model& fp, const BatchSource& calib, int64_t batches) {
  int64_t peak = 0;
  AnalyzerConfig config = quiet_config(batches);
  config.softmax = config.gelu = config.layernorm = {"ivit"};  // one uniform model keeps the test fast
  analyze(fp, 8, config, calib, {}, [&](const ProgressEvent& e) {
    if (e.phase == "measure") peak = std::max(peak, heap_in_use());
  });
  return peak;
}

}  // namespace

TEST_CASE("analyzer: memory does not grow with the number of calibration batches", "[analyzer][memory]") {
  models::Model fp = fp_model("vit_mnist_tiny", 5);
  const BatchSource calib = random_batches(16, 4, 3);
  // What keeping the activations of one more batch would cost: the full-precision inputs and outputs of the
  // mixable layers for one batch.
  int64_t batch_bytes = 0;
  fp.set_tap([&](const std::string&, const at::Tensor& in, const at::Tensor& out) {
    batch_bytes += static_cast<int64_t>(in.nbytes() + out.nbytes());
  });
  {
    at::NoGradGuard no_grad;
    fp.forward(calib.batch(0));
  }
  fp.set_tap({});
  REQUIRE(batch_bytes > 1'000'000);

  peak_while_measuring(fp, calib, 1);  // warm-up: LibTorch's one-time allocations
  const int64_t peak4 = peak_while_measuring(fp, calib, 4);
  const int64_t peak16 = peak_while_measuring(fp, calib, 16);
  INFO("peak heap in use: 4 batches " << peak4 << " B, 16 batches " << peak16 << " B; one batch of activations "
                                      << batch_bytes << " B");
  // Keeping the 12 extra batches (or any per-batch state of that size) would add ≥ 12·batch_bytes.
  CHECK(peak16 - peak4 < batch_bytes / 2);
}

TEST_CASE("analyzer: bad configs and inputs fail naming the key", "[analyzer]") {
  AnalyzerConfig c;
  CHECK_NOTHROW(c.validate("analyze"));
  CHECK(c.methods() == std::vector<std::string>{"ivit", "ibert", "fqvit"});
  auto fails = [](const std::function<void(AnalyzerConfig&)>& edit, const std::string& what) {
    AnalyzerConfig bad;
    edit(bad);
    CHECK_THROWS_WITH(bad.validate("analyze"), Catch::Contains(what));
  };
  fails([](AnalyzerConfig& b) { b.softmax = {"ivit", "foo"}; }, "analyze.softmax: unknown method 'foo'");
  fails([](AnalyzerConfig& b) { b.gelu = {}; }, "analyze.gelu: needs at least one candidate");
  fails([](AnalyzerConfig& b) { b.layernorm = {"ibert", "ibert"}; },
        "analyze.layernorm: method 'ibert' is listed twice");
  fails([](AnalyzerConfig& b) { b.calib_batches = 0; }, "analyze.calib_batches: must be positive, got 0");
  fails([](AnalyzerConfig& b) { b.mode = "best"; }, "analyze.mode: must be paper, isolated or searched, got 'best'");
  fails([](AnalyzerConfig& b) { b.isolated = "yes"; }, "analyze.isolated: must be auto, true or false, got 'yes'");
  fails([](AnalyzerConfig& b) { b.isolated = "false", b.mode = "searched"; },
        "analyze.isolated: false needs mode paper (mode 'searched' ranks by the isolated scores)");
  // auto: the isolated scores when the mode ranks by them or the caller needs them; true / false as said.
  for (const char* mode : {"paper", "isolated", "searched"}) {
    for (const char* iso : {"auto", "true", "false"}) {
      AnalyzerConfig a;
      a.mode = mode, a.isolated = iso;
      INFO(mode << " " << iso);
      const bool by_mode = std::string(mode) != "paper";
      CHECK(a.scores_isolated() == (std::string(iso) == "true" || (std::string(iso) == "auto" && by_mode)));
      CHECK(a.scores_isolated(true) == (std::string(iso) != "false"));
    }
  }

  models::Model fp = fp_model("vit_mnist_tiny");
  AnalyzerConfig bad = quiet_config(1);
  bad.mode = "fast";
  CHECK_THROWS_WITH(analyze(fp, 8, bad, random_batches(1, 2)), Catch::Contains("analyze.mode"));
  CHECK_THROWS_WITH(analyze(fp, 8, quiet_config(1), BatchSource{}), Catch::Contains("no batches"));
  const BatchSource flat{1, [](int64_t) { return at::zeros({2, 784}); }};
  CHECK_THROWS_WITH(analyze(fp, 8, quiet_config(1), flat), Catch::Contains("calibration batch 0") &&
                                                               Catch::Contains("[B, C, H, W]"));
  models::QuantOptions opt;
  const models::Model q = models::create_quant("vit_mnist_tiny", opt);
  CHECK_THROWS_WITH(analyze(q, 8, quiet_config(1), random_batches(1, 2)), Catch::Contains("full precision"));
  CHECK_THROWS_WITH(analyze(fp, 1, quiet_config(1), random_batches(1, 2)),
                    Catch::Contains("bits must be in [2, 16], got 1"));
}

TEST_CASE("analyzer: report files (CSV, JSON, plan) are complete and written atomically", "[analyzer]") {
  namespace fs = std::filesystem;
  models::Model fp = fp_model("vit_mnist_tiny", 6);
  AnalyzerConfig config = quiet_config(1);
  config.softmax = {"ivit", "ibert"};
  const Report r = analyze(fp, 8, config, random_batches(1, 2));
  const fs::path dir = fs::temp_directory_path() / ("mnq_analyzer_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  r.write_csv((dir / "report.csv").string());
  r.write_json((dir / "report.json").string());
  r.plan.save((dir / "plan.yaml").string());
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string()[0] != '.');  // no temp left

  std::ifstream csv(dir / "report.csv");
  std::string line;
  std::getline(csv, line);
  CHECK(line.rfind("layer,op_type,method,sqnr_in,sqnr_out,delta_sqnr,", 0) == 0);
  int64_t rows = 0;
  while (std::getline(csv, line)) ++rows;
  CHECK(rows == 4 * 2 + 4 * 2 + 9 * 3);  // softmax 2 candidates, gelu 2, layernorm 3

  std::ifstream js(dir / "report.json");
  const nlohmann::json j = nlohmann::json::parse(js);
  CHECK(j["preset"] == "vit_mnist_tiny");
  CHECK(j["layers"].size() == 17);
  CHECK(j["layers"][1]["layer"] == "blocks.0.attn.softmax");
  CHECK(j["layers"][1]["methods"].size() == 2);
  CHECK(j["layers"][1]["chosen"] == r.layers[1].chosen);
  CHECK(models::Plan::load((dir / "plan.yaml").string()) == r.plan);
  CHECK_THROWS_WITH(r.write_csv((dir / "missing" / "r.csv").string()), Catch::Contains("cannot write"));
  fs::remove_all(dir);
}

namespace {

// A job with an `analyze:` section, as mnq-analyze and mnq-train jobs have.
struct JobWithAnalyze {
  AnalyzerConfig analyze;
  void visit(config::Visitor& v) { v.section("analyze", analyze, "the analyzer"); }
  void validate(const std::string& path) const { analyze.validate(config::detail::join(path, "analyze")); }
};

}  // namespace

TEST_CASE("analyzer: the analyze: YAML section reads, round-trips and fails naming file and key", "[analyzer]") {
  const auto job = config::from_text<JobWithAnalyze>(
      "analyze:\n  softmax: [ibert, fqvit]\n  calib_batches: 4\n  mode: isolated\n", "job.yaml");
  CHECK(job.analyze.softmax == std::vector<std::string>{"ibert", "fqvit"});
  CHECK(job.analyze.gelu == std::vector<std::string>{"ivit", "ibert"});  // default kept
  CHECK(job.analyze.calib_batches == 4);
  CHECK(job.analyze.mode == "isolated");
  CHECK(config::from_text<JobWithAnalyze>(config::to_yaml(job), "again").analyze.softmax == job.analyze.softmax);
  CHECK_THROWS_WITH(config::from_text<JobWithAnalyze>("analyze: {softmax: [ivit, bogus]}\n", "job.yaml"),
                    Catch::Contains("job.yaml: analyze.softmax: unknown method 'bogus'"));
  CHECK_THROWS_WITH(config::from_text<JobWithAnalyze>("analyze: {calib_batchs: 3}\n", "job.yaml"),
                    Catch::Contains("job.yaml: analyze.calib_batchs: unknown key"));
  CHECK_THROWS_WITH(config::from_text<JobWithAnalyze>("analyze: {calib_batches: many}\n", "job.yaml"),
                    Catch::Contains("analyze.calib_batches"));
  // The value came from --set: the error names it (the file's `fast` was overridden).
  CHECK_THROWS_WITH(config::from_text<JobWithAnalyze>("analyze: {mode: fast}\n", "job.yaml", {"analyze.mode=best"}),
                    Catch::Contains("--set analyze.mode=best: analyze.mode: must be paper, isolated or searched, got 'best'"));
  CHECK_THROWS_WITH(config::from_text<JobWithAnalyze>("analyze: {mode: fast}\n", "job.yaml"),
                    Catch::Contains("job.yaml: analyze.mode: must be paper, isolated or searched, got 'fast'"));
  CHECK_THAT(config::describe<JobWithAnalyze>(), Catch::Contains("analyze.calib_batches") &&
                                                     Catch::Contains("analyze.mode"));
}
