// The history of a training stage; see history.h.
#include "csrc/train/history.h"

#include "csrc/util/atomic_file.h"

namespace mnq {
namespace train {

nlohmann::json HistoryEntry::to_json() const {
  return {{"epoch", epoch},       {"train_loss", train_loss}, {"train_top1", train_top1},   {"lr", lr},
          {"val_loss", val_loss}, {"val_top1", val_top1},     {"val_top5", val_top5},       {"val_n", val_n},
          {"epoch_s", epoch_s},   {"train_img_s", train_img_s}, {"elapsed_s", elapsed_s}};
}

HistoryEntry HistoryEntry::from_json(const nlohmann::json& j) {
  HistoryEntry h;
  h.epoch = j.at("epoch").get<double>();
  h.train_loss = j.at("train_loss").get<double>();
  h.train_top1 = j.at("train_top1").get<double>();
  h.lr = j.at("lr").get<double>();
  h.val_loss = j.at("val_loss").get<double>();
  h.val_top1 = j.at("val_top1").get<double>();
  h.val_top5 = j.at("val_top5").get<double>();
  h.val_n = j.at("val_n").get<int64_t>();
  h.epoch_s = j.at("epoch_s").get<double>();
  h.train_img_s = j.at("train_img_s").get<double>();
  h.elapsed_s = j.at("elapsed_s").get<double>();
  return h;
}

nlohmann::json to_json(const History& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const HistoryEntry& h : history) out.push_back(h.to_json());
  return out;
}

void write_metrics(const std::string& dir, const History& history) {
  static const char* cols[] = {"epoch",    "train_loss", "train_top1", "lr",          "val_loss",
                               "val_top1", "val_top5",   "epoch_s",    "train_img_s", "elapsed_s"};
  std::string csv, jsonl;
  for (const char* c : cols) {
    if (!csv.empty()) csv += ',';
    csv += c;
  }
  csv += '\n';
  for (const HistoryEntry& entry : history) {
    const nlohmann::json h = entry.to_json();
    for (size_t i = 0; i < std::size(cols); ++i) {
      if (i > 0) csv += ',';
      csv += h.at(cols[i]).dump();
    }
    csv += '\n';
    jsonl += h.dump();
    jsonl += '\n';
  }
  util::write_file_atomic(dir + "/metrics.csv", csv);
  util::write_file_atomic(dir + "/metrics.jsonl", jsonl);
}

}  // namespace train
}  // namespace mnq
