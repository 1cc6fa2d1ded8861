"""What the Space's endpoints do, as plain functions: callable from tests and scripts without a server.

Every `rank_*` function returns an `Answer` and never raises: bad input becomes a one-line
message naming the problem and the fix; an unexpected exception is logged with its traceback
and shown as a message, so the server keeps serving.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..data import CLASSIFICATION, TaskData
from ..embedding import TaskEmbedding
from ..errors import AdapterError, DataError, IncompatibleEmbeddingError, RegistryError, TaskEmbHubError
from ..rankers import RANKERS, check_ranker, resolve_ranker, wants_texts  # RANKERS: the app's ranker choices
from ..curation import flags_text
from ..selector import DEFAULT_SIMILARITY, SIMILARITIES, AutoSourceSelector, Ranking
from ._uploads import (UploadError, UploadLimits, check_data_file, extract_adapter_zip, read_header, read_rows, safe_stem,
                       scrub_obj, scrub_paths)

logger = logging.getLogger("taskemb_hub.space")

ANY = "any"
TABLE_COLUMNS = ["rank", "source", "dataset", "score", "in-task metric", "train size", "step", "method", "flags"]
TABLE_TYPES = ["number", "markdown", "markdown", "number", "str", "number", "number", "str", "str"]
# A Hub repo or dataset id: `name` or `owner/name`. Anything else (a path, a URL) is refused, so a
# visitor can never make the server read its own files through `datasets.load_dataset`.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
Progress = Callable[..., Any]
HUB_SHUFFLE_BUFFER = 1_000  # rows of a Hub split read beyond max_rows, to mix the first rows a little
HEATMAP_MAX = 20  # sources in the similarity heatmap at most (the table lists all top-k)
CLEANUP_EVERY_S = 60.0  # old answers' files are looked for at most this often


@dataclass
class SpaceConfig:
    """How a Space serves.

    Args:
        limits: upload limits (file size, rows, zip members).
        base_model_paths: where to load a base model from, by the id the registry records
            (e.g. a local copy); ids not listed load as themselves (the packaged MiniLM or a Hub id).
        default_top_k: sources shown unless the visitor asks for another number.
        max_top_k: most sources a visitor may ask for.
        hub_endpoint: Hub URL used for links and adapter downloads (default: `HF_ENDPOINT`).
        work_dir: where answers' download files are written (a temp folder by default);
            folders older than `keep_files_s` are removed as new answers come.
        refresh_every_s: rebuild the registry in the background this often (None: only when
            asked on the Registry status tab).
    """

    limits: UploadLimits = field(default_factory=UploadLimits)
    base_model_paths: dict[str, str] = field(default_factory=dict)
    default_top_k: int = 10
    max_top_k: int = 50
    hub_endpoint: str | None = None
    work_dir: str | None = None
    keep_files_s: float = 3600.0
    refresh_every_s: float | None = None


@dataclass
class Answer:
    """What a ranking endpoint returns: a message, the table, the figures and the download files.

    The figures are data the page draws (`_plots`): `bar` and `map` the values of `gr.BarPlot` and
    `gr.ScatterPlot` (columns, data, datatypes, mark), `heatmap` a coloured table for `gr.Dataframe` (headers,
    data, metadata).
    """

    message: str
    rows: list[list[Any]] = field(default_factory=list)
    ranking: Ranking | None = None
    bar: Any = None
    map: Any = None
    heatmap: Any = None
    csv_path: str | None = None
    json_path: str | None = None
    embedding_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.ranking is not None


def _failure(message: str) -> Answer:
    return Answer(message=f"⚠️ {scrub_paths(message)}")


def guarded(fn):
    """Turn any exception into an `Answer` message; log the unexpected ones with their traceback. What the
    visitor sees (message, table) goes through `scrub_paths`: no server path, whatever raised it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            answer = fn(*args, **kwargs)
            answer.message, answer.rows = scrub_paths(answer.message), scrub_obj(answer.rows)
            return answer
        except TaskEmbHubError as err:
            return _failure(str(err))
        except Exception as err:  # noqa: BLE001 - the server must keep serving whatever happens
            logger.exception("unexpected error in %s", fn.__name__)
            detail = str(err).splitlines()[0][:300] if str(err) else ""
            return _failure(f"Unexpected error ({type(err).__name__}{': ' + detail if detail else ''}). It was logged; "
                            "if it persists, report it with the input that caused it.")

    return wrapper


# ---- the registry, refreshed in the background --------------------------------------------
@dataclass
class _Derived:
    """What the Space derives from one selector, computed once per selector."""

    by_name: dict[str, Any]
    signatures: list[dict[str, Any]]
    projections: dict[str, Any] = field(default_factory=dict)  # signature hash -> _plots.Projection (or None)
    group_rows: dict[str, Any] = field(default_factory=dict)  # signature hash -> (unit matrix, names, row of) or None


class RegistryState:
    """Holds the registry's selector; `refresh()` builds a new one in a thread and swaps it in.

    Queries read `state.selector` once and use that object to the end, so a refresh never
    changes a registry under a running query, and queries never wait for a refresh.

    Args:
        load: builds a selector (e.g. `lambda: cli._selector("default", None)`).
        source: a short description of where the registry comes from (shown on the page).
        selector: an already built selector (else `load()` is called now).
    """

    def __init__(self, load: Callable[[], AutoSourceSelector] | None, source: str,
                 selector: AutoSourceSelector | None = None):
        if selector is None and load is None:
            raise RegistryError("A Space needs a registry: pass a selector or a function that builds one.")
        self._load = load
        self.source = source
        self.selector = selector if selector is not None else load()
        self.last_sync = time.time()
        self.last_error: str | None = None
        self.refreshing_since: float | None = None
        self._lock = threading.Lock()
        self._fit_lock = threading.Lock()
        self._derived: "weakref.WeakKeyDictionary[AutoSourceSelector, _Derived]" = weakref.WeakKeyDictionary()
        self._thread: threading.Thread | None = None

    def derived(self, selector: AutoSourceSelector) -> _Derived:
        with self._lock:
            found = self._derived.get(selector)
        if found is None:
            found = _derive(selector)
            with self._lock:
                self._derived[selector] = found
        return found

    def projection(self, selector: AutoSourceSelector, signature_hash: str):
        """The 2-D map (`_plots.Projection`) of a signature group, fitted once per selector (a refresh brings a new
        selector, so a new map) under a lock: concurrent first queries fit it once. None: no such group."""
        derived = self.derived(selector)
        if signature_hash not in derived.projections:
            with self._fit_lock:
                if signature_hash not in derived.projections:
                    derived.projections[signature_hash] = _fit_projection(self, selector, signature_hash)
        return derived.projections[signature_hash]

    def group_rows(self, selector: AutoSourceSelector, signature_hash: str):
        """(unit-row matrix, row names, entry name -> first row) of a signature group, from the selector's own
        matrix (built once by the selector, shared with its rankings), or None."""
        derived = self.derived(selector)
        if signature_hash not in derived.group_rows:
            group = selector._group(signature_hash) if hasattr(selector, "_group") else None
            names = [] if group is None else [selector.entries[i].name for i in group.rows]
            row_of: dict[str, int] = {}
            for j, name in enumerate(names):
                row_of.setdefault(name, j)
            derived.group_rows[signature_hash] = None if group is None else (group.unit, names, row_of)
        return derived.group_rows[signature_hash]

    def warm(self, selector: AutoSourceSelector | None = None) -> None:
        """Build what the first query of the largest signature group would: its matrix and caches (one ranking)
        and its map, so that query answers at once. Failures are logged; the query then builds them."""
        selector = selector if selector is not None else self.selector
        try:
            groups = self.derived(selector).signatures
            if groups and groups[0]["entries"] > 1:
                first = selector.entries[groups[0]["members"][0]]
                # cosine: builds the group's matrix and the selector's lookups (a pcr-* query's directions
                # depend on what it leaves out, so there is nothing of them to warm)
                _rank(selector, first.embedding, 1, "cosine", {first.name}, ranker="peft")
            if groups:
                self.projection(selector, groups[0]["signature"])
        except TaskEmbHubError as err:  # a registry a query would refuse the same way, with its message
            logger.info("warming the registry's caches stopped: %s", scrub_paths(str(err)))
        except Exception:  # noqa: BLE001 - warming is an optimisation; the query path reports real errors
            logger.exception("warming the registry's caches failed")

    def refresh(self) -> bool:
        """Start rebuilding the registry in the background; False when a refresh is already running."""
        if self._load is None:
            raise RegistryError("This Space was started with a fixed registry; it cannot refresh.")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self.refreshing_since = time.time()
            self._thread = threading.Thread(target=self._refresh, name="registry-refresh", daemon=True)
            self._thread.start()
        return True

    def refresh_every(self, seconds: float) -> threading.Event:
        """Refresh in the background every `seconds` (e.g. to pick up new Hub adapters); set the returned event to stop."""
        stop = threading.Event()

        def loop():
            while not stop.wait(seconds):
                self.refresh()

        threading.Thread(target=loop, name="registry-auto-refresh", daemon=True).start()
        return stop

    def wait(self, timeout: float | None = None) -> None:
        """Block until a running refresh ends (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _refresh(self) -> None:
        try:
            selector = self._load()
            self.derived(selector)  # build the lookup tables before the swap: the first query stays fast
            self.warm(selector)  # and the matrix, caches and map of its largest group
        except Exception as err:  # noqa: BLE001 - a failed refresh keeps the old registry
            logger.exception("registry refresh failed")
            self.last_error = scrub_paths(f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}")
        else:
            self.selector, self.last_sync, self.last_error = selector, time.time(), None  # one atomic rebind
        finally:
            self.refreshing_since = None


def _derive(selector: AutoSourceSelector) -> _Derived:
    # Group by signature hash (known without loading a lazy entry's vector); read one entry per group.
    members: dict[str, list[int]] = {}
    for i, h in enumerate(_hashes(selector)):
        members.setdefault(h, []).append(i)
    groups = []
    for h, idx in members.items():
        first = selector.entries[idx[0]].embedding
        groups.append({"signature": h, "entries": len(idx), "method": first.method, "base_model": first.base_model,
                       "dim": first.dim, "members": idx})
    return _Derived(by_name={e.name: e for e in selector.entries},
                    signatures=sorted(groups, key=lambda g: -g["entries"]))


def _fit_projection(state: RegistryState, selector: AutoSourceSelector, signature_hash: str):
    """Fit the PCA map of a signature group on the selector's unit-row matrix (no entry's vector materialised)."""
    from . import _plots

    rows = state.group_rows(selector, signature_hash)
    if rows is not None:
        unit, names, _ = rows
        return _plots.Projection.fit(names, unit)
    group = next((g for g in state.derived(selector).signatures if g["signature"] == signature_hash), None)
    if group is None:
        return None
    entries = [selector.entries[i] for i in group["members"]]
    return _plots.Projection.fit([e.name for e in entries], [e.embedding.vector for e in entries])


def _hashes(selector: AutoSourceSelector) -> list[str]:
    # The selector hashes every entry's signature once at construction; reuse that.
    hashes = getattr(selector, "_hashes", None)
    if hashes is not None:
        return list(hashes)
    return [getattr(e, "signature_hash", None) or e.embedding.signature_hash for e in selector.entries]


def registry_status(state: RegistryState) -> tuple[str, list[list[Any]]]:
    """A Markdown summary (entries, last sync, refresh state) and one row per signature."""
    selector = state.selector
    derived = state.derived(selector)
    synced = datetime.fromtimestamp(state.last_sync, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"**{len(selector.entries)} entries** in {len(derived.signatures)} signature group(s) from "
             f"`{public_source(state.source)}`; last sync {synced}."]
    if selector.skipped:
        lines.append(f"{len(selector.skipped)} entries could not be read and are left out.")
    if state.refreshing_since is not None:
        lines.append(f"A refresh is running (since {time.time() - state.refreshing_since:.0f} s); queries use the "
                     "current registry meanwhile.")
    if state.last_error:
        lines.append(f"⚠️ The last refresh failed ({state.last_error}); the registry above is still served.")
    rows = [[g["signature"], g["entries"], g["method"], g["base_model"], g["dim"]] for g in derived.signatures]
    return "\n\n".join(lines), rows


def filter_choices(state: RegistryState) -> tuple[list[str], list[str], list[str]]:
    """Base models, methods and entry names the page offers."""
    selector = state.selector
    groups = state.derived(selector).signatures
    return ([ANY] + sorted({g["base_model"] for g in groups}), [ANY] + sorted({g["method"] for g in groups}),
            [e.name for e in selector.entries])


def refresh_registry(state: RegistryState) -> str:
    started = state.refresh()
    status, _ = registry_status(state)
    return ("Refresh started in the background; queries keep using the current registry until it is done.\n\n"
            if started else "A refresh is already running.\n\n") + status


# ---- shared pieces of the three ways to ask -----------------------------------------------
def _check_options(top_k, similarity: str, config: SpaceConfig, ranker: str = "auto") -> int:
    if similarity not in SIMILARITIES:
        raise TaskEmbHubError(f"Unknown similarity {similarity!r}. Use one of: {', '.join(SIMILARITIES)}.")
    check_ranker(ranker)
    try:
        k = int(top_k)
    except (TypeError, ValueError):
        raise TaskEmbHubError(f"top-k must be a whole number, not {top_k!r}.") from None
    if not 1 <= k <= config.max_top_k:
        raise TaskEmbHubError(f"top-k must be between 1 and {config.max_top_k}, not {k}.")
    return k


def _space(state: RegistryState, selector: AutoSourceSelector, base_model: str | None, method: str | None) -> list:
    """The entries of the largest signature group allowed by the base-model and method filters."""
    groups = [g for g in state.derived(selector).signatures
              if (not base_model or base_model == ANY or g["base_model"] == base_model)
              and (not method or method == ANY or g["method"] == method)]
    if not groups:
        raise RegistryError(f"The registry has no entry with base model {base_model!r} and method {method!r}. "
                            "Set the filters to 'any' or to a pair listed under Registry status.")
    return [selector.entries[i] for i in groups[0]["members"]]  # groups are sorted largest first


_last_cleanup: dict[str, float] = {}


def _work_dir(config: SpaceConfig) -> Path:
    root = Path(config.work_dir or Path(tempfile.gettempdir()) / "taskemb-space")
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    if now - _last_cleanup.get(str(root), 0.0) >= min(CLEANUP_EVERY_S, config.keep_files_s):
        _last_cleanup[str(root)] = now
        _remove_old_answers(root, now - config.keep_files_s)
    return Path(tempfile.mkdtemp(dir=root, prefix="answer-"))


def _remove_old_answers(root: Path, cutoff: float) -> None:
    for old in root.iterdir():  # answers' files are copied by the server when served; old ones can go
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _hub_url(config: SpaceConfig, path: str) -> str:
    from ..registries.hub import hub_endpoint

    return f"{hub_endpoint(config.hub_endpoint).rstrip('/')}/{path}"


def _repo_id_of(entry) -> str | None:
    """The Hub repo of an entry read from the Hub (its location), else None: local paths are never shown."""
    location = (entry.location or "").split("@")[0]
    if location and HUB_ID.match(location) and "/" in location and not Path(location).exists():
        return location
    return None


def _dataset_of(embedding: TaskEmbedding) -> tuple[str, str | None]:
    """(text, Hub dataset id or None) of the data an entry was tuned on."""
    source = str(embedding.extra.get("dataset") or embedding.extra.get("source") or "")
    if source and HUB_ID.match(source) and "/" in source and not Path(source).exists():
        return source, source
    return embedding.task, None


def _metric_text(metrics: dict) -> str:
    if not metrics:
        return ""
    name, value = next(iter(metrics.items()))
    return f"{name} {value:.3f}" if isinstance(value, (int, float)) else f"{name} {value}"


def _answer(state: RegistryState, selector: AutoSourceSelector, ranking: Ranking, config: SpaceConfig, *,
            target_label: str, note: str = "") -> Answer:
    """The table, figures (data the browser draws) and download files of a ranking."""
    derived = state.derived(selector)
    rows, records = _table(derived, ranking, config)
    bar, emb_map, heatmap = _figures(state, selector, ranking, target_label)
    csv_path, json_path, embedding_path = _downloads(state, ranking, records, target_label, config)
    message = (f"**{len(rows)} sources** for **{target_label}** ({ranking.target.method} on "
               f"`{ranking.target.base_model}`, ranked by {ranking.ranker}, {ranking.similarity} similarity: "
               f"{ranking.why}), best first.")
    target_hash = ranking.target.signature_hash
    group = next((g for g in derived.signatures if g["signature"] == target_hash), None)
    if group is not None:
        message += f" Signature `{target_hash}`: {group['entries']} entries of the registry share this space."
    if note:
        message += " " + note
    for warning in getattr(ranking, "warnings", None) or []:  # recipe mismatch, a target that learned nothing
        message += f"\n\n⚠️ {warning}"
    return Answer(message=message, rows=rows, ranking=ranking, bar=bar, map=emb_map, heatmap=heatmap,
                  csv_path=csv_path, json_path=json_path, embedding_path=embedding_path)


def _table(derived: _Derived, ranking: Ranking, config: SpaceConfig) -> tuple[list[list[Any]], list[dict]]:
    """The page's table rows (Markdown links to Hub repos and datasets) and the download's records."""
    rows, records = [], []
    for r in ranking.rows:
        entry = derived.by_name[r["source"]]
        repo = _repo_id_of(entry)
        dataset_text, dataset_id = _dataset_of(entry.embedding)
        repo_url = _hub_url(config, repo) if repo else None
        dataset_url = _hub_url(config, f"datasets/{dataset_id}") if dataset_id else None
        rows.append([r["rank"], f"[{r['source']}]({repo_url})" if repo_url else r["source"],
                     f"[{dataset_text}]({dataset_url})" if dataset_url else dataset_text, round(r["score"], 4),
                     _metric_text(entry.embedding.metrics), r["train_size"], r["step"], r["method"],
                     flags_text(r.get("flags"))])  # curation flags (taskemb_hub/curation.py)
        metric_name = next(iter(entry.embedding.metrics), None) if entry.embedding.metrics else None
        records.append({**r, "metric_name": metric_name, "repo_url": repo_url, "dataset": dataset_text,
                        "dataset_url": dataset_url})
    return rows, records


def _figures(state: RegistryState, selector: AutoSourceSelector, ranking: Ranking, target_label: str):
    """(bar, map, heatmap): small tables the browser draws (`_plots`). The registry's map is fitted once per
    registry version (`RegistryState.projection`); a query projects only its target. The heatmap covers the
    first `HEATMAP_MAX` sources."""
    from . import _plots

    names = [r["source"] for r in ranking.rows]
    bar = _plots.bar_data(names, [r["score"] for r in ranking.rows])
    projection = state.projection(selector, ranking.target.signature_hash)
    emb_map = None
    if projection is not None and projection.mean.shape[0] == ranking.target.dim:
        emb_map = _plots.map_data(projection, projection.project(ranking.target.vector), target_label, names)
    shown = names[:HEATMAP_MAX]
    heatmap = _plots.similarity_table([f"▶ {target_label}"] + shown,
                                      _plots.cosine_matrix(_unit_rows(state, selector, ranking.target, shown)))
    return bar, emb_map, heatmap


def _unit_rows(state: RegistryState, selector: AutoSourceSelector, target: TaskEmbedding, names: list[str]):
    """The target's vector and the named sources' unit rows as one numpy matrix (read from the group's matrix when
    the selector has one: no entry's vector is materialised). numpy, not torch: an op this small waits for a busy
    core when torch splits it between threads."""
    import numpy as np

    first = target.vector.detach().cpu().float().numpy().reshape(1, -1)
    rows = state.group_rows(selector, target.signature_hash)
    if rows is not None and rows[0].shape[1] == target.dim and all(n in rows[2] for n in names):
        unit, _, row_of = rows
        picked = unit.numpy()[[row_of[n] for n in names]] if names else np.zeros((0, target.dim), np.float32)
        return np.concatenate([first, picked.astype(np.float32)])
    by_name = state.derived(selector).by_name
    return np.concatenate([first] + [by_name[n].embedding.vector.float().numpy().reshape(1, -1) for n in names])


def _downloads(state: RegistryState, ranking: Ranking, records: list[dict], target_label: str,
               config: SpaceConfig) -> tuple[str, str, str]:
    """The ranking as CSV and JSON and the target's embedding as a zip: small files, written from memory."""
    folder = _work_dir(config)
    stem = safe_stem(target_label)
    csv_path = folder / f"ranking-{stem}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        fields = ["rank", "source", "task", "score", "method", "step", "train_size", "metric", "metric_name",
                  "repo_url", "dataset", "dataset_url"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(scrub_obj(records))
    json_path = folder / f"ranking-{stem}.json"
    payload = {**ranking.to_dict(), "target": target_label, "ranking": records, "registry": public_source(state.source)}
    json_path.write_text(json.dumps(scrub_obj(json.loads(json.dumps(payload, default=str))), indent=2), encoding="utf-8")
    return str(csv_path), str(json_path), str(_embedding_zip(ranking.target, folder, stem))


def _embedding_zip(target: TaskEmbedding, folder: Path, stem: str) -> Path:
    """The target's embedding as a download (`taskemb.safetensors` + `taskemb.json`, the bytes `TaskEmbedding.save`
    writes), its metadata scrubbed of server paths (recipe, source, ...); built in memory, one file written."""
    import zipfile

    from ..embedding import EMBEDDING_NAME, FORMAT_VERSION, METADATA_NAME, _safetensors_bytes

    header = {"format": FORMAT_VERSION, "signature_hash": target.signature_hash}
    if target.adapter_sha256:
        header["adapter_sha256"] = target.adapter_sha256
    meta = scrub_obj(json.loads(json.dumps(_metadata(target))))
    zip_path = folder / f"taskemb-{stem}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(METADATA_NAME, json.dumps(meta, indent=2))
        archive.writestr(EMBEDDING_NAME, _safetensors_bytes(target.vector, header), zipfile.ZIP_STORED)  # floats
    return zip_path


def _metadata(target: TaskEmbedding) -> dict[str, Any]:
    """`target.metadata()` without its deep copy of the vector (`dataclasses.asdict` copies every field)."""
    import dataclasses

    from ..embedding import FORMAT_VERSION

    meta = {f.name: getattr(target, f.name) for f in dataclasses.fields(target) if f.name != "vector"}
    if any(dataclasses.is_dataclass(v) for v in meta.values()):
        return target.metadata()
    meta.update(format=FORMAT_VERSION, dim=target.dim, signature_hash=target.signature_hash)
    return meta


def _rank(selector: AutoSourceSelector, target: TaskEmbedding, top_k: int, similarity: str,
          exclude: set[str] = frozenset(), ranker: str = "auto", text_target=None,
          exclude_flagged: bool = False) -> Ranking:
    if exclude and similarity == "cosine" and resolve_ranker(ranker, selector, text_target) == "peft":
        # Leave-one-out by dropping rows afterwards: cosine of the others does not depend on the
        # excluded entries, and the selector's stacked matrix is not copied per query.
        ranking = selector.rank(target, top_k=top_k + len(exclude), similarity=similarity, ranker=ranker,
                                exclude_flagged=exclude_flagged)
        rows = [r for r in ranking.rows if r["source"] not in exclude][:top_k]
        for i, r in enumerate(rows, start=1):
            r["rank"] = i
        if not rows:
            raise RegistryError(f"No other registry entry is comparable with {target.task!r}.")
        ranking.rows = rows
        ranking.skipped = [s for s in ranking.skipped if s[0] not in exclude]
        return ranking
    return selector.rank(target, top_k=top_k, similarity=similarity, exclude=exclude, ranker=ranker,
                         text_target=text_target, exclude_flagged=exclude_flagged)


# ---- 3. a registry task -------------------------------------------------------------------
@guarded
def rank_registry(state: RegistryState, config: SpaceConfig, entry: str, base_model: str = ANY, method: str = ANY,
                  top_k: int = 10, similarity: str = DEFAULT_SIMILARITY, ranker: str = "auto",
                  hide_flagged: bool = False) -> Answer:
    """Rank the other entries for one of the registry's own (leave-one-out: that task is left out)."""
    k = _check_options(top_k, similarity, config, ranker)
    if not entry:
        raise TaskEmbHubError("Pick a registry task.")
    selector = state.selector
    derived = state.derived(selector)
    match = derived.by_name.get(entry)
    if match is None:  # a task name? read from the entries' metadata: an index keeps its vectors on disk
        same_task = [e for e in selector.entries if e.info.task == entry]
        if not same_task:
            raise RegistryError(f"{entry!r} is not an entry of this registry. Pick one from the list "
                                f"({len(selector.entries)} entries).")
        match = same_task[0]
    emb = match.embedding
    if base_model not in (None, "", ANY) and emb.base_model != base_model:
        raise TaskEmbHubError(f"{entry!r} was tuned on {emb.base_model!r}, not on the base model filter {base_model!r}. "
                              "Set the filter to 'any' or pick another entry.")
    if method not in (None, "", ANY) and emb.method != method:
        raise TaskEmbHubError(f"{entry!r} is a {emb.method} entry, not {method}. Set the method filter to 'any'.")
    exclude = {match.name} | _same_task(state, selector, emb)
    text = selector.text_selector
    text_target = emb.task if text is not None and text._named(emb.task) else None  # its TextEmb vector, if packaged
    ranking = _rank(selector, emb, k, similarity, exclude, ranker, text_target, exclude_flagged=hide_flagged)
    return _answer(state, selector, ranking, config, target_label=match.name,
                   note=f"{len(exclude)} entr{'y' if len(exclude) == 1 else 'ies'} of the same task left out.")


def _same_task(state: RegistryState, selector: AutoSourceSelector, emb: TaskEmbedding) -> set[str]:
    """Names of the entries of `emb`'s signature tuned on its task (from the selector's task index, built once;
    reading every entry's metadata per query would cost a pass over the registry)."""
    positions, hashes = getattr(selector, "_positions", None), getattr(selector, "_hashes", None)
    if positions is not None and hashes is not None:
        return {selector.entries[i].name for i in positions("task").get(emb.task, [])
                if hashes[i] == emb.signature_hash}
    same_space = next((g["members"] for g in state.derived(selector).signatures
                       if g["signature"] == emb.signature_hash), [])
    return {selector.entries[i].name for i in same_space if selector.entries[i].info.task == emb.task}


# ---- 2. your adapter ----------------------------------------------------------------------
def _allowed_base_models(state: RegistryState, selector: AutoSourceSelector, base_model: str | None) -> set[str]:
    """The base models a visitor's adapter may name: the registry's, narrowed by the filter (a filter the
    registry does not hold is refused: it is a visitor's string, compared, never resolved)."""
    bases = {g["base_model"] for g in state.derived(selector).signatures}
    if base_model in (None, "", ANY):
        return bases
    if base_model not in bases:
        raise RegistryError(f"The registry has no entry with base model {base_model!r}. Set the base model filter "
                            "to 'any' or to one listed under Registry status.")
    return {base_model}


@guarded
def rank_adapter(state: RegistryState, config: SpaceConfig, repo_id: str | None = None, zip_path: str | None = None,
                 base_model: str = ANY, method: str = ANY, top_k: int = 10, similarity: str = DEFAULT_SIMILARITY,
                 progress: Progress | None = None, ranker: str = "auto", hide_flagged: bool = False) -> Answer:
    """Rank sources for a PEFT adapter: a Hub repo id, or an uploaded zip of an adapter folder.

    The adapter's base model must be one the registry holds, named by its id (never a path of the server);
    it is checked from the small config files, before a Hub repo's weights are downloaded.
    """
    from ._visitor_hub import check_adapter_folder, embedding_from_hub_repo

    k = _check_options(top_k, similarity, config, ranker)
    repo_id = (repo_id or "").strip()
    if bool(repo_id) == bool(zip_path):
        raise TaskEmbHubError("Give either a Hub repo id of a PEFT adapter or an uploaded adapter zip (not both).")
    selector = state.selector
    allowed = _allowed_base_models(state, selector, base_model)
    if progress:
        progress(0.1, desc="reading the adapter")
    if repo_id:
        if not HUB_ID.match(repo_id) or "/" not in repo_id or ".." in repo_id:
            raise AdapterError(f"{repo_id!r} is not a Hub repo id. Use the form 'owner/name' "
                               "(e.g. 'alice/rotten-tomatoes-bitfit').")
        from ..registries.hub import hub_endpoint

        emb = embedding_from_hub_repo(repo_id, endpoint=hub_endpoint(config.hub_endpoint), allowed=allowed,
                                      limits=config.limits)
        origin = label = repo_id
    else:
        upload = Path(zip_path)
        with tempfile.TemporaryDirectory(prefix="taskemb-adapter-") as tmp:
            folder = extract_adapter_zip(upload, tmp, config.limits)
            check_adapter_folder(folder, allowed)
            try:
                emb = TaskEmbedding.from_adapter(folder)
            except TaskEmbHubError as err:  # name the upload, not the server's temp folder
                raise type(err)(str(err).replace(str(folder), upload.name).replace(tmp, upload.name)) from None
            if emb.task == folder.name:  # the zip recorded no task name: use the folder's or the zip's
                emb.task = safe_stem(folder.name if folder != Path(tmp) else upload.name)
        origin = f"uploaded zip {upload.name}"
        label = emb.task
    emb.extra["source"] = origin  # never the server's temp folder
    if emb.base_model not in allowed:
        raise IncompatibleEmbeddingError(f"The adapter was tuned on {emb.base_model!r}; this registry's entries use "
                                         f"{' or '.join(repr(b) for b in sorted(allowed))}. Use an adapter of one of them.")
    if method not in (None, "", ANY) and emb.method != method:
        raise TaskEmbHubError(f"The adapter is a {emb.method} adapter, not {method}. Set the method filter to "
                              f"'{emb.method}' or 'any'.")
    if progress:
        progress(0.7, desc="ranking")
    # an adapter has no texts: fusion is refused
    ranking = _rank(selector, emb, k, similarity, ranker=ranker, exclude_flagged=hide_flagged)
    return _answer(state, selector, ranking, config, target_label=label)


# ---- 1. your data -------------------------------------------------------------------------
def _target_from_data():
    """The registry-recipe tuning helper (a seam: tests and benchmarks replace it to record or skip tuning)."""
    from ..targets import target_from_data

    return target_from_data


def data_columns(file_path: str | None, config: SpaceConfig) -> list[str]:
    """Column names of an uploaded data file (for the pickers)."""
    if not file_path:
        return []
    return read_header(check_data_file(file_path, config.limits))


def _guess(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def guess_columns(columns: list[str]) -> tuple[str | None, str | None]:
    """(text, label) columns worth preselecting."""
    text = _guess(columns, ("text", "sentence", "review", "content", "document", "question", "premise", "sentence1"))
    label = _guess(columns, ("label", "labels", "class", "target", "score", "stars", "sentiment", "category"))
    if text is None:
        text = next((c for c in columns if c != label), None)
    return text, label


def dataset_info(dataset_id: str, dataset_config: str | None = None) -> dict[str, list[str]]:
    """Configs, splits and columns of a Hub dataset (for the pickers)."""
    dataset_id = _check_dataset_id(dataset_id)
    import datasets

    try:
        # token=False: a visitor's id is read as a visitor would, never with the operator's HF_TOKEN or login
        configs = datasets.get_dataset_config_names(dataset_id, token=False)
        config = dataset_config or (configs[0] if configs else None)
        splits = datasets.get_dataset_split_names(dataset_id, config, token=False)
        split = "train" if "train" in splits else (splits[0] if splits else None)
        features = datasets.load_dataset_builder(dataset_id, config, token=False).info.features
        if not features and split:  # not declared in the card: read the first row, streamed (no full download)
            features = next(iter(datasets.load_dataset(dataset_id, config, split=split, streaming=True,
                                                       token=False)), {})
    except Exception as err:  # noqa: BLE001 - datasets raises many types for one cause: not found/unreachable
        raise DataError(f"Could not read Hub dataset {dataset_id!r} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200] if str(err) else ''}). Check the id and its visibility.") from None
    return {"configs": list(configs), "splits": list(splits), "columns": list(features) if features else []}


def public_source(source: str) -> str:
    """The registry's name as a visitor may see it: never a folder path of the server."""
    if source in ("default", "hub") or source.startswith(("hub:", "index:")) and not os.path.isabs(source.split(":", 1)[1]):
        return source
    return Path(source).name or "local registry"


def _check_dataset_id(dataset_id: str | None) -> str:
    dataset_id = (dataset_id or "").strip()
    if not HUB_ID.match(dataset_id) or ".." in dataset_id or os.path.exists(dataset_id) or _is_builder(dataset_id):
        raise DataError(f"{dataset_id!r} is not a Hub dataset id. Use the form 'owner/name' or 'name' "
                        "(e.g. 'cornell-movie-review-data/rotten_tomatoes'), or upload a file instead.")
    return dataset_id


def _is_builder(dataset_id: str) -> bool:
    """`csv`, `json`, `parquet`, `text`, `pandas`...: datasets' own loaders read files of the server's working
    folder when given no data files (and `pandas` unpickles), so such names are never a visitor's dataset."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return dataset_id.split("/")[-1].lower() in {name.lower() for name in _PACKAGED_DATASETS_MODULES} \
        and "/" not in dataset_id


def _task_from_hub(dataset_id: str, dataset_config: str | None, split: str | None, columns: dict,
                   limits: UploadLimits) -> tuple[TaskData, str]:
    import datasets

    from ..data import _hold_out_validation, task_from_columns

    dataset_id = _check_dataset_id(dataset_id)
    split = split or "train"
    try:
        # Streamed: only the rows used are downloaded (a visitor may name a multi-GB dataset), read without the
        # operator's token. A small seeded buffer (and shard order) mixes them; the buffer fills before the first
        # row comes out, so its size is what is read beyond max_rows.
        stream = datasets.load_dataset(dataset_id, dataset_config or None, split=split, streaming=True, token=False)
        buffer = min(HUB_SHUFFLE_BUFFER, limits.max_rows)
        rows = list(stream.shuffle(seed=0, buffer_size=buffer).take(limits.max_rows + 1))
    except Exception as err:  # noqa: BLE001
        raise DataError(f"Could not load split {split!r} of Hub dataset {dataset_id!r} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:200] if str(err) else ''}). Check the id, config and split.") from None
    note = ""
    cut = len(rows) > limits.max_rows
    if cut:
        rows = rows[:limits.max_rows]
        note = (f"The split has more than {limits.max_rows:,} rows; {limits.max_rows:,} of its first rows were read "
                f"(mixed in a seeded buffer of {min(HUB_SHUFFLE_BUFFER, limits.max_rows):,}).")
    if not rows:
        raise DataError(f"Split {split!r} of Hub dataset {dataset_id!r} has no rows. Pick another split.")
    features = getattr(stream, "features", None)
    try:  # keeps a ClassLabel's names (and so the number of classes the split has)
        table = datasets.Dataset.from_list(rows, features=features)
    except Exception:  # noqa: BLE001 - features that do not fit the rows as streamed: the rows' own types
        table = datasets.Dataset.from_list(rows)
    if cut:
        _check_classes_seen(table, columns.get("label"), dataset_id, split, limits)
    _check_columns(list(table.column_names), columns, dataset_id)
    name = dataset_id.split("/")[-1]
    task = _hold_out_validation(task_from_columns(name, {"train": table}, columns, None, source=dataset_id))
    task.info["dataset"] = dataset_id
    return task, note


def _check_classes_seen(table, label_column: str | None, dataset_id: str, split: str, limits: UploadLimits) -> None:
    """A split read only in part must show every class its ClassLabel names: a split sorted by label (one
    class after another, as many are) would otherwise be tuned on its first few classes without a word."""
    feature = table.features.get(label_column) if label_column else None
    names = getattr(feature, "names", None)
    if not names:
        return
    seen = set(table[label_column])
    if len(seen) < len(names):
        raise DataError(f"The first {limits.max_rows:,} rows of split {split!r} of {dataset_id!r} hold {len(seen)} of "
                        f"its {len(names)} classes (the split is probably sorted by label) and this Space reads no "
                        "more. Upload a shuffled sample of it as a file.")


def _task_from_file(file_path: str, columns: dict, limits: UploadLimits) -> TaskData:
    """An uploaded file as a task: only the picked columns, read within the row and decoded-size limits, and
    named by the visitor's file name (never the server's upload path) in every message and in the embedding."""
    from ..data import _hold_out_validation, task_from_columns

    path = check_data_file(file_path, limits)
    _check_columns(read_header(path), columns, path.name)
    wanted = [c for c in (columns["text"], columns["text_pair"], columns["label"]) if c]
    table = read_rows(path, list(dict.fromkeys(wanted)), limits)
    full = {**columns, "question": "question", "context": "context", "answers": "answers"}
    try:
        task = task_from_columns(safe_stem(path.name), {"train": table}, full, None, source=path.name,
                                 guessed_types=path.suffix.lower() in (".csv", ".tsv"))
    except (DataError, TypeError, ValueError) as err:  # labels of mixed kinds and the like: the visitor's file
        raise DataError(f"{path.name}: {str(err).splitlines()[0][:300]}" if not isinstance(err, DataError)
                        else str(err)) from None
    task.source = path.name
    return _hold_out_validation(task)


def _check_columns(available: list[str], columns: dict, source: str) -> None:
    pickers = {"text": "text column", "text_pair": "second text column", "label": "label column"}
    for key in ("text", "label"):
        if not columns.get(key):
            raise DataError(f"Pick the {pickers[key]} (the file has columns {available}).")
    missing = [(k, v) for k, v in columns.items() if k in pickers and v and v not in available]
    if missing:
        what = ", ".join(f"{pickers[k]} {v!r}" for k, v in missing)
        raise DataError(f"{source}: {what} not found; the columns are {available}. Pick one of those.")
    if columns["text"] == columns["label"]:
        raise DataError("The text and label columns are the same column. Pick a different label column.")


def _check_rows(task: TaskData, limits: UploadLimits, source: str) -> int:
    n = sum(len(rows) for rows in task.splits.values())
    if n < limits.min_rows:
        raise DataError(f"{source} has {n} labelled row(s); at least {limits.min_rows} are needed to tune "
                        "(the recipe uses up to 1,000). Add rows.")
    if n > limits.max_rows:
        raise DataError(f"{source} has {n:,} rows, over this Space's limit of {limits.max_rows:,}. Upload a "
                        "random sample (the recipe uses 1,000 rows).")
    if task.task_type == CLASSIFICATION:
        seen = {r["label"] for rows in task.splits.values() for r in rows}
        if len(seen) < 2:
            only = task.labels[next(iter(seen))] if task.labels and seen else "?"
            raise DataError(f"{source}: every row has the same label ({only!r}); a classification task needs at least "
                            "two. Check the label column.")
    return n


@guarded
def rank_data(state: RegistryState, config: SpaceConfig, file_path: str | None = None, dataset_id: str | None = None,
              dataset_config: str | None = None, dataset_split: str | None = None, text_column: str | None = "text",
              text_pair_column: str | None = None, label_column: str | None = "label", base_model: str = ANY,
              method: str = ANY, top_k: int = 10, similarity: str = DEFAULT_SIMILARITY,
              progress: Progress | None = None, ranker: str = "auto", hide_flagged: bool = False) -> Answer:
    """Tune the registry's recipe on the visitor's data (a file or a Hub dataset), then rank sources."""
    k = _check_options(top_k, similarity, config, ranker)
    selector = state.selector  # one registry for the whole request, even if a refresh swaps it meanwhile
    texts = wants_texts(ranker, selector)  # a ranker this registry cannot serve is refused before tuning
    dataset_id = (dataset_id or "").strip()
    if bool(file_path) == bool(dataset_id):
        raise DataError("Upload a data file or type a Hub dataset id (one of the two).")
    columns = {"text": text_column or None, "text_pair": text_pair_column or None, "label": label_column or None}
    entries = _space(state, selector, base_model, method)
    if progress:
        progress(0.0, desc="reading the data")
    note = ""
    if file_path:
        task = _task_from_file(file_path, columns, config.limits)
        source = task.source
    else:
        task, note = _task_from_hub(dataset_id, dataset_config, dataset_split, columns, config.limits)
        source = dataset_id
    _check_rows(task, config.limits, source)
    recorded = entries[0].embedding.base_model
    load_from = config.base_model_paths.get(recorded, recorded)
    if progress:
        progress(0.05, desc=f"tuning {entries[0].embedding.method} on {task.name} (the registry's recipe)")
    view = _EntriesView(entries)
    emb = _target_from_data()(task, view, progress=True, base_model=load_from)
    emb.extra["source"] = source
    text_target = None
    if texts:
        if progress:
            progress(0.9, desc="TextEmb of the texts (one forward pass)")
        from ..baselines import text_embedding

        text_target = text_embedding(task, base_model=load_from)
    if progress:
        progress(0.95, desc="ranking")
    ranking = _rank(selector, emb, k, similarity, ranker=ranker, text_target=text_target, exclude_flagged=hide_flagged)
    recipe = entries[0].embedding.extra.get("recipe") or {}
    tuned = (f"Tuned {emb.method} for {recipe.get('stop_step') or recipe.get('max_steps', '?')} steps on "
             f"{emb.train_size} rows, the recipe of the registry's entries.")
    return _answer(state, selector, ranking, config, target_label=task.name, note=" ".join(x for x in (tuned, note) if x))


@dataclass
class _EntriesView:
    """The part of a selector `target_from_data` reads (its entries), for one (base model, method) space."""

    entries: list
