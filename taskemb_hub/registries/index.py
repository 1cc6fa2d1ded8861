"""A registry index: every entry of a Hub registry in one dataset repo, read with one cached download.

Layout (a Hub dataset repo, or any folder):

    index.json                      format, source, shards (signature, method, base model, dim, rows)
    signatures/<hash>.safetensors   `unit` (n×d float16, unit-norm rows), `norms` (n), `mean` (d), and
                                    when d > 1,024 `projected` (n×1,024 float16: the seeded projection
                                    of `unit` that large rankings scan first, taskemb_hub/_ann.py)
    signatures/<hash>.parquet       one row per entry: repo id, commit sha, task, method, base model,
                                    step, train size, metrics, licence, recipe, and for SQL the shard key
                                    (`signature`) and `projection` (1,024 float32: the projected row)
    signatures/<hash>/<id>.*        the same pair per chunk, for a signature of more than 1,024 entries:
                                    an update rewrites only the chunks that changed (_index_layout.py)
    README.md                       dataset card tagged `taskemb-hub-index`

Vectors are stored unit-normalised with their norms, so cosine needs no norm and the centred
similarity uses the stored mean; the matrix is memory-mapped, never copied per entry.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import TAG
from ..errors import RegistryError
from ._index_files import (INDEX_FILE, INDEX_FORMAT, READABLE_FORMATS, SHARD_DIR,  # noqa: F401 (re-exported)
                           IndexContents, read_index, write_index)
from .base import Registry, RegistryEntry

INDEX_DOWNLOAD_DEADLINE_S = 3600.0


class IndexRegistry(Registry):
    """A registry index from a Hub dataset repo (through the HF cache) or a local folder.

    A model repo holding a saved selector (`AutoSourceSelector.push_to_hub`: an index with the selector's
    options) is read as well, when no dataset repo of that id exists; `selector_snapshot` then says so.

    Args:
        repo_or_folder: `owner/name` of the index dataset repo, or a folder holding `index.json`.
        revision, endpoint, token: as for the Hub client.
        timeout: seconds per request (default 10); deadline: seconds for the whole download (default 3,600).

    Example:
        ```python
        >>> contents = IndexRegistry("owner/taskemb-index").read()
        ```
    """

    def __init__(self, repo_or_folder: str | os.PathLike, *, revision: str | None = None, endpoint: str | None = None,
                 token: str | bool | None = None, timeout: float | None = None, deadline: float | None = None):
        self.source, self.revision, self.endpoint, self.token = str(repo_or_folder), revision, endpoint, token
        self.timeout, self.deadline = timeout, deadline
        self.skipped: list[tuple[str, str]] = []
        self.selector_snapshot = False  # the source is a model repo holding a saved selector
        self._folder: Path | None = None

    def describe(self) -> str:
        return f"index {self.source}"

    def folder(self, *, use_cache: bool = True, selectors: bool = True) -> Path:
        """The local copy: the folder itself, or the cached snapshot of the repo (one download when changed).

        Args:
            use_cache: when the Hub cannot be reached (offline, timeout, 5xx), serve the last copy read.
            selectors: without a dataset repo of this id, read a model repo holding a saved selector.

        Raises:
            RegistryError: one line naming the repo, the reason and the fix.
        """
        if self._folder is None:
            self._folder = Path(self.source) if Path(self.source).is_dir() else self._download(use_cache, selectors)
        return self._folder

    def _download(self, use_cache: bool, selectors: bool) -> Path:
        from huggingface_hub import constants
        from huggingface_hub.errors import RepositoryNotFoundError

        from ._fetch import cached_snapshot, deadline_at
        from ._hub_common import hub_endpoint
        from ._hub_errors import _describe_error, _retry_wait

        # An index is one large download: its shards can take longer than the 120 s that bounds a sync of many
        # small repos (a 100k-entry index is GBs), so it gets an hour; each request still times out on its own.
        until = deadline_at(INDEX_DOWNLOAD_DEADLINE_S if self.deadline is None else self.deadline)
        try:
            if constants.is_offline_mode():
                raise _Offline("HF_HUB_OFFLINE is set")
            try:
                return self._snapshot("dataset", until)
            except RepositoryNotFoundError:
                folder = self._selector_snapshot(until) if selectors else None
                if folder is None:
                    raise
                return folder
        except RepositoryNotFoundError as err:
            raise RegistryError(f"The index {self.source!r} was not found at {hub_endpoint(self.endpoint)} (no dataset "
                                "repo of that id, or it is private). Check the id (a dataset repo built by "
                                "`taskemb-hub index build`), or pass a token that can read it.") from err
        except RegistryError:
            raise
        except Exception as err:
            transient = isinstance(err, _Offline) or _retry_wait(err, 0.0) is not None
            cached = cached_snapshot(self.source, repo_type="dataset", revision=self.revision) if transient and use_cache \
                else None
            if cached is not None and (cached / INDEX_FILE).is_file():
                return cached  # as snapshot_download: the last copy read, when the Hub cannot be asked
            raise RegistryError(f"Cannot read the index {self.source!r}: {_describe_error(err)}. Retry later (or "
                                "raise --timeout/--deadline); nothing was changed.") from err

    def _snapshot(self, repo_type: str, until: float, info=None) -> Path:
        from ._fetch import snapshot
        from ._hub_common import hub_endpoint

        def wanted(name: str) -> bool:  # the index itself (and a saved selector's TextEmb side), not its card
            return name == INDEX_FILE or name.startswith(f"{SHARD_DIR}/") or \
                (repo_type == "model" and (name == "config.json" or name.startswith("textemb/")))

        return snapshot(self.source, repo_type=repo_type, revision=self.revision, endpoint=hub_endpoint(self.endpoint),
                        token=self.token, timeout=self.timeout, until=until, wanted=wanted, info=info)

    def _selector_snapshot(self, until: float) -> Path | None:
        """A model repo of this id holding a saved selector (`push_to_hub`), downloaded; None when there is none."""
        from huggingface_hub.errors import RepositoryNotFoundError

        from ._fetch import repo_info
        from ._hub_common import hub_endpoint

        try:
            info = repo_info(self.source, repo_type="model", revision=self.revision, endpoint=hub_endpoint(self.endpoint),
                             token=self.token, timeout=self.timeout, until=until)
        except RepositoryNotFoundError:
            return None
        if INDEX_FILE not in {s.rfilename for s in info.siblings or []}:
            raise RegistryError(f"{self.source!r} is a model repo, not a registry index: it holds no {INDEX_FILE}. Pass "
                                "the index dataset repo built by `taskemb-hub index build`, or load a model repo "
                                "pushed by `AutoSourceSelector.push_to_hub` with `AutoSourceSelector.from_pretrained`.")
        self.selector_snapshot = True
        return self._snapshot("model", until, info=info)

    def read(self) -> IndexContents:
        contents = read_index(self.folder(), name=self.source)
        self.skipped = [(f["repo"], f["reason"]) for f in contents.meta.get("failures", [])] + contents.refused
        return contents

    def entries(self) -> list[RegistryEntry]:
        return self.read().entries


class _Offline(Exception):
    pass


@dataclass
class IndexBuildReport:
    """What `build_index` did: entries written, reused unchanged, fetched anew, failed; the commit."""

    entries: int = 0
    reused: int = 0
    fetched: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    shards: int = 0
    committed: bool = False
    url: str = ""
    seconds: float = 0.0
    source: str = "hub"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "reused": self.reused, "fetched": self.fetched, "shards": self.shards,
                "committed": self.committed, "url": self.url, "seconds": round(self.seconds, 3),
                "source": self.source, "note": self.note,
                "failed": [{"repo": r, "reason": why} for r, why in self.failed]}


def build_index(repo_id: str | None = None, *, folder: str | os.PathLike | None = None, tag: str = TAG,
                endpoint: str | None = None, token: str | bool | None = None, push: bool = True,
                private: bool = False, **filters) -> IndexBuildReport:
    """Build (or update) the index of every Hub entry tagged `tag`, incrementally, and push it in one commit.

    Entries whose repo is still at the commit the current index recorded are carried over without
    a request; only new or changed repos are downloaded. Unchanged content makes no new commit.

    Args:
        repo_id: the index dataset repo (`owner/taskemb-index`); its current content is the start point.
        folder: write the index here too (default: a temporary folder).
        tag: the registry tag to collect.
        endpoint, token: as for the Hub client; the token is never printed.
        push: upload the result to `repo_id`.
        private: create the index repo private.
        **filters: `author`, `base_model`, `method`, `include_untagged`, `max_workers`, `timeout`, `deadline`
            (see `HubRegistry`).

    Example:
        ```python
        >>> build_index("me/taskemb-index", base_model="sentence-transformers/all-MiniLM-L6-v2").to_dict()
        ```
    """
    import math
    import tempfile
    import time

    from ._fetch import deadline_at
    from ._hub_common import check_repo_id, hub_endpoint
    from .hub import HubRegistry

    start = time.monotonic()
    # No default deadline: a build that stopped at 120 s would push an index without the repos it had not read yet.
    filters.setdefault("deadline", math.inf)
    until = deadline_at(filters.get("deadline"))  # one deadline for the start point and the sync
    endpoint = hub_endpoint(endpoint)
    known: dict[str, tuple[str, RegistryEntry]] = {}
    if repo_id:
        check_repo_id(repo_id)
        known = _start_point(repo_id, endpoint=endpoint, token=token, timeout=filters.get("timeout"),
                             deadline=filters.get("deadline"))
    filters["deadline"] = until - time.monotonic() if math.isfinite(until) else math.inf
    progress = filters.pop("progress", False)
    hub = HubRegistry(tag, endpoint=endpoint, token=token, known=known, **filters)
    hub.progress = progress
    entries = hub.entries()
    source = {"endpoint": endpoint, "tag": tag, **{k: v for k, v in filters.items()
                                                   if k in ("author", "base_model", "method", "include_untagged") and v}}
    report = IndexBuildReport(entries=len(entries), reused=hub.report.reused + hub.report.cached,
                              fetched=hub.report.fetched, failed=list(hub.skipped), source=hub.report.source,
                              note=hub.report.note)
    with tempfile.TemporaryDirectory(prefix="taskemb-index-") as staging:
        out = Path(folder) if folder else Path(staging)
        write_index(entries, out, source=source, failures=hub.skipped)
        report.shards = len(list((out / SHARD_DIR).glob("*.safetensors")))
        if push and repo_id and report.source != "hub":
            raise RegistryError(f"Not pushing an index built from a stale listing ({report.note}). Retry when the Hub "
                                "can be listed.")
        if push and repo_id:
            report.url, report.committed = push_index(out, repo_id, endpoint=endpoint, token=token, private=private,
                                                      message=f"taskemb-hub index: {len(entries)} entries "
                                                              f"({report.fetched} new or changed)")
    report.seconds = time.monotonic() - start
    return report


def _start_point(repo_id: str, *, endpoint: str, token, timeout: float | None,
                 deadline: float | None) -> dict[str, tuple[str, RegistryEntry]]:
    """The rows of the current index in `repo_id` that an update may carry over, by repo id: `{}` for a new index.

    Raises:
        RegistryError: the index repo cannot be read now (a 5xx, a timeout): nothing is built or pushed, so the
            index stays as it is (it is never rebuilt from scratch over a transient fault).
    """
    from huggingface_hub.errors import RepositoryNotFoundError

    registry = IndexRegistry(repo_id, endpoint=endpoint, token=token, timeout=timeout, deadline=deadline)
    try:
        folder = registry.folder(use_cache=False, selectors=False)
    except RegistryError as err:
        if isinstance(err.__cause__, RepositoryNotFoundError):
            return {}
        raise
    try:
        previous = read_index(folder)
    except Exception as err:  # empty, another format or corrupt content: rebuilt from the Hub
        warnings.warn(f"The current content of {repo_id} is not a readable index ({str(err).splitlines()[0][:200]}); "
                      "rebuilding it from every repo.", stacklevel=3)
        return {}
    return {e.name: (previous.shas[e.name], e) for e in previous.entries if e.name in previous.shas}


def push_index(folder: str | os.PathLike, repo_id: str, *, endpoint: str | None = None, token: str | bool | None = None,
               private: bool = False, message: str | None = None) -> tuple[str, bool]:
    """Upload an index folder to a dataset repo in one commit. Returns (commit url, whether a commit was made).

    Shards that no longer exist are deleted in the same commit; unchanged files are skipped by the
    client, so pushing identical content makes no commit.
    """
    from huggingface_hub import HfApi

    from ._hub_common import check_repo_id
    from ._hub_common import hub_endpoint

    check_repo_id(repo_id)
    read_index(folder)  # refuse to push something that is not a readable index
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=hub_endpoint(endpoint), token=token)
    try:
        before = api.repo_info(repo_id, repo_type="dataset").sha if api.repo_exists(repo_id, repo_type="dataset") else None
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                                 delete_patterns=[f"{SHARD_DIR}/*"], commit_message=message or "taskemb-hub index")
    except HfHubHTTPError as err:
        status = err.response.status_code if getattr(err, "response", None) is not None else "error"
        raise RegistryError(f"The Hub refused the index upload to {repo_id} (HTTP {status}). Check that your token "
                            "(HF_TOKEN or `hf auth login`) can write to that namespace, then retry.") from err
    return str(getattr(info, "commit_url", "")), getattr(info, "oid", None) != before
