"""Embed every task of a set with each method at several checkpoints (resumable).

    python benchmarks/embed_tasks.py --tasks core10 --methods lora,bitfit,ia3,prompt,prefix --seeds 0 \
        --steps 10,25,50,100 [--baselines textemb,taskemb]
    python benchmarks/embed_tasks.py --methods lora+mean,bitfit+mean --baselines "" --steps 10,25,50,100,200,500

A run's learning-rate schedule ends at `--max-steps` (default: the last of `--steps`), so a step-100
checkpoint of a 500-step run differs from one of the main 100-step runs (the schedule of the packaged
registry and of a target embedded by `AutoSourceSelector`): a run on another schedule is stored under
its own label, `<method>@<max steps>` (e.g. `lora+mean@500`), whose last step is "the end".

Writes `benchmarks/results/embeddings/<method>/<task>/seed<s>/step-<n>/taskemb.{safetensors,json}`
(vectors and metadata only) plus a line per run in `index.jsonl` with seconds and peak memory.
A run already in the index is skipped. Runs on fewer training rows than the default 1,000 (a target
of the "small" regime: `--train-examples 200`) get their own label too: `<method>-rows200`.

TaskEmb vectors have one value per encoder weight (10.6M for MiniLM, 42 MB each): the full
vectors stay in `benchmarks/work/embeddings_full/` (not committed) and the committed copy is their
isometric image in the span of the set (n tasks -> n values each; every inner product, norm and
mean is preserved, so cosine and centred rankings among these tasks are exact).
"""

import argparse
import dataclasses
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from _common import DATA_DIR, RESULTS, require_data

from taskemb_hub import EmbeddingOptions, TaskEmbedding, TuningConfig, load_task, tune
from taskemb_hub.baselines import fisher_embedding, isometric_copies, text_embedding
from taskemb_hub.evaluation.transfer import TASK_SETS

OUT = RESULTS / "embeddings"
FULL = Path(__file__).resolve().parent / "work" / "embeddings_full"
LARGE = ("taskemb",)  # methods whose full vectors are too big to commit
DEFAULT_SCHEDULE = 100  # the packaged registry's schedule; runs on another one are labelled "@<steps>"
DEFAULT_ROWS = 1000  # the packaged registry's training rows; fewer are labelled "-rows<n>"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="core10")
    parser.add_argument("--methods", default="lora,bitfit,ia3,prompt,prefix",
                        help="PEFT methods; append +mean for a mean-pooling head (lora+mean)")
    parser.add_argument("--baselines", default="textemb,taskemb")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--baseline-seeds", default="0",
                        help="seeds of the seeded baselines (TaskEmb fine-tunes; TextEmb has no seed and runs once)")
    parser.add_argument("--steps", default="10,25,50,100")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="schedule length (default: the last of --steps); other than 100 it gets its own label")
    parser.add_argument("--train-examples", type=int, default=1000)
    parser.add_argument("--shuffle-labels", action="store_true",
                        help="the null-task control: the same recipe on the task's rows with their labels permuted "
                             "(a fixed permutation per task); stored as <method>-null")
    args = parser.parse_args()
    require_data()
    tasks = TASK_SETS.get(args.tasks) or args.tasks.split(",")
    steps = [int(s) for s in args.steps.split(",")]
    max_steps = args.max_steps or max(steps)
    schedule = "" if max_steps == DEFAULT_SCHEDULE else f"@{max_steps}"
    if args.train_examples != DEFAULT_ROWS:
        schedule += f"-rows{args.train_examples}"
    if args.shuffle_labels:
        schedule += "-null"
    index = OUT / "index.jsonl"
    OUT.mkdir(parents=True, exist_ok=True)
    done = {(r["method"], r["task"], r["seed"]) for r in map(json.loads, index.read_text().splitlines())} \
        if index.is_file() else set()
    jobs = [(m + schedule, t, int(s)) for s in args.seeds.split(",") for m in args.methods.split(",") if m for t in tasks]
    rows_label = "" if args.train_examples == DEFAULT_ROWS else f"-rows{args.train_examples}"
    jobs += [(b + (rows_label if b == "textemb" else ""), t, int(s)) for b in args.baselines.split(",") if b
             for s in (args.baseline_seeds.split(",") if b != "textemb" else ["0"]) for t in tasks]
    embedded = set()  # (method, seed) embedded by this run
    for method, name, seed in jobs:
        if (method, name, seed) in done:
            continue
        embedded.add((method, seed))
        task = load_task(DATA_DIR / name)
        if args.shuffle_labels:
            task = with_shuffled_labels(task)
        started = time.perf_counter()
        folder = OUT / method / name / f"seed{seed}"
        if method.startswith("textemb"):
            if args.train_examples != DEFAULT_ROWS:  # the small regime: the rows a 200-row target was tuned on
                task = dataclasses.replace(task, splits={**task.splits, "train": task.train_rows(args.train_examples, seed=0)})
            text_embedding(task).save(folder / "final")
            checkpoints = [{"step": None}]
        elif method == "taskemb":
            fisher_embedding(task, seed=seed).save(FULL / method / name / f"seed{seed}" / "final")
            checkpoints = [{"step": None}]
        else:  # "lora+mean": LoRA with a mean-pooling head; "lora+mean@500": on a 500-step schedule
            peft_method, _, pooling = method.split("@")[0].split("-rows")[0].split("-null")[0].partition("+")
            cfg = TuningConfig(method=peft_method, max_steps=max_steps, save_steps=steps, seed=seed,
                               max_train_examples=args.train_examples, eval_examples=300,
                               head_pooling=pooling or "cls")
            checkpoints = []
            with tempfile.TemporaryDirectory() as adapters:
                for cp in tune(task, cfg, adapters, progress=False):
                    cp.embedding.save(folder / f"step-{cp.step}")
                    checkpoints.append({"step": cp.step, "metrics": cp.metrics})
                    if peft_method == "prompt":  # SPoT-style: the raw tuned prompt, mean over tokens
                        spot = TaskEmbedding.from_adapter(cp.path, options=EmbeddingOptions(relative_to_init=False),
                                                          task=name)
                        spot.save(OUT / f"spot+{pooling}{schedule}" / name / f"seed{seed}" / f"step-{cp.step}")
        row = {"method": method, "task": name, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "checkpoints": checkpoints,
               "device": "cuda" if torch.cuda.is_available() else "cpu"}
        with index.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{method:>8} {name:<22} seed {seed}: {row['seconds']}s", flush=True)
    # only the seeds this run added vectors to: rewriting the others gives another (equally exact) basis,
    # which churns committed files without changing any ranking
    for method, seed in sorted(e for e in embedded if e[0] in LARGE):
        write_isometric_copy(method, f"seed{seed}")


def with_shuffled_labels(task):
    """The task with its training labels permuted (seeded by the task's name): what tuning learns from it is the
    task-agnostic part of the update (the text, the head's start, the optimiser), not the task."""
    import zlib

    import numpy as np

    train = [dict(r) for r in task.splits["train"]]
    labels = [r["label"] for r in train]
    order = np.random.default_rng(zlib.crc32(task.name.encode())).permutation(len(labels))
    for r, j in zip(train, order):
        r["label"] = labels[j]
    return dataclasses.replace(task, splits={**task.splits, "train": train})


def write_isometric_copy(method: str, seed_dir: str) -> None:
    folders = sorted((FULL / method).glob(f"*/{seed_dir}/final"))
    for emb in isometric_copies([TaskEmbedding.load(f) for f in folders]):
        emb.save(OUT / method / emb.task / seed_dir / "final")


if __name__ == "__main__":
    main()
