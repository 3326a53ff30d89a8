#include "csrc/train/mixed.h"

#include <stdexcept>

namespace mnq {
namespace train {

// The single call site of mnq::analysis::analyze (csrc/analysis/analyzer.h). The analyzer is written on another
// branch; until it is merged this branch cannot produce mixed plans, and says so. At the merge this body becomes:
// a BatchSource over calib.batch(kCalibEpoch, i).images for i below min(config.analyze.calib_batches,
// calib.num_batches()); report = analysis::analyze(fp, bits, config.analyze, source, overrides);
// report.write_csv / write_json into report_dir; log report.summary(); return report.plan.
models::Plan mixed_plan(const models::Model&, int64_t bits, const JobConfig&, const data::Loader&,
                        const models::ModelOverrides&, const std::string&) {
  throw std::runtime_error("plan: mixed (W" + std::to_string(bits) +
                           ") needs the analyzer (mnq::analysis::analyze), which is not merged into this build yet; "
                           "use ivit, ibert, fqvit or a plan file");
}

}  // namespace train
}  // namespace mnq
