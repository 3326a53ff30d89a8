"""``python -m mnq train|analyze ARGS``: the console scripts ``mnq-train`` / ``mnq-analyze`` without installing
them, e.g. from a source tree on PYTHONPATH, or under torchrun:

    torchrun --standalone --nproc-per-node=2 -m mnq train --config job.yaml
"""
import sys

from . import cli

if __name__ == "__main__":
    commands = {"train": cli.train, "analyze": cli.analyze}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: python -m mnq train|analyze ARGS (see --help of each)")
    command = sys.argv.pop(1)
    sys.argv[0] = f"mnq-{command}"
    commands[command]()
