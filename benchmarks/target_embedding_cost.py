"""Time and peak memory to get a target task embedding at step 100, from raw data (2 cores here).

    python benchmarks/target_embedding_cost.py [--task rotten_tomatoes] [--methods lora,prompt,prefix,ia3,bitfit]

Each method runs in a fresh subprocess so its peak RSS is its own. TextEmb (mean token
states of the base model over 500 examples, Vu et al. 2020) is timed beside it as the baseline.
"""

import argparse
import json
import subprocess
import sys
import time

from _common import DATA_DIR, machine, require_data, save

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
    rows = []
    print(f"{'method':<10}{'seconds':>10}{'peak RSS MB':>13}{'dim':>8}")
    for method in args.methods.split(","):
        out = subprocess.run([sys.executable, "-c", CHILD, str(DATA_DIR / args.task), method], capture_output=True,
                             text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{method:<10}{row['seconds']:>10.1f}{row['peak_rss_mb']:>13.0f}{row['dim']:>8}")
    save("target_embedding_cost", {"task": args.task, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
