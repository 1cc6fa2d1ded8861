"""Synthetic registries for the ranking benchmarks, generated block by block (a 1M-row matrix never
has to be held in memory to be written).

Two kinds of rows:

- `structured`: what a large registry looks like: entries come in clusters of `per_cluster` (one task
  tuned with several seeds, steps or data sizes), cluster centres live in a `rank`-dimensional
  subspace, every vector shares a common direction (raw embeddings of one method do; `centered`
  similarity removes it), plus isotropic noise. Within a cluster cosine is about 0.5-0.6, across
  clusters about 0.3 ± 0.05 (centred: 0.4 and 0 ± 0.06).
- `iid`: independent Gaussian rows, the worst case for any first stage: the true nearest neighbours
  are no nearer than the bulk (cosine ≈ 0 ± 1/√d for every row).

Queries are fresh vectors of existing clusters (a new run of a known task), so their top-10 are
members of one cluster.
"""

from __future__ import annotations

import numpy as np

RANK = 64
PER_CLUSTER = 20
_NOISE_POOL = 2048  # noise rows reused (rolled by block) so that generation is not bound by the random generator


class SyntheticRegistry:
    """Deterministic rows `[start, stop)` of an n×d synthetic registry.

    Args:
        n, dim: registry size.
        kind: `structured` or `iid`.
        seed: everything derives from it.
    """

    def __init__(self, n: int, dim: int, kind: str = "structured", seed: int = 0):
        self.n, self.dim, self.kind, self.seed = n, dim, kind, seed
        rng = np.random.default_rng(seed)
        if kind == "structured":
            self.basis = rng.standard_normal((RANK, dim), dtype=np.float32)
            self.common = rng.standard_normal(dim, dtype=np.float32) * np.float32(np.sqrt(RANK * 0.6))
            clusters = (n + PER_CLUSTER - 1) // PER_CLUSTER
            self.centres = rng.standard_normal((clusters, RANK), dtype=np.float32)
            self.noise_scale = np.float32(np.sqrt(0.5 * RANK))
        self.pool = rng.standard_normal((min(_NOISE_POOL, n), dim), dtype=np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 as float32."""
        out = np.empty((stop - start, self.dim), dtype=np.float32)
        for s in range(start, stop, _NOISE_POOL):
            e = min(stop, s + _NOISE_POOL)
            block = s // _NOISE_POOL
            rng = np.random.default_rng((self.seed, block))
            idx = np.arange(s, e) % len(self.pool)
            noise = np.roll(self.pool[idx], 7 * block, axis=1) * rng.choice(np.float32([-1, 1]), self.dim)
            if self.kind == "iid":
                out[s - start:e - start] = noise
                continue
            z = self.centres[np.arange(s, e) // PER_CLUSTER] + 0.6 * rng.standard_normal((e - s, RANK), dtype=np.float32)
            out[s - start:e - start] = z @ self.basis + self.common + self.noise_scale * noise
        return out

    def queries(self, count: int, seed: int = 1) -> np.ndarray:
        """Fresh vectors of existing clusters (structured) or independent ones (iid), float32."""
        rng = np.random.default_rng((self.seed, seed, 99))
        if self.kind == "iid":
            return rng.standard_normal((count, self.dim), dtype=np.float32)
        clusters = rng.integers(0, len(self.centres), count)
        z = self.centres[clusters] + 0.6 * rng.standard_normal((count, RANK), dtype=np.float32)
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        return z @ self.basis + self.common + self.noise_scale * noise
