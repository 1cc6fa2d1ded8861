"""The Hub side: publish an adapter entry, and read every tagged entry back as a registry."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..adapters import CONFIG_NAME, WEIGHTS_NAME
from ..cards import TAG, write_model_card
from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding, load_embedding
from ..errors import TaskEmbHubError
from .base import Registry, RegistryEntry
from .local import ENTRY_FILES


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub URL: the argument, else `HF_ENDPOINT` as set now (not at import), else huggingface.co."""
    from huggingface_hub import constants

    return endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def publish(adapter_dir: str | os.PathLike, repo_id: str, *, token: str | bool | None = None, private: bool = False,
            endpoint: str | None = None, commit_message: str | None = None) -> str:
    """Push an adapter folder with its task embedding and a tagged model card to the Hub.

    Args:
        adapter_dir: a checkpoint folder written by `taskemb-hub tune` (or any peft adapter).
        repo_id: `owner/name` of the model repo (created if missing).
        token: Hub token (default: the logged-in one); it is never printed or logged.
        private: create the repo private.
        endpoint: Hub URL (default `HF_ENDPOINT` or huggingface.co).

    Returns:
        The URL of the commit.
    """
    from huggingface_hub import HfApi

    src = Path(adapter_dir)
    embedding = load_embedding(src)
    api = HfApi(endpoint=hub_endpoint(endpoint), token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        staging = Path(staging)
        for name in ENTRY_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, staging / name)
        embedding.save(staging)
        write_model_card(staging, embedding)  # always carries the registry tag
        info = api.upload_folder(folder_path=str(staging), repo_id=repo_id,
                                 commit_message=commit_message or f"taskemb-hub: {embedding.task} {embedding.method} "
                                                                  f"step {embedding.step}")
    return str(getattr(info, "commit_url", info))


class HubRegistry(Registry):
    """Every model repo on the Hub tagged `tag`, read as registry entries.

    Entries are fetched with the real `huggingface_hub` client (so any Hub-compatible server
    works through `endpoint`); only safetensors and JSON files are downloaded, never pickles.
    """

    def __init__(self, tag: str = TAG, *, endpoint: str | None = None, token: str | bool | None = None,
                 author: str | None = None):
        from huggingface_hub import HfApi

        self.tag, self.author, self.token = tag, author, token
        self.endpoint = hub_endpoint(endpoint)
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.skipped: list[tuple[str, str]] = []

    def entries(self, limit: int | None = None) -> list[RegistryEntry]:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

        self.skipped = []
        out = []
        for model in self.api.list_models(filter=self.tag, author=self.author, limit=limit):
            repo = model.id
            try:
                with tempfile.TemporaryDirectory() as local:
                    fetch = lambda name: hf_hub_download(repo, name, endpoint=self.endpoint, token=self.token,
                                                         local_dir=local)
                    try:
                        fetch(EMBEDDING_NAME), fetch(METADATA_NAME)
                        embedding = TaskEmbedding.load(local)
                    except EntryNotFoundError:
                        fetch(CONFIG_NAME), fetch(WEIGHTS_NAME)  # embed from the adapter itself
                        embedding = TaskEmbedding.from_adapter(local, task=repo.split("/")[-1])
                out.append(RegistryEntry(name=repo, embedding=embedding, location=repo))
            except EntryNotFoundError:
                self.skipped.append((repo, f"no {EMBEDDING_NAME} and no {WEIGHTS_NAME} in the repo"))
            except (TaskEmbHubError, HfHubHTTPError, OSError, ValueError) as err:
                self.skipped.append((repo, str(err).splitlines()[0]))
        return out
