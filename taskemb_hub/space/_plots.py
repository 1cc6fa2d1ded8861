"""The Space's figures as data, drawn in the visitor's browser by Gradio's native plots.

Nothing here renders an image: each answer carries small tables, already in the form the page's
components take (`gr.BarPlot` / `gr.ScatterPlot`: columns, rows, datatypes and mark; a coloured
`gr.Dataframe`: headers, rows and per-cell styling), so the server neither draws nor converts
them. What costs more than the answer's own rows is computed once per registry version and
reused: the 2-D PCA of a signature group (`Projection`, fitted on a seeded sample and cached by
the Space per selector) and the map's background points (`Projection.background`); a query
projects only its target.

- `bar_data`: the top sources' scores (bars, best first).
- `map_data`: the registry's entries (at most `MAP_POINTS` shown), the top sources and the target.
- `similarity_table`: cosines among the target and its top sources, coloured like a heatmap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

TARGET_COLOR = "#d62728"
TOP_COLOR = "#1f77b4"
OTHER_COLOR = "#b0b0b0"
KINDS = {"registry entry": OTHER_COLOR, "top source": TOP_COLOR, "target": TARGET_COLOR}  # the map's colours
MAP_POINTS = 2000  # registry points sent per answer at most (a seeded sample, the same for every query)
# viridis at five stops: the heatmap's colour scale, interpolated in RGB (no plotting library needed)
_SCALE = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=float)


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def plot_data(columns: list[str], rows: list[list], mark: str) -> dict:
    """A native plot's value as Gradio sends it (`PlotData`): numbers are quantitative, the rest nominal."""
    first = rows[0] if rows else [None] * len(columns)
    kinds = {c: "quantitative" if isinstance(v, (int, float)) and not isinstance(v, bool) else "nominal"
             for c, v in zip(columns, first)}
    return {"columns": columns, "data": rows, "datatypes": kinds, "mark": mark}


def bar_data(names: list[str], scores: list[float]) -> dict:
    """The top sources' scores, best first (`gr.BarPlot(x="source", y="score")`; `name` for the tooltip)."""
    labels = _unique([f"{i}. {_short(n)}" for i, n in enumerate(names, start=1)])
    return plot_data(["source", "score", "name"],
                     [[label, round(float(score), 4), name] for label, score, name in zip(labels, scores, names)], "bar")


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


@dataclass
class Projection:
    """A 2-D PCA of one signature group of the registry (unit-normalised vectors), fitted once.

    Args:
        names: entry names, in the order of `points`.
        points: (n, 2) coordinates of the entries.
        mean: the mean of the normalised vectors (PCA centre).
        components: (dim, 2) principal directions.
        explained: share of the variance each axis explains.
    """

    names: list[str]
    points: np.ndarray
    mean: torch.Tensor
    components: torch.Tensor
    explained: tuple[float, float]
    _background: object = field(default=None, repr=False, compare=False)
    _index: dict | None = field(default=None, repr=False, compare=False)
    _numpy: tuple | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def fit(cls, names: list[str], vectors: list[torch.Tensor], seed: int = 0, fit_rows: int = 2000,
            chunk: int = 1024) -> "Projection":
        """Fit on at most `fit_rows` vectors (a seeded sample), then project all of them chunk by chunk.

        The registry's vectors are never stacked whole: a 10k-entry BitFit registry would need
        another 0.8 GB for that.
        """
        n = len(vectors)
        generator = torch.Generator().manual_seed(seed)
        sample = torch.randperm(n, generator=generator)[:fit_rows].sort().values.tolist() if n > fit_rows else range(n)
        unit = torch.nn.functional.normalize(_stack(vectors, list(sample)), dim=1)
        mean = unit.mean(0)
        centred = unit - mean
        if unit.shape[0] < 3:  # PCA of 1-2 points: put them on the x axis
            comps = torch.zeros(unit.shape[1], 2)
            if unit.shape[0] == 2:
                comps[:, 0] = torch.nn.functional.normalize(centred[0] - centred[1], dim=0)
            explained = (1.0, 0.0)
        else:
            torch.manual_seed(seed)  # pca_lowrank is randomised; a fixed seed keeps the map stable
            _, s, v = torch.pca_lowrank(centred, q=min(6, *unit.shape), center=False, niter=4)
            comps = v[:, :2]
            total = float((centred * centred).sum()) or 1.0
            explained = tuple(float(x) ** 2 / total for x in s[:2])
        points = np.concatenate([
            ((torch.nn.functional.normalize(_stack(vectors, slice(i, i + chunk)), dim=1) - mean) @ comps).numpy()
            for i in range(0, n, chunk)])
        return cls(list(names), points, mean, comps, explained)

    def project(self, vector: torch.Tensor) -> np.ndarray:
        """The target's point, computed elementwise in numpy: a product this small, handed to torch or BLAS and
        split between threads, waits for a busy core (~10 ms on a loaded machine)."""
        if self._numpy is None:
            self._numpy = (self.mean.numpy().astype(np.float64), np.ascontiguousarray(self.components.numpy().T,
                                                                                    dtype=np.float64))
        mean, components = self._numpy
        v = vector.detach().cpu().float().numpy().astype(np.float64).reshape(-1)
        unit = v / max(float(np.sqrt((v * v).sum())), 1e-12)
        return (components * (unit - mean)).sum(axis=1)  # components: (2, dim)

    def background(self, limit: int | None = None) -> list[list]:
        """The registry's points as the map shows them ([x, y, kind, name]; at most `limit`, default
        `MAP_POINTS`, a seeded sample), built once."""
        with self._lock:
            if self._background is None:
                limit = MAP_POINTS if limit is None else limit
                n = len(self.names)
                shown = np.sort(np.random.default_rng(0).choice(n, limit, replace=False)) if n > limit else np.arange(n)
                xy = self.points[shown].astype(np.float64).round(5).tolist()
                self._background = [[x, y, "registry entry", self.names[i]] for (x, y), i in zip(xy, shown.tolist())]
            return self._background

    def index(self) -> dict[str, int]:
        """Position of each entry name in `points`."""
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        return self._index


def _stack(vectors, rows) -> torch.Tensor:
    """Rows (a list of positions or a slice) of a matrix or of a list of vectors, as one float32 matrix."""
    if isinstance(vectors, torch.Tensor):
        return vectors[rows].float()
    picked = vectors[rows] if isinstance(rows, slice) else [vectors[i] for i in rows]
    return torch.stack([v.float() for v in picked])


def map_data(projection: Projection, target_xy: np.ndarray, target: str, highlight: list[str]) -> dict:
    """The map's points: the registry's (sampled once), the top sources (always shown) and the target last."""
    drawn = {*highlight, target}  # drawn below as what they are, not as plain registry points
    index = projection.index()
    rows = [row for row in projection.background() if row[3] not in drawn]
    for name in highlight:
        if name in index:
            x, y = projection.points[index[name]].astype(np.float64).round(5).tolist()
            rows.append([x, y, "top source", name])
    rows.append([round(float(target_xy[0]), 5), round(float(target_xy[1]), 5), "target", target])
    return plot_data(["x", "y", "kind", "name"], rows, "point")


def _colour(value: float, lo: float) -> str:
    t = 0.0 if value <= lo else min(1.0, (value - lo) / (1.0 - lo or 1.0))
    position = t * (len(_SCALE) - 1)
    i = min(int(position), len(_SCALE) - 2)
    r, g, b = (_SCALE[i] + (position - i) * (_SCALE[i + 1] - _SCALE[i])).round().astype(int)
    text = "white" if t < 0.6 else "black"
    return f"background-color: #{r:02x}{g:02x}{b:02x}; color: {text}"


def similarity_table(names: list[str], matrix: np.ndarray) -> dict:
    """Cosines among the target (first) and its top sources as a table coloured like a heatmap, in the form
    `gr.Dataframe` takes (headers, data, and per-cell `display_value` and `styling`); the first column names
    each row. Built directly: a pandas Styler takes ten times as long for the same cells."""
    labels = _unique([_short(n, 24) for n in names])
    values = np.round(np.asarray(matrix, dtype=float), 3)
    lo = min(0.0, float(values.min())) if values.size else 0.0
    data = [[label, *row] for label, row in zip(labels, values.tolist())]
    return {"headers": ["cosine", *labels], "data": data,
            "metadata": {"display_value": [[label, *(f"{v:.3f}" for v in row)] for label, row in zip(labels, values.tolist())],
                         "styling": [["", *(_colour(v, lo) for v in row)] for row in values.tolist()]}}


def cosine_matrix(vectors) -> np.ndarray:
    """Cosines among the rows of a numpy matrix or tensor (float64; a zero row has cosine 0 with every row)."""
    rows = (vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)).astype(np.float64)
    rows /= np.maximum(np.sqrt(np.einsum("ij,ij->i", rows, rows)), 1e-12)[:, None]
    return np.einsum("ik,jk->ij", rows, rows)  # single-threaded loops, as in `Projection.project`
