// mnq._mnq.IntegerModel: the integer engine seen from Python (mnq.deploy wraps it). Errors: std::invalid_argument
// and c10::ValueError become ValueError.
#include "csrc/deploy/bindings.h"

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <map>
#include <string>

#include "csrc/deploy/int_fused.h"
#include "csrc/deploy/integer_model.h"
#include "csrc/models/bindings.h"
#include "csrc/models/factory.h"

namespace py = pybind11;

namespace mnq {
namespace deploy {

void bind_deploy(py::module_& m) {
  py::class_<IntegerModel>(m, "IntegerModel", "A ViT / DeiT / Swin running on integer codes (mnq.deploy).")
      .def(
          "__call__", [](const IntegerModel& self, const at::Tensor& x) { return self.forward(x); }, py::arg("images"),
          py::call_guard<py::gil_scoped_release>(), "float images [B, C, H, W] → dequantized logits (float32).")
      .def(
          "forward", [](const IntegerModel& self, const at::Tensor& x) { return self.forward(x); }, py::arg("images"),
          py::call_guard<py::gil_scoped_release>())
      .def(
          "forward_int", [](const IntegerModel& self, const at::Tensor& x) { return self.forward_int(x); },
          py::arg("images"), py::call_guard<py::gil_scoped_release>(),
          "(integer logits, float64 scale): the head accumulators [B, K] (distilled: [B, 2, K], head and head_dist) "
          "and their per-class scale [K] ([2, K]); logits = q·scale.")
      .def(
          "profile",
          [](const IntegerModel& self, const at::Tensor& x) {
            Profile prof;
            prof.synchronize = x.is_cuda();
            at::Tensor logits;
            {
              py::gil_scoped_release release;
              logits = self.forward(x, &prof);
            }
            return py::make_tuple(logits, prof.seconds);
          },
          py::arg("images"), "(logits, {op type: seconds}) of one forward.")
      .def("save", &IntegerModel::save, py::arg("path"), py::arg("format_version") = kFormatVersion,
           "Writes the model as a safetensors file (atomic); format_version 1 writes the older layout (int64 "
           "dyadic pairs), which mnq before format version 2 reads.")
      .def(
          "to",
          [](IntegerModel& self, py::object device) -> IntegerModel& {
            self.to(py::module_::import("torch").attr("device")(device).cast<at::Device>());
            return self;
          },
          py::arg("device"), py::return_value_policy::reference_internal)
      .def_property_readonly("family", &IntegerModel::family)
      .def_property_readonly("bits", &IntegerModel::bits)
      .def_property_readonly("distilled", &IntegerModel::distilled)
      .def_property_readonly("num_classes", &IntegerModel::num_classes)
      .def_property_readonly("config", [](const IntegerModel& self) { return self.config().dump(); })
      .def_property_readonly("plan",
                             [](const IntegerModel& self) { return self.plan().get<std::map<std::string, std::string>>(); })
      .def(
          "state_dict",
          [](const IntegerModel& self) {
            py::dict d;
            for (const auto& [name, t] : self.store().tensors()) d[py::str(name)] = py::cast(t);
            return d;
          },
          "The integer tensors by name (CPU).")
      .def("__repr__", [](const IntegerModel& self) {
        return "mnq.deploy.IntegerModel(family='" + self.family() + "', bits=" + std::to_string(self.bits()) + ")";
      });
  m.def(
      "deploy_convert", [](py::handle model) { return convert(models::model_of(model, "mnq.deploy.convert")); },
      py::arg("model"), "The integer model of a calibrated eval-mode quantized mnq._mnq.Model.");
  m.def("deploy_set_fused", &set_fused, py::arg("on"),
        "Fused CPU paths of the integer engine on (default) or off (the unfused program; tests, benchmark).");
  m.def("deploy_emulate_float32", &set_float32_emulation, py::arg("on"),
        "Diagnostic: LayerNorm / I-BERT GELU outputs rounded through float32 as the fake-quant model stores them.");
  m.def("load_integer_model", &load_integer_model, py::arg("path"), "Reads a file written by IntegerModel.save.");
}

}  // namespace deploy
}  // namespace mnq
