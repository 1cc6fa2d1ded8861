"""How a Space serves (`SpaceConfig`), and what every endpoint shares: the filter value meaning any."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..registries._hub_common import is_repo_id
from ._uploads import UploadLimits

ANY = "any"
Progress = Callable[..., Any]


def is_hub_id(text: str, *, owner: bool = True) -> bool:
    """True when `text` is a Hub repo id, `owner/name` (`registries._hub_common.is_repo_id`, huggingface_hub's
    `validate_repo_id`); with `owner=False` a bare `name` too (a canonical dataset or model, e.g. `imdb`).

    Anything else (a path, a URL) is refused, so a visitor can never make the server read its own files
    through `datasets.load_dataset` or a base model's name.
    """
    if not owner and "/" not in text:
        text = f"canonical/{text}"  # is_repo_id asks for an owner: check the bare name under a stand-in one
    return is_repo_id(text)


@dataclass
class SpaceConfig:
    """How a Space serves.

    Args:
        limits: upload limits (file size, rows, zip members).
        base_model_paths: where to load a base model from, by the id the registry records
            (e.g. a local copy); ids not listed load as themselves (the packaged MiniLM or a Hub id).
        default_top_k: sources shown unless the visitor asks for another number.
        max_top_k: most sources a visitor may ask for.
        hub_endpoint: Hub URL used for links and adapter downloads (default: `HF_ENDPOINT`).
        work_dir: where answers' download files are written (a temp folder by default);
            folders older than `keep_files_s` are removed as new answers come.
        refresh_every_s: rebuild the registry in the background this often (None: only when
            asked on the Registry status tab).
    """

    limits: UploadLimits = field(default_factory=UploadLimits)
    base_model_paths: dict[str, str] = field(default_factory=dict)
    default_top_k: int = 10
    max_top_k: int = 50
    hub_endpoint: str | None = None
    work_dir: str | None = None
    keep_files_s: float = 3600.0
    refresh_every_s: float | None = None
