"""How good is a ranking of source tasks, given the measured transfer?

For one target t with base score p(t) (fine-tuned from the plain base model) and transfer scores
p(s→t) (fine-tuned from source s first):

- **gain** (default `relative`): g(s) = max(0, (p(s→t) − p(t)) / p(t)), the relative transfer
  gain, with negative transfer clipped to 0 (a source that hurts is as useless as none).
  `shifted` uses p(s→t) − min_s p(s→t) instead (every target then has some positive gain).
- **NDCG** over the whole ranking: DCG = Σ_i g(s_i) / log2(i + 1) over the predicted order,
  divided by the DCG of the order sorted by g. NaN when no source has a positive gain (nothing
  to rank for); such targets are counted and left out of averages.
- **ρ** (Vu et al. 2020): the predicted rank of the truly best source (highest p(s→t)); 1 is perfect.
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
    raise ValueError(f"gain kind must be 'relative' or 'shifted', not {kind!r}")


def ndcg(predicted_order: list[str], gain: dict[str, float]) -> float:
    ideal = sorted(gain.values(), reverse=True)
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return float("nan")
    return sum(gain[s] / math.log2(i + 2) for i, s in enumerate(predicted_order)) / idcg


def best_source_rank(predicted_order: list[str], transfer: dict[str, float]) -> int:
    best = max(transfer, key=transfer.get)
    return predicted_order.index(best) + 1


def regret_at_k(predicted_order: list[str], transfer: dict[str, float], k: int = 3) -> float:
    best = max(transfer.values())
    got = max(transfer[s] for s in predicted_order[:k])
    return 100.0 * (best - got) / best if best else 0.0


def spearman(scores: dict[str, float], transfer: dict[str, float]) -> float:
    from scipy.stats import spearmanr

    keys = list(transfer)
    value = spearmanr([scores[k] for k in keys], [transfer[k] for k in keys]).statistic
    return float(value) if value == value else float("nan")


def evaluate_ranking(scores: dict[str, float], transfer: dict[str, float], base: float, *, k: int = 3,
                     gain_kind: str = "relative") -> dict[str, float]:
    """All metrics for one target. `scores`: predicted similarity per source (higher = better)."""
    missing = set(transfer) - set(scores)
    if missing:
        raise ValueError(f"no predicted score for sources {sorted(missing)}")
    order = sorted(transfer, key=lambda s: (-scores[s], s))
    return {"ndcg": ndcg(order, gains(transfer, base, gain_kind)), "rho": best_source_rank(order, transfer),
            f"regret@{k}": regret_at_k(order, transfer, k), "spearman": spearman(scores, transfer)}


def nanmean(values) -> float:
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")
