"""An index that follows the Hub: a webhook receiver that applies repo events to the index in one commit each batch.

`taskemb-hub index serve-webhooks --index <repo> --secret-env VAR` serves huggingface_hub's `WebhooksServer`
with one endpoint, `POST /webhooks/index`. The Hub sends it a payload per repo change (settings: the index
owner's webhooks page, events "Repo update"). An update of a tagged adapter (or of a repo the index already
holds, or an untagged adapter of the index's base model when it was built with them) is queued; after a short
quiet window (`debounce_s`) the batch is applied: each queued repo is read once at its new commit (the single-repo
parsing of `HubRegistry.fetch`), the index is rewritten incrementally (only the chunks that changed,
`_index_layout`) and pushed as one commit whose parent is the index commit it was built from. A deletion removes
the entry. A repo that cannot be read keeps its previous row; a batch with nothing to change makes no commit;
any failure pushes nothing, so the previous index stays as it was.

Answers: 401/403 without or with a wrong `X-Webhook-Secret` (checked by huggingface_hub), 422 for a payload
that is not the Hub's schema or names no commit, 409 for an event already applied or queued (same repo and
commit), 200 for an event that concerns no entry (ignored), 202 when queued.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import TAG
from ..errors import RegistryError

WEBHOOK_PATH = "index"  # served at /webhooks/index
DEFAULT_DEBOUNCE_S = 2.0


@dataclass
class FlushReport:
    """What one batch did: repos updated, removed, failed (with why), whether a commit was made."""

    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    committed: bool = False
    commit: str = ""
    error: str = ""


class IndexUpdater:
    """Queues repo events for an index repo and applies each quiet-window batch in one commit.

    Args:
        index_repo: the index dataset repo (`owner/taskemb-index`), built by `taskemb-hub index build`.
        endpoint, token: as for the Hub client (the token needs write access to the index; never printed).
        debounce_s: seconds without a new event before a batch is applied (a burst is one commit).
        timeout, deadline: seconds per Hub request and per batch read.

    Example:
        ```python
        >>> updater = IndexUpdater("me/taskemb-index", debounce_s=2)
        >>> updater.submit({"event": {"action": "update", "scope": "repo.content"}, ...})   # (202, "queued ...")
        ```
    """

    def __init__(self, index_repo: str, *, endpoint: str | None = None, token: str | bool | None = None,
                 debounce_s: float = DEFAULT_DEBOUNCE_S, timeout: float | None = None, deadline: float | None = None):
        from .hub import hub_endpoint

        self.index_repo, self.endpoint, self.token = index_repo, hub_endpoint(endpoint), token
        self.debounce_s, self.timeout, self.deadline = debounce_s, timeout, deadline
        self.pending: dict[str, str | None] = {}  # repo id -> its new commit (None: deleted)
        self.applied: set[tuple[str, str | None]] = set()  # (repo, commit) applied: a replay is refused
        self.reports: list[FlushReport] = []
        self._lock, self._flush_lock = threading.Lock(), threading.Lock()
        self._timer: threading.Timer | None = None
        self._source: dict[str, Any] | None = None  # the index's build filters (tag, base model, untagged)
        self._names: set[str] = set()  # the entries of the last index read

    def prime(self) -> int:
        """Read the index once (its entries and build filters decide which events concern it). Returns its size.

        Raises:
            RegistryError: the index cannot be read (one line: the repo, why, the fix).
        """
        from .index import IndexRegistry

        contents = IndexRegistry(self.index_repo, endpoint=self.endpoint, token=self.token, timeout=self.timeout,
                                 deadline=self.deadline).read()
        self._source, self._names = contents.meta.get("source") or {}, {e.name for e in contents.entries}
        return len(self._names)

    # ---- events ------------------------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> tuple[int, str]:
        """Check one Hub webhook payload (the JSON body) and queue it. Returns (HTTP status, one-line message)."""
        event = _parse(body)
        if isinstance(event, str):
            return 422, event
        action, repo, sha, tags = event
        if action != "delete" and not self._concerns(repo, tags):
            return 200, f"ignored: {repo} is not a tagged adapter nor an entry of {self.index_repo}"
        key = (repo, None if action == "delete" else sha)
        with self._lock:
            if key in self.applied or (repo in self.pending and self.pending[repo] == key[1]):
                return 409, f"refused: {repo} at {sha or 'deletion'} was already applied or is queued (a replay)"
            self.pending[repo] = key[1]
            if self._timer is not None:
                self._timer.cancel()  # a burst: wait for quiet, then one commit
            self._timer = threading.Timer(self.debounce_s, self._flush_in_background)
            self._timer.daemon = True
            self._timer.start()
        return 202, f"queued: {repo} ({'deletion' if action == 'delete' else sha}); applied after {self.debounce_s:g} s"

    def _concerns(self, repo: str, tags: list[str]) -> bool:
        source = self._source or {}
        if TAG in tags or source.get("tag") in tags or repo in self._names:
            return True
        base = source.get("base_model")
        return bool(source.get("include_untagged") and base and f"base_model:adapter:{base}" in tags)

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        except Exception as err:  # noqa: BLE001 - a server keeps serving; the report says what failed
            self.reports.append(FlushReport(error=str(err).splitlines()[0][:300]))

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the queue is empty and no batch is being applied (for tests and a clean shutdown)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                idle = not self.pending and (self._timer is None or not self._timer.is_alive())
            if idle and self._flush_lock.acquire(blocking=False):
                self._flush_lock.release()
                return
            time.sleep(0.05)
        raise TimeoutError("the webhook queue did not drain")

    # ---- one batch ---------------------------------------------------------------------------------------------
    def flush(self) -> FlushReport:
        """Apply the queued events in one commit (none when nothing changes); the previous index stays on failure."""
        with self._flush_lock:
            with self._lock:
                batch, self.pending, self._timer = dict(self.pending), {}, None
            report = FlushReport()
            if batch:
                try:
                    self._apply(batch, report)
                except Exception as err:  # noqa: BLE001 - nothing was pushed: the index is as it was
                    report.error = str(err).splitlines()[0][:300]
                    report.committed = False
            self.reports.append(report)
            return report

    def _apply(self, batch: dict[str, str | None], report: FlushReport) -> None:
        from .index import IndexRegistry, read_index, write_index

        registry = IndexRegistry(self.index_repo, endpoint=self.endpoint, token=self.token, timeout=self.timeout,
                                 deadline=self.deadline)
        folder = registry.folder(use_cache=False, selectors=False)
        parent = folder.name  # the snapshot folder is named by the index commit it holds
        contents = read_index(folder, name=self.index_repo)
        self._source, self._names = contents.meta.get("source") or {}, {e.name for e in contents.entries}
        fresh, gone = self._read_repos(batch, report)
        keep = [e for e in contents.entries if e.name not in gone and e.name not in fresh]
        entries = keep + list(fresh.values())
        failures = [f for f in ((f["repo"], f["reason"]) for f in contents.meta.get("failures", []))
                    if f[0] not in fresh and f[0] not in gone]
        report.removed = sorted(n for n in gone if n in self._names)
        if not fresh and not report.removed:
            self._mark(batch, report)
            return
        with tempfile.TemporaryDirectory(prefix="taskemb-webhook-") as staging:
            out = write_index(entries, Path(staging) / "index", source=contents.meta.get("source"), failures=failures)
            report.commit = _commit_changes(out, folder, self.index_repo, parent, endpoint=self.endpoint, token=self.token,
                                            message=f"taskemb-hub webhook: {len(fresh)} updated, {len(report.removed)} "
                                                    "removed")
        report.committed, report.updated = bool(report.commit), sorted(fresh)
        self._names = {e.name for e in entries}
        self._mark(batch, report)

    def _read_repos(self, batch: dict[str, str | None], report: FlushReport):
        """Each updated repo read once at its new commit; a repo no longer an entry (untagged, deleted) is `gone`."""
        from .hub import EntryFailure, HubRegistry, _describe_error

        source = self._source or {}
        hub = HubRegistry(source.get("tag") or TAG, endpoint=self.endpoint, token=self.token, timeout=self.timeout,
                          deadline=self.deadline, base_model=source.get("base_model"), method=source.get("method"),
                          include_untagged=bool(source.get("include_untagged")))
        fresh, gone = {}, set()
        for repo, sha in sorted(batch.items()):
            if sha is None:
                gone.add(repo)
                continue
            try:
                ref = _repo_ref(hub, repo, sha)
                if ref is None:
                    gone.add(repo)  # no longer tagged: not an entry any more
                    continue
                fresh[repo] = hub.fetch(ref)
            except EntryFailure as err:
                report.failed.append((repo, str(err)))
            except Exception as err:  # noqa: BLE001 - a repo that cannot be read keeps its previous row
                report.failed.append((repo, _describe_error(err)))
        return fresh, gone

    def _mark(self, batch: dict[str, str | None], report: FlushReport) -> None:
        failed = {repo for repo, _ in report.failed}
        with self._lock:
            self.applied |= {(repo, sha) for repo, sha in batch.items() if repo not in failed}


def _parse(body: Any) -> tuple[str, str, str | None, list[str]] | str:
    """(action, repo id, new commit, tags) of a Hub webhook payload, or why it is refused (one line)."""
    from huggingface_hub import WebhookPayload
    from pydantic import ValidationError

    try:
        payload = WebhookPayload.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return f"refused: not a Hub webhook payload ({where}: {first.get('msg', 'invalid')})"
    if payload.repo.type != "model" or not payload.event.scope.startswith("repo"):
        return "refused: only model repo events (scope repo, repo.content, repo.config) update the index"
    raw = body.get("repo", {}) if isinstance(body, dict) else {}
    sha = payload.repo.head_sha or raw.get("headSha") or next(
        (r.newSha for r in payload.updatedRefs or [] if r.ref in ("refs/heads/main", "main") and r.newSha), None)
    if payload.event.action != "delete" and not (isinstance(sha, str) and len(sha) == 40
                                                   and all(c in "0123456789abcdef" for c in sha)):
        return "refused: the payload names no commit (repo.headSha, 40 hex digits)"
    return payload.event.action, payload.repo.name, sha, list(payload.repo.tags or [])


def _repo_ref(hub, repo: str, sha: str):
    """The repo as listed at `sha` (one info request), or None when it no longer carries the index's tag."""
    from ..cards import INDEX_TAG
    from ._fetch import deadline_at, repo_info
    from .hub import _ref

    info = repo_info(repo, repo_type="model", revision=sha, endpoint=hub.endpoint, token=hub.token,
                     timeout=hub.timeout, until=deadline_at(hub.deadline))
    tags = info.tags or []
    tagged = hub.tag in tags
    untagged_ok = hub.include_untagged and f"base_model:adapter:{hub.base_model}" in tags
    if INDEX_TAG in tags or not (tagged or untagged_ok):
        return None
    return _ref(info, tagged=tagged)


def _commit_changes(new: Path, old: Path, repo_id: str, parent: str, *, endpoint: str, token, message: str) -> str:
    """Push the files of index folder `new` that `old` (the index snapshot it was built from) lacks, and delete
    those it no longer lists, in one commit on top of `parent` (the Hub refuses it if the index moved meanwhile).
    Returns the commit id, or "" when nothing changed."""
    import json

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from ._index_layout import index_files
    from .index import INDEX_FILE, read_index

    read_index(new)  # never push something that does not read back
    new_files = index_files(json.loads((new / INDEX_FILE).read_text()))
    old_files = index_files(json.loads((old / INDEX_FILE).read_text()))
    def changed(path: str) -> bool:  # a chunk is named by its content; a one-file shard (<= 1,024 rows) is compared
        return path not in old_files or (path.count("/") == 1 and (old / path).read_bytes() != (new / path).read_bytes())

    adds = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(new / p)) for p in sorted(new_files) if changed(p)]
    adds += [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(new / p)) for p in (INDEX_FILE, "README.md")
             if not (old / p).is_file() or (old / p).read_bytes() != (new / p).read_bytes()]
    deletes = [CommitOperationDelete(path_in_repo=p) for p in sorted(old_files - new_files)]
    if not adds and not deletes:
        return ""
    info = HfApi(endpoint=endpoint, token=token).create_commit(repo_id, repo_type="dataset", operations=adds + deletes,
                                                               commit_message=message, parent_commit=parent)
    return str(getattr(info, "oid", "") or "")


def serve(updater: IndexUpdater, secret: str, *, port: int | None = None, host: str = "127.0.0.1",
          block: bool = True):
    """Serve `POST /webhooks/index` with huggingface_hub's `WebhooksServer` (secret checked: 401/403).

    Returns:
        The `WebhooksServer` (its `fastapi_app` is live), when `block` is False.
    """
    import gradio as gr
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from huggingface_hub import WebhooksServer

    if not secret:
        raise RegistryError("serve-webhooks needs a non-empty secret (the one set on the Hub's webhook page).")
    with gr.Blocks() as ui:
        gr.Markdown(f"taskemb-hub index webhook receiver for `{updater.index_repo}`: POST /webhooks/{WEBHOOK_PATH}")
    app = WebhooksServer(ui=ui, webhook_secret=secret)

    async def index(request: Request):
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - not JSON
            return JSONResponse({"error": "refused: the body is not JSON"}, status_code=422)
        status, message = updater.submit(body)
        return JSONResponse({"message" if status < 400 else "error": message}, status_code=status)

    index.__annotations__ = {"request": Request}  # the class itself: FastAPI cannot resolve a postponed name here
    app.add_webhook(WEBHOOK_PATH)(index)
    app.launch(prevent_thread_lock=not block, server_name=host, server_port=port, share=False, quiet=True)
    return app
