// mnq._mnq.Model: a models::Model seen from Python as a small nn.Module-like object. Its tensors are the C++
// module's own (no copies): parameters() hands out the live leaf tensors, so a torch.optim optimizer built in
// Python trains the C++ model, and state_dict() shares storage with it. Errors: std::invalid_argument and
// c10::ValueError become ValueError (pybind11's and torch's translators), other c10 errors RuntimeError,
// util::FileError (a file that cannot be written or read) mnq._mnq.FileError, an OSError.
#include "csrc/models/bindings.h"

#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "csrc/models/factory.h"
#include "csrc/models/plan.h"
#include "csrc/models/weights.h"
#include "csrc/nn/layers.h"
#include "csrc/util/atomic_file.h"

namespace py = pybind11;

namespace mnq {
namespace models {
namespace {

// Parameters and buffers in torch.nn.Module.state_dict's order: a module's own parameters, its own buffers,
// then each child's, depth first in registration order.
void collect_state(const torch::nn::Module& module, const std::string& prefix, NamedTensors& out) {
  for (const auto& p : module.named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& c : module.named_children()) collect_state(*c.value(), prefix + c.key() + ".", out);
}

std::string shape_str(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

class PyModel {
 public:
  explicit PyModel(Model model) : model_(std::move(model)) {}

  at::Tensor forward(const at::Tensor& x) const { return model_.forward(x); }

  NamedTensors state() const {
    NamedTensors out;
    collect_state(*model_.module, "", out);
    return out;
  }

  py::object state_dict() const {
    py::object dict = py::module_::import("collections").attr("OrderedDict")();
    for (const auto& [name, t] : state()) dict[py::str(name)] = py::cast(t.detach());
    return dict;
  }

  // Checks every key and shape first, so a failing call leaves the model untouched. Returns (missing, unexpected).
  std::pair<std::vector<std::string>, std::vector<std::string>> load_state_dict(const py::dict& source, bool strict) {
    std::map<std::string, at::Tensor> own;
    for (const auto& [name, t] : state()) own.emplace(name, t);
    std::vector<std::pair<at::Tensor, at::Tensor>> copies;
    std::vector<std::string> missing, unexpected;
    std::map<std::string, bool> seen;
    for (const auto& item : source) {
      const std::string key = py::str(item.first);
      auto it = own.find(key);
      if (it == own.end()) {
        unexpected.push_back(key);
        continue;
      }
      if (!THPVariable_Check(item.second.ptr())) {
        throw std::invalid_argument("load_state_dict: '" + key + "' is a " +
                                    std::string(py::str(py::type::of(item.second).attr("__name__"))) +
                                    ", not a tensor");
      }
      const at::Tensor src = THPVariable_Unpack(item.second.ptr());
      if (src.sizes() != it->second.sizes()) {
        throw std::invalid_argument("load_state_dict: '" + key + "' has shape " + shape_str(src.sizes()) +
                                    " but the model's is " + shape_str(it->second.sizes()));
      }
      copies.emplace_back(it->second, src);
      seen[key] = true;
    }
    for (const auto& [name, t] : own) {
      if (!seen.count(name)) missing.push_back(name);
    }
    if (strict && (!missing.empty() || !unexpected.empty())) {
      std::string msg = "load_state_dict (strict):";
      if (!missing.empty()) msg += " missing keys " + join(missing) + ";";
      if (!unexpected.empty()) msg += " unexpected keys " + join(unexpected) + ";";
      throw std::invalid_argument(msg.substr(0, msg.size() - 1));
    }
    at::NoGradGuard no_grad;
    for (auto& [dst, src] : copies) dst.copy_(src);
    return {missing, unexpected};
  }

  std::vector<at::Tensor> parameters() const { return model_.module->parameters(); }

  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& p : model_.module->named_parameters()) out.emplace_back(p.key(), p.value());
    return out;
  }

  void train(bool on) { model_.module->train(on); }
  bool training() const { return model_.module->is_training(); }
  void to(const at::Device& device) { model_.module->to(device); }
  void save(const std::string& path) const { save_weights(*model_.module, path); }
  void load(const std::string& path) { load_weights(*model_.module, path, /*require_buffers=*/true); }
  void freeze_alpha() { model_.freeze_alpha(); }
  const Model& model() const { return model_; }
  Model& mutable_model() { return model_; }

 private:
  static std::string join(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
    return s;
  }

  Model model_;
};

ModelOverrides overrides(std::optional<int64_t> num_classes, std::optional<int64_t> img_size,
                         std::optional<int64_t> in_chans) {
  return ModelOverrides{num_classes, img_size, in_chans, std::nullopt};
}

PyModel create(const std::string& name, std::optional<int64_t> bits,
               const std::optional<std::map<std::string, std::string>>& plan, std::optional<int64_t> num_classes,
               std::optional<int64_t> img_size, std::optional<int64_t> in_chans, std::optional<double> drop_path) {
  ModelOverrides o = overrides(num_classes, img_size, in_chans);
  if (drop_path && (*drop_path < 0 || *drop_path >= 1)) {
    throw std::invalid_argument("create('" + name + "'): drop_path must be in [0, 1), got " +
                                std::to_string(*drop_path));
  }
  o.drop_path = drop_path;
  if (!bits) {
    if (plan) throw std::invalid_argument("create('" + name + "'): a plan needs bits (None means full precision)");
    return PyModel(create_fp(name, o));
  }
  QuantOptions options;
  options.bits = *bits;
  if (plan) {
    options.plan = Plan();
    for (const auto& [key, method] : *plan) options.plan.set(key, method);
  }
  return PyModel(create_quant(name, options, o));
}

// The plan parser of csrc/models/plan.h as mnq._mnq.Plan: python/mnq/plan.py wraps it, so the plan format has one
// parser and one writer (C++), and the Python and C++ sides cannot drift apart.
void bind_plan(py::module_& m) {
  py::class_<Plan>(m, "Plan", "A validated per-layer method plan (csrc/models/plan.h).")
      .def(py::init<>())
      .def_static("parse", &Plan::parse, py::arg("text"), py::arg("origin") = "<string>",
                  "Parses YAML text; `origin` is named in every error.")
      .def_static("load", &Plan::load, py::arg("path"))
      .def_static("uniform", &Plan::uniform, py::arg("method"))
      .def("set", &Plan::set, py::arg("key"), py::arg("method"), py::return_value_policy::reference_internal)
      .def("entries", &Plan::entries)
      .def("method_for", &Plan::method_for, py::arg("layer"))
      .def("resolve", &Plan::resolve, py::arg("layers"))
      .def("to_yaml", &Plan::to_yaml)
      .def("save", &Plan::save, py::arg("path"), "Writes to_yaml() atomically.")
      .def("__eq__", [](const Plan& a, const Plan& b) { return a == b; });
  m.def(
      "plan_layer_op_type",
      [](const std::string& name) -> std::optional<std::string> {
        const auto type = layer_op_type(name);
        if (!type) return std::nullopt;
        return std::string(op_type_key(*type));
      },
      py::arg("name"), "softmax, gelu or layernorm for a mixable layer name, None for any other name.");
  m.def("plan_methods", &plan_methods, "The methods a plan may name, in tie-break order.");
}

}  // namespace

Model& model_of(py::handle obj, const char* who) {
  if (!py::isinstance<PyModel>(obj)) {
    throw std::invalid_argument(std::string(who) + ": expected a model from mnq.models.create, got " +
                                std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return obj.cast<PyModel&>().mutable_model();
}

py::object wrap_model(Model model) { return py::cast(PyModel(std::move(model))); }

void bind_models(py::module_& m) {
  // A file that cannot be written, published or read (util/atomic_file.h) is an OSError in Python.
  py::register_exception<util::FileError>(m, "FileError", PyExc_OSError);
  bind_scope<nn::FrozenWeightsScope>(m, "FrozenWeights", "mnq.frozen_weights",
                                     "nn::FrozenWeightsScope as a context manager (mnq.frozen_weights).");
  py::class_<PyModel>(m, "Model",
                      "A C++ ViT / DeiT / Swin (full precision or quantized, SPEC §6) built by mnq.models.create. "
                      "Its parameter and buffer names are those of the Python model mnq.quantize builds.")
      // Without the GIL, as torch's own ops: a training-mode forward under data parallelism waits in collectives
      // (the observers' all-reduces) that Gloo's worker thread completes only after taking the GIL itself.
      .def("__call__", &PyModel::forward, py::arg("x"), py::call_guard<py::gil_scoped_release>(),
           "Logits [B, classes] of images [B, C, H, W] (float).")
      .def("forward", &PyModel::forward, py::arg("x"), py::call_guard<py::gil_scoped_release>())
      .def(
          "train",
          [](py::object self, bool on) {
            self.cast<PyModel&>().train(on);
            return self;
          },
          py::arg("mode") = true, "Training mode (quantizers track their ranges); returns self.")
      .def(
          "eval",
          [](py::object self) {
            self.cast<PyModel&>().train(false);
            return self;
          },
          "Eval mode (ranges frozen); returns self.")
      .def_property_readonly("training", &PyModel::training)
      .def("state_dict", &PyModel::state_dict,
           "OrderedDict name -> tensor of every parameter and buffer (detached, sharing storage).")
      .def(
          "load_state_dict",
          [](PyModel& self, const py::dict& sd, bool strict) {
            auto [missing, unexpected] = self.load_state_dict(sd, strict);
            return py::make_tuple(missing, unexpected);
          },
          py::arg("state_dict"), py::arg("strict") = true,
          "Copies tensors in by name; returns (missing_keys, unexpected_keys). Raises ValueError naming the key on "
          "a shape mismatch, and with strict=True on any missing or unexpected key (nothing is copied then).")
      .def("parameters", &PyModel::parameters, "The live parameter tensors (leaves; an optimizer updates the model).")
      .def("named_parameters", &PyModel::named_parameters)
      .def(
          "to",
          [](py::object self, py::object device) {
            self.cast<PyModel&>().to(py::module_::import("torch").attr("device")(device).cast<at::Device>());
            return self;
          },
          py::arg("device"), "Moves every parameter and buffer in place; returns self.")
      .def("save", &PyModel::save, py::arg("path"), "Every parameter and buffer to a safetensors file (atomic).")
      .def("load", &PyModel::load, py::arg("path"), "A checkpoint written by save (or Python's) back in.")
      .def(
          "layer_methods", [](const PyModel& self) { return self.model().methods; },
          "{mixable layer: method} (empty for a full-precision model).")
      .def("freeze_alpha", &PyModel::freeze_alpha, "Ends the PtfAct α search (after calibration, before QAT).")
      .def_property_readonly("preset", [](const PyModel& self) { return self.model().preset; })
      .def_property_readonly("bits",
                             [](const PyModel& self) -> std::optional<int64_t> {
                               if (!self.model().quantized) return std::nullopt;
                               return self.model().bits;
                             })
      .def_property_readonly("quantized", [](const PyModel& self) { return self.model().quantized; })
      .def("__repr__", [](const PyModel& self) {
        const Model& mm = self.model();
        return "mnq.models.Model(preset='" + mm.preset + "', " +
               (mm.quantized ? "bits=" + std::to_string(mm.bits) : std::string("full precision")) + ")";
      });

  m.def("create", &create, py::arg("name"), py::arg("bits") = py::none(), py::arg("plan") = py::none(),
        py::arg("num_classes") = py::none(), py::arg("img_size") = py::none(), py::arg("in_chans") = py::none(),
        py::arg("drop_path") = py::none(),
        "Builds a preset: full precision when bits is None, else quantized with `plan` ({key: method} in the plan "
        "format; None: ivit everywhere); drop_path: the stochastic-depth rate of the last block (timm's "
        "drop_path_rate).");
  m.def("presets", &preset_names, "Every preset name, ViT/DeiT then Swin.");
  bind_plan(m);
  m.def(
      "mixable_layers",
      [](const std::string& name, std::optional<int64_t> num_classes, std::optional<int64_t> img_size,
         std::optional<int64_t> in_chans) {
        py::dict out;
        for (const auto& [layer, type] : mixable_layers(name, overrides(num_classes, img_size, in_chans))) {
          out[py::str(layer)] = py::str(op_type_key(type));
        }
        return out;
      },
      py::arg("name"), py::arg("num_classes") = py::none(), py::arg("img_size") = py::none(),
      py::arg("in_chans") = py::none(), "{layer: op type} of a preset's mixable layers, in forward order.");
}

}  // namespace models
}  // namespace mnq
