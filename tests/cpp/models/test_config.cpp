// Typed YAML configs: defaults, nested sections, lists of sections, unknown keys, wrong types, --set overrides,
// validation messages with their key paths, the YAML round trip and --help's key listing.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "csrc/config/cli.h"
#include "csrc/config/config.h"

namespace cfg = mnq::config;

namespace {

struct Run {
  std::string name = "ivit";
  int64_t bits = 8;
  void visit(cfg::Visitor& v) {
    v.field("name", name, "run name");
    v.field("bits", bits, "W/A bits");
  }
};

struct Train {
  int64_t epochs = 3;
  double lr = 1e-3;
  bool amp = false;
  std::vector<int64_t> milestones = {1, 2};
  std::vector<std::string> methods = {"ivit", "ibert"};
  void visit(cfg::Visitor& v) {
    v.field("epochs", epochs, "QAT epochs");
    v.field("lr", lr, "peak learning rate");
    v.field("amp", amp, "mixed precision");
    v.field("milestones", milestones, "epochs");
    v.field("methods", methods, "candidates");
  }
};

struct Job {
  std::string name = "job";
  Train train;
  std::vector<Run> compare = {Run{}};
  void visit(cfg::Visitor& v) {
    v.field("name", name, "job name");
    v.section("train", train, "training");
    v.list("compare", compare, "runs");
  }
  void validate(const std::string& path) const {
    if (train.epochs < 1) throw cfg::Error(cfg::detail::join(path, "train.epochs"), "must be >= 1");
    for (size_t i = 0; i < compare.size(); ++i) {
      if (compare[i].bits < 2 || compare[i].bits > 16) {
        throw cfg::Error("compare." + std::to_string(i) + ".bits", "must be in 2..16");
      }
    }
  }
};

}  // namespace

TEST_CASE("config: missing keys keep defaults; given keys are read", "[config]") {
  const Job j = cfg::from_text<Job>("train:\n  lr: 0.5\n  methods: [fqvit]\ncompare:\n  - {bits: 6}\n  - {name: m}\n",
                                    "job.yaml");
  CHECK(j.name == "job");
  CHECK(j.train.epochs == 3);
  CHECK(j.train.lr == 0.5);
  CHECK(j.train.methods == std::vector<std::string>{"fqvit"});
  REQUIRE(j.compare.size() == 2);
  CHECK(j.compare[0].name == "ivit");
  CHECK(j.compare[0].bits == 6);
  CHECK(j.compare[1].name == "m");
  CHECK(j.compare[1].bits == 8);
  CHECK(cfg::from_text<Job>("", "empty.yaml").train.epochs == 3);
}

TEST_CASE("config: errors name the origin and the key path", "[config]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  epoch: 2\n", "a.yaml"),
                    Contains("a.yaml: train.epoch: unknown key") && Contains("epochs"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  epochs: two\n", "a.yaml"),
                    Contains("a.yaml: train.epochs: expected an integer, got 'two'"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  epochs: 2.5\n", "a.yaml"), Contains("train.epochs"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  amp: maybe\n", "a.yaml"), Contains("train.amp: expected a bool"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  methods: ivit\n", "a.yaml"),
                    Contains("train.methods: expected a list of string"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train: 3\n", "a.yaml"), Contains("train: expected a mapping"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  lr:\n", "a.yaml"), Contains("train.lr: has no value"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("compare:\n  - {bits: 6, nme: x}\n", "a.yaml"),
                    Contains("compare.0.nme: unknown key"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("compare:\n  - {bits: 1}\n", "a.yaml"),
                    Contains("a.yaml: compare.0.bits: must be in 2..16"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("- 1\n- 2\n", "a.yaml"), Contains("must be a mapping"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train: [1,\n", "a.yaml"), Contains("a.yaml: not valid YAML"));
  CHECK_THROWS_WITH(cfg::load<Job>("/nonexistent/job.yaml"), Contains("/nonexistent/job.yaml: cannot read"));
}

TEST_CASE("config: --set overrides by key path, validated", "[config]") {
  using Catch::Contains;
  const Job j = cfg::from_text<Job>("compare:\n  - {bits: 6}\n", "a.yaml",
                                    {"train.epochs=7", "compare.0.name=mixed", "train.methods=[ivit, fqvit]"});
  CHECK(j.train.epochs == 7);
  CHECK(j.compare[0].name == "mixed");
  CHECK(j.compare[0].bits == 6);
  CHECK(j.train.methods == std::vector<std::string>{"ivit", "fqvit"});
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"train.epochz=1"}),
                    Contains("--set train.epochz=1: train.epochz: unknown key"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"train.epochs"}), Contains("expects key.path=value"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"compare.3.bits=4"}), Contains("index out of range"));
  // A value from --set that fails validation names that --set (the last one that set it), not the file.
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"train.epochs=0"}),
                    Contains("--set train.epochs=0: train.epochs: must be"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"train.epochs=0", "train.lr=1", "train={epochs: 0}"}),
                    Contains("--set train={epochs: 0}: train.epochs: must be"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("compare:\n  - {bits: 1}\n", "a.yaml", {"train.epochs=4"}),
                    Contains("a.yaml: compare.0.bits: must be"));
  // A key below a scalar: a config error, not yaml-cpp's BadSubscript escaping as an abort.
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"name.a=1"}),
                    Contains("--set name.a=1: name: is not a section, so it has no key 'a'"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"name.a.b=1"}), Contains("name: is not a section"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"train.epochs.x=1"}), Contains("train.epochs: is not a section"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("", "a.yaml", {"compare.0.bits.x=1"}),
                    Contains("compare.0.bits: is not a section"));
}

TEST_CASE("config: a torch error reaches the command line as one line, without the C++ backtrace", "[config]") {
  try {
    TORCH_CHECK(false, "some op: scale must be positive");
  } catch (const c10::Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("Exception raised from"));  // what() carries the backtrace
    CHECK(cfg::error_message(e) == "some op: scale must be positive");
  }
  CHECK(cfg::error_message(std::runtime_error("plain")) == "plain");
}

TEST_CASE("config: a key given twice is an error, at any level", "[config]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(cfg::from_text<Job>("name: a\nname: b\n", "a.yaml"), Contains("a.yaml: name: appears twice"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("train:\n  epochs: 1\n  lr: 2\n  epochs: 3\n", "a.yaml"),
                    Contains("a.yaml: train.epochs: appears twice"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("compare:\n  - {bits: 6, bits: 4}\n", "a.yaml"),
                    Contains("compare.0.bits: appears twice"));
  CHECK_THROWS_WITH(cfg::from_text<Job>("? [a, b]\n: 1\n", "a.yaml"), Contains("keys must be plain names"));
}

TEST_CASE("config: the resolved YAML reads back to the same config; describe lists every key", "[config]") {
  Job j;
  j.train.lr = 0.1 + 0.2;  // not a short decimal: must survive the round trip exactly
  j.compare.push_back(Run{"x", 4});
  const Job back = cfg::from_text<Job>(cfg::to_yaml(j), "resolved");
  CHECK(back.train.lr == j.train.lr);
  CHECK(cfg::to_yaml(back) == cfg::to_yaml(j));
  const std::string d = cfg::describe<Job>();
  for (const char* key : {"name (string) = job", "train.epochs (int) = 3", "train.lr (float) = 0.001",
                          "train.milestones (list of int) = [1, 2]", "compare.<i>.bits (int) = 8"}) {
    CHECK_THAT(d, Catch::Contains(key));
  }
}

TEST_CASE("config: run_cli resolves, overrides and reports errors with exit codes", "[config]") {
  const std::string path = "/tmp/mnq_test_config_job.yaml";
  {
    std::ofstream f(path);
    f << "train:\n  epochs: 2\n";
  }
  auto call = [](std::vector<std::string> args, int64_t* seen) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return cfg::run_cli<Job>(static_cast<int>(argv.size()), argv.data(), "mnq-test", "test job",
                             [seen](const Job& j) {
                               *seen = j.train.epochs;
                               return 0;
                             });
  };
  int64_t seen = 0;
  CHECK(call({"mnq-test", "--config", path, "--set", "train.epochs=5"}, &seen) == 0);
  CHECK(seen == 5);
  seen = 0;
  CHECK(call({"mnq-test", "--config", path, "--print-config"}, &seen) == 0);
  CHECK(seen == 0);  // printed, not run
  CHECK(call({"mnq-test", "--config", path, "--set", "train.epochs=0"}, &seen) == 2);
  CHECK(call({"mnq-test", "--config", "/nonexistent.yaml"}, &seen) == 2);
  CHECK(call({"mnq-test"}, &seen) != 0);  // --config is required
  std::remove(path.c_str());
}
