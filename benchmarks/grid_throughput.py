"""Transfer-grid throughput on this machine: local Ray against `--executor local` workers, side by side.

    python benchmarks/grid_throughput.py                       # writes benchmarks/results/grid_throughput_cpu.json
    python benchmarks/grid_throughput.py --tasks rotten_tomatoes,hyperbaton,sports_understanding --train-examples 64

A small but real grid: the packaged all-MiniLM-L6-v2 fully fine-tuned on real tasks of the offline
suite (`--train-examples` rows per source and target, 2 epochs each, `--eval-examples` test rows
scored per cell). Every executor starts from an empty work folder, so its time includes fine-tuning
the sources and its own start-up (spawning workers, starting Ray); cells per hour = cells / wall time.
The executors run one after another in one process, in mirrored rounds (A B C, C B A) so that a
change in the machine's load hits each alike; the load average before each run is recorded. Ray's
start alone is timed too (`ray_start_s`).
"""

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from _common import DATA_DIR, machine, require_data, save

from taskemb_hub.evaluation.transfer import TransferConfig, load_transfer_results, run_local_workers


class TreeCpu(threading.Thread):
    """CPU seconds (user + system) of this process and every process below it (workers, Ray's daemons).

    Sampled every 0.2 s with psutil (a dependency of ray); a process that ends between two samples
    loses at most its last 0.2 s. CPU seconds per cell do not grow when other jobs share the cores,
    so they compare executors on a busy machine, where wall times do not.
    """

    def __init__(self):
        super().__init__(daemon=True)
        self.last: dict[int, float] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                self.last[process.pid] = times.user + times.system
            except psutil.Error:
                pass

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.sample()

    def stop(self, before: float) -> float:
        self.sample()
        self.done.set()
        return sum(self.last.values()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="rotten_tomatoes,hyperbaton,sports_understanding",
                        help="comma list: every task is a source and a target (3 tasks: 9 cells, 3 of them from base)")
    parser.add_argument("--train-examples", type=int, default=64)
    parser.add_argument("--eval-examples", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--base-model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    parser.add_argument("--executors", default="local1,local2,ray", help="comma list of local1, local2, ray")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each executor, in mirrored order (A B C, C B A, ...) so a load change hits all")
    parser.add_argument("--out", default="grid_throughput_cpu")
    args = parser.parse_args()
    require_data()

    cfg = TransferConfig(tasks=args.tasks.split(","), data_dir=str(DATA_DIR), train_examples=args.train_examples,
                         eval_examples=args.eval_examples, max_length=args.max_length, base_model=args.base_model)
    cells = len(cfg.tasks) * len(cfg.tasks)

    def measure(name: str) -> dict:
        work = Path(tempfile.mkdtemp(prefix=f"grid-{name}-"))
        results = work / "results.jsonl"
        load = os.getloadavg()[0]
        cpu = TreeCpu()
        cpu.sample()
        cpu_before = sum(cpu.last.values())
        cpu.start()
        started = time.perf_counter()
        extra = {}
        if name.startswith("local"):
            run_local_workers(cfg, results, work, workers=int(name[len("local"):]),
                              log=lambda line: "failed" in line and print(line))
        else:
            import ray

            from taskemb_hub.executors.ray import run_ray_grid

            ray_started = time.perf_counter()
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            extra["ray_start_s"] = round(time.perf_counter() - ray_started, 1)
            extra["ray_cpus"] = ray.cluster_resources().get("CPU")
            report = run_ray_grid(cfg, results, work, log=lambda _: None)
            ray.shutdown()
            extra["failed"] = len(report.failed)
        wall = time.perf_counter() - started
        cpu_s = cpu.stop(cpu_before)
        rows = load_transfer_results(results)
        shutil.rmtree(work, ignore_errors=True)
        row = {"executor": name, "cells": len(rows), "wall_s": round(wall, 1),
               "cells_per_hour": round(len(rows) / wall * 3600, 1),
               "mean_cell_s": round(sum(r["seconds"] for r in rows) / max(1, len(rows)), 2),
               "cpu_s": round(cpu_s, 1), "cpu_s_per_cell": round(cpu_s / max(1, len(rows)), 2),
               "load_average_before": round(load, 2)} | extra
        print(f"{name:>7}: {row['cells']}/{cells} cells in {row['wall_s']:>6}s = {row['cells_per_hour']:>6} cells/h "
              f"(rows' mean seconds {row['mean_cell_s']}; {row['cpu_s_per_cell']} CPU s/cell; load {row['load_average_before']})"
              + (f"; Ray start {extra['ray_start_s']}s" if "ray_start_s" in extra else ""), flush=True)
        return row

    names = args.executors.split(",")
    order = [name for r in range(args.rounds) for name in (names if r % 2 == 0 else names[::-1])]
    runs = [measure(name) for name in order]
    summary = {}
    for name in names:
        mine = [r for r in runs if r["executor"] == name]
        summary[name] = {"cells_per_hour_mean": round(sum(r["cells_per_hour"] for r in mine) / len(mine), 1),
                         "cpu_s_per_cell_mean": round(sum(r["cpu_s_per_cell"] for r in mine) / len(mine), 2),
                         "cells_per_hour_each": [r["cells_per_hour"] for r in mine],
                         "all_cells_done": all(r["cells"] == cells for r in mine)}
        print(f"{name:>7}: {summary[name]['cells_per_hour_mean']} cells/h (runs: {summary[name]['cells_per_hour_each']}), "
              f"{summary[name]['cpu_s_per_cell_mean']} CPU s/cell")
    setting = {"base_model": args.base_model or "sentence-transformers/all-MiniLM-L6-v2 (packaged)", "tasks": cfg.tasks, "cells": cells,
               "sources_fine_tuned": len(cfg.tasks), "train_examples": cfg.train_examples, "epochs": cfg.source_epochs,
               "batch_size": cfg.batch_size, "max_length": cfg.max_length, "eval_examples": cfg.eval_examples,
               "local1": "--executor local --workers 1 (one process, all cores)",
               "local2": "--executor local --workers 2 (two spawned processes, cores split between them)",
               "ray": "--executor ray on a local Ray started here (one core per run)",
               "mean_cell_s": "the rows' own `seconds`: with local executors a cell that fine-tuned its source counts "
                              "that too; on Ray sources are separate tasks, so it does not"}
    payload = {"setting": setting, "machine": machine(), "order": order, "summary": summary, "runs": runs}
    print(f"saved {save(args.out, payload)}")


if __name__ == "__main__":  # the local workers are spawned processes that import this file
    main()
