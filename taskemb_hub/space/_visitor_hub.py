"""What a visitor makes the Space read from the Hub: one adapter repo, read without the operator's token.

Nothing here uses a token (every request is anonymous), nothing lands in the server's Hugging Face
cache (files go to a temporary folder removed afterwards), and each file's size is known before it
is downloaded: the small config first, so an adapter of another base model, or one whose weights
are over the limit, is refused before its weights are requested.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..adapters import CHECKPOINT_INFO_NAME, CONFIG_NAME, PICKLE_WEIGHTS_NAME, WEIGHTS_NAME
from ..base_model import _PACKAGED_ALIASES, DEFAULT_BASE_MODEL
from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding
from ..errors import AdapterError, IncompatibleEmbeddingError, RegistryError, TaskEmbHubError
from ._config import is_hub_id
from ._uploads import UploadLimits, _mb

SMALL_FILE_BYTES = 1024 * 1024  # a config or an embedding's json: a few KB


def visitor_base_model(recorded, allowed: set[str]) -> str:
    """The base model a visitor's adapter names, accepted only as a Hub id (or the packaged model's) that the
    registry holds. The string is compared, never looked up on the server's disk: a folder that exists and
    one that does not get the same message.

    Args:
        recorded: `base_model` of the adapter's checkpoint info, else `base_model_name_or_path` of its config.
        allowed: the base model ids this registry's entries record (after the visitor's filter).

    Returns:
        The id, one of `allowed`.

    Raises:
        IncompatibleEmbeddingError: no id, a path, or a base model the registry does not hold.
    """
    if not isinstance(recorded, str) or not recorded.strip():
        raise IncompatibleEmbeddingError(f"The adapter names no base model ({CONFIG_NAME} has no "
                                         "base_model_name_or_path). Set it to the base model's Hub id.")
    name = DEFAULT_BASE_MODEL if recorded in _PACKAGED_ALIASES else recorded
    if name in allowed:
        return name
    if not is_hub_id(name, owner=False) or ".." in name:
        raise IncompatibleEmbeddingError(
            f"The adapter's base model (base_model_name_or_path in {CONFIG_NAME}) is not a Hub model id; this Space "
            f"compares adapters of {_listed(allowed)} only. Set it to the Hub id of the model it was tuned on.")
    raise IncompatibleEmbeddingError(f"The adapter was tuned on {name!r}; this registry's entries use "
                                     f"{_listed(allowed)}. Use an adapter of {_listed(allowed)}.")


def _listed(allowed: set[str]) -> str:
    return " or ".join(repr(a) for a in sorted(allowed)) or "no base model"


def check_adapter_folder(folder: Path, allowed: set[str]) -> str:
    """The base model of an extracted adapter folder (see `visitor_base_model`), from its small json files."""
    config = _read_json(folder / CONFIG_NAME)
    info = _read_json(folder / CHECKPOINT_INFO_NAME) if (folder / CHECKPOINT_INFO_NAME).is_file() else {}
    return visitor_base_model(info.get("base_model") or config.get("base_model_name_or_path"), allowed)


def _read_json(path: Path) -> dict:
    try:
        if path.stat().st_size > SMALL_FILE_BYTES:
            raise ValueError(f"over {_mb(SMALL_FILE_BYTES)}")
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise AdapterError(f"{path.name} is not a readable JSON file ({type(err).__name__}). Re-save the adapter "
                           "with peft's save_pretrained.") from None
    if not isinstance(value, dict):
        raise AdapterError(f"{path.name} does not hold a JSON object. Re-save the adapter with peft's save_pretrained.")
    return value


def embedding_from_hub_repo(repo_id: str, *, endpoint: str, allowed: set[str], limits: UploadLimits,
                            timeout: float = 10.0) -> TaskEmbedding:
    """The task embedding of a visitor's Hub repo: its saved `taskemb.*`, else embedded from its adapter.

    Args:
        repo_id: `owner/name`, already checked to be a Hub id.
        endpoint: the Hub URL.
        allowed: base model ids the registry holds; an adapter of another is refused before its weights.
        limits: `max_adapter_bytes` bounds the weights (or vector) file, read from the repo's listing.
        timeout: seconds per request.

    Raises:
        RegistryError: the repo cannot be read. AdapterError / IncompatibleEmbeddingError: not usable here.
    """
    repo = _Repo(repo_id, endpoint, timeout)
    with tempfile.TemporaryDirectory(prefix="taskemb-visitor-") as tmp:
        folder = Path(tmp)
        if {EMBEDDING_NAME, METADATA_NAME} <= set(repo.sizes):
            repo.get(METADATA_NAME, folder, SMALL_FILE_BYTES)
            meta = _read_json(folder / METADATA_NAME)
            visitor_base_model(meta.get("base_model"), allowed)
            repo.get(EMBEDDING_NAME, folder, limits.max_adapter_bytes)
            from ..registries.hub import EntryFailure, read_embedding_files

            try:
                embedding = read_embedding_files(folder)
            except EntryFailure as err:
                raise AdapterError(f"{repo_id}: {err}. Re-publish it with `taskemb-hub publish`.") from None
        elif {CONFIG_NAME, WEIGHTS_NAME} <= set(repo.sizes):
            repo.get(CONFIG_NAME, folder, SMALL_FILE_BYTES)
            check_adapter_folder(folder, allowed)  # before the weights are requested
            repo.get(WEIGHTS_NAME, folder, limits.max_adapter_bytes)
            embedding = TaskEmbedding.from_adapter(folder, task=repo_id.split("/")[-1])
        elif PICKLE_WEIGHTS_NAME in repo.sizes:
            raise AdapterError(f"{repo_id} holds only {PICKLE_WEIGHTS_NAME}, a pickle file, which can run code when "
                               f"loaded; this Space reads {WEIGHTS_NAME} only. Publish the adapter with safetensors.")
        else:
            raise AdapterError(f"{repo_id} is not usable as a task embedding: it holds no {CONFIG_NAME} + "
                               f"{WEIGHTS_NAME} (and no {EMBEDDING_NAME}). Give the id of a PEFT adapter repo.")
    embedding.check_usable()
    embedding.extra = {k: v for k, v in embedding.extra.items() if k != "source"} | {"hub_repo": repo_id,
                                                                                    "hub_sha": repo.sha}
    return embedding


class _Repo:
    """One model repo at one commit, its file sizes from a single anonymous listing request."""

    def __init__(self, repo_id: str, endpoint: str, timeout: float):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        self.repo_id, self.endpoint, self.timeout = repo_id, endpoint.rstrip("/"), timeout
        try:  # token=False: anonymous, whatever HF_TOKEN or login the server has
            info = HfApi(endpoint=self.endpoint, token=False).model_info(repo_id, files_metadata=True,
                                                                        timeout=timeout, token=False)
        except (RepositoryNotFoundError, GatedRepoError):
            raise RegistryError(f"Model repo {repo_id!r} was not found on the Hub, or it is not public (this Space "
                                "reads public repos only). Check the id.") from None
        except Exception as err:  # noqa: BLE001 - a network or server error: the visitor may retry
            raise RegistryError(f"Could not read model repo {repo_id!r} from the Hub ({_reason(err)}). Retry "
                                "later.") from None
        self.sha = info.sha
        self.sizes = {s.rfilename: s.size for s in info.siblings or []}

    def get(self, name: str, folder: Path, limit: int) -> Path:
        """Stream one file into `folder`, refusing it unread when the listing says it is over `limit` and
        stopping at `limit` bytes whatever the server sends."""
        size = self.sizes.get(name)
        if size is not None and size > limit:
            raise AdapterError(f"{self.repo_id}: {name} is {_mb(size)}, over this Space's limit of {_mb(limit)}. "
                               "Rank a smaller adapter, or run taskemb-hub locally.")
        from huggingface_hub.file_download import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url = hf_hub_url(self.repo_id, name, revision=self.sha, endpoint=self.endpoint)
        target, received = folder / name, 0
        try:
            with get_session().stream("GET", url, headers=build_hf_headers(token=False), timeout=self.timeout,
                                      follow_redirects=True) as response:
                hf_raise_for_status(response)
                with open(target, "wb") as handle:
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > limit:
                            raise AdapterError(f"{self.repo_id}: {name} is over this Space's limit of {_mb(limit)}. "
                                               "Rank a smaller adapter, or run taskemb-hub locally.")
                        handle.write(chunk)
        except TaskEmbHubError:
            raise
        except Exception as err:  # noqa: BLE001
            raise RegistryError(f"Could not download {name} of {self.repo_id!r} ({_reason(err)}). Retry later.") from None
        return target


def _reason(err: BaseException) -> str:
    """A failed request in a few words, never a URL, path or header."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    name = type(err).__name__
    return "timed out" if "Timeout" in name else name
