// The datasets of a job's data section (csrc/jobs/datasets.h), shared by mnq-train and mnq-analyze: the model's
// shape after overrides, the splits and their subsets, the training split the analyzer calibrates on being the
// trainer's, and errors naming the key when the data do not fit the model.
#include <torch/torch.h>  // first: Catch2 then redefines c10's CHECK macro

#include <catch2/catch.hpp>

#include "csrc/config/config.h"
#include "csrc/jobs/datasets.h"
#include "train_test_util.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::TempDir;

TEST_CASE("datasets: model shape, splits, subsets and mismatches", "[train][datasets]") {
  ModelConfig m;
  m.preset = "vit_mnist_tiny";
  const ModelShape base = model_shape(m);
  CHECK((base.img_size == 28 && base.in_chans == 1 && base.num_classes == 10));
  m.img_size = 32;
  m.num_classes = 5;
  const ModelShape over = model_shape(m);
  CHECK((over.img_size == 32 && over.in_chans == 1 && over.num_classes == 5));
  CHECK(model_overrides(m).in_chans == std::nullopt);

  TempDir dir("datasets");
  mnq_test::write_synthetic_fashion(dir / "data", 60, 30, 5);
  DataConfig d;
  d.root = dir / "data";
  d.train_subset = 40;
  d.val_subset = 20;
  const Splits s = make_datasets(d, base);
  CHECK(s.train->size() == 40);
  CHECK(s.val->size() == 20);
  // The analyzer's calibration split is the trainer's training split, image for image.
  const auto calib = training_split(d, base);
  REQUIRE(calib->size() == 40);
  for (int64_t i = 0; i < 40; ++i) CHECK(calib->label(i) == s.train->label(i));

  CHECK_THROWS_WITH(make_datasets(d, over), Catch::Contains("model") && Catch::Contains("takes 1×32×32"));
  ModelShape classes = base;
  classes.num_classes = 5;
  CHECK_THROWS_WITH(make_datasets(d, classes), Catch::Contains("model.num_classes") && Catch::Contains("data 10"));
  ModelShape rgb = base;
  rgb.in_chans = 3;
  CHECK_THROWS_WITH(training_split(d, rgb), Catch::Contains("3×28×28") && Catch::Contains("data are 1×28×28"));
}
