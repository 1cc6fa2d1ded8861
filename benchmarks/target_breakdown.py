"""Where the seconds of `taskemb-hub rank --data` go, from a data folder to the ranking (one target, 2 cores here).

    python benchmarks/target_breakdown.py [--target rotten_tomatoes] [--ops] [--dropout-draws 2]

Runs the CLI's own path in this process (`rank --data <folder> --top-k 5 --json`) with timers wrapped around its
steps: the imports of torch/transformers/peft/accelerate, the registry, the model load (and the peft wrapping), tokenising the rows, the 100 optimizer steps, the held-out check, the TextEmb forward pass and the
ranking. With `--ops`, a second run under torch.profiler splits the tuning's operator time into matrix
products, dropout's random masks, attention, casts and the rest. With `--dropout-draws N`, the target is tuned
N more times with only dropout's masks drawn otherwise, to show what a faster mask generator (another random
stream) would do to the vector. Writes results/target_breakdown.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA_DIR, machine, require_data, save  # noqa: E402

OP_GROUPS = {"matrix products": ("aten::addmm", "aten::mm", "aten::bmm"),
             "dropout masks (bernoulli_)": ("aten::bernoulli_",),
             "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::to"),
             "attention softmax": ("aten::_softmax", "aten::_softmax_backward_data"),
             "flash attention (evaluation)": ("aten::_scaled_dot_product_flash_attention_for_cpu",)}


def timed_steps(target: str) -> dict:
    """Seconds of each step of `rank --data` (wrapped functions; the rest is the CLI's own work)."""
    seconds: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    import accelerate  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    seconds["imports (torch, transformers, peft, accelerate)"] = time.perf_counter() - started

    from taskemb_hub import baselines
    from taskemb_hub.cli import main
    from taskemb_hub.ranking import selector as selector_module
    from taskemb_hub.tuning import _training_loop, training

    def wrap(owner, name, label):
        real = getattr(owner, name)

        def timer(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - t0
        setattr(owner, name, timer)

    wrap(selector_module.AutoSourceSelector, "from_registry", "registry (the packaged one)")
    wrap(training, "_load_model", "model load + peft wrapping")
    wrap(training, "_prepare_data", "tokenising the rows")
    wrap(_training_loop, "evaluate", "held-out check (300 rows)")
    wrap(training, "_train_loop", "optimizer steps + checkpoint (incl. held-out check)")
    wrap(baselines, "text_embedding", "TextEmb forward pass (fused ranker)")
    wrap(selector_module.AutoSourceSelector, "rank", "ranking")
    answer = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(answer):
        code = main(["rank", "--data", str(DATA_DIR / target), "--top-k", "5", "--json"])
    total = time.perf_counter() - t0
    seconds["optimizer steps + checkpoint (incl. held-out check)"] -= seconds["held-out check (300 rows)"]
    out = {k.replace(" (incl. held-out check)", ""): round(v, 2) for k, v in seconds.items()}
    out["other (CLI, checks, reading the data)"] = round(total - sum(
        v for k, v in seconds.items() if not k.startswith("imports")), 2)
    return {"exit": code, "seconds": out, "total_after_imports": round(total, 2),
            "top5": [r["source"] for r in json.loads(answer.getvalue())["ranking"]][:5]}


def operator_shares(target: str) -> dict:
    """Self CPU seconds of the tuning's operators, grouped (torch.profiler over `target_from_data`)."""
    from torch.profiler import ProfilerActivity, profile

    from taskemb_hub import AutoSourceSelector, load_task
    from taskemb_hub.tuning import target_from_data

    selector, task = AutoSourceSelector.from_default(), load_task(DATA_DIR / target)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        target_from_data(task, selector, progress=False)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    groups = {name: sum(e.self_cpu_time_total for e in events if e.key in keys) / 1e6
              for name, keys in OP_GROUPS.items()}
    groups["everything else"] = total - sum(groups.values())
    return {"self_cpu_s": round(total, 2), "groups_s": {k: round(v, 2) for k, v in groups.items()},
            "groups_share": {k: round(v / total, 3) for k, v in groups.items()}}


def dropout_draws(target: str, draws: int) -> dict:
    """Cosine of the target's vector to the default one when only dropout's masks change (the torch RNG reseeded
    right after the model and its head are initialised: the same rows, order, init and recipe otherwise)."""
    import torch

    from taskemb_hub import AutoSourceSelector, load_task
    from taskemb_hub.tuning import target_from_data, training

    selector, task = AutoSourceSelector.from_default(), load_task(DATA_DIR / target)
    default = target_from_data(task, selector, progress=False).vector
    real = training._load_model
    cosines = []
    for draw in range(1, draws + 1):
        def reseeded(*args, _draw=draw, **kwargs):
            loaded = real(*args, **kwargs)
            torch.manual_seed(10_000 + _draw)  # only the masks drawn from here on change
            return loaded
        training._load_model = reseeded
        try:
            other = target_from_data(task, selector, progress=False).vector
        finally:
            training._load_model = real
        cosines.append(round(float(torch.nn.functional.cosine_similarity(default, other, dim=0)), 4))
    return {"draws": draws, "cosine_to_default": cosines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="rotten_tomatoes")
    parser.add_argument("--ops", action="store_true")
    parser.add_argument("--dropout-draws", type=int, default=0, help="also tune N times with other dropout masks")
    args = parser.parse_args()
    require_data()
    load = os.getloadavg()[0]
    # torch is imported here before the CLI could set OMP_WAIT_POLICY: record what OpenMP runs with
    policy = os.environ.get("OMP_WAIT_POLICY", "default (spinning)")
    result = {"target": args.target, "load_before": round(load, 2), "omp_wait_policy": policy, **timed_steps(args.target)}
    for name, value in result["seconds"].items():
        print(f"{name:<55} {value:6.2f} s")
    print(f"{'total after the imports':<55} {result['total_after_imports']:6.2f} s (load {load:.2f})")
    if args.ops:
        result["operators"] = operator_shares(args.target)
        for name, value in result["operators"]["groups_s"].items():
            print(f"  {name:<53} {value:6.2f} s ({result['operators']['groups_share'][name]:.0%})")
    if args.dropout_draws:
        result["dropout_masks"] = dropout_draws(args.target, args.dropout_draws)
        print(f"other dropout masks, cosine to the default vector: {result['dropout_masks']['cosine_to_default']}")
    save("target_breakdown", result | {"machine": machine()})


if __name__ == "__main__":
    main()
