"""A small in-memory Hub-compatible HTTP server on 127.0.0.1, driven in tests by the real `huggingface_hub` client.

It answers what `HfApi` and the download helpers call, the way the Hub does where it matters to a client:

- model and dataset repos (`create_repo(repo_type=...)`, `/api/{models,datasets}/...`, `/datasets/{repo}/resolve/...`);
- git-like history: every commit has a 40-hex sha, branches (`create_branch`, `list_repo_refs`), commits to any
  branch, `resolve/{branch or commit sha}/{path}`, `list_repo_commits`;
- `preupload` answers each existing file's git blob oid, so the client skips unchanged files, and a commit that
  changes nothing creates no new commit;
- `list_models` / `list_datasets` with `Link: <next>; rel="next"` pagination, `filter` (all must match), `author`,
  `search`, `sort`, `full`, `cardData` and `expand[]`;
- tags derived from README.md metadata like the Hub (`tags`, `library_name`, `pipeline_tag`, `language`,
  `license:X`, `dataset:X`, `base_model:X` and `base_model:{adapter,merge,quantized,finetune}:X`);
- `model_info` / `dataset_info` (optionally at a revision), `list_repo_tree` / `list_repo_files` (paginated),
  `get_paths_info` (`POST .../paths-info/{revision}`: size and oid of the paths that exist), `snapshot_download`;
- resolve GET/HEAD with `ETag` (git blob oid), `X-Repo-Commit`, `Content-Length`, `Range`, and 404s with
  `X-Error-Code: RepoNotFound / RevisionNotFound / EntryNotFound`;
- `POST /api/validate-yaml` and commit-time rejection of README metadata the Hub would refuse (HTTP 400);
- programmable faults (`hub.faults`) and request counters (`hub.stats`).

Not implemented: LFS/Xet uploads (every file is committed inline as a "regular" file, whatever its size), tags
(git tags), pull requests, authentication (tokens are accepted and ignored) and spaces.

Example:
    ```python
    with LocalHub(page_size=2) as hub:
        api = HfApi(endpoint=hub.endpoint)
        api.create_repo("alice/model")
        api.upload_file(path_or_fileobj=b"---\\ntags: [x]\\n---\\n", path_in_repo="README.md", repo_id="alice/model")
        assert hub.state.tags("alice/model") == ["x"]
    ```
    In pytest, `local_hub_fixture(monkeypatch, tmp_path)` also points the client's constants at the server, and
    `hub.state.add_repo(repo_id, files)` seeds a repo without HTTP (for benchmarks with many repos).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

import yaml

REPO_TYPES = ("model", "dataset")
DEFAULT_PAGE_SIZE = 1000
# What a new Hub repo holds in its first commit (an abridged version of the Hub's file).
GITATTRIBUTES = (b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n")
# Same pattern as huggingface_hub.repocard.REGEX_YAML_BLOCK: the metadata block at the top of README.md.
YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
BASE_MODEL_RELATIONS = ("adapter", "merge", "quantized", "finetune")
# Properties `expand[]` may ask for; the Hub answers 400 to unknown ones.
MODEL_EXPAND = {"author", "cardData", "createdAt", "disabled", "downloads", "downloadsAllTime", "gated",
                "lastModified", "library_name", "likes", "pipeline_tag", "private", "sha", "siblings", "tags",
                "trendingScore", "usedStorage"}
DATASET_EXPAND = MODEL_EXPAND - {"library_name", "pipeline_tag"}


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 of `data` (what `git hash-object` prints): the Hub's oid and ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------------------------------------------------------
# README metadata: validation and tag derivation
# ---------------------------------------------------------------------------------------------------------------


class MetadataError(ValueError):
    """README.md metadata the Hub would refuse."""


def parse_card_metadata(readme: str) -> dict:
    """The YAML metadata dict at the top of a README.md (`{}` when it has none).

    Raises:
        MetadataError: the block is not valid YAML, or not a mapping.
    """
    match = YAML_BLOCK.search(readme)
    if not match:
        return {}
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as err:
        raise MetadataError(f"YAML metadata is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MetadataError(f"YAML metadata must be a mapping, got {type(data).__name__}")
    return data


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def metadata_errors(meta: dict, repo_type: str = "model") -> list[str]:
    """What the Hub's metadata validation would complain about, as one message per problem (empty: valid)."""
    errors = []
    if "tags" in meta and not _is_str_list(meta["tags"]):
        errors.append('"tags" must be an array of strings')
    if "license" in meta and not isinstance(meta["license"], str):
        errors.append('"license" must be a string')
    for key in ("base_model", "datasets", "language"):
        if key in meta and not (isinstance(meta[key], str) or _is_str_list(meta[key])):
            errors.append(f'"{key}" must be a string or an array of strings')
    for key in ("library_name", "pipeline_tag"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    relation = meta.get("base_model_relation")
    if relation is not None and relation not in BASE_MODEL_RELATIONS:
        errors.append(f'"base_model_relation" must be one of {", ".join(BASE_MODEL_RELATIONS)}')
    if "model-index" in meta:
        errors.extend(_model_index_errors(meta["model-index"]))
    return errors


def _model_index_errors(index: Any) -> list[str]:
    if not isinstance(index, list):
        return ['"model-index" must be an array']
    errors = []
    for i, model in enumerate(index):
        where = f'"model-index[{i}]"'
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append(f'{where} must be an object with a string "name"')
            continue
        results = model.get("results")
        if not isinstance(results, list):
            errors.append(f'{where}.results must be an array')
            continue
        for j, result in enumerate(results):
            at = f"{where}.results[{j}]"
            if not isinstance(result, dict):
                errors.append(f"{at} must be an object")
                continue
            if not isinstance(result.get("task"), dict) or not isinstance(result["task"].get("type"), str):
                errors.append(f'{at}.task.type is required')
            dataset = result.get("dataset")
            if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), str) for k in ("name", "type")):
                errors.append(f'{at}.dataset needs a string "name" and "type"')
            metrics = result.get("metrics")
            if not isinstance(metrics, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str)
                                                         and "value" in m for m in metrics):
                errors.append(f'{at}.metrics must be an array of objects with "type" and "value"')
    return errors


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]


def derive_tags(meta: dict, files: dict[str, bytes], repo_type: str = "model") -> list[str]:
    """The tags the Hub shows for a repo with this README metadata and these files (deduplicated, in order)."""
    tags = list(_as_list(meta.get("tags")))
    if repo_type == "model":
        tags += _as_list(meta.get("library_name")) + _as_list(meta.get("pipeline_tag"))
        if any(path.endswith(".safetensors") for path in files):
            tags.append("safetensors")
        tags += _as_list(meta.get("language"))
        tags += [f"dataset:{d}" for d in _as_list(meta.get("datasets"))]
        bases = _as_list(meta.get("base_model"))
        relation = meta.get("base_model_relation")
        if relation not in BASE_MODEL_RELATIONS:  # inferred like the Hub when the card doesn't say
            if "adapter_config.json" in files or meta.get("library_name") == "peft":
                relation = "adapter"
            elif any(path.endswith(".gguf") for path in files):
                relation = "quantized"
            else:
                relation = "merge" if len(bases) > 1 else "finetune"
        for base in bases:
            tags += [f"base_model:{base}", f"base_model:{relation}:{base}"]
    else:
        tags += [f"language:{code}" for code in _as_list(meta.get("language"))]
    tags += [f"license:{name}" for name in _as_list(meta.get("license"))]
    return list(dict.fromkeys(tags))


# ---------------------------------------------------------------------------------------------------------------
# Repos and commits
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Commit:
    """One immutable commit: the full file tree at that point, and what is derived from it (computed once)."""

    sha: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, bytes]
    repo_type: str
    oids: dict[str, str] = field(init=False)
    card_data: dict = field(init=False)
    tags: list[str] = field(init=False)
    tag_set: frozenset = field(init=False)
    _tree: list[dict] | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.oids = {path: git_blob_oid(data) for path, data in self.files.items()}
        try:
            self.card_data = parse_card_metadata(self.files.get("README.md", b"").decode("utf-8", "replace"))
        except MetadataError:  # never stored: commits with invalid metadata are refused
            self.card_data = {}
        self.tags = derive_tags(self.card_data, self.files, self.repo_type)
        self.tag_set = frozenset(self.tags)

    def tree(self) -> list[dict]:
        """Every file and folder of the commit as tree entries, sorted by path (built on first use, then cached)."""
        if self._tree is None:
            folders = {"/".join(path.split("/")[:i]) for path in self.files for i in range(1, path.count("/") + 1)}
            entries = [{"type": "file", "oid": self.oids[p], "size": len(self.files[p]), "path": p}
                       for p in self.files]
            entries += [{"type": "directory", "oid": hashlib.sha1(f"tree {d}".encode()).hexdigest(), "size": 0,
                         "path": d} for d in folders]
            self._tree = sorted(entries, key=lambda e: e["path"])
        return self._tree


class Repo:
    """A repo: its commits by sha and its branches (name -> head sha).

    `repo["files"]`, `repo["sha"]` and `repo["private"]` read the head of `main`, as the first version of this
    server stored them.
    """

    def __init__(self, repo_id: str, repo_type: str = "model", private: bool = False):
        self.repo_id, self.repo_type, self.private = repo_id, repo_type, private
        self.created_at = _now()
        self.commits: dict[str, Commit] = {}
        self.branches: dict[str, str] = {}
        first = self._make_commit(None, {".gitattributes": GITATTRIBUTES}, "initial commit", "")
        self.branches["main"] = first.sha

    def _make_commit(self, parent: str | None, files: dict[str, bytes], title: str, message: str) -> Commit:
        digest = hashlib.sha1(f"{self.repo_type}/{self.repo_id}\n{parent}\n{title}\n{len(self.commits)}".encode())
        for path in sorted(files):
            digest.update(f"\n{path}\0{git_blob_oid(files[path])}".encode())
        commit = Commit(digest.hexdigest(), parent, title, message, _now(), files, self.repo_type)
        self.commits[commit.sha] = commit
        return commit

    def resolve(self, revision: str) -> Commit | None:
        """The commit a branch name or a (full) commit sha points to, or None."""
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)

    @property
    def head(self) -> Commit:
        return self.commits[self.branches["main"]]

    @property
    def files(self) -> dict[str, bytes]:
        return self.head.files

    @property
    def sha(self) -> str:
        return self.head.sha

    @property
    def last_modified(self) -> str:
        return self.head.date

    def __getitem__(self, key: str):
        if key not in ("files", "sha", "private"):
            raise KeyError(key)
        return getattr(self, key)

    def commit(self, branch: str, additions: dict[str, bytes], deletions: list[str], deleted_folders: list[str],
               title: str, message: str = "") -> Commit:
        """Apply operations on `branch`; returns the new head, or the current one when nothing changed."""
        head = self.commits[self.branches[branch]]
        files = dict(head.files)
        for folder in deleted_folders:
            prefix = folder.rstrip("/") + "/"
            for path in [p for p in files if p.startswith(prefix)]:
                del files[path]
        for path in deletions:
            files.pop(path, None)
        files.update(additions)
        if files == head.files:  # a commit that changes nothing is not recorded
            return head
        commit = self._make_commit(head.sha, files, title, message)
        self.branches[branch] = commit.sha
        return commit


class HubState:
    """Every repo of the server. `repos` maps model repo ids to `Repo`; `datasets` maps dataset repo ids.

    Use `repo(repo_id, repo_type="dataset")` to reach either kind. Hold `lock` to read branches consistently while
    the server runs (commits themselves are immutable).
    """

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.datasets: dict[str, Repo] = {}
        self.lock = threading.RLock()

    def table(self, repo_type: str = "model") -> dict[str, Repo]:
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo type {repo_type!r} is not served (one of {REPO_TYPES})")
        return self.repos if repo_type == "model" else self.datasets

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        """The repo, or KeyError."""
        return self.table(repo_type)[repo_id]

    def add_repo(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model", private: bool = False,
                 title: str = "seed") -> Repo:
        """Create a repo holding `files` in one commit on `main`, without HTTP (to seed benchmarks quickly).

        Raises:
            MetadataError: README.md metadata the Hub would refuse.
            ValueError: the repo exists.
        """
        if "README.md" in files:
            errors = metadata_errors(parse_card_metadata(files["README.md"].decode("utf-8", "replace")), repo_type)
            if errors:
                raise MetadataError("; ".join(errors))
        with self.lock:
            table = self.table(repo_type)
            if repo_id in table:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            repo = table[repo_id] = Repo(repo_id, repo_type, private)
            repo.commit("main", dict(files), [], [], title)
        return repo

    def tags(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[str]:
        """The tags the Hub derives for the repo at `revision`."""
        commit = self.repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return list(commit.tags)


# ---------------------------------------------------------------------------------------------------------------
# Faults and counters
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault. See `Faults.add`. `hits` counts the requests it has affected."""

    path_regex: str = ""
    status: int | None = None
    retry_after: int | None = None
    hang_s: float | None = None
    truncate: bool = False
    times: int | None = 1
    method: str | None = None
    route: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str, route: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.route is None or self.route == route)
                and re.search(self.path_regex, path) is not None)


class Faults:
    """Faults to inject into matching requests, first match wins (thread-safe)."""

    def __init__(self):
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, path_regex: str = "", *, status: int | None = None, retry_after: int | None = None,
            hang_s: float | None = None, truncate: bool = False, times: int | None = 1, method: str | None = None,
            route: str | None = None) -> Fault:
        """Inject a fault into the next `times` matching requests (`times=None`: forever).

        Args:
            path_regex: `re.search`ed against the URL-decoded request path (no query string), e.g.
                `r"alice/a/resolve/.*/taskemb\\.safetensors"`. Empty matches every request.
            status: answer with this HTTP status (and an `X-Error-Message`) instead of the real response.
            retry_after: seconds sent in a `Retry-After` header with `status` (e.g. 429 or 503).
            hang_s: sleep this long before answering (the server keeps serving other requests meanwhile).
            truncate: declare the full `Content-Length` but send only half the body, then close the connection.
            method: only requests with this HTTP method (`"GET"`, `"HEAD"`, `"POST"`).
            route: only this route (a `Stats` route name: `"list"`, `"info"`, `"tree"`, `"resolve"` (GET or HEAD of
                a file), `"preupload"`, `"commit"`, `"create"`, `"branch"`, `"refs"`, `"commits"`, `"validate"`).

        Returns:
            The `Fault`; its `hits` counts the requests it affected.
        """
        if status is None and hang_s is None and not truncate:
            raise ValueError("a fault needs a status, hang_s or truncate")
        fault = Fault(path_regex, status, retry_after, hang_s, truncate, times, method, route)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str, route: str) -> Fault | None:
        """The fault for this request, if any, counting it as used."""
        with self._lock:
            for fault in self._faults:
                if (fault.times is None or fault.times > 0) and fault.matches(method, path, route):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None


class Stats:
    """Request counters (thread-safe).

    Attributes:
        requests: every request received. It includes the client's once-per-process
            `GET /api/agent-harnesses` (route `other`, answered 404), so assert on `routes` rather than on this.
        bytes_sent: response body bytes written (a truncated body counts what was sent).
        routes: requests per route: `list`, `info`, `tree`, `refs`, `commits`, `head` (HEAD of a file),
            `download` (GET of a file answered with a 2xx body), `paths-info`, `preupload`, `commit`, `create`, `delete`,
            `branch`, `validate`, `other`. A GET of a file that fails (404, injected fault) is not a download.
        statuses: responses per HTTP status.
        faults: requests that an injected fault affected.
        downloads: `(repo_type, repo_id, revision, path)` of each download, in order.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.bytes_sent = 0
            self.faults = 0
            self.routes: Counter = Counter()
            self.statuses: Counter = Counter()
            self.downloads: list[tuple[str, str, str, str]] = []

    def __getitem__(self, route: str) -> int:
        return self.routes[route]

    def as_dict(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "bytes_sent": self.bytes_sent, "faults": self.faults,
                    "routes": dict(self.routes), "statuses": dict(self.statuses)}

    def _count(self, **kwargs) -> None:
        with self._lock:
            for key, value in kwargs.items():
                if key == "route":
                    self.routes[value] += 1
                elif key == "status":
                    self.statuses[value] += 1
                elif key == "download":
                    self.downloads.append(value)
                else:
                    setattr(self, key, getattr(self, key) + value)


# ---------------------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------------------

_REPO_API = re.compile(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit|branch|refs|commits|paths-info)"
                       r"(?:/([^/]+)(/.*)?)?)?")
_RESOLVE = re.compile(r"/(?:(datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)")


class HubError(Exception):
    """An error answer: HTTP status, `X-Error-Code` and message."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.body = body or {}


def _route_of(method: str, path: str) -> str:
    if path in ("/api/models", "/api/datasets"):
        return "list"
    if path == "/api/repos/create":
        return "create"
    if path == "/api/repos/delete":
        return "delete"
    if path == "/api/validate-yaml":
        return "validate"
    m = _REPO_API.fullmatch(path)
    if m:
        return {None: "info", "revision": "info"}.get(m.group(3), m.group(3))
    if _RESOLVE.fullmatch(path):
        return "resolve"
    return "other"


def _handler(hub: "LocalHub"):
    state, stats, faults = hub.state, hub.stats, hub.faults

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the Hub: a 1,000-repo sync doesn't reconnect each time
        disable_nagle_algorithm = True

        def log_message(self, *args):  # keep test output clean
            pass

        # -- plumbing -------------------------------------------------------------------------------------------

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
            truncate = self._fault is not None and self._fault.truncate
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            stats._count(status=status)
            if self.command == "HEAD":
                return
            if truncate:
                body = body[: len(body) // 2]
                self.close_connection = True
            self.wfile.write(body)
            stats._count(bytes_sent=len(body))

        def _json(self, payload, status=200, headers=None):
            self._send(status, json.dumps(payload).encode(), headers)

        def _error(self, err: HubError):
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            if "text/plain" in self.headers.get("Accept", ""):
                self._send(err.status, err.message.encode(), headers, content_type="text/plain; charset=utf-8")
            else:
                self._json({"error": err.message, **err.body}, err.status, headers)

        def _endpoint(self) -> str:
            return f"http://{self.headers.get('Host', hub.endpoint[len('http://'):])}"

        def _dispatch(self):
            self._fault = None
            length = int(self.headers.get("Content-Length") or 0)
            self._raw_body = self.rfile.read(length) if length else b""  # always drained: keep-alive
            url = urlparse(self.path)
            self._query = parse_qs(url.query)
            raw_path = url.path
            route = _route_of(self.command, raw_path)
            stats._count(requests=1)
            if route != "resolve":
                stats._count(route=route)
            elif self.command == "HEAD":
                stats._count(route="head")
            fault = faults.take(self.command, unquote(raw_path), route)
            try:
                if fault is not None:
                    stats._count(faults=1)
                    if fault.hang_s:
                        hub._stopping.wait(fault.hang_s)
                    if fault.status is not None:
                        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                        raise HubError(fault.status, None, f"Injected fault: HTTP {fault.status}", headers)
                    self._fault = fault
                self._route(raw_path)
            except HubError as err:
                self._error(err)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as err:  # a bug here must show up as a 500, not a hung client
                self._error(HubError(500, None, f"{type(err).__name__}: {err}"))

        do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = _dispatch

        def _body_json(self):
            try:
                return json.loads(self._raw_body or b"{}")
            except ValueError:
                raise HubError(400, None, "Request body is not valid JSON") from None

        def _q(self, name: str, default=None):
            values = self._query.get(name)
            return values[0] if values else default

        def _flag(self, name: str) -> bool:
            return str(self._q(name, "")).lower() in ("1", "true")

        # -- routing ----------------------------------------------------------------------------------------------

        def _route(self, raw_path: str):
            method = self.command
            if raw_path in ("/api/models", "/api/datasets") and method == "GET":
                return self._list(raw_path[len("/api/"):-1], raw_path)
            if raw_path == "/api/repos/create" and method == "POST":
                return self._create()
            if raw_path == "/api/repos/delete" and method == "DELETE":
                return self._delete()
            if raw_path == "/api/validate-yaml" and method == "POST":
                return self._validate_yaml()
            m = _REPO_API.fullmatch(raw_path)
            if m:
                repo_type, repo_id, verb = m.group(1)[:-1], m.group(2), m.group(3)
                arg = unquote(m.group(4)) if m.group(4) else None
                rest = unquote(m.group(5)[1:]) if m.group(5) else ""
                repo = self._repo(repo_id, repo_type)
                if verb in (None, "revision") and method == "GET":
                    return self._info(repo, arg or "main")
                if verb == "tree" and method == "GET":
                    return self._tree(repo, arg or "main", rest, raw_path)
                if verb == "refs" and method == "GET":
                    return self._refs(repo)
                if verb == "commits" and method == "GET":
                    return self._commits(repo, arg or "main", raw_path)
                if verb == "paths-info" and method == "POST":
                    return self._paths_info(repo, arg or "main")
                if verb == "preupload" and method == "POST":
                    return self._preupload(repo, arg or "main")
                if verb == "commit" and method == "POST":
                    return self._commit(repo, arg or "main")
                if verb == "branch" and arg and method in ("POST", "DELETE"):
                    return self._branch(repo, unquote(m.group(4) + (m.group(5) or "")))
            m = _RESOLVE.fullmatch(raw_path)
            if m and method in ("GET", "HEAD"):
                repo = self._repo(m.group(2), "dataset" if m.group(1) else "model")
                return self._resolve(repo, unquote(m.group(3)), unquote(m.group(4)))
            raise HubError(404, None, f"Sorry, we can't find the page you are looking for ({method} {raw_path})")

        def _repo(self, repo_id: str, repo_type: str) -> Repo:
            with state.lock:
                repo = state.table(repo_type).get(repo_id)
            if repo is None:
                raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}")
            return repo

        def _commit_of(self, repo: Repo, revision: str) -> Commit:
            with state.lock:
                commit = repo.resolve(revision)
            if commit is None:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return commit

        # -- repos ------------------------------------------------------------------------------------------------

        def _create(self):
            data = self._body_json()
            repo_type = data.get("type") or "model"
            if repo_type not in REPO_TYPES:
                raise HubError(400, None, f"This server only hosts {' and '.join(REPO_TYPES)} repos")
            name = data.get("name") or ""
            repo_id = name if "/" in name else f"{data.get('organization') or 'user'}/{name}"
            if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
                raise HubError(400, None, f"Invalid repo name: {repo_id}")
            private = data.get("visibility") == "private" or bool(data.get("private"))
            prefix = "" if repo_type == "model" else "datasets/"
            with state.lock:
                table = state.table(repo_type)
                url = f"{self._endpoint()}/{prefix}{repo_id}"
                if repo_id in table:  # the Hub's 409 carries the url: create_repo(exist_ok=True) returns it
                    raise HubError(409, None, f"You already created this {repo_type} repo", body={"url": url})
                table[repo_id] = Repo(repo_id, repo_type, private)
            self._json({"url": url, "name": repo_id, "id": repo_id})

        def _delete(self):
            data = self._body_json()
            repo_type = data.get("type") or "model"
            name = data.get("name") or ""
            repo_id = name if "/" in name else f"{data.get('organization') or 'user'}/{name}"
            with state.lock:
                if state.table(repo_type).pop(repo_id, None) is None:
                    raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}")
            self._json({})

        def _branch(self, repo: Repo, branch: str):
            if self.command == "DELETE":
                with state.lock:
                    if branch == "main" or repo.branches.pop(branch, None) is None:
                        raise HubError(404 if branch != "main" else 403, "RevisionNotFound" if branch != "main"
                                       else None, f"Cannot delete branch {branch}")
                return self._json({})
            if branch.startswith("refs/") or not re.fullmatch(r"[\w.\-/]+", branch):
                raise HubError(400, None, f"Invalid reference for a branch: {branch}")
            start = self._body_json().get("startingPoint") or "main"
            with state.lock:
                if branch in repo.branches:
                    raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
                commit = repo.resolve(start)
                if commit is None:
                    raise HubError(404, "RevisionNotFound", f"Invalid rev id: {start}")
                repo.branches[branch] = commit.sha
            self._json({})

        def _refs(self, repo: Repo):
            with state.lock:
                branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                            for name, sha in repo.branches.items()]
            self._json({"branches": branches, "tags": [], "converts": [], "pullRequests": []})

        def _commits(self, repo: Repo, revision: str, raw_path: str):
            commit = self._commit_of(repo, revision)
            history = []
            with state.lock:
                while commit is not None:
                    history.append({"id": commit.sha, "title": commit.title, "message": commit.message,
                                    "date": commit.date, "authors": [{"user": "user"}]})
                    commit = repo.commits.get(commit.parent) if commit.parent else None
            self._paged(history, raw_path)

        # -- listing and info -------------------------------------------------------------------------------------

        def _paged(self, items: list, raw_path: str, limit: int | None = None, render=None):
            """Answer one page of `items` from `cursor`, with a `Link: <next>; rel="next"` header if more remain.

            `render` turns the page's items into JSON-ready ones, so a listing serializes one page, not every repo.
            """
            size = min(limit, hub.page_size) if limit else hub.page_size
            start = int(self._q("cursor", 0) or 0)
            page = items[start:start + size]
            headers = {}
            if start + size < len(items):
                query = [(k, v) for k, values in self._query.items() if k != "cursor" for v in values]
                query.append(("cursor", str(start + size)))
                headers["Link"] = f'<{self._endpoint()}{raw_path}?{urlencode(query)}>; rel="next"'
            self._json([render(item) for item in page] if render else page, headers=headers)

        def _repo_payload(self, repo: Repo, commit: Commit, fields: set[str] | None, blobs: bool = False) -> dict:
            """A repo as the Hub lists it: `fields=None` is the default listing; otherwise only those properties."""
            values = {
                "author": lambda: repo.repo_id.split("/")[0],
                "sha": lambda: commit.sha,
                "lastModified": lambda: commit.date,
                "createdAt": lambda: repo.created_at,
                "private": lambda: repo.private,
                "tags": lambda: list(commit.tags),
                "cardData": lambda: commit.card_data,
                "library_name": lambda: commit.card_data.get("library_name"),
                "pipeline_tag": lambda: commit.card_data.get("pipeline_tag"),
                "siblings": lambda: [{"rfilename": p, "size": len(d), "blobId": commit.oids[p]} if blobs
                                     else {"rfilename": p} for p, d in sorted(commit.files.items())],
                "gated": lambda: False, "disabled": lambda: False, "downloads": lambda: 0,
                "downloadsAllTime": lambda: 0, "likes": lambda: 0, "trendingScore": lambda: 0,
                "usedStorage": lambda: sum(len(d) for d in commit.files.values()),
            }
            payload = {"_id": commit.sha[:24], "id": repo.repo_id}
            if repo.repo_type == "model":
                payload["modelId"] = repo.repo_id
            if fields is None:
                fields = {"tags", "sha", "private", "createdAt", "downloads", "likes"}
                if repo.repo_type == "model":
                    fields |= {"library_name", "pipeline_tag"}
            for name in fields:
                payload[name] = values[name]()
            return payload

        def _expand(self, repo_type: str) -> set[str] | None:
            wanted = self._query.get("expand", []) + self._query.get("expand[]", [])
            if not wanted:
                return None
            allowed = MODEL_EXPAND if repo_type == "model" else DATASET_EXPAND
            unknown = sorted(set(wanted) - allowed)
            if unknown:
                raise HubError(400, None, f'"expand" must be one of {sorted(allowed)}, got {unknown}')
            return set(wanted)

        def _list(self, repo_type: str, raw_path: str):
            fields = self._expand(repo_type)
            if fields is None and self._flag("full"):
                fields = {"tags", "sha", "private", "createdAt", "lastModified", "siblings", "author", "downloads",
                          "likes", "gated", "disabled"} | ({"library_name", "pipeline_tag"}
                                                           if repo_type == "model" else set())
            if fields is not None and self._flag("cardData"):
                fields = fields | {"cardData"}
            elif fields is None and self._flag("cardData"):
                fields = {"tags", "sha", "private", "createdAt", "downloads", "likes", "cardData"}
            wanted = set(self._query.get("filter", []))
            author = self._q("author")
            search = (self._q("search") or "").lower()
            with state.lock:
                rows = [(repo, repo.head) for repo in state.table(repo_type).values()]
            rows = [(repo, head) for repo, head in rows
                    if wanted <= head.tag_set
                    and (author is None or repo.repo_id.split("/")[0] == author)
                    and search in repo.repo_id.lower()]
            sort = self._q("sort")
            if sort in ("lastModified", "createdAt", "id"):
                key = {"lastModified": lambda r: r[1].date, "createdAt": lambda r: r[0].created_at,
                       "id": lambda r: r[0].repo_id}[sort]
                rows.sort(key=key, reverse=str(self._q("direction", "-1")) == "-1")
            limit = int(self._q("limit")) if self._q("limit") else None
            self._paged(rows, raw_path, limit, render=lambda row: self._repo_payload(*row, fields))

        def _info(self, repo: Repo, revision: str):
            commit = self._commit_of(repo, revision)
            fields = self._expand(repo.repo_type)
            if fields is None:
                fields = {"author", "sha", "lastModified", "createdAt", "private", "tags", "cardData", "siblings",
                          "gated", "disabled", "downloads", "likes", "usedStorage"}
                if repo.repo_type == "model":
                    fields |= {"library_name", "pipeline_tag"}
            self._json(self._repo_payload(repo, commit, fields, blobs=self._flag("blobs")))

        def _tree(self, repo: Repo, revision: str, path: str, raw_path: str):
            commit = self._commit_of(repo, revision)
            path = path.strip("/")
            entries = commit.tree()
            if path:
                if not any(e["path"] == path and e["type"] == "directory" for e in entries):
                    raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
                prefix = path + "/"
                entries = [e for e in entries if e["path"].startswith(prefix)]
            else:
                prefix = ""
            if not self._flag("recursive"):
                entries = [e for e in entries if "/" not in e["path"][len(prefix):]]
            self._paged(entries, raw_path)

        # -- files ------------------------------------------------------------------------------------------------

        def _resolve(self, repo: Repo, revision: str, path: str):
            commit = self._commit_of(repo, revision)
            content = commit.files.get(path)
            if content is None:
                raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}",
                               {"X-Repo-Commit": commit.sha})
            headers = {"ETag": f'"{commit.oids[path]}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
            status, body = 200, content
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match:
                first = int(match.group(1))
                last = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
                if first >= len(content):
                    raise HubError(416, None, "Requested range not satisfiable",
                                   {"Content-Range": f"bytes */{len(content)}"})
                status, body = 206, content[first:last + 1]
                headers["Content-Range"] = f"bytes {first}-{last}/{len(content)}"
            if self.command == "GET":
                stats._count(route="download", download=(repo.repo_type, repo.repo_id, revision, path))
            self._send(status, body, headers, content_type="application/octet-stream")

        def _paths_info(self, repo: Repo, revision: str):
            """The tree entries of the asked paths (form field `paths`, repeated); paths that do not exist are left out."""
            commit = self._commit_of(repo, revision)
            wanted = set(parse_qs(self._raw_body.decode()).get("paths", []))
            self._json([e for e in commit.tree() if e["path"] in wanted])

        def _preupload(self, repo: Repo, revision: str):
            commit = self._commit_of(repo, revision)
            files = self._body_json().get("files", [])
            self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                   "oid": commit.oids.get(f["path"])} for f in files], "commitOid": commit.sha})

        def _validate_yaml(self):
            data = self._body_json()
            try:
                meta = parse_card_metadata(data.get("content") or "")
                errors = metadata_errors(meta, data.get("repoType") or "model")
            except MetadataError as err:
                errors = [str(err)]
            if not errors:
                return self._json({"errors": [], "warnings": []})
            message = "Invalid metadata in README.md.\n" + "\n".join(f"- {e}" for e in errors)
            if "text/plain" in self.headers.get("Accept", ""):
                return self._send(400, message.encode(), content_type="text/plain; charset=utf-8")
            self._json({"error": message, "errors": [{"message": e} for e in errors], "warnings": []}, 400)

        def _commit(self, repo: Repo, branch: str):
            try:
                lines = [json.loads(line) for line in self._raw_body.splitlines() if line.strip()]
            except ValueError:
                raise HubError(400, None, "Commit payload is not valid ndjson") from None
            header: dict = {}
            additions: dict[str, bytes] = {}
            deletions, deleted_folders = [], []
            for item in lines:
                key, value = item.get("key"), item.get("value") or {}
                if key == "header":
                    header = value
                elif key == "file":
                    additions[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    deletions.append(value["path"])
                elif key == "deletedFolder":
                    deleted_folders.append(value["path"])
                elif key == "lfsFile":
                    raise HubError(400, None, "LFS uploads are not supported by this test server")
                else:
                    raise HubError(400, None, f"Unknown commit operation {key!r}")
            if "README.md" in additions:
                try:
                    errors = metadata_errors(parse_card_metadata(additions["README.md"].decode("utf-8", "replace")),
                                             repo.repo_type)
                except MetadataError as err:
                    errors = [str(err)]
                if errors:
                    raise HubError(400, None, "Invalid metadata in README.md: " + "; ".join(errors))
            with state.lock:
                if branch not in repo.branches:
                    code = "RevisionNotFound"
                    raise HubError(404, code, f"Invalid rev id: {branch} (commits go to a branch)")
                head = repo.commits[repo.branches[branch]]
                parent = header.get("parentCommit")
                if parent and not head.sha.startswith(parent):
                    raise HubError(412, None, f"A commit has happened since. Please refresh and try again. "
                                              f"(head of {branch} is {head.sha})")
                for path in deletions:
                    if path not in head.files:
                        raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                commit = repo.commit(branch, additions, deletions, deleted_folders,
                                     header.get("summary") or "commit", header.get("description") or "")
            prefix = "" if repo.repo_type == "model" else "datasets/"
            self._json({"commitUrl": f"{self._endpoint()}/{prefix}{repo.repo_id}/commit/{commit.sha}",
                        "commitOid": commit.sha, "success": True, "pullRequestUrl": None})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class LocalHub:
    """A Hub-compatible server on 127.0.0.1; `with LocalHub() as hub:` serves on a free port.

    Args:
        page_size: items per page of listings (repos, tree, commits), like the Hub's 1,000; a smaller `limit`
            query parameter shrinks a page further. Every page but the last carries a `Link: rel="next"` header.

    Attributes:
        endpoint: the server's URL (`http://127.0.0.1:<port>`).
        state: the `HubState` (repos, commits, branches).
        faults: the `Faults` to inject (`hub.faults.add(...)`, `hub.faults.clear()`).
        stats: the `Stats` counters (`hub.stats["download"]`, `hub.stats.reset()`).
    """

    def __init__(self, page_size: int = DEFAULT_PAGE_SIZE):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self.state = HubState()
        self.faults = Faults()
        self.stats = Stats()
        self._stopping = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()  # wakes handlers sleeping in a `hang_s` fault
        self.server.shutdown()
        self.server.server_close()


def point_clients_at(monkeypatch, endpoint: str, cache: str) -> None:
    """Point every client library that reads the Hub endpoint at `endpoint` (and `cache`), undone by `monkeypatch`.

    `huggingface_hub`, `datasets` and `evaluate` read `HF_ENDPOINT` once, at import, into module constants (and
    `huggingface_hub.hf_api.api`, behind `huggingface_hub.file_exists` & co., keeps the endpoint of its import).
    Setting the variable alone would reach only a library imported later, which would then keep a dead test
    server's endpoint for the rest of the run; a library imported earlier would still ask the public Hub. So
    `datasets` is imported first, while the variable is still the caller's, and every such constant is patched.

    Args:
        monkeypatch: a pytest `MonkeyPatch`; undoing it restores every variable and constant.
        endpoint: the server's URL.
        cache: the `huggingface_hub` cache folder to use meanwhile.
    """
    from huggingface_hub import constants, hf_api

    try:  # imported now, so that its import-time constants are the caller's, restored after the test
        import datasets.config
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", cache)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    if "datasets.config" in sys.modules:
        config = sys.modules["datasets.config"]
        monkeypatch.setattr(config, "HF_ENDPOINT", endpoint)
        monkeypatch.setattr(config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
        monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", False)
    if "evaluate.config" in sys.modules:  # not imported here: no test reads an evaluate module from the Hub
        config = sys.modules["evaluate.config"]
        monkeypatch.setattr(config, "HF_ENDPOINT", endpoint)
        monkeypatch.setattr(config, "HF_LIST_ENDPOINT", endpoint + "/api/spaces?filter={type}")
        monkeypatch.setattr(config, "HUB_EVALUATE_URL", endpoint + "/spaces/{path}/resolve/{revision}/{name}")


def local_hub_fixture(monkeypatch, tmp_path, **kwargs) -> Iterator[LocalHub]:
    """Serve a `LocalHub` and point the Hub's client libraries (env and import-time constants) at it, for a fixture.

    Sets `HF_ENDPOINT` and `HF_HUB_CACHE` (under `tmp_path`), clears offline mode, and patches the constants that
    `huggingface_hub`, `datasets` and `evaluate` read at import (see `point_clients_at`).

    Example:
        ```python
        @pytest.fixture
        def hub(monkeypatch, tmp_path):
            yield from local_hub_fixture(monkeypatch, tmp_path, page_size=2)
        ```
    """
    with LocalHub(**kwargs) as server:
        point_clients_at(monkeypatch, server.endpoint, str(tmp_path / "hf-cache"))
        yield server


serve_local_hub = contextlib.contextmanager(local_hub_fixture)


def repo_files(embedding) -> dict[str, bytes]:
    """The files a tagged repo of `embedding` holds (its embedding files and its card), for `add_repo`."""
    import tempfile
    from pathlib import Path

    from taskemb_hub.cards import build_card

    with tempfile.TemporaryDirectory() as folder:
        embedding.save(folder)
        files = {name: (Path(folder) / name).read_bytes() for name in ("taskemb.safetensors", "taskemb.json")}
    files["README.md"] = str(build_card(embedding)).encode()
    return files
