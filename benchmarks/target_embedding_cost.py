"""Time and peak memory to get a target task embedding at step 100, from raw data (2 cores here).

    python benchmarks/target_embedding_cost.py [--task rotten_tomatoes] [--methods lora,prompt,prefix,ia3,bitfit,textemb,taskemb]

Each method runs in a fresh subprocess so its peak RSS is its own. The baselines of Vu et al. 2020
are timed beside it: TextEmb (mean token states over 500 examples) and TaskEmb (100 full
fine-tuning steps, then the diagonal Fisher over 128 examples). Rows of methods not re-run are
kept; each row records the 1-minute load average when it started (2.0 = both cores busy).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from _common import DATA_DIR, RESULTS, machine, require_data, save

CHILD = r"""
import json, sys, time, resource
sys.path.insert(0, "benchmarks")
from taskemb_hub import TuningConfig, load_task, tune
task = load_task(sys.argv[1])
method = sys.argv[2]
started = time.perf_counter()
if method == "textemb":
    from taskemb_hub.baselines import text_embedding
    emb = text_embedding(task)
elif method == "taskemb":
    from taskemb_hub.baselines import fisher_embedding
    emb = fisher_embedding(task)
else:
    emb = tune(task, TuningConfig(method=method, max_steps=100, eval_examples=0, max_train_examples=1000), None,
               progress=False)[-1].embedding
seconds = time.perf_counter() - started
print(json.dumps({"method": method, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "dim": emb.dim, "bytes": emb.dim * 4}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--methods", default="lora,bitfit,textemb")
    args = parser.parse_args()
    require_data()
    previous = RESULTS / "target_embedding_cost.json"
    kept = json.loads(previous.read_text()) if previous.is_file() else {}
    rerun = args.methods.split(",")
    rows = [r for r in kept.get("rows", []) if r["method"] not in rerun] if kept.get("task") == args.task else []
    print(f"{'method':<10}{'seconds':>10}{'peak RSS MB':>13}{'dim':>8}")
    for method in rerun:
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", CHILD, str(DATA_DIR / args.task), method], capture_output=True,
                             text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1]) | {"load_before": round(load, 2)}
        rows.append(row)
        print(f"{method:<10}{row['seconds']:>10.1f}{row['peak_rss_mb']:>13.0f}{row['dim']:>8}")
    save("target_embedding_cost", {"task": args.task, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
