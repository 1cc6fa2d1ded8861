"""Build the registry shipped in the package: one entry per classification task of the offline suite.

    python benchmarks/build_default_registry.py [--method bitfit] [--steps 100] [--force]
    python benchmarks/build_default_registry.py --from-embeddings benchmarks/results/embeddings/bitfit+mean --force

Each entry keeps the task embedding, its metadata and a model card: no data and no weights,
so the package stays small. Resumable: tasks already built are skipped unless --force.

`--from-embeddings` packages the step-`--steps` vectors that `embed_tasks.py` already measured at
`--seed` instead of tuning again: the registry is then exactly what `benchmarks/RESULTS.md` scored
(a second run of the same recipe is not bit-identical: thread count alone changes the float order).
`--textemb-from` packages the TextEmb vectors the report scored (one per task, no seed: TextEmb trains nothing)
into `default_registry/textemb/`; entries already built are left as they are unless --force.
"""

import argparse
import json
import shutil
from pathlib import Path

from taskemb_hub.cards import write_model_card
from taskemb_hub.data import CLASSIFICATION, load_task
from taskemb_hub.default_registry import DEFAULT_METHOD, default_registry_path, default_textemb_path
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.methods.bitfit import is_attention_key
from taskemb_hub.tuning.training import TuningConfig, tune

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", default="../shared/data/tasks")
parser.add_argument("--method", default=DEFAULT_METHOD)
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--train-examples", type=int, default=1000)
parser.add_argument("--from-embeddings", default=None,
                    help="folder <task>/seed<n>/step-<steps>/ written by embed_tasks.py (no tuning)")
parser.add_argument("--seed", type=int, default=0, help="with --from-embeddings: which embedding seed")
parser.add_argument("--out", default=str(default_registry_path()))
parser.add_argument("--textemb-from", default=None,
                    help="folder <task>/seed0/final/ of TextEmb vectors (embed_tasks.py --baselines textemb): packaged "
                         "beside the entries for the `fusion` ranker (taskemb_hub/ranking/rankers.py)")
parser.add_argument("--textemb-out", default=str(default_textemb_path()))
parser.add_argument("--force", action="store_true")
args = parser.parse_args()

out = Path(args.out)
manifest = json.loads((Path(args.data_dir) / "manifest.json").read_text())
names = [name for name, meta in manifest.items() if meta["type"] == CLASSIFICATION]
if args.from_embeddings:  # check every vector is there before touching the packaged registry
    measured = {n: Path(args.from_embeddings) / n / f"seed{args.seed}" / f"step-{args.steps}" for n in names}
    absent = [n for n, p in measured.items() if not (p / "taskemb.safetensors").is_file()]
    if absent:
        raise SystemExit(f"--from-embeddings {args.from_embeddings}: no seed-{args.seed} step-{args.steps} vector for "
                         f"{', '.join(absent)}; embed them first (benchmarks/embed_tasks.py --tasks {','.join(absent)})")
    # vectors embedded before BitFit's key biases were dropped live in another space than today's targets
    stale = [n for n, p in measured.items()
             if any(is_attention_key(m) for m in TaskEmbedding.load(p).signature.get("modules", {}))]
    if stale:
        raise SystemExit(f"--from-embeddings {args.from_embeddings}: {len(stale)} vectors still hold BitFit's attention "
                         f"key-bias blocks ({', '.join(stale[:3])}...); convert them first: "
                         f"python benchmarks/convert_bitfit_key_bias.py {args.from_embeddings}")
for name in names:
    entry = out / name
    if (entry / "taskemb.safetensors").is_file() and not args.force:
        print(f"{name}: already built")
        continue
    task = load_task(Path(args.data_dir) / name)
    if args.from_embeddings:
        embedding = TaskEmbedding.load(measured[name])
    else:
        cfg = TuningConfig(method=args.method, max_steps=args.steps, max_train_examples=args.train_examples,
                           eval_examples=200)
        embedding = tune(task, cfg, None, progress=False)[-1].embedding
    embedding.extra["source"] = f"local:{name}"  # the data folder's name, never a path (cards.public_source)
    staged = entry.with_name(f".{name}.building")  # the old entry stays whole until the new one is written
    shutil.rmtree(staged, ignore_errors=True)
    embedding.save(staged)
    write_model_card(staged, embedding, task=task)
    if entry.exists():
        shutil.rmtree(entry)
    staged.rename(entry)
    print(f"{name}: {embedding.method} step {embedding.step}, {embedding.metrics}", flush=True)

if args.textemb_from:
    for name in names:
        text = TaskEmbedding.load(Path(args.textemb_from) / name / "seed0" / "final")
        text.extra.pop("source", None)  # nothing local leaves the machine
        text.save(Path(args.textemb_out) / name)
        print(f"{name}: TextEmb, {text.dim} values", flush=True)
