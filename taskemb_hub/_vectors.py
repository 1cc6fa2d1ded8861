"""The vectors of one compatibility signature as one matrix, and the similarity scores against it.

Rows are stored unit-normalised with their norms beside them: cosine is then one matrix-vector
product, the centred similarity two, and the matrix may be float16 (an index memory-maps it)
without a float32 copy: products are taken in float32 over blocks of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

_BLOCK_ROWS = 4096  # float16 rows are converted to float32 this many at a time
_FLOAT32_COPY_BYTES = 512 * 2**20  # below this, a float16 matrix gets one float32 copy (faster products)
_EPS = 1e-12


@dataclass
class VectorGroup:
    """The entries of one signature: `unit[i] * norms[i]` is entry `rows[i]`'s vector.

    Args:
        rows: the entries' positions in the selector's entry list.
        unit: n×d unit-norm rows (a zero vector stays a zero row), float32 or float16.
        norms: the rows' original norms (n, float32).
        mean: the mean of the original vectors (d, float32): the centre of `centered` similarity.
    """

    rows: list[int]
    unit: torch.Tensor
    norms: torch.Tensor
    mean: torch.Tensor
    _unit_dot_mean: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def from_vectors(cls, rows: list[int], vectors: list[torch.Tensor]) -> "VectorGroup":
        matrix = torch.stack([v.float() for v in vectors])
        norms = matrix.norm(dim=1)
        unit = matrix / norms.clamp_min(_EPS).unsqueeze(1)
        return cls(rows=list(rows), unit=unit, norms=norms, mean=matrix.mean(0))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dim(self) -> int:
        return int(self.unit.shape[1])

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """`unit @ v` in float32, in blocks when the matrix is stored in a narrower type."""
        v = v.float()
        if self.unit.dtype != torch.float32 and self.unit.numel() * 4 <= _FLOAT32_COPY_BYTES:
            self.unit = self.unit.float()  # small enough: convert once instead of on every query
        if self.unit.dtype == torch.float32:
            return self.unit @ v
        out = torch.empty(len(self), dtype=torch.float32)
        for start in range(0, len(self), _BLOCK_ROWS):
            out[start:start + _BLOCK_ROWS] = self.unit[start:start + _BLOCK_ROWS].float() @ v
        return out

    def scores(self, target: torch.Tensor, similarity: str, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Similarity of `target` to every row (float64); rows outside `keep` score -inf.

        `centered` subtracts the mean of the kept rows from both sides. With ⟨u_i, μ⟩ known,
        ⟨t−μ, m_i−μ⟩ = n_i⟨u_i, t−μ⟩ − ⟨t−μ, μ⟩ and ‖m_i−μ‖² = n_i² − 2n_i⟨u_i, μ⟩ + ‖μ‖²,
        so no centred copy of the matrix is ever made.
        """
        t = target.float()
        if similarity == "cosine":
            out = self.matvec(t).double() / max(float(t.norm()), _EPS)
        else:
            mu, u_mu = self._centre(keep)
            tc = t - mu
            inner = self.norms.double() * self.matvec(tc).double() - float(tc.double() @ mu.double())
            sq = self.norms.double() ** 2 - 2 * self.norms.double() * u_mu.double() + float(mu.double() @ mu.double())
            out = inner / (sq.clamp_min(0).sqrt() * float(tc.norm())).clamp_min(_EPS)
        if keep is not None:
            out = out.masked_fill(~keep, float("-inf"))
        return out

    def _centre(self, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of the kept rows and ⟨u_i, mean⟩; computed once for the whole group."""
        if keep is None or bool(keep.all()):
            if self._unit_dot_mean is None:
                self._unit_dot_mean = self.matvec(self.mean)
            return self.mean, self._unit_dot_mean
        # Leave-one-out: take the left-out rows out of the stored mean instead of re-averaging.
        dropped = (~keep).nonzero().flatten()
        n, kept = len(self), int(keep.sum())
        removed = (self.unit[dropped].float() * self.norms[dropped].unsqueeze(1)).sum(0)
        mu = (self.mean * n - removed) / max(kept, 1)
        return mu, self.matvec(mu)
