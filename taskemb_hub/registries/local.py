"""Registries: where source-task embeddings live. A local folder of Hub-repo-shaped entries.

An entry is a folder shaped like a Hub model repo: `adapter_config.json`, adapter weights in
safetensors, a `README.md` model card with YAML metadata, and `taskemb.safetensors` (+
`taskemb.json`). An entry with only the embedding files is valid too (the packaged default).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..adapters import CHECKPOINT_INFO_NAME, CONFIG_NAME, INIT_NAME, WEIGHTS_NAME
from ..cards import CARD_NAME, write_model_card
from ..embedding import EMBEDDING_NAME, METADATA_NAME, TaskEmbedding, default_mode, load_embedding
from ..errors import RegistryError, TaskEmbHubError
from .base import Registry, RegistryEntry

ENTRY_FILES = (CONFIG_NAME, WEIGHTS_NAME, INIT_NAME, CHECKPOINT_INFO_NAME, EMBEDDING_NAME, METADATA_NAME, CARD_NAME)
LOCK_NAME = ".taskemb-registry.lock"  # every add (check, stage, swap) runs under this lock
LOCK_TIMEOUT_S = 300
# An overwrite moves the entry `name` aside to `.name.old`, moves the staged `.name.new-XXXXXXXX` in, then deletes
# `.name.old`. A crash between these steps leaves one of them behind; `_recover` finishes or undoes the swap.
_STAGING = re.compile(r"^\..+\.new-[A-Za-z0-9_]{8}$")


def _is_entry(folder: Path) -> bool:
    return (folder / EMBEDDING_NAME).is_file() or (folder / CONFIG_NAME).is_file()


def _backup_of(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _replaced_entry(child: Path) -> Path | None:
    """The entry folder a backup `.name.old` was moved aside from, or None when `child` is no backup."""
    name = child.name
    return child.with_name(name[1:-4]) if name.startswith(".") and name.endswith(".old") and len(name) > 5 else None


def _scan(root: Path) -> tuple[list[Path], list[Path]]:
    """(entry folders, leftovers of an interrupted add) under `root`; an entry moved aside whose replacement never
    arrived (`.name.old` without `name`) is listed as the entry, so a crash mid-overwrite never hides it."""
    found, leftovers, stack = [], [], [root]
    while stack:
        folder = stack.pop()
        for child in sorted(folder.iterdir(), reverse=True):
            if not child.is_dir():
                continue
            if child.name.startswith("."):
                replaced = _replaced_entry(child)
                if _STAGING.match(child.name) or replaced is not None:
                    leftovers.append(child)
                    if replaced is not None and not replaced.exists() and _is_entry(child):
                        found.append(child)
            else:
                (found.append(child) if _is_entry(child) else stack.append(child))
    return sorted(found), leftovers


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
        self.source = os.fspath(path)  # as the caller spelled it, for messages (`Path` drops a trailing slash)
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        if not self.path.is_dir():
            raise RegistryError(f"Registry folder {self.path} does not exist. Create it with "
                                f"`taskemb-hub registry add <adapter> --registry {self.path}`.")
        self.skipped: list[tuple[str, str]] = []
        if _scan(self.path)[1] and os.access(self.path, os.W_OK):
            try:
                with self._lock(timeout=0):  # an add running now recovers under the lock itself
                    self._recover()
            except (RegistryError, OSError):
                pass  # a read-only or busy registry: `entry_folders` still lists an entry moved aside

    @contextmanager
    def _lock(self, timeout: float = LOCK_TIMEOUT_S):
        """The registry's lock: one add at a time checks, stages and swaps (two adds of one name: one wins)."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK_NAME), timeout=timeout, mode=default_mode())
        try:
            lock.acquire()
        except Timeout:
            raise RegistryError(f"Registry {self.path} is locked by another `registry add` for over {timeout:g} s. "
                                "Wait for it to finish, then retry.") from None
        try:
            yield
        finally:
            lock.release()

    def _recover(self) -> None:
        """Finish or undo an add that crashed mid-way (call under the lock): an entry moved aside whose
        replacement never arrived is moved back, a replaced entry's backup and staged folders are deleted."""
        for leftover in _scan(self.path)[1]:
            replaced = _replaced_entry(leftover)
            if replaced is not None and not replaced.exists() and _is_entry(leftover):
                os.replace(leftover, replaced)
            else:
                shutil.rmtree(leftover, ignore_errors=True)

    def entry_folders(self) -> list[Path]:
        return _scan(self.path)[0]

    def _name(self, folder: Path) -> str:
        return (_replaced_entry(folder) or folder).relative_to(self.path).as_posix()

    def entries(self) -> list[RegistryEntry]:
        """Every readable entry; unreadable ones go to `self.skipped` with the reason, not an exception."""
        self.skipped = []
        out = []
        for folder in self.entry_folders():
            name = self._name(folder)
            try:
                embedding = load_embedding(folder)
                embedding.check_usable()  # all zeros, or a norm its signature rules out: it would move the mean
                out.append(RegistryEntry(name=name, embedding=embedding, location=str(folder)))
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
            inner = [self._name(f) for f in _scan(target)[0]]
            if inner:
                raise RegistryError(f"Entry name {name!r} is a folder that holds entries ({', '.join(inner[:3])}"
                                    f"{' ...' if len(inner) > 3 else ''}); adding it would replace them. Choose another name.")

    def __len__(self) -> int:
        return len(self.entry_folders())

    def add(self, source: str | os.PathLike | TaskEmbedding, name: str | None = None, *, overwrite: bool = False) -> Path:
        """Add an adapter folder (or a bare `TaskEmbedding`) as an entry.

        The entry is written in a temporary folder and moved into place in one step, so a failed
        add never leaves a half-written entry, and an existing one is replaced only with
        `overwrite=True` (moved aside until the new one is in place: after a crash, opening the
        registry restores or finishes the swap). Adds run under the registry's lock file, so of two
        adds of one name at once one wins and the other raises `RegistryError`.
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
        try:
            with self._lock():
                self._recover()
                return self._add_locked(embedding, src, name, target, overwrite)
        except OSError as err:
            raise RegistryError(f"Could not write registry entry {name!r} in {self.path}: {err.strerror or err}. "
                                "Check that the folder is writable and the disk not full, then retry.") from err

    def _add_locked(self, embedding: TaskEmbedding, src: Path | None, name: str, target: Path, overwrite: bool) -> Path:
        """Stage the entry beside its place, then swap it in; the old entry stays until the new one is in place."""
        self._check_nesting(name, target)
        if target.exists() and not overwrite:
            raise RegistryError(f"Registry entry {name!r} already exists at {target}. Pass overwrite=True "
                                "(CLI: --overwrite) to replace it, or choose another --name.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
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
                backup = _backup_of(target)  # `_recover` removed any earlier one
                os.replace(target, backup)
                try:
                    os.replace(staging, target)
                except BaseException:
                    os.replace(backup, target)
                    raise
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target


class PackagedRegistry(LocalRegistry):
    """The registry shipped in the package (`--registry default`): a read-only `LocalRegistry` of the offline
    suite's classification tasks, with the TextEmb vectors of the same tasks beside it (`textemb`, None when
    absent) that `ranker="fusion"` reads.

    Example:
        ```python
        >>> registry = PackagedRegistry()
        >>> len(registry.entries())
        16
        ```
    """

    def __init__(self):
        from ..default_registry import default_registry_path, default_textemb_path

        super().__init__(default_registry_path())
        self.textemb: Path | None = default_textemb_path() if default_textemb_path().is_dir() else None
