// Batches of a Dataset, loaded by a small pool of worker threads ahead of the consumer (bounded prefetch).
// Deterministic given the seed: the order of epoch e is a Fisher–Yates shuffle seeded by (seed, e), each
// image's augmentation RNG is seeded by (seed, e, position), and batches are handed out in order whichever
// worker finished first. So an epoch can also be started at any batch (resuming mid-epoch) and yields exactly
// the batches it would have yielded from the start.
#pragma once

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "csrc/data/dataset.h"

namespace mnq {
namespace data {

struct Batch {
  at::Tensor images;  // float [B, C, H, W]
  at::Tensor labels;  // int64 [B]
  // LoaderOptions::partners on a shard: the images and labels of the mirrored slice of the global batch (those at
  // batch positions c−1−j for this shard's j, in batch order: flip(0) pairs them with images), which Mixup /
  // CutMix mix with (a batch mixes with itself reversed). Undefined otherwise.
  at::Tensor partner_images, partner_labels;
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = false;
  bool drop_last = false;  // training drops the last partial batch (steady batch statistics and step counts)
  int64_t workers = 2;     // 0: load in the calling thread
  int64_t prefetch = 4;    // batches loaded ahead of the consumer
  uint64_t seed = 0;
  // Batches in page-locked memory, so a CUDA model's copies need not wait (non_blocking); ignored when no CUDA
  // device is available (pinned memory needs one).
  bool pin_memory = false;
  // Data-parallel: this process loads slice `shard` of `shards` contiguous, equal (±1) slices of every batch.
  // batch_size, the order and each image's augmentation stay those of the global batch (functions of seed, epoch
  // and global position), so the shards of all ranks together are exactly the one-process batch.
  int64_t shard = 0, shards = 1;
  bool partners = false;  // also load Batch::partner_images / partner_labels (shards > 1 only)
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  int64_t num_batches() const;
  int64_t num_images() const;  // images in one epoch (after drop_last), all shards
  // This process's slice of batch i: its first global position in the epoch's order and its image count.
  std::pair<int64_t, int64_t> shard_range(int64_t i) const;
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

  // Batch i of epoch e, loaded in the calling thread (calibration sources read batches by index).
  Batch batch(int64_t epoch, int64_t i) const;

  // One pass over batches [start, end) of epoch `epoch` (end < 0: to the last batch), loaded in the background.
  class Pass {
   public:
    ~Pass();
    std::optional<Batch> next();  // nullopt after the last batch; rethrows a worker's error

   private:
    friend class Loader;
    Pass(const Loader& loader, int64_t epoch, int64_t start, int64_t end);
    void work();
    const Loader& loader_;
    int64_t epoch_, next_job_, next_out_, end_;
    std::vector<int64_t> order_;  // the epoch's image order, computed once
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::map<int64_t, Batch> ready_;
    std::map<int64_t, std::exception_ptr> errors_;
    std::vector<std::thread> threads_;
  };
  std::unique_ptr<Pass> pass(int64_t epoch, int64_t start = 0, int64_t end = -1) const;

 private:
  std::vector<int64_t> order(int64_t epoch) const;
  Batch load_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t i) const;
  Batch load_positions(const std::vector<int64_t>& order, int64_t epoch, int64_t first, int64_t count) const;

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  bool pin_ = false;  // options_.pin_memory and a CUDA device is available
};

}  // namespace data
}  // namespace mnq
