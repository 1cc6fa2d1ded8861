"""The registry a Space serves: held, derived once per version, refreshed in the background, summarised, and
looked up (which entries a query ranks against)."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..embedding import TaskEmbedding
from ..errors import RegistryError, TaskEmbHubError
from ..ranking.selector import AutoSourceSelector
from ._config import ANY
from ._ranking import _rank
from ._uploads import scrub_paths

logger = logging.getLogger("taskemb_hub.space")


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
        load: builds a selector (e.g. `lambda: AutoSourceSelector.from_registry(open_registry("default"))`).
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
            group = selector._group(signature_hash)
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
    from ._plots import Projection

    rows = state.group_rows(selector, signature_hash)
    if rows is not None:
        unit, names, _ = rows
        return Projection.fit(names, unit)
    group = next((g for g in state.derived(selector).signatures if g["signature"] == signature_hash), None)
    if group is None:
        return None
    entries = [selector.entries[i] for i in group["members"]]
    return Projection.fit([e.name for e in entries], [e.embedding.vector for e in entries])


def _hashes(selector: AutoSourceSelector) -> list[str]:
    # The selector hashes every entry's signature once at construction; reuse that.
    return list(selector._hashes)


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


def public_source(source: str) -> str:
    """The registry's name as a visitor may see it: never a folder path of the server."""
    if source in ("default", "hub") or source.startswith(("hub:", "index:")) and not os.path.isabs(source.split(":", 1)[1]):
        return source
    return Path(source).name or "local registry"


def _space(state: RegistryState, selector: AutoSourceSelector, base_model: str | None, method: str | None) -> list:
    """The entries of the largest signature group allowed by the base-model and method filters."""
    groups = [g for g in state.derived(selector).signatures
              if (not base_model or base_model == ANY or g["base_model"] == base_model)
              and (not method or method == ANY or g["method"] == method)]
    if not groups:
        raise RegistryError(f"The registry has no entry with base model {base_model!r} and method {method!r}. "
                            "Set the filters to 'any' or to a pair listed under Registry status.")
    return [selector.entries[i] for i in groups[0]["members"]]  # groups are sorted largest first


def _same_task(selector: AutoSourceSelector, emb: TaskEmbedding) -> set[str]:
    """Names of the entries of `emb`'s signature tuned on its task (from the selector's task index, built once;
    reading every entry's metadata per query would cost a pass over the registry)."""
    return {selector.entries[i].name for i in selector._positions("task").get(emb.task, [])
            if selector._hashes[i] == emb.signature_hash}


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
