"""Generate benchmarks/RESULTS.md (+ PNG plots) from the measured transfer matrix and the embeddings.

    python benchmarks/report.py

Inputs: `results/transfer_limited.jsonl` (ground truth), `results/transfer_device_check.jsonl` (GPU re-runs
of CPU cells), `results/embeddings/` (embed_tasks.py) and `results/target_embedding_cost.json`
(target_embedding_cost.py). Every classification task of the suite is a target, ranked over the other 15 as
sources. A target row (one ground-truth seed) is scored once it has its base run and at least MIN_SOURCES
measured sources; rankings are then over the measured sources only, and the report lists every missing
cell. A section ranks the first 10 tasks (`core10`) only, the pool of earlier versions of this report.
"""

import json
import statistics
from functools import lru_cache
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from _common import BITFIT_DIM, DATA_DIR, RESULTS

from taskemb_hub.default_registry import DEFAULT_METHOD as PACKAGED_METHOD
from taskemb_hub.embedding import TaskEmbedding
from taskemb_hub.ranking_metrics import evaluate_ranking, gains, nanmean, ndcg
from taskemb_hub.selector import AutoSourceSelector
from taskemb_hub.transfer import BASE, TASK_SETS

HERE = Path(__file__).resolve().parent
EMB = RESULTS / "embeddings"
MIN_SOURCES = 4
TIE_DRAWS = 64  # random tie-breaks averaged for a ranker whose scores tie
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
HEATMAP_METHODS = (DEFAULT_METHOD, "textemb")
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


def score_sources(embs: dict, target: str, sources: list[str], similarity: str) -> dict[str, float] | None:
    """The sources' scores as `AutoSourceSelector.rank` gives them (the path users run), PEFT embedding alone."""
    if target not in embs or any(s not in embs for s in sources):
        return None
    selector = AutoSourceSelector.from_embeddings([embs[s] for s in sources])
    ranking = selector.rank(embs[target], similarity=similarity, ranker="peft")
    return {r["task"]: r["score"] for r in ranking.rows}


def score_row(scores: dict, transfer: dict, base: float) -> dict:
    """Every metric of one ranked ground-truth row: NDCG with the relative gain (the headline), the shifted gain and
    hf-dataset-selector's exponential gain 2^(100·acc) − 1 (`ndcg_peer_gain`), ρ, Regret@1/3/5, Spearman."""
    values = [scores[s] for s in transfer]
    if len(set(values)) == len(values):
        order = sorted(transfer, key=lambda s: (-scores[s], s))
        m = evaluate_ranking(scores, transfer, base, k=(1, 3, 5))
        m["ndcg_shifted"] = ndcg(order, gains(transfer, base, "shifted"))
        m["ndcg_peer_gain"] = ndcg(order, gains(transfer, base, "exponential"))
        return m
    # tied scores (DataSize's equal train sizes): the mean over random tie-breaks, never the order of the names
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(TIE_DRAWS):
        jitter = dict(zip(transfer, rng.random(len(transfer)) * 1e-9 * (1 + max(abs(v) for v in values))))
        draws.append(score_row({s: scores[s] + jitter[s] for s in transfer}, transfer, base))
    return {k: nanmean([d[k] for d in draws]) for k in draws[0]}


def evaluate_method(scorer, complete, tasks) -> dict | None:
    """Metrics averaged over ground-truth seeds within a target, then over targets (each target counts once)."""
    rows = defaultdict(list)  # target -> metrics of each scored seed
    by_seed = {}  # (target, seed) -> metrics
    for (target, seed), row in complete.items():
        sources = [t for t in tasks if t != target and t in row]
        scores = scorer(target, sources, seed)
        if scores is None:
            continue
        m = score_row(scores, {s: row[s] for s in sources}, row[BASE])
        rows[target].append(m)
        by_seed[(target, seed)] = m
    if not rows:
        return None
    keys = next(iter(rows.values()))[0]
    return summarize({t: {k: nanmean([m[k] for m in ms]) for k in keys} for t, ms in sorted(rows.items())}) | {"by_seed": by_seed}


def evaluate_scorers(scorers, complete, mean_rows, pool, collapse=False) -> dict | None:
    """Score each scorer (one per embedding seed; `collapse` = one run, e.g. random orders, averaged) against
    every ground-truth row and against the seed-mean rows; merged per target (None when none scored a row).

    Returns:
        `merge_runs`'s summary + `seeds`, `ndcg_sd` (spread over the scorers), `gt_seed_sd` (over ground-truth
        seeds) and `on_mean` (the same against the seed-mean truth).
    """
    per_seed = [m for m in (evaluate_method(sc, complete, pool) for sc in scorers) if m]
    on_mean = [m for m in (evaluate_method(sc, mean_rows, pool) for sc in scorers) if m] if mean_rows else []
    if not per_seed:
        return None
    raw = per_seed
    if collapse:
        per_seed = [merge_runs(per_seed)]
    return merge_runs(per_seed) | {"ndcg_sd": seed_spread(per_seed), "seeds": len(per_seed),
                                   "gt_seed_sd": gt_seed_spread(raw), "on_mean": merge_runs(on_mean) if on_mean else None}


def summarize(per_target: dict[str, dict]) -> dict:
    """Means over targets of per-target metrics, kept beside the per-target values they come from."""
    keys = next(iter(per_target.values()))
    return {k: nanmean([m[k] for m in per_target.values()]) for k in keys} | {"targets": len(per_target), "rows": per_target}


def merge_runs(runs: list[dict]) -> dict:
    """Several runs (embedding seeds, random orders) -> one: each target averaged over the runs that scored
    it, then the targets averaged, so a target that only some runs cover still counts once."""
    targets = sorted({t for r in runs for t in r["rows"]})
    keys = next(iter(runs[0]["rows"].values()))
    return summarize({t: {k: nanmean([r["rows"][t][k] for r in runs if t in r["rows"]]) for k in keys} for t in targets})


def seed_spread(runs: list[dict]) -> float:
    """NDCG spread over runs, on the targets every run scored (so the spread is not a change of targets)."""
    common = set.intersection(*(set(r["rows"]) for r in runs))
    if len(runs) < 2 or not common:
        return float("nan")
    return statistics.pstdev([nanmean([r["rows"][t]["ndcg"] for t in common]) for r in runs])


def gt_seed_spread(runs: list[dict]) -> float:
    """NDCG spread over ground-truth seeds: each seed's NDCG (per target, mean over runs; then over targets)."""
    by_seed = defaultdict(lambda: defaultdict(list))  # ground-truth seed -> target -> NDCG of each run
    for run in runs:
        for (target, seed), m in run["by_seed"].items():
            by_seed[seed][target].append(m["ndcg"])
    means = [nanmean([nanmean(v) for v in per_target.values()]) for _, per_target in sorted(by_seed.items())]
    means = [m for m in means if m == m]  # a seed whose scored targets all lack an NDCG has none
    return statistics.pstdev(means) if len(means) > 1 else float("nan")


def other_seed_scorer(complete):
    """Rank by the measured transfer of the other ground-truth seeds (their mean): the ceiling that run-to-run
    noise allows."""
    seeds = {sd for _, sd in complete}

    def scorer(target, sources, seed):
        if seed not in seeds:
            return None  # a seed-mean row holds every seed: nothing independent is left to rank it with
        others = [row for (t, sd), row in complete.items() if t == target and sd != seed]
        if not others or any(s not in row for row in others for s in sources):
            return None
        return {s: float(np.mean([row[s] for row in others])) for s in sources}
    return scorer


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


def checkpoint_correlations(points: dict) -> dict:
    """Spearman between a checkpoint's in-task metric and its ranking's NDCG: per method, pooled over every
    (method, step, target) point, and within each target (mean of the per-target correlations)."""
    from scipy.stats import spearmanr

    methods, pooled = {}, []
    for method, pts in points.items():
        ok = [(a, b, t) for a, b, t in pts if b == b]
        pooled += ok
        methods[method] = (spearmanr([a for a, _, _ in ok], [b for _, b, _ in ok]).statistic if len(ok) > 2
                           else float("nan"), len(ok))
    rho = spearmanr([a for a, _, _ in pooled], [b for _, b, _ in pooled]).statistic if len(pooled) > 2 else float("nan")
    within = []
    for target in sorted({t for _, _, t in pooled}):
        pts = [(a, b) for a, b, t in pooled if t == target]
        if len(pts) > 2 and len({a for a, _ in pts}) > 1 and len({b for _, b in pts}) > 1:
            within.append(spearmanr(*zip(*pts)).statistic)
    return {"methods": methods, "pooled": float(rho), "points": len(pooled), "within": float(nanmean(within)),
            "within_targets": len(within)}


def peft_folders() -> dict[str, str]:
    """PEFT embedding folders present -> label; `<method>@<n>` is that method on an n-step schedule."""
    found = {}
    for method, label in PEFT.items():
        if (EMB / method).is_dir():
            found[method] = label
        for folder in sorted(EMB.glob(f"{method}@*")):
            found[folder.name] = f"{label}, {folder.name.split('@')[1]}-step schedule"
    return {m: f"{label} ({OLD_SKETCH})" if old_sketch(m) else label for m, label in found.items()}


def embedding_scorer(method, step, seed, similarity, embs=None):
    """Similarity of each source's embedding to the target's; the same for every ground-truth seed (computed once)."""
    embs = load_embeddings(method, seed, step) if embs is None else embs
    seen = {}

    def scorer(target, sources, _seed):
        key = (target, tuple(sources))
        if key not in seen:
            seen[key] = score_sources(embs, target, sources, similarity)
        return seen[key]
    return scorer


HYBRID = f"{DEFAULT_METHOD} centered + TextEmb centered, summed (exploratory hybrid)"
DATASIZE = "DataSize (bigger source first)"
RANDOM = "Random (mean of 200 orders)"


def hybrid_scorer(weights: dict, text: dict):
    def scorer(target, sources, _seed):
        a, b = score_sources(weights, target, sources, "centered"), score_sources(text, target, sources, "centered")
        return None if a is None or b is None else {s: a[s] + b[s] for s in sources}
    return scorer


def datasize_scorer(manifest):
    return lambda target, sources, _seed: {s: manifest[s]["sizes"]["train"] for s in sources}


def random_scorers(n=200, seed=0):
    """n independent random orders (one generator, so the draws differ from order to order)."""
    rng = np.random.default_rng(seed)
    return [lambda t, s, _seed: dict(zip(s, rng.random(len(s)))) for _ in range(n)]


def ndcg_se(m: dict) -> float:
    """Standard error of an NDCG mean over targets (how much it would move with other targets)."""
    per = [r["ndcg"] for r in m["rows"].values() if r["ndcg"] == r["ndcg"]]
    return float(np.std(per, ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")


def main():
    torch.set_num_threads(1)  # small matrix products: extra threads only spin on a shared machine
    runs = load_runs(RESULTS / "transfer_limited.jsonl")
    cells, complete, seed_rows, mean_rows = load_matrix(runs, SOURCES)
    index = [json.loads(l) for l in (EMB / "index.jsonl").read_text().splitlines()] if (EMB / "index.jsonl").is_file() else []
    manifest = json.loads((DATA_DIR / "manifest.json").read_text())

    results = {}  # label -> metrics averaged over embedding seeds, + NDCG spread over seeds

    def add(label, scorers, method=None, similarity=None, collapse=False):
        m = evaluate_scorers(scorers, complete, mean_rows, SOURCES, collapse)
        if m:
            results[label] = m | {"method": method, "similarity": similarity}

    folders = peft_folders()
    steps = {m: steps_of(m) for m in folders}
    steps = {m: s for m, s in steps.items() if s}
    for method, method_steps in steps.items():
        step = MAIN_STEP if MAIN_STEP in method_steps else method_steps[-1]
        for sim in SIMILARITIES:
            add(f"{folders[method]} [{method}] step {step}, {sim}",
                [embedding_scorer(method, f"step-{step}", sd, sim) for sd in seeds_of(method)], method, sim)
    from taskemb_hub.default_registry import default_registry_path

    packaged = {p.name: TaskEmbedding.load(p) for p in default_registry_path().iterdir() if p.is_dir()}
    for sim in SIMILARITIES:
        add(f"packaged default registry ({next(iter(packaged.values())).method}, mean head, step 100), {sim}",
            [embedding_scorer(None, None, None, sim, packaged)])
    for base, label in BASELINES.items():
        for sim in SIMILARITIES:
            add(f"{label} [{base}], {sim}", [embedding_scorer(base, "final", sd, sim) for sd in seeds_of(base)], base, sim)
    # exploratory: does the text block add what the weight block misses? (sum of the two centred cosines =
    # centred-cosine of the concatenated unit vectors, up to a constant)
    text = load_embeddings("textemb", 0, "final")
    add(HYBRID, [hybrid_scorer(load_embeddings(DEFAULT_METHOD, sd, f"step-{MAIN_STEP}"), text)
                 for sd in seeds_of(DEFAULT_METHOD)], f"{DEFAULT_METHOD}+textemb", "centered")
    add(DATASIZE, [datasize_scorer(manifest)])
    add("measured transfer at the other ground-truth seeds (noise ceiling)", [other_seed_scorer(complete)])
    add(RANDOM, random_scorers(), collapse=True)
    results |= peer_results(complete, mean_rows)

    pools = pool_comparison(rankers(folders, steps, manifest), complete)
    test_rows = {t: min(manifest[t]["sizes"]["test"], 1000) for t in SOURCES}
    regimes = {"limited": regime_scores(complete, seed_rows, steps, test_rows,
                                        {k: results[k] for k in (ESM_LOGME, LOGME) if k in results},
                                        results[RANDOM], results[CEILING], _row_of(results, DEFAULT_METHOD, "cosine")[1])}
    small = RESULTS / SMALL_FILE
    if small.is_file():
        small_runs = [r for r in load_runs(small) if r.get("recipe", {}).get("target_train_examples") == SMALL_ROWS]
        _, s_complete, s_seed_rows, s_mean = load_matrix(small_runs, SOURCES)
        regimes["small"] = regime_scores(s_complete, s_seed_rows, steps, test_rows, peer_results(s_complete, s_mean),
                                         evaluate_scorers(random_scorers(), s_complete, None, SOURCES, collapse=True),
                                         evaluate_scorers([other_seed_scorer(s_complete)], s_complete, None, SOURCES),
                                         evaluate_scorers([embedding_scorer(DEFAULT_METHOD, f"step-{MAIN_STEP}", sd, "cosine")
                                                           for sd in seeds_of(DEFAULT_METHOD)], s_complete, None, SOURCES),
                                         small_target_families())

    # early-checkpoint curve and the in-task metric vs ranking quality, on the first 10 tasks as sources and
    # targets: the 200- and 500-step schedules were run for those 10 only, and every row is then scored alike
    first_rows = {k: v for k, v in complete.items() if k[0] in FIRST_POOL}
    curve = defaultdict(dict)
    curve_targets = {}  # method -> targets its curve is scored on (rows differ: compare within a row)
    points = defaultdict(list)  # method -> (in-task metric, NDCG, target)
    for method, method_steps in steps.items():
        for step in method_steps:
            per_seed = []
            for sd in seeds_of(method):
                embs = load_embeddings(method, sd, f"step-{step}")
                m = evaluate_method(embedding_scorer(method, f"step-{step}", sd, "cosine", embs), first_rows, FIRST_POOL)
                if not m:
                    continue
                per_seed.append(m)
                points[method] += [(next(iter(embs[t].metrics.values())), r["ndcg"], t)
                                   for t, r in m["rows"].items() if embs[t].metrics]
            if per_seed:
                merged = merge_runs(per_seed)
                curve[method][step] = merged["ndcg"]
                curve_targets[method] = merged["targets"]

    headline, headline_figures = regime_sections(regimes)
    compare, compare_figures = compare_block(results, headline_figures)
    headline += ["## Side by side with hf-dataset-selector", "",
                 "ESM-LogME and LogME: `benchmarks/peer_rankers.py` (hfselect's own ESM trainer and LogME on the ground "
                 "truth's seed-0 source models, recreated with the runner's `source_body`; its `check` command compares the "
                 "pipeline with hfselect's `compute_scores`, `results/peer_check.json`).", "", compare]
    write_report(cells, complete, seed_rows, mean_rows, run_devices(runs), results, list(steps), curve, points, index,
                 test_rows, curve_targets, pools, headline)
    bench, bench_figures = benchmark_table()
    evidence, evidence_figures = readme_evidence(results, curve, curve_targets, checkpoint_correlations(points), pools, runs)
    evidence = headline_block(headline_figures) + evidence
    write_readme({"benchmarks": bench, "evidence": evidence, "compare": compare},
                 {"benchmarks": bench_figures, "evidence": evidence_figures, "compare": compare_figures,
                  "headline": headline_figures})


def rankers(folders, steps, manifest):
    """Seed-0 scorers of every method that has a vector for all 16 classification tasks: label -> scorer."""
    found = {}
    for method in list(steps) + list(BASELINES):
        step = "final" if method in BASELINES else f"step-{MAIN_STEP if MAIN_STEP in steps[method] else steps[method][-1]}"
        embs = load_embeddings(method, 0, step)
        if all(t in embs for t in SOURCES):
            for sim in SIMILARITIES:
                found[f"{folders.get(method) or BASELINES[method]} [{method}], {sim}"] = embedding_scorer(method, step, 0, sim, embs)
    weights, text = load_embeddings(DEFAULT_METHOD, 0, f"step-{MAIN_STEP}"), load_embeddings("textemb", 0, "final")
    if all(t in weights and t in text for t in SOURCES):
        found[HYBRID] = hybrid_scorer(weights, text)
    found[DATASIZE] = datasize_scorer(manifest)
    return found


def pool_comparison(scorers, complete):
    """Each method ranking (a) only the first 10 tasks as sources and (b) all 15 others, on the same rows."""
    pools = {"core10": FIRST_POOL, "all 15": SOURCES}
    table = {}
    # each candidate makes its scorers afresh for each pool (the random orders draw from a new generator)
    candidates = [(label, lambda sc=scorer: [sc]) for label, scorer in scorers.items()] + [(RANDOM, random_scorers)]
    for label, make_scorers in candidates:
        runs = {name: merged_evaluation(make_scorers(), complete, pool) for name, pool in pools.items()}
        if all(runs.values()):
            table[label] = runs
    return table


def merged_evaluation(scorers, rows, pool) -> dict | None:
    """`evaluate_method` of each scorer on the same rows, merged (None when none scored a row)."""
    runs = [m for m in (evaluate_method(sc, rows, pool) for sc in scorers) if m]
    return merge_runs(runs) if runs else None


# ---- out of sample: every choice made leave-one-target-out (helpers in out_of_sample.py) ----------------------
COMBINE_WEIGHTS = (0.25, 0.5, 0.75)  # weight of our similarity's rank; 0 and 1 (either ranker alone) are candidates too
OOS_KEYS = ("ndcg", "ndcg_peer_gain", "ndcg_shifted", "rho", "regret@1", "regret@3", "regret@5", "spearman")
ESM_LOGME, LOGME = "ESM-LogME (hf-dataset-selector)", "LogME of the fine-tuned source model"
PRIOR, PRIOR_STRICT = "source prior (mean gain on the other targets)", "source prior, other ground-truth seeds only"


def peer_results(complete, mean_rows) -> dict[str, dict]:
    """ESM-LogME and LogME (`peer_rankers.py`'s scores) scored like every other ranker; a target lacking the
    peer's score for any of its sources is left out (LogME covers only the targets it was run on)."""
    import peer_rankers

    if not peer_rankers.SCORES.is_file():
        return {}
    found = {}
    for method, label in ((m, peer_rankers.PEER_LABELS[m]) for m in peer_rankers.METHODS):
        m = evaluate_scorers([peer_rankers.peer_scorer(method, peer_rankers.ROWS)], complete, mean_rows, SOURCES)
        if m:
            found[label] = m | {"method": method, "similarity": None}
    return found


def memo(scorer):
    """A scorer that computes each (target, sources, seed) once (the prior is read by many combinations)."""
    seen = {}
    return lambda target, sources, seed: seen.setdefault((target, tuple(sources), seed), scorer(target, sources, seed))


def regime_scores(complete, seed_rows, steps, test_rows, peers, random_row, ceiling_row, shipped, extra=None) -> dict:
    """Everything the out-of-sample sections need for one ground truth (a regime)."""
    import out_of_sample as oos

    return {"oos": out_of_sample(complete, steps, peers, extra), "random": random_row, "ceiling": ceiling_row,
            "shipped": shipped, "beats": oos.sources_beating_base(seed_rows, test_rows, SOURCES),
            "beats_by_noise": oos.sources_beating_base_by_seed_noise(seed_rows, SOURCES),
            "targets": len({t for t, _ in complete}), "rows": len(complete), "own_targets": own_targets(),
            "seeds": sorted({sd for _, sd in seed_rows}),
            "cells": {sd: sum(len(r) for (t, s), r in seed_rows.items() if s == sd) for sd in sorted({s for _, s in seed_rows})}}


def cross_scorer(source_embs: dict, target_embs: dict, similarity: str):
    """Sources from one embedding folder, the target from another (e.g. a target embedded from fewer rows)."""
    def scorer(target, sources, _seed):
        if target not in target_embs:
            return None
        return score_sources({s: source_embs[s] for s in sources if s in source_embs} | {target: target_embs[target]},
                             target, sources, similarity)
    return scorer


def own_targets() -> list[str]:
    """Targets with a vector embedded from the small regime's rows (`<default method>-rows200`)."""
    return sorted(load_embeddings(f"{DEFAULT_METHOD}-rows{SMALL_ROWS}", 0, f"step-{MAIN_STEP}"))


def small_target_families() -> dict[str, dict[str, list]]:
    """The small regime's own ranker: BitFit sources (1,000 rows) against a target embedded from its 200 rows
    (`embed_tasks.py --train-examples 200`, folder `<method>-rows200`), when those target vectors exist."""
    folder = f"{DEFAULT_METHOD}-rows{SMALL_ROWS}"
    targets = load_embeddings(folder, 0, f"step-{MAIN_STEP}")
    if not targets:
        return {}
    sources = load_embeddings(DEFAULT_METHOD, 0, f"step-{MAIN_STEP}")
    return {f"ours, target embedded from its {SMALL_ROWS} rows ({DEFAULT_METHOD} step {MAIN_STEP}, seed 0): similarity":
            {f"{folder} target, {sim}": [cross_scorer(sources, targets, sim)] for sim in SIMILARITIES}}


def out_of_sample(complete, steps, fixed: dict[str, dict], extra: dict[str, dict[str, list]] | None = None) -> dict:
    """Families of rankers whose choices are made leave-one-target-out, and fixed rankers beside them.

    Args:
        complete: the scored ground-truth rows of a regime.
        steps: PEFT folder -> checkpoint steps embedded (`steps_of`).
        fixed: label -> an `evaluate_scorers` result on the same rows for rankers without choices (random, the
            noise ceiling, the peers).

        extra: more families, name -> {candidate label -> scorers (one per embedding seed)}.

    Returns:
        {"families": name -> {"rows", "chosen", "chosen_counts", "in_sample", "candidates", metric means},
        "fixed": label -> result, "configs": the embedding configurations, "all_candidates": label -> result}.
    """
    import out_of_sample as oos

    def evaluate(scorers):
        return evaluate_scorers(scorers, complete, None, SOURCES)

    n_targets = len({t for t, _ in complete})
    methods = [m for m in steps if not old_sketch(m)]  # the first, biased LoRA sketch is no longer an option

    def full(m):
        return m is not None and m["targets"] == n_targets

    configs = {}  # (method, step, similarity) -> result, every embedding seed merged
    for method in methods:
        for step in steps[method]:
            for sim in SIMILARITIES:
                m = evaluate([embedding_scorer(method, f"step-{step}", sd, sim) for sd in seeds_of(method)])
                if full(m):
                    configs[f"{method} step {step}, {sim}"] = m
    main = {label: m for label, m in configs.items() if f" step {MAIN_STEP}," in label}
    prior, strict = memo(oos.prior_scorer(complete)), oos.prior_scorer(complete, strict=True)
    fixed = dict(fixed) | {PRIOR: evaluate([prior]), PRIOR_STRICT: evaluate([strict])}
    ensembles = {}
    for method in methods:
        seeds = [sd for sd in seeds_of(method) if load_embeddings(method, sd, f"step-{MAIN_STEP}")]
        for sim in SIMILARITIES:
            if len(seeds) > 1 and full(m := evaluate([oos.ensemble([embedding_scorer(method, f"step-{MAIN_STEP}", sd, sim)
                                                                      for sd in seeds])])):
                ensembles[f"{method} step {MAIN_STEP}, {sim}, mean of {len(seeds)} seeds' similarities"] = m
    combos = {}
    others = {"source prior": prior}
    if full(fixed.get(ESM_LOGME)):
        import peer_rankers

        others["ESM-LogME"] = memo(peer_rankers.peer_scorer("esm-logme", peer_rankers.ROWS))
    for other, other_scorer in others.items():
        combos[other] = {f"{other} alone": fixed[PRIOR if other == "source prior" else ESM_LOGME]} | dict(main)
        for label in main:
            method, rest = label.split(" step ")
            sim = rest.split(", ")[1]
            for w in COMBINE_WEIGHTS:
                m = evaluate([oos.rank_average(embedding_scorer(method, f"step-{MAIN_STEP}", sd, sim), other_scorer, w)
                              for sd in seeds_of(method)])
                if full(m):
                    combos[other][f"{label} ranks × {w} + {other} ranks × {1 - w}"] = m
    textemb = {f"textemb, {sim}": evaluate([embedding_scorer("textemb", "final", sd, sim) for sd in seeds_of("textemb")])
               for sim in SIMILARITIES}
    taskemb = {f"taskemb, {sim}": evaluate([embedding_scorer("taskemb", "final", sd, sim) for sd in seeds_of("taskemb")])
               for sim in SIMILARITIES}
    everything = dict(configs) | ensembles | {PRIOR: fixed[PRIOR]} | {
        k: v for c in combos.values() for k, v in c.items() if k != "ESM-LogME alone"}  # ours, alone or combined
    candidates = {
        "ours: an embedding (method, similarity, step; the mean-pooling head fixed earlier, in sample)": configs,
        "TextEmb (Vu et al. 2020): similarity": {k: v for k, v in textemb.items() if full(v)},
        "TaskEmb (Vu et al. 2020): similarity": {k: v for k, v in taskemb.items() if full(v)},
        "ours: mean similarity over embedding seeds (method, similarity)": ensembles,
        **{f"ours + {other}, rank average (method, similarity, weight)": c for other, c in combos.items()},
        "all the candidates above pooled (embeddings, seed means, the prior, rank averages)": everything,
        **{name: {label: m for label, scorers in cands.items() if full(m := evaluate(scorers))}
           for name, cands in (extra or {}).items()},
    }
    families = {}
    for name, cands in candidates.items():
        if not cands:
            continue
        rows_of = {label: m["rows"] for label, m in cands.items()}
        rows, chosen = oos.loto_select(rows_of)
        best = oos.in_sample_best(rows_of)
        counts = defaultdict(int)
        for label in chosen.values():
            counts[label] += 1
        families[name] = summarize(rows) | {"chosen": chosen, "chosen_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                                            "in_sample": {"label": best, **{k: cands[best][k] for k in OOS_KEYS}},
                                            "candidates": len(cands)}
    return {"families": families, "fixed": fixed, "configs": configs,
            "all_candidates": {label: m for cands in candidates.values() for label, m in cands.items()}}


def normalised_scores(table: dict[str, dict], random_row: dict, ceiling_row: dict, key: str = "ndcg") -> dict[str, float]:
    """(NDCG − random) / (noise ceiling − random) of each result, all three averaged over the same targets: those
    where the noise ceiling is measured (a target with more than one ground-truth seed) and `key` is defined."""
    import out_of_sample as oos

    out = {}
    for label, m in table.items():
        shared = [t for t in ceiling_row["rows"] if t in m["rows"] and t in random_row["rows"]
                  and all(r["rows"][t][key] == r["rows"][t][key] for r in (m, random_row, ceiling_row))]
        if shared:
            mean = lambda r: float(np.mean([r["rows"][t][key] for t in shared]))  # noqa: E731
            out[label] = oos.normalised(mean(m), mean(random_row), mean(ceiling_row))
    return out


OURS, TEXTEMB_FAMILY, EVERYTHING = ("ours: an embedding (method, similarity, step; the mean-pooling head fixed earlier, in sample)",
                                    "TextEmb (Vu et al. 2020): similarity",
                                    "all the candidates above pooled (embeddings, seed means, the prior, rank averages)")
SHIPPED = (f"the previous default ({DEFAULT_METHOD} step {MAIN_STEP}, cosine; chosen on these targets earlier), "
           "expected over 2 embedding seeds")


def headline_pairs(families: dict, fixed: dict) -> list[tuple[str, str]]:
    """(a, b) pairs for the out-of-sample paired table: our choices against each baseline and peer."""
    every = (ESM_LOGME, LOGME, TEXTEMB_FAMILY, "TaskEmb (Vu et al. 2020): similarity")
    wanted = [(OURS, every), (EVERYTHING, (ESM_LOGME, TEXTEMB_FAMILY)), (SHIPPED, (ESM_LOGME, TEXTEMB_FAMILY)),
              (PRIOR, (ESM_LOGME,))] + [(f, (ESM_LOGME,)) for f in families if f.startswith("ours + ")] + [
        (f, (ESM_LOGME, TEXTEMB_FAMILY)) for f in families if f.startswith("ours, target embedded")]
    return [(a, b) for a, bs in wanted for b in bs if (a in families or a in fixed) and (b in families or b in fixed)]


def out_of_sample_section(oos_result: dict, random_row: dict, ceiling_row: dict, shipped: dict | None,
                          beats: dict, n_targets: int, title: str, intro: bool = True,
                          beats_by_noise: tuple | None = None) -> tuple[list[str], dict]:
    """RESULTS.md's out-of-sample section of one regime (tables + notes) and the figures it quotes."""
    families, fixed = oos_result["families"], dict(oos_result["fixed"])
    if shipped:
        fixed[SHIPPED] = shipped
    fixed |= {RANDOM: random_row, CEILING: ceiling_row}
    table = {**families, **fixed}
    norm_out = normalised_scores(table, random_row, ceiling_row)
    norm_in = normalised_scores({n: oos_result["all_candidates"][f["in_sample"]["label"]] for n, f in families.items()},
                                random_row, ceiling_row)
    lines = [title, ""] + ([
             "Every choice a ranker has here (embedding method, similarity, checkpoint step, a combination's",
             "weight) is made **leave-one-target-out**: for each target, the candidate with the best mean NDCG over the",
             f"other {n_targets - 1} targets is chosen, and the target is scored with it (`benchmarks/out_of_sample.py`). The",
             "`in sample` columns give the best candidate on all the targets at once, the way earlier versions of this",
             "report picked the default: the gap between the two is what choosing on the scored targets flattered.",
             "Rankers without a choice (the peers, the source prior, random, the noise ceiling) have one figure. Each",
             "ground-truth seed is scored separately (where the noise ceiling is measured), averaged per target, then",
             "over targets. Normalised = (NDCG − random) / (noise ceiling − random) on the targets where all three are",
             "defined. `NDCG peer gain` = NDCG with hf-dataset-selector's gain 2^(100·accuracy) − 1, which rewards the",
             "best one or two sources only. Regret@k in % of the best source's accuracy. The source prior ranks by",
             "each source's mean clipped relative gain on the other targets (the target's own row is never read); it",
             "needs the transfer matrix among the registry's tasks, which a registry does not have today.", ""]
             if intro else ["Choices, columns and rows as in the headline above.", ""]) + [
             "| ranker (choices made leave-one-target-out) | candidates | NDCG | normalised | NDCG in sample | normalised in sample | "
             "NDCG peer gain | ρ | Regret@1 | Regret@3 | Regret@5 | targets | chosen most often (folds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    figs = {"families": {}, "fixed": {}, "pairs": {}, "beats_base_2se": beats}
    if beats_by_noise is not None:
        figs["beats_base_seed_noise"] = {"targets": beats_by_noise[0], "expected_by_noise": round(beats_by_noise[1], 1)}
    for name, f in sorted(table.items(), key=lambda kv: -(kv[1]["ndcg"] if kv[1]["ndcg"] == kv[1]["ndcg"] else -1)):
        is_family = name in families
        ins = f["in_sample"] if is_family else None
        top = next(iter(f["chosen_counts"].items())) if is_family else None
        folds = len(f["chosen"]) if is_family else 0
        lines.append(f"| {name} | {f['candidates'] if is_family else '–'} | {fmt(f['ndcg'])} | {fmt(norm_out.get(name, float('nan')), '.2f')} | "
                     f"{fmt(ins['ndcg']) if ins else '–'} | {fmt(norm_in.get(name, float('nan')), '.2f') if ins else '–'} | "
                     f"{fmt(f['ndcg_peer_gain'])} | {fmt(f['rho'], '.2f')} | {fmt(f['regret@1'], '.2f')} | "
                     f"{fmt(f['regret@3'], '.2f')} | {fmt(f['regret@5'], '.2f')} | {f['targets']} | "
                     + (f"{top[0]} ({top[1]}/{folds})" if top else "–") + " |")
        entry = {k: f[k] for k in OOS_KEYS} | {"targets": f["targets"], "normalised": norm_out.get(name, float("nan"))}
        if is_family:
            entry |= {"candidates": f["candidates"], "chosen_counts": f["chosen_counts"], "in_sample": ins,
                      "normalised_in_sample": norm_in.get(name, float("nan"))}
            figs["families"][name] = entry
        else:
            figs["fixed"][name] = entry
    lines += ["", "Paired over targets, out of sample (a − b; ± paired SE; W/T/L = targets where a is better / tied / worse;",
              "for ρ and Regret negative = a better). A margin beyond about 2 paired SE is unlikely to be target-sampling luck.", "",
              "| a | b | targets | ΔNDCG | W/T/L | ΔNDCG peer gain | Δρ | ΔRegret@1 | ΔRegret@3 | ΔRegret@5 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for a, b in headline_pairs(families, fixed):
        ps = {k: _paired(table, a, b, key=k) for k in ("ndcg", "ndcg_peer_gain", "rho", "regret@1", "regret@3", "regret@5")}
        figs["pairs"][f"{a} minus {b}"] = ps
        lines.append(f"| {a} | {b} | {ps['ndcg']['targets']} | {_pm(ps['ndcg'])} | {'/'.join(map(str, ps['ndcg']['wtl']))} | "
                     + " | ".join(_pm(ps[k]) for k in ("ndcg_peer_gain", "rho", "regret@1", "regret@3", "regret@5")) + " |")
    lines += ["", f"Targets whose best source (seed-mean) beats base (seed-mean) by more than 2 binomial SE of one accuracy "
              f"(√(p(1−p)/n) at base's accuracy on the target's test rows): {len(beats)} of {n_targets}"
              + (" (" + ", ".join(f"{t}: {v['best']} +{100 * v['margin']:.1f} points, SE {100 * v['se']:.1f}" for t, v in beats.items()) + ")" if beats else "")
              + ". That SE counts only the test rows' sampling; the best of 15 is a maximum, and the seeds' own "
              "spread is larger (next line)."]
    if beats_by_noise is not None:
        found, expected = beats_by_noise
        lines += ["", f"Against the measured seed-to-seed noise (pooled within-cell variance over the ground-truth seeds; "
                      f"SE of best − base = σ√(2/seeds)): {len(found)} of {n_targets} targets have a source beating base by "
                      f"more than 2 SE" + (" (" + ", ".join(f"{t}: {v['best']} +{100 * v['margin']:.1f} points, SE "
                                                             f"{100 * v['se']:.1f}" for t, v in found.items()) + ")" if found else "")
                  + f"; with every cell equal in truth, about {expected:.1f} of {n_targets} would pass by noise alone "
                    "(the best of 15 noisy sources; simulated)."]
    lines += [""]
    return lines, figs


SMALL_FILE = "transfer_small.jsonl"
SMALL_ROWS = 200


def regime_sections(regimes: dict) -> tuple[list[str], dict]:
    """RESULTS.md's headline (the limited regime, out of sample) and the small regime's section, with figures."""
    limited = regimes["limited"]
    lines, figs = out_of_sample_section(limited["oos"], limited["random"], limited["ceiling"], limited["shipped"],
                                        limited["beats"], limited["targets"],
                                        "## Headline: chosen out of sample (limited regime, 1,000 target rows)",
                                        beats_by_noise=limited.get("beats_by_noise"))
    figures = {"limited": figs}
    small = regimes.get("small")
    lines += [f"## Small regime ({SMALL_ROWS} target training rows)", ""]
    if small is None:
        lines += [f"Not measured: `benchmarks/results/{SMALL_FILE}` does not exist (GPU work: `taskemb-hub transfer-matrix "
                  f"--tasks classification16 --seeds 0,1,2 --target-train-examples {SMALL_ROWS} --results "
                  f"benchmarks/results/{SMALL_FILE}`; the sources keep 1,000 rows).", ""]
        figures["small"] = None
        return lines, figures
    expected = len(SOURCES) * len(SOURCES)  # per seed: base + 15 sources for each of the 16 targets
    lines += [f"Ground truth `benchmarks/results/{SMALL_FILE}`: the same 16 tasks and sources, each target fine-tuned on "
              f"{SMALL_ROWS} training rows. Cells per seed: "
              + ", ".join(f"seed {sd} {n} of {expected}" for sd, n in small["cells"].items())
              + f"; {small['rows']} (target, seed) rows scored.",
              f"Seeds: {', '.join(map(str, small['seeds']))} (the limited regime above has seeds "
              f"{', '.join(map(str, regimes['limited']['seeds']))}; its seeds 3 and 4 were not run).",
              f"A user with {SMALL_ROWS} rows embeds the target from those rows. "
              + (f"Only BitFit has such target vectors (`{DEFAULT_METHOD}-rows{SMALL_ROWS}`, seed 0, from the seed-0 subset of "
                 f"{SMALL_ROWS} rows, while ground-truth seed s tuned each target on its seed-s subset): the row "
                 f"`ours, target embedded from its {SMALL_ROWS} rows` is the small regime's own ranker. "
                 if len(small["own_targets"]) == len(SOURCES) else
                 f"Missing: target vectors embedded from {SMALL_ROWS} rows (`embed_tasks.py --train-examples {SMALL_ROWS}`)"
                 + (f"; only {len(small['own_targets'])} of {len(SOURCES)} targets have one so far, so no row is scored "
                    "with them. " if small["own_targets"] else ". "))
              + "Every other ranker below reads the target's 1,000-row embedding (ours, TextEmb, TaskEmb) or 1,000-row "
              "features (ESM-LogME, LogME): those rows measure how well the 1,000-row rankings predict the small "
              f"regime's transfer, not what a user with {SMALL_ROWS} rows would get.", ""]
    s_lines, s_figs = out_of_sample_section(small["oos"], small["random"], small["ceiling"], small["shipped"],
                                            small["beats"], small["targets"], "### Chosen out of sample (small regime)",
                                            intro=False, beats_by_noise=small.get("beats_by_noise"))
    figures["small"] = s_figs
    return lines + s_lines, figures


def pool_section(table) -> list[str]:
    lines = ["## A smaller pool: the first 10 tasks as sources", "",
             "The matrix was first measured on 10 tasks (`core10`, spanning NLI/fact-checking, sentiment, dialogue and",
             "reasoning), and earlier versions of this report ranked those 10 sources only. The same rankings (seed-0",
             "embeddings) on every scored ground-truth row, ranking only the `core10` sources, then all 15. More",
             "candidates make the task harder: a random order's ρ is (n + 1) / 2, 5–5.5 for the 9–10 `core10` sources",
             "(9 when the target is one of them) and 8 for 15, so compare each row with the Random row.", ""]
    if not table:
        return lines
    lines += ["`± targets` = standard error of the 15-pool NDCG mean over targets.", "",
              "| method | NDCG core10 pool | NDCG 15 pool | ± targets | ρ core10 pool | ρ 15 pool | Regret@3 core10 | Regret@3 15 | targets |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, runs in sorted(table.items(), key=lambda kv: -kv[1]["all 15"]["ndcg"] if kv[1]["all 15"]["ndcg"] == kv[1]["all 15"]["ndcg"] else 1):
        a, b = runs["core10"], runs["all 15"]
        lines.append(f"| {label} | {fmt(a['ndcg'])} | {fmt(b['ndcg'])} | {fmt(ndcg_se(b))} | {fmt(a['rho'], '.2f')} | {fmt(b['rho'], '.2f')} | "
                     f"{fmt(a['regret@3'], '.2f')} | {fmt(b['regret@3'], '.2f')} | {b['targets']} |")
    return lines + [""]


def fmt(x, spec=".3f"):
    return "–" if x != x else format(x, spec)


def write_report(cells, complete, seed_rows, mean_rows, devices, results, peft_methods, curve, points, index,
                 test_rows, curve_targets, pools, regimes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = targets = SOURCES
    lines = ["# Does the ranking predict transfer?", "",
             "Generated by `python benchmarks/report.py` from the files in `benchmarks/results/`; do not edit by hand.", ""]
    lines += regimes
    lines += ["## Ground truth: measured transfer (limited regime)", "",
             "Full fine-tuning of the packaged all-MiniLM-L6-v2 (`taskemb-hub transfer-matrix`): 1,000 train examples per task,",
             "2 epochs on the source, then 2 epochs on the target, lr 1e-4, batch 16, 128 tokens; the target's test accuracy",
             "(≤1,000 test rows). `base` = the target fine-tuned from the plain base model.",
             f"Tasks: the {len(tasks)} classification tasks of the suite ({', '.join(tasks)}); each is a target, ranked over",
             "the other 15 as sources. Runs were made on 2 CPU cores and, when a GPU machine was lent, on one H100",
             "(`taskemb-hub transfer-matrix --workers K --deadline S` from a shell script, several workers sharing the card);",
             "the device of each run is in its line.", ""]
    expected = {(s, t) for t in targets for s in [BASE] + [x for x in tasks if x != t]}
    for seed in sorted({seed for _, seed in seed_rows}):
        measured = {(s, t) for (t, sd), row in seed_rows.items() if sd == seed for s in row} & expected
        rows = sorted(t for (t, sd) in complete if sd == seed)
        partial = [f"{t} ({len(row) - (BASE in row)} sources{'' if BASE in row else ', no base'}"
                   f"{'' if ranks_something(row) else ', every source tied'})"
                   for (t, sd), row in sorted(seed_rows.items()) if sd == seed and (t, sd) not in complete]
        lines.append(f"- seed {seed}: {len(measured)} of {len(expected)} cells "
                     f"({', '.join(f'{n} on {d}' for d, n in sorted(devices[seed].items()))}); target rows scored "
                     f"(base + at least {MIN_SOURCES} sources, not all tied): {len(rows)}"
                     + (f"; not scored: {', '.join(partial)}" if partial else "") + ".")
    lines += ["", f"Seed-mean rows (each cell averaged over the seeds; the least noisy ground truth): {len(mean_rows)} targets.",
              "The table pools the seeds (mean over the seeds measured); `missing` = cells measured at no seed.", ""]
    lines += ["`SE` = binomial standard error of one accuracy on the target's test rows, √(p(1−p)/n): a source whose",
              "gain is under about 2·SE (or 2.8·SE for a difference of two runs) is within test noise at one seed.", "",
              "| target | test rows | base | SE | sources measured | sources that help | best source (score) | worst source (score) | missing |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in targets:
        have = {s: np.mean(cells[(s, t)]) for s in tasks if s != t and (s, t) in cells}
        base = np.mean(cells[(BASE, t)]) if (BASE, t) in cells else None
        missing = ([] if base is not None else [BASE]) + [s for s in tasks if s != t and s not in have]
        best = max(have, key=have.get) if have else None
        worst = min(have, key=have.get) if have else None
        helps = sum(v > base for v in have.values()) if base is not None else 0
        se = (base * (1 - base) / test_rows[t]) ** 0.5 if base is not None else float("nan")
        lines.append(f"| {t} | {test_rows[t]} | {fmt(base) if base is not None else 'missing'} | {fmt(se)} | "
                     f"{len(have)}/{len(tasks) - 1} | {helps} | "
                     + (f"{best} ({have[best]:.3f}) | {worst} ({have[worst]:.3f})" if have else " | ")
                     + f" | {', '.join(missing) if missing else '–'} |")
    lines.append("")

    lines += seed_agreement(tasks, targets, seed_rows)
    lines += device_check(seed_rows)

    lines += ["## Rankings against the ground truth", "",
              "Per target, the sources are ranked by the similarity of their embedding to the target's (cosine, or cosine",
              "after centring on the sources' mean), then scored against the measured row (`taskemb_hub/ranking_metrics.py`):",
              "**NDCG** with gain = relative transfer gain (p(s→t) − p(t)) / p(t), negatives clipped to 0 (a target where no",
              "source helps has no NDCG and is left out); **NDCG shifted** with gain = p(s→t) − min_s p(s→t) (defined on every",
              "target); **ρ** = predicted rank of the truly best source (1 = perfect); **Regret@3** in %; **Spearman** between",
              "similarity and p(s→t). Means over the scored targets; `± targets` = standard error of the NDCG mean over",
              "targets (how much the figure would move with other targets); `seed sd` = NDCG spread over embedding seeds;",
              "`GT seed sd` = spread of the NDCG computed against one ground-truth seed at a time.",
              "Each ground-truth seed is its own row (a target's metrics are averaged over its seeds, then targets are",
              "averaged); the `seed-mean truth` columns score the same rankings against the matrix averaged over seeds.",
              "The noise-ceiling row ranks each seed's row with the mean of the other seeds' measurements: no embedding",
              "can be expected to beat it by much, since it is what one more measurement of the same cells gives.", "",
              "| method | NDCG | ± targets | NDCG shifted | ρ | Regret@3 | Spearman | NDCG, seed-mean truth | ρ, seed-mean truth | targets | seeds | seed sd | GT seed sd |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(results.items(), key=lambda kv: -(kv[1]["ndcg"] if kv[1]["ndcg"] == kv[1]["ndcg"] else -1))
    for name, m in order:
        on_mean = m["on_mean"] or {"ndcg": float("nan"), "rho": float("nan")}
        lines.append(f"| {name} | {fmt(m['ndcg'])} | {fmt(ndcg_se(m))} | {fmt(m['ndcg_shifted'])} | {fmt(m['rho'], '.2f')} | "
                     f"{fmt(m['regret@3'], '.2f')} | {fmt(m['spearman'])} | {fmt(on_mean['ndcg'])} | {fmt(on_mean['rho'], '.2f')} | "
                     f"{m['targets']:.0f} | {m['seeds']} | {fmt(m['ndcg_sd'])} | {fmt(m['gt_seed_sd'])} |")
    if not results:
        lines.append("| (no complete target row yet) | | | | | | | | | | | | |")
    lines.append("")
    scored = sorted({t for m in results.values() for t in m["rows"]})
    if scored:
        lines += ["### NDCG per target", "", "| method | " + " | ".join(scored) + " |", "|---|" + "---|" * len(scored)]
        for name, m in order:
            if "centered" in name:
                continue
            lines.append(f"| {name.replace(', cosine', '')} | " + " | ".join(fmt(m['rows'].get(t, {}).get('ndcg', float('nan')))
                                                                    for t in scored) + " |")
        lines += ["", "(cosine rows; `–` = no source improved on base for that target, so its NDCG is undefined)", ""]

    lines += paired_comparison(results, peft_methods)
    lines += pool_section(pools)

    if curve:
        all_steps = sorted({s for p in curve.values() for s in p})
        plt.figure(figsize=(6.5, 4))
        for method, pts in curve.items():
            xs = sorted(pts)
            plt.plot(xs, [pts[x] for x in xs], marker="o", label=method)
        plt.xscale("log"); plt.xlabel("checkpoint step"); plt.ylabel("NDCG (cosine)"); plt.legend(fontsize=7)
        plt.tight_layout(); plt.savefig(HERE / "results" / "early_checkpoints.png", dpi=120); plt.close()
        lines += ["## Early checkpoints", "",
                  "NDCG (cosine) of the embedding taken at each checkpoint of one tuning run (`embed_tasks.py`), on the first",
                  "10 tasks (`core10`) as sources and targets, since the 200- and 500-step schedules were run for those 10",
                  "only (so the figures differ from the 15-source tables above; every row is scored on the same rows). A plain row is",
                  "the 100-step schedule that the packaged registry and `AutoSourceSelector` use; `@200` / `@500` rows are runs",
                  "whose learning-rate schedule ends at step 200 / 500 (so their step 100 is a different checkpoint). The last",
                  "column of each row is the end of its run. Mean over the embedding seeds measured.", "", "![NDCG by checkpoint](results/early_checkpoints.png)", "",
                  "`targets` = the targets a row is scored on: rows with fewer targets are not comparable with the others.",
                  "`run on` = where its embedding runs were made (CPU, or the lent H100: same code and seeds, other numerics).", "",
                  "| method | targets | run on | " + " | ".join(str(s) for s in all_steps) + " |", "|---|---|---|" + "---|" * len(all_steps)]
        run_on = defaultdict(set)
        for r in index:
            where = {"cuda": "H100"}.get(r.get("device"), "CPU")
            run_on[r["method"]].add(where)
            if r["method"].startswith("prompt"):  # the SPoT-style vectors come from the prompt-tuning runs
                run_on[r["method"].replace("prompt", "spot", 1)].add(where)
        for method, pts in curve.items():
            lines.append(f"| {tagged(method)} | {curve_targets[method]} | {' + '.join(sorted(run_on[method])) or '–'} | "
                         + " | ".join(fmt(pts[s]) if s in pts else "" for s in all_steps) + " |")
        lines.append("")

    if points:
        lines += ["## In-task metric vs ranking quality", "",
                  "The paper's claim that the embedding's value is not just how well the task was learned: Spearman between a",
                  "checkpoint's in-task accuracy (held-out validation rows) and the NDCG of the ranking its embedding gives,",
                  "over every (step, target) point of a method.", "",
                  "| method | Spearman(in-task accuracy, NDCG) | points |", "|---|---|---|"]
        corr = checkpoint_correlations(points)
        for method, (rho, n) in corr["methods"].items():
            lines.append(f"| {tagged(method)} | {fmt(rho)} | {n} |")
        lines += [f"| all methods pooled | {fmt(corr['pooled'])} | {corr['points']} |",
                  f"| all methods, within each target (mean of {corr['within_targets']} per-target correlations) | "
                  f"{fmt(corr['within'])} | {corr['points']} |", "",
                  "Targets differ in how learnable they are, so the pooled figure mixes target difficulty with ranking",
                  "quality; the within-target row compares checkpoints of the same target only.", ""]

    cost_file = RESULTS / "target_embedding_cost.json"
    uncontended = {r["method"]: r for r in json.loads(cost_file.read_text())["rows"]} if cost_file.is_file() else {}
    grid = defaultdict(list)
    for r in index:
        if r.get("device", "cpu") == "cpu":  # GPU runs (a lent machine) are not comparable with the CPU column
            grid[r["method"]].append(r["seconds"])
    if grid or uncontended:
        lines += ["## Cost to embed one task", "",
                  "`alone`: `benchmarks/target_embedding_cost.py` (one target, rotten_tomatoes, from raw data to a step-100",
                  "embedding, model load included, 2 CPU cores; `load` = 1-minute load average when the row started, 0 = the",
                  "machine was otherwise idle, 2 = both cores busy with other jobs). `grid`: median over the tasks of",
                  "`embed_tasks.py` (all checkpoints of one run; 1 thread, alongside the transfer-matrix job, so only",
                  "comparable within the column). Dimension and bytes are those of the stored vector.", "",
                  "| method | seconds alone | load | peak RSS MB alone | seconds grid (median) | tasks | dimension | bytes (float32) |",
                  "|---|---|---|---|---|---|---|---|"]
        for method in sorted(set(grid) | {f"{m}+mean" for m in uncontended if m not in BASELINES} | set(BASELINES)):
            base = method.split("+")[0]
            alone = {} if "@" in method else uncontended.get(base, {})  # "alone" rows are 100-step runs
            dim = vector_dim(method) or alone.get("dim")
            if not (alone or grid.get(method)):
                continue
            lines.append(f"| {tagged(method)} | {fmt(alone.get('seconds', float('nan')), '.1f')} | "
                         f"{fmt(alone.get('load_before', float('nan')), '.1f')} | "
                         f"{fmt(alone.get('peak_rss_mb', float('nan')), '.0f')} | "
                         f"{fmt(statistics.median(grid[method]), '.1f') if grid.get(method) else '–'} | {len(grid.get(method, []))} | "
                         f"{dim if dim else '–'} | {dim * 4 if dim else '–'} |")
        lines += ["", "TaskEmb's dimension is one value per encoder weight; its committed vectors are an exact isometric",
                  "copy in the span of the tasks embedded at that seed (see `embed_tasks.py`), so its rankings here are exact.", ""]

    if complete:
        sources = tasks
        heat_panels = [("measured relative gain (p(s→t) − p(t)) / p(t), mean over seeds", gain_matrix(sources, targets, cells), "RdBu", (-0.1, 0.1))]
        for method in HEATMAP_METHODS:
            embs = load_embeddings(method, 0, f"step-{MAIN_STEP}") or load_embeddings(method, 0, "final")
            if all(t in embs for t in targets + sources):
                heat_panels.append((f"predicted: cosine of {method}", similarity_matrix(sources, targets, embs), "viridis", (None, None)))
        fig, axes = plt.subplots(1, len(heat_panels), figsize=(5.2 * len(heat_panels), 5))
        for ax, (title, mat, cmap, (lo, hi)) in zip(np.atleast_1d(axes), heat_panels):
            im = ax.imshow(mat, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks(range(len(targets)), targets, rotation=90, fontsize=7)
            ax.set_yticks(range(len(sources)), sources, fontsize=7)
            ax.set_xlabel("target"); ax.set_ylabel("source"); ax.set_title(title, fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout(); fig.savefig(HERE / "results" / "transfer_matrix.png", dpi=120); plt.close(fig)
        lines += ["## Measured transfer beside predicted similarity", "",
                  "Left: measured gain (blank = not measured). Right: the cosine each method predicts between source and "
                  "target (diagonal hidden: self-similarity is never ranked).", "", "![transfer matrix](results/transfer_matrix.png)", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def seed_agreement(tasks, targets, seed_rows) -> list[str]:
    """How far the ground-truth seeds of the same target agree (the noise the rankings are scored against)."""
    from itertools import combinations

    from scipy.stats import spearmanr

    lines = []
    for t in targets:
        rows = {sd: row for (u, sd), row in sorted(seed_rows.items()) if u == t}
        both = [s for s in tasks if s != t and all(s in row for row in rows.values())]
        if len(rows) < 2 or len(both) < 3:
            continue
        diffs, rhos = [], []
        for a, b in combinations(rows.values(), 2):
            diffs += [abs(a[s] - b[s]) for s in both]
            rho = spearmanr([a[s] for s in both], [b[s] for s in both]).statistic
            rhos.append(rho)
        best = " / ".join(max(both, key=row.get) for row in rows.values())
        bases = " / ".join(fmt(row.get(BASE, float("nan"))) for row in rows.values())
        lines.append(f"| {t} | {len(rows)} | {len(both)} | {bases} | {fmt(float(np.mean(diffs)))} | {fmt(max(diffs))} | "
                     f"{fmt(nanmean(rhos))} | {best} |")
    return table_section("### Do the ground-truth seeds agree?", [
        "Targets measured at several seeds (source fine-tune and target fine-tune both reseeded; same test rows):",
        "accuracy of base at each seed, mean and largest |difference| of a source's accuracy between two seeds,",
        "Spearman between two seeds' source scores (mean over the pairs of seeds; `–` where a seed's sources all tied),",
        "and the best source at each seed."],
        ["target", "seeds", "sources at all seeds", "base by seed", "mean abs diff", "max abs diff", "Spearman",
         "best source by seed"], lines)


def table_section(title: str, intro: list[str], columns: list[str], rows: list[str]) -> list[str]:
    """A markdown section holding one table; nothing when the table has no row."""
    if not rows:
        return []
    return [title, ""] + intro + ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + rows + [""]


def run_devices(runs: list[dict]) -> dict[int, dict[str, int]]:
    """seed -> {device: runs} for the ground truth (runs on CPU and on a lent GPU are mixed within a seed)."""
    found = defaultdict(lambda: defaultdict(int))
    for r in runs:
        found[r["seed"]][{"cuda": "an H100", "cpu": "CPU"}.get(r.get("device"), r.get("device"))] += 1
    return found


def device_check(seed_rows) -> list[str]:
    """The same cells re-run on the GPU (`transfer_device_check.jsonl`) against their CPU runs, beside the
    difference between two seeds: mixing devices in a seed matters only if the first is not far smaller."""
    from scipy.stats import spearmanr

    path = RESULTS / "transfer_device_check.jsonl"
    if not path.is_file():
        return []
    gpu = defaultdict(dict)
    for r in load_runs(path):
        gpu[(r["target"], r["seed"])][r["source"]] = r["score"]
    lines = []
    for (t, sd), row in sorted(gpu.items()):
        cpu = seed_rows.get((t, sd), {})
        shared = [s for s in row if s in cpu]
        other = [seed_rows[(t, o)] for (u, o) in seed_rows if u == t and o != sd]
        if len(shared) < 3 or not other:
            continue
        device_diff = float(np.mean([abs(row[s] - cpu[s]) for s in shared]))
        seed_diff = float(np.mean([abs(o[s] - cpu[s]) for o in other for s in shared if s in o]))
        sources = [s for s in shared if s != BASE]
        rho = spearmanr([row[s] for s in sources], [cpu[s] for s in sources]).statistic
        lines.append(f"| {t} | {sd} | {len(shared)} | {fmt(device_diff)} | {fmt(seed_diff)} | {fmt(rho)} | "
                     f"{max(sources, key=row.get)} / {max(sources, key=cpu.get)} |")
    return table_section("### Does the device matter?", [
        "Cells first run on CPU, re-run on the H100 with the same seed and recipe: mean |difference| between the",
        "two devices, beside the mean |difference| between that CPU run and the other seeds' runs of the same",
        "cells; Spearman between the two devices' source scores; best source on GPU / on CPU."],
        ["target", "seed", "cells", "mean abs diff GPU vs CPU", "mean abs diff across seeds", "Spearman GPU vs CPU",
         "best source (GPU / CPU)"], lines)


def paired_comparison(results, peft_methods) -> list[str]:
    """Each PEFT embedding (cosine) against each baseline's better similarity, target by target."""
    baselines = {b: max((n for n, m in results.items() if m["method"] == b), key=lambda n: results[n]["ndcg"], default=None)
                 for b in BASELINES}
    contenders = [n for n, m in results.items() if m["method"] in peft_methods]
    if not contenders or not all(baselines.values()):
        return []
    # the current default too, so a challenger's case for replacing it is on the same footing
    default = next((n for n in contenders if results[n]["method"] == DEFAULT_METHOD and results[n]["similarity"] == "cosine"), None)
    lines = ["### Paired against the baselines", "",
             "Per target, a PEFT embedding's NDCG (and ρ) minus the baseline's on the same target (the baseline in the",
             f"better of its two similarities; also against the current default, `{DEFAULT_METHOD}` cosine).",
             "Paired SE = sd of the differences / √targets: a difference beyond about",
             "2 paired SE is unlikely to be target-sampling luck; `W/T/L` = targets won / tied / lost. The last two",
             "columns score against the seed-mean truth instead.", "",
             "| embedding | against | ΔNDCG ± paired SE | NDCG W/T/L | Δρ ± paired SE (negative = better) | ρ W/T/L | "
             "ΔNDCG, seed-mean truth | Δρ, seed-mean truth |",
             "|---|---|---|---|---|---|---|---|"]
    def rows_of(label, truth):  # per-target metrics against each seed's row, or against the seed-mean row
        return results[label]["rows"] if truth == "rows" else results[label]["on_mean"]["rows"]

    for name in sorted(contenders, key=lambda n: -results[n]["ndcg"]):
        for base in list(baselines.values()) + ([default] if default and name != default else []):
            cells = []
            for truth, key, sign in (("rows", "ndcg", 1), ("rows", "rho", -1), ("on_mean", "ndcg", 1), ("on_mean", "rho", -1)):
                if truth == "on_mean" and not (results[name]["on_mean"] and results[base]["on_mean"]):
                    cells.append("–")
                    continue
                a = {t: r[key] for t, r in rows_of(name, truth).items()}
                b = {t: r[key] for t, r in rows_of(base, truth).items()}
                diffs = np.array([a[t] - b[t] for t in a if t in b and a[t] == a[t] and b[t] == b[t]])
                if len(diffs) < 2:
                    cells += ["–"] if truth == "on_mean" else ["–", "–"]
                    continue
                se = diffs.std(ddof=1) / np.sqrt(len(diffs))
                won, lost = int((sign * diffs > 1e-9).sum()), int((sign * diffs < -1e-9).sum())
                cells.append(f"{diffs.mean():+.3f} ± {se:.3f}")
                if truth == "rows":
                    cells.append(f"{won}/{len(diffs) - won - lost}/{lost}")
            lines.append(f"| {name} | {base} | " + " | ".join(cells) + " |")
    return lines + [""]


def gain_matrix(tasks, targets, cells):
    gain = np.full((len(tasks), len(targets)), np.nan)
    for (s, t), v in cells.items():
        if s != BASE and s in tasks and t in targets and (BASE, t) in cells:
            base = np.mean(cells[(BASE, t)])
            gain[tasks.index(s), targets.index(t)] = (np.mean(v) - base) / base
    return gain


def similarity_matrix(tasks, targets, embs):
    def unit(names):
        vectors = torch.stack([embs[t].vector.double() for t in names])
        return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)

    sims = (unit(tasks) @ unit(targets).T).numpy()
    for i, t in enumerate(tasks):  # self-similarity is 1 and never ranked; hiding it lets the colours spread
        if t in targets:
            sims[i, targets.index(t)] = np.nan
    return sims


# ---- the README's figures: generated blocks, so every figure it quotes comes from benchmarks/results -----------
README = HERE.parent / "README.md"
FIGURES_FILE = RESULTS / "readme_figures.json"
SNIPPETS = {"benchmarks": RESULTS / "readme_benchmarks.md", "evidence": RESULTS / "readme_evidence.md",
            "compare": RESULTS / "readme_compare.md",
            "dependence": RESULTS / "readme_dependence.md"}  # written by target_dependence.py
BEGIN = "<!-- BEGIN GENERATED {name}: written by benchmarks/report.py from benchmarks/results; do not edit -->"
END = "<!-- END GENERATED {name} -->"
DISPLAY = {"bitfit+mean": "BitFit (BEFT bias)", "prefix+mean": "prefix tuning (tuned − init)",
           "lora+mean": "LoRA ΔW sketch", "ia3+mean": "IA3 (l − 1)", "spot+mean": "SPoT-style (raw prompt)",
           "prompt+mean": "prompt tuning (tuned − init)", "taskemb": "TaskEmb, Fisher (Vu et al. 2020)",
           "textemb": "TextEmb (Vu et al. 2020)"}
COST_KEY = {"bitfit+mean": "bitfit", "prefix+mean": "prefix", "lora+mean": "lora", "ia3+mean": "ia3",
            "spot+mean": "prompt", "prompt+mean": "prompt", "taskemb": "taskemb", "textemb": "textemb"}
COST_NAMES = {"lora": "LoRA", "bitfit": "BitFit", "ia3": "IA3", "prompt": "prompt", "prefix": "prefix",
              "taskemb": "TaskEmb", "textemb": "TextEmb"}
CEILING = "measured transfer at the other ground-truth seeds (noise ceiling)"
LOWER_IS_BETTER = ("rho", "regret@1", "regret@3", "regret@5")


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the generated block `name` replaced by `body` (markers kept); unchanged without markers."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in text or end not in text:
        return text
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body.rstrip("\n") + "\n" + end + rest.split(end, 1)[1]


def read_block(text: str, name: str) -> str | None:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def benchmark_table() -> tuple[str, dict]:
    """The README's benchmark table, from the benchmark scripts' JSON files (cheap: a test recomputes it)."""
    figures, rows = {}, []
    thr = json.loads((RESULTS / "throughput.json").read_text())
    ours, trainer = max(thr["ours"]), max(thr["trainer"])
    spread = thr["ours"] + thr["trainer"]
    figures["throughput"] = {"ours": round(ours, 1), "trainer": round(trainer, 1), "ratio": round(thr["ratio"], 3),
                             "spread": [round(min(spread)), round(max(spread))]}
    a = thr["args"]
    rows.append(f"| tuning throughput, our Accelerate loop vs `transformers.Trainer` ({COST_NAMES.get(a['method'], a['method'])}, "
                f"{a['task']}, batch {a['batch_size']}, {a['steps']} steps, loop only, best of {a['repeats']}) | "
                f"`python benchmarks/throughput.py` | {ours:.1f} vs {trainer:.1f} examples/s (ratio {thr['ratio']:.3f}, "
                f"inside the run-to-run spread of {min(spread):.0f}–{max(spread):.0f}) |")
    cost = json.loads((RESULTS / "target_embedding_cost.json").read_text())
    by = {r["method"]: r for r in cost["rows"]}
    figures["cost_seconds"] = {m: round(r["seconds"], 1) for m, r in by.items()}
    figures["cost_peak_mb"] = {m: round(r["peak_rss_mb"]) for m, r in by.items()}
    parts = []
    for m in ("lora", "bitfit", "ia3", "prompt", "prefix", "taskemb", "textemb"):
        if m in by:
            extra = f" / {by[m]['peak_rss_mb']:,.0f} MB peak" if m in ("lora", "textemb") else ""
            parts.append(f"{COST_NAMES[m]}{' baseline' if m in BASELINES else ''} {by[m]['seconds']:.1f} s{extra}")
    rows.append(f"| time / peak RSS to a target embedding at step 100 from raw data ({cost['task']}, 1,000 rows, model "
                f"load included, {cost['machine']['cpus']} CPU cores) | `python benchmarks/target_embedding_cost.py "
                f"--methods lora,bitfit,ia3,prompt,prefix,textemb,taskemb` | {'; '.join(parts)} |")
    rows += ranking_latency_row(figures) + gpu_grid_row(figures)
    rows += hub_sync_row(figures) + space_latency_row(figures)
    table = ["| what | command | figure |", "|---|---|---|"] + rows
    return "\n".join(table) + "\n", figures


def _result_json(name: str):
    """A benchmark's results file under results/, parsed; None when that benchmark has not been run."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def ranking_latency_row(figures: dict) -> list[str]:
    """The ranking-at-scale row (`benchmarks/ranking_latency.py`): each search path beside numpy's bound."""
    data = _result_json("ranking_latency.json")
    if data is None:
        return []
    sizes = data["sizes"]
    figures["ranking_latency"], parts = {}, []
    if any(size["dim"] == BITFIT_DIM for size in sizes.values()):  # older widths stay in the JSON file only
        sizes = {key: size for key, size in sizes.items() if size["dim"] == BITFIT_DIM}
    commands = []
    for key, size in sorted(sizes.items(), key=lambda kv: (kv[1]["rows"], kv[1]["dim"])):
        kind = size.get("kind", "structured")
        flags = ("" if size["dim"] == BITFIT_DIM else f" --dim {size['dim']}") + (
            "" if kind == "structured" else f" --kind {kind}")
        commands.append(f"`python benchmarks/ranking_latency.py --sizes {size['rows']}{flags}`")
        bound = size["bound"].get("numpy_f32_median_ms")
        per = {r["search"]: r for r in size["ranker"]}
        figures["ranking_latency"][key] = {
            "dim": size["dim"], "bound_ms": bound and round(bound),
            "paths": {s: {"cosine_ms": round(r["cosine"]["median_ms"]), "centered_ms": round(r["centered"]["median_ms"]),
                          "peak_rss_gb": round(r["peak_rss_mb"] / 1024, 1),
                          "top10": min(r["cosine"]["top10_agreement"], r["centered"]["top10_agreement"])}
                      for s, r in per.items()}}
        text = []
        for search, r in per.items():
            ratio = f", {r['cosine']['median_ms'] / bound:.2f}x the bound" if bound else ""
            build = (f" after a {r['cosine']['first_s']:.0f} / {r['centered']['first_s']:.0f} s graph build"
                     if search == "ann" else "")
            label = search if r["cosine"]["path"] == search else f"{search} ({r['cosine']['path']})"
            if search == "auto-nograph":
                label = "auto while its graph is not built yet (projection scan)"
            text.append(f"{label} {r['cosine']['median_ms']:,.0f} / "
                        f"{r['centered']['median_ms']:,.0f} ms{ratio}{build}, {r['peak_rss_mb'] / 1024:.1f} GB peak, "
                        f"top-10 agreement {min(r['cosine']['top10_agreement'], r['centered']['top10_agreement']):.3f}")
        head = (f"numpy float32 matvec + argpartition {bound:,.0f} ms" if bound else
                f"no float32 copy fits; one streamed numpy pass over the file {size['bound']['streamed_pass_s']:.1f} s")
        loads = [r["load_avg_1min_at_start"] for r in size["ranker"] if "load_avg_1min_at_start" in r]
        busy = (f" (load {min(loads):.1f}{'' if round(min(loads), 1) == round(max(loads), 1) else f'-{max(loads):.1f}'} "
                "when timed)" if loads else " (run beside other jobs, load 3-6)")
        memory = data.get("machine", {}).get("memory_gb")
        if memory and size["generate"]["file_gb"] > memory:
            busy += (f"; the {size['generate']['file_gb']:.0f} GB file exceeds the machine's {memory:.0f} GB of "
                     "memory: re-ranked rows come from disk")
        label = f"{size['rows']:,} x {size['dim']:,}" + ("" if kind == "structured" else f" ({kind} rows)")
        parts.append(f"{label}{busy}: {head}; " + "; ".join(text))
    return ["| ranking latency at scale, synthetic float16 registries (median query, top 10, cosine / centred; "
            "bound: numpy on a float32 copy) | " + ", ".join(commands) + " | " + ". ".join(parts) + " |"]


def gpu_grid_row(figures: dict) -> list[str]:
    """The transfer-grid throughput row on a lent GPU (`benchmarks/gpu_grid.py`)."""
    data = _result_json("gpu_grid.json")
    if data is None:
        return []
    runs = data["runs"]
    phases = [p for p in runs[0]["phases"] if not p["ran_out_of_work"]]
    mains = [r["main"] for r in runs if r.get("main")]
    figures["gpu_grid"] = {"device": runs[0]["device"],
                           "phases": {str(p["workers"]): p["cells_per_minute"] for p in phases},
                           "main": [{"workers": m["workers"], "cells": m["cells"], "seconds": m["seconds"]} for m in mains]}
    phase_text = ", ".join(f"k={p['workers']} {p['cells_per_minute']:.1f}" for p in phases)
    main_text = " and ".join(f"{60 * m['cells'] / m['seconds']:.1f}" for m in mains)
    return [f"| transfer-grid throughput on one lent {runs[0]['device']}, small-regime cells (200 target rows, 1,000-row "
            f"eval), k worker processes per card (`transfer-matrix --workers k`), cells per minute incl. process start | "
            f"`python benchmarks/gpu_grid.py --out DIR` | {phase_text} (45-s phases); k={mains[0]['workers']} "
            f"{main_text} over {mains[0]['cells']}-cell runs |"]


def hub_sync_row(figures: dict) -> list[str]:
    """The Hub-sync row (`benchmarks/hub_sync.py`), when its file exists."""
    d = _result_json("hub_sync.json")
    if d is None:
        return []
    s, idx = d["sync"], d["from_index"]
    first, resync, legacy = s["from_hub_first"], s["from_hub_resync"], s["legacy_second"]
    after = s["index_build_after_10_changes"]
    f16 = d["float16_packaged_registry"]
    figures["hub_sync"] = {"entries": d["entries"], "first_s": first["seconds"], "first_downloads": first["downloads"],
                           "resync_s": resync["seconds"], "resync_downloads": resync["downloads"],
                           "resync_ratio": s["resync_time_ratio"], "legacy_s": legacy["seconds"],
                           "legacy_downloads": legacy["downloads"], "index_after_10_s": after["seconds"],
                           "index_after_10_downloads": after["downloads"],
                           "from_index": {n: {"load_plus_first_rank_s": round(r["load_s"] + r["first_rank_s"], 2),
                                              "peak_rss_mb": round(r["peak_rss_mb"])} for n, r in idx.items()},
                           "float16_identical": [f16["identical_full_rankings"], f16["targets_x_similarities"]]}
    sizes = "; ".join(f"{int(n) // 1000}k {r['load_s'] + r['first_rank_s']:.1f} s / {r['peak_rss_mb']:,.0f} MB"
                      for n, r in sorted(idx.items(), key=lambda kv: int(kv[0])))
    return [f"| Hub registry sync, {d['entries']:,} published entries on the local test Hub ({d['dim']:,}-d vectors; "
            f"{d['machine']['cpus']} CPU cores, " + (f"load {d['load_avg_1min_at_start']:.1f} at the start"
                                                       if "load_avg_1min_at_start" in d else "run beside another job")
            + ") | `python benchmarks/hub_sync.py` | first sync "
            f"{first['seconds']:.1f} s ({first['downloads']:,} downloads), re-sync {resync['seconds']:.2f} s, "
            f"{resync['downloads']} downloads ({100 * s['resync_time_ratio']:.1f} % of the first; the previous "
            f"implementation: {legacy['seconds']:.1f} s and {legacy['downloads']:,} downloads every time); index build after "
            f"10 changes: {after['seconds']:.1f} s, {after['downloads']} downloads; from_index load + first rank "
            f"({d['index_dim']:,}-d): {sizes}; float16 index: identical rankings on {f16['identical_full_rankings']}/"
            f"{f16['targets_x_similarities']} packaged targets × similarities |"]


def space_latency_row(figures: dict) -> list[str]:
    """The Space row (`benchmarks/space_latency.py`), when its file exists."""
    d = _result_json("space_latency.json")
    if d is None:
        return []
    figures["space_latency"] = {str(r["entries"]): {"p50_ms": r["registry_lookup"]["p50_ms"],
                                                    "p95_ms": r["registry_lookup"]["p95_ms"],
                                                    "baseline_p50_ms": r["baseline_selector_rank"]["p50_ms"],
                                                    "server_peak_rss_mb": r["server_peak_rss_mb"]} for r in d["lookups"]}
    def during(r) -> str:  # the 1-minute load while the lookups ran, when recorded
        load = r.get("load_1min_during_registry_lookups")
        return f", load {load['min']:.1f}-{load['max']:.1f}" if isinstance(load, dict) and "min" in load else ""

    parts = [f"{r['entries'] // 1000}k entries: p50 {r['registry_lookup']['p50_ms']:,.0f} ms / p95 "
             f"{r['registry_lookup']['p95_ms']:,.0f} ms (in-process `rank` {r['baseline_selector_rank']['p50_ms']:.0f} ms"
             f"{during(r)}), server peak {r['server_peak_rss_mb']:,} MB" for r in d["lookups"]]
    up = d.get("upload")
    if up:
        figures["space_latency"]["upload"] = {"rows": up["rows"], "seconds": up["upload_to_ranking_s"],
                                              "baseline_s": up["baseline_in_process_s"]}
        parts.append(f"a {up['rows']:,}-row CSV upload to a ranking {up['upload_to_ranking_s']:.0f} s (in process "
                     f"{up['baseline_in_process_s']:.0f} s in the same run"
                     + ("; an earlier run, before the figures moved to the browser" if up.get("note") else "") + ")")
    load = d["machine"].get("load_average_at_start", [None])[0]
    return [f"| Space (Gradio) lookups through `gradio_client`, synthetic BitFit registries (200 lookups each"
            + (f"; load average {load:.1f} on {d['machine']['cpus']} cores at the start: inflated" if load else "")
            + ") | `python benchmarks/space_latency.py` | " + "; ".join(parts) + " |"]


def _row_of(results, method, similarity=None):
    """The results row of `method` in `similarity` (else its better similarity by NDCG)."""
    rows = [(n, m) for n, m in results.items() if m.get("method") == method
            and (similarity is None or m.get("similarity") == similarity)]
    return max(rows, key=lambda nm: nm[1]["ndcg"], default=(None, None))


def _paired(results, a, b, truth="rows", key="ndcg"):
    """Mean per-target difference a − b over the targets both define, its paired SE, W/T/L read for `key` (won =
    a better: higher, or lower for ρ and Regret) and the number of targets."""
    ra = results[a]["rows"] if truth == "rows" else results[a]["on_mean"]["rows"]
    rb = results[b]["rows"] if truth == "rows" else results[b]["on_mean"]["rows"]
    diffs = np.array([ra[t][key] - rb[t][key] for t in ra if t in rb and ra[t][key] == ra[t][key] and rb[t][key] == rb[t][key]])
    sign = -1 if key in LOWER_IS_BETTER else 1
    won, lost = int((sign * diffs > 1e-9).sum()), int((sign * diffs < -1e-9).sum())
    se = float(diffs.std(ddof=1) / np.sqrt(len(diffs)))
    # z on the unrounded values: verdicts never read the rounded delta and SE (2.03 SE once printed as "within")
    return {"delta": round(float(diffs.mean()), 3), "se": round(se, 3), "z": float(diffs.mean()) / se if se > 0 else 0.0,
            "wtl": [won, len(diffs) - won - lost, lost], "targets": len(diffs)}


def _pm(p: dict) -> str:
    return f"{p['delta']:+.3f} ± {p['se']:.3f}"


def readme_evidence(results, curve, curve_targets, corr, pools, runs) -> tuple[str, dict]:
    """The README's evidence block (table + key figures) and the figures it quotes."""
    cost = {r["method"]: r for r in json.loads((RESULTS / "target_embedding_cost.json").read_text())["rows"]}
    random_ndcg, ceiling = results[RANDOM]["ndcg"], results[CEILING]["ndcg"]

    def normalised(x):
        return (x - random_ndcg) / (ceiling - random_ndcg)

    figs = {"random": round(random_ndcg, 3), "noise_ceiling": round(ceiling, 3), "methods": {}}
    table = ["| embedding (step 100 of 100) | NDCG | normalised | ± targets | NDCG shifted | Spearman | ρ (1 = perfect) "
             "| NDCG, seed-mean truth | embedding seeds | seconds / dim to embed a target |", "|---|---|---|---|---|---|---|---|---|---|"]
    entries = []
    for method, name in DISPLAY.items():
        label, m = _row_of(results, method)
        if m is None:
            continue
        c = cost.get(COST_KEY[method], {})
        dim = vector_dim(method) or c.get("dim")  # the stored vectors' (the cost file may predate a format change)
        if method == "taskemb":
            dim_text = f"{dim / 1e6:.1f} M" if dim else "–"
        else:
            dim_text = f"{dim:,}" if dim else "–"
        entries.append((method, name + (f" ({OLD_SKETCH})" if old_sketch(method) else ""), label, m,
                        f"{c['seconds']:.1f} s / {dim_text}" if c else "–"))
    label, m = _row_of(results, None, "cosine") if False else next(((n, m) for n, m in results.items()
                                                                     if n.startswith("packaged default registry") and n.endswith("cosine")), (None, None))
    if m is not None:
        entries.append(("packaged", "the packaged registry (BitFit, seed-0 vectors)", label, m, "(same recipe)"))
    entries.sort(key=lambda e: -e[3]["ndcg"])
    for method, name, label, m, cost_text in entries:
        default = method == DEFAULT_METHOD and m["similarity"] == "cosine"
        similarity = m.get("similarity") or label.rsplit(", ", 1)[-1]
        shown = f"**{name}, {similarity} (the previous default)**" if default else f"{name}, {similarity}"
        on_mean = m["on_mean"]["ndcg"] if m.get("on_mean") else float("nan")
        table.append(f"| {shown} | {fmt(m['ndcg'])} | {fmt(normalised(m['ndcg']), '.2f')} | {fmt(ndcg_se(m))} | "
                     f"{fmt(m['ndcg_shifted'])} | {fmt(m['spearman'], '.2f')} | {fmt(m['rho'], '.2f')} | {fmt(on_mean)} | "
                     f"{m['seeds']} | {cost_text} |")
        figs["methods"][method] = {"row": shown, "label": label, "similarity": similarity, "ndcg": round(m["ndcg"], 3),
                                   "normalised": round(normalised(m["ndcg"]), 2), "ndcg_se": round(ndcg_se(m), 3),
                                   "ndcg_shifted": round(m["ndcg_shifted"], 3), "spearman": round(m["spearman"], 2),
                                   "rho": round(m["rho"], 2), "ndcg_seed_mean_truth": round(on_mean, 3),
                                   "seeds": m["seeds"]}
    for label, name in ((DATASIZE, "DataSize (bigger source first)"), (RANDOM, "random order (mean of 200)"),
                        (CEILING, "the other ground-truth seeds' measurements (noise ceiling)")):
        m = results[label]
        on_mean = m["on_mean"]["ndcg"] if m.get("on_mean") else float("nan")
        table.append(f"| {name} | {fmt(m['ndcg'])} | {fmt(normalised(m['ndcg']), '.2f')} | {fmt(ndcg_se(m))} | "
                     f"{fmt(m['ndcg_shifted'])} | {fmt(m['spearman'], '.2f')} | {fmt(m['rho'], '.2f')} | {fmt(on_mean)} | – | – |")
        figs[{"DataSize": "datasize", "Random": "random_order"}.get(label.split(" ")[0], "ceiling")] = {
            "row": name, "label": label, "ndcg": round(m["ndcg"], 3), "ndcg_shifted": round(m["ndcg_shifted"], 3), "spearman": round(m["spearman"], 2),
            "rho": round(m["rho"], 2)}

    default_label, default = _row_of(results, DEFAULT_METHOD, "cosine")
    text_label, _ = _row_of(results, "textemb")
    task_label, _ = _row_of(results, "taskemb")
    vs_text, vs_task = _paired(results, default_label, text_label), _paired(results, default_label, task_label)
    vs_text_mean = _paired(results, default_label, text_label, "on_mean")
    vs_task_mean = _paired(results, default_label, task_label, "on_mean")
    rho_text = _paired(results, default_label, text_label, key="rho")
    challengers = {}
    for method in ("prefix+mean", "lora+mean", "ia3+mean"):
        label, m = _row_of(results, method, "cosine")
        if m is not None:
            challengers[method] = _paired(results, label, default_label)
    centred_label, _ = _row_of(results, DEFAULT_METHOD, "centered")
    challengers["bitfit+mean centered"] = _paired(results, centred_label, default_label)
    beyond = [k for k, p in {"TextEmb": vs_text, "TaskEmb": vs_task, **challengers}.items() if abs(p["z"]) > 2]
    figs["paired"] = {"default_vs_textemb": vs_text, "default_vs_taskemb": vs_task, "default_vs_textemb_seed_mean": vs_text_mean,
                      "default_vs_taskemb_seed_mean": vs_task_mean, "default_vs_textemb_rho": rho_text,
                      "challengers_vs_default": challengers, "beyond_2_se": beyond}

    embeddings = {k: v for k, v in figs["methods"].items()}
    best_shifted = max(embeddings.items(), key=lambda kv: kv[1]["ndcg_shifted"])
    spearmans = [v["spearman"] for v in embeddings.values()]
    figs["shifted_best_embedding"] = {"method": best_shifted[0], "ndcg_shifted": best_shifted[1]["ndcg_shifted"]}
    figs["spearman_range"] = [min(spearmans), max(spearmans)]
    gt_sd = [m["gt_seed_sd"] for n, m in results.items() if m.get("method") in PEFT and m["gt_seed_sd"] == m["gt_seed_sd"]]
    figs["gt_seed_sd_range"] = [round(min(gt_sd), 2), round(max(gt_sd), 2)]
    devices = defaultdict(int)
    for r in runs:
        devices[{"cuda": "H100"}.get(r.get("device"), "CPU")] += 1
    figs["ground_truth_runs"] = {"total": len(runs), **devices}

    name = lambda method: DISPLAY[method].split(" (")[0]  # noqa: E731
    lines = ["", "Normalised = (NDCG − random) / (noise ceiling − random): 0 is a random order "
             f"({random_ndcg:.3f}), 1 is ranking each ground-truth seed by the other seeds' measurements ({ceiling:.3f}), "
             "the most one more measurement of the same cells gives. `± targets` = standard error of the NDCG over the "
             f"{default['targets']:.0f} targets. Ground truth: {len(runs)} fine-tuning runs "
             f"({', '.join(f'{n} on {d}' for d, n in sorted(devices.items()))}).", "",
             f"- The previous default ({name(DEFAULT_METHOD)}, cosine) against the baselines of Vu et al., paired over targets: "
             f"TextEmb {_pm(vs_text)} NDCG (won/tied/lost {'/'.join(map(str, vs_text['wtl']))}), TaskEmb {_pm(vs_task)} "
             f"({'/'.join(map(str, vs_task['wtl']))}); against the seed-mean truth {_pm(vs_text_mean)} and {_pm(vs_task_mean)}; "
             f"on ρ against TextEmb {_pm(rho_text)} (negative = better). "
             + ("Neither margin reaches 2 paired SE." if not {"TextEmb", "TaskEmb"} & set(beyond)
                else f"Beyond 2 paired SE: {', '.join(b for b in beyond if b in ('TextEmb', 'TaskEmb'))}."),
             "- Challengers against the default (ΔNDCG ± paired SE, positive = the challenger ranks better): " + "; ".join(
                 f"{name(k) if k in DISPLAY else name(DEFAULT_METHOD) + ' centred'} {_pm(p)}" for k, p in challengers.items())
             + (": none beyond 2 paired SE." if not set(challengers) & set(beyond)
                else f"; beyond 2 paired SE: {', '.join(b for b in beyond if b in challengers)}."),
             f"- Cost of a target embedding from raw data (one task, 2 CPU cores, model load included): PEFT "
             f"{min(cost[k]['seconds'] for k in ('bitfit', 'lora', 'ia3', 'prefix', 'prompt') if k in cost):.0f}–"
             f"{max(cost[k]['seconds'] for k in ('bitfit', 'lora', 'ia3', 'prefix', 'prompt') if k in cost):.0f} s, "
             f"TaskEmb {cost['taskemb']['seconds']:.0f} s with a vector of {cost['taskemb']['dim'] / 1e6:.1f} M values, "
             f"TextEmb {cost['textemb']['seconds']:.1f} s (it trains nothing): a fraction of the cost holds against TaskEmb only. "
             "The default for raw data (BitFit fused with TextEmb) costs the two together.",
             f"- On the shifted-gain NDCG (gain = accuracy above the worst source, defined on every target) DataSize "
             f"({figs['datasize']['ndcg_shifted']:.3f}) "
             + (f"beats every embedding (best: {name(best_shifted[0])}, {best_shifted[1]['ndcg_shifted']:.3f})"
                if figs["datasize"]["ndcg_shifted"] > best_shifted[1]["ndcg_shifted"]
                else f"does not beat the best embedding ({name(best_shifted[0])}, {best_shifted[1]['ndcg_shifted']:.3f})")
             + f", and random order scores {figs['random_order']['ndcg_shifted']:.3f}: that gain rewards putting the many "
             "sources that help a little anywhere near the top, not finding the best one.",
             f"- Spearman between similarity and measured transfer is {min(spearmans):.2f}–{max(spearmans):.2f} for every "
             f"embedding ({default['spearman']:.2f} for the default; the noise ceiling {figs['ceiling']['spearman']:.2f}): "
             "the rankings put good sources near the top; they do not order the whole list.",
             f"- Under cosine, the packaged registry (the seed-0 BitFit vectors alone) scores "
             f"{figs['methods'].get('packaged', {}).get('ndcg', float('nan')):.3f}; the table's BitFit row averages "
             f"{default['seeds']} embedding seeds of the same recipe ({default['ndcg']:.3f}). An NDCG computed against "
             f"one ground-truth seed at a time moves by {figs['gt_seed_sd_range'][0]:.2f}–{figs['gt_seed_sd_range'][1]:.2f} (sd).",
             ]
    firm, compared = [], 0  # every (method, baseline, metric, truth) whose paired margin exceeds 2 SE, either way
    for method in ("bitfit+mean", "prefix+mean", "lora+mean", "ia3+mean"):
        for sim in SIMILARITIES:
            label, m = _row_of(results, method, sim)
            if m is None:
                continue
            for base_label, base in ((text_label, "TextEmb"), (task_label, "TaskEmb")):
                for key, truth, what in (("ndcg", "rows", "NDCG"), ("rho", "rows", "ρ"), ("ndcg", "on_mean", "NDCG, seed-mean truth"),
                                         ("rho", "on_mean", "ρ, seed-mean truth")):
                    if truth == "on_mean" and not (m.get("on_mean") and results[base_label].get("on_mean")):
                        continue
                    pr = _paired(results, label, base_label, truth, key)
                    compared += 1
                    if abs(pr["z"]) > 2:
                        firm.append({"method": method, "similarity": sim, "against": base, "metric": what, **pr})
    figs["beyond_2_se_vs_baselines"] = firm
    lines.append("- Margins over the baselines beyond 2 paired SE, on any of NDCG or ρ against single seeds or the seed-mean "
                 "truth (PEFT methods in both similarities): " + ("; ".join(
                     f"{name(f['method'])} {'centred' if f['similarity'] == 'centered' else f['similarity']} vs "
                     f"{f['against']}, {f['metric']}: {_pm(f)}" for f in firm) if firm else "none")
                 + f" ({len(firm)} of {compared} comparisons; about {compared / 20:.0f} would pass 2 SE by chance alone).")
    bitfit_curve = curve.get(DEFAULT_METHOD, {})
    if bitfit_curve:
        steps = sorted(bitfit_curve)
        figs["curve"] = {m: {str(s): round(v, 3) for s, v in pts.items()} for m, pts in curve.items()}
        longer = [m for m in curve if "@" in m and not old_sketch(m)]  # old-sketch rows are listed apart below
        lines.append(f"- Early checkpoints ({curve_targets[DEFAULT_METHOD]} `core10` targets and sources): BitFit's NDCG is "
                     + " / ".join(f"{bitfit_curve[s]:.2f}" for s in steps) + f" at steps {' / '.join(map(str, steps))}"
                     + ("; on 500-step schedules (NDCG at step 10 … at the end): " + ", ".join(
                         f"{m.split('@')[0].split('+')[0]} {curve[m][min(curve[m])]:.2f} … {curve[m][max(curve[m])]:.2f}"
                         for m in longer if m.endswith("@500")) if longer else "") + ".")
    figs["checkpoint_correlation"] = {"pooled": round(corr["pooled"], 2), "within": round(corr["within"], 2),
                                      "points": corr["points"]}
    lines.append(f"- A checkpoint's in-task accuracy barely predicts its NDCG: Spearman {corr['within']:.2f} within a target "
                 f"({corr['pooled']:.2f} pooled) over {corr['points']} checkpoint × target points.")
    hybrid = results.get(HYBRID)
    if hybrid:
        figs["hybrid"] = round(hybrid["ndcg"], 3)
        lines.append(f"- Summing BitFit's and TextEmb's centred cosines (unweighted) scores {hybrid['ndcg']:.3f}; the "
                     "fusion that ships (pcr-1 + 0.5 × TextEmb, z-scored) is measured in \"Does the answer depend on the "
                     "target?\".")
    core = {method: next((r["core10"]["ndcg"] for lbl, r in pools.items() if f"[{method}]" in lbl and lbl.endswith(sim)), None)
            for method, sim in ((DEFAULT_METHOD, "cosine"), ("textemb", "centered"), ("taskemb", "cosine"))}
    if all(v is not None for v in core.values()):
        figs["core10_pool"] = {k: round(v, 3) for k, v in core.items()}
        lines.append(f"- With only the 10 `core10` tasks as sources (seed-0 embeddings): BitFit {core[DEFAULT_METHOD]:.3f}, "
                     f"TextEmb {core['textemb']:.3f}, TaskEmb {core['taskemb']:.3f} NDCG.")
    mismatch_file = RESULTS / "recipe_mismatch.json"
    if mismatch_file.is_file():
        mm = json.loads(mismatch_file.read_text())["methods"].get(DEFAULT_METHOD)
        if mm:
            figs["recipe_mismatch"] = mm
            early, late = mm["ndcg"].get("step 10 of 100"), mm["ndcg"].get("step 500 of 500")
            own10, own100 = mm["own_entry_rank"].get("step 10 of 100"), mm["own_entry_rank"].get("step 100 of 100")
            parts = []
            if early:
                parts.append(f"a target taken at step 10 ranks the step-100 sources at {early['ndcg']:.3f} NDCG against "
                             f"{early['ndcg_matched']:.3f} matched ({early['delta']:+.3f} ± {early['delta_se']:.3f}, "
                             f"{early['targets']} targets)")
            if late:
                parts.append(f"one tuned 500 steps {late['delta']:+.3f} ± {late['delta_se']:.3f} ({late['targets']} targets)")
            if own10 and own100:
                parts.append(f"a fresh run of a registry task finds its own entry at mean rank {own10['mean']:.1f} from "
                             f"step 10, {own100['mean']:.1f} with the registry's recipe")
            lines.append("- Recipe mismatch (`benchmarks/recipe_mismatch.py`, BitFit): " + "; ".join(parts) + ". "
                         "`rank` warns about it and `rank --strict` refuses it.")
    old = [m for m in peft_folders() if old_sketch(m)]
    figs["old_sketch_folders"] = old
    if old:
        lines.append(f"- Still on the first, biased LoRA sketch (not re-tuned yet, labelled so in RESULTS.md): "
                     f"{', '.join(f'`{m}`' for m in old)}.")
    return "\n".join(table + lines) + "\n", figs


def headline_block(headline: dict) -> str:
    """The top of the README's evidence block: every ranker out of sample, the in-sample figure beside it, and
    the small regime when measured."""
    table = ["**Out of sample** (every choice — method, similarity, step, weight — made on the other "
             "targets, leave-one-target-out; RESULTS.md, \"Headline\"), with the in-sample figure (the best candidate "
             "chosen on all targets at once) beside it. In sample, made earlier on these same targets: the mean-pooling "
             "head (every candidate uses it), the tuning recipe (100 steps, 1,000 rows) and the candidate pool itself. "
             "These rows predate the target-dependence work below, whose similarities (pcr-k, the TextEmb fusion) are "
             "chosen out of sample in their own table:", "",
             "| ranker | candidates | NDCG out of sample | normalised | NDCG in sample | normalised in sample | ρ | targets |",
             "|---|---|---|---|---|---|---|---|"]
    lim = headline["limited"]
    both = [(n, f, True) for n, f in lim["families"].items()] + [(n, f, False) for n, f in lim["fixed"].items()]
    for name, f, is_family in sorted(both, key=lambda e: -(e[1]["ndcg"] if e[1]["ndcg"] == e[1]["ndcg"] else -1)):
        ins = f["in_sample"] if is_family else None
        table.append(f"| {name} | {f['candidates'] if is_family else '–'} | {fmt(f['ndcg'])} | {fmt(f['normalised'], '.2f')} | "
                     f"{fmt(ins['ndcg']) if ins else '–'} | {fmt(f['normalised_in_sample'], '.2f') if ins else '–'} | "
                     f"{fmt(f['rho'], '.2f')} | {f['targets']} |")
    noise = lim.get("beats_base_seed_noise")
    lines = ["", f"Targets with a source that beats base by more than 2 binomial SE (seed means): limited regime "
             f"{len(lim['beats_base_2se'])} of {lim['fixed'][RANDOM]['targets']}"
             + (f" (against the measured seed-to-seed noise: {len(noise['targets'])}, where about "
                f"{noise['expected_by_noise']:.1f} would pass by noise alone)" if noise else "")]
    small = headline.get("small")
    if small:
        own = next((f for n, f in small["families"].items() if n.startswith("ours, target embedded")), None)
        lines[-1] += f", small regime ({SMALL_ROWS} target rows) {len(small['beats_base_2se'])} of {small['fixed'][RANDOM]['targets']}."
        parts = [f"{n.split(':')[0].split(' (')[0]} {f['ndcg']:.3f} ({f['normalised']:.2f} normalised)"
                 for n, f in [(OURS, small["families"].get(OURS)), (ESM_LOGME, small["fixed"].get(ESM_LOGME)),
                              (TEXTEMB_FAMILY, small["families"].get(TEXTEMB_FAMILY))] if f]
        lines.append(f"Small regime, out of sample (RESULTS.md, \"Small regime\"): "
                     + (f"ours with the target embedded from its {SMALL_ROWS} rows {own['ndcg']:.3f} NDCG "
                        f"({own['normalised']:.2f} normalised); " if own else
                        f"no ranker embeds the target from its {SMALL_ROWS} rows yet; ")
                     + "with 1,000-row target vectors and features: " + ", ".join(parts)
                     + f"; random {small['fixed'][RANDOM]['ndcg']:.3f}, noise ceiling {small['fixed'][CEILING]['ndcg']:.3f}.")
    else:
        lines[-1] += "; the small regime is not measured."
    return "\n".join(table + lines) + "\n\nIn-sample rows per method (each in the similarity that ranks it better: an in-sample choice):\n\n"


def peer_costs() -> dict[str, dict]:
    """Seconds and peak RSS to rank one new target from raw data: ours (the target's embedding, from
    target_embedding_cost.json; ranking itself takes milliseconds) and each peer (peer_cost.jsonl, the runs over
    the most sources)."""
    import peer_rankers

    emb = {r["method"]: r for r in json.loads((RESULTS / "target_embedding_cost.json").read_text())["rows"]}
    out = {DEFAULT_METHOD: {"seconds": [emb["bitfit"]["seconds"]], "peak_rss_mb": [emb["bitfit"]["peak_rss_mb"]],
                            "sources": None},
           "textemb": {"seconds": [emb["textemb"]["seconds"]], "peak_rss_mb": [emb["textemb"]["peak_rss_mb"]], "sources": None}}
    path = RESULTS / "peer_cost.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    for method in peer_rankers.METHODS:
        mine = [r for r in rows if r["method"] == method]
        if mine:
            most = max(r["sources"] for r in mine)
            mine = [r for r in mine if r["sources"] == most]
            out[method] = {"seconds": [r["seconds"] for r in mine], "peak_rss_mb": [r["peak_rss_mb"] for r in mine],
                           "sources": most, "targets": [r["target"] for r in mine],
                           "load_before": [r.get("load_before") for r in mine]}
    out[DEFAULT_METHOD]["load_before"] = [emb["bitfit"].get("load_before")]
    return out


def _span(values, spec=".1f", unit="") -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,{spec}}{unit}" if lo == hi else f"{lo:,{spec}}–{hi:,{spec}}{unit}"


def compare_block(results: dict, headline: dict) -> tuple[str, dict]:
    """The README's "How does this compare?" block: ours beside hf-dataset-selector's ESM-LogME and plain LogME,
    out of sample, with the cost of ranking one new target and the bytes stored per source."""
    import peer_rankers

    lim = headline["limited"]
    fam, fixed, pairs = lim["families"], lim["fixed"], lim["pairs"]
    costs, sizes = peer_costs(), peer_rankers.bytes_per_source()
    summary = RESULTS / "peer_summary.json"
    if summary.is_file():  # a size measured when the (uncommitted) fine-tuned bodies were on disk
        recorded = json.loads(summary.read_text()).get("bytes_per_source", {})
        sizes = {k: v if v is not None else recorded.get(k) for k, v in sizes.items()}
    size_of = {DEFAULT_METHOD: next((v for k, v in sizes.items() if k.startswith("ours")), None),
               "esm-logme": sizes.get("esm-logme (one d×d+d float32 linear map)"),
               "logme": sizes.get("logme (a fine-tuned MiniLM body, float32 safetensors)"),
               "textemb": peer_rankers.stored_bytes(EMB / "textemb")}
    rows = [(OURS, fam.get(OURS), DEFAULT_METHOD, "ours: the embedding chosen leave-one-target-out"),
            (SHIPPED, fixed.get(SHIPPED), DEFAULT_METHOD, f"the previous default ({DEFAULT_METHOD} cosine; chosen in sample; mean of 2 embedding seeds)"),
            (ESM_LOGME, fixed.get(ESM_LOGME), "esm-logme", "ESM-LogME (hf-dataset-selector 0.2.1)"),
            (LOGME, fixed.get(LOGME), "logme", "LogME on each fine-tuned source model"),
            (TEXTEMB_FAMILY, fam.get(TEXTEMB_FAMILY), "textemb", "TextEmb (similarity chosen leave-one-target-out)"),
            (RANDOM, fixed.get(RANDOM), None, "random order"),
            (CEILING, fixed.get(CEILING), None, "noise ceiling (the other ground-truth seeds)")]
    table = ["| ranker | NDCG | normalised | NDCG peer gain | ρ | Regret@1 | Regret@3 | Regret@5 | targets | "
             "seconds / peak MB to rank a new target | bytes per source |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    figs = {"rows": {}, "pairs": {}}
    for key, m, cost_key, shown in rows:
        if m is None:
            continue
        c = costs.get(cost_key)
        cost = (f"{_span(c['seconds'])} s / {_span(c['peak_rss_mb'], '.0f')} MB"
                + (f" ({c['sources']} sources, {len(c['seconds'])} target{'s' if len(c['seconds']) > 1 else ''})"
                   if c.get("sources") else "")) if c else "–"
        size = f"{size_of[cost_key]:,}" if size_of.get(cost_key) else "–"
        table.append(f"| {shown} | {fmt(m['ndcg'])} | {fmt(m['normalised'], '.2f')} | {fmt(m['ndcg_peer_gain'])} | "
                     f"{fmt(m['rho'], '.2f')} | {fmt(m['regret@1'], '.2f')} | {fmt(m['regret@3'], '.2f')} | "
                     f"{fmt(m['regret@5'], '.2f')} | {m['targets']} | {cost} | {size} |")
        figs["rows"][shown] = {"label": key, "ndcg": m["ndcg"], "normalised": m["normalised"], "rho": m["rho"],
                               "cost": c, "bytes": size_of.get(cost_key)}
    lines = ["", "ESM-LogME and LogME here are scored on every ground-truth seed, and their source models were rebuilt "
             "with seed 0's recipe and seed: on seed 0 they read (nearly) the models whose transfer it measures, a leak "
             "in their favour. Scored leak-free, and against the ranking that ships now (pcr-1 fused with TextEmb), in "
             "\"Does the answer depend on the target?\" above.", "",
             "All figures out of sample on the limited-regime ground truth (RESULTS.md, \"Headline\"): a ranker's "
             "choices are made on the other targets; `normalised` = (NDCG − random) / (noise ceiling − random); "
             "`NDCG peer gain` uses hf-dataset-selector's gain 2^(100·accuracy) − 1. Cost: from raw data on 2 CPU "
             "cores, model loads included (ours: tuning the target's BitFit embedding; ESM-LogME: one base-model "
             "pass and a LogME per source; LogME: one pass of each fine-tuned source model). Bytes: what a registry "
             "stores and a user downloads per source. 1-minute load average on the 2 cores when each cost run "
             "started (0 = idle; other jobs inflate seconds): " + "; ".join(
                 f"{k} {', '.join(f'{x:.1f}' for x in c['load_before'] if x is not None) or 'not recorded'}"
                 for k, c in costs.items() if "load_before" in c) + ".", ""]
    for a, b in ((OURS, ESM_LOGME), (SHIPPED, ESM_LOGME), (OURS, LOGME), (OURS, TEXTEMB_FAMILY)):
        p = pairs.get(f"{a} minus {b}")
        if not p:
            continue
        figs["pairs"][f"{a} minus {b}"] = p
        d, se = p["ndcg"]["delta"], p["ndcg"]["se"]
        other = dict((r[0], r[3]) for r in rows)[b].split(" (")[0]
        verdict = ("within 2 paired SE: neither ranks better on these targets" if abs(p["ndcg"].get("z", d / se)) <= 2
                   else ("ours ranks better" if d > 0 else f"{other} ranks better"))
        r, rse = p["rho"]["delta"], p["rho"]["se"]
        verdict += (f"; on ρ {other} puts the best source higher" if r > 0 else "; on ρ ours puts the best source higher") \
            + (" (within 2 paired SE)" if abs(p["rho"].get("z", r / rse if rse else 0)) <= 2 else " (beyond 2 paired SE)") if r else ""
        lines.append(f"- {dict((r[0], r[3]) for r in rows)[a]} minus {dict((r[0], r[3]) for r in rows)[b]} "
                     f"({p['ndcg']['targets']} targets): NDCG {_pm(p['ndcg'])} (won/tied/lost "
                     f"{'/'.join(map(str, p['ndcg']['wtl']))}), peer-gain NDCG {_pm(p['ndcg_peer_gain'])}, "
                     f"ρ {_pm(p['rho'])}, Regret@1 {_pm(p['regret@1'])}, Regret@3 {_pm(p['regret@3'])} (for ρ and "
                     f"Regret positive = ours worse): {verdict}.")
    ours, esm = fam.get(OURS), fixed.get(ESM_LOGME)
    if ours and esm:
        p = pairs[f"{OURS} minus {ESM_LOGME}"]["ndcg"]
        cheaper = costs.get("esm-logme") and costs[DEFAULT_METHOD]["seconds"][0] <= min(costs["esm-logme"]["seconds"])
        goal = (ours["normalised"] >= 0.75 and p.get("z", 0) > 2
                and pairs[f"{OURS} minus {TEXTEMB_FAMILY}"]["ndcg"].get("z", 0) > 2
                and cheaper)
        figs["goal_met"] = bool(goal)
        lines.append(f"- Issue 13's goal (out of sample: ≥ 0.75 normalised, ahead of TextEmb and ESM-LogME by ≥ 2 paired "
                     f"SE, at no more cost per target than ESM-LogME): {'met' if goal else 'not met'}; ours is "
                     f"{ours['normalised']:.2f} normalised out of sample"
                     + ("" if cheaper else " and costs more per target than ESM-LogME") + ".")
    return "\n".join(table + lines) + "\n", figs


def write_readme(snippets: dict[str, str], figures: dict) -> None:
    """Write the snippets and the figures file, and refresh the README's generated blocks."""
    for name, text in snippets.items():
        SNIPPETS[name].write_text(text)
    FIGURES_FILE.write_text(json.dumps(figures, indent=1, sort_keys=True, default=float) + "\n")
    text = README.read_text()
    updated = text
    for name, body in snippets.items():
        updated = replace_block(updated, name, body)
    if updated != text:
        README.write_text(updated)


if __name__ == "__main__":
    main()
