// The non-template half of config.h: errors, scalar conversions, YAML parsing and emitting, --set paths.
#include "csrc/config/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

namespace mnq {
namespace config {

Error::Error(const std::string& key_path, const std::string& what)
    : Error(key_path.empty() ? what : key_path + ": " + what, key_path, what) {}

Error::Error(const std::string& message, const std::string& key_path, const std::string& what)
    : std::invalid_argument(message), key_path_(key_path), what_(what) {}

Error Error::with_origin(const std::string& origin) const {
  return Error(origin + ": " + std::string(std::invalid_argument::what()), key_path_, what_);
}

namespace detail {

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

std::string scalar_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  return emit(node);
}

namespace {

[[noreturn]] void wrong_type(const YAML::Node& node, const std::string& path, const char* expected) {
  const std::string got = node.IsScalar() ? "'" + node.Scalar() + "'" : node.IsSequence() ? "a list" : "a mapping";
  throw Error(path, std::string("expected ") + expected + ", got " + got);
}

}  // namespace

void decode(const YAML::Node& node, const std::string& path, bool& out) {
  if (!node.IsScalar()) wrong_type(node, path, "a bool (true/false)");
  const std::string& s = node.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") {
    out = true;
  } else if (s == "false" || s == "False" || s == "FALSE") {
    out = false;
  } else {
    wrong_type(node, path, "a bool (true/false)");
  }
}

void decode(const YAML::Node& node, const std::string& path, int64_t& out) {
  if (!node.IsScalar()) wrong_type(node, path, "an integer");
  const std::string& s = node.Scalar();
  size_t used = 0;
  try {
    out = std::stoll(s, &used, 10);
  } catch (const std::exception&) {
    wrong_type(node, path, "an integer");
  }
  if (used != s.size()) wrong_type(node, path, "an integer");
}

void decode(const YAML::Node& node, const std::string& path, double& out) {
  if (!node.IsScalar()) wrong_type(node, path, "a number");
  const std::string& s = node.Scalar();
  size_t used = 0;
  try {
    out = std::stod(s, &used);
  } catch (const std::exception&) {
    wrong_type(node, path, "a number");
  }
  if (used != s.size() || !std::isfinite(out)) wrong_type(node, path, "a finite number");
}

void decode(const YAML::Node& node, const std::string& path, std::string& out) {
  if (!node.IsScalar()) wrong_type(node, path, "a string");
  out = node.Scalar();
}

YAML::Node encode(bool v) { return YAML::Node(v ? "true" : "false"); }
YAML::Node encode(int64_t v) { return YAML::Node(std::to_string(v)); }

YAML::Node encode(double v) {
  // Shortest text that reads back to the same double.
  std::ostringstream s;
  s.precision(std::numeric_limits<double>::max_digits10);
  for (int digits = 1; digits <= std::numeric_limits<double>::max_digits10; ++digits) {
    std::ostringstream t;
    t.precision(digits);
    t << v;
    if (std::stod(t.str()) == v) return YAML::Node(t.str());
  }
  s << v;
  return YAML::Node(s.str());
}

YAML::Node encode(const std::string& v) { return YAML::Node(v); }

YAML::Node parse_document(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error("", "not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")")
        .with_origin(origin);
  }
}

void assign(YAML::Node& root, const std::string& path, const std::string& text) {
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(path, "the value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> keys;
  std::stringstream ss(path);
  for (std::string k; std::getline(ss, k, '.');) {
    if (k.empty()) throw Error(path, "empty key in the path");
    keys.push_back(k);
  }
  // yaml-cpp nodes are handles: walk down, creating mappings for keys that are not set yet.
  std::vector<YAML::Node> chain = {root};
  std::string walked;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node cur = chain.back();
    if (!cur.IsMap() && !cur.IsSequence()) {
      // e.g. threads.a=1: yaml-cpp would throw BadSubscript on a scalar
      throw Error(walked, "is not a section, so it has no key '" + keys[i] + "'");
    }
    walked = join(walked, keys[i]);
    if (cur.IsSequence()) {
      size_t idx = 0;
      try {
        idx = std::stoul(keys[i]);
      } catch (const std::exception&) {
        throw Error(walked, "is a list: expected an index");
      }
      if (idx >= cur.size()) throw Error(walked, "index out of range (the list has " + std::to_string(cur.size()) + ")");
      chain.push_back(cur[idx]);
    } else {
      if (!cur[keys[i]]) cur[keys[i]] = YAML::Node(YAML::NodeType::Map);
      chain.push_back(cur[keys[i]]);
    }
  }
  YAML::Node last = chain.back();
  if (!last.IsMap() && !last.IsSequence()) {
    throw Error(walked, "is not a section, so it has no key '" + keys.back() + "'");
  }
  if (last.IsSequence()) {
    size_t idx = 0;
    try {
      idx = std::stoul(keys.back());
    } catch (const std::exception&) {
      throw Error(path, "the parent is a list: expected an index");
    }
    if (idx >= last.size()) throw Error(path, "index out of range");
    last[idx] = value;
  } else {
    last[keys.back()] = value;
  }
}

std::string emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return std::string(out.c_str()) + "\n";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("", "cannot read the config file").with_origin(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace detail

bool is_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

int64_t max_threads() {
  return std::max<int64_t>(64, 4 * int64_t(std::thread::hardware_concurrency()));
}

bool set_names(const std::string& assignment, const std::string& key_path) {
  const std::string key = assignment.substr(0, assignment.find('='));
  auto within = [](const std::string& a, const std::string& b) {  // a is b or a key under b
    return a.size() >= b.size() && a.compare(0, b.size(), b) == 0 && (a.size() == b.size() || a[b.size()] == '.');
  };
  return !key_path.empty() && (within(key_path, key) || within(key, key_path));
}

Visitor::Visitor(Mode mode, YAML::Node node, std::string path)
    : mode_(mode), node_(std::move(node)), path_(std::move(path)) {}

YAML::Node Visitor::child(const char* key) {
  visited_.insert(key);
  if (!node_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& map = node_;  // the const operator[] never inserts the key
  return map[key];
}

void Visitor::check_unknown() const {
  if (mode_ != Mode::kRead || !node_ || !node_.IsMap()) return;
  std::set<std::string> seen;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) throw Error(path_, "keys must be plain names, got " + detail::emit(kv.first));
    const std::string key = kv.first.Scalar();
    // yaml-cpp keeps every entry of a repeated key and reads the first: say so instead.
    if (!seen.insert(key).second) throw Error(detail::join(path_, key), "appears twice");
    if (visited_.count(key)) continue;
    std::string known;
    for (const auto& k : visited_) known += (known.empty() ? "" : ", ") + k;
    throw Error(detail::join(path_, key), "unknown key (known here: " + known + ")");
  }
}

void Visitor::describe(const std::string& path, const std::string& type, const std::string& def, const char* help) {
  std::string line = path + " (" + type + ")";
  if (!def.empty()) line += " = " + def;
  line.resize(std::max<size_t>(line.size() + 2, 48), ' ');
  lines_.push_back(line + help);
}

}  // namespace config
}  // namespace mnq
