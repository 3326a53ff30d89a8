// state.json of a checkpoint (checkpoint.h): TrainState to JSON, and back with every field type- and range-checked
// against the job, so a hand-edited or foreign file (`batch: 1e12`, a negative epoch, a step that does not match
// the progress) is refused with one line naming the file and the field instead of being trained on.
#include <cmath>
#include <limits>
#include <stdexcept>

#include "csrc/train/checkpoint.h"

namespace mnq {
namespace train {
namespace {

using nlohmann::json;

class Fields {
 public:
  Fields(const json& j, const std::string& path) : j_(j), path_(path) {
    if (!j.is_object()) fail_file("state.json is not a JSON object");
  }

  [[noreturn]] void fail_file(const std::string& what) const {
    throw std::runtime_error("checkpoint " + path_ + ": " + what);
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    fail_file("field '" + key + "' " + what);
  }

  const json& at(const std::string& key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) fail(key, "is missing from state.json");
    return *it;
  }
  // An integer (1e12 and 3.0 are JSON floats: refused) in [lo, hi].
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const {
    const json& v = at(key);
    if (!v.is_number_integer()) fail(key, "must be an integer, got " + v.dump());
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail(key, "is out of range: " + v.dump());
    }
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) {
      fail(key, "is " + std::to_string(x) + ", must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return x;
  }
  double number(const std::string& key, double lo, double hi) const {
    const json& v = at(key);
    if (!v.is_number()) fail(key, "must be a number, got " + v.dump());
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi)) fail(key, "is " + v.dump() + ", must lie in [" + json(lo).dump() + ", " + json(hi).dump() + "]");
    return x;
  }
  bool boolean(const std::string& key) const {
    const json& v = at(key);
    if (!v.is_boolean()) fail(key, "must be true or false, got " + v.dump());
    return v.get<bool>();
  }

 private:
  const json& j_;
  const std::string& path_;
};

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

json TrainState::to_json() const {
  return {{"epoch", epoch},
          {"batch", batch},
          {"step", step},
          {"elapsed_s", elapsed_s},
          {"part_loss", part_loss},
          {"part_correct", part_correct},
          {"part_seen", part_seen},
          {"best_top1", best_top1},
          {"best_epoch", best_epoch},
          {"finished", finished},
          {"budget_spent", budget_spent},
          {"history", train::to_json(history)},
          {"trained_for", trained_for}};
}

TrainState TrainState::from_json(const json& j, const std::string& path, int64_t batches_per_epoch,
                                 int64_t batch_size) {
  const Fields f(j, path);
  TrainState s;
  s.epoch = f.integer("epoch", 0, kMax);
  s.batch = f.integer("batch", 0, std::max<int64_t>(batches_per_epoch - 1, 0));
  // The invariant of the loop (every step is one batch, an epoch is batches_per_epoch batches): a different count
  // means another training set or batch size, or an edited file. Checked without overflow.
  s.step = f.integer("step", 0, kMax);
  if (batches_per_epoch > 0 &&
      (s.epoch > (kMax - s.batch) / batches_per_epoch || s.step != s.epoch * batches_per_epoch + s.batch)) {
    f.fail("step", "is " + std::to_string(s.step) + " but epoch " + std::to_string(s.epoch) + " × " +
                       std::to_string(batches_per_epoch) + " batches per epoch + batch " + std::to_string(s.batch) +
                       " says otherwise (another data.batch_size or training set than the checkpoint's, or an "
                       "edited file)");
  }
  s.elapsed_s = f.number("elapsed_s", 0, kInf);
  s.part_seen = f.integer("part_seen", 0, s.batch * batch_size);
  s.part_correct = f.integer("part_correct", 0, s.part_seen);
  s.part_loss = f.number("part_loss", 0, std::numeric_limits<double>::max());
  s.best_top1 = f.number("best_top1", -1, 1);
  s.best_epoch = f.integer("best_epoch", 0, s.epoch + 1);
  s.finished = f.boolean("finished");
  s.budget_spent = f.boolean("budget_spent");
  const json& history = f.at("history");
  if (!history.is_array()) f.fail("history", "must be an array");
  for (size_t i = 0; i < history.size(); ++i) {
    const json& h = history[i];
    for (const char* key : HistoryEntry::kKeys) {
      if (!h.is_object() || !h.contains(key) || !h[key].is_number()) {
        f.fail("history[" + std::to_string(i) + "]." + key, "is missing or not a number");
      }
    }
    if (!h["val_n"].is_number_integer() || h["val_n"].get<int64_t>() < 0) {
      f.fail("history[" + std::to_string(i) + "].val_n", "must be a non-negative integer");
    }
    s.history.push_back(HistoryEntry::from_json(h));
  }
  s.trained_for = f.at("trained_for");
  return s;
}

}  // namespace train
}  // namespace mnq
