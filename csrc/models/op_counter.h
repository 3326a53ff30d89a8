// Counting dispatcher ops by name while a piece of C++ runs, through torch's RecordFunction callbacks (the hooks
// torch.profiler uses). Its main use: host reads. Tensor::item(), float(t) in Python and every scalar copy to the
// host dispatch aten::_local_scalar_dense; on a CUDA tensor each one waits for the device (STYLE rule 16: a
// training step does none). The callbacks see these ops on the CPU too, so a step is checked without a GPU.
//
// python/mnq/profiling.py counts the same op with torch.profiler for Python code; this twin exists because the
// C++ benchmark (mnq-bench-train) and the C++ tests run without Python.
#pragma once

#include <ATen/record_function.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mnq {
namespace models {

// The op every host read of a tensor value goes through (aten::item calls it).
inline const std::vector<std::string>& host_read_ops() {
  static const std::vector<std::string> ops = {"aten::_local_scalar_dense"};
  return ops;
}

// Counts the ops named in `names` run while it is alive: on the thread that made it and on the threads that
// inherit that thread's state (autograd's backward threads). One counter at a time in a process (a second throws
// c10::Error while one is alive).
class OpCounter {
 public:
  explicit OpCounter(std::vector<std::string> names = host_read_ops());
  ~OpCounter();
  OpCounter(const OpCounter&) = delete;
  OpCounter& operator=(const OpCounter&) = delete;
  int64_t count() const;

 private:
  at::CallbackHandle handle_;
};

}  // namespace models
}  // namespace mnq
