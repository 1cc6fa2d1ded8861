"""What every Hub-facing module shares: the endpoint and the one repo-id check.

A leaf module (it imports nothing of the package but `errors`), so publishing, the registries, the CLI and
the Space can all use it without importing one another.
"""

import os

from ..errors import RegistryError


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub URL: the argument, else `HF_ENDPOINT` as set now (not at import), else huggingface.co."""
    from huggingface_hub import constants

    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def check_repo_id(repo_id: str) -> str:
    """`repo_id` when it is a valid Hub repo id; a one-line `RegistryError` otherwise."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise RegistryError(f"{repo_id!r} is not a valid Hub repo id ({str(err).splitlines()[0].rstrip('.')}). "
                            "Use 'owner/name' with letters, digits, '-', '_' and '.'.") from err
    if "/" not in repo_id:
        raise RegistryError(f"{repo_id!r} has no owner. Use 'owner/name' (your user or organisation name).")
    return repo_id


def is_repo_id(text: str) -> bool:
    """True when `text` passes `check_repo_id` (an `owner/name` the Hub accepts); for callers that choose
    between a repo id and something else (a local path, a builder name) rather than refuse."""
    try:
        check_repo_id(text)
    except RegistryError:
        return False
    return True
