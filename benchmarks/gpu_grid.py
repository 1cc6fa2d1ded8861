"""One prepared GPU run: grid throughput at k = 1, 4, 8, 12 workers per card, then the "small" regime.

    python benchmarks/gpu_grid.py --out $OUT --deadline 480 [--data-dir ../shared/data/tasks]

Made for a lent GPU machine (the `device` tool), where one command has at most 10 minutes:
1. the seed-0 source bodies (full fine-tuning, 1,000 rows, 2 epochs: the recipe of
   results/transfer_limited.jsonl, unchanged) on 12 processes;
2. throughput: small-regime cells of seed 0 with k = 1, 4, 8, 12 worker processes sharing the card,
   `--phase` seconds each (`taskemb-hub transfer-matrix --workers k`); cells finished per minute;
3. the source bodies of the other seeds, then the small regime (200 target training rows, 2 epochs,
   sources unchanged) on every (source, target) of classification16 at `--seeds` until the deadline.
Everything is written as it comes under --out (results lines, throughput JSON, log), so a run cut
short still returns its finished cells; a later run resumes (finished cells are skipped).
"""

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import torch

from taskemb_hub.evaluation.transfer import TASK_SETS, TransferConfig, load_transfer_results, run_local_workers, source_body


def _train_source(job) -> str:
    name, seed, cfg, work_dir = job
    torch.set_num_threads(1)
    source_body(name, cfg, seed, Path(work_dir), progress=False)
    return f"{name}-seed{seed}"


def train_sources(cfg: TransferConfig, seeds: list[int], work_dir: Path, workers: int, deadline: float) -> dict:
    """Fine-tune every source body of `seeds` on `workers` processes (cached: a second call trains nothing)."""
    started = time.monotonic()
    jobs = [(name, seed, cfg, str(work_dir)) for seed in seeds for name in cfg.tasks]
    done = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pending = pool.imap_unordered(_train_source, jobs)
        while len(done) < len(jobs):
            try:
                done.append(pending.next(timeout=max(1.0, deadline - time.monotonic())))
            except multiprocessing.TimeoutError:
                break
        pool.terminate()
    return {"seeds": seeds, "workers": workers, "bodies": len(done), "of": len(jobs),
            "seconds": round(time.monotonic() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for results, throughput and log (the device's $OUT)")
    parser.add_argument("--data-dir", default="../shared/data/tasks")
    parser.add_argument("--work-dir", default="/tmp/taskemb-grid")
    parser.add_argument("--deadline", type=float, default=480, help="seconds for the whole run")
    parser.add_argument("--phase", type=float, default=40, help="seconds per throughput phase")
    parser.add_argument("--ks", default="1,4,8,12", help="worker counts of the throughput phases")
    parser.add_argument("--workers", type=int, default=12, help="workers for sources and the main grid")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default="classification16")
    parser.add_argument("--target-train-examples", type=int, default=200)
    parser.add_argument("--base-model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    args = parser.parse_args()
    end = time.monotonic() + args.deadline
    out, work_dir = Path(args.out), Path(args.work_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "transfer_small.jsonl"
    report_path = out / "gpu_grid.json"
    tasks = TASK_SETS.get(args.tasks) or args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = TransferConfig(tasks=tasks, data_dir=args.data_dir, seeds=seeds,
                         target_train_examples=args.target_train_examples, base_model=args.base_model)
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "cpus": multiprocessing.cpu_count(), "recipe": cfg.recipe(), "phases": []}

    def save():
        report_path.write_text(json.dumps(report, indent=2))

    def finished() -> int:
        return len(load_transfer_results(results, cfg.recipe()))

    report["sources_first_seed"] = train_sources(cfg, seeds[:1], work_dir, args.workers, end)
    save()
    first_seed = TransferConfig(**{**cfg.__dict__, "seeds": seeds[:1]})
    for k in [int(k) for k in args.ks.split(",")]:
        if end - time.monotonic() < args.phase:
            break
        before, started = finished(), time.monotonic()
        run_local_workers(first_seed, results, work_dir, workers=k, deadline_s=args.phase)
        seconds = time.monotonic() - started
        rows = load_transfer_results(results, cfg.recipe())[before:]
        # Wall rate counts the workers' start (imports, CUDA context) and the cells cut at the phase's
        # end; k cells per mean cell time leaves out target loading, re-reads and locking: an upper bound.
        mean_cell = sum(r["seconds"] for r in rows) / len(rows) if rows else None
        report["phases"].append({"workers": k, "seconds": round(seconds, 1), "cells": len(rows),
                                 "cells_per_minute": round(60 * len(rows) / seconds, 2),
                                 "mean_cell_seconds": mean_cell and round(mean_cell, 2),
                                 "upper_bound_cells_per_minute": mean_cell and round(60 * k / mean_cell, 2),
                                 "ran_out_of_work": seconds < args.phase - 1})
        save()
    if len(seeds) > 1 and end - time.monotonic() > 30:
        report["sources_other_seeds"] = train_sources(cfg, seeds[1:], work_dir, args.workers, end)
        save()
    left = end - time.monotonic()
    if left > 20:
        before, started = finished(), time.monotonic()
        run_local_workers(cfg, results, work_dir, workers=args.workers, deadline_s=left)
        seconds = time.monotonic() - started
        report["main"] = {"workers": args.workers, "seconds": round(seconds, 1), "cells": finished() - before}
    expected = len(seeds) * len(cfg.targets or tasks) * len(tasks)
    report["cells_finished"], report["cells_expected"] = finished(), expected
    save()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
