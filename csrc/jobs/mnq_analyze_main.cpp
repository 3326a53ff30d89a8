// mnq-analyze --config job.yaml [--set key=value] [--print-config]: see csrc/jobs/analyze_job.h.
#include "csrc/jobs/analyze_job.h"

int main(int argc, char** argv) { return mnq::analysis::cli_main(argc, argv); }
