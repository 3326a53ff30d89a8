// The trainer's benchmark (mnq-bench-train, and mnq._mnq.bench_train for scripts/bench_train.py): images/s of a
// training step (forward + cross-entropy + backward + AdamW) and of evaluation for the FP model and its quantized
// twins (QAT fake-quant, uniform plans) of one preset on the same random batch in the same run, and of the data
// loader. Each model row carries its rate relative to the FP row of the same kind, so the ratios stay meaningful
// on a machine shared with other jobs; nothing here asserts a timing. Each model row also counts the host reads
// of one step (STYLE rule 16: a training step should read nothing back).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnq {
namespace train {

struct BenchOptions {
  std::string preset = "vit_mnist_tiny";
  int64_t batch = 128;  // images per step
  int64_t steps = 10;   // timed steps per row (after `warmup` untimed ones)
  int64_t warmup = 2;
  int64_t bits = 8;                                               // W/A bits of the quantized models
  std::vector<std::string> methods = {"ivit", "ibert", "fqvit"};  // uniform plans timed
  std::string device = "cpu";                                     // cpu | cuda (models and the batch live there)
  // Loader rows: fashion_mnist (the IDX files under fashion_root) | synthetic (generated images of the model's
  // input shape: the loader's own cost) | none.
  std::string data = "fashion_mnist";
  std::string fashion_root;  // empty: data::kFashionMnistRoot
  std::string image_folder;  // also time an ImageNet-style folder (root with train/) at img_size
  int64_t img_size = 224;
  int64_t workers = 1;  // loader threads
  int64_t loader_images = 20000;
};

struct BenchRow {
  std::string name;      // e.g. "QAT W8 ivit train step"
  std::string kind;      // train | eval | loader
  std::string method;    // fp, a plan method, or the loader's data
  double img_s = 0;      // images per wall-clock second
  double img_cpu_s = 0;  // images per CPU second of this process (all threads)
  double vs_fp = 0;      // img_s / the FP row of the same kind (train or eval); 0 for loader rows
  // Tensor values read back to the host (aten::_local_scalar_dense, models/op_counter.h) in one more step or
  // eval forward after the timed ones; each is a device sync on a GPU. -1 for loader rows.
  int64_t host_reads = -1;
};

struct BenchResult {
  BenchOptions options;
  int64_t threads = 0;  // torch intra-op threads used
  std::vector<BenchRow> rows;
};

// Runs every row; throws std::invalid_argument naming the option for a bad preset, method, device or data.
BenchResult bench_train(const BenchOptions& options);
// A markdown table of the rows, with a header line and a note on the columns.
std::string bench_table(const BenchResult& result);

}  // namespace train
}  // namespace mnq
