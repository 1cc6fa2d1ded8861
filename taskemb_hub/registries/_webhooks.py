"""An index that follows the Hub: a webhook receiver that applies repo events to the index in one commit each batch.

`taskemb-hub index serve-webhooks --index <repo> --secret-env VAR` serves huggingface_hub's `WebhooksServer`
with one endpoint, `POST /webhooks/index`. The Hub sends it a payload per repo change (settings: the index
owner's webhooks page, events "Repo update"). An event that may concern the index (a repo it holds, or one that
carries its tag, of its author when it was built with `--author`, or an untagged adapter of its base model when
it was built with them) is queued; after a short quiet window (`debounce_s`, but never more than `max_wait_s`
after the first queued event) the batch is applied. An event only says *that* a repo changed: each queued repo is
looked up at its current head (one info request), and the index's own record decides what to do, so that late,
repeated or out-of-order deliveries never roll an entry back: a repo that is gone (deleted, untagged, out of the
index's filters) loses its entry; a repo whose head is the commit the index records is left alone; any other is
read once at its head (the single-repo parsing of `HubRegistry.fetch`). The index is rewritten incrementally (only
the chunks that changed, `_index_layout`) and pushed as one commit whose parent is the index commit it was built
from; files whose bytes did not change are not sent, and nothing changed is no commit. A batch whose commit fails
(the index moved meanwhile, 5xx, timeout) and a repo that could not be read are queued again, after a backoff, a
few times (`attempts`); a repo given up on keeps its previous row. Nothing is pushed by a failed batch.

Answers: 401/403 without or with a wrong `X-Webhook-Secret` (checked by huggingface_hub), 422 for a payload
that is not the Hub's schema or names no commit, 409 for a replay (the index already records that commit of the
repo, or it was applied or is queued: decided from the index itself, so a restart keeps it, plus a bounded set
of recent events), 200 for an event that concerns no entry (ignored, or a deletion of a repo the index does not
hold), 202 when queued.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import TAG
from ..errors import RegistryError

WEBHOOK_PATH = "index"  # served at /webhooks/index
DEFAULT_DEBOUNCE_S = 2.0
DEFAULT_MAX_WAIT_S = 30.0  # a steady stream of events is still applied this long after its first one
DEFAULT_RETRY_S = 5.0  # first backoff of a failed batch or repo, doubled each attempt
DEFAULT_ATTEMPTS = 4
_MAX_BACKOFF_S = 300.0
RECENT_EVENTS = 4096  # (repo, commit) pairs remembered beyond what the index records


@dataclass
class FlushReport:
    """What one batch did: repos updated, removed, left as they were (the index already holds their head), failed
    (with why), queued again for another attempt, whether a commit was made."""

    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    committed: bool = False
    commit: str = ""
    error: str = ""


@dataclass
class _Queued:
    sha: str | None  # the commit the event named (None: a deletion); a key against replays, never what is read
    queued: float  # when it was first queued (monotonic): the max wait counts from it
    attempts: int = 0  # failed attempts so far
    due: float = 0.0  # a retry's earliest time


class IndexUpdater:
    """Queues repo events for an index repo and applies each quiet-window batch in one commit.

    Args:
        index_repo: the index dataset repo (`owner/taskemb-index`), built by `taskemb-hub index build`.
        endpoint, token: as for the Hub client (the token needs write access to the index; never printed).
        debounce_s: seconds without a new event before a batch is applied (a burst is one commit).
        max_wait_s: the most seconds an event waits for a quiet window (a steady stream is still applied).
        retry_s: the first backoff of a failed batch or repo (doubled each time); attempts: tries in all.
        timeout, deadline: seconds per Hub request and per batch read.

    Example:
        ```python
        >>> updater = IndexUpdater("me/taskemb-index", debounce_s=2)
        >>> updater.submit({"event": {"action": "update", "scope": "repo.content"}, ...})   # (202, "queued ...")
        ```
    """

    def __init__(self, index_repo: str, *, endpoint: str | None = None, token: str | bool | None = None,
                 debounce_s: float = DEFAULT_DEBOUNCE_S, timeout: float | None = None, deadline: float | None = None,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, retry_s: float = DEFAULT_RETRY_S,
                 attempts: int = DEFAULT_ATTEMPTS):
        from ._hub_common import hub_endpoint

        self.index_repo, self.endpoint, self.token = index_repo, hub_endpoint(endpoint), token
        self.debounce_s, self.timeout, self.deadline = debounce_s, timeout, deadline
        self.max_wait_s, self.retry_s, self.attempts = max_wait_s, retry_s, max(1, int(attempts))
        self.pending: dict[str, _Queued] = {}  # repo id -> its queued event
        self.recent: OrderedDict[tuple[str, str], None] = OrderedDict()  # applied (repo, commit), newest last
        self.recent_limit = RECENT_EVENTS
        self.reports: list[FlushReport] = []
        self._lock, self._flush_lock = threading.Lock(), threading.Lock()
        self._timer: threading.Timer | None = None
        self._last_event = 0.0
        self._source: dict[str, Any] | None = None  # the index's build filters (tag, author, base model, ...)
        self._shas: dict[str, str] = {}  # entry -> the commit the last index read records for it

    def prime(self) -> int:
        """Read the index once (its entries, their commits and its build filters decide which events concern it and
        which are replays). Returns its size.

        Raises:
            RegistryError: the index cannot be read (one line: the repo, why, the fix).
        """
        from .index import IndexRegistry

        contents = IndexRegistry(self.index_repo, endpoint=self.endpoint, token=self.token, timeout=self.timeout,
                                 deadline=self.deadline).read()
        self._remember_index(contents)
        return len(self._shas)

    def _remember_index(self, contents) -> None:
        with self._lock:
            self._source = contents.meta.get("source") or {}
            self._shas = {e.name: contents.shas.get(e.name, "") for e in contents.entries}

    # ---- events ------------------------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> tuple[int, str]:
        """Check one Hub webhook payload (the JSON body) and queue it. Returns (HTTP status, one-line message)."""
        event = _parse(body)
        if isinstance(event, str):
            return 422, event
        action, repo, sha, tags = event
        wanted = None if action == "delete" else sha
        with self._lock:
            if wanted is not None and not self._concerns(repo, tags):
                return 200, f"ignored: {repo} is not an adapter {self.index_repo} indexes"
            queued = self.pending.get(repo)
            if wanted is None and repo not in self._shas and queued is None:
                return 200, f"nothing to do: {repo} is not an entry of {self.index_repo}"
            if queued is not None and queued.sha == wanted:
                return 409, f"refused: {repo} at {sha or 'deletion'} is already queued (a replay)"
            if wanted is not None and (self._shas.get(repo) == wanted or (repo, wanted) in self.recent):
                return 409, f"refused: {repo} at {sha} was already applied (a replay)"
            now = time.monotonic()  # a newer event of a queued repo keeps its place: the max wait counts from the first
            self.pending[repo] = _Queued(wanted, queued.queued if queued is not None and not queued.attempts else now)
            self._last_event = now
            self._schedule()
        return 202, f"queued: {repo} ({'deletion' if wanted is None else sha}); applied after {self.debounce_s:g} s"

    def _concerns(self, repo: str, tags: list[str]) -> bool:
        source = self._source or {}
        if repo in self._shas:
            return True
        author = source.get("author")
        if author and repo.split("/")[0].lower() != str(author).lower():
            return False  # the index was built with --author: another author's repo is never an entry
        if (source.get("tag") or TAG) in tags:
            return True
        base = source.get("base_model")
        return bool(source.get("include_untagged") and base and f"base_model:adapter:{base}" in tags)

    def _schedule(self) -> None:
        """(Re)arm the timer for the next batch: the quiet window of the fresh events (capped by `max_wait_s` from
        the first of them) or the earliest retry. Called with `_lock` held."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        fresh = [q.queued for q in self.pending.values() if not q.attempts]
        dues = [q.due for q in self.pending.values() if q.attempts]
        if fresh:
            dues.append(min(self._last_event + self.debounce_s, min(fresh) + self.max_wait_s))
        if dues:
            self._timer = threading.Timer(max(0.0, min(dues) - time.monotonic()), self._flush_in_background)
            self._timer.daemon = True
            self._timer.start()

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
        """Apply the queued events that are due in one commit (none when nothing changes). On failure nothing is
        pushed (the previous index stays) and the events are queued again, a bounded number of times."""
        with self._flush_lock:
            now = time.monotonic()
            with self._lock:  # every fresh event, and the retries whose backoff is over
                batch = {r: q for r, q in self.pending.items() if not q.attempts or q.due <= now + 0.01}
                for repo in batch:
                    del self.pending[repo]
            report = FlushReport()
            if batch:
                try:
                    retry = self._apply(batch, report)
                except Exception as err:  # noqa: BLE001 - nothing was pushed: the index is as it was
                    report.error, report.committed = str(err).splitlines()[0][:300], False
                    retry = set(batch)
                self._requeue(batch, retry, report)
            self.reports.append(report)
            with self._lock:
                self._schedule()
            return report

    def _requeue(self, batch: dict[str, _Queued], retry: set[str], report: FlushReport) -> None:
        """Queue the failed events again with backoff (unless a newer event of the repo is queued or they ran out of
        attempts); remember the applied ones, so that a re-delivery is refused."""
        now = time.monotonic()
        with self._lock:
            for repo in sorted(retry):
                q = batch[repo]
                if repo in self.pending or q.attempts + 1 >= self.attempts:
                    continue
                backoff = min(self.retry_s * 2 ** q.attempts, _MAX_BACKOFF_S)
                self.pending[repo] = _Queued(q.sha, q.queued, q.attempts + 1, now + backoff)
                report.retrying.append(repo)
            for repo, q in batch.items():
                if repo not in retry and q.sha is not None:
                    self.recent[(repo, q.sha)] = None
                    self.recent.move_to_end((repo, q.sha))
            while len(self.recent) > self.recent_limit:
                self.recent.popitem(last=False)

    def _apply(self, batch: dict[str, _Queued], report: FlushReport) -> set[str]:
        """Read the index and the batch's repos, push one commit when something changed. Returns the repos whose
        read failed in a way worth another try."""
        from .index import IndexRegistry, read_index, write_index

        registry = IndexRegistry(self.index_repo, endpoint=self.endpoint, token=self.token, timeout=self.timeout,
                                 deadline=self.deadline)
        folder = registry.folder(use_cache=False, selectors=False)
        parent = folder.name  # the snapshot folder is named by the index commit it holds
        contents = read_index(folder, name=self.index_repo)
        self._remember_index(contents)
        fresh, gone, retry = self._read_repos(batch, report)
        report.removed = sorted(n for n in gone if n in self._shas)
        if not fresh and not report.removed:
            return retry
        entries = [e for e in contents.entries if e.name not in gone and e.name not in fresh] + list(fresh.values())
        failures = [f for f in ((f["repo"], f["reason"]) for f in contents.meta.get("failures", []))
                    if f[0] not in fresh and f[0] not in gone]
        with tempfile.TemporaryDirectory(prefix="taskemb-webhook-") as staging:
            out = write_index(entries, Path(staging) / "index", source=contents.meta.get("source"), failures=failures)
            report.commit = _commit_changes(out, folder, self.index_repo, parent, endpoint=self.endpoint, token=self.token,
                                            message=f"taskemb-hub webhook: {len(fresh)} updated, {len(report.removed)} "
                                                    "removed")
        report.committed, report.updated = bool(report.commit), sorted(fresh)
        with self._lock:
            for name in gone:
                self._shas.pop(name, None)
            self._shas.update({name: e.location.rsplit("@", 1)[-1] for name, e in fresh.items()})  # repo@sha
        return retry

    def _hub(self):
        """A `HubRegistry` with the index's recorded build filters (tag, author, base model, method, untagged)."""
        from .hub import HubRegistry

        source = self._source or {}
        return HubRegistry(source.get("tag") or TAG, endpoint=self.endpoint, token=self.token, timeout=self.timeout,
                           deadline=self.deadline, author=source.get("author"), base_model=source.get("base_model"),
                           method=source.get("method"), include_untagged=bool(source.get("include_untagged")))

    def _read_repos(self, batch: dict[str, _Queued], report: FlushReport):
        """Each queued repo looked up at its current head, and read there once unless the index already records that
        commit; one that is no longer an entry (deleted, untagged, outside the filters) is `gone`. Returns (fresh,
        gone, repos to retry)."""
        from ._hub_errors import EntryFailure, _describe_error, _retry_wait

        hub = self._hub()
        fresh, gone, retry = {}, set(), set()
        for repo in sorted(batch):
            try:
                ref = _current_ref(hub, repo)
                if ref is None:
                    gone.add(repo)
                elif self._shas.get(repo) == ref.sha:
                    report.unchanged.append(repo)  # a late, repeated or already-applied event: nothing to read
                else:
                    fresh[repo] = hub.fetch(ref)
            except EntryFailure as err:  # the repo's own content, unless the request behind it was transient
                report.failed.append((repo, str(err)))
                if err.__cause__ is not None and _retry_wait(err.__cause__, 0.0) is not None:
                    retry.add(repo)
            except Exception as err:  # noqa: BLE001 - a repo that cannot be read keeps its previous row
                report.failed.append((repo, _describe_error(err)))
                retry.add(repo)
        return fresh, gone, retry


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


def _current_ref(hub, repo: str):
    """The repo at its current head (one info request), or None when it is gone or no longer an entry of the index
    (deleted, not tagged, another author, outside the base-model / method filters: what the build's listing keeps)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    from ..cards import INDEX_TAG, base_model_tag, method_tag
    from ._fetch import deadline_at, repo_info
    from ._hub_refs import _ref

    if hub.author and repo.split("/")[0].lower() != hub.author.lower():
        return None
    try:
        info = repo_info(repo, repo_type="model", revision=None, endpoint=hub.endpoint, token=hub.token,
                         timeout=hub.timeout, until=deadline_at(hub.deadline))
    except RepositoryNotFoundError:
        return None
    tags = info.tags or []
    required = [hub.tag] + ([method_tag(hub.method)] if hub.method else []) \
        + ([base_model_tag(hub.base_model)] if hub.base_model else [])
    tagged = all(t in tags for t in required)
    untagged_ok = hub.include_untagged and f"base_model:adapter:{hub.base_model}" in tags and hub.tag not in tags
    if INDEX_TAG in tags or not (tagged or untagged_ok):
        return None
    return _ref(info, tagged=tagged)


def _commit_changes(new: Path, old: Path, repo_id: str, parent: str, *, endpoint: str, token, message: str) -> str:
    """Push the files of index folder `new` that `old` (the index snapshot it was built from) lacks, and delete
    those it no longer lists, in one commit on top of `parent` (the Hub refuses it if the index moved meanwhile).
    Returns the commit id, or "" when nothing changed.

    Only files whose bytes changed are sent. The card (README.md) is not in the snapshot (a reader never downloads
    it): it is sent when the card this code writes for the new `index.json` differs from the one it writes for the
    old, so an event that changes nothing makes no commit."""
    import json

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from ._index_layout import index_files
    from ._index_files import INDEX_FILE, _write_card, read_index

    read_index(new)  # never push something that does not read back
    new_meta, old_meta = json.loads((new / INDEX_FILE).read_text()), json.loads((old / INDEX_FILE).read_text())
    new_files, old_files = index_files(new_meta), index_files(old_meta)

    def changed(path: str) -> bool:  # a chunk is named by its content; a one-file shard (<= 1,024 rows) is compared
        return path not in old_files or (path.count("/") == 1 and (old / path).read_bytes() != (new / path).read_bytes())

    adds = [p for p in sorted(new_files) if changed(p)]
    deletes = [CommitOperationDelete(path_in_repo=p) for p in sorted(old_files - new_files)]
    if (old / INDEX_FILE).read_bytes() != (new / INDEX_FILE).read_bytes():
        adds.append(INDEX_FILE)
        with tempfile.TemporaryDirectory(prefix="taskemb-card-") as was:
            _write_card(Path(was), old_meta)
            if (Path(was) / "README.md").read_bytes() != (new / "README.md").read_bytes():
                adds.append("README.md")
    if not adds and not deletes:
        return ""
    adds = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(new / p)) for p in adds]
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
