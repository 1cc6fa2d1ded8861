"""`publish`: push an adapter folder with its task embedding and a merged, validated model card.

What goes up: the adapter (config + safetensors weights), the init snapshot of prompt/prefix
methods, the embedding (`taskemb.safetensors` + `taskemb.json`), the checkpoint info and the card.
Local filesystem paths never leave the machine: a `source` that is not a Hub dataset id is written as
`local:<folder name>` (`cards.public_source`), and the staged files (text and safetensors headers) are
checked for any path of this machine. The card merges the folder's README.md over the repo's card (the
folder's wins where it says something; peft's empty template is dropped). Unchanged files are skipped by the client (the Hub answers each file's git oid), so re-publishing
identical content makes no new commit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .adapters import CHECKPOINT_INFO_NAME, CONFIG_NAME, INIT_NAME, WEIGHTS_NAME
from .base_model import hub_id_of_folder, is_local_id
from .cards import CARD_NAME, build_card, merge_cards, names_local_path, public_extra, public_source
from .embedding import TaskEmbedding, load_embedding
from .errors import RegistryError
from .registries._hub_common import check_repo_id, hub_endpoint  # noqa: F401 (check_repo_id: re-exported)

UPLOADED_FILES = (CONFIG_NAME, WEIGHTS_NAME, INIT_NAME, CHECKPOINT_INFO_NAME)


@dataclass
class PublishResult:
    """What `publish` did (or, with `dry_run`, would do).

    Args:
        repo_id: the target repo.
        url: the commit URL (empty for a dry run).
        files: the files of the upload.
        card: the model card text as uploaded.
        committed: False when nothing changed (no new commit) or on a dry run.
        revision: the branch written to.
        note: what a dry run left unchecked (it contacts no Hub); empty otherwise.
    """

    repo_id: str
    url: str = ""
    files: list[str] = field(default_factory=list)
    card: str = ""
    committed: bool = False
    revision: str = "main"
    note: str = ""

    def to_dict(self) -> dict:
        return {"repo_id": self.repo_id, "url": self.url, "files": self.files, "committed": self.committed,
                "revision": self.revision, "card": self.card, "note": self.note}


def publish(adapter_dir: str | os.PathLike, repo_id: str, *, token: str | bool | None = None, private: bool = False,
            endpoint: str | None = None, commit_message: str | None = None, revision: str | None = None,
            dry_run: bool = False, task=None, base_model_id: str | None = None) -> PublishResult:
    """Push an adapter folder with its task embedding and a tagged model card to the Hub.

    Args:
        adapter_dir: a checkpoint folder written by `taskemb-hub tune` (or any peft adapter folder).
        repo_id: `owner/name` of the model repo (created if missing).
        token: Hub token (default: the logged-in one); never printed or logged.
        private: create the repo private.
        endpoint: Hub URL (default `HF_ENDPOINT` or huggingface.co).
        commit_message: default names the task, method and step.
        revision: a branch to push to (created from main if missing), e.g. `step-50`.
        dry_run: contact no Hub: return the card (built from the folder's own card only; not validated by
            the Hub, nor merged with a card the repo may hold) and the file list, so it works offline.
        task: the `TaskData` the adapter was tuned on (fills the card's dataset and licence).
        base_model_id: the Hub id of the base model when it was loaded from a local folder (a
            local path is never uploaded: publishing such an adapter without this is refused).

    Returns:
        A `PublishResult`.

    Example:
        ```python
        >>> publish("runs/rt-bitfit/step-100", "me/rotten-tomatoes-bitfit").url
        'https://huggingface.co/me/rotten-tomatoes-bitfit/commit/...'
        ```
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    src = Path(adapter_dir)
    # a folder whose Hub id the package knows (the packaged MiniLM's) is no unnamed local model
    local = any(hub_id_of_folder(p) is None for p in _local_base_paths(src))
    embedding = public_base_model(load_embedding(src), base_model_id, local=local)
    endpoint = hub_endpoint(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="taskemb-publish-") as staging:
        staging = Path(staging)
        stage_entry(src, embedding, staging)
        # a dry run reads nothing from the Hub: offline, it still shows what would be uploaded
        card = build_card(embedding, task, existing=_existing_card(None if dry_run else api, repo_id, revision, src))
        if not dry_run:
            validate_card(card, endpoint)
        (staging / CARD_NAME).write_text(card)
        check_no_local_paths(staging, [src] + [Path(p) for p in _local_base_paths(src)])
        files = sorted(p.name for p in staging.iterdir())
        result = PublishResult(repo_id=repo_id, files=files, card=card, revision=revision or "main",
                               note=(f"dry run: the Hub was not contacted, so this card was not validated by the Hub "
                                     f"nor merged with a card {repo_id} may already hold") if dry_run else "")
        if dry_run:
            return result
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            before = _head(api, repo_id, revision)  # after create_branch: a new branch starts at main's commit
            info = api.upload_folder(folder_path=str(staging), repo_id=repo_id, revision=revision,
                                     commit_message=commit_message or f"taskemb-hub: {embedding.task} "
                                                                      f"{embedding.method} step {embedding.step}")
        except HfHubHTTPError as err:
            raise RegistryError(f"The Hub refused the upload to {repo_id}: {_http_reason(err)}. Check that your token "
                                "(HF_TOKEN or `hf auth login`) can write to that namespace, then retry.") from err
    result.url = str(getattr(info, "commit_url", info))
    result.committed = getattr(info, "oid", None) != before
    return result


def public_base_model(embedding: TaskEmbedding, base_model_id: str | None, *, local: bool = False) -> TaskEmbedding:
    """`embedding` with a Hub id as its base model; a local folder is refused unless an id is given.

    Args:
        embedding: the entry's embedding.
        base_model_id: the Hub id to record instead of the recorded base model.
        local: the adapter was tuned on a local folder (its config names a path).
    """
    if base_model_id:
        check_repo_id(base_model_id)
        if base_model_id != embedding.base_model:
            embedding = TaskEmbedding(vector=embedding.vector, task=embedding.task, base_model=base_model_id,
                                      method=embedding.method, signature=embedding.signature, step=embedding.step,
                                      train_size=embedding.train_size, metrics=embedding.metrics, extra=embedding.extra,
                                      adapter_sha256=embedding.adapter_sha256)
    elif local or is_local_id(embedding.base_model) or Path(embedding.base_model).expanduser().is_absolute():
        raise RegistryError(f"The base model {embedding.base_model!r} was loaded from a local folder, which is not a "
                            "Hub id and must not be uploaded. "
                            "Pass base_model_id='<the Hub id of that model>' (CLI: --base-model-id).")
    return embedding


def _local_base_paths(src: Path) -> list[str]:
    try:
        config = json.loads((src / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    base = config.get("base_model_name_or_path") or ""
    return [base] if base and Path(base).expanduser().is_absolute() else []


def stage_entry(src: Path, embedding: TaskEmbedding, staging: Path) -> None:
    """Copy what an entry needs into `staging`, every `source` in its public form (`cards.public_source`)."""
    source = public_source(embedding.extra.get("source"))  # decided where the data was read: it wins
    for name in UPLOADED_FILES:
        if (src / name).is_file():
            if name.endswith(".json"):
                data = public_extra(json.loads((src / name).read_text()))
                for key in ("base_model_name_or_path", "base_model"):  # adapter config / checkpoint info
                    if key in data:
                        data[key] = embedding.base_model
                if "source" in data or source:
                    data.pop("source", None)
                    if name == CHECKPOINT_INFO_NAME and source:
                        data["source"] = source
                (staging / name).write_text(json.dumps(data, indent=2))
            else:
                shutil.copy2(src / name, staging / name)
    public = TaskEmbedding(vector=embedding.vector, task=embedding.task, base_model=embedding.base_model,
                           method=embedding.method, signature=embedding.signature, step=embedding.step,
                           train_size=embedding.train_size, metrics=embedding.metrics,
                           extra=public_extra(dict(embedding.extra)), adapter_sha256=embedding.adapter_sha256)
    public.save(staging)


def public_entries(entries) -> list:
    """Registry entries as a pushed or saved snapshot shows them (`AutoSourceSelector.save_pretrained`): each
    `source` in its public form (`cards.public_source`), a local folder never given as a location. Vectors
    are not copied, and an index's lazy entries stay lazy.

    Args:
        entries: `RegistryEntry` objects.

    Returns:
        New `RegistryEntry` objects over the same vectors.
    """
    return [_public_entry(entry) for entry in entries]


def _public_entry(entry):
    import dataclasses
    from types import SimpleNamespace

    from .registries.base import RegistryEntry

    def load():  # as the index writer reads an entry: a lazy one is not kept loaded
        embedding = entry._embedding or entry._load()
        return dataclasses.replace(embedding, extra=public_extra(dict(embedding.extra or {})))

    def info():
        shown = entry.info
        fields = ("task", "base_model", "method", "signature", "step", "train_size", "metrics")
        return SimpleNamespace(**{k: getattr(shown, k) for k in fields}, extra=public_extra(dict(shown.extra or {})))

    load.stored_row = entry.stored_row  # the index writer copies a stored row as it is
    repo, _, sha = entry.location.rpartition("@")
    hub_form = bool(sha) and public_source(repo) == repo  # `repo@sha` of a Hub entry; anything else is local
    return RegistryEntry(entry.name, location=entry.location if hub_form else "", signature_hash=entry.signature_hash,
                         load=load, info=info)


def check_no_local_paths(staging: Path, folders: list[Path]) -> None:
    """Refuse an upload whose text files or safetensors headers name a folder of this machine (the home, cwd,
    the adapter, or any existing absolute path)."""
    needles = {str(Path.home()), os.getcwd()} | {str(f.resolve()) for f in folders}
    needles = {n for n in needles if len(n) > 1}
    for path in staging.iterdir():
        if path.suffix in (".json", ".md"):
            text = path.read_text()
        elif path.suffix == ".safetensors":
            text = json.dumps(safetensors_metadata(path))
        else:
            continue
        hit = next((n for n in needles if n in text), None) or names_local_path(text)
        if hit:
            raise RegistryError(f"{path.name} names the local path {hit!r}; refusing to upload it. Remove the "
                                "path from the file (or from the task's `source`) and publish again.")


def safetensors_metadata(path: Path) -> dict:
    """The `__metadata__` of a safetensors file's header (read as JSON: no tensor is loaded), {} if unreadable."""
    import struct

    try:
        with open(path, "rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(min(size, 100 << 20)))
    except (OSError, ValueError, struct.error):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _http_reason(err) -> str:
    response = getattr(err, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(err).__name__


def validate_card(content: str, endpoint: str) -> None:
    """Have the Hub validate the card's YAML (as `ModelCard.validate`, but at `endpoint`)."""
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_session, hf_raise_for_status

    try:
        response = get_session().post(f"{endpoint}/api/validate-yaml", json={"repoType": "model", "content": content},
                                      headers={"Accept": "text/plain"}, timeout=30)
    except Exception as err:  # connection refused, timeout
        raise RegistryError(f"Cannot reach {endpoint} to validate the model card ({type(err).__name__}). Check the "
                            "endpoint and your connection, then retry.") from err
    if response.status_code == 400:
        reason = " ".join(response.text.split())[:300]  # one line: the Hub lists one problem per line
        raise RegistryError(f"The Hub rejects the model card's metadata: {reason}. Fix the "
                            "YAML of the card (README.md) and publish again.")
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as err:
        raise RegistryError(f"Card validation failed at {endpoint}: HTTP {response.status_code}. Retry later.") from err


def _existing_card(api, repo_id: str, revision: str | None, src: Path) -> str | None:
    """The card text to merge into: the repo's (what its owner wrote on the Hub; none when `api` is None, a dry run)
    with the folder's README.md
    over it (what the user wrote there, edits after an earlier publish included: `cards.merge_cards`)."""
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    repo = None
    try:
        repo = Path(api.hf_hub_download(repo_id, CARD_NAME, revision=revision)).read_text() if api else None
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        pass
    except HfHubHTTPError as err:
        raise RegistryError(f"Cannot read the card of {repo_id} to merge with it: {_http_reason(err)}. Check your "
                            "token's access to the repo, then retry.") from err
    local = src / CARD_NAME
    return merge_cards(repo, local.read_text() if local.is_file() else None)


def _head(api, repo_id: str, revision: str | None) -> str | None:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return api.model_info(repo_id, revision=revision).sha
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
