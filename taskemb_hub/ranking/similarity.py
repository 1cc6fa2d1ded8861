"""Similarities between a target's task embedding and a registry's sources, and why there are several.

Raw embeddings of one method share a common direction and a few dominant ones, so a plain cosine gives some
sources (hubs) a high score against almost every target: the ranking then barely depends on the target
(benchmarks/target_dependence.py measures it). Each similarity here uses only the registry itself, never
measured transfer, so it runs at ranking time:

- `cosine`: the plain cosine.
- `centered`: cosine after subtracting the registry's mean vector.
- `pcr-<k>`: centred, then the registry's top k principal directions projected out (principal component
  removal: the directions every entry moves along carry what all tasks share, not what tells them apart).
- `standardized`: centred, each dimension divided by its spread over the registry (with the median variance
  added, so a dimension that hardly varies is not blown up).
- `csls`: cross-domain similarity local scaling (Conneau et al. 2018): 2·cos(t, s) − r(s), where r(s) is the mean
  cosine of s to its 3 nearest registry entries; a source that is close to everything is penalised.
- `hub-corrected`: the cosine standardised per source, (cos(t, s) − mean_j cos(s, j)) / sd_j cos(s, j) over the
  other registry entries j: how unusually close the target is, for that source.

`fuse_scores` combines several rankers' scores on one scale (each z-scored over the sources first).

Example:
    >>> import numpy as np
    >>> registry = np.random.default_rng(0).standard_normal((10, 32))
    >>> SIMILARITY_FUNCTIONS["hub-corrected"](registry[0] + 0.1, registry).argmax()
    0
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CSLS_NEIGHBOURS = 3
_EPS = 1e-12


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def cosine(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
    return _unit(sources) @ _unit(target)


def centered(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
    mean = sources.mean(0)
    return cosine(target - mean, sources - mean)


def principal_removed(k: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def similarity(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
        mean = sources.mean(0)
        rows, t = sources - mean, target - mean
        _, _, vt = np.linalg.svd(rows, full_matrices=False)
        top = vt[:k]
        return cosine(t - (t @ top.T) @ top, rows - (rows @ top.T) @ top)
    return similarity


def standardized(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
    mean, var = sources.mean(0), sources.var(0)
    scale = np.sqrt(var + np.median(var))
    return cosine((target - mean) / scale, (sources - mean) / scale)


def _source_neighbourhood(sources: np.ndarray) -> np.ndarray:
    """The cosines among the sources, with each one's own (1.0) masked out as NaN."""
    unit = _unit(sources)
    among = unit @ unit.T
    np.fill_diagonal(among, np.nan)
    return among


def csls(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
    among = _source_neighbourhood(sources)
    k = min(CSLS_NEIGHBOURS, len(sources) - 1)
    nearest = -np.sort(-np.nan_to_num(among, nan=-np.inf), axis=1)[:, :k]
    return 2 * cosine(target, sources) - nearest.mean(1)


def hub_corrected(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
    among = _source_neighbourhood(sources)
    if len(sources) < 3:  # no spread to standardise by
        return cosine(target, sources)
    mean, sd = np.nanmean(among, 1), np.nanstd(among, 1)
    return (cosine(target, sources) - mean) / np.maximum(sd, 1e-6)


SIMILARITY_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "cosine": cosine,
    "centered": centered,
    "pcr-1": principal_removed(1),
    "pcr-2": principal_removed(2),
    "pcr-3": principal_removed(3),
    "standardized": standardized,
    "csls": csls,
    "hub-corrected": hub_corrected,
}


def zscore(scores: Sequence[float]) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def fuse_scores(score_lists: Sequence[Sequence[float]], weights: Sequence[float]) -> np.ndarray:
    """Σ_i w_i · zscore(scores_i): several rankers' scores of the same sources, on one scale."""
    return sum(w * zscore(s) for s, w in zip(score_lists, weights))
