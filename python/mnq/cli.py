"""Console entry points ``mnq-train`` and ``mnq-analyze``: the C++ command lines (CLI11) of the trainer and the
analyzer, run in this process. Ctrl-C ends the job at once (the default signal action): every checkpoint and
output file is written atomically, so an interrupted run resumes from its last checkpoint (``--resume``)."""
import signal
import sys

from . import _mnq


def _run(main) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main(sys.argv))


def train() -> None:
    _run(_mnq.train_cli)


def analyze() -> None:
    _run(_mnq.analyze_cli)
