// mnq._mnq: the Python extension of the C++ library above the ops (models, the analyzer and the trainer, each
// with its bind_*). Tensors cross with torch's own pybind11 casters (torch/csrc/utils/pybind.h), which is why
// this module is compiled against the pybind11 headers bundled with torch and links libtorch_python.
#include "csrc/analysis/bindings.h"
#include "csrc/cpu/isa.h"
#include "csrc/deploy/bindings.h"
#include "csrc/dist/bindings.h"
#include "csrc/models/bindings.h"
#include "csrc/train/bindings.h"

#include <pybind11/pybind11.h>

#include <string>

PYBIND11_MODULE(_mnq, m) {
  m.doc() = "mnq C++ library: models (mnq.models.create), the analyzer (mnq.analyze), the trainer (mnq.train), "
            "the integer engine (mnq.deploy)";
  mnq::models::bind_models(m);
  mnq::analysis::bind_analysis(m);
  mnq::train::bind_train(m);
  mnq::dist::bind_dist(m);
  // The CPU ops' vector path (csrc/cpu/isa.h): a test hook, and the MNQ_CPU_ISA environment variable's runtime form.
  m.def("set_cpu_isa", &mnq::ops::cpu::set_isa, pybind11::arg("isa"),
        "Caps the CPU ops' vector path at 'scalar', 'avx2' or 'avx512'; returns the previous cap");
  m.def("cpu_isa", [] { return std::string(mnq::ops::cpu::isa_name(mnq::ops::cpu::isa())); },
        "The vector path the CPU ops take now");
  mnq::deploy::bind_deploy(m);
}
