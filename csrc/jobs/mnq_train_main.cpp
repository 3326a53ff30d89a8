// mnq-train --config configs/<job>.yaml [--set key=value]... [--resume]
#include "csrc/jobs/train_job.h"

int main(int argc, char** argv) { return mnq::train::cli_main(argc, argv); }
