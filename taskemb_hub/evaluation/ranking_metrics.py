"""How good is a ranking of source tasks, given the measured transfer?

For one target t with base score p(t) (fine-tuned from the plain base model) and transfer scores
p(s→t) (fine-tuned from source s first):

- **gain** (default `relative`): g(s) = max(0, (p(s→t) − p(t)) / p(t)), the relative transfer
  gain, with negative transfer clipped to 0 (a source that hurts is as useless as none).
  `shifted` uses p(s→t) − min_s p(s→t) instead (every target then has some positive gain);
  `exponential` is the gain of Schulte et al. 2024 (hf-dataset-selector): 2^(100 · p(s→t)) − 1,
  which all but ignores every source below the best few.
- **NDCG** over the whole ranking: DCG = Σ_i g(s_i) / log2(i + 1) over the predicted order,
  divided by the DCG of the order sorted by g. NaN when no source has a positive gain (nothing
  to rank for); such targets are counted and left out of averages.
- **ρ** (Vu et al. 2020): the predicted rank of the truly best source (highest p(s→t)); 1 is perfect.
  When several sources tie for best (the same accuracy on the same test rows), ρ is the mean of
  their predicted ranks, so it does not depend on the order the sources are listed in.
- **Regret@k** (Poth et al. 2021): (max_s p(s→t) − max_{s in top k} p(s→t)) / max_s p(s→t) × 100.
- **Spearman** between predicted scores and measured p(s→t).
"""

from __future__ import annotations

import math

import numpy as np


def gains(transfer: dict[str, float], base: float, kind: str = "relative") -> dict[str, float]:
    if kind == "relative":
        return {s: max(0.0, (p - base) / base) if base > 0 else 0.0 for s, p in transfer.items()}
    if kind == "shifted":
        low = min(transfer.values())
        return {s: p - low for s, p in transfer.items()}
    if kind == "exponential":
        return {s: 2.0 ** (100.0 * p) - 1.0 for s, p in transfer.items()}
    raise ValueError(f"gain kind must be 'relative', 'shifted' or 'exponential', not {kind!r}")


def ndcg(predicted_order: list[str], gain: dict[str, float]) -> float:
    ideal = sorted(gain.values(), reverse=True)
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return float("nan")
    return sum(gain[s] / math.log2(i + 2) for i, s in enumerate(predicted_order)) / idcg


TIE_TOLERANCE = 1e-9  # accuracies on the same test rows are equal exactly or differ by at least 1 / rows


def best_source_rank(predicted_order: list[str], transfer: dict[str, float]) -> float:
    """Predicted rank (1 = first) of the truly best source; the mean rank of the best sources when they tie.

    Example:
        >>> best_source_rank(["a", "b", "c"], {"a": 0.7, "b": 0.8, "c": 0.8})
        2.5
    """
    top = max(transfer.values())
    ranks = [i + 1 for i, s in enumerate(predicted_order) if transfer[s] >= top - TIE_TOLERANCE]
    return sum(ranks) / len(ranks)


def regret_at_k(predicted_order: list[str], transfer: dict[str, float], k: int = 3) -> float:
    best = max(transfer.values())
    got = max(transfer[s] for s in predicted_order[:k])
    return 100.0 * (best - got) / best if best else 0.0


def spearman(scores: dict[str, float], transfer: dict[str, float]) -> float:
    from scipy.stats import spearmanr

    keys = list(transfer)
    value = spearmanr([scores[k] for k in keys], [transfer[k] for k in keys]).statistic
    return float(value) if value == value else float("nan")


def evaluate_ranking(scores: dict[str, float], transfer: dict[str, float], base: float, *, k: int | tuple = 3,
                     gain_kind: str = "relative") -> dict[str, float]:
    """All metrics for one target. `scores`: predicted similarity per source (higher = better); sources with
    equal scores are ordered by name. `k`: one cut-off or several (a `regret@k` key each)."""
    missing = set(transfer) - set(scores)
    if missing:
        raise ValueError(f"no predicted score for sources {sorted(missing)}")
    order = sorted(transfer, key=lambda s: (-scores[s], s))
    return {"ndcg": ndcg(order, gains(transfer, base, gain_kind)), "rho": best_source_rank(order, transfer),
            **{f"regret@{n}": regret_at_k(order, transfer, n) for n in ((k,) if isinstance(k, int) else k)},
            "spearman": spearman(scores, transfer)}


def nanmean(values) -> float:
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")
