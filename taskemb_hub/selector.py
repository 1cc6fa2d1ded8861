"""`AutoSourceSelector`: rank a registry's source tasks for a target task."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from huggingface_hub import ModelHubMixin

from .cards import TAG
from .embedding import TaskEmbedding, load_embedding
from .errors import RegistryError, TaskEmbHubError
from .registries import LocalRegistry, RegistryEntry

SIMILARITIES = ("cosine", "centered")
DEFAULT_SIMILARITY = "cosine"
SNAPSHOT_VECTORS = "registry.safetensors"
SNAPSHOT_ENTRIES = "registry.json"


@dataclass
class Ranking:
    """Sources best first, with scores, the entries that were left out and why, and warnings about
    the comparison (a target tuned with another recipe than the sources', one that barely learned)."""

    target: TaskEmbedding
    rows: list[dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    similarity: str = DEFAULT_SIMILARITY
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @property
    def names(self) -> list[str]:
        return [r["source"] for r in self.rows]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["rank", "source", "task", "score", "method", "step", "train_size", "metric"])

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target.task, "method": self.target.method, "base_model": self.target.base_model,
                "similarity": self.similarity, "ranking": self.rows,
                "skipped": [{"source": n, "reason": r} for n, r in self.skipped], "warnings": list(self.warnings)}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        header = f"Sources for {self.target.task!r} ({self.target.method}, {self.similarity} similarity), best first:"
        lines = [header, f"{'rank':>4}  {'score':>7}  {'source':<40} {'metric':>8}"]
        for r in self.rows:
            metric = "" if r["metric"] is None else f"{r['metric']:.3f}"
            lines.append(f"{r['rank']:>4}  {r['score']:>7.4f}  {r['source']:<40} {metric:>8}")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} incompatible or unreadable entries:")
            lines += [f"  - {n}: {reason}" for n, reason in self.skipped]
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class AutoSourceSelector(ModelHubMixin, library_name="taskemb-hub", tags=[TAG],
                         repo_url="https://github.com/taskemb-hub/taskemb-hub"):
    """Ranks source tasks by the similarity of their task embeddings to a target's.

    Only entries comparable with the target (same base model, method, module shapes and
    embedding options) are ranked; the rest are listed in `Ranking.skipped` with the reason.

    Args:
        entries: the registry's entries.
        similarity: `cosine`, or `centered` (cosine after subtracting the mean of the
            compatible entries: raw embeddings of one method share a common direction).
        skipped: entries that could not be read, carried into every ranking.

    Example:
        ```python
        >>> selector = AutoSourceSelector.from_local("my-registry")
        >>> selector.rank("runs/rte-bitfit/step-100", top_k=5).to_pandas()
        ```
    """

    def __init__(self, entries: Iterable[RegistryEntry], similarity: str = DEFAULT_SIMILARITY,
                 skipped: list[tuple[str, str]] | None = None):
        self.entries = list(entries)
        _check_similarity(similarity)
        self.similarity = similarity
        self.skipped = list(skipped or [])
        # Hashing a signature is JSON + sha256: do it once per entry, not once per ranking.
        self._hashes = [e.embedding.signature_hash for e in self.entries]
        self._groups: dict[str, tuple[list[int], torch.Tensor, torch.Tensor]] = {}

    # ---- constructors ------------------------------------------------------------------
    @classmethod
    def from_local(cls, path: str | os.PathLike, **kwargs) -> "AutoSourceSelector":
        """Every entry of a `LocalRegistry` folder (or a saved selector snapshot)."""
        if (Path(path) / SNAPSHOT_ENTRIES).is_file():
            return cls._from_snapshot(Path(path), **kwargs)
        registry = LocalRegistry(path)
        entries = registry.entries()
        if not entries:
            detail = f" ({len(registry.skipped)} unreadable: {registry.skipped[0][1]})" if registry.skipped else ""
            raise RegistryError(f"Registry {path} is empty: no entry folder holds {TaskEmbedding.__name__} files or an "
                                f"adapter{detail}. Add one with `taskemb-hub registry add <adapter> --registry {path}`.")
        return cls(entries, skipped=registry.skipped, **kwargs)

    @classmethod
    def from_embeddings(cls, embeddings: Iterable[TaskEmbedding], **kwargs) -> "AutoSourceSelector":
        """Rank among in-memory embeddings (each entry is named after its task).

        Example:
            >>> selector = AutoSourceSelector.from_embeddings([TaskEmbedding.load(p) for p in folders])
        """
        return cls([RegistryEntry(e.task, e, "memory") for e in embeddings], **kwargs)

    @classmethod
    def from_default(cls, **kwargs) -> "AutoSourceSelector":
        """The registry shipped in the package (classification tasks of the offline suite)."""
        from .default_registry import default_registry_path

        return cls.from_local(default_registry_path(), **kwargs)

    @classmethod
    def from_hub(cls, tag: str = TAG, *, endpoint: str | None = None, token: str | bool | None = None,
                 author: str | None = None, limit: int | None = None, **kwargs) -> "AutoSourceSelector":
        """Every Hub model repo tagged `tag` (default `taskemb-hub`) that carries a task embedding.

        Args:
            tag: the model-card tag that marks registry entries.
            endpoint: Hub URL (default: `HF_ENDPOINT` or huggingface.co).
            token: Hub token; never printed.
            author: only this user's or organisation's repos.
            limit: at most this many repos.
        """
        from .registries.hub import HubRegistry

        registry = HubRegistry(tag=tag, endpoint=endpoint, token=token, author=author)
        entries = registry.entries(limit=limit)
        if not entries:
            raise RegistryError(f"No Hub repo tagged {tag!r} with a task embedding was found at {registry.endpoint}"
                                + (f" ({len(registry.skipped)} skipped)" if registry.skipped else "")
                                + ". Publish one with `taskemb-hub publish`.")
        return cls(entries, skipped=registry.skipped, **kwargs)

    # ---- ModelHubMixin: a selector saves/loads/pushes as a registry snapshot -------------
    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

        save_directory = Path(save_directory)
        save_file({str(i): e.embedding.vector.contiguous() for i, e in enumerate(self.entries)},
                  str(save_directory / SNAPSHOT_VECTORS))
        meta = [{"name": e.name, "location": e.location, **e.embedding.metadata()} for e in self.entries]
        (save_directory / SNAPSHOT_ENTRIES).write_text(json.dumps({"similarity": self.similarity, "entries": meta}, indent=1))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token, **kwargs):
        folder = Path(model_id)
        if not folder.is_dir():
            from huggingface_hub import hf_hub_download

            for name in (SNAPSHOT_ENTRIES, SNAPSHOT_VECTORS):
                path = hf_hub_download(model_id, name, revision=revision, cache_dir=cache_dir, token=token,
                                       force_download=force_download, local_files_only=local_files_only)
            folder = Path(path).parent
        return cls._from_snapshot(folder, **kwargs)

    @classmethod
    def _from_snapshot(cls, folder: Path, **kwargs) -> "AutoSourceSelector":
        from safetensors.torch import load_file

        if not (folder / SNAPSHOT_ENTRIES).is_file():
            raise RegistryError(f"{folder} is not a saved selector (no {SNAPSHOT_ENTRIES}). Use from_local for a registry folder.")
        data = json.loads((folder / SNAPSHOT_ENTRIES).read_text())
        vectors = load_file(str(folder / SNAPSHOT_VECTORS))
        entries = []
        for i, m in enumerate(data["entries"]):
            emb = TaskEmbedding(vector=vectors[str(i)], task=m["task"], base_model=m["base_model"], method=m["method"],
                                signature=m["signature"], step=m.get("step"), train_size=m.get("train_size"),
                                metrics=m.get("metrics") or {}, extra=m.get("extra") or {})
            entries.append(RegistryEntry(name=m["name"], embedding=emb, location=m.get("location", "")))
        kwargs.setdefault("similarity", data.get("similarity", DEFAULT_SIMILARITY))
        return cls(entries, **kwargs)

    # ---- ranking -----------------------------------------------------------------------
    def _group(self, signature_hash: str) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Stacked vectors of the entries sharing a signature, built once and reused."""
        if signature_hash not in self._groups:
            idx = [i for i, h in enumerate(self._hashes) if h == signature_hash]
            # float32 halves memory and time; scores are accumulated per row, precise enough to rank.
            matrix = torch.stack([self.entries[i].embedding.vector for i in idx]) if idx else torch.zeros(0, 0)
            self._groups[signature_hash] = (idx, matrix, (matrix * matrix).sum(1) if idx else torch.zeros(0))
        return self._groups[signature_hash]

    def rank(self, target: TaskEmbedding | str | os.PathLike, top_k: int | None = None, *,
             similarity: str | None = None, exclude: Iterable[str] = (), strict: bool = False) -> Ranking:
        """Rank the compatible sources for `target`, most similar first.

        Args:
            target: a `TaskEmbedding`, an adapter/embedding folder, or the name of an entry
                of this registry (then that entry is left out: leave-one-out).
            top_k: keep the best k (default all).
            similarity: override the selector's `cosine`/`centered`.
            exclude: entry names to leave out.
            strict: refuse (rather than warn) when the target's training recipe differs from the
                sources' or is unknown (see `taskemb_hub.recipe`).

        Returns:
            A `Ranking`; `Ranking.warnings` says when the target was tuned with another recipe
            than the sources' or barely learned its task.

        Raises:
            RegistryError: when no entry is comparable with the target.
            RecipeMismatchError: with `strict=True`, when the recipes differ or cannot be checked.
        """
        similarity = similarity or self.similarity
        _check_similarity(similarity)
        exclude = set(exclude)
        if isinstance(target, str) and not Path(target).exists():
            match = [e for e in self.entries if e.name == target or e.embedding.task == target]
            if not match:
                raise RegistryError(f"{target!r} is neither a folder nor an entry of this registry. Entries: "
                                    f"{', '.join(e.name for e in self.entries[:20])}{' ...' if len(self.entries) > 20 else ''}.")
            exclude |= {e.name for e in match}
            target = match[0].embedding
        elif not isinstance(target, TaskEmbedding):
            target = load_embedding(target)

        skipped = list(self.skipped)
        target_hash = target.signature_hash
        for e, h in zip(self.entries, self._hashes):
            if h != target_hash and e.name not in exclude:
                skipped.append((e.name, target.incompatibility(e.embedding) or "signature differs"))
        idx, matrix, sq_norms = self._group(target_hash)
        keep = [j for j, i in enumerate(idx) if self.entries[i].name not in exclude] if exclude else range(len(idx))
        if not keep:
            reasons = "; ".join(sorted({r for _, r in skipped})[:3])
            raise RegistryError(f"No registry entry is comparable with target {target.task!r} ({target.method} on "
                                f"{target.base_model}). {len(skipped)} skipped: {reasons or 'registry empty'}. Embed "
                                "the target with the registry's base model, method and options.")
        if len(keep) < len(idx):
            idx = [idx[j] for j in keep]
            matrix, sq_norms = matrix[keep], sq_norms[keep]
        scores = _scores(target.vector, matrix, sq_norms, similarity).double()
        if top_k and top_k < len(scores):
            order = torch.topk(scores, top_k).indices  # ties: stable enough for display; full sort is O(n log n)
        else:
            order = torch.argsort(scores, descending=True, stable=True)
        rows = []
        for rank, j in enumerate(order.tolist(), start=1):
            e = self.entries[idx[j]]
            metric = next(iter(e.embedding.metrics.values()), None) if e.embedding.metrics else None
            rows.append({"rank": rank, "source": e.name, "task": e.embedding.task, "score": round(float(scores[j]), 6),
                         "method": e.embedding.method, "step": e.embedding.step, "train_size": e.embedding.train_size,
                         "metric": metric})
        warnings = _comparison_warnings(target, [e.embedding for e, h in zip(self.entries, self._hashes)
                                                 if h == target_hash and e.name not in exclude], strict)
        return Ranking(target=target, rows=rows, skipped=skipped, similarity=similarity, warnings=warnings)


def _comparison_warnings(target: TaskEmbedding, sources: list[TaskEmbedding], strict: bool) -> list[str]:
    """Recipe and learning warnings of a ranking (`taskemb_hub.recipe`); with `strict`, a recipe mismatch raises."""
    from .recipe import RecipeMismatchError, learning_warning, recipe_warnings

    warnings, mismatch = recipe_warnings(target, sources)
    if strict and mismatch:
        raise RecipeMismatchError(warnings[0])
    learned = learning_warning(target)
    return warnings + ([learned] if learned else [])


def _check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise TaskEmbHubError(f"Unknown similarity {similarity!r}. Use one of: {', '.join(SIMILARITIES)}.")


def _scores(t: torch.Tensor, matrix: torch.Tensor, sq_norms: torch.Tensor, similarity: str) -> torch.Tensor:
    """Cosine of t with each row, optionally after centring on the rows' mean.

    Centring is done with two matrix-vector products instead of materialising `matrix - mean`:
    ⟨t−μ, m−μ⟩ = ⟨t−μ, m⟩ − ⟨t−μ, μ⟩ and ‖m−μ‖² = ‖m‖² − 2⟨m, μ⟩ + ‖μ‖².
    """
    eps = 1e-12
    if similarity == "cosine":
        return (matrix @ t) / (sq_norms.sqrt() * t.norm()).clamp_min(eps)
    mu = matrix.mean(0)
    tc = t - mu
    m_mu = matrix @ mu
    inner = matrix @ tc - tc @ mu
    norms = (sq_norms - 2 * m_mu + mu @ mu).clamp_min(0).sqrt()
    return inner / (norms * tc.norm()).clamp_min(eps)
