"""The measured data the report reads: the transfer matrix, the stored embeddings and the constants that name them.

A leaf module: every benchmark script may import it without importing the report."""

import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
from _common import RESULTS

from taskemb_hub.default_registry import DEFAULT_METHOD as PACKAGED_METHOD
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.evaluation.transfer import BASE, TASK_SETS

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
EMB = RESULTS / "embeddings"
MIN_SOURCES = 4
MAIN_STEP = 100  # the step every PEFT method is compared at (the packaged registry's step)
SIMILARITIES = ("cosine", "centered")


# folder under results/embeddings -> what it is. "+mean": the task head reads the mean of the token
# states (TuningConfig.head_pooling="mean", the default); "lora" alone: the CLS-pooler head.
PEFT = {
    "lora+mean": "LoRA (ΔW sketch)",
    "bitfit+mean": "BitFit (BEFT bias)",
    "ia3+mean": "IA3 (l − 1)",
    "prompt+mean": "prompt tuning (mean of tuned − init)",
    "spot+mean": "SPoT-style (mean of the raw tuned prompt)",
    "prefix+mean": "prefix tuning (mean of tuned − init)",
    "lora": "LoRA, CLS-pooler head",
    "lora-cls-step100of100": "LoRA, CLS-pooler head, first packaged registry",
}
BASELINES = {"textemb": "TextEmb (Vu et al. 2020)", "taskemb": "TaskEmb, Fisher (Vu et al. 2020)"}
DEFAULT_METHOD = f"{PACKAGED_METHOD}+mean"  # the packaged registry's recipe (mean-pooling head)
SOURCES = TASK_SETS["classification16"]  # every task is a target, ranked over the other 15 as sources
FIRST_POOL = TASK_SETS["core10"]  # the first 10-task matrix: a smaller pool, kept for comparison


def ranks_something(row: dict) -> bool:
    """False for a row whose sources all scored the same (e.g. all stuck at the majority class): it ranks nothing."""
    return len({round(x, 6) for s, x in row.items() if s != BASE}) > 1


def load_runs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def load_matrix(runs: list[dict], tasks: list[str]):
    """The measured runs among `tasks`: cells (source, target) -> scores over seeds; rows (target, seed) ->
    {source: score}; the scored rows (base + at least MIN_SOURCES sources, not all tied); and a seed-mean
    row per target measured at every seed."""
    cells = defaultdict(list)
    per_seed = defaultdict(dict)
    for r in runs:
        if r["target"] in tasks and r["source"] in tasks + [BASE]:
            cells[(r["source"], r["target"])].append(r["score"])
            per_seed[(r["target"], r["seed"])][r["source"]] = r["score"]
    complete = {k: v for k, v in sorted(per_seed.items()) if BASE in v and len(v) - 1 >= MIN_SOURCES and ranks_something(v)}
    seeds = sorted({sd for _, sd in per_seed})
    mean_rows = {}
    for t in tasks:
        rows = [per_seed.get((t, sd), {}) for sd in seeds]
        shared = set.intersection(*(set(r) for r in rows)) if rows else set()
        mean = {s: float(np.mean([r[s] for r in rows])) for s in shared}
        if BASE in mean and len(mean) - 1 >= MIN_SOURCES and ranks_something(mean):
            mean_rows[(t, "mean")] = mean
    return cells, complete, per_seed, mean_rows


@lru_cache(maxsize=None)  # main, rankers, the curve and the heatmap ask for the same folders; read-only
def load_embeddings(method: str, seed: int, step: str) -> dict[str, TaskEmbedding]:
    return {f.parts[-3]: TaskEmbedding.load(f) for f in sorted((EMB / method).glob(f"*/seed{seed}/{step}"))}


def steps_of(method: str) -> list[int]:
    return sorted({int(p.name.split("-")[1]) for p in (EMB / method).glob("*/seed*/step-*")})


def seeds_of(method: str) -> list[int]:
    return sorted({int(p.name[4:]) for p in (EMB / method).glob("*/seed*")})


OLD_SKETCH = "first LoRA sketch, biased"


def old_sketch(method: str) -> bool:
    """LoRA vectors made before G_out and G_in were drawn independently (methods/lora.py): on square modules
    that sketch inflated the cosine of unrelated updates. Such folders stay labelled until re-tuned."""
    return _old_sketch(str(EMB / method))


@lru_cache(maxsize=None)
def _old_sketch(folder: str) -> bool:
    for meta in Path(folder).glob("*/seed*/step-*/taskemb.json"):  # any: a folder half re-tuned is not comparable
        signature = json.loads(meta.read_text()).get("signature", {})
        if signature.get("method") != "lora":
            return False
        if "sketch_sides" not in signature:
            return True
    return False


def tagged(method: str) -> str:
    """A folder name for the tables, marked when its LoRA vectors still use the first, biased sketch."""
    return f"{method} ({OLD_SKETCH})" if (EMB / method).is_dir() and old_sketch(method) else method


def vector_dim(method: str) -> int | None:
    """Values per task of a method's stored vectors (TaskEmb: the full Fisher size its isometric copy stands for)."""
    sample = next((EMB / method).glob("*/seed0/*/taskemb.json"), None) if (EMB / method).is_dir() else None
    if sample is None:
        return None
    info = json.loads(sample.read_text())
    return info.get("extra", {}).get("full_dim") or info.get("dim")


def peft_folders() -> dict[str, str]:
    """PEFT embedding folders present -> label; `<method>@<n>` is that method on an n-step schedule."""
    found = {}
    for method, label in PEFT.items():
        if (EMB / method).is_dir():
            found[method] = label
        for folder in sorted(EMB.glob(f"{method}@*")):
            found[folder.name] = f"{label}, {folder.name.split('@')[1]}-step schedule"
    return {m: f"{label} ({OLD_SKETCH})" if old_sketch(m) else label for m, label in found.items()}


SMALL_FILE = "transfer_small.jsonl"
SMALL_ROWS = 200
