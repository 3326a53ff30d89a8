// Plan parsing, resolution and atomic saving. See plan.h for the format.
#include "csrc/models/plan.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "csrc/util/atomic_file.h"

namespace mnq {
namespace models {
namespace {

const char* const kTypeKeys[] = {"softmax", "gelu", "layernorm"};

bool is_type_key(const std::string& key) { return key == "all" || std::count(kTypeKeys, kTypeKeys + 3, key) > 0; }

std::string allowed_methods() {
  std::string out;
  for (const auto& m : plan_methods()) out += (out.empty() ? "" : ", ") + m;
  return out;
}

void check_entry(const std::string& origin, const std::string& key, const std::string& method) {
  if (!is_type_key(key) && !layer_op_type(key)) {
    throw std::invalid_argument(origin + ": unknown plan key '" + key +
                                "' (expected all, softmax, gelu, layernorm or a layer name such as "
                                "blocks.0.norm1, blocks.0.attn.softmax, blocks.0.mlp.gelu, norm)");
  }
  const auto& ms = plan_methods();
  if (std::find(ms.begin(), ms.end(), method) == ms.end()) {
    throw std::invalid_argument(origin + ": key '" + key + "': unknown method '" + method +
                                "' (allowed: " + allowed_methods() + ")");
  }
}

// Sort key that orders layer names as a model does: numeric components compare as numbers, so blocks.10 comes
// after blocks.9, and within a block norm1 < attn.softmax < norm2 < mlp.gelu (forward order).
std::vector<std::string> order_key(const std::string& name) {
  static const std::map<std::string, std::string> rank = {{"norm1", "0"}, {"attn", "1"},       {"norm2", "2"},
                                                          {"mlp", "3"},   {"downsample", "4"}, {"norm", "5"}};
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string p; std::getline(ss, p, '.');) {
    if (!p.empty() && std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
      parts.push_back(std::string(12 - std::min<size_t>(p.size(), 12), '0') + p);
    } else {
      auto it = rank.find(p);
      parts.push_back(it == rank.end() ? p : it->second);
    }
  }
  return parts;
}

}  // namespace

const char* op_type_key(OpType type) { return kTypeKeys[static_cast<int>(type)]; }

const std::vector<std::string>& plan_methods() {
  static const std::vector<std::string> methods = {"ivit", "ibert", "fqvit"};
  return methods;
}

BitRange supported_bits(const std::string& method) {
  // ivit: ShiftGELU (n = 23) needs ceil(1/(1.702·S))·2^23 < 2^31, i.e. S ≥ 2.3e-3, on the b-bit QuantAct after
  //   fc1: r ≥ 2.3e-3·(2^(b−1) − 1), 1.2 at b = 10 but 4.7 at b = 12 (trained Fashion-MNIST ViTs fail there).
  // ibert: i-exp needs S ∈ (1.8e-5, 1.67] on the b-bit attention scores: r ≤ 1.67 at b = 2 (always exceeded),
  //   11.7 at b = 4; i-GELU takes the fc1 accumulator, S = S_w·S_x ∝ 2^(−2(b−1)), which must stay ≥ 4.4e-7 (int64
  //   headroom): r_w·r_x ≥ 1.9 at b = 12, 30 at b = 14 (b = 16 fails for every model).
  // fqvit: its log-int softmax shares I-BERT's i-exp (the lower bound); its GELU is float, its LayerNorm exact.
  if (method == "ivit") return {2, 10};
  if (method == "ibert") return {4, 12};
  if (method == "fqvit") return {4, 16};
  throw std::invalid_argument("unknown method '" + method + "' (allowed: " + allowed_methods() + ")");
}

std::string unsupported_bits(int64_t bits, const std::vector<std::string>& methods) {
  for (const auto& m : methods) {
    const BitRange r = supported_bits(m);
    if (bits < r.lo || bits > r.hi) {
      return std::to_string(bits) + " bits are outside what " + m + " supports (" + std::to_string(r.lo) + ".." +
             std::to_string(r.hi) + "): its integer kernels would reject the activation scales at calibration";
    }
  }
  return "";
}

std::optional<OpType> layer_op_type(const std::string& name) {
  static const std::regex block(R"((?:layers\.\d+\.)?blocks\.\d+\.(norm1|norm2|attn\.softmax|mlp\.gelu))");
  static const std::regex downsample(R"(layers\.\d+\.downsample\.norm)");
  std::smatch m;
  if (std::regex_match(name, m, block)) {
    const std::string suffix = m[1];
    if (suffix == "attn.softmax") return OpType::kSoftmax;
    if (suffix == "mlp.gelu") return OpType::kGelu;
    return OpType::kLayerNorm;
  }
  if (name == "norm" || std::regex_match(name, downsample)) return OpType::kLayerNorm;
  return std::nullopt;
}

Plan Plan::parse(const std::string& yaml_text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(origin + ": not valid YAML: " + e.what());
  }
  if (!root.IsMap()) throw std::invalid_argument(origin + ": a plan must be a YAML mapping of key: method");
  Plan plan;
  plan.origin_ = origin;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) throw std::invalid_argument(origin + ": plan keys must be strings");
    const std::string key = kv.first.as<std::string>();
    if (plan.entries_.count(key)) throw std::invalid_argument(origin + ": key '" + key + "' appears twice");
    if (!kv.second.IsScalar()) {
      throw std::invalid_argument(origin + ": key '" + key +
                                  "': the value must be one method name (allowed: " + allowed_methods() + ")");
    }
    plan.set(key, kv.second.as<std::string>());
  }
  return plan;
}

Plan Plan::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read plan file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

Plan Plan::uniform(const std::string& method) { return Plan().set("all", method); }

Plan& Plan::set(const std::string& key, const std::string& method) {
  check_entry(origin_, key, method);
  entries_[key] = method;
  return *this;
}

std::string Plan::method_for(const std::string& layer) const {
  const auto type = layer_op_type(layer);
  if (!type) throw std::invalid_argument(origin_ + ": '" + layer + "' is not a mixable layer name");
  for (const std::string& key : {layer, std::string(op_type_key(*type)), std::string("all")}) {
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second;
  }
  throw std::invalid_argument(origin_ + ": layer '" + layer + "' has no method (set it, '" + op_type_key(*type) +
                              "' or 'all')");
}

std::map<std::string, std::string> Plan::resolve(const std::vector<std::string>& layers) const {
  for (const auto& [key, method] : entries_) {
    if (!is_type_key(key) && std::find(layers.begin(), layers.end(), key) == layers.end()) {
      throw std::invalid_argument(origin_ + ": plan key '" + key + "' is not a layer of this model (it has " +
                                  std::to_string(layers.size()) + " mixable layers, from '" +
                                  (layers.empty() ? "" : layers.front()) + "' to '" +
                                  (layers.empty() ? "" : layers.back()) + "')");
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& layer : layers) out[layer] = method_for(layer);
  return out;
}

std::string Plan::to_yaml() const {
  std::vector<std::string> layer_keys;
  YAML::Emitter em;
  em << YAML::BeginMap;
  for (const char* key : {"all", "softmax", "gelu", "layernorm"}) {
    auto it = entries_.find(key);
    if (it != entries_.end()) em << YAML::Key << key << YAML::Value << it->second;
  }
  for (const auto& [key, method] : entries_) {
    if (!is_type_key(key)) layer_keys.push_back(key);
  }
  std::sort(layer_keys.begin(), layer_keys.end(),
            [](const std::string& a, const std::string& b) { return order_key(a) < order_key(b); });
  for (const auto& key : layer_keys) em << YAML::Key << key << YAML::Value << entries_.at(key);
  em << YAML::EndMap;
  return std::string(em.c_str()) + "\n";
}

void Plan::save(const std::string& path) const { util::write_file_atomic(path, to_yaml()); }

}  // namespace models
}  // namespace mnq
