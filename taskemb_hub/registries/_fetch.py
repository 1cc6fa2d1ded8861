"""Hub reads bounded by a per-request timeout and an overall deadline.

huggingface_hub (2.4) retries behind its caller's back, whatever timeout the caller passes:

- `hf_hub_download` HEADs a file with `etag_timeout`; when that fails with a timeout or a 5xx and the file is not
  cached, it asks again with a 60 s timeout (`file_download._ETAG_RETRY_TIMEOUT`) and `retry_on_errors=True`, i.e.
  `http_backoff`'s 5 retries (1-8 s apart): about 6 x 60 s for one hung file;
- `http_get` reads with the module-wide `HF_HUB_DOWNLOAD_TIMEOUT` (10 s) and resumes a timed-out GET 5 times;
- `list_models` pages through `http_backoff` with no timeout at all (the shared client's is None).

The readers here make exactly one request per call, with `min(timeout, time left before the deadline)`, using the
client's shared session (`get_session`), its headers and error types; retrying is the caller's decision
(`HubRegistry._retrying`, which never waits past the deadline). Files land in the HF cache exactly where
`hf_hub_download` puts them (`blobs/<etag>` linked from `snapshots/<sha>/<path>`), only when complete and equal to
what the listing promised (size, and the etag's sha256 or git blob id).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

DEFAULT_TIMEOUT_S = 10.0  # seconds per Hub request
DEFAULT_DEADLINE_S = 120.0  # seconds for a whole Hub read (a sync, an index download); math.inf for none
_defaults = {"timeout": DEFAULT_TIMEOUT_S, "deadline": DEFAULT_DEADLINE_S}  # this process's (set_defaults)
_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_OID = re.compile(r"^[0-9a-f]{40}$")


class DeadlineExceeded(TimeoutError):
    """The overall deadline of a Hub read passed (a `TimeoutError`: reported as "timed out")."""


def set_defaults(timeout: float | None = None, deadline: float | None = None) -> None:
    """Set this process's defaults for every Hub read that is not given its own (a server, such as the Space,
    whose registry loads and visitor requests all read the Hub: `taskemb-hub space --timeout/--deadline`).

    Args:
        timeout: seconds per request (None: unchanged).
        deadline: seconds for a whole read (None: unchanged; `math.inf`: none).
    """
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if value is not None:
            if not float(value) > 0:
                raise ValueError(f"{name} must be positive seconds, not {value!r}")
            _defaults[name] = float(value)


def default_timeout() -> float:
    return _defaults["timeout"]


def default_deadline() -> float:
    return _defaults["deadline"]


def deadline_at(seconds: float | None) -> float:
    """The monotonic time a read of `seconds` must end by (`None`: the default deadline; `math.inf`: never)."""
    seconds = _defaults["deadline"] if seconds is None else float(seconds)
    return time.monotonic() + seconds if math.isfinite(seconds) else math.inf


def request_timeout(timeout: float | None, until: float) -> float:
    """The timeout of the next request: `timeout` (default 10 s), cut to the time left before `until`.

    Raises:
        DeadlineExceeded: no time is left.
    """
    left = until - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the deadline passed before the request")
    return max(min(_defaults["timeout"] if timeout is None else timeout, left), 0.05)


def head_file(repo_id: str, name: str, *, repo_type: str, revision: str, endpoint: str, token, timeout: float | None,
              until: float) -> tuple[int, str]:
    """`(size, etag)` of a file from one HEAD (no client retry), for a server whose listing gives neither."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(repo_id, name, repo_type=repo_type, revision=revision, endpoint=endpoint),
                                token=token, timeout=request_timeout(timeout, until), retry_on_errors=False)
    if meta.size is None or not meta.etag:
        raise OSError(f"the server states no size or etag for {name}")
    return int(meta.size), meta.etag


def get_into_cache(repo_id: str, name: str, *, repo_type: str, sha: str, size: int, etag: str, endpoint: str, token,
                   timeout: float | None, until: float) -> Path:
    """One GET of a file of known size and etag into the HF cache; returns its snapshot path.

    Raises:
        HfHubHTTPError: the server answered an error status.
        OSError: the body was shorter or longer than `size`, or its hash is not the etag (nothing is cached).
        DeadlineExceeded / httpx timeouts: a request or the whole read ran out of time.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    storage = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    blob, pointer = storage / "blobs" / etag, storage / "snapshots" / sha / name
    if not blob.is_file():
        from ..embedding import default_mode

        blob.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=blob.parent, prefix=f"{etag}.", suffix=".incomplete")
        try:
            with os.fdopen(fd, "wb") as handle:
                _stream(repo_id, name, handle, repo_type=repo_type, sha=sha, size=size, etag=etag, endpoint=endpoint,
                        token=token, timeout=timeout, until=until)
            os.chmod(tmp, default_mode())
            os.replace(tmp, blob)  # atomic: concurrent reads of the same blob each write their own temp file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _link(blob, pointer)
    return pointer


def _stream(repo_id: str, name: str, handle, *, repo_type: str, sha: str, size: int, etag: str, endpoint: str, token,
            timeout: float | None, until: float) -> None:
    """Write the file's body into `handle`, checking the deadline between chunks (a server that drips one byte
    per timeout never holds a read past it), the size as it arrives, and the content against the etag."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, name, repo_type=repo_type, revision=sha, endpoint=endpoint)
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"  # the listed size is of the raw bytes
    sha256, blob_sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    received = 0
    with get_session().stream("GET", url, headers=headers, timeout=request_timeout(timeout, until),
                              follow_redirects=True) as response:
        hf_raise_for_status(response)
        for chunk in response.iter_bytes(_CHUNK):
            received += len(chunk)
            if received > size:
                raise OSError(f"{name}: the server sent more than the {size:,} bytes the listing states")
            if time.monotonic() > until:
                raise DeadlineExceeded(f"{name}: the deadline passed during the download")
            sha256.update(chunk)
            blob_sha1.update(chunk)
            handle.write(chunk)
    if received != size:
        raise OSError(f"incomplete download of {name}: {received:,} of {size:,} bytes")
    if (_SHA256.match(etag) and sha256.hexdigest() != etag) or (_GIT_OID.match(etag) and blob_sha1.hexdigest() != etag):
        raise OSError(f"{name}: the bytes received do not match the etag {etag[:12]}… the listing states")


def _link(blob: Path, pointer: Path) -> None:
    if pointer.is_file():
        return
    pointer.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except FileExistsError:
        pass
    except OSError:  # a file system without symlinks: a copy, as huggingface_hub falls back to
        shutil.copyfile(blob, pointer)


def snapshot(repo_id: str, *, repo_type: str, revision: str | None, endpoint: str, token, timeout: float | None,
             until: float, wanted: Callable[[str], bool], info=None) -> Path:
    """The files of a repo that `wanted` accepts, at its current commit, through the HF cache: one info request
    (skipped when `info` is given) and one GET per file not cached yet. Returns the snapshot folder.

    Unlike `snapshot_download`, every request is bounded by `timeout` and the deadline, and none is retried here.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    info = info if info is not None else repo_info(repo_id, repo_type=repo_type, revision=revision, endpoint=endpoint,
                                                   token=token, timeout=timeout, until=until)
    storage = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    for sibling in info.siblings or []:
        name = sibling.rfilename
        if not wanted(name) or (storage / "snapshots" / info.sha / name).is_file():
            continue
        lfs = getattr(sibling, "lfs", None)
        size, etag = (lfs.size, lfs.sha256) if lfs is not None else (sibling.size, getattr(sibling, "blob_id", None))
        if size is None or not etag:
            size, etag = head_file(repo_id, name, repo_type=repo_type, revision=info.sha, endpoint=endpoint,
                                   token=token, timeout=timeout, until=until)
        get_into_cache(repo_id, name, repo_type=repo_type, sha=info.sha, size=int(size), etag=etag, endpoint=endpoint,
                       token=token, timeout=timeout, until=until)
    (storage / "snapshots" / info.sha).mkdir(parents=True, exist_ok=True)
    _write_ref(storage, revision or "main", info.sha)
    return storage / "snapshots" / info.sha


def repo_info(repo_id: str, *, repo_type: str, revision: str | None, endpoint: str, token, timeout: float | None,
              until: float):
    """`model_info` / `dataset_info` with file sizes and etags: one request, bounded."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    read = api.dataset_info if repo_type == "dataset" else api.model_info
    return read(repo_id, revision=revision, timeout=request_timeout(timeout, until), files_metadata=True)


def cached_snapshot(repo_id: str, *, repo_type: str, revision: str | None) -> Path | None:
    """The snapshot folder the last read of `revision` (default main) left in the HF cache, or None."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    storage = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    if revision and _GIT_OID.match(revision):
        folder = storage / "snapshots" / revision
        return folder if folder.is_dir() else None
    try:
        sha = (storage / "refs" / (revision or "main")).read_text().strip()
    except OSError:
        return None
    folder = storage / "snapshots" / sha
    return folder if sha and folder.is_dir() else None


def _write_ref(storage: Path, revision: str, sha: str) -> None:
    """Record `revision -> sha` as `hf_hub_download` does, so that an offline read finds this snapshot."""
    if revision == sha:
        return
    ref = storage / "refs" / revision
    try:
        if ref.is_file() and ref.read_text().strip() == sha:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=ref.parent, prefix=".ref.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(sha)
        os.replace(tmp, ref)
    except OSError:  # a read-only cache: only the offline fallback is lost
        pass
