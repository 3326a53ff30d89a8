// The trainer end to end on a tiny ViT and a small synthetic Fashion-MNIST-shaped dataset: a two-epoch job
// (pretraining + QAT) writes its run folder and learns; no value is read back per step; `plan: mixed` runs the
// analyzer; a JPEG-folder job; the learning-rate schedule and Wilson interval. Resume and divergence:
// test_train_resume.cpp.
#include "train_job_fixtures.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::SyntheticData;
using mnq_test::synthetic_split;
using mnq_test::TempDir;
using mnq_test::tensors;
using mnq_test::tiny_job;

TEST_CASE("train: a two-epoch job writes its run folder and learns", "[train]") {
  log::set_quiet(true);
  TempDir dir("trainjob");
  mnq_test::write_synthetic_fashion(dir / "data", 640, 100, 11);
  const JobConfig c = tiny_job(dir / "data", dir / "run");
  // A job pins full FP32 whatever it started with (a plan or a QAT run must not depend on TF32 GEMMs/convs).
  at::globalContext().setAllowTF32CuDNN(true);
  at::globalContext().setFloat32MatmulPrecision("medium");
  REQUIRE(!models::full_fp32_pinned());
  const JobResult r = run_job(c, {false, -1, true});
  CHECK(models::full_fp32_pinned());
  CHECK_THAT(util::read_file(dir / "run/train.log"), Catch::Contains("full FP32 (TF32 off in cuBLAS and cuDNN"));
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].name == "fp");
  CHECK(r.rows[1].name == "ivit8");
  CHECK(r.rows[1].bits == 8);
  CHECK(r.rows[0].metrics.n == 100);
  CHECK(r.rows[0].epochs == 2);
  // Ten square positions are easy: far above chance (10 %) after two short epochs.
  CHECK(r.rows[0].metrics.top1 > 0.3);
  CHECK(r.rows[1].metrics.top1 > 0.3);
  for (const char* f : {"config.yaml", "train.log", "results.md", "results.json", "fp/model.safetensors",
                        "fp/checkpoint.safetensors", "fp/metrics.csv", "fp/metrics.jsonl", "ivit8/plan.yaml",
                        "ivit8/model.safetensors", "ivit8/best.safetensors", "ivit8/metrics.csv"}) {
    INFO(f);
    CHECK(std::filesystem::exists(dir / ("run/" + std::string(f))));
  }
  for (const RunResult& row : r.rows) {
    INFO(row.name);
    REQUIRE(row.metrics.hits.size() == 100);
    CHECK(std::count(row.metrics.hits.begin(), row.metrics.hits.end(), 1) == std::lround(100 * row.metrics.top1));
  }
  const auto json = nlohmann::json::parse(util::read_file(dir / "run/results.json"));
  const auto& runs = json.at("runs");
  REQUIRE(runs.size() == 2);
  CHECK(runs[1]["top1"].get<double>() == r.rows[1].metrics.top1);
  CHECK(runs[1]["top1_ci95"][0].get<double>() < runs[1]["top1"].get<double>());
  REQUIRE(json.at("comparisons").size() == 1);  // ivit8 vs fp
  const auto& vs_fp = json["comparisons"][0];
  CHECK(vs_fp["available"] == true);
  CHECK(vs_fp["both_right"].get<int64_t>() + vs_fp["only_a_right"].get<int64_t>() ==
        std::lround(100 * r.rows[1].metrics.top1));
  const std::string md = util::read_file(dir / "run/results.md");
  CHECK_THAT(md, Catch::Contains("| ivit8 | 8 | ivit |") && Catch::Contains("Test images: 100"));
  CHECK_THAT(md, Catch::Contains("## Paired comparisons") && Catch::Contains("| ivit8 | fp |") &&
                     Catch::Contains("- W8: best ivit8"));
  const std::string csv = util::read_file(dir / "run/ivit8/metrics.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 3);  // header + 2 epochs
  CHECK(util::read_file(dir / "run/ivit8/plan.yaml").find("all: ivit") != std::string::npos);

  // A second run of the job reuses the pretrained FP model (its stage is finished) and redoes the QAT run.
  const JobResult again = run_job(c, {false, -1, true});
  CHECK(again.rows[0].metrics.top1 == r.rows[0].metrics.top1);
  CHECK(again.rows[0].wall_s == r.rows[0].wall_s);
  CHECK(again.rows[1].metrics.top1 == r.rows[1].metrics.top1);
  CHECK(again.rows[0].metrics.hits == r.rows[0].metrics.hits);
  CHECK(again.rows[1].metrics.hits == r.rows[1].metrics.hits);

  // A run folder of an older version has no per-image results in its checkpoints: resuming it still writes the
  // table, with the paired test reported as unavailable.
  models::NamedTensors old;
  for (auto& [k, v] : models::read_safetensors(dir / "run/fp/checkpoint.safetensors")) {
    if (k != "eval.hits") old.emplace_back(k, v);
  }
  models::write_safetensors(dir / "run/fp/checkpoint.safetensors", old);
  const JobResult resumed = run_job(c, {true, -1, true});
  REQUIRE(resumed.finished);
  CHECK(resumed.rows[0].metrics.hits.empty());
  CHECK(resumed.rows[0].metrics.top1 == r.rows[0].metrics.top1);
  CHECK(resumed.rows[1].metrics.hits == r.rows[1].metrics.hits);
  CHECK_THAT(util::read_file(dir / "run/results.md"), Catch::Contains("| ivit8 | fp |") &&
                                                    Catch::Contains("n/a (fp has no per-image results") &&
                                                    Catch::Contains("vs FP the test is unavailable"));
  CHECK(nlohmann::json::parse(util::read_file(dir / "run/results.json"))["comparisons"][0]["p"].is_null());
}

TEST_CASE("train: the training loop reads no value back per step; losses are read back in batches", "[train]") {
  // An FP model (its layers read nothing back) trained and evaluated for one epoch of 12 steps: the loss, the
  // top-1 hits and the evaluation's metrics stay on the device until one copy per read-back (not counted: a
  // copy, not a scalar read). Before, every step read its loss and hits back (two device syncs on a GPU).
  const SyntheticData d("trainreads", 192, 64, 16);
  const TempDir& dir = d.dir;
  const auto& train_set = d.train;
  const auto& val_set = d.test;
  at::manual_seed(0);
  const models::Model m = models::create_fp("vit_mnist_tiny");
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.lr = 1e-3;
  const data::Loader train(train_set, {16, true, true, 0, 2, 5});
  const data::Loader val(val_set, {32, false, false, 0, 2, 5});
  StageResult r;
  {
    models::OpCounter reads;
    r = fit(m, cfg, train, val, {"fp", dir / "stage", false, -1});
    CHECK(reads.count() == 0);
  }
  REQUIRE(r.state.finished);
  // The totals read back in batches are the per-step values: the logged loss is finite and the hits consistent.
  const auto& h = r.state.history.back();
  CHECK(h.epoch == 1.0);
  CHECK(std::isfinite(h.train_loss));
  const double hits = h.train_top1 * 192;  // 12 steps of 16 images, every one counted once
  CHECK(std::abs(hits - std::round(hits)) < 1e-9);
  CHECK(r.final.hits.size() == 64);
  CHECK(std::count(r.final.hits.begin(), r.final.hits.end(), 1) == std::lround(64 * r.final.top1));
}

namespace {

// A tiny job on synthetic Fashion-MNIST in `dir` (run folder dir/run): one pretraining epoch, a quiet analyzer on
// two calibration batches.
JobConfig analyzer_job(const TempDir& dir) {
  log::set_quiet(true);
  mnq_test::write_synthetic_fashion(dir / "data", 64, 32, 14);
  JobConfig c = tiny_job(dir / "data", dir / "run");
  c.model.pretrain.epochs = 1;
  c.analyze.calib_batches = 2;
  c.analyze.progress = false;
  return c;
}

}  // namespace

TEST_CASE("train: plan mixed runs the analyzer once per bit-width and trains the mixed models", "[train]") {
  TempDir dir("trainmixed");
  JobConfig c = analyzer_job(dir);
  c.analyze.mode = "paper";
  c.compare = {RunConfig{"mixed6", 6, "mixed"}, RunConfig{"ivit6", 6, "ivit"}, RunConfig{"iso6", 6, "mixed_isolated"}};
  const JobResult r = run_job(c, {false, -1, true});
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 4);  // FP, mixed6, ivit6, iso6
  const models::Plan plan = models::Plan::load(dir / "run/plans/mixed_w6.yaml");
  CHECK(models::Plan::load(dir / "run/mixed6/plan.yaml") == plan);
  CHECK(models::Plan::load(dir / "run/plans/mixed_paper_w6.yaml") == plan);  // analyze.mode paper
  // mixed_isolated: the isolated ranking of the same analysis (one report per bit-width).
  const auto report = nlohmann::json::parse(std::ifstream(dir / "run/plans/mixed_w6_report.json"));
  const models::Plan isolated = models::Plan::load(dir / "run/plans/mixed_isolated_w6.yaml");
  CHECK(models::Plan::load(dir / "run/iso6/plan.yaml") == isolated);
  const auto iso_methods = isolated.resolve(models::vit_layer_names(models::vit_preset(c.model.preset)));
  for (const auto& layer : report.at("layers")) {
    INFO(layer.dump());
    CHECK(iso_methods.at(layer.at("layer").get<std::string>()) == layer.at("chosen_isolated").get<std::string>());
  }
  const auto methods = plan.resolve(models::vit_layer_names(models::vit_preset(c.model.preset)));
  for (const auto& [layer, method] : methods) {
    INFO(layer);
    if (*models::layer_op_type(layer) == models::OpType::kGelu) CHECK(method != "fqvit");  // not a GELU candidate
  }
  CHECK(std::filesystem::exists(dir / "run/plans/mixed_w6_report.csv"));
  CHECK(std::filesystem::exists(dir / "run/plans/mixed_w6_report.json"));
}

TEST_CASE("train: the isolated scores only when a run needs them; a resume that adds one re-analyzes", "[train]") {
  // analyze.isolated auto: a job of `mixed` runs scores the paper mode alone (no mixed_isolated plan, the report's
  // isolated values NaN); resumed with a mixed_isolated run added, the saved plans lack it, so the analyzer runs
  // again with them, and the paper plan it writes is the one the finished run trained with.
  TempDir dir("trainisoauto");
  JobConfig c = analyzer_job(dir);
  REQUIRE(c.analyze.isolated == "auto");
  c.compare = {RunConfig{"mixed6", 6, "mixed"}};
  REQUIRE(run_job(c, {false, -1, true}).finished);
  const std::filesystem::path plans = dir / "run/plans";
  CHECK_FALSE(std::filesystem::exists(plans / "mixed_isolated_w6.yaml"));
  const auto paper_report = nlohmann::json::parse(std::ifstream(plans / "mixed_w6_report.json"));
  CHECK(paper_report.at("isolated") == false);
  CHECK(paper_report.at("layers").at(0).at("chosen_isolated") == "");
  const models::Plan paper = models::Plan::load(plans / "mixed_w6.yaml");

  c.compare.push_back(RunConfig{"iso6", 6, "mixed_isolated"});
  const JobResult r = run_job(c, {true, -1, true});
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 3);  // FP, mixed6 (finished before), iso6
  CHECK(models::Plan::load(plans / "mixed_w6.yaml") == paper);
  const auto report = nlohmann::json::parse(std::ifstream(plans / "mixed_w6_report.json"));
  CHECK(report.at("isolated") == true);
  const models::Plan isolated = models::Plan::load(plans / "mixed_isolated_w6.yaml");
  CHECK(models::Plan::load(dir / "run/iso6/plan.yaml") == isolated);
  for (const auto& layer : report.at("layers")) {
    INFO(layer.dump());
    CHECK(isolated.method_for(layer.at("layer").get<std::string>()) == layer.at("chosen_isolated").get<std::string>());
  }
}

// The shipped full-size job (configs/imagenet_deit_tiny.yaml: DeiT-Tiny at 224, SPEC §8's recipe with every
// augmentation) on a generated two-class JPEG folder and a random FP checkpoint, only the paths, sizes and epochs
// overridden: it runs end to end, a uniform and a mixed run (the analyzer on DeiT), and writes its table.
TEST_CASE("train: the ImageNet recipe config runs on a tiny JPEG folder", "[train]") {
  log::set_quiet(true);
  TempDir dir("trainimagenet");
  for (const std::string split : {"train", "val"}) {
    for (const std::string cls : {"n01", "n02"}) {
      std::filesystem::create_directories(dir / (split + "/" + cls));
      for (int i = 0; i < (split == "train" ? 4 : 2); ++i) {
        std::vector<uint8_t> px(size_t(48 * 40 * 3));
        for (size_t j = 0; j < px.size(); ++j) {
          px[j] = uint8_t((cls == "n01" ? 40 : 200) + (j * 7 + size_t(i) * 13) % 50);
        }
        mnq_test::write_jpeg(dir / (split + "/" + cls + "/img" + std::to_string(i) + ".JPEG"), px, 48, 40, 3);
      }
    }
  }
  // As `mnq-train --config configs/imagenet_deit_tiny.yaml --set ...` (the checkpoint is written below, before
  // run_job checks it; from_text validates only after every override).
  at::manual_seed(0);
  models::save_weights(*models::create_fp("deit_tiny_patch16_224", {.num_classes = 2}).module, dir / "fp.safetensors");
  std::ifstream file(MNQ_SOURCE_DIR "/configs/imagenet_deit_tiny.yaml");
  JobConfig c = config::from_text<JobConfig>(
      std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()), "imagenet_deit_tiny.yaml",
      {"data.root=" + dir.path, "data.batch_size=4", "data.eval_batch_size=4", "data.workers=1",
       "model.num_classes=2", "model.checkpoint=" + (dir / "fp.safetensors"), "train.epochs=1",
       "analyze.calib_batches=1", "analyze.progress=false", "output.dir=" + (dir / "run"), "threads=1"});
  REQUIRE(c.data.randaugment == "rand-m9-mstd0.5-inc1");  // the recipe itself is kept
  REQUIRE(c.model.drop_path == 0.1);
  c.compare = {c.compare.at(1), c.compare.at(7)};  // w8_ivit, w6_mixed
  REQUIRE(c.compare[1].plan == "mixed");
  const JobResult r = run_job(c, {false, -1, true});
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 3);  // fp, w8_ivit, w6_mixed
  for (const auto& row : r.rows) {
    INFO(row.name);
    CHECK(row.metrics.n == 4);
    CHECK(std::isfinite(row.metrics.loss));
  }
  CHECK(std::filesystem::exists(dir / "run/plans/mixed_w6.yaml"));
  CHECK(std::filesystem::exists(dir / "run/results.md"));
}

// The trainer on a GPU (runs in scripts/gpu_check.sh's ctest; a CPU machine reports it as skipped): pretraining,
// the analyzer and QAT on CUDA with every SPEC §8 augmentation (Mixup on the device, drop-path masks from the CPU
// generator), stopped and resumed. CUDA kernels are bit-exact, but cuBLAS/cuDNN float reductions need not be
// run-to-run identical, so the resumed run is compared with tolerances, and the CUDA FP weights are checked to
// evaluate on the CPU like on the GPU.
TEST_CASE("train: device cuda trains, analyzes and resumes on the GPU", "[train][cuda]") {
  if (!at::hasCUDA()) {
    WARN("no usable GPU: the CUDA trainer test is skipped");
    return;
  }
  log::set_quiet(true);
  TempDir dir("traincuda");
  mnq_test::write_synthetic_fashion(dir / "data", 96, 64, 17);
  auto job = [&](const std::string& out) {
    JobConfig c = tiny_job(dir / "data", dir / out);
    const JobConfig defaults;  // the SPEC §8 recipe
    c.device = "cuda";
    c.data.randaugment = defaults.data.randaugment;
    c.data.random_erasing = defaults.data.random_erasing;
    c.model.drop_path = 0.2;
    c.model.pretrain.mixup = c.train.mixup = defaults.train.mixup;
    c.model.pretrain.cutmix = c.train.cutmix = defaults.train.cutmix;
    c.analyze.calib_batches = 2;
    c.analyze.progress = false;
    c.compare = {RunConfig{"ivit8", 8, "ivit"}, RunConfig{"mixed6", 6, "mixed"}};
    return c;
  };
  const JobResult full = run_job(job("full"), {false, -1, true});
  REQUIRE(full.finished);
  REQUIRE(full.rows.size() == 3);
  for (const auto& row : full.rows) {
    INFO(row.name);
    CHECK(std::isfinite(row.metrics.loss));
    CHECK(row.metrics.hits.size() == 64);
  }
  const JobConfig c = job("parts");
  CHECK(!run_job(c, {false, 1, true}).finished);
  CHECK(!run_job(c, {true, 2, true}).finished);
  const JobResult rest = run_job(c, {true, -1, true});
  REQUIRE(rest.finished);
  for (size_t i = 0; i < full.rows.size(); ++i) {
    INFO(full.rows[i].name);
    CHECK(std::abs(rest.rows[i].metrics.top1 - full.rows[i].metrics.top1) <= 0.1);
    CHECK(std::abs(rest.rows[i].metrics.loss - full.rows[i].metrics.loss) <= 0.05 * full.rows[i].metrics.loss);
  }
  // The saved FP weights (written from the GPU) give the GPU's top-1 on the CPU, up to float reduction order.
  models::Model fp = models::create_fp(c.model.preset);
  models::load_weights(*fp.module, dir / "full/fp/model.safetensors");
  const auto splits = make_datasets(c.data, model_shape(c.model));
  const data::Loader val(splits.val, {64, false, false, 0, 1, 0});
  CHECK(std::abs(evaluate(fp, val, "cpu eval").top1 - full.rows[0].metrics.top1) <= 2.0 / 64);
}

TEST_CASE("train: device cuda without a GPU is a clear error", "[train]") {
  if (at::hasCUDA()) return;  // the CUDA path itself runs in scripts/gpu_check.sh's ctest
  log::set_quiet(true);
  TempDir dir("traindevice");
  mnq_test::write_synthetic_fashion(dir / "data", 64, 32, 14);
  JobConfig c = tiny_job(dir / "data", dir / "run");
  c.device = "cuda";
  CHECK_THROWS_WITH(run_job(c, {false, -1, true}), Catch::Contains("device") && Catch::Contains("no usable GPU"));
}

TEST_CASE("train: learning-rate schedule and Wilson interval", "[train]") {
  TrainConfig c;
  c.lr = 1e-3;
  c.lr_end_div = 15;
  CHECK(learning_rate(c, 0, 100) == Approx(1e-3));
  CHECK(learning_rate(c, 50, 100) == Approx((1e-3 + 1e-3 / 15) / 2));
  CHECK(learning_rate(c, 100, 100) == Approx(1e-3 / 15));
  c.warmup_steps = 10;
  CHECK(learning_rate(c, 0, 100) == Approx(1e-4));
  CHECK(learning_rate(c, 10, 100) == Approx(1e-3));
  const Interval w = wilson_interval(0.5, 100);
  CHECK(w.lo == Approx(0.4038).margin(1e-4));
  CHECK(w.hi == Approx(0.5962).margin(1e-4));
  const Interval z = wilson_interval(1.0, 50);
  CHECK(z.hi == 1.0);
  CHECK(z.lo == Approx(0.9287).margin(1e-4));
}
