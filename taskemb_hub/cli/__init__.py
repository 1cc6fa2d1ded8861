"""`taskemb-hub`: tune, embed, rank, publish and measure from the shell."""

from __future__ import annotations

import argparse
import os
import sys

# First, before anything could load torch and with it OpenMP (which reads this once): waiting threads sleep instead of
# spinning, so tuning on a machine that runs other jobs is not slowed several-fold by threads that hold the cores they
# wait for; on 2 idle cores it costs nothing (benchmarks/omp_wait_policy.py; not measured on many-core machines).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import embed, index, publish, quickstart, rank, registry, space, transfer_matrix, tune
from ._args import _Parser
from .tune import BUILTIN_METHODS  # noqa: F401 (public: tests and plugins read the built-in methods here)

# `--help` and argument errors import nothing heavy (torch, transformers, peft, datasets, gradio): every
# command imports what it needs inside its function. tests/test_cli_start.py checks it.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EPILOG = """examples:
  taskemb-hub quickstart
  taskemb-hub tune --task ../shared/data/tasks/rotten_tomatoes --method bitfit --save-steps 50,100,200 --out runs/rt-bitfit
  taskemb-hub embed runs/rt-bitfit/step-100
  taskemb-hub rank --target runs/rt-bitfit/step-100 --registry default --top-k 5
  taskemb-hub rank --data my.csv --text-column review --label-column stars --registry default --json
  taskemb-hub registry add runs/rt-bitfit/step-100 --registry my-registry
  taskemb-hub publish runs/rt-bitfit/step-100 --repo-id me/rotten-tomatoes-bitfit
  taskemb-hub space --registry default --port 7860
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="taskemb-hub", description="Pick source tasks for intermediate-task "
                                     "transfer from the similarity of tuned PEFT weights.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    for group in (tune, embed, rank, registry, publish, index, quickstart, transfer_matrix, space):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import TaskEmbHubError

    try:
        args = build_parser().parse_args(argv)
    except TaskEmbHubError as err:  # an argument's `type=` check: one line, as every other bad input
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except TaskEmbHubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line (tune's says how to resume), the shell's exit code
        print(f"interrupted: {err}" if str(err) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
