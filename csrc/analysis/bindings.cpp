// mnq._mnq.analyze: the C++ analyzer on a mnq._mnq.Model with calibration batches from Python. The batches come
// through a Python callable batch(i) (mnq.analyze builds it from any sequence or re-iterable), called with the
// GIL held; the analysis itself runs with the GIL released.
#include "csrc/analysis/bindings.h"

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/analysis/analyzer.h"
#include "csrc/analysis/buffer_cache.h"
#include "csrc/analysis/search.h"
#include "csrc/config/config.h"
#include "csrc/jobs/analyze_job.h"
#include "csrc/models/bindings.h"
#include "csrc/models/factory.h"

namespace py = pybind11;

namespace mnq {
namespace analysis {
namespace {

py::dict layer_dict(const LayerReport& l) {
  py::list scores;
  for (const auto& s : l.scores) {
    py::dict d;
    d["method"] = s.method;
    d["sqnr_in"] = s.sqnr_in;
    d["sqnr_out"] = s.sqnr_out;
    d["delta"] = s.delta;
    d["isolated_in"] = s.iso_in;
    d["isolated_out"] = s.iso_out;
    scores.append(d);
  }
  py::dict d;
  d["name"] = l.name;
  d["op"] = std::string(models::op_type_key(l.type));
  d["chosen"] = l.chosen;
  d["margin"] = l.margin;
  d["chosen_isolated"] = l.chosen_isolated;
  d["margin_isolated"] = l.margin_isolated;
  d["scores"] = scores;
  return d;
}

// The analyzer's settings from mnq.analyze / mnq.search_plan (YAML they built), a bad one a ValueError.
AnalyzerConfig parse_config(const std::string& yaml, const char* origin, const char* path) {
  try {
    AnalyzerConfig cfg = config::parse_yaml<AnalyzerConfig>(yaml, origin);
    cfg.validate(path);
    return cfg;
  } catch (const config::Error& e) {
    throw std::invalid_argument(std::string(e.what()));
  }
}

// Batches from a Python callable batch(i), called with the GIL. `batch` must outlive the source (the binding's
// own argument): the source refers to it, so nothing copies or drops Python references without the GIL.
BatchSource python_batches(const py::object& batch, int64_t n) {
  return BatchSource{n, [&batch](int64_t i) {
                       py::gil_scoped_acquire gil;
                       return batch(i).cast<at::Tensor>();
                     }};
}

int run_cli(int (*main_fn)(int, char**), std::vector<std::string> argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  py::gil_scoped_release release;
  return main_fn(static_cast<int>(args.size()), args.data());
}

}  // namespace

void bind_analysis(py::module_& m) {
  models::bind_scope<CpuBufferCacheScope>(m, "CpuBufferCache", "mnq.cpu_buffer_cache",
                                          "The analyzer's CPU buffer cache as a context manager.");
  m.def("cpu_buffer_cache_stats", [] {
    const CpuBufferCacheStats s = cpu_buffer_cache_stats();
    py::dict d;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["cached_bytes"] = s.cached_bytes;
    return d;
  });
  py::class_<Report>(m, "AnalysisReport", "What mnq.analyze measured and chose (see csrc/analysis/report.h).")
      .def_property_readonly("plan", [](const Report& r) { return r.plan.entries(); })
      .def_property_readonly("plan_paper", [](const Report& r) { return r.plan_paper.entries(); })
      .def_property_readonly("plan_isolated", [](const Report& r) { return r.plan_isolated.entries(); })
      .def_property_readonly("isolated", [](const Report& r) { return r.isolated; },
                             "Whether the isolated mode was scored (analyze(isolated=...)).")
      .def_property_readonly("layers",
                             [](const Report& r) {
                               py::list out;
                               for (const auto& l : r.layers) out.append(layer_dict(l));
                               return out;
                             })
      .def_readonly("preset", &Report::preset)
      .def_readonly("bits", &Report::bits)
      .def_readonly("mode", &Report::mode)
      .def_readonly("batches", &Report::batches)
      .def_readonly("images", &Report::images)
      .def_readonly("calibration_passes", &Report::calibration_passes)
      .def_readonly("measurement_passes", &Report::measurement_passes)
      .def_readonly("seconds", &Report::seconds)
      .def("disagreements", &Report::disagreements, "Layers where the paper and isolated rankings differ.")
      .def("summary", &Report::summary, "Counts per op type and method, as the paper reports them.")
      .def("write_csv", &Report::write_csv, py::arg("path"))
      .def("write_json", &Report::write_json, py::arg("path"))
      .def("__repr__", [](const Report& r) {
        return "AnalysisReport(" + r.preset + ", W" + std::to_string(r.bits) + ", " + std::to_string(r.layers.size()) +
               " layers, " + std::to_string(r.images) + " images, mode=" + r.mode + ")";
      });

  m.def(
      "analyze",
      [](py::handle model, const py::object& batch, int64_t num_batches, int64_t bits, const std::string& config_yaml) {
        const models::Model& fp = models::model_of(model, "mnq.analyze");
        const AnalyzerConfig cfg = parse_config(config_yaml, "mnq.analyze", "analyze");
        const BatchSource source = python_batches(batch, num_batches);
        py::gil_scoped_release release;
        return analyze(fp, bits, cfg, source, fp.overrides);
      },
      py::arg("model"), py::arg("batch"), py::arg("num_batches"), py::arg("bits"), py::arg("config_yaml"),
      "Runs the analyzer (see mnq.analyze).");
  py::class_<SearchResult>(m, "SearchResult", "What mnq.search_plan evaluated and chose (see csrc/analysis/search.h).")
      .def_property_readonly("plan", [](const SearchResult& r) { return r.plan.entries(); })
      .def_readonly("objective", &SearchResult::objective)
      .def_readonly("score", &SearchResult::score)
      .def_readonly("start", &SearchResult::start)
      .def_readonly("starts", &SearchResult::starts)
      .def_property_readonly("trajectory",
                             [](const SearchResult& r) {
                               py::list out;
                               for (const auto& s : r.trajectory) {
                                 py::dict d;
                                 d["evaluation"] = s.evaluation;
                                 d["kind"] = s.kind;
                                 d["label"] = s.label;
                                 d["score"] = s.score;
                                 d["accepted"] = s.accepted;
                                 d["best"] = s.best;
                                 out.append(d);
                               }
                               return out;
                             })
      .def_readonly("evaluations", &SearchResult::evaluations)
      .def_readonly("holdout_images", &SearchResult::holdout_images)
      .def_readonly("seconds", &SearchResult::seconds)
      .def("summary", &SearchResult::summary)
      .def("write_json", &SearchResult::write_json, py::arg("path"))
      .def("__repr__", [](const SearchResult& r) {
        return "SearchResult(" + r.objective + "=" + std::to_string(r.score) + ", " + std::to_string(r.evaluations) +
               " evaluations, start=" + r.start + ")";
      });

  m.def(
      "search_plan",
      [](py::handle model, const py::object& batch, int64_t num_batches, const py::object& holdout,
         int64_t num_holdout, int64_t bits, const std::string& config_yaml, const Report* report) {
        const models::Model& fp = models::model_of(model, "mnq.search_plan");
        const AnalyzerConfig cfg = parse_config(config_yaml, "mnq.search_plan", "search_plan");
        const BatchSource calib = python_batches(batch, num_batches);
        const BatchSource held = python_batches(holdout, num_holdout);
        py::gil_scoped_release release;
        // Without a report, the analyzer of the same batches gives the start plans and the move order.
        const Report own = report ? Report{} : analyze(fp, bits, cfg, calib, fp.overrides);
        return search_plan(fp, bits, cfg, calib, held, report ? *report : own, fp.overrides);
      },
      py::arg("model"), py::arg("batch"), py::arg("num_batches"), py::arg("holdout"), py::arg("num_holdout"),
      py::arg("bits"), py::arg("config_yaml"), py::arg("report") = nullptr, "Runs the plan search (see mnq.search_plan).");
  m.def(
      "analyze_cli", [](std::vector<std::string> argv) { return run_cli(&cli_main, std::move(argv)); },
      py::arg("argv"), "mnq-analyze's command line; returns the exit status.");
}

}  // namespace analysis
}  // namespace mnq
