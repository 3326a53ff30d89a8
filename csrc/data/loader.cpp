#include "csrc/data/loader.h"

#include <numeric>
#include <random>
#include <stdexcept>

#include "csrc/data/random.h"

namespace mnq {
namespace data {

using rnd::splitmix64;

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options), pin_(options.pin_memory && at::hasCUDA()) {
  if (options_.batch_size <= 0) throw std::invalid_argument("loader: batch_size must be positive");
  if (options_.workers < 0 || options_.prefetch <= 0) {
    throw std::invalid_argument("loader: workers must be >= 0 and prefetch positive");
  }
  if (options_.shards <= 0 || options_.shard < 0 || options_.shard >= options_.shards) {
    throw std::invalid_argument("loader: shard must be in 0..shards-1");
  }
}

std::pair<int64_t, int64_t> Loader::shard_range(int64_t i) const {
  const int64_t b = options_.batch_size, first = i * b;
  const int64_t count = std::min<int64_t>(b, dataset_->size() - first);
  const int64_t lo = count * options_.shard / options_.shards, hi = count * (options_.shard + 1) / options_.shards;
  return {first + lo, hi - lo};
}

int64_t Loader::num_batches() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

int64_t Loader::num_images() const {
  return options_.drop_last ? num_batches() * options_.batch_size : dataset_->size();
}

std::vector<int64_t> Loader::order(int64_t epoch) const {
  std::vector<int64_t> idx(dataset_->size());
  std::iota(idx.begin(), idx.end(), 0);
  if (options_.shuffle) {
    std::mt19937_64 rng(splitmix64(options_.seed) ^ splitmix64(uint64_t(epoch) + 1));
    for (int64_t i = int64_t(idx.size()) - 1; i > 0; --i) std::swap(idx[i], idx[rng() % uint64_t(i + 1)]);
  }
  return idx;
}

Batch Loader::load_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t i) const {
  const auto [first, count] = shard_range(i);
  Batch out = load_positions(order, epoch, first, count);
  if (options_.partners && options_.shards > 1) {
    // Batch position j pairs with c−1−j: this slice [lo, hi) with [c−hi, c−lo).
    const int64_t start = i * options_.batch_size, c = std::min<int64_t>(options_.batch_size, dataset_->size() - start);
    const int64_t lo = first - start, hi = lo + count;
    Batch p = load_positions(order, epoch, start + c - hi, hi - lo);
    out.partner_images = std::move(p.images);
    out.partner_labels = std::move(p.labels);
  }
  return out;
}

// The images at positions [first, first + count) of the epoch's order.
Batch Loader::load_positions(const std::vector<int64_t>& order, int64_t epoch, int64_t first, int64_t count) const {
  const ImageShape s = dataset_->shape();
  const int64_t classes = dataset_->num_classes();
  const at::TensorOptions opt = at::TensorOptions().pinned_memory(pin_);
  Batch out{at::empty({count, s.channels, s.height, s.width}, opt.dtype(at::kFloat)),
            at::empty({count}, opt.dtype(at::kLong))};
  float* img = out.images.data_ptr<float>();
  int64_t* lab = out.labels.data_ptr<int64_t>();
  for (int64_t k = 0; k < count; ++k) {
    const int64_t pos = first + k;
    const uint64_t seed = splitmix64(splitmix64(options_.seed) ^
                                     splitmix64(uint64_t(epoch) << 32 ^ uint64_t(pos)));
    // A dataset that skips bad items (try_load false) gets the next item of the epoch's order in their place:
    // batches keep their size (static shapes for compiled and CUDA-graph steps) and stay deterministic.
    int64_t src = pos;
    while (!dataset_->try_load(order[src], seed, img + k * s.numel())) {
      src = (src + 1) % int64_t(order.size());
      if (src == pos) throw std::runtime_error("loader: no usable image in " + dataset_->describe());
    }
    lab[k] = dataset_->label(order[src]);
    // Checked here, where labels are made on the host: on a GPU a bad label would be a device-side assert (or a
    // read back per step to catch it).
    if (lab[k] < 0 || lab[k] >= classes) {
      throw std::out_of_range("loader: image " + std::to_string(order[src]) + " of " + dataset_->describe() +
                              " has label " + std::to_string(lab[k]) + ", outside 0.." + std::to_string(classes - 1));
    }
  }
  return out;
}

Batch Loader::batch(int64_t epoch, int64_t i) const {
  if (i < 0 || i >= num_batches()) {
    throw std::out_of_range("loader: batch " + std::to_string(i) + " of " + std::to_string(num_batches()));
  }
  return load_batch(order(epoch), epoch, i);
}

std::unique_ptr<Loader::Pass> Loader::pass(int64_t epoch, int64_t start, int64_t end) const {
  if (end < 0 || end > num_batches()) end = num_batches();
  return std::unique_ptr<Pass>(new Pass(*this, epoch, std::max<int64_t>(start, 0), end));
}

Loader::Pass::Pass(const Loader& loader, int64_t epoch, int64_t start, int64_t end)
    : loader_(loader), epoch_(epoch), next_job_(start), next_out_(start), end_(end), order_(loader.order(epoch)) {
  for (int64_t t = 0; t < loader_.options_.workers; ++t) threads_.emplace_back([this] { work(); });
}

Loader::Pass::~Pass() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Loader::Pass::work() {
  for (;;) {
    int64_t job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Stay at most `prefetch` batches ahead of the consumer.
      cv_.wait(lock, [&] { return stop_ || next_job_ >= end_ || next_job_ < next_out_ + loader_.options_.prefetch; });
      if (stop_ || next_job_ >= end_) return;
      job = next_job_++;
    }
    std::optional<Batch> b;
    std::exception_ptr err;
    try {
      b = loader_.load_batch(order_, epoch_, job);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (err) {
        errors_[job] = err;
      } else {
        ready_[job] = std::move(*b);
      }
    }
    cv_.notify_all();
  }
}

std::optional<Batch> Loader::Pass::next() {
  if (next_out_ >= end_) return std::nullopt;
  if (threads_.empty()) return loader_.load_batch(order_, epoch_, next_out_++);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ready_.count(next_out_) || errors_.count(next_out_); });
  if (auto e = errors_.find(next_out_); e != errors_.end()) std::rethrow_exception(e->second);
  Batch b = std::move(ready_[next_out_]);
  ready_.erase(next_out_);
  ++next_out_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

}  // namespace data
}  // namespace mnq
