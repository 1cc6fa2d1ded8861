"""Scoring rankings against the measured transfer: scorers (through `AutoSourceSelector`), metrics and their means."""

import statistics
from collections import defaultdict

import numpy as np

from taskemb_hub.evaluation.ranking_metrics import evaluate_ranking, gains, nanmean, ndcg
from taskemb_hub.ranking.selector import AutoSourceSelector
from taskemb_hub.evaluation.transfer import BASE

from .data import DEFAULT_METHOD, load_embeddings

TIE_DRAWS = 64  # random tie-breaks averaged for a ranker whose scores tie


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


def merged_evaluation(scorers, rows, pool) -> dict | None:
    """`evaluate_method` of each scorer on the same rows, merged (None when none scored a row)."""
    runs = [m for m in (evaluate_method(sc, rows, pool) for sc in scorers) if m]
    return merge_runs(runs) if runs else None


def memo(scorer):
    """A scorer that computes each (target, sources, seed) once (the prior is read by many combinations)."""
    seen = {}
    return lambda target, sources, seed: seen.setdefault((target, tuple(sources), seed), scorer(target, sources, seed))


def cross_scorer(source_embs: dict, target_embs: dict, similarity: str):
    """Sources from one embedding folder, the target from another (e.g. a target embedded from fewer rows)."""
    def scorer(target, sources, _seed):
        if target not in target_embs:
            return None
        return score_sources({s: source_embs[s] for s in sources if s in source_embs} | {target: target_embs[target]},
                             target, sources, similarity)
    return scorer


CEILING = "measured transfer at the other ground-truth seeds (noise ceiling)"
LOWER_IS_BETTER = ("rho", "regret@1", "regret@3", "regret@5")


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
