#include "csrc/data/dataset.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace mnq {
namespace data {

namespace {

class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<Dataset> base, std::vector<int64_t> index)
      : base_(std::move(base)), index_(std::move(index)) {}
  int64_t size() const override { return int64_t(index_.size()); }
  int64_t num_classes() const override { return base_->num_classes(); }
  ImageShape shape() const override { return base_->shape(); }
  int64_t label(int64_t i) const override { return base_->label(index_[i]); }
  void load(int64_t i, uint64_t seed, float* out) const override { base_->load(index_[i], seed, out); }
  bool try_load(int64_t i, uint64_t seed, float* out) const override { return base_->try_load(index_[i], seed, out); }
  std::string describe() const override { return base_->describe() + ", subset of " + std::to_string(size()); }

 private:
  std::shared_ptr<Dataset> base_;
  std::vector<int64_t> index_;
};

}  // namespace

std::shared_ptr<Dataset> subset(std::shared_ptr<Dataset> base, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= base->size()) return base;
  std::vector<int64_t> perm(base->size());
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed ^ 0x5eb5e75eedULL);
  // Fisher–Yates with our own index draw: std::shuffle's use of the engine is implementation-defined.
  for (int64_t i = int64_t(perm.size()) - 1; i > 0; --i) std::swap(perm[i], perm[rng() % uint64_t(i + 1)]);
  perm.resize(n);
  std::sort(perm.begin(), perm.end());
  return std::make_shared<Subset>(std::move(base), std::move(perm));
}

}  // namespace data
}  // namespace mnq
