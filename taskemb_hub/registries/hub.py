"""The Hub as a registry: every model repo tagged `taskemb-hub` (and, on request, every plain PEFT
adapter of a base model), read through the huggingface_hub cache.

One listing call (`list_models(..., expand=["sha", "siblings", "tags"])`) says which commit each
repo is at and which files it holds. A file of that commit already in the HF cache is read without
a request. For the others, the listing's sizes and blob ids (the Hub's listing has none: then one
`paths-info` request per repo, for all the files it needs) give what `hf_hub_download` would HEAD
each file for, so a file costs one GET, written into the HF cache exactly where `hf_hub_download`
puts it (blob named by its etag, snapshot link per commit). An unchanged re-sync therefore
downloads nothing; a parsed entry is reused only under the same `parse_key` (commit, embedding code
version, embedding inputs). Repos are fetched in parallel, every request bounded by `timeout` and the
whole sync by `deadline` (120 s by default); each repo that fails is reported with its reason and never
stops the others. The last listing is kept beside the cache, so with
`HF_HUB_OFFLINE=1`, or when the Hub cannot be listed, the last sync is served from the cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ..adapters import CONFIG_NAME, PICKLE_WEIGHTS_NAME, WEIGHTS_NAME
from ..base_model import canonical_model_id
from ..cards import INDEX_TAG, TAG, base_model_tag, method_tag
from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding
from ..errors import AdapterError, RegistryError
from ._hub_common import hub_endpoint  # noqa: F401 (re-exported: callers import it from here)
from ._fetch import (DEFAULT_DEADLINE_S, DEFAULT_TIMEOUT_S, DeadlineExceeded, deadline_at, default_deadline,
                     default_timeout, request_timeout)
from ._entry_files import (embed_adapter_folder, read_embedding_files, split_by_vector_length,  # noqa: F401 (re-exported)
                           vector_fingerprint)
from ._hub_cache import SyncCache, _cached
from ._hub_errors import EntryFailure, _describe_error, _retry_wait, _root_cause, _status
from ._hub_refs import (RepoRef, SyncReport, _check_tied_to_weights, _file_meta, _has_embedding_files,  # noqa: F401
                        _ref, parse_key_of)
from .base import Registry, RegistryEntry

DEFAULT_MAX_FILE_BYTES = 200 * 2**20  # adapters of small encoders are a few MB; a 7B LoRA ~ 100 MB
DEFAULT_WORKERS = 8
# Each request is made once (registries/_fetch.py): a 429 (rate limit) is asked again after its Retry-After up to
# _RATE_LIMIT_RETRIES times while the deadline allows; other transient failures (5xx, timeouts, truncated bodies)
# only with `retries` (a hung repo then costs one request timeout, not the client's minutes of retries).
DEFAULT_RETRIES = 0
_RATE_LIMIT_RETRIES = 3
class HubRegistry(SyncCache, Registry):
    """Every model repo on the Hub tagged `tag`, read as registry entries through the HF cache.

    Args:
        tag: the model-card tag that marks registry entries.
        endpoint: Hub URL (default `HF_ENDPOINT` or huggingface.co).
        token: Hub token; never printed or logged.
        author: only this user's or organisation's repos.
        base_model: only entries of this base model (filtered on the server by the tag
            `publish` writes; entries of another base model that slip through are reported).
        method: only entries of this PEFT method (server-side tag).
        include_untagged: also embed plain PEFT adapters of `base_model` (the Hub tags them
            `base_model:adapter:<id>`) from their safetensors weights.
        max_workers: repos fetched in parallel.
        timeout: seconds for each request (paths-info, HEAD, each read of a download; default 10) before it
            counts as failed; the listing gets 6 of them (or what is left of the deadline). No request is
            retried by the client behind this (registries/_fetch.py says why).
        deadline: seconds for the whole sync (default 120; `math.inf` for none); repos not done by then are
            reported as failed, not waited for.
        max_file_bytes: larger files are not downloaded.
        retries: extra rounds for a request that fails with a 5xx, a timeout or a truncated body (waiting
            `backoff`·2^k seconds, never past the deadline; default 0: the client does not retry behind it
            either). A 429 is asked again after its Retry-After a few times whatever `retries` says.
        known: entries already at hand, by repo id, with the commit they were read at (an index);
            a repo still at that commit, parsed under the same `parse_key`, is reused without any request.

    Example:
        ```python
        >>> registry = HubRegistry(base_model="sentence-transformers/all-MiniLM-L6-v2", method="bitfit")
        >>> entries = registry.entries()
        >>> registry.report.failed   # [(repo_id, reason), ...]
        ```
    """

    def __init__(self, tag: str = TAG, *, endpoint: str | None = None, token: str | bool | None = None,
                 author: str | None = None, base_model: str | None = None, method: str | None = None,
                 include_untagged: bool = False, max_workers: int = DEFAULT_WORKERS,
                 timeout: float | None = None, deadline: float | None = None,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, known: dict[str, tuple[str, RegistryEntry]] | None = None,
                 retries: int = DEFAULT_RETRIES, backoff: float = 0.5):
        if include_untagged and not base_model:
            raise RegistryError("include_untagged needs base_model: plain adapters are found by the Hub's "
                                "`base_model:adapter:<id>` tag. Pass base_model='<base model id>'.")
        self.tag, self.author, self.token, self.method = tag, author, token, method
        self.base_model = canonical_model_id(base_model) if base_model else None
        self.include_untagged, self.max_workers = include_untagged, max_workers
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.deadline = default_deadline() if deadline is None else float(deadline)
        self.max_file_bytes = max_file_bytes
        self.retries, self.backoff = retries, backoff
        self._deadline_at = float("inf")
        self.endpoint = hub_endpoint(endpoint)
        self.known = dict(known or {})
        self.skipped: list[tuple[str, str]] = []
        self.report = SyncReport()
        self.progress = False  # a tqdm bar over the repos being read
        self._paths_info_supported = True
        self._adapter_inputs: dict | None = None

    def parse_key(self, ref: RepoRef) -> str:
        """The key under which a parsed entry of `ref` may be reused instead of read again.

        It names the repo and commit, the embedding code's version (`embedding.EMBEDDING_CODE_VERSION`) and, for
        an adapter embedded here from its weights, the embedding options and the base model's config as this
        machine reads it: a change of any of them reads (and embeds) the repo again, where a key of the commit
        alone kept a vector of older code, of another width, forever.
        """
        from ..embedding import EMBEDDING_CODE_VERSION  # read at each call: a newer version re-reads

        inputs: dict[str, Any] = {"repo": ref.repo_id, "sha": ref.sha}
        if not _has_embedding_files(ref):  # a saved vector is read as it is: only what is embedded here has a version
            inputs["code"] = EMBEDDING_CODE_VERSION
            inputs["adapter"] = self._adapter_key_inputs()
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def reusable(self, entry: RegistryEntry, ref: RepoRef) -> bool:
        """Whether a parsed `entry` (of an index or the last sync) stands for `ref` as this code would read it."""
        key = parse_key_of(entry)
        if key is None:  # parsed before keys existed: a saved vector needs none; an embedded adapter is read again
            return _has_embedding_files(ref)
        return key == self.parse_key(ref)

    def _kept_on_failure(self, todo: list[RepoRef], failed: list[tuple[str, str]]) -> list[RegistryEntry]:
        """Entries an index carried at the very commit whose re-read (for a newer embedding code) failed or ran
        out of time: kept as they were rather than dropped from the index. `failed` loses them."""
        kept = []
        for ref in todo:
            known = self.known.get(ref.repo_id)
            if known is not None and known[0] == ref.sha and any(r == ref.repo_id for r, _ in failed):
                kept.append(known[1])
                failed[:] = [(r, why) for r, why in failed if r != ref.repo_id]
        if kept:
            warnings.warn(f"{len(kept)} entr{'y' if len(kept) == 1 else 'ies'} could not be read again and "
                          "kept as the index had them (same commit)", stacklevel=3)
        return kept

    def _adapter_key_inputs(self) -> dict:
        """What embedding an adapter here depends on besides its bytes: the base model's id (a Hub id, or a local
        model's fingerprint) and the embedding options. Not the base config as this machine reads it: that would
        give a reader without the model at hand another key than the index's builder, and re-embed every row."""
        if self._adapter_inputs is None:
            from dataclasses import asdict

            from ..methods import EmbeddingOptions

            self._adapter_inputs = {"base_model": self.base_model, "options": asdict(EmbeddingOptions())}
        return self._adapter_inputs

    def describe(self) -> str:
        filters = [f"tag {self.tag!r}"] + [f"{k} {v!r}" for k, v in (("author", self.author), ("base model", self.base_model),
                                                                         ("method", self.method)) if v]
        return f"Hub {self.endpoint} ({', '.join(filters)}{', plus untagged adapters' if self.include_untagged else ''})"

    # ---- listing -------------------------------------------------------------------------
    def _api(self):
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token)

    def list_repos(self, limit: int | None = None) -> list[RepoRef]:
        """The repos to read, each with its commit sha: one paginated listing per tag filter."""
        api = self._api()
        expand = ["sha", "siblings", "tags", "cardData"]
        tagged_filter = [self.tag] + ([method_tag(self.method)] if self.method else []) \
            + ([base_model_tag(self.base_model)] if self.base_model else [])
        refs: dict[str, RepoRef] = {}
        for model in api.list_models(filter=tagged_filter, author=self.author, limit=limit, expand=expand):
            if INDEX_TAG in (model.tags or []):
                continue  # a selector snapshot or index is not an entry
            refs[model.id] = _ref(model, tagged=True)
        if self.include_untagged:
            for model in api.list_models(filter=f"base_model:adapter:{self.base_model}", author=self.author,
                                         limit=limit, expand=expand):
                if model.id not in refs and INDEX_TAG not in (model.tags or []) and self.tag not in (model.tags or []):
                    refs[model.id] = _ref(model, tagged=False)
        return sorted(refs.values(), key=lambda r: r.repo_id)

    # ---- sync ----------------------------------------------------------------------------
    def entries(self, limit: int | None = None) -> list[RegistryEntry]:
        """Every readable entry; the others go to `self.skipped` (and `self.report.failed`) with the reason."""
        from huggingface_hub import constants

        start = time.monotonic()
        self._deadline_at = deadline_at(self.deadline)
        report = SyncReport(synced_at=time.time())
        offline = constants.is_offline_mode()
        try:
            if offline:
                raise _ListingUnavailable("HF_HUB_OFFLINE is set")
            refs = self._bounded(lambda: self.list_repos(limit), "the repo listing")
        except _ListingUnavailable as err:
            refs = self._cached_listing(f"{err}")
            report.source, report.note = "cache", f"{err}; serving the last sync from the cache"
        except Exception as err:  # the listing itself failed: server down, 5xx after retries, timeout
            reason = _describe_error(err, "the repo listing")
            refs = self._cached_listing(reason)
            report.source, report.note = "cache", f"{reason}; serving the last sync from the cache"
            offline = True
        else:
            self._save_manifest(refs)
        report.listed = len(refs)
        local = self._load_local()
        reused, cached, todo = [], [], []
        for ref in refs:
            known, parsed = self.known.get(ref.repo_id), local.get(ref.repo_id)
            if known is not None and known[0] == ref.sha and self.reusable(known[1], ref):
                reused.append(known[1])
            elif parsed is not None and parsed[0] == ref.sha and self.reusable(parsed[1], ref):
                cached.append(parsed[1])
            else:
                todo.append(ref)
        fetched, failed = self._fetch_all(todo, local_only=offline)
        reused += self._kept_on_failure(todo, failed)
        fetched, mismatched = split_by_vector_length(fetched, reused + cached)
        failed = sorted(failed + mismatched)
        exact = sorted(cached + fetched, key=lambda e: e.name)  # what was read from the Hub, not an index's float16
        if fetched or {e.name for e in exact} != set(local):
            self._store_local(exact)
        report.reused, report.cached, report.fetched, report.failed = len(reused), len(cached), len(fetched), failed
        report.seconds = time.monotonic() - start
        self.skipped, self.report = list(failed), report
        return sorted(reused + exact, key=lambda e: e.name)

    def _bounded(self, call, what: str):
        """`call()` in a daemon thread, abandoned after 6 request timeouts or at the deadline, whichever is first
        (the client's listing pages with no timeout of its own and retries 5xx and timeouts 5 times)."""
        budget = min(self._deadline_at - time.monotonic(), 6 * self.timeout)
        done: dict[str, Any] = {}

        def run():
            try:
                done["value"] = call()
            except BaseException as err:  # handed to the caller's thread
                done["error"] = err

        thread = threading.Thread(target=run, daemon=True, name="taskemb-listing")
        thread.start()
        thread.join(max(budget, 0.0))
        if thread.is_alive():
            raise TimeoutError(f"{what} timed out after {max(budget, 0):.0f} s")
        if "error" in done:
            raise done["error"]
        return done["value"]

    def _fetch_all(self, refs: list[RepoRef], *, local_only: bool) -> tuple[list[RegistryEntry], list[tuple[str, str]]]:
        """Fetch repos on daemon worker threads; at the deadline the rest are reported and left behind
        (daemon threads: a hung download never holds the process open at exit)."""
        import queue

        from tqdm.auto import tqdm

        entries, failed = [], []
        if not refs:
            return entries, failed
        todo: queue.Queue = queue.Queue()
        for ref in refs:
            todo.put(ref)
        results: queue.Queue = queue.Queue()

        def worker():
            while True:
                try:
                    ref = todo.get_nowait()
                except queue.Empty:
                    return
                if time.monotonic() > self._deadline_at:
                    results.put((ref, None, "not started before the sync deadline"))
                    continue
                try:
                    results.put((ref, self.fetch(ref, local_only=local_only), None))
                except Exception as err:  # every failure is reported, none stops the sync
                    results.put((ref, None, _describe_error(err)))

        for _ in range(min(self.max_workers, len(refs))):
            threading.Thread(target=worker, daemon=True, name="taskemb-sync").start()
        pending = {ref.repo_id for ref in refs}
        with tqdm(total=len(refs), desc="sync", unit="repo", disable=not self.progress) as bar:
            while pending:
                wait = self._deadline_at - time.monotonic()
                try:
                    ref, entry, reason = results.get(timeout=None if wait == float("inf") else max(wait, 0.0))
                except queue.Empty:
                    break
                pending.discard(ref.repo_id)
                bar.update(1)
                (entries.append(entry) if entry is not None else failed.append((ref.repo_id, reason)))
        failed += [(repo, f"not finished within the sync deadline of {self.deadline:g} s") for repo in sorted(pending)]
        return entries, sorted(failed)

    def fetch(self, ref: RepoRef, *, local_only: bool = False) -> RegistryEntry:
        """Read one repo at its listed commit: the saved embedding, else the adapter's weights.

        Raises:
            EntryFailure: with the reason, when the repo is not a usable entry.
        """
        files = set(ref.files)
        if _has_embedding_files(ref):
            weights = [WEIGHTS_NAME] if WEIGHTS_NAME in files else []  # sized in the same request: its sha256
            self._known_metadata(ref, [EMBEDDING_NAME, METADATA_NAME] + weights, local_only)
            folder = self._download(ref, [EMBEDDING_NAME, METADATA_NAME], local_only)
            embedding = read_embedding_files(folder)
            _check_tied_to_weights(embedding, ref)
        elif {CONFIG_NAME, WEIGHTS_NAME} <= files:
            self._known_metadata(ref, [CONFIG_NAME, WEIGHTS_NAME], local_only)  # one request for both
            if self.method:  # the small config says the method: skip a wrong one before its weights
                self._check_adapter_method(self._download(ref, [CONFIG_NAME], local_only))
            folder = self._download(ref, [CONFIG_NAME, WEIGHTS_NAME], local_only)
            embedding = embed_adapter_folder(folder, task=ref.repo_id.split("/")[-1], base_model=self.base_model)
        elif PICKLE_WEIGHTS_NAME in files:
            raise EntryFailure(f"only {PICKLE_WEIGHTS_NAME} (pickle) in the repo: never unpickled; publish "
                               f"{WEIGHTS_NAME} instead")
        else:
            raise EntryFailure(f"no {EMBEDDING_NAME} and no {CONFIG_NAME} + {WEIGHTS_NAME} in the repo")
        self._check_filters(embedding)
        if ref.tagged_bases and embedding.base_model not in ref.tagged_bases:  # the server filters by the tag
            raise EntryFailure(f"its card tags base model {ref.tagged_bases[0]!r} but its embedding records "
                               f"{embedding.base_model!r}: republish it with `taskemb-hub publish`")
        embedding.check_usable()  # all zeros, or a norm its signature rules out (it would move the `centered` mean)
        embedding.extra = {k: v for k, v in embedding.extra.items() if k != "source"} | {
            "hub_repo": ref.repo_id, "hub_sha": ref.sha, "hub_parse_key": self.parse_key(ref),
            "vector_sha256": vector_fingerprint(embedding.vector)}  # a target that is this very entry is left out
        if ref.license:
            embedding.extra["license"] = ref.license
        return RegistryEntry(name=ref.repo_id, embedding=embedding, location=f"{ref.repo_id}@{ref.sha}")

    def _check_adapter_method(self, folder: Path) -> None:
        from ..methods import get_method

        try:
            peft_type = json.loads((folder / CONFIG_NAME).read_text()).get("peft_type", "")
            method = get_method(peft_type).name
        except Exception as err:
            raise EntryFailure(f"not a usable PEFT adapter: {CONFIG_NAME} names no supported peft_type ({err})") from err
        if method != self.method:
            raise EntryFailure(f"wrong method: {method!r}, not {self.method!r}")

    def _check_filters(self, embedding: TaskEmbedding) -> None:
        if self.base_model and embedding.base_model != self.base_model:
            raise EntryFailure(f"wrong base model: {embedding.base_model!r}, not {self.base_model!r}")
        if self.method and embedding.method != self.method:
            raise EntryFailure(f"wrong method: {embedding.method!r}, not {self.method!r}")

    def _known_metadata(self, ref: RepoRef, filenames: list[str], local_only: bool) -> None:
        """Fill `ref.meta` for the files of `filenames` that are neither cached nor sized by the listing: one
        paths-info request for all of them (the Hub's listings carry no sizes). A server without paths-info
        leaves them unknown, and `_download` HEADs them as `hf_hub_download` does."""
        if local_only or not self._paths_info_supported:
            return
        missing = [n for n in filenames if n not in ref.meta and not _cached(ref, n)]
        if not missing:
            return
        from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        try:
            infos = self._retrying(lambda: self._paths_info(ref, missing), "the file list")
        except EntryFailure as err:
            cause = _root_cause(err.__cause__) if err.__cause__ is not None else None
            unsupported = (isinstance(cause, HfHubHTTPError) and getattr(cause, "response", None) is not None
                           and cause.response.status_code in (404, 405, 501)
                           and not isinstance(cause, (RepositoryNotFoundError, RevisionNotFoundError,
                                                      EntryNotFoundError)))
            if not unsupported:
                raise
            self._paths_info_supported = False  # an older Hub-compatible server: HEAD each file instead
            return
        for info in infos:
            meta = _file_meta(info)
            if meta is not None:
                ref.meta[info.path] = meta
        absent = [n for n in missing if n not in {i.path for i in infos}]
        if absent:
            raise EntryFailure(f"{absent[0]} is missing from the repo")

    def _paths_info(self, ref: RepoRef, filenames: list[str]) -> list:
        """`HfApi.get_paths_info` at the listed commit, with this registry's request timeout."""
        from huggingface_hub.hf_api import RepoFile
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        response = get_session().post(f"{self.endpoint}/api/models/{ref.repo_id}/paths-info/{ref.sha}",
                                      data={"paths": filenames, "expand": False},
                                      timeout=request_timeout(self.timeout, self._deadline_at),
                                      headers=build_hf_headers(token=self.token))
        hf_raise_for_status(response)
        return [RepoFile(**e) for e in response.json() if e.get("type") == "file"]

    def _download(self, ref: RepoRef, filenames: list[str], local_only: bool) -> Path:
        """Files of `ref` at its commit, through the HF cache; too-large files are refused unread.

        A cached file costs no request; a file of known size and etag one GET; any other one HEAD first (a
        server without paths-info). Each request is bounded by `timeout` and the deadline (registries/_fetch.py).
        """
        from huggingface_hub import hf_hub_download

        from ._fetch import head_file

        paths = []
        for name in filenames:
            if local_only:
                paths.append(Path(self._retrying(lambda: hf_hub_download(
                    ref.repo_id, name, revision=ref.sha, endpoint=self.endpoint, token=self.token,
                    local_files_only=True), name)))
                continue
            cached = _cached(ref, name)
            if cached is not None:
                paths.append(cached)
                continue
            if name not in ref.meta:
                ref.meta[name] = self._retrying(lambda: head_file(
                    ref.repo_id, name, repo_type="model", revision=ref.sha, endpoint=self.endpoint, token=self.token,
                    timeout=self.timeout, until=self._deadline_at), name)
            size, etag = ref.meta[name]
            if size > self.max_file_bytes:
                raise EntryFailure(f"{name} is {size:,} bytes, over the limit of {self.max_file_bytes:,} "
                                   "(max_file_bytes)")
            paths.append(self._retrying(lambda: self._get_into_cache(ref, name, size, etag), name))
        return paths[0].parent

    def _get_into_cache(self, ref: RepoRef, name: str, size: int, etag: str) -> Path:
        """One GET of a file whose size and etag are known, into the HF cache where `hf_hub_download` would
        put it, so that it and `try_to_load_from_cache` find it; a partial or wrong body never lands there."""
        from ._fetch import get_into_cache

        return get_into_cache(ref.repo_id, name, repo_type="model", sha=ref.sha, size=size, etag=etag,
                              endpoint=self.endpoint, token=self.token, timeout=self.timeout, until=self._deadline_at)

    def _retrying(self, call, name: str):
        """`call()`, retried on transient failures with backoff, never past the deadline (a 429 a few times after its
        Retry-After, anything else transient `retries` times); the last failure as an `EntryFailure`."""
        attempt = throttled = 0
        while True:
            try:
                return call()
            except EntryFailure:
                raise
            except Exception as err:
                wait = _retry_wait(err, self.backoff * 2 ** attempt)
                limited = _status(err) == 429
                allowed = throttled < _RATE_LIMIT_RETRIES if limited else attempt < self.retries
                if wait is None or not allowed or time.monotonic() + wait > self._deadline_at:
                    raise EntryFailure(_describe_error(err, name)) from err
                throttled, attempt = throttled + limited, attempt + (not limited)
                time.sleep(wait)

class _ListingUnavailable(Exception):
    pass


def embedding_from_repo(repo_id: str, *, base_model: str | None = None, revision: str | None = None,
                        endpoint: str | None = None, token: str | bool | None = None,
                        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, timeout: float | None = None,
                        deadline: float | None = None) -> TaskEmbedding:
    """The task embedding of one Hub repo: its `taskemb.safetensors`, else embedded from its PEFT adapter.

    Args:
        repo_id: `owner/name` of a model repo.
        base_model: refuse an adapter of another base model.
        revision: branch, tag or commit (default: main).
        endpoint, token: as for `HubRegistry`.
        max_file_bytes: refuse larger files unread.
        timeout: seconds per request (default 10); deadline: seconds for the whole read (default 120).

    Returns:
        The `TaskEmbedding` (read through the HF cache: a second call downloads nothing).

    Raises:
        RegistryError: the repo id is malformed or the repo does not exist.
        AdapterError: the repo is not an adapter, or is one of another base model.

    Example:
        ```python
        >>> emb = embedding_from_repo("alice/rte-bitfit", base_model="sentence-transformers/all-MiniLM-L6-v2")
        ```
    """
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise RegistryError(f"{repo_id!r} is not a Hub repo id ({str(err).splitlines()[0]}). Use 'owner/name'.") from err
    registry = HubRegistry(endpoint=endpoint, token=token, base_model=base_model, max_file_bytes=max_file_bytes,
                           timeout=timeout, deadline=deadline)
    registry._deadline_at = deadline_at(registry.deadline)
    try:
        info = registry._api().model_info(repo_id, revision=revision, files_metadata=True,
                                          timeout=request_timeout(registry.timeout, registry._deadline_at))
    except RepositoryNotFoundError as err:
        raise RegistryError(f"Model repo {repo_id!r} was not found at {registry.endpoint} (or it is private). "
                            "Check the id, or pass a token that can read it.") from err
    except RevisionNotFoundError as err:
        raise RegistryError(f"Revision {revision!r} of {repo_id!r} does not exist. Use a branch, tag or commit of it.") from err
    except Exception as err:
        raise RegistryError(f"Cannot read {repo_id!r} from {registry.endpoint}: {_describe_error(err)}. Retry later.") from err
    ref = RepoRef(repo_id, info.sha, [s.rfilename for s in info.siblings or []], tagged=True,
                  meta={s.rfilename: m for s in info.siblings or [] if (m := _file_meta(s)) is not None})
    try:
        return registry.fetch(ref).embedding
    except EntryFailure as err:
        cause = err.__cause__
        if cause is not None and (isinstance(_root_cause(cause), TimeoutError) or _retry_wait(cause, 0.0) is not None):
            raise RegistryError(f"Cannot read {repo_id!r} from {registry.endpoint}: {err}. Retry later, or allow more "
                                "time (timeout= / deadline=).") from err
        raise AdapterError(f"{repo_id} is not usable as a task embedding: {err}. It needs {CONFIG_NAME} + "
                           f"{WEIGHTS_NAME} of a supported PEFT method on the registry's base model.") from err


