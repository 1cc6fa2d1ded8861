"""The vectors of one compatibility signature as one matrix, and the similarity scores against it.

Rows are stored unit-normalised with their norms beside them: cosine is then one matrix-vector
product, the centred similarity two, and the matrix may be float16 (an index memory-maps it)
without a float32 copy.

`VectorGroup.top` returns the best k rows with exact scores by one of three paths (`_ann.choose_search`):

- `exact`: every row is read. On float16 rows the product is taken in float16 with float32
  accumulation (several times faster than converting blocks to float32), whose rounding is bounded:
  every row whose score interval can reach the k-th best is re-scored (float32 products, combined in
  float64, as `scores` does), so the top-k and their scores are those of the exact scan.
- `projection`: the projected rows (`_ann.Projection`, 1,024 values) are scanned, then the best
  candidates are re-scored exactly from the full rows.
- `ann`: an HNSW index (faiss) over the projected rows gives the candidates; same re-scoring.

Leave-one-out is a mask (`keep`), never a copy of the matrix; masked rows score -inf.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from ._ann import AnnIndex, Projection, PROJECTION_DIM, candidate_count

_BLOCK_ROWS = 4096  # float16 rows are converted to float32 this many at a time
_F16_BLOCK_ROWS = 65536  # float16 products are taken this many rows at a time (bounded index sizes)
_FLOAT32_COPY_BYTES = 512 * 2**20  # below this, a float16 matrix gets one float32 copy (faster products)
_EPS = 1e-12
PCR_SAMPLE_ROWS = 1024  # principal directions of larger groups come from a seeded sample of this many rows
_PCR_CANCELLATION = 1e-3  # ‖Pb‖² below this share of n² + ‖μ‖²: re-scored from the full row in float64
_ANN_BUILD = threading.Lock()  # one HNSW build at a time (it uses every core); held only while building
# Bound on |float16-kernel product − float64 product| for a unit row and a unit query: the query's
# rounding to float16 (2^-11), the output's rounding (2^-11) and float32 accumulation, with margin.
_F16_PRODUCT_ERROR = 2.0 ** -8


def removed_components(similarity: str) -> int:
    """k for `pcr-<k>` (principal component removal, `taskemb_hub.ranking.similarity`), else 0."""
    return int(similarity[4:]) if similarity.startswith("pcr-") else 0


@dataclass
class VectorGroup:
    """The entries of one signature: `unit[i] * norms[i]` is entry `rows[i]`'s vector.

    Args:
        rows: the entries' positions in the selector's entry list.
        unit: n×d unit-norm rows (a zero vector stays a zero row), float32 or float16.
        norms: the rows' original norms (n, float32).
        mean: the mean of the original vectors (d, float32): the centre of `centered` similarity.
        projected: n×`PROJECTION_DIM` float16 projection of `unit` (an index stores it); computed on
            first use when absent.
        cache_key: names the stored rows (an index shard: its file, size and time); with it, a built
            HNSW graph is kept on disk for the next process (`AnnIndex.store`/`restore`).
    """

    rows: list[int]
    unit: torch.Tensor
    norms: torch.Tensor
    mean: torch.Tensor
    projected: torch.Tensor | None = None
    cache_key: str | None = None
    _unit_dot_mean: torch.Tensor | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)  # first-stage quantities, built once per group

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

    # ---- exact products ----------------------------------------------------------------------
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
        elif removed_components(similarity):
            out = self._pcr_scores(None, t, removed_components(similarity), keep)
        else:
            mu, u_mu = self._centre(keep)
            tc = t - mu
            inner = self.norms.double() * self.matvec(tc).double() - float(tc.double() @ mu.double())
            sq = self.norms.double() ** 2 - 2 * self.norms.double() * u_mu.double() + float(mu.double() @ mu.double())
            out = inner / (sq.clamp_min(0).sqrt() * float(tc.norm())).clamp_min(_EPS)
        if keep is not None:
            out = out.masked_fill(~keep, float("-inf"))
        return out

    def scores_at(self, positions: torch.Tensor, target: torch.Tensor, similarity: str,
                  keep: torch.Tensor | None = None) -> torch.Tensor:
        """`scores(...)[positions]` (float32 products as `scores` takes them, combined in float64), reading
        only those rows."""
        t = target.float()
        if removed_components(similarity):  # reads the rows itself (k + 2 products each)
            out = self._pcr_scores(positions, t, removed_components(similarity), keep)
            return out if keep is None else out.masked_fill(~keep[positions], float("-inf"))
        rows = self.unit[positions].float()
        norms = self.norms[positions].double()
        if similarity == "cosine":
            out = (rows @ t).double() / max(float(t.norm()), _EPS)
        else:
            mu = self._kept_mean(keep).float()
            tc = t - mu
            products = (rows @ torch.stack([tc, mu], 1)).double()
            inner = norms * products[:, 0] - float(tc.double() @ mu.double())
            sq = norms ** 2 - 2 * norms * products[:, 1] + float(mu.double() @ mu.double())
            out = inner / (sq.clamp_min(0).sqrt() * float(tc.norm())).clamp_min(_EPS)
        if keep is not None:
            out = out.masked_fill(~keep[positions], float("-inf"))
        return out

    def _directions(self, keep: torch.Tensor | None, k: int) -> torch.Tensor:
        """The top-k principal directions V (d×k, float64, orthonormal) of the kept rows, centred.

        The rows they are found from are the group's (at most `PCR_SAMPLE_ROWS`; a seeded sample of that many
        above), less the rows `keep` leaves out: a target ranked leave-one-out never shapes its own directions.
        Their Gram matrix is built once per group; a mask then costs an eigendecomposition of it and one product
        with the kept rows, not a new pass over the group."""
        basis = self._pcr_basis()
        rows = basis["rows"]
        kept = torch.ones(len(rows), dtype=torch.bool) if keep is None else keep[rows]
        if bool(kept.all()):
            key = ("pcr_directions", k)
            if key not in self._cache:
                self._cache[key] = self._top_directions(basis, kept, k)
            return self._cache[key]
        return self._top_directions(basis, kept, k)

    def _pcr_basis(self) -> dict:
        """The rows directions are found from, shifted by the group mean, and their Gram matrix (once per group)."""
        if "pcr_basis" not in self._cache:
            rows = torch.arange(len(self))
            if len(self) > PCR_SAMPLE_ROWS:
                rows = torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:PCR_SAMPLE_ROWS].sort().values
            x = self.unit[rows].double() * self.norms[rows].double().unsqueeze(1) - self.mean.double()
            self._cache["pcr_basis"] = {"rows": rows, "x": x, "gram": x @ x.T}
        return self._cache["pcr_basis"]

    @staticmethod
    def _top_directions(basis: dict, kept: torch.Tensor, k: int) -> torch.Tensor:
        # centring the kept rows' Gram matrix: (I − 11ᵀ/m) G (I − 11ᵀ/m) (shift-invariant, so the stored rows'
        # shift by the group mean does not matter); then X Xᵀ = W Λ Wᵀ and V = Xᵀ W Λ^(-1/2)
        idx = kept.nonzero().flatten()
        g = basis["gram"][idx][:, idx]
        row_mean = g.mean(1, keepdim=True)
        centred = g - row_mean - row_mean.T + g.mean()
        values, w = _top_eigenpairs(centred, k)
        top = values > 1e-12 * max(float(values.max()) if len(values) else 0.0, _EPS)
        values, w = values[top], w[:, top]
        w = w - w.mean(0, keepdim=True)  # Xᵀw = (rows − their mean)ᵀ w: the columns of w sum to zero
        if len(idx) < len(kept):  # zero weights for the left-out rows: no copy of the kept rows of X (d wide)
            w = torch.zeros(len(kept), w.shape[1], dtype=w.dtype).index_copy_(0, idx, w)
        return (basis["x"].T @ w) / values.sqrt()

    def _pcr_scores(self, positions: torch.Tensor | None, t: torch.Tensor, k: int, keep) -> torch.Tensor:
        """Cosine of P(t − μ) and P(m_i − μ), P projecting out the top-k principal directions V, μ the kept rows'
        mean. The target is projected explicitly (pa = a − V Vᵀa, so ⟨Pa, Pb⟩ = ⟨pa, b⟩); per row,
        b_i = n_i u_i − μ gives ⟨pa, b_i⟩ = n_i⟨u_i, pa⟩ − ⟨pa, μ⟩ and ‖Pb_i‖² = ‖b_i‖² − ‖Vᵀb_i‖² with
        Vᵀb_i = n_i Vᵀu_i − Vᵀμ: one product of each row (all, or `positions`) with k + 2 columns. Where that
        difference cancels (a row lying almost within the removed directions or at the mean), the row is re-scored
        from its full vector in float64."""
        mu = self._kept_mean(keep).double()
        v = self._directions(keep, k)
        a = t.double() - mu
        pa = a - v @ (v.T @ a)
        queries = torch.cat([pa.unsqueeze(1), mu.unsqueeze(1), v], 1).float()
        index = torch.arange(len(self)) if positions is None else positions
        if positions is None:
            products = torch.cat([self.unit[s:s + _BLOCK_ROWS].float() @ queries
                                  for s in range(0, len(self), _BLOCK_ROWS)]).double()
        else:
            products = (self.unit[positions].float() @ queries).double()
        n = self.norms[index].double()
        vb = n.unsqueeze(1) * products[:, 2:] - v.T @ mu
        inner = n * products[:, 0] - float(pa @ mu)
        b_sq = n ** 2 - 2 * n * products[:, 1] + float(mu @ mu) - (vb ** 2).sum(1)
        pa_norm = float(pa.norm())
        out = inner / (b_sq.clamp_min(0).sqrt() * pa_norm).clamp_min(_EPS)
        # float32 products carry about 2^-20 of n² + ‖μ‖² of error: below ~1e-3 of it, ‖Pb‖² is not known
        unsure = (b_sq < _PCR_CANCELLATION * (n ** 2 + float(mu @ mu))).nonzero().flatten()
        if len(unsure):
            b = self.unit[index[unsure]].double() * n[unsure].unsqueeze(1) - mu
            pb = b - (b @ v) @ v.T
            norm = pb.norm(dim=1)
            exact = (pb @ pa) / (norm * pa_norm).clamp_min(_EPS)
            out[unsure] = torch.where(norm > 1e-9 * n[unsure], exact, torch.zeros_like(exact))  # in the span: no angle
        return out.clamp(-1.0, 1.0)

    def _projected_pcr_parts(self, k: int) -> dict:
        """What the pcr first stage needs per group, in the projected space throughout (mixing exact and projected
        quantities can make ‖Pb‖² negative): Q, an orthonormal basis of the projected directions; the projected
        mean; and each row's ‖P(n_i p_i − p_μ)‖². One pass over the projected rows, once per group."""
        key = ("pcr_projected", k)
        if key not in self._cache:
            parts = self._projected_parts()
            p = self.projected_rows()
            q, _ = torch.linalg.qr(self.projection()(self._directions(None, k).T.float()).T.double())
            pm = parts["proj_mean"].double()
            qp = torch.cat([p[s:s + _F16_BLOCK_ROWS].float() @ q.float() for s in range(0, len(self), _F16_BLOCK_ROWS)])
            n = self.norms.double()
            qb = n.unsqueeze(1) * qp.double() - q.T @ pm
            b_sq = n ** 2 * parts["proj_sq"].double() - 2 * n * parts["proj_dot_mean"].double() + float(pm @ pm)
            self._cache[key] = {"q": q, "pm": pm, "norm": (b_sq - (qb ** 2).sum(1)).clamp_min(0).sqrt().float()}
        return self._cache[key]

    def _projected_pcr_scores(self, target: torch.Tensor, k: int) -> torch.Tensor:
        """Approximate pcr scores of every row from the projected rows: one float16 product per query (the group's
        mean and directions stand for the kept ones, as in `_projected_scores`)."""
        parts = self._projected_pcr_parts(k)
        q, pm = parts["q"], parts["pm"]
        pa = self.projection()((target.float() - self.mean.float())).double()
        pa = pa - q @ (q.T @ pa)
        pa = pa / pa.norm().clamp_min(_EPS)
        a = self._f16_matvec(self.projected_rows(), pa.float())
        return (self.norms * a - float(pa @ pm)) / parts["norm"].clamp_min(_EPS)

    def _kept_mean(self, keep: torch.Tensor | None) -> torch.Tensor:
        """The mean of the kept rows: the stored mean, less the left-out rows (no re-averaging)."""
        if keep is None or bool(keep.all()):
            return self.mean
        dropped = (~keep).nonzero().flatten()
        n, kept = len(self), int(keep.sum())
        removed = (self.unit[dropped].float() * self.norms[dropped].unsqueeze(1)).sum(0)
        return (self.mean * n - removed) / max(kept, 1)

    def _centre(self, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean of the kept rows and ⟨u_i, mean⟩; computed once for the whole group."""
        if keep is None or bool(keep.all()):
            if self._unit_dot_mean is None:
                self._unit_dot_mean = self.matvec(self.mean)
            return self.mean, self._unit_dot_mean
        mu = self._kept_mean(keep)
        return mu, self.matvec(mu)

    # ---- the best k -------------------------------------------------------------------------
    def top(self, target: torch.Tensor, similarity: str, k: int, keep: torch.Tensor | None = None,
            search: str = "exact") -> tuple[torch.Tensor, torch.Tensor]:
        """The best `k` kept rows for `target`: (positions, float64 scores), best first, exact scores.

        Args:
            target: the target's vector.
            similarity: `cosine`, `centered` or `pcr-<k>`.
            k: how many (at most the number of kept rows).
            keep: rows that may be returned (leave-one-out masks the target's own entry).
            search: `exact`, `projection` or `ann` (see the module docstring).
        """
        excluded = 0 if keep is None else int((~keep).sum())
        k = min(k, len(self) - excluded)
        if search == "exact":
            candidates = self._bounded_candidates(target, similarity, keep, k)
        else:
            count = candidate_count(k, excluded)
            candidates = (self._projection_candidates(target, similarity, keep, count) if search == "projection"
                          else self._ann_candidates(target, similarity, keep, count))
        if candidates is None:  # the exact product is as cheap as any filter
            scores = self.scores(target, similarity, keep)
            candidates = torch.arange(len(self))
        else:
            scores = self.scores_at(candidates, target, similarity, keep)
        # best first; equal scores in row order (a stable sort of rows already in ascending order)
        candidates, order = candidates.sort()
        scores = scores[order]
        best = torch.sort(scores, descending=True, stable=True).indices[:k]
        return candidates[best], scores[best]

    def _f16_matvec(self, matrix: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """`matrix @ v` by the float16 kernel (float32 accumulation, float16 output), as float32."""
        v = v.to(matrix.dtype)
        out = torch.empty(matrix.shape[0], dtype=torch.float32)
        for start in range(0, matrix.shape[0], _F16_BLOCK_ROWS):
            out[start:start + _F16_BLOCK_ROWS] = matrix[start:start + _F16_BLOCK_ROWS] @ v
        return out

    def _bounded_candidates(self, target, similarity, keep, k) -> torch.Tensor | None:
        """Rows whose score can reach the k-th best, from the float16 product and its error bound.

        Every product a = ⟨u_i, q⟩ (unit q) is known within ±E; each row's score then lies in an
        interval, and a row is a candidate unless its upper end is below the k-th largest lower end.
        None when the rows are float32 (the exact product is as fast) or the filter keeps too many.
        """
        if self.unit.dtype != torch.float32 and self.unit.numel() * 4 <= _FLOAT32_COPY_BYTES:
            self.unit = self.unit.float()  # small enough: one float32 copy (as `matvec` makes)
        if self.unit.dtype == torch.float32 or removed_components(similarity):
            return None  # float32 rows: the exact product is as fast; pcr: no bound derived, read every row
        e = _F16_PRODUCT_ERROR
        t = target.float()
        if similarity == "cosine":
            a = self._f16_matvec(self.unit, t / t.norm().clamp_min(_EPS)).double()
            lo, hi = a - e, a + e
        else:
            mu = self._kept_mean(keep)
            tc = t - mu
            tn = float(tc.norm().clamp_min(_EPS))
            a = self._f16_matvec(self.unit, tc / tn).double()
            mu_norm = float(self.mean.norm())
            if "u_dot_mean" not in self._cache:  # ⟨u_i, μ⟩ of the whole group, within ±E‖μ‖
                self._cache["u_dot_mean"] = self._f16_matvec(self.unit, self.mean / max(mu_norm, _EPS)) * mu_norm
            b = self._cache["u_dot_mean"].double()
            e_b = e * mu_norm + float((mu - self.mean).norm())  # the kept mean differs from the stored one
            n = self.norms.double()
            c = float(tc.double() @ mu.double()) / tn
            num_lo, num_hi = n * (a - e) - c, n * (a + e) - c
            sq = n ** 2 - 2 * n * b + float(mu.double() @ mu.double())
            den_lo = (sq - 2 * n * e_b).clamp_min(_EPS).sqrt()
            den_hi = (sq + 2 * n * e_b).clamp_min(_EPS).sqrt()
            hi = torch.where(num_hi >= 0, num_hi / den_lo, num_hi / den_hi)
            lo = torch.where(num_lo >= 0, num_lo / den_hi, num_lo / den_lo)
        if keep is not None:
            lo = lo.masked_fill(~keep, float("-inf"))
            hi = hi.masked_fill(~keep, float("-inf"))
        threshold = torch.topk(lo, k).values[-1]
        candidates = (hi >= threshold).nonzero().flatten()
        return None if len(candidates) > len(self) // 4 else candidates

    # ---- first stages ----------------------------------------------------------------------
    def projection(self) -> Projection:
        return Projection(self.dim, PROJECTION_DIM)

    def projected_rows(self) -> torch.Tensor:
        """The float16 projection of the unit rows (stored by an index; else computed once, in blocks)."""
        if self.projected is None:
            projection = self.projection()
            out = torch.empty(len(self), projection.dim_out, dtype=torch.float16)
            for start in range(0, len(self), _BLOCK_ROWS):
                out[start:start + _BLOCK_ROWS] = projection(self.unit[start:start + _BLOCK_ROWS]).half()
            self.projected = out
        return self.projected

    def _projected_parts(self) -> dict:
        """‖Pu_i‖², Pμ and ⟨Pu_i, Pμ⟩: what the projected scores need beside one product per query."""
        if "proj_sq" not in self._cache:
            p = self.projected_rows()
            sq = torch.empty(len(self), dtype=torch.float32)
            for start in range(0, len(self), _BLOCK_ROWS):
                sq[start:start + _BLOCK_ROWS] = p[start:start + _BLOCK_ROWS].float().pow(2).sum(1)
            pm = self.projection()(self.mean)
            pm_norm = float(pm.norm().clamp_min(_EPS))
            self._cache.update(proj_sq=sq, proj_norm=sq.sqrt().clamp_min(_EPS), proj_mean=pm,
                               proj_dot_mean=self._f16_matvec(p, pm / pm_norm) * pm_norm)
        return self._cache

    def _projected_query(self, target: torch.Tensor, similarity: str) -> torch.Tensor:
        pt = self.projection()(target.float())
        return pt if similarity == "cosine" else pt - self._projected_parts()["proj_mean"]

    def _projected_scores(self, target: torch.Tensor, similarity: str) -> torch.Tensor:
        """Approximate scores of every row from the projected rows (the group's mean stands for the kept mean)."""
        parts = self._projected_parts()
        p = self.projected_rows()
        q = self._projected_query(target, similarity)
        q = q / q.norm().clamp_min(_EPS)
        a = self._f16_matvec(p, q)
        if similarity == "cosine":
            return a / parts["proj_norm"]
        pm = parts["proj_mean"]
        n = self.norms
        num = n * a - float(q @ pm)
        sq = n ** 2 * parts["proj_sq"] - 2 * n * parts["proj_dot_mean"] + float(pm @ pm)
        return num / sq.clamp_min(_EPS).sqrt()

    def _projection_candidates(self, target, similarity, keep, count) -> torch.Tensor:
        k = removed_components(similarity)
        approx = self._projected_pcr_scores(target, k) if k else self._projected_scores(target, similarity)
        if keep is not None:
            approx = approx.masked_fill(~keep, float("-inf"))
        return torch.topk(approx, min(count, len(self))).indices

    def ann_ready(self, similarity: str, *, start: bool = True, wait: bool = False) -> bool:
        """Whether the HNSW graph for `similarity` can be searched now, without waiting.

        With `start`, a graph not yet loaded is read from the disk cache or built in a background
        thread (rankings meanwhile scan the projection); with `wait`, this blocks until that ends.
        A failed build (e.g. out of memory) is remembered: False from then on.
        """
        key = f"ann_{similarity}"
        if key in self._cache:
            return True
        thread = self._cache.get(f"{key}_thread")
        if thread is None:
            if not start:
                return False

            def build():
                try:
                    self.ann_index(similarity)
                except Exception as err:  # noqa: BLE001 - the projection scan stays in use
                    self._cache[f"{key}_error"] = err

            thread = threading.Thread(target=build, daemon=True, name=f"taskemb-ann-{similarity}")
            if self._cache.setdefault(f"{key}_thread", thread) is thread:  # one starter per graph
                thread.start()
            thread = self._cache[f"{key}_thread"]
        if wait:
            thread.join()
        return key in self._cache

    def ann_index(self, similarity: str) -> AnnIndex:
        """The HNSW index of this group for `similarity`: loaded, read from the disk cache, or built
        (the centred one holds the projected centred rows n_i·Pu_i − Pμ).

        A graph already loaded is returned without any lock, so queries never wait for a build of
        another graph; the global build lock is held only while a graph is being built.
        """
        key = f"ann_{similarity}"
        if key in self._cache:
            return self._cache[key]
        with self._cache.setdefault(f"{key}_lock", threading.Lock()):  # one loader per graph
            if key in self._cache:
                return self._cache[key]
            p = self.projected_rows()
            cache_key = f"{self.cache_key}|{similarity}" if self.cache_key else None
            index = AnnIndex.restore(cache_key, len(self), p.shape[1]) if cache_key else None
            if index is None:
                if similarity == "cosine":
                    blocks = lambda a, b: p[a:b]  # noqa: E731
                else:
                    pm = self._projected_parts()["proj_mean"]
                    blocks = lambda a, b: p[a:b].float() * self.norms[a:b].unsqueeze(1) - pm  # noqa: E731
                with _ANN_BUILD:
                    index = AnnIndex(len(self), p.shape[1], blocks)
                if cache_key:
                    index.store(cache_key, p.shape[1])
            self._cache[key] = index
        return index

    def _ann_candidates(self, target, similarity, keep, count) -> torch.Tensor:
        found = self.ann_index(similarity).search(self._projected_query(target, similarity), count)
        return found if keep is None else found[keep[found]]


def _top_eigenpairs(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenvalues of a symmetric float64 matrix (descending) and their eigenvectors (columns).

    LAPACK's subset solver (`scipy.linalg.eigh(subset_by_index=...)`) finds only those k: a leave-one-out query
    re-solves a Gram matrix of up to `PCR_SAMPLE_ROWS` rows, and a full decomposition of 1,024 rows costs about
    ten times as much for the same k vectors."""
    from scipy.linalg import eigh

    m, k = len(matrix), min(k, len(matrix))
    if k == 0:
        return matrix.new_zeros(0), matrix.new_zeros((m, 0))
    values, vectors = eigh(matrix.numpy(), subset_by_index=[m - k, m - 1])
    return torch.from_numpy(values[::-1].copy()), torch.from_numpy(vectors[:, ::-1].copy())
