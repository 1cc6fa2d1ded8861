"""RESULTS.md's PNG figures: NDCG by checkpoint, and the measured transfer beside the predicted similarity."""

import numpy as np
import torch

from taskemb_hub.evaluation.transfer import BASE

from .data import DEFAULT_METHOD, HERE, MAIN_STEP, SOURCES, load_embeddings

HEATMAP_METHODS = (DEFAULT_METHOD, "textemb")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curve(curve: dict) -> None:
    """results/early_checkpoints.png: NDCG (cosine) by checkpoint step, one line per method."""
    plt = _pyplot()
    plt.figure(figsize=(6.5, 4))
    for method, pts in curve.items():
        xs = sorted(pts)
        plt.plot(xs, [pts[x] for x in xs], marker="o", label=method)
    plt.xscale("log"); plt.xlabel("checkpoint step"); plt.ylabel("NDCG (cosine)"); plt.legend(fontsize=7)
    plt.tight_layout(); plt.savefig(HERE / "results" / "early_checkpoints.png", dpi=120); plt.close()


def plot_heatmap(cells: dict) -> None:
    """results/transfer_matrix.png: the measured gain beside the cosine each heatmap method predicts."""
    plt = _pyplot()
    targets = sources = SOURCES
    heat_panels = [("measured relative gain (p(s→t) − p(t)) / p(t), mean over seeds", gain_matrix(sources, targets, cells), "RdBu", (-0.1, 0.1))]
    for method in HEATMAP_METHODS:
        embs = load_embeddings(method, 0, f"step-{MAIN_STEP}") or load_embeddings(method, 0, "final")
        if all(t in embs for t in targets + sources):
            heat_panels.append((f"predicted: cosine of {method}", similarity_matrix(sources, targets, embs), "viridis", (None, None)))
    fig, axes = plt.subplots(1, len(heat_panels), figsize=(5.2 * len(heat_panels), 5))
    for ax, (title, mat, cmap, (lo, hi)) in zip(np.atleast_1d(axes), heat_panels):
        im = ax.imshow(mat, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_xticks(range(len(targets)), targets, rotation=90, fontsize=7)
        ax.set_yticks(range(len(sources)), sources, fontsize=7)
        ax.set_xlabel("target"); ax.set_ylabel("source"); ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout(); fig.savefig(HERE / "results" / "transfer_matrix.png", dpi=120); plt.close(fig)


def gain_matrix(tasks, targets, cells):
    gain = np.full((len(tasks), len(targets)), np.nan)
    for (s, t), v in cells.items():
        if s != BASE and s in tasks and t in targets and (BASE, t) in cells:
            base = np.mean(cells[(BASE, t)])
            gain[tasks.index(s), targets.index(t)] = (np.mean(v) - base) / base
    return gain


def similarity_matrix(tasks, targets, embs):
    def unit(names):
        vectors = torch.stack([embs[t].vector.double() for t in names])
        return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)

    sims = (unit(tasks) @ unit(targets).T).numpy()
    for i, t in enumerate(tasks):  # self-similarity is 1 and never ranked; hiding it lets the colours spread
        if t in targets:
            sims[i, targets.index(t)] = np.nan
    return sims
