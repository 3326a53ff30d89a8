// libFuzzer harness: the YAML readers: an mnq-train job (csrc/jobs/job_config.cpp through csrc/config) with an
// optional --set (the input's first line, when it contains '='), and a plan file (csrc/models/plan.cpp). Every
// input must parse or throw config::Error / std::invalid_argument: a YAML exception escaping, a crash or UB is a bug.
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/config/config.h"
#include "csrc/jobs/job_config.h"
#include "csrc/models/plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> sets;
  std::string yaml = text;
  const size_t nl = text.find('\n');
  if (nl != std::string::npos && text.compare(0, 6, "--set ") == 0) {
    sets.push_back(text.substr(6, nl - 6));
    yaml = text.substr(nl + 1);
  }
  try {
    const auto job = mnq::config::from_text<mnq::train::JobConfig>(yaml, "fuzz.yaml", sets);
    (void)mnq::config::to_yaml(job);
    (void)job.runs();
  } catch (const mnq::config::Error&) {
  }
  try {
    const mnq::models::Plan plan = mnq::models::Plan::parse(text, "fuzz-plan.yaml");
    (void)plan.to_yaml();
    (void)plan.resolve({"blocks.0.norm1", "blocks.0.attn.softmax", "blocks.0.mlp.gelu", "norm"});
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
