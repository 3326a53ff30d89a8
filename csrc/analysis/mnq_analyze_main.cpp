// mnq-analyze --config job.yaml [--set key=value] [--print-config]: see csrc/analysis/job.h.
#include "csrc/analysis/job.h"

int main(int argc, char** argv) { return mnq::analysis::cli_main(argc, argv); }
