// mnq._mnq: the Python extension of the C++ library above the ops (models now; the analyzer and the trainer add
// their bind_* here). Tensors cross with torch's own pybind11 casters (torch/csrc/utils/pybind.h), which is why
// this module is compiled against the pybind11 headers bundled with torch and links libtorch_python.
#include "csrc/models/bindings.h"

#include <pybind11/pybind11.h>

PYBIND11_MODULE(_mnq, m) {
  m.doc() = "mnq C++ library: quantized ViT / DeiT / Swin models (see mnq.models.create)";
  mnq::models::bind_models(m);
}
