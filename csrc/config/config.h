// Typed YAML configs (STYLE rule 12). A config is a plain struct with defaults and two members:
//   void visit(config::Visitor& v)               names every field once: v.field("bits", bits, "help");
//                                                 nested structs with v.section(...), lists of them with v.list(...)
//   void validate(const std::string& path) const  checks values, throwing config::Error(path + ".key", "why")
// One visit() serves every pass: reading YAML (unknown keys, wrong types and missing values are errors naming the
// key path), writing the resolved config back as YAML, and describing every key with its default for --help.
// Missing keys keep their defaults. `--set a.b=c` overrides (c parsed as YAML) go through the same reader.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace mnq {
namespace config {

// "<key.path>: <what>", prefixed with "<origin>: " once the origin (file, --set) is known.
class Error : public std::invalid_argument {
 public:
  Error(const std::string& key_path, const std::string& what);
  const std::string& key_path() const { return key_path_; }
  const std::string& reason() const { return what_; }
  // The same error with "<origin>: " in front of its message.
  Error with_origin(const std::string& origin) const;

 private:
  Error(const std::string& message, const std::string& key_path, const std::string& what);
  std::string key_path_, what_;
};

// A YAML type name of each field type, for messages and --help.
template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, int64_t>) return "int";
  else if constexpr (std::is_same_v<T, double>) return "float";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "list of int";
  else if constexpr (std::is_same_v<T, std::vector<double>>) return "list of float";
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "list of string";
  else static_assert(sizeof(T) == 0, "config fields are bool, int64_t, double, std::string or vectors of those");
}

namespace detail {
std::string join(const std::string& path, const std::string& key);
// Scalar conversions with messages naming the key path.
void decode(const YAML::Node& node, const std::string& path, bool& out);
void decode(const YAML::Node& node, const std::string& path, int64_t& out);
void decode(const YAML::Node& node, const std::string& path, double& out);
void decode(const YAML::Node& node, const std::string& path, std::string& out);
template <typename T>
void decode(const YAML::Node& node, const std::string& path, std::vector<T>& out) {
  if (!node.IsSequence()) throw Error(path, std::string("expected a ") + type_name<std::vector<T>>());
  std::vector<T> values(node.size());
  for (size_t i = 0; i < node.size(); ++i) decode(node[i], path + "." + std::to_string(i), values[i]);
  out = std::move(values);
}
YAML::Node encode(bool v);
YAML::Node encode(int64_t v);
YAML::Node encode(double v);
YAML::Node encode(const std::string& v);
template <typename T>
YAML::Node encode(const std::vector<T>& v) {
  YAML::Node n(YAML::NodeType::Sequence);
  for (const auto& x : v) n.push_back(encode(x));
  n.SetStyle(YAML::EmitterStyle::Flow);
  return n;
}
std::string scalar_text(const YAML::Node& node);
}  // namespace detail

class Visitor {
 public:
  enum class Mode { kRead, kWrite, kDescribe };

  // kRead: from `node` (a mapping, or null for "nothing set"); kWrite: into node(); kDescribe: into lines().
  Visitor(Mode mode, YAML::Node node = YAML::Node(), std::string path = "");

  template <typename T>
  void field(const char* key, T& value, const char* help) {
    const std::string path = detail::join(path_, key);
    switch (mode_) {
      case Mode::kRead:
        if (const YAML::Node n = child(key)) {
          if (n.IsNull()) throw Error(path, std::string("has no value (expected a ") + type_name<T>() + ")");
          detail::decode(n, path, value);
        }
        break;
      case Mode::kWrite: node_[key] = detail::encode(value); break;
      case Mode::kDescribe:
        describe(path, type_name<T>(), detail::scalar_text(detail::encode(value)), help);
        break;
    }
  }

  template <typename S>
  void section(const char* key, S& sub, const char* help) {
    const std::string path = detail::join(path_, key);
    switch (mode_) {
      case Mode::kRead:
        if (const YAML::Node n = child(key)) {
          if (!n.IsMap() && !n.IsNull()) throw Error(path, "expected a mapping of keys");
          Visitor inner(Mode::kRead, n, path);
          sub.visit(inner);
          inner.check_unknown();
        }
        break;
      case Mode::kWrite: {
        Visitor inner(Mode::kWrite, YAML::Node(YAML::NodeType::Map), path);
        sub.visit(inner);
        node_[key] = inner.node();
        break;
      }
      case Mode::kDescribe: {
        describe(path, "section", "", help);
        Visitor inner(Mode::kDescribe, YAML::Node(), path);
        sub.visit(inner);
        for (auto& line : inner.lines_) lines_.push_back(std::move(line));
        break;
      }
    }
  }

  // A list of sections; each item starts from S{} (its defaults) and is read like a section.
  template <typename S>
  void list(const char* key, std::vector<S>& items, const char* help) {
    const std::string path = detail::join(path_, key);
    switch (mode_) {
      case Mode::kRead:
        if (const YAML::Node n = child(key)) {
          if (!n.IsSequence()) throw Error(path, "expected a list of mappings");
          std::vector<S> out(n.size());
          for (size_t i = 0; i < n.size(); ++i) {
            const std::string p = path + "." + std::to_string(i);
            if (!n[i].IsMap()) throw Error(p, "expected a mapping of keys");
            Visitor inner(Mode::kRead, n[i], p);
            out[i].visit(inner);
            inner.check_unknown();
          }
          items = std::move(out);
        }
        break;
      case Mode::kWrite: {
        YAML::Node seq(YAML::NodeType::Sequence);
        for (auto& item : items) {
          Visitor inner(Mode::kWrite, YAML::Node(YAML::NodeType::Map), path);
          item.visit(inner);
          seq.push_back(inner.node());
        }
        node_[key] = seq;
        break;
      }
      case Mode::kDescribe: {
        describe(path, "list", std::to_string(items.size()) + " item(s) by default", help);
        S item{};
        Visitor inner(Mode::kDescribe, YAML::Node(), path + ".<i>");
        item.visit(inner);
        for (auto& line : inner.lines_) lines_.push_back(std::move(line));
        break;
      }
    }
  }

  const YAML::Node& node() const { return node_; }
  const std::vector<std::string>& lines() const { return lines_; }
  // kRead: throws naming the first key of the mapping that visit() did not ask for.
  void check_unknown() const;

 private:
  YAML::Node child(const char* key);
  void describe(const std::string& path, const std::string& type, const std::string& def, const char* help);

  Mode mode_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> visited_;
  std::vector<std::string> lines_;
};

namespace detail {
YAML::Node parse_document(const std::string& text, const std::string& origin);
// Sets `path` (a.b.0.c) in `root` to the YAML value `text`, creating mappings as needed.
void assign(YAML::Node& root, const std::string& path, const std::string& text);
std::string emit(const YAML::Node& node);
std::string read_file(const std::string& path);
}  // namespace detail

// Reads `root` (a mapping) into a default T; Error naming the key path on unknown keys, wrong types.
template <typename T>
T from_node(const YAML::Node& root) {
  if (!root.IsMap() && !root.IsNull()) throw Error("", "the document must be a mapping of keys");
  T cfg{};
  Visitor v(Visitor::Mode::kRead, root);
  cfg.visit(v);
  v.check_unknown();
  return cfg;
}

template <typename T>
YAML::Node to_node(const T& cfg) {
  T copy = cfg;  // visit() is shared with the reader, so it takes a mutable reference
  Visitor v(Visitor::Mode::kWrite, YAML::Node(YAML::NodeType::Map));
  copy.visit(v);
  return v.node();
}

template <typename T>
std::string to_yaml(const T& cfg) {
  return detail::emit(to_node(cfg));
}

// Parses YAML text (not validated); errors carry `origin`.
template <typename T>
T parse_yaml(const std::string& text, const std::string& origin) {
  const YAML::Node root = detail::parse_document(text, origin);
  try {
    return from_node<T>(root);
  } catch (const Error& e) {
    throw e.with_origin(origin);
  }
}

// Applies one "a.b=c" override (c is YAML: 8, fqvit, [ivit, ibert], true).
template <typename T>
void apply_set(T& cfg, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw Error("", "--set expects key.path=value, got '" + assignment + "'").with_origin("--set");
  }
  YAML::Node root = to_node(cfg);
  try {
    detail::assign(root, assignment.substr(0, eq), assignment.substr(eq + 1));
    cfg = from_node<T>(root);
  } catch (const Error& e) {
    throw e.with_origin("--set " + assignment);
  } catch (const YAML::Exception& e) {
    throw Error(assignment.substr(0, eq), e.msg).with_origin("--set " + assignment);
  }
}

// Whether `path` names a regular file; false (never an exception) for a name too long or otherwise unusable, so
// a validate() that checks a path stays a config error.
bool is_file(const std::string& path);

// True when the --set `assignment` (a.b=c) set `key_path` or a key above or below it.
bool set_names(const std::string& assignment, const std::string& key_path);

// The most intra-op threads a job may ask for: 4 per hardware thread, at least 64. Beyond the cores, threads
// only contend (every parallel region waits for the slowest), and libgomp aborts or hangs for tens of thousands;
// the margin covers hardware_concurrency under-reporting in containers, the floor keeps configs portable between
// small machines.
int64_t max_threads();

// Text + overrides, then validate(""): the resolved config, or an Error naming origin and key path.
template <typename T>
T from_text(const std::string& text, const std::string& origin, const std::vector<std::string>& sets = {}) {
  T cfg = parse_yaml<T>(text, origin);
  for (const auto& s : sets) apply_set(cfg, s);
  try {
    cfg.validate("");
  } catch (const Error& e) {
    // Name the --set that gave the key its value (the last one wins, as it did when applied), else the file.
    for (auto s = sets.rbegin(); s != sets.rend(); ++s) {
      if (set_names(*s, e.key_path())) throw e.with_origin("--set " + *s);
    }
    throw e.with_origin(origin);
  }
  return cfg;
}

template <typename T>
T load(const std::string& path, const std::vector<std::string>& sets = {}) {
  return from_text<T>(detail::read_file(path), path, sets);
}

// Every key with its type, default and help, one per line (for --help).
template <typename T>
std::string describe() {
  T defaults{};
  Visitor v(Visitor::Mode::kDescribe);
  defaults.visit(v);
  std::string out;
  for (const auto& line : v.lines()) out += line + "\n";
  return out;
}

}  // namespace config
}  // namespace mnq
