"""The Space's pictures: a bar chart of the top sources, a 2-D map of the registry, a similarity heatmap.

Figures are built with matplotlib's object API (`Figure`, no pyplot), which is safe to call from
several request threads at once and needs no display.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TARGET_COLOR = "#d62728"
TOP_COLOR = "#1f77b4"
OTHER_COLOR = "#b0b0b0"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def bar_chart(names: list[str], scores: list[float], target: str, similarity: str):
    """Horizontal bars of the top sources' scores, best at the top."""
    fig = _figure(6.4, 0.8 + 0.32 * max(len(names), 1))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, scores, color=TOP_COLOR)
    ax.set_yticks(y, [_short(n) for n in names], fontsize=8)
    ax.set_xlabel(f"{similarity} similarity to the target")
    ax.set_title(f"Best sources for {_short(target, 40)}", fontsize=10)
    lo = min(0.0, min(scores, default=0.0))
    ax.set_xlim(lo, max(1.0, max(scores, default=1.0)) * 1.02)
    for yi, s in zip(y, scores):
        ax.text(s, yi, f" {s:.3f}", va="center", fontsize=7)
    return fig


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
        unit = torch.nn.functional.normalize(torch.stack([vectors[i].float() for i in sample]), dim=1)
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
            ((torch.nn.functional.normalize(torch.stack([v.float() for v in vectors[i:i + chunk]]), dim=1) - mean)
             @ comps).numpy() for i in range(0, n, chunk)])
        return cls(list(names), points, mean, comps, explained)

    def project(self, vector: torch.Tensor) -> np.ndarray:
        unit = torch.nn.functional.normalize(vector.float().reshape(1, -1), dim=1)
        return ((unit - self.mean) @ self.components).numpy()[0]


def embedding_map(projection: Projection, target_xy: np.ndarray, target: str, highlight: list[str],
                  label_limit: int = 10):
    """Every registry entry of the target's space as a point; the target and its top sources marked."""
    fig = _figure(6.4, 5.0)
    ax = fig.add_subplot()
    top = set(highlight)
    is_top = np.array([n in top for n in projection.names], dtype=bool)
    pts = projection.points
    small = len(pts) > 500
    ax.scatter(pts[~is_top, 0], pts[~is_top, 1], s=4 if small else 22, c=OTHER_COLOR, alpha=0.6 if small else 0.9,
               label="registry entries", linewidths=0)
    ax.scatter(pts[is_top, 0], pts[is_top, 1], s=36, c=TOP_COLOR, label="top sources", linewidths=0)
    ax.scatter([target_xy[0]], [target_xy[1]], s=160, c=TARGET_COLOR, marker="*", label=f"target: {_short(target, 30)}")
    labelled = [i for i in np.flatnonzero(is_top)][:label_limit]
    if not small:  # a small registry: name every point
        labelled = list(range(len(pts)))
    for i in labelled:
        ax.annotate(_short(projection.names[i], 22), pts[i], fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.annotate(_short(target, 22), target_xy, fontsize=8, color=TARGET_COLOR, weight="bold", xytext=(4, -10),
                textcoords="offset points")
    ex = projection.explained
    ax.set_xlabel(f"PC 1 ({ex[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({ex[1]:.0%} of variance)")
    ax.set_title(f"Task embeddings of the registry ({len(pts)} entries, PCA of unit vectors)", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return fig


def similarity_heatmap(names: list[str], matrix: np.ndarray, title: str):
    """Cosine similarities among the target (first) and its top sources."""
    n = len(names)
    fig = _figure(max(4.8, 1.8 + 0.42 * n), max(3.6, 1.4 + 0.40 * n))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(matrix.min())), vmax=1.0)
    ticks = [_short(x, 20) for x in names]
    ax.set_xticks(range(n), ticks, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), ticks, fontsize=7)
    if n <= 8:  # numbers in the cells; beyond that the text costs more to draw than it helps to read
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if matrix[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine")
    fig.suptitle(title, fontsize=10)  # over the whole figure: an axes title is clipped beside the colour bar
    return fig


def cosine_matrix(vectors: torch.Tensor) -> np.ndarray:
    unit = torch.nn.functional.normalize(vectors.double(), dim=1)
    return (unit @ unit.T).numpy()
