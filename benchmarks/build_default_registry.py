"""Build the registry shipped in the package: one entry per classification task of the offline suite.

    python benchmarks/build_default_registry.py [--method lora] [--steps 100] [--force]

Each entry keeps the task embedding, its metadata and a model card: no data and no weights,
so the package stays small. Resumable: tasks already built are skipped unless --force.
"""

import argparse
import json
import shutil
from pathlib import Path

from taskemb_hub.cards import write_model_card
from taskemb_hub.data import CLASSIFICATION, load_task
from taskemb_hub.default_registry import default_registry_path
from taskemb_hub.training import TuningConfig, tune

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", default="../shared/data/tasks")
parser.add_argument("--method", default="lora")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--train-examples", type=int, default=1000)
parser.add_argument("--out", default=str(default_registry_path()))
parser.add_argument("--force", action="store_true")
args = parser.parse_args()

out = Path(args.out)
manifest = json.loads((Path(args.data_dir) / "manifest.json").read_text())
for name, meta in manifest.items():
    if meta["type"] != CLASSIFICATION:
        continue
    entry = out / name
    if (entry / "taskemb.safetensors").is_file() and not args.force:
        print(f"{name}: already built")
        continue
    task = load_task(Path(args.data_dir) / name)
    cfg = TuningConfig(method=args.method, max_steps=args.steps, max_train_examples=args.train_examples,
                       eval_examples=200)
    checkpoint = tune(task, cfg, None, progress=False)[-1]
    checkpoint.embedding.extra["source"] = f"../shared/data/tasks/{name}"
    if entry.exists():
        shutil.rmtree(entry)
    checkpoint.embedding.save(entry)
    write_model_card(entry, checkpoint.embedding, task=task)
    print(f"{name}: {checkpoint.metrics}", flush=True)
