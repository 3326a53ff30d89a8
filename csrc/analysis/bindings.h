// Python bindings of the analyzer (csrc/analysis): mnq._mnq's analyze, analyze_cli and AnalysisReport.
#pragma once

#include <pybind11/pybind11.h>

namespace mnq {
namespace analysis {

void bind_analysis(pybind11::module_& m);

}  // namespace analysis
}  // namespace mnq
