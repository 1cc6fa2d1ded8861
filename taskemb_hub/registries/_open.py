"""`open_registry(spec)`: the one parser of what `--registry` takes, for the CLI and the Space alike.

`default` (the packaged registry), a folder (a `LocalRegistry`, or a saved selector), `hub` / `hub:<tag>`
(a `HubRegistry`) or `index:<repo id or folder>` (an `IndexRegistry`). The Hub and index backends are imported
only when asked for, so importing `taskemb_hub.registries` stays light.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import RegistryError
from .base import Registry
from .local import LocalRegistry, PackagedRegistry


def open_registry(spec: str, *, timeout: float | None = None, deadline: float | None = None,
                  endpoint: str | None = None, token: str | bool | None = None, **hub_filters) -> Registry:
    """The registry a `--registry` string names; nothing is read yet (`AutoSourceSelector.from_registry` reads it).

    Args:
        spec: `default`, a registry folder, `hub`, `hub:<tag>` or `index:<repo id or folder>`.
        timeout, deadline: bound a Hub read (seconds per request / for the whole read; None: the library's
            defaults).
        endpoint, token: the Hub's URL and token for `hub` and `index:` (None: `HF_ENDPOINT` / the login;
            `token=False`: anonymous).
        **hub_filters: for `hub` only, `HubRegistry`'s filters (`base_model`, `method`, `author`,
            `include_untagged`, ...) and `index` (an index to start from); None or False ones are dropped.

    Returns:
        A `PackagedRegistry`, `LocalRegistry`, `HubRegistry` or `IndexRegistry`.

    Raises:
        RegistryError: one line for a file given as a folder, a missing index folder, a malformed repo id,
            a missing registry folder.

    Example:
        ```python
        >>> selector = AutoSourceSelector.from_registry(open_registry("index:owner/taskemb-index"))
        ```
    """
    times = {k: v for k, v in (("timeout", timeout), ("deadline", deadline)) if v is not None}
    if spec == "default":
        return PackagedRegistry()
    if spec == "hub" or spec.startswith("hub:"):
        tag = spec.partition(":")[2] or None
        filters = {k: v for k, v in hub_filters.items() if v not in (None, False)}
        return hub_registry(**({"tag": tag} if tag else {}), endpoint=endpoint, token=token, **filters, **times)
    if spec.startswith("index:"):
        from .index import IndexRegistry

        source = spec.partition(":")[2]
        check_index_source(source)
        return IndexRegistry(source, endpoint=endpoint, token=token, **times)
    if Path(spec).expanduser().is_file():
        raise RegistryError(f"{spec} is a file, not a registry folder. Pass the folder that `taskemb-hub registry "
                            "add` wrote, 'default', 'hub' or 'index:<repo id or folder>'.")
    return LocalRegistry(spec)


def hub_registry(*, index: str | None = None, endpoint: str | None = None, token: str | bool | None = None,
                 timeout: float | None = None, deadline: float | None = None, **options):
    """A `HubRegistry` (`options`: its filters and settings) that starts from `index`'s entries when given:
    a repo still at the commit the index read it at is not read again."""
    from .hub import HubRegistry

    known = {}
    if index:
        from .index import IndexRegistry

        contents = IndexRegistry(index, endpoint=endpoint, token=token, timeout=timeout, deadline=deadline).read()
        known = {e.name: (contents.shas[e.name], e) for e in contents.entries if e.name in contents.shas}
    times = {k: v for k, v in (("timeout", timeout), ("deadline", deadline)) if v is not None}
    return HubRegistry(endpoint=endpoint, token=token, known=known, **options, **times)


def check_index_source(source: str) -> None:
    """`index:<source>`: a missing local folder or a malformed repo id is the user's typo, not a Hub outage (whose
    message says to retry later): name it at once."""
    if Path(source).expanduser().exists():
        return
    if source.startswith((".", "/", "~")) or ".." in source or "\\" in source:
        raise RegistryError(f"Index folder {source} does not exist. Check the path, or pass a Hub dataset repo id "
                            "(owner/name).")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError:
        raise RegistryError(f"{source!r} is neither an index folder nor a valid Hub repo id. Pass an existing folder "
                            "or a dataset repo id like owner/taskemb-index.") from None
