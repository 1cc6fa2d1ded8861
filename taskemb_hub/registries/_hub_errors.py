"""How a failed Hub request is told: its root cause, whether it is worth asking again, and the one-line reason
users see. Shared by the Hub registry, the index reader and the webhook receiver (a leaf: no registry imports it
back)."""

from __future__ import annotations

from ..errors import TaskEmbHubError
from ._fetch import DeadlineExceeded

_RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class EntryFailure(TaskEmbHubError):
    """One repo cannot be read as a registry entry; the message is the reason shown to users."""


def _root_cause(err: BaseException) -> BaseException:
    """The client wraps a failed HEAD in "cannot find the file in the cache": its cause is the real reason."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    for _ in range(5):
        inner = err.__cause__ or err.__context__
        if not isinstance(err, LocalEntryNotFoundError) or inner is None:
            break
        err = inner
    return err


def _status(err: BaseException) -> int | None:
    """The HTTP status of a failed Hub request (None when it got no answer)."""
    from huggingface_hub.errors import HfHubHTTPError

    err = _root_cause(err)
    response = getattr(err, "response", None) if isinstance(err, HfHubHTTPError) else None
    return response.status_code if response is not None else None


def _retry_wait(err: BaseException, default: float) -> float | None:
    """Seconds to wait before retrying `err`, or None when it is not transient."""
    from huggingface_hub.errors import HfHubHTTPError

    err = _root_cause(err)
    if isinstance(err, HfHubHTTPError) and getattr(err, "response", None) is not None:
        if err.response.status_code not in _RETRY_STATUSES:
            return None
        after = err.response.headers.get("Retry-After", "")
        return float(after) if after.strip().isdigit() else default
    text = f"{type(err).__name__} {err}"
    if any(k in text for k in ("Timeout", "timed out", "Consistency check failed", "RemoteProtocolError",
                               "ConnectError", "incomplete")):
        return default
    return None


def _describe_error(err: BaseException, what: str = "") -> str:
    """The real reason of a failed Hub read, in one line: HTTP status, timeout, bad file."""
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    from huggingface_hub.errors import LocalEntryNotFoundError

    err = _root_cause(err)
    where = f" on {what}" if what else ""
    if isinstance(err, DeadlineExceeded):
        return f"not finished within the deadline{where}"
    if isinstance(err, LocalEntryNotFoundError):
        return f"not in the cache{where}, and the Hub could not be asked for it"
    if isinstance(err, TaskEmbHubError):
        return str(err).splitlines()[0]
    if isinstance(err, RepositoryNotFoundError):
        return "repository not found (deleted, renamed or private)"
    if isinstance(err, RevisionNotFoundError):
        return f"revision not found{where} (the repo changed during the sync; sync again)"
    if isinstance(err, EntryNotFoundError):
        return f"{what or 'file'} is missing from the repo" if what else "a file is missing from the repo"
    if isinstance(err, HfHubHTTPError) and getattr(err, "response", None) is not None:
        return f"HTTP {err.response.status_code}{where}"
    if isinstance(err, OfflineModeIsEnabled):
        return f"not in the cache{where} and HF_HUB_OFFLINE is set"
    name = type(err).__name__
    text = str(err).splitlines()[0] if str(err) else name
    if "Timeout" in name or "timed out" in text.lower():
        return f"timed out{where}"
    if "Consistency check failed" in text or "incomplete" in text.lower() or "RemoteProtocolError" in name:
        return f"download truncated{where}; nothing was cached"
    if "ConnectError" in name or "Connection refused" in text:
        return f"cannot connect to the Hub{where}"
    return f"{name}{where}: {text[:160]}"

