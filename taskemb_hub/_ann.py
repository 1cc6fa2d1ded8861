"""Approximate first stages for large signature groups; `VectorGroup` re-ranks their candidates exactly.

A ranking over a large registry reads every full row once per query (BitFit on MiniLM: 18,432 values a row,
37 GB at a million entries in float16). Two first stages read far less, then the best candidates
are scored exactly from the full (memory-mapped) rows, so every returned score is exact and only
the membership of the candidate set is approximate:

- `Projection`: a seeded signed-bucket random projection (a count sketch) of every unit row to
  `PROJECTION_DIM` values. An index stores it beside the full rows (`projected`); a registry held in
  memory projects once, on the first large ranking. Scanning it reads 1,024 instead of 18,432 values
  a row. Inner products are preserved in expectation, with an error of about `1/√PROJECTION_DIM`.
- `AnnIndex`: an HNSW graph (faiss, the optional extra `taskemb-hub[ann]`) over the projected rows,
  one per similarity (the centred one holds centred rows), built on the first query that needs it.
  Chosen over usearch by benchmarks/ann_choice.py (results/ann_choice.json; see `AnnIndex`).

Which path a ranking takes (`choose_search`): the exact scan below `PROJECTION_MIN_ROWS` rows, when
every row is ranked (`top_k=None`) or when asked (`search="exact"`); above it the projection scan;
above `ANN_MIN_ROWS` the ANN index when faiss is installed (else the projection scan). Building a
graph takes minutes (two cores: ~2-4 minutes per 100k rows, results/ann_choice.json), so with
`search="auto"` the first large ranking starts the build in a background thread and scans the
projection until the graph is ready (`VectorGroup.ann_ready`); `search="ann"` waits for it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROJECTION_DIM = 1024  # values per projected row; an error of about 1/32 in each projected cosine
PROJECTION_SEED = 0  # fixed: an index written on one machine is searched with the same projection elsewhere
PROJECTION_KIND = "signed-bucket/1"  # recorded in the index: another kind of projection is never mixed in
PROJECTION_MIN_ROWS = 20_000  # below this the exact scan is fast enough (BitFit 20k rows: ~0.2 s, 0.8 GB)
ANN_MIN_ROWS = 200_000  # above this an HNSW index (taskemb-hub[ann]) replaces the linear projection scan
RERANK_MIN = 256  # candidates re-ranked exactly: at least this many,
RERANK_PER_RESULT = 20  # and this many per requested result
SEARCHES = ("auto", "exact", "projection", "ann")
_BLOCK_ROWS = 4096


@functools.lru_cache(maxsize=8)
def _plan(dim_in: int, dim_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The projection's column order and signs, from numpy's PCG64 (the same on every platform)."""
    rng = np.random.default_rng(seed)
    order = torch.from_numpy(rng.permutation(dim_in))
    signs = torch.from_numpy(rng.choice(np.float32([-1.0, 1.0]), dim_in))
    return order, signs


@dataclass(frozen=True)
class Projection:
    """A seeded signed-bucket random projection (count sketch) from `dim_in` to `dim_out` values.

    Coordinate `order[i]` is added, with sign `signs[i]`, to output `i mod dim_out`: E⟨Px, Py⟩ = ⟨x, y⟩,
    the cost is one pass over the rows (a dense Gaussian projection of a million BitFit rows is
    ~40 TFLOP: about 15 minutes on two cores; this takes about one).

    Args:
        dim_in: the full vectors' length.
        dim_out: the projected length.
        seed: the seed of the order and signs.

    Example:
        ```python
        >>> Projection(18432)(torch.randn(3, 18432)).shape
        torch.Size([3, 1024])
        ```
    """

    dim_in: int
    dim_out: int = PROJECTION_DIM
    seed: int = PROJECTION_SEED

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """Project rows (b×dim_in or dim_in, any float type) to float32."""
        single = rows.dim() == 1
        x = rows.reshape(-1, self.dim_in)
        order, signs = _plan(self.dim_in, self.dim_out, self.seed)
        out = torch.empty(x.shape[0], self.dim_out, dtype=torch.float32)
        pad = (-self.dim_in) % self.dim_out
        for start in range(0, x.shape[0], _BLOCK_ROWS):
            block = x[start:start + _BLOCK_ROWS].float()[:, order] * signs
            block = torch.nn.functional.pad(block, (0, pad))
            out[start:start + _BLOCK_ROWS] = block.reshape(block.shape[0], -1, self.dim_out).sum(1)
        return out[0] if single else out

    def describe(self) -> dict:
        return {"kind": PROJECTION_KIND, "dim": self.dim_out, "seed": self.seed}


def ann_available() -> bool:
    """Whether the optional ANN library (faiss, `pip install taskemb-hub[ann]`) can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def candidate_count(top_k: int, excluded: int) -> int:
    """How many first-stage candidates to re-rank for `top_k` results (masked rows may come back too)."""
    return max(RERANK_MIN, RERANK_PER_RESULT * top_k) + excluded


def choose_search(rows: int, top_k: int | None, dim: int, search: str = "auto") -> str:
    """The path a ranking of `rows` rows takes: `exact`, `projection` or `ann` (see the module docstring).

    An explicit `search` is honoured, except that ranking every row (`top_k=None`) or a group no
    larger than its candidate set is always exact; `ann` without faiss installed raises.
    """
    if search not in SEARCHES:
        from .errors import TaskEmbHubError

        raise TaskEmbHubError(f"Unknown search {search!r}. Use one of: {', '.join(SEARCHES)}.")
    if top_k is None or rows <= candidate_count(top_k, 0) or search == "exact":
        return "exact"
    if search == "ann" and not ann_available():
        from .errors import TaskEmbHubError

        raise TaskEmbHubError("search='ann' needs faiss: `pip install taskemb-hub[ann]` (or `pip install faiss-cpu`).")
    if search != "auto":
        return search
    if rows >= ANN_MIN_ROWS and ann_available():
        return "ann"
    return "projection" if rows >= PROJECTION_MIN_ROWS else "exact"


def ann_cache_dir() -> Path:
    """Where built HNSW graphs of index shards are kept: `TASKEMB_HUB_ANN_CACHE`, else `HF_HOME/taskemb-hub/ann`
    (outside the hub cache, whose every top-level folder `hf cache scan` reads as a repo)."""
    from huggingface_hub import constants

    return Path(os.environ.get("TASKEMB_HUB_ANN_CACHE") or Path(constants.HF_HOME) / "taskemb-hub" / "ann")


class AnnIndex:
    """An HNSW graph over unit rows stored as float16 (faiss `IndexHNSWSQ`, fp16), searched by inner product.

    faiss rather than usearch: on the same 100k projected rows (benchmarks/ann_choice.py,
    results/ann_choice.json) it built the graph with 38 % less CPU time, answered with 2-2.5x less
    CPU time per query and held 23 % less memory, at the same recall. Building is the costly part:
    `VectorGroup.ann_index` keeps the graph of an index shard on disk, keyed by the shard file and the
    settings (`restore`, `store`), so it is built once per registry version, not once per process.

    Args:
        size, dim: the number and length of the rows.
        row_blocks: `row_blocks(start, stop)` gives rows start..stop-1 (any float type; normalised here),
            so that a million rows are never converted to float32 at once. Row i is key i.

    Example:
        ```python
        >>> rows = torch.randn(1000, 64)
        >>> index = AnnIndex(1000, 64, lambda a, b: rows[a:b])
        >>> index.search(torch.randn(64), 10)
        ```
    """

    CONNECTIVITY = 16  # graph degree M
    EXPANSION_ADD = 128  # efConstruction
    EXPANSION_SEARCH = 512  # efSearch (at least the candidate count): recall 1.0 of the top-10 in ann_choice.json

    def __init__(self, size: int, dim: int, row_blocks):
        import faiss

        self.size = size
        self.index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, self.CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.EXPANSION_ADD
        for start in range(0, size, 65536):
            block = row_blocks(start, min(size, start + 65536)).float()
            block = (block / block.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()
            if not self.index.is_trained:
                self.index.train(block)  # fp16 needs no statistics; faiss asks for the call
            self.index.add(block)

    @classmethod
    def cache_path(cls, key: str, size: int, dim: int) -> Path:
        settings = f"{key}|{size}|{dim}|{cls.CONNECTIVITY}|{cls.EXPANSION_ADD}|{PROJECTION_KIND}|faiss-hnsw-sq-fp16"
        return ann_cache_dir() / f"{hashlib.sha256(settings.encode()).hexdigest()[:32]}.faiss"

    @classmethod
    def restore(cls, key: str, size: int, dim: int) -> "AnnIndex | None":
        """The graph stored under `key`, or None (absent, damaged, another faiss version, another size).
        The file is our own, written by faiss (no pickle)."""
        import faiss

        path = cls.cache_path(key, size, dim)
        if not path.is_file():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return None
        if index.ntotal != size:
            return None
        found = cls.__new__(cls)
        found.size, found.index = size, index
        return found

    def store(self, key: str, dim: int) -> None:
        """Keep the graph on disk under `key` (written whole, then renamed); a read-only cache keeps nothing."""
        import faiss

        path = self.cache_path(key, self.size, dim)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_suffix(f".{os.getpid()}.tmp")
            faiss.write_index(self.index, str(staging))
            os.replace(staging, path)
        except (OSError, RuntimeError):
            pass

    def search(self, query: torch.Tensor, count: int) -> torch.Tensor:
        """Positions of (about) the `count` rows of largest inner product with `query`."""
        q = query.float()
        q = (q / q.norm().clamp_min(1e-12)).numpy()[None]
        self.index.hnsw.efSearch = max(self.EXPANSION_SEARCH, count)
        _, found = self.index.search(q, min(count, self.size))
        found = found[0]
        return torch.from_numpy(found[found >= 0].astype(np.int64))
