"""Registries: where source-task embeddings live. A local folder of Hub-repo-shaped entries.

An entry is a folder shaped like a Hub model repo: `adapter_config.json`, adapter weights in
safetensors, a `README.md` model card with YAML metadata, and `taskemb.safetensors` (+
`taskemb.json`). An entry with only the embedding files is valid too (the packaged default).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..adapters import CHECKPOINT_INFO_NAME, CONFIG_NAME, INIT_NAME, WEIGHTS_NAME
from ..cards import CARD_NAME, write_model_card
from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding, default_mode, load_embedding
from ..errors import RegistryError, TaskEmbHubError
from .base import Registry, RegistryEntry

ENTRY_FILES = (CONFIG_NAME, WEIGHTS_NAME, INIT_NAME, CHECKPOINT_INFO_NAME, EMBEDDING_NAME, METADATA_NAME, CARD_NAME)


def _is_entry(folder: Path) -> bool:
    return (folder / EMBEDDING_NAME).is_file() or (folder / CONFIG_NAME).is_file()


class LocalRegistry(Registry):
    """A folder of entries (nested folders allowed: `owner/name`).

    Args:
        path: the registry folder.
        create: make the folder if it does not exist (for `add`).

    Example:
        ```python
        >>> registry = LocalRegistry("my-registry", create=True)
        >>> registry.add("runs/rte-lora/step-100", name="rte-lora")
        >>> [e.name for e in registry.entries()]
        ['rte-lora']
        ```
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False):
        self.path = Path(path)
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        if not self.path.is_dir():
            raise RegistryError(f"Registry folder {self.path} does not exist. Create it with "
                                f"`taskemb-hub registry add <adapter> --registry {self.path}`.")
        self.skipped: list[tuple[str, str]] = []

    def entry_folders(self) -> list[Path]:
        found, stack = [], [self.path]
        while stack:
            folder = stack.pop()
            for child in sorted(folder.iterdir(), reverse=True):
                if child.is_dir() and not child.name.startswith("."):
                    (found.append(child) if _is_entry(child) else stack.append(child))
        return sorted(found)

    def entries(self) -> list[RegistryEntry]:
        """Every readable entry; unreadable ones go to `self.skipped` with the reason, not an exception."""
        self.skipped = []
        out = []
        for folder in self.entry_folders():
            name = folder.relative_to(self.path).as_posix()
            try:
                out.append(RegistryEntry(name=name, embedding=load_embedding(folder), location=str(folder)))
            except TaskEmbHubError as err:
                self.skipped.append((name, str(err)))
        return out

    def _check_nesting(self, name: str, target: Path) -> None:
        """An entry inside another entry is never listed, and one around other entries would replace them."""
        for parent in list(Path(name).parents)[:-1]:
            if _is_entry(self.path / parent):
                raise RegistryError(f"Entry name {name!r} is inside entry {parent.as_posix()!r}, where entries are not "
                                    f"looked for. Choose another name, e.g. {name.replace('/', '-')!r}.")
        if target.is_dir() and not _is_entry(target):
            inner = [f.relative_to(self.path).as_posix() for f in LocalRegistry(target).entry_folders()]
            if inner:
                raise RegistryError(f"Entry name {name!r} is a folder that holds entries ({', '.join(inner[:3])}"
                                    f"{' ...' if len(inner) > 3 else ''}); adding it would replace them. Choose another name.")

    def __len__(self) -> int:
        return len(self.entry_folders())

    def add(self, source: str | os.PathLike | TaskEmbedding, name: str | None = None, *, overwrite: bool = False) -> Path:
        """Add an adapter folder (or a bare `TaskEmbedding`) as an entry.

        The entry is written in a temporary folder and moved into place in one step, so a failed
        add never leaves a half-written entry, and an existing one is replaced only with
        `overwrite=True`.
        """
        if isinstance(source, TaskEmbedding):
            embedding, src = source, None
        else:
            src = Path(source)
            embedding = load_embedding(src)
        name = name or f"{embedding.task}-{embedding.method}" + (f"-step{embedding.step}" if embedding.step else "")
        if name.startswith("/") or any(part.startswith(".") for part in Path(name).parts):
            raise RegistryError(f"Entry name {name!r} must be a relative name like 'owner/task-lora' (no part may "
                                "start with '.': hidden folders are not listed as entries).")
        embedding.check_usable()
        target = self.path / name
        self._check_nesting(name, target)
        if target.exists() and not overwrite:
            raise RegistryError(f"Registry entry {name!r} already exists at {target}. Pass overwrite=True "
                                "(CLI: --overwrite) to replace it, or choose another --name.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        os.chmod(staging, default_mode(directory=True))  # mkdtemp's 0700 would hide the entry from the group
        try:
            if src is not None:
                for file in ENTRY_FILES:
                    if (src / file).is_file():
                        shutil.copy2(src / file, staging / file)
            embedding.save(staging)
            if not (staging / CARD_NAME).is_file():
                write_model_card(staging, embedding)
            if target.exists():
                backup = target.with_name(f".{target.name}.old")
                os.replace(target, backup)
                os.replace(staging, target)
                shutil.rmtree(backup)
            else:
                os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return target
