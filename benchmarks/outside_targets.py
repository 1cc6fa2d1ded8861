"""Targets outside the registry: does their ranking follow the registry's target-independent order?

    python benchmarks/outside_targets.py        # writes results/outside_targets.json

Five tasks that are not registry entries are built from the offline suite's rows (written to a temporary folder as
CSV files, as a user would bring them), each tuned by the path `taskemb-hub rank --data` takes
(`targets.target_from_data`: the registry's recipe) and given its TextEmb vector, then ranked against the packaged
registry by each ranker. For every ranker the target-independent order is each source's mean score over the 16
registry tasks ranked leave-one-out; the figure is the Spearman between a new target's scores and that order.
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from _common import DATA_DIR, RESULTS, require_data

from taskemb_hub import AutoSourceSelector, load_task
from taskemb_hub.baselines import text_embedding
from taskemb_hub.tuning.targets import target_from_data

RANKERS = {  # label -> rank() options
    "BitFit cosine (previous default)": {"ranker": "peft", "similarity": "cosine"},
    "BitFit pcr-1": {"ranker": "peft", "similarity": "pcr-1"},
    "fusion (default)": {"ranker": "fusion"},
}


def rows_of(name: str, split: str = "train") -> list[dict]:
    task = load_task(DATA_DIR / name)
    return [dict(r, _labels=task.labels) for r in task.splits[split]]


def label_name(row: dict) -> str:
    return row["_labels"][row["label"]] if row.get("_labels") else str(row["label"])


def build_tasks(folder: Path) -> dict[str, Path]:
    """Five CSV tasks (text, label) made from the suite's rows; none is a registry task."""
    rng = random.Random(0)
    tasks = {}

    def write(name, rows):
        rng.shuffle(rows)
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows[:1200])
        tasks[name] = path

    bbc = [r for r in rows_of("bbc_news") if label_name(r) in ("business", "tech")]
    write("news_business_vs_tech", [{"text": r["text"], "label": label_name(r)} for r in bbc])
    reviews = [{"text": r["text"], "label": domain} for domain in ("hotels", "medicine", "products")
               for r in rows_of(f"multiemo_{domain}")[:500]]
    write("review_domain", reviews)  # which kind of review: the texts of the sentiment tasks, another question
    claims = [{"text": r["text"], "label": src} for src in ("fever", "vitaminc") for r in rows_of(src)[:600]]
    write("claim_source", claims)  # which fact-checking set a claim comes from
    shuffled = rows_of("rotten_tomatoes")[:1200]
    labels = [label_name(r) for r in shuffled]
    rng.shuffle(labels)
    write("movie_snippets_shuffled_labels", [{"text": r["text"], "label": lab} for r, lab in zip(shuffled, labels)])
    dialog = [{"text": r["text"], "label": "long" if len(r["text"].split()) > 40 else "short"}
              for r in rows_of("play_dialog")[:1200]]
    write("dialogue_length", dialog)
    return tasks


def fixed_orders(selector: AutoSourceSelector) -> dict[str, dict[str, float]]:
    """Per ranker, each source's mean score over the registry's tasks ranked leave-one-out."""
    out = {}
    names = [e.name for e in selector.entries]
    for label, options in RANKERS.items():
        scores = {t: {r["source"]: r["score"] for r in selector.rank(t, **options).rows} for t in names}
        out[label] = {s: float(np.mean([scores[t][s] for t in names if t != s])) for s in names}
    return out


def main():
    require_data()
    selector = AutoSourceSelector.from_default()
    fixed = fixed_orders(selector)
    result = {"targets": [], "spearman_fixed": {label: {} for label in RANKERS}, "top5": {label: {} for label in RANKERS},
              "warnings": {}, "seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in build_tasks(Path(tmp)).items():
            started = time.perf_counter()
            task = load_task(path, name=name, text_column="text", label_column="label")
            target = target_from_data(task, selector, progress=False)
            text = text_embedding(task)
            result["seconds"][name] = round(time.perf_counter() - started, 1)
            result["targets"].append(name)
            for label, options in RANKERS.items():
                ranking = selector.rank(target, text_target=text, **options)
                scores = {r["source"]: r["score"] for r in ranking.rows}
                keys = sorted(scores)
                rho = spearmanr([scores[k] for k in keys], [fixed[label][k] for k in keys]).statistic
                result["spearman_fixed"][label][name] = round(float(rho), 3)
                result["top5"][label][name] = ranking.names[:5]
                result["warnings"][name] = ranking.warnings
            print(name, {label: result["spearman_fixed"][label][name] for label in RANKERS}, flush=True)
    (RESULTS / "outside_targets.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
