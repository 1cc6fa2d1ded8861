"""Choices made out of sample, and the rankers built from several signals (used by `report.py`).

Every ranker of the report has choices: a method, a similarity, a head pooling, a checkpoint step, a weight. A
choice made on the same targets it is scored on flatters it (the best of 60 configurations on 16 noisy targets is
partly luck), so the headline figures here make every choice **leave-one-target-out**: for each target, the choice
is the one with the best mean NDCG over the *other* targets, and the target is scored with it. The in-sample
figure (the best configuration on all targets) is reported beside it.

Rankers built here (each a scorer `(target, sources, ground-truth seed) -> {source: score}` as report.py uses):
- `prior_scorer`: how much each source helps on average, from the measured transfer to the *other* targets
  (never the target's own row); a source that helps everywhere ranks first whatever the target.
- `rank_average`: a weighted mean of two rankers' ranks (rank averaging: their scores live on different scales).
- `ensemble`: the mean of several rankers' scores (e.g. the similarities of two embedding seeds).

Example:
    >>> rows = {"a": {"t1": {"ndcg": 0.9}, "t2": {"ndcg": 0.1}}, "b": {"t1": {"ndcg": 0.5}, "t2": {"ndcg": 0.5}}}
    >>> loto_select(rows)[1]   # t1 is scored with the choice made on t2, and t2 with the choice made on t1
    {'t1': 'b', 't2': 'a'}
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.stats import rankdata

from taskemb_hub.evaluation.ranking_metrics import gains, nanmean
from taskemb_hub.evaluation.transfer import BASE


def _mean(rows: dict[str, dict], targets, key: str) -> float:
    value = nanmean([rows[t][key] for t in targets])
    return value if value == value else float("-inf")


def common_targets(candidates: dict[str, dict[str, dict]]) -> list[str]:
    """Targets every candidate scored (a choice is only fair between candidates scored on the same targets)."""
    return sorted(set.intersection(*(set(rows) for rows in candidates.values()))) if candidates else []


def in_sample_best(candidates: dict[str, dict[str, dict]], key: str = "ndcg") -> str:
    """The candidate with the best mean `key` over every common target (the in-sample choice)."""
    targets = common_targets(candidates)
    return max(sorted(candidates), key=lambda c: _mean(candidates[c], targets, key))


def loto_select(candidates: dict[str, dict[str, dict]], key: str = "ndcg") -> tuple[dict[str, dict], dict[str, str]]:
    """Leave-one-target-out choice among candidates (label -> target -> metrics).

    Args:
        candidates: each candidate's per-target metrics (report.py's `rows`).
        key: the metric the choice maximises on the other targets (ties: the first label in sorted order).

    Returns:
        (per-target metrics of the candidate chosen for each target, target -> the label chosen for it).
    """
    targets = common_targets(candidates)
    rows, chosen = {}, {}
    for target in targets:
        others = [t for t in targets if t != target]
        label = max(sorted(candidates), key=lambda c: _mean(candidates[c], others, key))
        rows[target], chosen[target] = candidates[label][target], label
    return rows, chosen


def prior_scorer(complete: dict[tuple, dict], strict: bool = False):
    """Rank sources by their mean relative transfer gain (negatives clipped, the NDCG gain) on the other targets.

    Args:
        complete: the scored ground-truth rows, (target, seed) -> {source or "base": accuracy}.
        strict: use only the other targets' rows at *other* ground-truth seeds. A seed's source models are shared
            by every target of that seed, so a source model that came out well helps the target's row too: the
            strict prior shows how much of the plain prior is that shared luck.

    Returns:
        A scorer: (target, sources, seed) -> {source: prior}; a target's own rows are never read.
    """
    def scorer(target, sources, seed):
        per_source = {}
        for s in sources:
            by_target = defaultdict(list)
            for (t, sd), row in complete.items():
                if t in (target, s) or s not in row or (strict and sd == seed):
                    continue
                by_target[t].append(gains({s: row[s]}, row[BASE])[s])
            per_source[s] = float(np.mean([np.mean(v) for v in by_target.values()])) if by_target else 0.0
        return per_source
    return scorer


def rank_average(scorer_a, scorer_b, weight_a: float = 0.5):
    """`weight_a` × rank under `scorer_a` + (1 − `weight_a`) × rank under `scorer_b` (higher = ranked first; tied
    scores share their mean rank). None when either ranker cannot score the target."""
    def scorer(target, sources, seed):
        a, b = scorer_a(target, sources, seed), scorer_b(target, sources, seed)
        if a is None or b is None:
            return None
        ra, rb = rankdata([a[s] for s in sources]), rankdata([b[s] for s in sources])
        return {s: float(weight_a * x + (1 - weight_a) * y) for s, x, y in zip(sources, ra, rb)}
    return scorer


def ensemble(scorers):
    """The mean score of several rankers on the same scale (e.g. one embedding's similarities at several seeds)."""
    def scorer(target, sources, seed):
        each = [sc(target, sources, seed) for sc in scorers]
        if any(e is None for e in each):
            return None
        return {s: float(np.mean([e[s] for e in each])) for s in sources}
    return scorer


def normalised(ndcg: float, random: float, ceiling: float) -> float:
    """(NDCG − random) / (noise ceiling − random): 0 = a random order, 1 = the other ground-truth seeds' order."""
    return (ndcg - random) / (ceiling - random)


def sources_beating_base(per_seed: dict[tuple, dict], test_rows: dict[str, int], sources: list[str],
                         z: float = 2.0) -> dict[str, dict]:
    """Targets whose best source (seed-mean accuracy) beats base (seed-mean) by more than `z` binomial SE of one
    accuracy, √(p(1−p)/n) at base's p on the target's n test rows; the best of 15 is a maximum, so a few pass
    by noise alone.

    Returns:
        target -> {"best": source, "margin": accuracy points, "se": SE, "seeds": seeds measured} for the targets that pass.
    """
    by_target = defaultdict(list)
    for (t, _sd), row in per_seed.items():
        by_target[t].append(row)
    found = {}
    for t, rows in sorted(by_target.items()):
        have = [s for s in sources if s != t and all(s in r for r in rows)]
        if not have or not all(BASE in r for r in rows):
            continue
        base = float(np.mean([r[BASE] for r in rows]))
        mean = {s: float(np.mean([r[s] for r in rows])) for s in have}
        best = max(have, key=mean.get)
        se = (base * (1 - base) / test_rows[t]) ** 0.5
        if mean[best] - base > z * se:
            found[t] = {"best": best, "margin": round(mean[best] - base, 4), "se": round(se, 4), "seeds": len(rows)}
    return found


def sources_beating_base_by_seed_noise(per_seed: dict[tuple, dict], sources: list[str], z: float = 2.0,
                                       draws: int = 200_000) -> tuple[dict[str, dict], float]:
    """Targets whose best source (seed-mean) beats base (seed-mean) by more than `z` SE of the difference, the SE
    taken from the measured seed-to-seed spread of the target's cells (pooled within-cell variance), not from
    binomial noise alone; and how many targets would pass by noise alone.

    The best of 15 noisy sources is a maximum: with every cell equal in truth, a target passes when
    max_i Z_i − Z_0 > z·√2 (Z standard normal), a probability the function estimates by simulation (seeded).

    Returns:
        (target -> {"best", "margin", "se", "seeds"} for the targets that pass, expected passes by noise alone).
    """
    by_target = defaultdict(list)
    for (t, _sd), row in per_seed.items():
        by_target[t].append(row)
    found, counted, per_count = {}, 0, {}
    for t, rows in sorted(by_target.items()):
        have = [s for s in sources if s != t and all(s in r for r in rows)]
        if len(rows) < 2 or not have or not all(BASE in r for r in rows):
            continue
        cells = have + [BASE]
        variance = float(np.mean([np.var([r[c] for r in rows], ddof=1) for c in cells]))
        se = (2 * variance / len(rows)) ** 0.5
        mean = {c: float(np.mean([r[c] for r in rows])) for c in cells}
        best = max(have, key=mean.get)
        counted += 1
        per_count[len(have)] = per_count.get(len(have), 0) + 1
        if mean[best] - mean[BASE] > z * se:
            found[t] = {"best": best, "margin": round(mean[best] - mean[BASE], 4), "se": round(se, 4), "seeds": len(rows)}
    rng = np.random.default_rng(0)
    expected = 0.0
    for n_sources, n_targets in per_count.items():
        noise = rng.standard_normal((draws, n_sources + 1))
        expected += n_targets * float(np.mean(noise[:, 1:].max(1) - noise[:, 0] > z * 2 ** 0.5))
    return found, expected
