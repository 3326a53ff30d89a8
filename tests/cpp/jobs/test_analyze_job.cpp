// mnq-analyze's job: config errors name the key path; an end-to-end run on Fashion-MNIST (a tiny random ViT,
// two calibration batches) writes plan.yaml, report.csv, report.json and config.yaml; the CLI front end.
#include <torch/torch.h>  // first: Catch2 then redefines c10's CHECK macro (else CHECK is c10's abort)
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "csrc/jobs/analyze_job.h"
#include "csrc/models/device.h"
#include "csrc/models/weights.h"

using namespace mnq;
namespace fs = std::filesystem;

namespace {

// A temporary folder, removed at the end of the test.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("mnq_analyze_job_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

// Random full-precision vit_mnist_tiny weights (the analysis does not need trained ones to run).
std::string write_checkpoint(const fs::path& dir) {
  at::manual_seed(0);
  const models::Model fp = models::create_fp("vit_mnist_tiny");
  const std::string path = (dir / "fp.safetensors").string();
  models::save_weights(*fp.module, path);
  return path;
}

std::string job_yaml(const std::string& checkpoint, const fs::path& out) {
  return "model: {preset: vit_mnist_tiny, checkpoint: " + checkpoint +
         "}\n"
         "data: {kind: fashion_mnist, batch_size: 16, workers: 0, train_subset: 64}\n"
         "bits: 8\n"
         "device: cpu\n"
         "analyze: {calib_batches: 2, progress: false}\n"
         "output: {dir: " +
         out.string() + "}\n";
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("mnq-analyze job: bad configs fail naming file and key", "[analyze_job]") {
  TempDir tmp;
  const std::string ckpt = write_checkpoint(tmp.path);
  const std::string good = job_yaml(ckpt, tmp.path / "out");
  using analysis::AnalyzeJob;
  CHECK_NOTHROW(config::from_text<AnalyzeJob>(good, "job.yaml"));
  auto fails = [&](const std::string& text, const std::vector<std::string>& sets, const std::string& what) {
    CHECK_THROWS_WITH(config::from_text<AnalyzeJob>(text, "job.yaml", sets), Catch::Contains(what));
  };
  fails("bits: 8\n", {}, "job.yaml: model.checkpoint: is required");
  fails(good, {"model.checkpoint=/nonexistent/fp.safetensors"}, "model.checkpoint: no such file");
  fails(good, {"model.preset=vit_hugh"}, "model.preset: unknown model preset 'vit_hugh'");
  fails(good, {"model.img_size=-1"}, "model.img_size: must be 0");
  fails(good, {"bits=1"}, "--set bits=1: bits: must be in [2, 16], got 1");
  fails(good, {"bits=12"}, "--set bits=12: bits: 12 bits are outside what ivit supports");  // every candidate
  fails(good, {"threads=100000"}, "--set threads=100000: threads: must be in 0..");
  fails(good, {"threads.a=1"}, "--set threads.a=1: threads: is not a section");
  fails(good, {"device=tpu"}, "device: must be auto, cpu or cuda");
  fails(good, {"analyze.mode=best"}, "analyze.mode: must be paper, isolated or searched");
  fails(good, {"analyze.layernorm=[ivit, foo]"}, "analyze.layernorm: unknown method 'foo'");
  fails(good, {"data.batch_size=0"}, "data.batch_size");
  fails(good, {"output.dir=''"}, "output.dir: must not be empty");
  fails(good + "extra: 1\n", {}, "extra: unknown key");
}

TEST_CASE("mnq-analyze job: a Fashion-MNIST run writes the plan and the report", "[analyze_job]") {
  TempDir tmp;
  const std::string ckpt = write_checkpoint(tmp.path);
  const fs::path out = tmp.path / "out";
  const auto job = config::from_text<analysis::AnalyzeJob>(job_yaml(ckpt, out), "job.yaml");
  at::globalContext().setFloat32MatmulPrecision("medium");  // the job pins full FP32 (models/device.h)
  REQUIRE(!models::full_fp32_pinned());
  REQUIRE(analysis::run_analyze_job(job) == 0);
  CHECK(models::full_fp32_pinned());
  for (const char* f : {"plan.yaml", "report.csv", "report.json", "config.yaml"}) CHECK(fs::exists(out / f));
  const models::Plan plan = models::Plan::load((out / "plan.yaml").string());
  std::vector<std::string> layers;
  for (const auto& [name, type] : models::mixable_layers("vit_mnist_tiny")) layers.push_back(name);
  CHECK(plan.resolve(layers).size() == layers.size());
  const nlohmann::json report = nlohmann::json::parse(read(out / "report.json"));
  CHECK(report["batches"] == 2);
  CHECK(report["images"] == 32);
  CHECK(report["layers"].size() == layers.size());
  // the stored config is the resolved job
  const auto again = config::from_text<analysis::AnalyzeJob>(read(out / "config.yaml"), "config.yaml");
  CHECK(config::to_yaml(again) == config::to_yaml(job));
}

TEST_CASE("mnq-analyze job: the command line applies --set and reports config errors", "[analyze_job]") {
  TempDir tmp;
  const std::string ckpt = write_checkpoint(tmp.path);
  const fs::path job = tmp.path / "job.yaml";
  std::ofstream(job) << job_yaml(ckpt, tmp.path / "out");
  const std::string out2 = "output.dir=" + (tmp.path / "out2").string();
  std::vector<std::string> args = {"mnq-analyze", "--config", job.string(), "--set", "analyze.calib_batches=1",
                                   "--set", out2};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  CHECK(analysis::cli_main(static_cast<int>(argv.size()), argv.data()) == 0);
  CHECK(nlohmann::json::parse(read(tmp.path / "out2" / "report.json"))["batches"] == 1);
  CHECK(!fs::exists(tmp.path / "out"));

  args = {"mnq-analyze", "--config", job.string(), "--set", "bits=40"};
  argv.clear();
  for (auto& a : args) argv.push_back(a.data());
  CHECK(analysis::cli_main(static_cast<int>(argv.size()), argv.data()) == 2);
}
