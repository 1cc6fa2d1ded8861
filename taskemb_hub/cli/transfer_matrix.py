"""`taskemb-hub transfer-matrix`: ground-truth transfer by full fine-tuning."""

from __future__ import annotations

import sys

from ._args import _command, _print, _seeds_arg
from ._executor import _add_executor_args, _ray_resources, _refuse_ray_flags_locally


def cmd_transfer_matrix(args) -> int:
    if args.executor != "ray":
        _refuse_ray_flags_locally(args)  # before torch is imported: a wrong flag is answered at once
    from ..evaluation.transfer import TASK_SETS, TransferConfig, run_local_workers, run_transfer_matrix

    tasks = TASK_SETS.get(args.tasks) or args.tasks.split(",")
    cfg = TransferConfig(tasks=tasks, data_dir=args.data_dir, seeds=args.seeds,
                         targets=args.targets.split(",") if args.targets else None, base_model=args.base_model,
                         target_train_examples=args.target_train_examples)
    if args.results is None:  # one file per regime: the report reads each file as one ground truth
        args.results = "benchmarks/results/" + ("transfer_small.jsonl" if args.target_train_examples
                                                else "transfer_limited.jsonl")
    if args.executor == "ray":
        return _transfer_matrix_on_ray(args, cfg)
    if args.workers > 1 or args.deadline:
        from ..evaluation.transfer import WorkerError

        try:
            run_local_workers(cfg, args.results, args.work_dir, workers=args.workers, deadline_s=args.deadline)
        except WorkerError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    else:
        run_transfer_matrix(cfg, args.results, args.work_dir, progress=not args.json)
    return 0


def _transfer_matrix_on_ray(args, cfg) -> int:
    from ..executors import ExecutorError

    if args.workers > 1:
        raise ExecutorError("--workers is for --executor local; with --executor ray, Ray runs as many cells at once "
                            "as --cpus-per-run / --gpus-per-run let fit. Drop --workers.")
    resources = _ray_resources(args)
    from ..executors.ray import run_ray_grid

    report = run_ray_grid(cfg, args.results, args.work_dir, address=args.address, resources=resources,
                          deadline_s=args.deadline, log=(lambda _: None) if args.json else print)
    _print(args, report.to_dict(), f"{report.finished} cell(s) finished, {report.skipped} already in {args.results}, "
                                   f"{len(report.failed)} failed, {report.cancelled} cancelled ({report.seconds}s)")
    return 1 if report.failed else 0


def register(sub) -> None:
    """Add `transfer-matrix` to the `taskemb-hub` subcommands `sub`."""
    p = _command(sub, "transfer-matrix", "measure ground-truth transfer by full fine-tuning (resumable)",
                 cmd_transfer_matrix,
                 "examples:\n  taskemb-hub transfer-matrix --tasks classification16 --seeds 0,1,2\n"
                 "  taskemb-hub transfer-matrix --tasks classification16 --executor local --workers 10 --deadline 480\n"
                 "  taskemb-hub transfer-matrix --tasks classification16 --executor ray --gpus-per-run 1/8   # 8 per GPU\n"
                 "  taskemb-hub transfer-matrix --tasks classification16 --executor ray --address ray://head:10001")
    p.add_argument("--tasks", default="core10", help="comma list, or core10 / classification16")
    p.add_argument("--targets", default=None)
    p.add_argument("--seeds", type=_seeds_arg, default=[0], help="comma list of seeds, e.g. 0,1,2 (default: 0)")
    p.add_argument("--data-dir", default="../shared/data/tasks")
    p.add_argument("--results", default=None, help="JSON-lines results file (default: benchmarks/results/"
                   "transfer_limited.jsonl, or transfer_small.jsonl with --target-train-examples)")
    p.add_argument("--work-dir", default="benchmarks/work")
    p.add_argument("--base-model", default=None)
    p.add_argument("--target-train-examples", type=int, default=None,
                   help="train rows per target (the 'small' regime: 200); sources keep 1,000")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing this machine (and its GPU)")
    p.add_argument("--deadline", type=float, default=None, help="stop every worker after this many seconds")
    _add_executor_args(p)
