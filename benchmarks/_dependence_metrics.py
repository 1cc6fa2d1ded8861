"""target_dependence.py's measures: the task families, how far a ranking depends on its target, NDCG with honest
ties, paired differences and choices made leave-one-target-out."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from scipy.stats import spearmanr

from taskemb_hub.evaluation.ranking_metrics import best_source_rank, gains, ndcg
from taskemb_hub.evaluation.transfer import BASE, TASK_SETS

TASKS = TASK_SETS["classification16"]
# Named from each task's `description` in ../shared/data/tasks/*/task.json, before any ranking was looked at.
# bbc_news (news topic) and hyperbaton (adjective order) have no relative among the 16.
FAMILIES = {
    "sentiment": ["rotten_tomatoes", "multiemo_hotels", "multiemo_medicine", "multiemo_products"],
    "claim verification": ["fever", "vitaminc"],
    "dialogue (same speaker?)": ["movie_dialog", "play_dialog"],
    "logic and entailment": ["epistemic_reasoning", "formal_fallacies", "logical_fallacy"],
    "commonsense plausibility": ["strategyqa", "sports_understanding", "winowhy"],
    "news topic": ["bbc_news"],
    "grammar": ["hyperbaton"],
}
FAMILY_OF = {t: f for f, ts in FAMILIES.items() for t in ts}
SENTIMENT = set(FAMILIES["sentiment"])
TIE_DRAWS = 64
FUSION_WEIGHTS = (0.5, 1.0, 2.0)  # TextEmb's weight in the fusions tried
PEER_LEAK_SEED = 0  # peer_rankers.py recreated every source model with ground-truth seed 0's recipe and seed
RANDOM_DRAWS = 200


def fixed_order(scores: dict[str, dict[str, float]], target: str) -> dict[str, float]:
    """Each source's mean score over the targets other than `target` (and itself): an order that never reads `target`."""
    return {s: float(np.mean([scores[t][s] for t in scores if t not in (target, s) and s in scores[t]]))
            for s in scores[target]}


def leave_two_out_orders(scorer, scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per target t, each source's mean score over the other targets ranked with t left out of the registry too.

    With t still in the registry, centring (and pcr) on the other targets' registries puts −t into every other
    target's centred vectors, so a centred ranker's "target-independent" order would hold minus t's own scores
    (on structureless random vectors: mean Spearman about −0.45 for centred, 0 for cosine). `scorer(also_exclude)`
    re-ranks every target without `also_exclude`."""
    out = {}
    for t in scores:
        others = scorer(also_exclude=t)
        out[t] = {s: float(np.mean([others[u][s] for u in others if u not in (t, s) and s in others[u]]))
                  for s in scores[t]}
    return out


def dependence(scores: dict[str, dict[str, float]], reference: dict | None = None, fixed_orders: dict | None = None) -> dict:
    """Spearman with the target-independent order (own, `reference`'s, or given per target), top-3 k-occurrence,
    own family in top 3."""
    rhos, top3, family_hits, family_targets = {}, Counter(), 0, 0
    for target, row in scores.items():
        fixed = fixed_orders[target] if fixed_orders else fixed_order(reference or scores, target)
        keys = sorted(row)
        rho = float(spearmanr([row[k] for k in keys], [fixed[k] for k in keys]).statistic)
        if rho == rho:  # undefined (constant scores or order): left out of the means, counted
            rhos[target] = rho
        best = sorted(keys, key=lambda s: -row[s])[:3]
        top3.update(best)
        relatives = set(FAMILIES[FAMILY_OF[target]]) - {target}
        if relatives:
            family_targets += 1
            family_hits += bool(relatives & set(best))
    return {"spearman_fixed": float(np.mean(list(rhos.values()))), "spearman_fixed_by_target": rhos,
            "spearman_fixed_abs": float(np.mean(np.abs(list(rhos.values())))),
            "spearman_undefined": len(scores) - len(rhos),
            "top3_max": max(top3.values()), "top3_most": top3.most_common(1)[0][0],
            "top3_counts": dict(top3.most_common()), "family_top3": family_hits, "family_targets": family_targets}


def ndcg_tied(scores: dict[str, float], gain: dict[str, float], rng) -> float:
    """NDCG of the order by score; tied scores are broken at random and averaged (never by name)."""
    sources = list(gain)
    values = np.array([scores[s] for s in sources])
    if len(set(np.round(values, 12))) == len(values):
        return ndcg(sorted(sources, key=lambda s: -scores[s]), gain)
    draws = [ndcg([sources[i] for i in np.lexsort((rng.random(len(values)), -values))], gain) for _ in range(TIE_DRAWS)]
    return float(np.mean(draws))


def target_ndcg(scores: dict[str, dict[str, float]], complete: dict, seeds=None) -> dict[str, float]:
    """target -> NDCG averaged over its ground-truth seeds (only `seeds` when given)."""
    rng = np.random.default_rng(0)
    per = defaultdict(list)
    for (target, seed), row in complete.items():
        if target not in scores or (seeds is not None and seed not in seeds):
            continue
        sources = [s for s in scores[target] if s in row]
        value = ndcg_tied(scores[target], gains({s: row[s] for s in sources}, row[BASE]), rng)
        if value == value:
            per[target].append(value)
    return {t: float(np.mean(v)) for t, v in sorted(per.items())}


def target_rho(scores, complete, seeds=None) -> dict[str, float]:
    per = defaultdict(list)
    for (target, seed), row in complete.items():
        if target not in scores or (seeds is not None and seed not in seeds):
            continue
        sources = [s for s in scores[target] if s in row]
        order = sorted(sources, key=lambda s: -scores[target][s])
        per[target].append(best_source_rank(order, {s: row[s] for s in sources}))
    return {t: float(np.mean(v)) for t, v in sorted(per.items())}


def random_ndcg(complete: dict, seeds=None) -> dict[str, float]:
    rng = np.random.default_rng(1)
    per = defaultdict(list)
    for (target, seed), row in complete.items():
        if seeds is not None and seed not in seeds:
            continue
        sources = [s for s in row if s != BASE]
        g = gains({s: row[s] for s in sources}, row[BASE])
        values = [ndcg([sources[i] for i in rng.permutation(len(sources))], g) for _ in range(RANDOM_DRAWS)]
        if values[0] == values[0]:
            per[target].append(float(np.mean(values)))
    return {t: float(np.mean(v)) for t, v in sorted(per.items())}


def paired(a: dict[str, float], b: dict[str, float], targets=None) -> dict:
    keys = [t for t in (targets or a) if t in a and t in b]
    d = np.array([a[t] - b[t] for t in keys])
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"diff": float(d.mean()), "se": se, "z": float(d.mean() / se) if se > 0 else float("nan"),
            "won": int((d > 1e-12).sum()), "tied": int((abs(d) <= 1e-12).sum()), "lost": int((d < -1e-12).sum()),
            "targets": len(keys)}


def split(per_target: dict[str, float]) -> dict:
    def mean(keys):
        vals = [per_target[t] for t in sorted(keys) if t in per_target]  # sorted: the same float sum every run
        return float(np.mean(vals)) if vals else float("nan")
    return {"all": mean(per_target), "sentiment": mean(SENTIMENT), "other": mean(set(per_target) - SENTIMENT)}


def loto(per_target: dict[str, dict[str, float]], eligible=None) -> tuple[dict[str, float], dict[str, str]]:
    """For each target, the candidate with the best mean NDCG on the other targets (among `eligible(others)`)."""
    labels = sorted(per_target)
    targets = sorted(set.intersection(*(set(per_target[c]) for c in labels)))
    out, chosen = {}, {}
    for target in targets:
        others = [t for t in targets if t != target]
        pool = eligible(target) if eligible else labels
        best = max(pool, key=lambda c: (np.mean([per_target[c][t] for t in others]), c))
        out[target], chosen[target] = per_target[best][target], best
    return out, chosen
