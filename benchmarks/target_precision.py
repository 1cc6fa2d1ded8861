"""A target embedding in float32 and in bf16 autocast: seconds, the cosine of the two vectors, the same top-5 sources?

    python benchmarks/target_precision.py [--tasks rotten_tomatoes,bbc_news,...] [--max-steps 100] [--rows 1000] [--force]

For each target of the offline suite, the embedding `taskemb-hub rank --data` makes (`target_from_data`: the packaged
registry's recipe, BitFit, 100 steps on 1,000 rows, 300 held-out rows scored) is tuned twice, with
`mixed_precision="no"` and `"bf16"`, each in a fresh subprocess so that the timings are separate. Timed: from the data
folder to the embedding, model load and held-out check included; process start and imports excluded, and so is
opening the packaged registry (ranking's cost, not the embedding's). Each vector is ranked against the packaged
registry leaving its own entry out (`AutoSourceSelector.from_default().rank(target, exclude=[task])`, the PEFT
ranker), and the two top-5 lists are compared. Each run records the 1-minute load average before it (2.0 = both cores
busy). Rows already in results/target_precision.json (same task, steps and rows) are kept unless --force.
--max-steps / --rows below the recipe's are for a smoke test only: the target is then not tuned with the registry's
recipe (its ranking carries a recipe warning, recorded).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import DATA_DIR, RESULTS, machine, require_data, save

DEFAULT_TASKS = "rotten_tomatoes,bbc_news,multiemo_hotels,fever,epistemic_reasoning"  # short to long texts, 2-5 classes
PRECISIONS = ("no", "bf16")

CHILD = r"""
import dataclasses, json, sys, time
import numpy as np
import accelerate, torch, transformers  # noqa: F401 - imported before the clock starts: part of process start
from taskemb_hub.data import load_task
from taskemb_hub.ranking.selector import AutoSourceSelector
from taskemb_hub.tuning import training
from taskemb_hub.tuning.targets import target_from_data

folder, precision, steps, rows, vector_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
selector = AutoSourceSelector.from_default()
real_tune = training.tune

def smaller_tune(task, cfg, *args, **kw):  # a smoke test's smaller run than the registry's recipe
    cfg = dataclasses.replace(cfg, max_steps=steps, max_train_examples=rows, save_steps=[], stop_step=None)
    return real_tune(task, cfg, *args, **kw)

if (steps, rows) != (100, 1000):
    training.tune = smaller_tune  # target_from_data looks training.tune up per call
started = time.perf_counter()
task = load_task(folder)
target = target_from_data(task, selector, progress=False, mixed_precision=precision)
seconds = time.perf_counter() - started
np.save(vector_file, target.vector.double().numpy())
exclude = [task.name] if task.name in {e.name for e in selector.entries} else []
ranking = selector.rank(target, exclude=exclude)
print(json.dumps({"seconds": seconds, "ran": target.extra["recipe"]["mixed_precision"], "top5": ranking.names[:5],
                  "left_out": exclude, "recipe_warning": any("Recipe" in w for w in ranking.warnings)}))
"""


def run_child(folder: Path, precision: str, steps: int, rows: int) -> tuple[dict, np.ndarray]:
    """One fresh process: (its row, its vector)."""
    with tempfile.TemporaryDirectory() as tmp:
        vector_file = Path(tmp) / "vector.npy"
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder), precision, str(steps), str(rows),
                              str(vector_file)], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{folder.name} ({precision}) failed:\n{out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1]) | {"load_before": round(load, 2)}
        return row, np.load(vector_file, allow_pickle=False)


def measure(task: str, steps: int, rows: int) -> dict:
    """The two runs of one target and how they compare."""
    runs, vectors = {}, {}
    for precision in PRECISIONS:
        runs[precision], vectors[precision] = run_child(DATA_DIR / task, precision, steps, rows)
    a, b = vectors["no"], vectors["bf16"]
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    top_a, top_b = runs["no"]["top5"], runs["bf16"]["top5"]
    return {"task": task, "max_steps": steps, "rows": rows, "fp32": runs["no"], "bf16": runs["bf16"],
            "cosine": cosine, "top5_same": top_a == top_b, "top5_shared": len(set(top_a) & set(top_b)),
            "speedup": runs["no"]["seconds"] / runs["bf16"]["seconds"]}


def print_row(r: dict) -> None:
    print(f"{r['task']:<22}{r['fp32']['seconds']:>8.1f}{r['bf16']['seconds']:>8.1f}{r['speedup']:>7.2f}x"
          f"{r['cosine']:>10.5f}  {'yes' if r['top5_same'] else 'no':<5}{r['top5_shared']:>3}/5"
          f"   {r['fp32']['load_before']:.2f}/{r['bf16']['load_before']:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"comma list of task folders (default: {DEFAULT_TASKS})")
    parser.add_argument("--max-steps", type=int, default=100, help="default 100, the packaged recipe's")
    parser.add_argument("--rows", type=int, default=1000, help="training rows (default 1000, the packaged recipe's)")
    parser.add_argument("--force", action="store_true", help="measure again the rows already saved")
    args = parser.parse_args()
    require_data()
    tasks = [t for t in args.tasks.split(",") if t]
    missing = [t for t in tasks if not (DATA_DIR / t).is_dir()]
    if missing:
        parser.error(f"no task folder {', '.join(missing)} in {DATA_DIR}")
    from taskemb_hub.tuning.precision import native_bf16

    path = RESULTS / "target_precision.json"
    saved = json.loads(path.read_text()).get("rows", []) if path.is_file() else []
    key = lambda r: (r["task"], r["max_steps"], r["rows"])  # noqa: E731
    wanted = {(t, args.max_steps, args.rows) for t in tasks}
    rows = [r for r in saved if not (args.force and key(r) in wanted)]
    print(f"{'target':<22}{'fp32 s':>8}{'bf16 s':>8}{'speed':>8}{'cosine':>10}  top-5 same   load before fp32/bf16")
    for task in tasks:
        done = [r for r in rows if key(r) == (task, args.max_steps, args.rows)]
        row = done[0] if done else measure(task, args.max_steps, args.rows)
        if not done:
            rows.append(row)
            save("target_precision", {"rows": rows, "machine": machine() | {"native_bf16": native_bf16()}})
        print_row(row)
    print(f"(BitFit, {args.max_steps} steps on {args.rows} rows, model load and the 300-row held-out check included; "
          f"native bf16 here: {native_bf16()}; saved in {path})")


if __name__ == "__main__":
    main()
