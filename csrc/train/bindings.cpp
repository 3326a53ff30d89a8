// mnq._mnq.train: a whole mnq-train job from Python (mnq.train passes the YAML text), run with the GIL released;
// returns the run folder, whether every stage finished, and results.json's text (rows and paired comparisons).
#include "csrc/train/bindings.h"

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "csrc/config/config.h"
#include "csrc/train/job.h"
#include "csrc/train/job_config.h"

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
        out["results_json"] = results_json(result.rows);
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
}

}  // namespace train
}  // namespace mnq
