"""Run (or resume) the ground-truth transfer matrix; one JSON line per finished run.

    python benchmarks/transfer_matrix.py --tasks core10 --seeds 0 \
        --results benchmarks/results/transfer_limited.jsonl

Same as `taskemb-hub transfer-matrix`; kept as a script so a GPU machine can run it directly.
"""

import argparse
import sys

from taskemb_hub.evaluation.transfer import TASK_SETS, TransferConfig, run_transfer_matrix

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--tasks", default="core10", help=f"comma list or one of {sorted(TASK_SETS)}")
parser.add_argument("--targets", default=None, help="comma list (default: all tasks)")
parser.add_argument("--seeds", default="0")
parser.add_argument("--data-dir", default="../shared/data/tasks")
parser.add_argument("--results", default="benchmarks/results/transfer_limited.jsonl")
parser.add_argument("--work-dir", default="benchmarks/work")
args = parser.parse_args()
tasks = TASK_SETS.get(args.tasks) or args.tasks.split(",")
cfg = TransferConfig(tasks=tasks, data_dir=args.data_dir, seeds=[int(s) for s in args.seeds.split(",")],
                     targets=args.targets.split(",") if args.targets else None)
run_transfer_matrix(cfg, args.results, args.work_dir, progress=False, log=lambda m: print(m, flush=True))
