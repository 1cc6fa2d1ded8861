"""`AutoSourceSelector`: rank a registry's source tasks for a target task."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import torch
from huggingface_hub import ModelHubMixin

from ..cards import INDEX_TAG, TAG
from ..embedding import TaskEmbedding, load_embedding
from ..errors import RegistryError, TaskEmbHubError
from .._vectors import VectorGroup
from ._ranking import (DEFAULT_SIMILARITY, PCR_MIN_ENTRIES, SIMILARITIES, SIMILARITY_NOTES,  # noqa: F401
                       Ranking, _check_similarity)
from .rankers import TEXT_SIMILARITY, as_text_only, auto_reason, fuse, resolve_ranker, text_ranking
from ..registries.base import Registry, RegistryEntry
from ..registries.local import LocalRegistry, PackagedRegistry
from ..registries._own import own_entries

SNAPSHOT_INDEX = "index.json"  # a saved selector is a registry index (registries/index.py)
TEXTEMB_FOLDER = "textemb"  # a snapshot's TextEmb vectors (the fusion ranker's other side), an index of their own


class AutoSourceSelector(ModelHubMixin, library_name="taskemb-hub", tags=[INDEX_TAG],
                         repo_url="https://github.com/taskemb-hub/taskemb-hub"):
    """Ranks source tasks by the similarity of their task embeddings to a target's.

    Only entries comparable with the target (same base model, method, module shapes and
    embedding options) are ranked; the rest are listed in `Ranking.skipped` with the reason.

    Args:
        entries: the registry's entries.
        similarity: `pcr-1` (default), `pcr-2`, `pcr-3`: cosine after subtracting the compatible entries'
            mean and projecting out their top 1-3 principal directions; `centered` (the mean only); or
            `cosine`. Raw embeddings of one method share a few dominant directions, along which the plain
            cosine ranks nearly the same sources first for every target (`taskemb_hub.ranking.similarity`).
        skipped: entries that could not be read, carried into every ranking.
        groups: prebuilt matrices per signature hash (an index provides them memory-mapped).

    Example:
        ```python
        >>> selector = AutoSourceSelector.from_local("my-registry")
        >>> selector.rank("runs/rte-bitfit/step-100", top_k=5).to_pandas()
        ```
    """

    def __init__(self, entries: Iterable[RegistryEntry], similarity: str = DEFAULT_SIMILARITY,
                 skipped: list[tuple[str, str]] | None = None, groups: dict[str, VectorGroup] | None = None):
        self.entries = list(entries)
        _check_similarity(similarity)
        self.similarity = similarity
        self.skipped = list(skipped or [])
        # ModelHubMixin saves the __init__ arguments as config.json: only the similarity is configuration
        # (entries and skipped reasons go in the index files; reasons may name local folders).
        self._hub_mixin_config = {"similarity": similarity}
        # Hashing a signature is JSON + sha256: do it once per entry, not once per ranking.
        self._hashes = [e.signature_hash for e in self.entries]
        self._groups: dict[str, VectorGroup] = dict(groups or {})
        self._unusable: dict[str, list[tuple[str, str]]] = {}
        self.sync_report = None  # set by from_hub: what the sync did
        self._info_cache: dict[str, list[tuple[str, object]]] = {}
        self._lookup: dict[str, Any] = {}  # per-selector indexes of the entries, built on first use (_positions)
        self.text_selector: AutoSourceSelector | None = None  # TextEmb vectors of the same tasks (rankers.py)

    # ---- constructors ------------------------------------------------------------------
    @classmethod
    def from_registry(cls, registry: Registry, *, limit: int | None = None, **kwargs) -> "AutoSourceSelector":
        """Every entry of a registry backend, e.g. the one `registries.open_registry(spec)` opens for a
        `--registry` string. The other constructors below read their backend through here.

        Args:
            registry: a `PackagedRegistry` (with its TextEmb side), a `LocalRegistry` (a folder holding a saved
                selector is read as that selector), a `HubRegistry` or an `IndexRegistry` (its vectors
                memory-mapped; a pushed selector is read as `from_pretrained` reads it).
            limit: a `HubRegistry` only: at most this many repos per listing.
            **kwargs: the selector's options (`similarity`; None: the default, or a saved selector's own).

        Example:
            ```python
            >>> from taskemb_hub.registries import open_registry
            >>> selector = AutoSourceSelector.from_registry(open_registry("hub:taskemb-hub", method="bitfit"))
            ```
        """
        if kwargs.get("similarity", "") is None:  # what `--similarity` gives when not passed
            del kwargs["similarity"]
        return cls._read_registry(registry, limit, **kwargs)

    @classmethod
    def _read_registry(cls, registry: Registry, limit: int | None = None, **kwargs) -> "AutoSourceSelector":
        if isinstance(registry, LocalRegistry):
            return cls._from_local_registry(registry, **kwargs)
        from ..registries.hub import HubRegistry
        from ..registries.index import IndexRegistry

        if isinstance(registry, IndexRegistry):
            return cls._from_index_registry(registry, **kwargs)
        if isinstance(registry, HubRegistry):
            return cls._from_hub_registry(registry, limit, **kwargs)
        return cls._from_local_registry(registry, **kwargs)  # another backend: its entries, as a folder's

    @classmethod
    def _from_local_registry(cls, registry: Registry, **kwargs) -> "AutoSourceSelector":
        if isinstance(registry, LocalRegistry) and (registry.path / SNAPSHOT_INDEX).is_file():
            return cls._from_snapshot(registry.path, **kwargs)
        entries = registry.entries()
        if not entries:
            where = getattr(registry, "source", None) or registry.describe()
            detail = f" ({len(registry.skipped)} unreadable: {registry.skipped[0][1]})" if registry.skipped else ""
            raise RegistryError(f"Registry {where} is empty: no entry folder holds {TaskEmbedding.__name__} files or an "
                                f"adapter{detail}. Add one with `taskemb-hub registry add <adapter> --registry {where}`.")
        selector = cls(entries, skipped=registry.skipped, **kwargs)
        if isinstance(registry, PackagedRegistry) and registry.textemb is not None:  # the same tasks' TextEmb vectors
            selector.text_selector = cls.from_local(registry.textemb, similarity=TEXT_SIMILARITY)
        return selector

    @classmethod
    def _from_hub_registry(cls, registry, limit: int | None = None, **kwargs) -> "AutoSourceSelector":
        entries = registry.entries(limit=limit)
        if not entries:
            detail = "; ".join(f"{r}: {why}" for r, why in registry.skipped[:3])
            raise RegistryError(f"No readable task embedding in {registry.describe()}"
                                + (f" ({len(registry.skipped)} failed: {detail})" if registry.skipped else "")
                                + ". Publish one with `taskemb-hub publish`, or widen the filters.")
        selector = cls(entries, skipped=registry.skipped, **kwargs)
        selector.sync_report = registry.report
        return selector

    @classmethod
    def _from_index_registry(cls, registry, **kwargs) -> "AutoSourceSelector":
        contents = registry.read()
        if registry.selector_snapshot:  # its options and TextEmb side come with it
            return cls._from_snapshot(registry.folder(), **kwargs)
        if not contents.entries:
            raise RegistryError(f"The index {registry.source} holds no entry. Rebuild it with `taskemb-hub index build`.")
        return cls(contents.entries, skipped=registry.skipped, groups=contents.groups, **kwargs)

    @classmethod
    def from_local(cls, path: str | os.PathLike, **kwargs) -> "AutoSourceSelector":
        """Every entry of a `LocalRegistry` folder (or a saved selector snapshot)."""
        if (Path(path) / SNAPSHOT_INDEX).is_file():
            return cls._from_snapshot(Path(path), **kwargs)
        return cls._read_registry(LocalRegistry(path), **kwargs)

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
        return cls._read_registry(PackagedRegistry(), **kwargs)

    @classmethod
    def from_hub(cls, tag: str = TAG, *, base_model: str | None = None, method: str | None = None,
                 author: str | None = None, include_untagged: bool = False, index: str | None = None,
                 endpoint: str | None = None, token: str | bool | None = None, limit: int | None = None,
                 timeout: float | None = None, deadline: float | None = None, max_workers: int | None = None,
                 **kwargs) -> "AutoSourceSelector":
        """Every Hub model repo tagged `tag` (default `taskemb-hub`) that carries a task embedding.

        Reads go through the huggingface_hub cache keyed by commit sha: a second call with nothing
        changed downloads no file. Repos that cannot be read are listed in `selector.skipped` with
        the reason; `selector.sync_report` says what the sync did.

        Args:
            tag: the model-card tag that marks registry entries.
            base_model: only entries of this base model (server-side filter).
            method: only entries of this PEFT method (server-side filter).
            author: only this user's or organisation's repos.
            include_untagged: also embed plain PEFT adapters of `base_model` from their weights.
            index: an index dataset repo (or folder) to start from; only repos newer than it are read.
            endpoint: Hub URL (default: `HF_ENDPOINT` or huggingface.co).
            token: Hub token; never printed.
            limit: at most this many repos per listing.
            timeout: seconds per request (default 10); deadline: seconds for the whole sync (default 120,
                `math.inf` for none): a repo not read by then is in `skipped` with the reason.
            max_workers: repos fetched in parallel.

        Example:
            ```python
            >>> selector = AutoSourceSelector.from_hub(base_model="sentence-transformers/all-MiniLM-L6-v2", method="bitfit")
            >>> selector.sync_report.failed
            [('bob/broken', 'HTTP 500 on taskemb.safetensors')]
            ```
        """
        from ..registries._open import hub_registry

        options = {"max_workers": max_workers} if max_workers is not None else {}
        registry = hub_registry(tag=tag, index=index, endpoint=endpoint, token=token, author=author,
                                base_model=base_model, method=method, include_untagged=include_untagged,
                                timeout=timeout, deadline=deadline, **options)
        return cls._read_registry(registry, limit, **kwargs)

    @classmethod
    def from_index(cls, repo_or_folder: str | os.PathLike, *, revision: str | None = None, endpoint: str | None = None,
                   token: str | bool | None = None, timeout: float | None = None, deadline: float | None = None,
                   **kwargs) -> "AutoSourceSelector":
        """A registry index (a Hub dataset repo built by `taskemb-hub index build`, or its folder), or a selector
        pushed with `push_to_hub` (a model repo; read as `from_pretrained` reads it).

        One cached download (nothing when the index is unchanged); the vectors are memory-mapped. `timeout`
        (seconds per request, default 10) and `deadline` (seconds for the download, default 120) bound it.

        Example:
            ```python
            >>> selector = AutoSourceSelector.from_index("owner/taskemb-index")
            >>> selector.rank("runs/mine/step-100", top_k=5)
            ```
        """
        from ..registries.index import IndexRegistry

        return cls._read_registry(IndexRegistry(repo_or_folder, revision=revision, endpoint=endpoint, token=token,
                                               timeout=timeout, deadline=deadline), **kwargs)

    # ---- ModelHubMixin: a selector saves/loads/pushes as a registry index ----------------
    def _save_pretrained(self, save_directory: Path) -> None:
        from ..registries.index import write_index

        import torch

        # float32: a saved selector ranks exactly as the live one (the Hub index stores float16, measured harmless)
        from ..cards import LOCAL_PATH

        def public(reason: str) -> str:  # a snapshot may be pushed: no local path in its reasons
            return LOCAL_PATH.sub(lambda m: m.group(1) + "<local path>", reason)

        from ..publishing import public_entries

        write_index(public_entries(self.entries), save_directory, source={"similarity": self.similarity},
                    failures=[(Path(name).name if Path(name).is_absolute() else name, public(reason))
                              for name, reason in self.skipped], dtype=torch.float32)
        if self.text_selector is not None:  # the TextEmb side of `ranker="fusion"` travels with the snapshot
            write_index(public_entries(self.text_selector.entries), save_directory / TEXTEMB_FOLDER,
                        source={"similarity": self.text_selector.similarity}, dtype=torch.float32)
        elif (save_directory / TEXTEMB_FOLDER).is_dir():  # an earlier snapshot's: it would be fused with these
            import shutil

            shutil.rmtree(save_directory / TEXTEMB_FOLDER)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token, **kwargs):
        folder = Path(model_id)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model_id, revision=revision, cache_dir=cache_dir, token=token,
                                            force_download=force_download, local_files_only=local_files_only))
        return cls._from_snapshot(folder, **kwargs)

    @classmethod
    def _from_snapshot(cls, folder: Path, **kwargs) -> "AutoSourceSelector":
        from ..registries.index import INDEX_FILE, read_index

        # ModelHubMixin hands back the __init__ arguments it saved in config.json: only the similarity is an option.
        kwargs = {k: v for k, v in kwargs.items() if k == "similarity"}
        if not (folder / INDEX_FILE).is_file():
            raise RegistryError(f"{folder} is not a saved selector (no {INDEX_FILE}). Use from_local for a registry folder.")
        contents = read_index(folder)
        kwargs.setdefault("similarity", contents.meta.get("source", {}).get("similarity", DEFAULT_SIMILARITY))
        skipped = [(f["repo"], f["reason"]) for f in contents.meta.get("failures", [])]
        selector = cls(contents.entries, skipped=skipped, groups=contents.groups, **kwargs)
        if (folder / TEXTEMB_FOLDER / INDEX_FILE).is_file():
            text = read_index(folder / TEXTEMB_FOLDER)
            selector.text_selector = cls(text.entries, groups=text.groups,
                                         similarity=text.meta.get("source", {}).get("similarity", TEXT_SIMILARITY))
        return selector

    # ---- ranking -----------------------------------------------------------------------
    def _infos(self, signature_hash: str) -> list[tuple[str, object]]:
        """(name, metadata without the vector) of the entries of a signature, read once per selector."""
        if signature_hash not in self._info_cache:
            self._info_cache[signature_hash] = [(e.name, e.info) for e, h in zip(self.entries, self._hashes)
                                                if h == signature_hash]
        return self._info_cache[signature_hash]

    def _group(self, signature_hash: str) -> VectorGroup | None:
        """The matrix of the entries sharing a signature, built once and reused.

        An entry whose vector length differs from the others' of its signature is corrupt (the
        signature fixes the shapes): it is left out with its reason instead of breaking the stack.
        """
        if signature_hash not in self._groups:
            idx = [i for i, h in enumerate(self._hashes) if h == signature_hash]
            if not idx:
                return None
            dims = Counter(self.entries[i].embedding.dim for i in idx)
            dim = dims.most_common(1)[0][0]
            bad = [i for i in idx if self.entries[i].embedding.dim != dim]
            self._unusable[signature_hash] = [
                (self.entries[i].name, f"vector length {self.entries[i].embedding.dim} does not match its signature "
                                       f"({dim} values); re-embed it with `taskemb-hub embed`") for i in bad]
            good = [i for i in idx if i not in set(bad)]
            self._groups[signature_hash] = VectorGroup.from_vectors(good, [self.entries[i].embedding.vector for i in good])
        return self._groups[signature_hash]

    def flags(self) -> dict[str, dict[str, str]]:
        """Curation flags of this registry's flagged entries: name -> {kind: reason} (`taskemb_hub.curation`).

        Example:
            >>> AutoSourceSelector.from_default().flags()["sports_understanding"]["fewer_rows"]
            "tuned on 750 rows, fewer than the 1,000 of the registry's recipe (all its training data)"
        """
        from ..curation import registry_flags

        return registry_flags(self)

    def rank(self, target: TaskEmbedding | str | os.PathLike | None, top_k: int | None = None, *,
             similarity: str | None = None, exclude: Iterable[str] = (), strict: bool = False,
             search: str = "auto", ranker: str = "auto", text_target: TaskEmbedding | str | None = None,
             exclude_flagged: bool = False) -> Ranking:
        """Rank the compatible sources for `target`, most similar first.

        Args:
            target: a `TaskEmbedding`, an adapter/embedding folder, or the name of an entry
                of this registry (then that entry is left out: leave-one-out); None with `ranker="textemb"`.
            top_k: keep the best k (default all).
            similarity: override the selector's PEFT similarity (`pcr-1`, `centered`, ...).
            exclude: entry names to leave out.
            strict: refuse (rather than warn) when the target's training recipe differs from the
                sources' or is unknown (see `taskemb_hub.tuning.recipe`).
            search: `auto`, `exact`, `projection` or `ann` (see `_rank_peft`).
            ranker: `auto` (default), `peft`, `textemb` or `fusion` (`taskemb_hub.ranking.rankers`): `auto` fuses the
                PEFT similarity with TextEmb when the target's TextEmb vector is known and the registry has
                TextEmb vectors, and uses the PEFT embedding alone otherwise.
            text_target: the target's TextEmb vector (`taskemb_hub.baselines.text_embedding(task)`); a
                registry entry named as `target` brings its own.
            exclude_flagged: leave out of the rows the entries `flags()` flags (near-duplicates, fewer rows than
                the recipe, a test split, barely learned); the others keep the scores they have without it.
                `Ranking.why` says how many and why. Every row carries its `flags` (without this option: the
                per-entry ones and those an index stored; the near-duplicate search runs only with it).

        Returns:
            A `Ranking`; `Ranking.ranker` and `Ranking.why` say which signal ranked and why.

        Example:
            ```python
            >>> AutoSourceSelector.from_default().rank("fever", top_k=3).ranker   # an entry: both vectors known
            'fusion'
            ```
        """
        entry_name = target if isinstance(target, str) and not Path(target).exists() else None
        if text_target is None and entry_name and self.text_selector is not None and self.text_selector._named(entry_name):
            text_target = entry_name
        chosen = resolve_ranker(ranker, self, text_target)
        reason = auto_reason(ranker, chosen, self, text_target)
        if target is None and chosen != "textemb":
            raise TaskEmbHubError(f"ranker {chosen!r} needs a target embedding; only ranker 'textemb' ranks from "
                                  "the texts alone.")
        exclude = set(exclude)
        if entry_name:  # an entry named as the target is left out everywhere
            exclude |= {self.entries[i].name for i in self._named(entry_name)}
        elif target is not None and not isinstance(target, TaskEmbedding):
            target = load_embedding(target)
        own, own_note = own_entries(self, target) if isinstance(target, TaskEmbedding) else (set(), "")
        exclude |= own  # the target's own published repo (registries/_own.py)
        flags = self.flags() if exclude_flagged else {}  # the near-duplicate search runs only when asked for
        flagged = sorted(n for n, f in flags.items() if f and n not in exclude)
        # flagged rows leave the output only (curation.drop_flagged), not the pcr/fusion statistics: ask for more
        wide = top_k + len(flagged) if top_k and flagged else top_k
        if isinstance(text_target, str):  # a text-registry entry: leave it out as well
            exclude |= {self.text_selector.entries[i].name for i in self.text_selector._named(text_target)}
        if chosen == "textemb":
            peft_target = None if target is None or entry_name else target
            if peft_target is not None and not isinstance(peft_target, TaskEmbedding):
                peft_target = load_embedding(peft_target)
            ranking = as_text_only(text_ranking(self, text_target, exclude=exclude), self, peft_target,
                                           wide)
            if similarity:
                ranking.warnings.append(f"similarity {similarity!r} applies to the PEFT embedding; ranker 'textemb' "
                                        f"uses the {TEXT_SIMILARITY} cosine of TextEmb vectors")
        else:
            ranking = self._rank_peft(target, None if chosen == "fusion" else wide, similarity=similarity,
                                      exclude=exclude, strict=strict, search=search)
            if chosen == "fusion":
                ranking = fuse(ranking, text_ranking(self, text_target, exclude=exclude), wide)
        ranking.why = reason + ranking.why + own_note
        from ..curation import annotate, drop_flagged, flagged_note, shown_flags

        if exclude_flagged:
            drop_flagged(ranking, set(flagged), top_k)
            ranking.why += flagged_note(flags, flagged)
        annotate(ranking, flags if exclude_flagged else shown_flags(self, ranking.names))
        return ranking

    def _rank_peft(self, target: TaskEmbedding | str | os.PathLike, top_k: int | None = None, *,
                   similarity: str | None = None, exclude: Iterable[str] = (), strict: bool = False,
                   search: str = "auto") -> Ranking:
        """Rank the compatible sources for `target` by the PEFT embedding's similarity, most similar first.

        Args:
            target: a `TaskEmbedding`, an adapter/embedding folder, or the name of an entry
                of this registry (then that entry is left out: leave-one-out).
            top_k: keep the best k (default all).
            similarity: override the selector's `cosine`/`centered`.
            exclude: entry names to leave out.
            strict: refuse (rather than warn) when the target's training recipe differs from the
                sources' or is unknown (see `taskemb_hub.tuning.recipe`).
            search: `auto` (exact below `_ann.PROJECTION_MIN_ROWS` compatible entries, else a projected
                first stage, or an HNSW index above `_ann.ANN_MIN_ROWS` with `taskemb-hub[ann]`; every
                returned score is exact, see `taskemb_hub._ann`), or `exact`, `projection`, `ann`.
                `Ranking.search` says which ran.

        Returns:
            A `Ranking`; `Ranking.warnings` says when the target was tuned with another recipe
            than the sources' or barely learned its task.

        Raises:
            RegistryError: when no entry is comparable with the target.
            RecipeMismatchError: with `strict=True`, when the recipes differ or cannot be checked.
        """
        similarity = similarity or self.similarity
        _check_similarity(similarity)
        target, exclude = self._peft_target(target, set(exclude))
        target.check_usable()  # a zero vector would rank every source at cosine 0, in arbitrary order
        group, keep, skipped = self._comparable(target, exclude)
        n_kept = 0 if group is None else (len(group) if keep is None else int(keep.sum()))
        if not n_kept:
            reasons = "; ".join(sorted({r for _, r in skipped})[:3])
            raise RegistryError(f"No registry entry is comparable with target {target.task!r} ({target.method} on "
                                f"{target.base_model}). {len(skipped)} skipped: {reasons or 'registry empty'}. Embed "
                                "the target with the registry's base model, method and options.")
        k = min(top_k, n_kept) if top_k else n_kept
        why = ""
        if similarity.startswith("pcr-") and n_kept < PCR_MIN_ENTRIES:
            why = (f"cosine: {similarity} needs at least {PCR_MIN_ENTRIES} compatible entries (here {n_kept}); the "
                   "principal direction of a handful of entries is their differences, not a direction all tasks share")
            similarity = "cosine"
        path = _search_path(group, top_k, similarity, search)
        if path == "exact" and k == n_kept:  # every row: one exact product, sorted
            scores = group.scores(target.vector, similarity, keep)
            order = torch.argsort(scores, descending=True, stable=True)[:k]
            best = scores[order]
        else:
            order, best = group.top(target.vector, similarity, k, keep, search=path)
        rows = self._rows(group, order, best)
        sources, counts = self._recipe_groups(target.signature_hash, exclude)
        warnings = _comparison_warnings(target, sources, strict, counts)
        return Ranking(target=target, rows=rows, skipped=skipped, similarity=similarity, warnings=warnings, search=path,
                       why=why)

    def _peft_target(self, target, exclude: set[str]) -> tuple[TaskEmbedding, set[str]]:
        """The target embedding, and `exclude` with the entries it names (leave-one-out) added."""
        if isinstance(target, str) and not Path(target).exists():
            match = [self.entries[i] for i in self._named(target)]
            if not match:
                raise RegistryError(f"{target!r} is neither a folder nor an entry of this registry. Entries: "
                                    f"{', '.join(e.name for e in self.entries[:20])}{' ...' if len(self.entries) > 20 else ''}.")
            return match[0].embedding, exclude | {e.name for e in match}
        if not isinstance(target, TaskEmbedding):
            target = load_embedding(target)
        return target, exclude

    def _comparable(self, target: TaskEmbedding, exclude: set[str]):
        """(the matrix of the entries comparable with `target` or None, the mask of its rows not excluded or None,
        the skipped entries with their reasons: the selector's own, then the other signatures', then the unusable)."""
        skipped = list(self.skipped)
        target_hash = target.signature_hash
        others = []  # (position, name, reason): one reason per other signature, its first entry's
        for h, positions in self._positions("hash").items():
            if h != target_hash:
                reason = target.incompatibility(self.entries[positions[0]].embedding) or "signature differs"
                others += [(i, self.entries[i].name, reason) for i in positions if self.entries[i].name not in exclude]
        skipped += [(name, reason) for _, name, reason in sorted(others)]
        group = self._group(target_hash)
        skipped += [(n, r) for n, r in self._unusable.get(target_hash, []) if n not in exclude]
        if group is not None and group.dim != target.dim:
            skipped += [(self.entries[i].name, f"vector length {group.dim} differs from the target's {target.dim} "
                                               "under one signature") for i in group.rows]
            group = None
        keep = self._keep_mask(target_hash, group, exclude) if group is not None and exclude else None
        return group, keep, skipped

    def _rows(self, group: VectorGroup, order: torch.Tensor, best: torch.Tensor) -> list[dict[str, Any]]:
        """A ranking's rows: the entries of `group`'s rows `order`, with their scores `best`."""
        rows = []
        for rank, j in enumerate(order.tolist(), start=1):
            e = self.entries[group.rows[j]]
            metric = next(iter(e.embedding.metrics.values()), None) if e.embedding.metrics else None
            rows.append({"rank": rank, "source": e.name, "task": e.embedding.task, "score": round(float(best[rank - 1]), 6),
                         "method": e.embedding.method, "step": e.embedding.step, "train_size": e.embedding.train_size,
                         "metric": metric})
        return rows

    def _positions(self, key: str) -> dict[str, list[int]]:
        """Entry positions by signature hash (`hash`), by name (`name`) or by task (`task`), built once:
        a ranking then costs no pass over every entry in Python."""
        if key not in self._lookup:
            index: dict[str, list[int]] = {}
            for i, e in enumerate(self.entries):
                value = self._hashes[i] if key == "hash" else e.name if key == "name" else e.info.task
                index.setdefault(value, []).append(i)
            self._lookup[key] = index
        return self._lookup[key]

    def _named(self, name: str) -> list[int]:
        """Entries called `name` or of task `name`, in registry order."""
        return sorted(set(self._positions("name").get(name, [])) | set(self._positions("task").get(name, [])))

    def _keep_mask(self, signature_hash: str, group: VectorGroup, exclude: set[str]) -> torch.Tensor:
        """The rows of `group` not named in `exclude` (leave-one-out is a mask, never a copy)."""
        key = f"rows:{signature_hash}"
        if key not in self._lookup:
            row_of: dict[str, list[int]] = {}
            for j, i in enumerate(group.rows):
                row_of.setdefault(self.entries[i].name, []).append(j)
            self._lookup[key] = row_of
        row_of = self._lookup[key]
        keep = torch.ones(len(group), dtype=torch.bool)
        dropped = [j for n in exclude for j in row_of.get(n, [])]
        keep[dropped] = False
        return keep

    def _recipe_groups(self, signature_hash: str, exclude: set[str]) -> tuple[list, list[int]]:
        """One source per distinct (recipe, method) of a signature, with how many entries it stands for
        once `exclude` is left out: the recipe warnings then cost O(recipes), not O(entries)."""
        key = f"recipes:{signature_hash}"
        if key not in self._lookup:
            from ..tuning.recipe import recipe_of

            groups: dict[str, list] = {}  # key -> [representative, count]
            group_of: dict[str, list[str]] = {}
            for name, info in self._infos(signature_hash):
                k = json.dumps([recipe_of(info), info.method], sort_keys=True, default=str)
                groups.setdefault(k, [info, 0])[1] += 1
                group_of.setdefault(name, []).append(k)
            self._lookup[key] = (groups, group_of)
        groups, group_of = self._lookup[key]
        counts = {k: c for k, (_, c) in groups.items()}
        for name in exclude:
            for k in group_of.get(name, []):
                counts[k] -= 1
        return [rep for rep, _ in groups.values()], list(counts.values())


def _comparison_warnings(target: TaskEmbedding, sources: list[TaskEmbedding], strict: bool,
                         counts: list[int] | None = None) -> list[str]:
    """Recipe and learning warnings of a ranking (`taskemb_hub.tuning.recipe`); with `strict`, a recipe mismatch raises."""
    from ..tuning.recipe import RecipeMismatchError, learning_warning, recipe_warnings

    warnings, mismatch = recipe_warnings(target, sources, counts)
    if strict and mismatch:
        raise RecipeMismatchError(warnings[0])
    learned = learning_warning(target)
    return warnings + ([learned] if learned else [])


def _search_path(group: VectorGroup, top_k: int | None, similarity: str, search: str) -> str:
    """Which search runs (`taskemb_hub._ann.choose_search`), adjusted for the similarity and a graph still building."""
    from .._ann import choose_search

    # the HNSW graphs are of cosine / centred rows; pcr's first stage is the projection, whether `ann` was asked
    # for (before choose_search, which would want faiss) or chosen by `auto` for a large group (after it)
    if similarity.startswith("pcr-") and search == "ann":
        search = "projection"
    path = choose_search(len(group), top_k, group.dim, search)
    if similarity.startswith("pcr-") and path == "ann":
        path = "projection"
    if path == "ann" and search == "auto" and not group.ann_ready(similarity):
        path = "projection"  # the graph is building in the background; scan the projection meanwhile
    return path
