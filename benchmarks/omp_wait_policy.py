"""Tuning steps on a busy machine: OpenMP's default spin-waiting against OMP_WAIT_POLICY=PASSIVE (2 cores here).

    python benchmarks/omp_wait_policy.py [--steps 20] [--rounds 3]

torch runs each operator on all cores (OpenMP); between operators its threads wait at a barrier. By default
libgomp spins there, which costs nothing on an idle machine and a great deal when another job wants the same
cores: a spinning thread holds a core the other job needs, and the other job's threads hold the core this one
is waiting for (a target's `rank --data` took 4-9 minutes on a busy machine against ~25 s idle). PASSIVE makes
waiting threads sleep. Each measurement is a fresh process (the policy is read when OpenMP starts) running
`--steps` training steps of the packaged MiniLM (batch 16 x 48 tokens, bf16 autocast where native, forward
and backward, as a target's tuning does), in three settings: idle, beside one busy core (a pure-Python loop,
like a test suite), and beside another torch job (a 2-thread matrix-product loop). Rounds alternate the
policies. Writes results/omp_wait_policy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

CHILD = r"""
import json, sys, time, torch
from transformers import AutoModelForSequenceClassification
from taskemb_hub.base_model import resolve_base_model
from taskemb_hub.tuning.precision import resolve_mixed_precision
model = AutoModelForSequenceClassification.from_pretrained(resolve_base_model(None)[0], num_labels=2)
ids = torch.randint(1000, 5000, (16, 48), generator=torch.Generator().manual_seed(0))
bf16 = resolve_mixed_precision("auto") == "bf16"
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids).logits.float().sum()
    loss.backward()
step()  # the first step allocates; not timed
started = time.perf_counter()
for _ in range(int(sys.argv[1])):
    step()
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

HOGS = {
    "idle": None,
    "one busy core (a Python loop)": "while True: pass",
    "another torch job (2 threads)": ("import torch\nx = torch.randn(1024, 1024)\nwhile True: x @ x"),
}


def run(policy: str, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for setting, hog_code in HOGS.items():
        hog_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # the other job spins, as by default
        hog = subprocess.Popen([sys.executable, "-c", hog_code], env=hog_env) if hog_code else None
        try:
            time.sleep(2 if hog else 0)
            times = {"default": [], "PASSIVE": []}
            loads = []
            for round_ in range(args.rounds):
                for policy in (("default", "PASSIVE") if round_ % 2 == 0 else ("PASSIVE", "default")):
                    loads.append(round(os.getloadavg()[0], 2))
                    times[policy].append(round(run(policy, args.steps), 2))
        finally:
            if hog:
                hog.kill()
                hog.wait()
        med = {p: statistics.median(t) for p, t in times.items()}
        results[setting] = {"seconds": times, "median": med, "default_over_passive": round(med["default"] / med["PASSIVE"], 2),
                            "load_before": loads}
        print(f"{setting:<32} default {med['default']:6.2f} s  PASSIVE {med['PASSIVE']:6.2f} s  "
              f"(x{results[setting]['default_over_passive']})  load {min(loads)}-{max(loads)}", flush=True)
    save("omp_wait_policy", {"steps": args.steps, "rounds": args.rounds, "settings": results, "machine": machine()})


if __name__ == "__main__":
    main()
