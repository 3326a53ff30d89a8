// mnq._mnq's data-parallel functions: the job's process group (torch.distributed's, created from torchrun's
// environment by python/mnq/distributed.py) handed to C++, and the collectives for tests.
#include "csrc/dist/bindings.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/utils/pybind.h>

#include "csrc/dist/dist.h"

namespace mnq {
namespace dist {

namespace {

using release_gil = pybind11::call_guard<pybind11::gil_scoped_release>;

pybind11::dict stats_dict(const Stats& s) {
  pybind11::dict d;
  d["collectives"] = s.collectives;
  d["shm_collectives"] = s.shm_collectives;
  d["bytes"] = s.bytes;
  d["wall_s"] = s.wall_s;
  d["wait_s"] = s.wait_s;
  return d;
}

}  // namespace

void bind_dist(pybind11::module_& m) {
  m.def("dist_set_group", &set_group, pybind11::arg("group"),
        "Use this torch.distributed process group for mnq's collectives (observers, gradients)");
  m.def("dist_set_store", &set_store, pybind11::arg("store"),
        "The group's rendezvous store: a failed collective asks it which ranks still answer");
  m.def("dist_set_timeout", &set_timeout, pybind11::arg("seconds"), "Every collective's timeout (0: the group's)");
  m.def("dist_clear_group", &clear_group, "Back to one process: mnq's collectives become no-ops");
  m.def("dist_enable_shm", &enable_local, pybind11::arg("on"), release_gil(),
        "Collective: the intra-host shared-memory path for CPU collectives when every rank is on this host");
  m.def("dist_path", &path, "Which path the collectives take, in words");
  m.def("dist_stats", [] { return stats_dict(stats()); },
        "This process's collectives since its group was set: count, shm count, bytes, wall_s, wait_s");
  m.def("dist_records", [] {
    pybind11::dict d;
    for (const auto& [label, r] : records()) {
      pybind11::dict e = stats_dict(r.stats);
      e["steps"] = r.steps;
      e["pass_wall_s"] = r.wall_s;
      e["pass_cpu_s"] = r.cpu_s;
      d[label.c_str()] = e;
    }
    return d;
  }, "The trainer's per-stage totals of its training passes: steps, pass_wall_s, pass_cpu_s (the process's) and the "
        "collectives' count, bytes, wall_s, wait_s");
  m.def("dist_world_size", &world_size);
  m.def("dist_rank", &rank);
  // Collectives wait with the GIL released: Gloo's worker thread may need it while this thread waits (it restores
  // the caller's thread-local state, whose Python objects it increfs), which deadlocked both ranks otherwise.
  m.def("dist_allreduce_mean", &allreduce_mean, pybind11::arg("tensors"),
        pybind11::arg("bucket_bytes") = int64_t{25} << 20, release_gil(),
        "In place: the mean over ranks, in flat buckets");
  m.def("dist_allreduce_min_max", &allreduce_min_max, pybind11::arg("lo"), pybind11::arg("hi"), release_gil());
  m.def("dist_allreduce_sum", &allreduce_sum, pybind11::arg("t"), release_gil());
  m.def("dist_barrier", &barrier, release_gil());
  m.def("dist_allreduce_max", &allreduce_max, pybind11::arg("t"), release_gil());
  m.def("dist_checksum", &checksum, pybind11::arg("tensors"), "64-bit checksum of the tensors' bytes");
  m.def("dist_check_identical", &check_identical, pybind11::arg("tensors"), pybind11::arg("what"), release_gil(),
        "Raise RuntimeError naming `what` unless the tensors are bit-identical on every rank");
}

}  // namespace dist
}  // namespace mnq
