"""Console entry points ``mnq-train`` and ``mnq-analyze``: the C++ command lines (CLI11) of the trainer and the
analyzer, run in this process. Ctrl-C ends the job at once (the default signal action): every checkpoint and
output file is written atomically, so an interrupted run resumes from its last checkpoint (``--resume``).

Started by torchrun (``torchrun --nproc-per-node=N --no-python mnq-train --config job.yaml``), ``mnq-train`` first
joins torchrun's process group (mnq.distributed.init_from_env) and the job runs data-parallel on the N processes
(csrc/train/data_parallel.h); without torchrun's variables nothing changes."""
import os
import signal
import sys

from . import _mnq, distributed


def _run(main) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main(sys.argv))


def train() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    joined = distributed.init_from_env()
    if joined and distributed.rank() != 0:
        # Rank 0 alone prints (the resolved config on stdout included); errors still reach stderr from every rank.
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    rc = _mnq.train_cli(sys.argv)
    if joined:
        if rc != 0:
            # A failed data-parallel job may have a dead peer: leaving the group cleanly could wait for it.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        distributed.shutdown()
    sys.exit(rc)


def analyze() -> None:
    _run(_mnq.analyze_cli)
