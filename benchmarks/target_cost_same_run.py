"""A target embedding from raw data beside ESM-LogME's ranking of the same target and a bare forward pass, one run.

    python benchmarks/target_cost_same_run.py [--targets rotten_tomatoes,fever] [--rounds 2]

Three ways to get from a new target's 1,000 training rows to an answer, each in a fresh process, timed from
the moment `torch` and `transformers` are imported (so no one pays or skips the other's imports), the
model load, tokenisation and everything after it included:

- `ours`: `taskemb-hub rank --data <task folder> --top-k 5 --json` in process: the target tuned with the packaged
  registry's recipe (BitFit, 100 steps at batch 16, bfloat16 autocast where the CPU does it natively, 300
  held-out rows scored to flag a target that learned nothing), the TextEmb of its texts (one forward pass) for
  the default fused ranker, then the ranking.
- `esm-logme`: hf-dataset-selector's way to rank a new target (`peer_rankers.cost`): one base forward pass
  over the rows (fp32, batches of 64, hfselect's pooling), then each source's ESM (a d x d linear map) and
  LogME. The ESMs fitted by `peer_rankers.py run` are used when they are on disk; otherwise maps of the same
  shape with random weights stand in (the cost does not depend on their values; the scores are then not a
  ranking and are not kept). Needs `pip install --no-deps hf-dataset-selector` and `numba`.
- `forward`: one bare forward pass of the base model over the same rows, batches of 16 padded per batch as
  our tuning batches them, under the same precision as `ours` (the floor of anything that reads the rows
  once with the model).

Rounds alternate the order (a later process may find warmer file caches); the 1-minute load average is
recorded before each process. Writes results/target_cost_same_run.json.
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
from _common import DATA_DIR, machine, require_data, save  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCES = 15  # the packaged registry's other classification tasks, as ESM-LogME ranks them

CHILD_OURS = r"""
import contextlib, io, json, resource, sys, time
import torch, transformers
started = time.perf_counter()
from taskemb_hub.cli import main
answer = io.StringIO()
with contextlib.redirect_stdout(answer):
    code = main(["rank", "--data", sys.argv[1], "--top-k", "5", "--json"])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "exit": code, "answer": json.loads(answer.getvalue()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_FORWARD = r"""
import json, resource, sys, time
import torch, transformers
started = time.perf_counter()
from transformers import AutoModel, AutoTokenizer
from taskemb_hub import load_task
from taskemb_hub.base_model import resolve_base_model
from taskemb_hub.tuning.precision import resolve_mixed_precision
load_from = resolve_base_model(None)[0]
tokenizer, model = AutoTokenizer.from_pretrained(load_from), AutoModel.from_pretrained(load_from).eval()
rows = load_task(sys.argv[1]).train_rows(1000, seed=0)
bf16 = resolve_mixed_precision("auto") == "bf16"
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    for start in range(0, len(rows), 16):
        batch = rows[start:start + 16]
        pair = [r["text_pair"] for r in batch] if batch[0].get("text_pair") else None
        enc = tokenizer([r["text"] for r in batch], pair, padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
        model(**enc)
print(json.dumps({"seconds": time.perf_counter() - started, "precision": "bf16" if bf16 else "no",
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_ESM = r"""
import json, resource, sys, time
import numpy as np
import torch, transformers
sys.path.insert(0, sys.argv[3])
import peer_rankers as peer
started = time.perf_counter()
torch.set_num_threads(2)
target, sources = sys.argv[1], sys.argv[2].split(",")
tok = peer.tokenizer()
texts, labels = peer.task_rows(target, 1000)
x = torch.from_numpy(peer.embed(peer.load_encoder(), tok, texts))
stored = 0
generator = torch.Generator().manual_seed(0)
for source in sources:
    layer = torch.nn.Linear(peer.DIM, peer.DIM)
    path = peer.WORK / "esms" / f"{source}-rows1000.pt"
    if path.is_file():
        layer.load_state_dict(torch.load(path, weights_only=True))
        stored += 1
    else:
        with torch.no_grad():
            layer.weight.copy_(torch.randn(peer.DIM, peer.DIM, generator=generator) / peer.DIM ** 0.5)
    with torch.no_grad():
        peer.logme(layer(x).numpy(), labels)
print(json.dumps({"seconds": time.perf_counter() - started, "stored_esms": stored, "sources": len(sources),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(kind: str, target: str, sources: list[str]) -> dict:
    """One fresh process; its JSON line plus the load average before it started."""
    load = os.getloadavg()[0]
    if kind == "esm-logme":
        args = [CHILD_ESM, target, ",".join(sources), str(HERE)]
    else:
        args = [CHILD_OURS if kind == "ours" else CHILD_FORWARD, str(DATA_DIR / target)]
    # The CLI sets OMP_WAIT_POLICY=PASSIVE before torch loads; these children import torch first, so every one of
    # them gets it here (rows without the key were measured with OpenMP's default spinning).
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{kind} on {target} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"kind": kind, "target": target, "load_before": round(load, 2),
                                                              "omp_wait_policy": env["OMP_WAIT_POLICY"]}


def peer_available() -> bool:
    try:
        import hfselect  # noqa: F401
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def summarise(rows: list[dict], targets: list[str]) -> dict:
    out = {}
    for target in targets:
        mine = {k: [r["seconds"] for r in rows if r["target"] == target and r["kind"] == k]
                for k in ("ours", "esm-logme", "forward")}
        med = {k: round(statistics.median(v), 2) for k, v in mine.items() if v}
        if "ours" in med and "esm-logme" in med:
            med["ours_over_esm_logme"] = round(med["ours"] / med["esm-logme"], 2)
        if "ours" in med and "forward" in med:
            med["ours_over_forward"] = round(med["ours"] / med["forward"], 2)
        out[target] = med
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="rotten_tomatoes,fever")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    require_data()
    from taskemb_hub.evaluation.transfer import TASK_SETS

    kinds = ["ours", "esm-logme", "forward"] if peer_available() else ["ours", "forward"]
    if "esm-logme" not in kinds:
        print("hf-dataset-selector (hfselect) or numba is not installed: ESM-LogME is left out "
              "(pip install --no-deps hf-dataset-selector; pip install numba).")
    rows, started = [], time.time()
    targets = args.targets.split(",")
    for round_ in range(args.rounds):
        for target in targets:
            sources = [t for t in TASK_SETS["classification16"] if t != target][:SOURCES]
            for kind in (kinds if round_ % 2 == 0 else kinds[::-1]):
                row = run_child(kind, target, sources) | {"round": round_}
                rows.append(row)
                print(f"round {round_} {target:<18} {kind:<10} {row['seconds']:6.1f} s  load {row['load_before']}",
                      flush=True)
    summary = summarise(rows, targets)
    for target, med in summary.items():
        print(f"{target:<18} median s: " + ", ".join(f"{k} {v}" for k, v in med.items()))
    save("target_cost_same_run", {"rows": rows, "median": summary, "rounds": args.rounds, "machine": machine(),
                                  "minutes": round((time.time() - started) / 60, 1),
                                  "timer": "from after `import torch, transformers` to the answer, in a fresh process"})


if __name__ == "__main__":
    main()
