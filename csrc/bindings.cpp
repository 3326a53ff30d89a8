// mnq._mnq: the Python extension of the C++ library above the ops (models, the analyzer and the trainer, each
// with its bind_*). Tensors cross with torch's own pybind11 casters (torch/csrc/utils/pybind.h), which is why
// this module is compiled against the pybind11 headers bundled with torch and links libtorch_python.
#include "csrc/analysis/bindings.h"
#include "csrc/deploy/bindings.h"
#include "csrc/models/bindings.h"
#include "csrc/train/bindings.h"

#include <pybind11/pybind11.h>

PYBIND11_MODULE(_mnq, m) {
  m.doc() = "mnq C++ library: models (mnq.models.create), the analyzer (mnq.analyze), the trainer (mnq.train), the integer engine (mnq.deploy)";
  mnq::models::bind_models(m);
  mnq::analysis::bind_analysis(m);
  mnq::train::bind_train(m);
  mnq::deploy::bind_deploy(m);
}
