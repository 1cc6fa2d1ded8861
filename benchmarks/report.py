"""Generate benchmarks/RESULTS.md (+ PNG plots) from the measured transfer matrix and the embeddings.

    python benchmarks/report.py

Inputs: `results/transfer_limited.jsonl` (ground truth) and `results/embeddings/` (from
embed_tasks.py). Only targets whose row is complete (base + every other task of the set as a
source, for a seed) are scored; missing cells are listed in the report.
"""

import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from _common import DATA_DIR, RESULTS

from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.ranking_metrics import evaluate_ranking, nanmean
from taskemb_hub.selector import _scores
from taskemb_hub.transfer import BASE, TASK_SETS

HERE = Path(__file__).resolve().parent
EMB = RESULTS / "embeddings"
# "lora" = CLS-pooler head (200-step runs); "lora+mean" = mean-pooling head; "lora-cls-step100of100" =
# the CLS-head registry that shipped before the switch to mean pooling (100-step runs).
PEFT = ["lora", "lora+mean", "lora-cls-step100of100", "bitfit", "ia3", "prompt", "prefix"]
MIN_SOURCES = 4


def load_matrix(path: Path, tasks: list[str]):
    cells = defaultdict(list)  # (source, target) -> scores over seeds
    per_seed = defaultdict(dict)  # (target, seed) -> {source: score}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["target"] in tasks and (r["source"] in tasks or r["source"] == BASE):
            cells[(r["source"], r["target"])].append(r["score"])
            per_seed[(r["target"], r["seed"])][r["source"]] = r["score"]
    # A target row is scored once it has its base run and at least MIN_SOURCES measured sources;
    # rankings are then over the measured sources only (the report says how many).
    complete = {k: v for k, v in per_seed.items() if BASE in v and len(v) - 1 >= MIN_SOURCES}
    return cells, complete


def load_embeddings(method: str, seed: int, step: str) -> dict[str, TaskEmbedding]:
    out = {}
    for folder in sorted((EMB / method).glob(f"*/seed{seed}/{step}")):
        out[folder.parts[-3]] = TaskEmbedding.load(folder)
    return out


def score_sources(embs: dict, target: str, sources: list[str], similarity: str) -> dict[str, float] | None:
    if target not in embs or any(s not in embs for s in sources):
        return None
    matrix = torch.stack([embs[s].vector for s in sources]).double()
    scores = _scores(embs[target].vector.double(), matrix, (matrix ** 2).sum(1), similarity)
    return dict(zip(sources, scores.tolist()))


def evaluate_method(scorer, complete, tasks) -> dict | None:
    rows = []
    for (target, seed), row in complete.items():
        sources = [t for t in tasks if t != target and t in row]
        scores = scorer(target, sources, seed)
        if scores is None:
            continue
        rows.append(evaluate_ranking(scores, {s: row[s] for s in sources}, row[BASE], k=3))
    if not rows:
        return None
    return {k: nanmean([r[k] for r in rows]) for k in rows[0]} | {"targets": len(rows)}


def main():
    tasks = TASK_SETS["core10"]
    matrix_path = RESULTS / "transfer_limited.jsonl"
    cells, complete = load_matrix(matrix_path, tasks)
    index = [json.loads(l) for l in (EMB / "index.jsonl").read_text().splitlines()] if (EMB / "index.jsonl").is_file() else []
    seeds = sorted({r["seed"] for r in index if r["method"] in PEFT}) or [0]
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())

    results = {}  # name -> metrics (mean over seeds), + spread
    def add(name, per_seed):
        per_seed = [m for m in per_seed if m]
        if per_seed:
            results[name] = {k: nanmean([m[k] for m in per_seed]) for k in per_seed[0]}
            results[name]["ndcg_sd"] = statistics.pstdev([m["ndcg"] for m in per_seed]) if len(per_seed) > 1 else float("nan")
            results[name]["seeds"] = len(per_seed)

    final_step = {}
    for method in PEFT:
        steps = sorted({int(p.name.split("-")[1]) for p in (EMB / method).glob("*/seed*/step-*")}) if (EMB / method).is_dir() else []
        if not steps:
            continue
        final_step[method] = steps
        for sim in ("cosine", "centered"):
            add(f"{method} ({sim})", [evaluate_method(
                lambda t, s, _seed, sd=sd: score_sources(load_embeddings(method, sd, f"step-{steps[-1]}"), t, s, sim),
                complete, tasks) for sd in seeds])
    from taskemb_hub.default_registry import default_registry_path

    packaged = {p.name: TaskEmbedding.load(p) for p in default_registry_path().iterdir() if p.is_dir()}
    for sim in ("cosine", "centered"):
        add(f"packaged registry as shipped ({sim})",
            [evaluate_method(lambda t, s, _seed: score_sources(packaged, t, s, sim), complete, tasks)])
    for base in ("textemb", "taskemb"):
        embs = load_embeddings(base, 0, "final")
        for sim in ("cosine", "centered"):
            add(f"{base} ({sim})", [evaluate_method(lambda t, s, _seed: score_sources(embs, t, s, sim), complete, tasks)])
    add("datasize", [evaluate_method(lambda t, s, _seed: {x: manifest[x]["sizes"]["train"] for x in s}, complete, tasks)])
    rng = np.random.default_rng(0)
    random_runs = [evaluate_method(lambda t, s, _seed: dict(zip(s, rng.random(len(s)))), complete, tasks) for _ in range(200)]
    add("random (mean of 200 orders)", [{k: nanmean([r[k] for r in random_runs if r]) for k in (random_runs[0] or {})}] if random_runs[0] else [])

    # early-checkpoint curve and disentanglement
    curve = defaultdict(dict)
    points = []
    for method, steps in final_step.items():
        for step in steps:
            per_seed = [evaluate_method(lambda t, s, _seed, sd=sd: score_sources(
                load_embeddings(method, sd, f"step-{step}"), t, s, "cosine"), complete, tasks) for sd in seeds]
            per_seed = [m for m in per_seed if m]
            if per_seed:
                curve[method][step] = nanmean([m["ndcg"] for m in per_seed])
            for (target, seed), row in complete.items():
                embs = load_embeddings(method, seed, f"step-{step}")
                sources = [x for x in tasks if x != target and x in row]
                scores = score_sources(embs, target, sources, "cosine")
                if scores and embs[target].metrics:
                    m = evaluate_ranking(scores, {x: row[x] for x in sources}, row[BASE])
                    points.append((method, step, next(iter(embs[target].metrics.values())), m["ndcg"]))

    write_report(tasks, cells, complete, results, curve, points, index)


def write_report(tasks, cells, complete, results, curve, points, index):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["# Does the ranking predict transfer?", "",
             "Generated by `python benchmarks/report.py`; do not edit by hand.", "",
             "## Ground truth: measured transfer (limited regime)", "",
             "Full fine-tuning of the packaged all-MiniLM-L6-v2: 1,000 train examples per task, 2 epochs on the source,",
             "then 2 epochs on the target, lr 1e-4, batch 16, 128 tokens; target test accuracy (≤1,000 test rows).",
             f"Tasks (`core10`): {', '.join(tasks)}.", ""]
    expected = {(s, t) for t in tasks for s in [BASE] + [x for x in tasks if x != t]}
    measured = set(cells)
    lines.append(f"Cells measured: {len(measured & expected)} of {len(expected)} (seed 0). Target rows scored "
                 f"(base + at least {MIN_SOURCES} sources): {len(complete)}.")
    lines.append("")
    lines += ["| target | base | sources measured | best source (score) | worst source (score) | missing sources |",
              "|---|---|---|---|---|---|"]
    for t in tasks:
        have = {s: np.mean(cells[(s, t)]) for s in tasks if s != t and (s, t) in cells}
        base = f"{np.mean(cells[(BASE, t)]):.3f}" if (BASE, t) in cells else "missing"
        missing = [s for s in tasks if s != t and s not in have]
        best = max(have, key=have.get) if have else None
        worst = min(have, key=have.get) if have else None
        lines.append(f"| {t} | {base} | {len(have)}/{len(tasks) - 1} | "
                     + (f"{best} ({have[best]:.3f}) | {worst} ({have[worst]:.3f})" if have else " | ")
                     + f" | {', '.join(missing) if len(missing) < len(tasks) - 1 else 'all'} |")
    lines.append("")
    lines += ["## Rankings against the ground truth", "",
              "NDCG (relative gain clipped at 0; see `taskemb_hub/ranking_metrics.py`), ρ (rank of the true best source, 1 = perfect),",
              "Regret@3 (%), Spearman; averaged over complete targets; `sd` = spread of NDCG over seeds.", "",
              "| method | NDCG | NDCG sd | ρ | Regret@3 | Spearman | targets | seeds |", "|---|---|---|---|---|---|---|---|"]
    for name, m in sorted(results.items(), key=lambda kv: -(kv[1]["ndcg"] if kv[1]["ndcg"] == kv[1]["ndcg"] else -1)):
        lines.append(f"| {name} | {m['ndcg']:.3f} | {m['ndcg_sd']:.3f} | {m['rho']:.2f} | {m['regret@3']:.2f} | "
                     f"{m['spearman']:.3f} | {m['targets']:.0f} | {m['seeds']} |")
    if not results:
        lines.append("| (no complete target row yet) | | | | | | | |")
    lines.append("")
    if curve:
        plt.figure(figsize=(6, 4))
        for method, pts in curve.items():
            xs = sorted(pts)
            plt.plot(xs, [pts[x] for x in xs], marker="o", label=method)
        plt.xscale("log"); plt.xlabel("checkpoint step"); plt.ylabel("NDCG (cosine)"); plt.legend(); plt.tight_layout()
        plt.savefig(HERE / "results" / "early_checkpoints.png", dpi=120); plt.close()
        lines += ["## Early checkpoints", "", "![NDCG by checkpoint](results/early_checkpoints.png)", "",
                  "| method | " + " | ".join(str(s) for s in sorted({s for p in curve.values() for s in p})) + " |",
                  "|---|" + "---|" * len({s for p in curve.values() for s in p})]
        all_steps = sorted({s for p in curve.values() for s in p})
        for method, pts in curve.items():
            lines.append(f"| {method} | " + " | ".join(f"{pts[s]:.3f}" if s in pts else "" for s in all_steps) + " |")
        lines.append("")
    if len(points) > 2:
        from scipy.stats import spearmanr

        metric, nd = [p[2] for p in points], [p[3] for p in points]
        ok = [(a, b) for a, b in zip(metric, nd) if b == b]
        rho = spearmanr([a for a, _ in ok], [b for _, b in ok]).statistic if len(ok) > 2 else float("nan")
        lines += ["## In-task metric vs ranking quality (disentanglement)", "",
                  f"Spearman between a checkpoint's in-task metric and the NDCG of the ranking it gives: {rho:.3f} "
                  f"over {len(ok)} (method, step, target) points.", ""]
    if index:
        cost = defaultdict(list)
        for r in index:
            cost[r["method"]].append(r["seconds"])
        lines += ["## Cost to embed one task (this machine, 2 CPU cores, shared with other jobs)", "",
                  "| method | median seconds per task (all checkpoints of one run) | runs |", "|---|---|---|"]
        for m, secs in sorted(cost.items()):
            lines.append(f"| {m} | {statistics.median(secs):.1f} | {len(secs)} |")
        lines.append("")
    if complete:
        t_names = tasks
        gain = np.full((len(t_names), len(t_names)), np.nan)
        for (s, t), v in cells.items():
            if s != BASE and (BASE, t) in cells:
                gain[t_names.index(s), t_names.index(t)] = (np.mean(v) - np.mean(cells[(BASE, t)])) / np.mean(cells[(BASE, t)])
        fig, ax = plt.subplots(figsize=(6, 5))
        im = ax.imshow(gain, cmap="RdBu", vmin=-0.1, vmax=0.1)
        ax.set_xticks(range(len(t_names)), t_names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(t_names)), t_names, fontsize=7)
        ax.set_xlabel("target"); ax.set_ylabel("source"); fig.colorbar(im, label="relative transfer gain")
        fig.tight_layout(); fig.savefig(HERE / "results" / "transfer_matrix.png", dpi=120); plt.close(fig)
        lines += ["## Measured transfer matrix", "", "![transfer matrix](results/transfer_matrix.png)", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
