// mnq._mnq.train: a whole mnq-train job from Python (mnq.train passes the YAML text), run with the GIL released;
// returns the run folder, whether every stage finished, and results.json's text (rows and paired comparisons).
// mnq._mnq.bench_train: the trainer's benchmark (bench.h) for scripts/bench_train.py, as a dict.
#include "csrc/train/bindings.h"

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "csrc/config/config.h"
#include "csrc/jobs/bench.h"
#include "csrc/jobs/job_config.h"
#include "csrc/jobs/train_job.h"
#include "csrc/util/atomic_file.h"

namespace py = pybind11;

namespace mnq {
namespace train {

void bind_train(py::module_& m) {
  m.def(
      "train",
      [](const std::string& yaml_text, const std::string& origin, const std::vector<std::string>& sets, bool resume,
         bool quiet) {
        const JobConfig cfg = config::from_text<JobConfig>(yaml_text, origin, sets);
        JobResult result;
        {
          py::gil_scoped_release release;
          JobOptions options;
          options.resume = resume;
          options.quiet = quiet;
          result = run_job(cfg, options);
        }
        py::dict out;
        out["dir"] = result.dir;
        out["finished"] = result.finished;
        // A job over seeds: the pooled results.json (seeds.h) rather than the last seed's rows.
        out["results_json"] = cfg.seeds.empty() ? results_json(result.rows) : util::read_file(result.dir + "/results.json");
        return out;
      },
      py::arg("yaml_text"), py::arg("origin"), py::arg("sets"), py::arg("resume"), py::arg("quiet"),
      "Runs a training job (see mnq.train).");
  m.def(
      "train_cli",
      [](std::vector<std::string> argv) {
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        py::gil_scoped_release release;
        return cli_main(static_cast<int>(args.size()), args.data());
      },
      py::arg("argv"), "mnq-train's command line; returns the exit status.");
  m.def(
      "bench_train",
      [](const BenchOptions& o) {
        BenchResult r;
        {
          py::gil_scoped_release release;
          r = bench_train(o);
        }
        py::list rows;
        for (const BenchRow& row : r.rows) {
          py::dict d;
          d["name"] = row.name;
          d["kind"] = row.kind;
          d["method"] = row.method;
          d["img_s"] = row.img_s;
          d["img_cpu_s"] = row.img_cpu_s;
          d["vs_fp"] = row.kind == "loader" ? py::object(py::none()) : py::object(py::float_(row.vs_fp));
          d["host_reads"] = row.kind == "loader" ? py::object(py::none()) : py::object(py::int_(row.host_reads));
          rows.append(d);
        }
        py::dict out;
        out["preset"] = o.preset;
        out["batch"] = o.batch;
        out["steps"] = o.steps;
        out["bits"] = o.bits;
        out["device"] = o.device;
        out["threads"] = r.threads;
        out["rows"] = rows;
        out["table"] = bench_table(r);
        return out;
      },
      py::arg("options"), "The trainer's benchmark (see scripts/bench_train.py).");
  py::class_<BenchOptions>(m, "BenchOptions", "Options of mnq._mnq.bench_train (csrc/jobs/bench.h).")
      .def(py::init<>())
      .def_readwrite("preset", &BenchOptions::preset)
      .def_readwrite("batch", &BenchOptions::batch)
      .def_readwrite("steps", &BenchOptions::steps)
      .def_readwrite("warmup", &BenchOptions::warmup)
      .def_readwrite("bits", &BenchOptions::bits)
      .def_readwrite("methods", &BenchOptions::methods)
      .def_readwrite("device", &BenchOptions::device)
      .def_readwrite("data", &BenchOptions::data)
      .def_readwrite("fashion_root", &BenchOptions::fashion_root)
      .def_readwrite("image_folder", &BenchOptions::image_folder)
      .def_readwrite("img_size", &BenchOptions::img_size)
      .def_readwrite("workers", &BenchOptions::workers)
      .def_readwrite("loader_images", &BenchOptions::loader_images);
}

}  // namespace train
}  // namespace mnq
