// The job config of mnq-train: YAML parsing errors name the key path (unknown key, wrong type), validate()
// names the offending key, --set overrides, the resolved YAML round-trips, and the shipped configs parse.
#include <catch2/catch.hpp>
#include <fstream>

#include "csrc/config/config.h"
#include "csrc/jobs/job_config.h"

using namespace mnq;
using train::JobConfig;

namespace {

JobConfig parse(const std::string& yaml) { return config::parse_yaml<JobConfig>(yaml, "job.yaml"); }

void validate(const std::string& yaml) { parse(yaml).validate(""); }

const char* kValid =
    "model:\n  preset: vit_mnist_tiny\n  pretrain:\n    epochs: 1\n"
    "compare:\n  - {name: a, bits: 8, plan: ivit}\n  - {name: b, bits: 4, plan: fqvit}\n";

}  // namespace

TEST_CASE("job config: missing keys keep their defaults", "[train_config]") {
  const JobConfig c = parse("data:\n  batch_size: 64\n");
  CHECK(c.data.batch_size == 64);
  CHECK(c.data.kind == "fashion_mnist");
  CHECK(c.train.lr == 1e-6);  // SPEC §8
  CHECK(c.train.weight_decay == 1e-4);
  CHECK(c.train.label_smoothing == 0.1);
  CHECK(c.quant.calib_batches == 30);
  // SPEC §8's augmentations are the defaults too.
  CHECK(c.data.randaugment == "rand-m9-mstd0.5-inc1");
  CHECK(c.data.rand_augment()->magnitude == 9);
  CHECK(c.data.random_erasing == 0.25);
  CHECK(c.train.mixup == 0.8);
  CHECK(c.train.cutmix == 1.0);
  CHECK(c.train.mixup_prob == 1.0);
  CHECK(c.train.mixup_switch_prob == 0.5);
  CHECK(c.model.drop_path == 0.1);
  JobConfig off = parse("data: {train_augment: false}\n");
  CHECK(!off.data.rand_augment());
  CHECK(off.data.erasing() == 0);
  CHECK_NOTHROW(validate(kValid));
  const JobConfig v = parse(kValid);
  REQUIRE(v.runs().size() == 2);
  CHECK(v.runs()[1].bits == 4);
  JobConfig single = parse("quant: {bits: 6, plan: ibert}\n");
  REQUIRE(single.runs().size() == 1);
  CHECK(single.runs()[0].name == "w6_ibert");
}

TEST_CASE("job config: unknown keys and wrong types name the key path", "[train_config]") {
  CHECK_THROWS_WITH(parse("data:\n  bach_size: 64\n"), Catch::Contains("data.bach_size"));
  CHECK_THROWS_WITH(parse("data:\n  batch_size: lots\n"), Catch::Contains("data.batch_size"));
  CHECK_THROWS_WITH(parse("model:\n  pretrain:\n    lr: [1]\n"), Catch::Contains("model.pretrain.lr"));
  CHECK_THROWS_WITH(parse("compare:\n  - {name: a, bitz: 8}\n"), Catch::Contains("bitz"));
  CHECK_THROWS_WITH(parse("data: 3\n"), Catch::Contains("data"));
}

TEST_CASE("job config: validate names the offending key", "[train_config]") {
  const std::string base = kValid;
  CHECK_THROWS_WITH(validate(base + "data:\n  batch_size: 0\n"), Catch::Contains("data.batch_size"));
  CHECK_THROWS_WITH(validate(base + "data:\n  kind: cifar\n"), Catch::Contains("data.kind"));
  CHECK_THROWS_WITH(validate(base + "data:\n  mean: [0.5]\n"), Catch::Contains("data.std"));
  CHECK_THROWS_WITH(validate(base + "train:\n  lr: 0\n"), Catch::Contains("train.lr"));
  CHECK_THROWS_WITH(validate(base + "train:\n  epochs: 0\n"), Catch::Contains("train.epochs"));
  CHECK_THROWS_WITH(validate(base + "output:\n  dir: ''\n"), Catch::Contains("output.dir"));
  CHECK_THROWS_WITH(validate("model: {preset: vit_mnist_tiny}\n"), Catch::Contains("model.checkpoint"));
  CHECK_THROWS_WITH(validate("model: {preset: vit_mnist_tiny, checkpoint: /no/such.safetensors}\n"),
                    Catch::Contains("model.checkpoint") && Catch::Contains("/no/such.safetensors"));
  const std::string model = "model: {preset: vit_mnist_tiny, pretrain: {epochs: 1}}\n";
  CHECK_THROWS_WITH(validate(model + "compare:\n  - {name: a, bits: 1, plan: ivit}\n"),
                    Catch::Contains("compare.0.bits"));
  CHECK_THROWS_WITH(validate(model + "compare:\n  - {name: a, plan: ivit}\n  - {name: a, plan: ibert}\n"),
                    Catch::Contains("compare.1.name") && Catch::Contains("duplicate"));
  CHECK_THROWS_WITH(validate(model + "compare:\n  - {name: a, plan: plans/none.yaml}\n"),
                    Catch::Contains("compare.0.plan") && Catch::Contains("plans/none.yaml"));
  CHECK_THROWS_WITH(validate(model + "quant: {plan: ivt}\n"), Catch::Contains("quant.plan"));
  CHECK_THROWS_WITH(validate(model + "quant: {plan: mixed_iso}\n"),
                    Catch::Contains("quant.plan") && Catch::Contains("mixed_isolated"));
  CHECK_NOTHROW(validate(model + "compare:\n  - {name: a, plan: mixed_isolated}\n  - {name: b, plan: mixed_paper}\n"));
  CHECK_THROWS_WITH(validate(base + "device: gpu\n"), Catch::Contains("device: must be auto, cpu or cuda"));
  CHECK_NOTHROW(validate(base + "device: cpu\n"));
  CHECK_THROWS_WITH(validate(base + "data:\n  randaugment: rand-m12\n"),
                    Catch::Contains("data.randaugment") && Catch::Contains("'m' must be in 0..10"));
  CHECK_THROWS_WITH(validate(base + "data:\n  randaugment: augmix-m9\n"),
                    Catch::Contains("data.randaugment") && Catch::Contains("must start with 'rand'"));
  CHECK_NOTHROW(validate(base + "data:\n  randaugment: ''\n"));
  CHECK_THROWS_WITH(validate(base + "data:\n  random_erasing: 1.5\n"), Catch::Contains("data.random_erasing"));
  CHECK_THROWS_WITH(validate(base + "train:\n  mixup: -1\n"), Catch::Contains("train.mixup"));
  CHECK_THROWS_WITH(validate(base + "train:\n  cutmix: -0.5\n"), Catch::Contains("train.cutmix"));
  CHECK_THROWS_WITH(validate(base + "train:\n  mixup_prob: 2\n"), Catch::Contains("train.mixup_prob"));
  CHECK_THROWS_WITH(validate(base + "train:\n  mixup_switch_prob: -1\n"),
                    Catch::Contains("train.mixup_switch_prob"));
  CHECK_THROWS_WITH(validate("model: {preset: vit_mnist_tiny, pretrain: {epochs: 1, mixup: -2}}\n"),
                    Catch::Contains("model.pretrain.mixup"));
  CHECK_THROWS_WITH(validate("model: {preset: vit_mnist_tiny, drop_path: 1.0, pretrain: {epochs: 1}}\n"),
                    Catch::Contains("model.drop_path: must be in [0, 1)"));
}

TEST_CASE("job config: every size, thread count and bit width is range-checked", "[train_config]") {
  const std::string base = kValid;
  for (const char* bad : {"data: {batch_size: 65537}\n", "data: {eval_batch_size: -1}\n", "data: {prefetch: 0}\n",
                          "data: {prefetch: 65}\n", "data: {workers: 65}\n", "data: {train_subset: -1}\n",
                          "data: {val_subset: 2147483648}\n", "data: {max_image_pixels: 0}\n",
                          "data: {on_bad_image: ignore}\n", "threads: -1\n", "threads: 100000\n"}) {
    INFO(bad);
    CHECK_THROWS_AS(validate(base + bad), config::Error);
  }
  CHECK_THROWS_WITH(validate(base + "threads: 100000\n"),
                    Catch::Contains("threads: must be in 0..") && Catch::Contains("got 100000"));
  CHECK_NOTHROW(validate(base + "threads: 64\ndata: {batch_size: 65536, prefetch: 64, on_bad_image: skip}\n"));
  // A path too long for the file system: a config error, not a filesystem_error escaping the config reader.
  CHECK_THROWS_WITH(validate("model: {preset: vit_mnist_tiny, checkpoint: " + std::string(5000, 'x') + "}\n"),
                    Catch::Contains("model.checkpoint: no such file"));
  const std::string model = "model: {preset: vit_mnist_tiny, pretrain: {epochs: 1}}\n";
  // Bits each method's kernels support (models::supported_bits): caught here, not after pretraining.
  CHECK_THROWS_WITH(validate(model + "compare:\n  - {name: a, bits: 12, plan: ivit}\n"),
                    Catch::Contains("compare.0.bits: 12 bits are outside what ivit supports (2..10)"));
  CHECK_THROWS_WITH(validate(model + "compare:\n  - {name: a, bits: 2, plan: ibert}\n"),
                    Catch::Contains("outside what ibert supports"));
  CHECK_THROWS_WITH(validate(model + "compare:\n  - {name: a, bits: 16, plan: ibert}\n"),
                    Catch::Contains("outside what ibert supports"));
  CHECK_THROWS_WITH(validate(model + "quant: {bits: 2, plan: fqvit}\n"),
                    Catch::Contains("quant.bits: 2 bits are outside what fqvit supports"));
  CHECK_NOTHROW(validate(model + "quant: {bits: 16, plan: fqvit}\n"));
  CHECK_NOTHROW(validate(model + "quant: {bits: 2, plan: ivit}\n"));
  // A mixed plan may pick any candidate: bits 12 fail through ivit, pass when ivit is not a candidate.
  CHECK_THROWS_WITH(validate(model + "quant: {bits: 12, plan: mixed}\n"),
                    Catch::Contains("quant.bits") && Catch::Contains("mixed plan"));
  CHECK_NOTHROW(validate(model + "quant: {bits: 12, plan: mixed}\n"
                                 "analyze: {softmax: [ibert, fqvit], gelu: [ibert], layernorm: [ibert]}\n"));
  // Without the isolated scores (analyze.isolated: false) the isolated ranking and the plan search have nothing to
  // start from: their runs are config errors naming the run's plan; the paper-mode runs are fine.
  CHECK_THROWS_WITH(validate(model + "analyze: {isolated: false}\ncompare:\n  - {name: a, bits: 8, plan: mixed}\n"
                                     "  - {name: b, bits: 8, plan: mixed_isolated}\n"),
                    Catch::Contains("compare.1.plan: 'mixed_isolated' needs the isolated scores"));
  CHECK_THROWS_WITH(validate(model + "analyze: {isolated: false}\nquant: {bits: 8, plan: searched}\n"),
                    Catch::Contains("quant.plan: 'searched' needs the isolated scores"));
  CHECK_THROWS_WITH(validate(model + "analyze: {isolated: false, mode: isolated}\n"),
                    Catch::Contains("analyze.isolated: false needs mode paper"));
  CHECK_NOTHROW(validate(model + "analyze: {isolated: false}\ncompare:\n  - {name: a, bits: 8, plan: mixed}\n"
                                 "  - {name: b, bits: 8, plan: mixed_paper}\n"));
  // auto (the default) and true: the job scores the isolated mode for the runs that need it.
  for (const char* iso : {"auto", "true"}) {
    CHECK_NOTHROW(validate(model + "analyze: {isolated: " + iso + "}\nquant: {bits: 8, plan: searched}\n"));
  }
  CHECK_THROWS_WITH(validate(model + "analyze: {isolated: on}\n"),
                    Catch::Contains("analyze.isolated: must be auto, true or false, got 'on'"));
  // A plan file: the methods it names; a malformed plan file is a config error naming the key.
  const std::string plan = "/tmp/mnq_test_train_config_plan.yaml";
  std::ofstream(plan) << "all: ivit\nsoftmax: ibert\n";
  CHECK_THROWS_WITH(validate(model + "quant: {bits: 3, plan: " + plan + "}\n"),
                    Catch::Contains("outside what ibert supports"));
  CHECK_NOTHROW(validate(model + "quant: {bits: 8, plan: " + plan + "}\n"));
  std::ofstream(plan) << "all: ivit\nall: ibert\n";
  CHECK_THROWS_WITH(validate(model + "quant: {bits: 8, plan: " + plan + "}\n"),
                    Catch::Contains("quant.plan") && Catch::Contains("'all' appears twice"));
}

TEST_CASE("job config: --set errors name the --set; a scalar's subkey is a config error", "[train_config]") {
  CHECK_THROWS_WITH(config::from_text<JobConfig>(kValid, "job.yaml", {"threads=100000"}),
                    Catch::Contains("--set threads=100000: threads: must be in 0.."));
  CHECK_THROWS_WITH(config::from_text<JobConfig>(kValid, "job.yaml", {"threads.a=1"}),
                    Catch::Contains("--set threads.a=1: threads: is not a section"));
  CHECK_THROWS_WITH(config::from_text<JobConfig>(kValid, "job.yaml", {"compare.0.bits=12"}),
                    Catch::Contains("--set compare.0.bits=12: compare.0.bits: 12 bits"));
  CHECK_THROWS_WITH(config::from_text<JobConfig>(kValid + std::string("threads: 100000\n"), "job.yaml"),
                    Catch::Contains("job.yaml: threads"));
}

TEST_CASE("job config: --set overrides and the resolved YAML round-trips", "[train_config]") {
  JobConfig c = parse(kValid);
  config::apply_set(c, "data.batch_size=16");
  config::apply_set(c, "train.time_budget_s=30");
  CHECK(c.data.batch_size == 16);
  CHECK(c.train.time_budget_s == 30);
  CHECK_THROWS_WITH(config::apply_set(c, "data.batchsize=16"), Catch::Contains("data.batchsize"));
  const JobConfig back = parse(config::to_yaml(c));
  CHECK(config::to_yaml(back) == config::to_yaml(c));
  CHECK(back.compare.size() == 2);
  const std::string help = config::describe<JobConfig>();
  for (const char* key : {"data.batch_size", "model.pretrain.epochs", "train.time_budget_s", "quant.calib_batches",
                          "output.dir", "compare", "data.randaugment", "data.random_erasing", "train.mixup",
                          "train.cutmix", "train.mixup_prob", "train.mixup_switch_prob", "model.drop_path"}) {
    CHECK_THAT(help, Catch::Contains(key));
  }
}

TEST_CASE("job config: the shipped configs parse", "[train_config]") {
  const JobConfig fm = config::load<JobConfig>(MNQ_SOURCE_DIR "/configs/fashion_mnist.yaml");
  CHECK(fm.model.preset == "vit_mnist_tiny");
  CHECK(fm.runs().size() == 14);
  // The main job trains without the SPEC §8 augmentations (its measured numbers predate them).
  CHECK(!fm.data.rand_augment());
  CHECK(fm.data.erasing() == 0);
  CHECK(fm.model.drop_path == 0);
  for (const train::TrainConfig* t : {&fm.model.pretrain, &fm.train}) CHECK(!(t->mixup > 0 || t->cutmix > 0));
  // The ImageNet job points at files this machine does not have; it parses, and validation names them.
  const JobConfig in = config::parse_yaml<JobConfig>(
      [] {
        std::ifstream f(MNQ_SOURCE_DIR "/configs/imagenet_deit_tiny.yaml");
        return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      }(),
      "imagenet_deit_tiny.yaml");
  CHECK(in.model.preset == "deit_tiny_patch16_224");
  CHECK(in.train.lr == 1e-6);
  CHECK(in.data.kind == "image_folder");
  CHECK(in.data.randaugment == "rand-m9-mstd0.5-inc1");
  CHECK(in.data.random_erasing == 0.25);
  CHECK(in.train.mixup == 0.8);
  CHECK(in.train.cutmix == 1.0);
  CHECK(in.model.drop_path == 0.1);
}
